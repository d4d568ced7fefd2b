//! A data-only unpickler for the refer toolkit's `refs(<split>).p` files.
//!
//! Those files were written by Python 2 (the toolkit predates Python 3) and
//! hold a list of plain dicts of strings, numbers and lists. Which protocol
//! wrote them is not documented, so every protocol is read: 0 (text, Python
//! 2's default), 1, 2 (binary, `HIGHEST_PROTOCOL` in Python 2) and 3–5 (in
//! case a file was loaded and dumped again by Python 3). Python 2 `str`
//! values (`STRING`, `BINSTRING`, `SHORT_BINSTRING`) are read as UTF-8, with
//! Latin-1 for bytes that are not.
//!
//! Only data opcodes are understood. Anything that would import or call code
//! (`GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, persistent ids,
//! extensions) is an error naming the opcode and its byte offset, never
//! executed. Memoised containers are shared as in Python (a `GET` of a list
//! that is appended to later sees the appends); the expanded tree is bounded,
//! so a file of repeated references cannot blow up memory.
//!
//! `som-segment` has its own minimal unpickler for `torch.save` archives
//! (tensors, storages, `OrderedDict`), behind its `torch` feature; the two read
//! disjoint opcode sets for disjoint purposes, and backend crates do not depend
//! on each other, so each keeps its own.

/// A Python value from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` (or Python 2 `long`) that fits 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str` / `unicode`.
    Str(String),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `tuple`.
    Tuple(Vec<PyValue>),
    /// A `dict`, in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
    /// A `set` or `frozenset`.
    Set(Vec<PyValue>),
}

impl PyValue {
    /// The value under a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, PyValue::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The integer, if this is one (`True`/`False` are not).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_list(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(v) | PyValue::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// A short name of the value's type, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            PyValue::None => "None",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
            PyValue::Set(_) => "set",
        }
    }
}

/// The most values an unpickled tree may expand to (shared references count
/// once per place they appear).
pub const MAX_VALUES: usize = 20_000_000;

/// Reads one pickle.
///
/// # Errors
/// A one-line message with the byte offset: truncated data, an unknown or
/// code-executing opcode, a malformed text value, a stack underflow, a memo
/// index that was never set, or a tree larger than [`MAX_VALUES`] values.
///
/// ```
/// use som_eval::data::pickle::{unpickle, PyValue};
/// // pickle.dumps([{"ref_id": 7}], protocol=2)
/// let bytes = b"\x80\x02]q\x00}q\x01X\x06\x00\x00\x00ref_idq\x02K\x07sa.";
/// let v = unpickle(bytes).unwrap();
/// assert_eq!(v.as_list().unwrap()[0].get("ref_id"), Some(&PyValue::Int(7)));
/// assert!(unpickle(b"cos\nsystem\n(S'ls'\ntR.").unwrap_err().contains("GLOBAL"));
/// ```
pub fn unpickle(data: &[u8]) -> Result<PyValue, String> {
    unpickle_limited(data, MAX_VALUES)
}

fn unpickle_limited(data: &[u8], max_values: usize) -> Result<PyValue, String> {
    let mut m = Machine {
        data,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    let top = m.run()?;
    let mut budget = max_values;
    m.materialize(top, &mut budget, 0)
}

/// A value under construction; containers refer to other nodes by index so
/// memoised containers stay shared while they are filled.
#[derive(Debug)]
enum Node {
    Leaf(PyValue),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, usize>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        match self.pos.checked_add(n).filter(|&e| e <= self.data.len()) {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!("truncated pickle: {n} bytes wanted at byte {}", self.pos)),
        }
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(format!(
                "truncated pickle: no end of line after byte {}",
                self.pos
            )),
        }
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        let id = self.nodes.len() - 1;
        self.stack.push(id);
        id
    }

    fn leaf(&mut self, v: PyValue) {
        self.push(Node::Leaf(v));
    }

    fn pop(&mut self, at: usize, op: &str) -> Result<usize, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(format!("{op} at byte {at} pops across a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| format!("{op} at byte {at} on an empty stack"))
    }

    fn top(&self, at: usize, op: &str) -> Result<usize, String> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| format!("{op} at byte {at} on an empty stack"))
    }

    fn pop_mark(&mut self, at: usize, op: &str) -> Result<Vec<usize>, String> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| format!("{op} at byte {at} without a MARK"))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64, at: usize) -> Result<(), String> {
        let id = self.top(at, "PUT")?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<(), String> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("GET at byte {at} of memo entry {key}, which was never set"))?;
        self.stack.push(id);
        Ok(())
    }

    fn extend(&mut self, target: usize, items: Vec<usize>, at: usize, op: &str) -> Result<(), String> {
        match &mut self.nodes[target] {
            Node::List(v) | Node::Set(v) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(format!(
                "{op} at byte {at} into something that is not a list or set"
            )),
        }
    }

    fn set_items(&mut self, target: usize, items: Vec<usize>, at: usize, op: &str) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err(format!("{op} at byte {at} with an odd number of keys and values"));
        }
        match &mut self.nodes[target] {
            Node::Dict(d) => {
                for kv in items.chunks_exact(2) {
                    d.push((kv[0], kv[1]));
                }
                Ok(())
            }
            _ => Err(format!("{op} at byte {at} into something that is not a dict")),
        }
    }

    fn text(&mut self, at: usize, op: &str) -> Result<&'a str, String> {
        let line = self.line()?;
        std::str::from_utf8(line).map_err(|_| format!("{op} at byte {at}: the value is not text"))
    }

    fn run(&mut self) -> Result<usize, String> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            match op {
                b'.' => {
                    if !self.marks.is_empty() {
                        return Err(format!("STOP at byte {at} inside an unclosed MARK"));
                    }
                    let top = self.pop(at, "STOP")?;
                    return Ok(top);
                }
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(format!("pickle protocol {proto} at byte {at} is newer than 5"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at, "POP")?;
                }
                b'1' => {
                    self.pop_mark(at, "POP_MARK")?;
                }
                b'2' => {
                    let id = self.top(at, "DUP")?;
                    self.stack.push(id);
                }
                b'N' => self.leaf(PyValue::None),
                0x88 => self.leaf(PyValue::Bool(true)),
                0x89 => self.leaf(PyValue::Bool(false)),
                b'I' => {
                    let t = self.text(at, "INT")?;
                    let v = match t {
                        "00" => PyValue::Bool(false),
                        "01" => PyValue::Bool(true),
                        _ => PyValue::Int(
                            parse_int(t)
                                .ok_or_else(|| format!("INT at byte {at}: {t:?} is not an integer"))?,
                        ),
                    };
                    self.leaf(v);
                }
                b'L' => {
                    let t = self.text(at, "LONG")?;
                    let v = parse_int(t.trim_end_matches('L'))
                        .ok_or_else(|| format!("LONG at byte {at}: {t:?} is not a 64-bit integer"))?;
                    self.leaf(PyValue::Int(v));
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.leaf(PyValue::Int(v as i64));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.leaf(PyValue::Int(v as i64));
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.leaf(PyValue::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.byte()? as usize
                    } else {
                        self.le(4)? as usize
                    };
                    if n > 8 {
                        return Err(format!(
                            "LONG at byte {at}: a {n}-byte integer does not fit 64 bits"
                        ));
                    }
                    let b = self.take(n)?;
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n); // two's complement sign
                    }
                    self.leaf(PyValue::Int(v));
                }
                b'F' => {
                    let t = self.text(at, "FLOAT")?;
                    let v: f64 = t
                        .trim()
                        .parse()
                        .map_err(|_| format!("FLOAT at byte {at}: {t:?} is not a number"))?;
                    self.leaf(PyValue::Float(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().map_err(|_| "truncated BINFLOAT".to_string())?);
                    self.leaf(PyValue::Float(v));
                }
                b'S' => {
                    let line = self.line()?;
                    let s = parse_py2_repr(line)
                        .ok_or_else(|| format!("STRING at byte {at}: not a quoted string"))?;
                    self.leaf(PyValue::Str(bytes_to_string(&s)));
                }
                b'T' | b'U' => {
                    let n = if op == b'U' {
                        self.byte()? as usize
                    } else {
                        self.le(4)? as usize
                    };
                    let b = self.take(n)?;
                    self.leaf(PyValue::Str(bytes_to_string(b)));
                }
                b'V' => {
                    let line = self.line()?;
                    let s = raw_unicode_escape(line)
                        .ok_or_else(|| format!("UNICODE at byte {at}: bad escape"))?;
                    self.leaf(PyValue::Str(s));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.le(4)? as usize,
                        0x8c => self.byte()? as usize,
                        _ => self.le(8)? as usize,
                    };
                    let b = self.take(n)?;
                    let s = String::from_utf8(b.to_vec())
                        .map_err(|_| format!("BINUNICODE at byte {at} is not UTF-8"))?;
                    self.leaf(PyValue::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.le(4)? as usize,
                        b'C' => self.byte()? as usize,
                        _ => self.le(8)? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.leaf(PyValue::Bytes(b));
                }
                b']' => {
                    self.push(Node::List(Vec::new()));
                }
                b'l' => {
                    let items = self.pop_mark(at, "LIST")?;
                    self.push(Node::List(items));
                }
                b'a' => {
                    let v = self.pop(at, "APPEND")?;
                    let t = self.top(at, "APPEND")?;
                    self.extend(t, vec![v], at, "APPEND")?;
                }
                b'e' => {
                    let items = self.pop_mark(at, "APPENDS")?;
                    let t = self.top(at, "APPENDS")?;
                    self.extend(t, items, at, "APPENDS")?;
                }
                b'}' => {
                    self.push(Node::Dict(Vec::new()));
                }
                b'd' => {
                    let items = self.pop_mark(at, "DICT")?;
                    let id = self.push(Node::Dict(Vec::new()));
                    self.set_items(id, items, at, "DICT")?;
                }
                b's' => {
                    let v = self.pop(at, "SETITEM")?;
                    let k = self.pop(at, "SETITEM")?;
                    let t = self.top(at, "SETITEM")?;
                    self.set_items(t, vec![k, v], at, "SETITEM")?;
                }
                b'u' => {
                    let items = self.pop_mark(at, "SETITEMS")?;
                    let t = self.top(at, "SETITEMS")?;
                    self.set_items(t, items, at, "SETITEMS")?;
                }
                b')' => {
                    self.push(Node::Tuple(Vec::new()));
                }
                b't' => {
                    let items = self.pop_mark(at, "TUPLE")?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at, "TUPLE")?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                0x8f => {
                    self.push(Node::Set(Vec::new()));
                }
                0x90 => {
                    let items = self.pop_mark(at, "ADDITEMS")?;
                    let t = self.top(at, "ADDITEMS")?;
                    self.extend(t, items, at, "ADDITEMS")?;
                }
                0x91 => {
                    let items = self.pop_mark(at, "FROZENSET")?;
                    self.push(Node::Set(items));
                }
                b'p' => {
                    let t = self.text(at, "PUT")?;
                    let k = t
                        .trim()
                        .parse()
                        .map_err(|_| format!("PUT at byte {at}: bad index {t:?}"))?;
                    self.memo_put(k, at)?;
                }
                b'q' => {
                    let k = self.byte()? as u64;
                    self.memo_put(k, at)?;
                }
                b'r' => {
                    let k = self.le(4)?;
                    self.memo_put(k, at)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k, at)?;
                }
                b'g' => {
                    let t = self.text(at, "GET")?;
                    let k = t
                        .trim()
                        .parse()
                        .map_err(|_| format!("GET at byte {at}: bad index {t:?}"))?;
                    self.memo_get(k, at)?;
                }
                b'h' => {
                    let k = self.byte()? as u64;
                    self.memo_get(k, at)?;
                }
                b'j' => {
                    let k = self.le(4)?;
                    self.memo_get(k, at)?;
                }
                other => {
                    let name = match other {
                        b'c' => "GLOBAL",
                        0x93 => "STACK_GLOBAL",
                        b'R' => "REDUCE",
                        b'b' => "BUILD",
                        b'i' => "INST",
                        b'o' => "OBJ",
                        0x81 => "NEWOBJ",
                        0x92 => "NEWOBJ_EX",
                        b'P' => "PERSID",
                        b'Q' => "BINPERSID",
                        0x82..=0x84 => "EXT",
                        0x97 => "NEXT_BUFFER",
                        0x98 => "READONLY_BUFFER",
                        _ => "",
                    };
                    return Err(if name.is_empty() {
                        format!("unknown pickle opcode 0x{other:02x} at byte {at}")
                    } else {
                        format!(
                            "pickle opcode {name} at byte {at} would run code; a refs file holds plain lists and dicts only"
                        )
                    });
                }
            }
        }
    }

    fn materialize(&self, id: usize, budget: &mut usize, depth: usize) -> Result<PyValue, String> {
        if depth > 1000 {
            return Err("pickle nests deeper than 1000 levels (or refers to itself)".into());
        }
        if *budget == 0 {
            return Err("pickle expands to more values than the limit".to_string());
        }
        *budget -= 1;
        let all = |ids: &[usize], budget: &mut usize| -> Result<Vec<PyValue>, String> {
            ids.iter()
                .map(|&i| self.materialize(i, budget, depth + 1))
                .collect()
        };
        Ok(match &self.nodes[id] {
            Node::Leaf(v) => v.clone(),
            Node::List(ids) => PyValue::List(all(ids, budget)?),
            Node::Tuple(ids) => PyValue::Tuple(all(ids, budget)?),
            Node::Set(ids) => PyValue::Set(all(ids, budget)?),
            Node::Dict(kv) => {
                let mut out = Vec::with_capacity(kv.len());
                for &(k, v) in kv {
                    out.push((
                        self.materialize(k, budget, depth + 1)?,
                        self.materialize(v, budget, depth + 1)?,
                    ));
                }
                PyValue::Dict(out)
            }
        })
    }
}

fn parse_int(t: &str) -> Option<i64> {
    t.trim().parse().ok()
}

/// Python 2 `str` bytes as text: UTF-8 where valid, else Latin-1.
fn bytes_to_string(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// The bytes of a Python 2 string `repr` (`'abc'`, `"it's"`, with `\x41`,
/// `\n`, `\\`, `\'` and octal escapes).
fn parse_py2_repr(line: &[u8]) -> Option<Vec<u8>> {
    let q = *line.first()?;
    if !(q == b'\'' || q == b'"') || line.len() < 2 || *line.last()? != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Python's `raw-unicode-escape` decoding: `\uXXXX` and `\UXXXXXXXX`
/// escapes, every other byte a Latin-1 character.
fn raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c == b'\\' && matches!(line.get(i + 1), Some(b'u') | Some(b'U')) {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = std::str::from_utf8(line.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
            i += 2 + n;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_zero_text_values() {
        // pickle.dumps([{'a': u'caf\xe9', 'b': 'x\ny', 'n': -5, 'f': 1.5, 't': True}], 0) under Python 2
        let p = b"(lp0\n(dp1\nS'a'\np2\nVcaf\xe9\np3\nsS'b'\np4\nS'x\\ny'\np5\nsS'n'\np6\nI-5\nsS'f'\np7\nF1.5\nsS't'\np8\nI01\nsa.";
        let v = unpickle(p).unwrap();
        let d = &v.as_list().unwrap()[0];
        assert_eq!(d.get("a"), Some(&PyValue::Str("café".into())));
        assert_eq!(d.get("b"), Some(&PyValue::Str("x\ny".into())));
        assert_eq!(d.get("n"), Some(&PyValue::Int(-5)));
        assert_eq!(d.get("f"), Some(&PyValue::Float(1.5)));
        assert_eq!(d.get("t"), Some(&PyValue::Bool(true)));
    }

    #[test]
    fn memoised_containers_are_shared() {
        // x = []; pickle.dumps([x, x], 2) then x filled: ] q0 ( ] q1 h1 e .  with an APPEND into memo 1 after the GET
        let p = b"\x80\x02]q\x00(]q\x01h\x01eh\x01K\x05a0.";
        let v = unpickle(p).unwrap();
        assert_eq!(
            v,
            PyValue::List(vec![
                PyValue::List(vec![PyValue::Int(5)]),
                PyValue::List(vec![PyValue::Int(5)])
            ])
        );
    }

    #[test]
    fn malformed_pickles_are_errors_never_panics() {
        for bad in [
            &b""[..],
            b"\x80",
            b"\x80\x02]",
            b"e.",
            b"h\x07.",
            b"\x80\x09N.",
            b"X\xff\xff\xff\xff",
            b"S'abc\n.",
            b"Vab\\u12\n.",
            b"I12x\n.",
            b"(N.",
            b"}K\x01s.",
            b"\xfe",
            b"\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.",
        ] {
            assert!(unpickle(bad).is_err(), "{bad:?}");
        }
        // A self-referencing list does not recurse forever.
        assert!(unpickle(b"]q\x00h\x00a.").unwrap_err().contains("deeper"));
        // Exponential sharing is bounded.
        let mut p = b"]q\x00K\x01a".to_vec();
        for i in 1..60u8 {
            p.extend_from_slice(&[b']', b'q', i, b'h', i - 1, b'a', b'h', i - 1, b'a']);
        }
        p.push(b'.');
        assert!(unpickle_limited(&p, 10_000)
            .unwrap_err()
            .contains("more values than"));
    }
}
