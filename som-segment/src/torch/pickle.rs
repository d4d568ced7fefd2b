//! A minimal unpickler for the state dicts `torch.save` writes.
//!
//! `torch.save(model.state_dict(), path)` writes a zip archive with `<name>/data.pkl`
//! (a protocol-2 pickle of an `OrderedDict` from parameter names to tensors) and one
//! `<name>/data/<key>` entry per tensor storage. The pickle refers to storages through
//! persistent ids and rebuilds tensors with `torch._utils._rebuild_tensor_v2`.
//!
//! Only the opcodes and globals such files use are understood; anything else is a typed
//! error, never code execution. Objects of other classes (an optimizer's or scheduler's
//! state next to the model's, numpy scalars) are kept as [`Value::Opaque`] records of
//! their class name, which the checkpoint reader refuses only where it needs tensors. Memoised values are copies, which is exact for state dicts
//! (nothing mutates a memoised container after it is fetched again).

use std::collections::BTreeMap;

use tch::Kind;

/// A storage reference: which archive entry, which element type, how many elements.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageRef {
    pub key: String,
    pub kind: Kind,
    pub numel: i64,
}

/// A tensor view into a storage, as `_rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRef {
    pub storage: StorageRef,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// A pickled value, restricted to what state dicts contain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// An instance of a class this reader does not build (`module.name`), never called.
    Opaque(String),
    Storage(StorageRef),
    Tensor(TensorRef),
}

fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!("pickle truncated at byte {} (needs {n} more)", self.pos)),
        }
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| format!("pickle truncated in a GLOBAL at byte {}", self.pos))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<String, String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("invalid utf-8 string before byte {}", self.pos))
    }
}

fn as_int(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(format!("expected an integer for {what}, found {other:?}")),
    }
}

fn as_ints(v: &Value, what: &str) -> Result<Vec<i64>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| as_int(i, what)).collect(),
        other => Err(format!("expected a tuple for {what}, found {other:?}")),
    }
}

fn persistent_load(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else {
        return Err(format!("unsupported persistent id {pid:?}"));
    };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(module, name), Value::Str(key), _location, numel]
            if tag == "storage" =>
        {
            let kind = storage_kind(name)
                .filter(|_| module == "torch")
                .ok_or_else(|| format!("unsupported storage type {module}.{name}"))?;
            let numel = as_int(numel, "storage size")?;
            if numel < 0 {
                return Err(format!("negative storage size {numel}"));
            }
            Ok(Value::Storage(StorageRef {
                key: key.clone(),
                kind,
                numel,
            }))
        }
        _ => Err(format!("unsupported persistent id {items:?}")),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = &callable else {
        return Err(format!("cannot call {callable:?}"));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("arguments of {module}.{name} are not a tuple"));
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") if args.is_empty() => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let [storage, offset, size, stride, ..] = args.as_slice() else {
                return Err(format!("{name} needs at least 4 arguments, found {}", args.len()));
            };
            let Value::Storage(storage) = storage else {
                return Err(format!("{name}: first argument is not a storage"));
            };
            let size = as_ints(size, "tensor size")?;
            let stride = as_ints(stride, "tensor stride")?;
            let offset = as_int(offset, "storage offset")?;
            if size.len() != stride.len() || size.iter().chain(&stride).any(|&v| v < 0) || offset < 0 {
                return Err(format!(
                    "invalid tensor geometry size {size:?} stride {stride:?} offset {offset}"
                ));
            }
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset,
                size,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter") => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err("_rebuild_parameter without a tensor".to_owned()),
        },
        _ => Ok(Value::Opaque(format!("{module}.{name}"))),
    }
}

fn pop_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>, String> {
    let at = stack
        .iter()
        .rposition(|v| matches!(v, Value::Mark))
        .ok_or("pickle pops a MARK that was never pushed")?;
    let items = stack.split_off(at + 1);
    stack.pop();
    Ok(items)
}

fn pop(stack: &mut Vec<Value>) -> Result<Value, String> {
    stack.pop().ok_or_else(|| "pickle stack underflow".to_owned())
}

/// Unpickles `data` into a [`Value`].
pub(crate) fn unpickle(data: &[u8]) -> Result<Value, String> {
    let mut r = Reader { data, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: BTreeMap<u32, Value> = BTreeMap::new();
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return Err(format!("unsupported pickle protocol {proto}"));
                }
            }
            0x95 => {
                r.u64()?; // FRAME: a length hint only
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'K' => stack.push(Value::Int(i64::from(r.u8()?))),
            b'M' => stack.push(Value::Int(i64::from(r.u16()?))),
            b'J' => stack.push(Value::Int(i64::from(r.u32()? as i32))),
            0x8a => {
                let n = usize::from(r.u8()?);
                let b = r.take(n)?;
                if n > 8 {
                    return Err(format!("integer of {n} bytes is too large"));
                }
                let mut v: i64 = 0;
                for (i, &byte) in b.iter().enumerate() {
                    v |= i64::from(byte) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                let b = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                stack.push(Value::Float(f64::from_be_bytes(a)));
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            0x8c => {
                let n = usize::from(r.u8()?);
                stack.push(Value::Str(r.utf8(n)?));
            }
            b'T' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'U' | b'C' => {
                let n = usize::from(r.u8()?);
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err("STACK_GLOBAL needs two strings".to_owned()),
                }
            }
            b'q' => {
                let k = u32::from(r.u8()?);
                memo.insert(k, stack.last().ok_or("BINPUT on an empty stack")?.clone());
            }
            b'r' => {
                let k = r.u32()?;
                memo.insert(k, stack.last().ok_or("LONG_BINPUT on an empty stack")?.clone());
            }
            0x94 => {
                let k = memo.len() as u32;
                memo.insert(k, stack.last().ok_or("MEMOIZE on an empty stack")?.clone());
            }
            b'h' => {
                let k = u32::from(r.u8()?);
                stack.push(
                    memo.get(&k)
                        .cloned()
                        .ok_or_else(|| format!("memo {k} was never stored"))?,
                );
            }
            b'j' => {
                let k = r.u32()?;
                stack.push(
                    memo.get(&k)
                        .cloned()
                        .ok_or_else(|| format!("memo {k} was never stored"))?,
                );
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return Err("pickle stack underflow in TUPLE".to_owned());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(persistent_load(pid)?);
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(reduce(callable, args)?);
            }
            0x81 => {
                // NEWOBJ: `cls.__new__(cls, *args)`, recorded, not run.
                pop(&mut stack)?;
                match pop(&mut stack)? {
                    Value::Global(module, name) => stack.push(Value::Opaque(format!("{module}.{name}"))),
                    other => return Err(format!("NEWOBJ on {other:?}")),
                }
            }
            b'b' => {
                // BUILD: the state of an OrderedDict (`_metadata`) is not needed.
                pop(&mut stack)?;
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack)?
                };
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".to_owned());
                }
                let Some(Value::Dict(d)) = stack.last_mut() else {
                    return Err("SETITEMS target is not a dict".to_owned());
                };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack)?
                };
                let Some(Value::List(l)) = stack.last_mut() else {
                    return Err("APPENDS target is not a list".to_owned());
                };
                l.extend(items);
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    r.pos - 1
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_small_state_dict() {
        // OrderedDict([("w", tensor of 2 floats)]) as protocol 2, hand assembled.
        let mut p: Vec<u8> = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w");
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage");
        p.extend(
            b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x02\x85K\x01\x85\x89",
        );
        p.extend(b"ccollections\nOrderedDict\n)RtRu.");
        let v = unpickle(&p).unwrap();
        let Value::Dict(items) = v else {
            panic!("not a dict: {v:?}")
        };
        assert_eq!(items.len(), 1);
        let (Value::Str(k), Value::Tensor(t)) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(k, "w");
        assert_eq!(t.size, vec![2]);
        assert_eq!(t.storage.key, "0");
        assert_eq!(t.storage.kind, Kind::Float);
    }

    fn small_state_dict() -> Vec<u8> {
        let mut p: Vec<u8> = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w");
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage");
        p.extend(
            b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x02\x85K\x01\x85\x89",
        );
        p.extend(b"ccollections\nOrderedDict\n)RtRu.");
        p
    }

    #[test]
    fn every_truncation_is_an_error() {
        let p = small_state_dict();
        for n in 0..p.len() {
            assert!(unpickle(&p[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = unpickle(&bytes);
        }

        #[test]
        fn corrupted_state_dicts_never_panic(at in 0usize..160, byte in proptest::num::u8::ANY) {
            let mut p = small_state_dict();
            let i = at % p.len();
            p[i] = byte;
            let _ = unpickle(&p);
        }
    }

    #[test]
    fn records_unknown_globals_without_calling_them_and_rejects_truncation() {
        assert_eq!(
            unpickle(b"\x80\x02cos\nsystem\n)R.").unwrap(),
            Value::Opaque("os.system".into())
        );
        assert_eq!(
            unpickle(b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x85\x81.").unwrap(),
            Value::Opaque("numpy.dtype".into())
        );
        assert!(unpickle(b"\x80\x02X\x10\x00\x00\x00ab")
            .unwrap_err()
            .contains("truncated"));
        assert!(unpickle(b"").unwrap_err().contains("truncated"));
    }
}
