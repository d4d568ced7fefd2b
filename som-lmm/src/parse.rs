//! Reading mark references out of a model's answer.
//!
//! Models cite marks in many shapes: `[3]`, `[1, 2]`, `[1][2]`, `[3-5]`,
//! `(c)`, `mark 3`, `marks 3 and 5`, `click [12]`, `#4`, a bare `3-5` as the
//! whole answer, or JSON (`{"marks": [3]}`, fenced or bare). [`parse_marks`]
//! finds them all, resolves each label against the marks that exist on the
//! image, and reports the labels that do not exist as [`UnknownMark`]s
//! instead of dropping them. Nothing here panics, whatever the answer.
//!
//! `[1,2]` is two marks, 1 and 2 (the released SoM code reads it as 12).

use std::fmt;
use std::ops::Range;

use som_core::{LabelScheme, MarkRef, MarkedImage};

/// The largest range a model may cite (`[1-1000]`); wider ranges are
/// reported whole as an unknown label rather than expanded.
pub const MAX_RANGE: u64 = 1000;

/// The most labels read from one answer (later ones are ignored), so that
/// no answer, however long, costs more than linear time and bounded memory.
pub const MAX_LABELS: usize = 10_000;

/// The JSON keys whose values are read as mark labels in structured answers.
pub const JSON_MARK_KEYS: [&str; 7] = ["marks", "mark", "labels", "label", "ids", "id", "click"];

/// A label as written in the answer, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelToken {
    /// The label, normalised: digits without leading zeros, letters lowercase.
    pub label: String,
    /// Byte range in the answer of the text that produced it.
    pub span: Range<usize>,
}

/// A label the answer cites that names no mark on the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMark {
    /// The label as cited (normalised), e.g. `"7"` or `"1-5000"`.
    pub label: String,
    /// Byte range in the answer where it was cited.
    pub span: Range<usize>,
}

/// The labels an answer cites that name no mark, as an error value.
///
/// ```
/// use som_lmm::{UnknownMark, UnknownMarks};
/// let e = UnknownMarks(vec![UnknownMark { label: "7".into(), span: 1..2 }]);
/// assert_eq!(e.to_string(), "the answer cites marks that do not exist: 7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMarks(pub Vec<UnknownMark>);

impl fmt::Display for UnknownMarks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the answer cites marks that do not exist: ")?;
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&u.label)?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownMarks {}

/// The marks an answer cites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMarks {
    /// Cited marks that exist, in order of first mention, without repeats.
    pub marks: Vec<MarkRef>,
    /// Cited labels that name no mark, in order of first mention, without repeats.
    pub unknown: Vec<UnknownMark>,
}

impl ParsedMarks {
    /// The marks, or an error listing the labels that do not exist.
    ///
    /// # Errors
    /// [`UnknownMarks`] when the answer cites any label that names no mark.
    pub fn into_result(self) -> Result<Vec<MarkRef>, UnknownMarks> {
        if self.unknown.is_empty() {
            Ok(self.marks)
        } else {
            Err(UnknownMarks(self.unknown))
        }
    }

    /// The unknown labels as plain strings.
    pub fn unknown_labels(&self) -> Vec<String> {
        self.unknown.iter().map(|u| u.label.clone()).collect()
    }
}

/// What labels look like on an image, so prose is not mistaken for marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelKinds {
    /// Whether some mark text is a number. Only a parenthesised label
    /// (`(3)`) needs it: in brackets, after a keyword, as a whole answer or in
    /// JSON a number is always read, so a number cited on a lettered image is
    /// reported as unknown rather than dropped.
    pub numbers: bool,
    /// The length of the longest letter mark text (0 when no mark is lettered).
    pub max_letters: usize,
}

impl LabelKinds {
    /// The kinds of label the marks of `marked` use.
    pub fn of(marked: &MarkedImage) -> Self {
        let mut kinds = LabelKinds::default();
        for m in marked.marks() {
            if !m.text.is_empty() && m.text.bytes().all(|b| b.is_ascii_digit()) {
                kinds.numbers = true;
            } else if !m.text.is_empty() && m.text.bytes().all(|b| b.is_ascii_alphabetic()) {
                kinds.max_letters = kinds.max_letters.max(m.text.len());
            }
        }
        kinds
    }

    /// What is read inside brackets: letter runs up to the longest mark text,
    /// and at least one letter (`[a]` is cited as a label even on a numbered
    /// image, and then reported as unknown).
    fn in_brackets(self) -> Self {
        LabelKinds {
            max_letters: self.max_letters.max(1),
            ..self
        }
    }
}

/// Finds the marks an answer cites and resolves them against `marked`.
///
/// # Example
/// ```
/// use image::RgbImage;
/// use som_core::{BBox, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};
/// use som_lmm::parse_marks;
/// let size = ImageSize::new(64, 64);
/// let regions = (0..4).map(|i| Region::from_box(i, BBox::new(i as u32 * 8, 0, 8, 8))).collect();
/// let seg = Segmentation::new(size, regions)?;
/// let marks = (0..4).map(|i| Mark::new(i + 1, (i + 1).to_string(), Point::new(i * 8, 0), i as usize, BBox::new(0, 0, 1, 1))).collect();
/// let marked = MarkedImage::new(RgbImage::new(64, 64), marks, seg)?;
///
/// let parsed = parse_marks("The cups are [1,2]; the lid is mark 4, not [9].", &marked);
/// let ids: Vec<u32> = parsed.marks.iter().map(|m| m.id).collect();
/// assert_eq!(ids, [1, 2, 4]);
/// assert_eq!(parsed.unknown_labels(), ["9"]);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn parse_marks(answer: &str, marked: &MarkedImage) -> ParsedMarks {
    let tokens = extract_labels(answer, LabelKinds::of(marked));
    resolve(&tokens, marked)
}

/// Resolves label tokens against the marks of `marked` (by printed text, so
/// 0-based and 1-based numbering and letters all work as drawn).
pub fn resolve(tokens: &[LabelToken], marked: &MarkedImage) -> ParsedMarks {
    let mut out = ParsedMarks::default();
    let mut seen_marks = std::collections::BTreeSet::new();
    let mut seen_unknown = std::collections::BTreeSet::new();
    for t in tokens {
        match marked.mark_by_text(&t.label) {
            Some(m) => {
                if seen_marks.insert(m.id) {
                    out.marks.push(MarkRef {
                        id: m.id,
                        text: m.text.clone(),
                        region: m.region,
                    });
                }
            }
            None => {
                if seen_unknown.insert(t.label.as_str()) {
                    out.unknown.push(UnknownMark {
                        label: t.label.clone(),
                        span: t.span.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Finds the labels an answer cites, in order, without resolving them.
///
/// Structured JSON (a [`JSON_MARK_KEYS`] key, fenced or bare) wins when
/// present; otherwise a whole answer that is only a label list (`"3"`,
/// `"3-5"`, `"1, 2 and 4"`) is read as one; otherwise the text is scanned for
/// brackets, `#N`, parenthesised labels and keyword phrases (`mark 3`,
/// `marks 3 and 5`, `click 12`).
///
/// ```
/// use som_lmm::{extract_labels, LabelKinds};
/// let kinds = LabelKinds { numbers: true, max_letters: 0 };
/// let labels: Vec<String> = extract_labels("[1][2] and [4-6]", kinds).into_iter().map(|t| t.label).collect();
/// assert_eq!(labels, ["1", "2", "4", "5", "6"]);
/// ```
pub fn extract_labels(answer: &str, kinds: LabelKinds) -> Vec<LabelToken> {
    let mut tokens = json_labels(answer, kinds)
        .or_else(|| whole_answer_list(answer, kinds))
        .unwrap_or_else(|| scan(answer, kinds));
    tokens.truncate(MAX_LABELS);
    tokens
}

/// One line of an answer with the marks it cites: the shape of labelling
/// answers (`[3] cup`) and phrase grounding answers (`a red cup: [3][4]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineMarks {
    /// The line's index in the answer (0-based).
    pub line: usize,
    /// The line without its bracketed citations and leading or trailing
    /// punctuation: the name (labelling) or the phrase (grounding).
    pub text: String,
    /// The marks the line cites.
    pub marks: ParsedMarks,
}

/// Splits an answer into lines and reads the marks each cites; lines that
/// cite nothing are left out.
///
/// ```
/// use image::RgbImage;
/// use som_core::{BBox, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};
/// use som_lmm::parse_lines;
/// let regions = (0..3).map(|i| Region::from_box(i, BBox::new(0, 0, 1, 1))).collect();
/// let seg = Segmentation::new(ImageSize::new(4, 4), regions)?;
/// let marks = (0..3).map(|i| Mark::new(i + 1, (i + 1).to_string(), Point::new(0, 0), i as usize, BBox::new(0, 0, 1, 1))).collect();
/// let marked = MarkedImage::new(RgbImage::new(4, 4), marks, seg)?;
///
/// let lines = parse_lines("Here you go:\n[1] cup\n[2] table\n- a saucer: [3]", &marked);
/// let pairs: Vec<(String, Vec<u32>)> = lines.into_iter().map(|l| (l.text, l.marks.marks.iter().map(|m| m.id).collect())).collect();
/// assert_eq!(pairs, [("cup".to_string(), vec![1]), ("table".into(), vec![2]), ("a saucer".into(), vec![3])]);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn parse_lines(answer: &str, marked: &MarkedImage) -> Vec<LineMarks> {
    let kinds = LabelKinds::of(marked);
    let mut out = Vec::new();
    for (index, line) in answer.lines().enumerate() {
        let tokens = scan(line, kinds);
        if tokens.is_empty() {
            continue;
        }
        let marks = resolve(&tokens, marked);
        out.push(LineMarks {
            line: index,
            text: strip_citations(line, &tokens),
            marks,
        });
    }
    out
}

/// `line` without the bracket groups (or bare labels) the tokens came from.
fn strip_citations(line: &str, tokens: &[LabelToken]) -> String {
    let mut cut: Vec<Range<usize>> = Vec::new();
    for t in tokens {
        let (mut a, mut b) = (t.span.start.min(line.len()), t.span.end.min(line.len()));
        let from = (a.saturating_sub(64)..=a)
            .find(|&k| line.is_char_boundary(k))
            .unwrap_or(a);
        if let Some(open) = line[from..a].rfind(['[', '(', '【']).map(|k| from + k) {
            if !line[open..a].contains([']', ')', '】']) {
                if let Some(close) = window(line, b, 64).find([']', ')', '】']) {
                    a = open;
                    b = b + close + line[b + close..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
        cut.push(a..b);
    }
    cut.sort_by_key(|r| r.start);
    let mut text = String::new();
    let mut pos = 0;
    for r in cut {
        if r.start > pos {
            text.push_str(&line[pos..r.start]);
        }
        pos = pos.max(r.end);
    }
    if pos < line.len() {
        text.push_str(&line[pos..]);
    }
    let junk =
        |c: char| c.is_whitespace() || matches!(c, ':' | '-' | '–' | '—' | '*' | '.' | ',' | ';' | '=' | '>');
    text.trim_matches(junk)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------- JSON

/// Labels from the first JSON object in the answer that has a mark key.
fn json_labels(answer: &str, kinds: LabelKinds) -> Option<Vec<LabelToken>> {
    for (start, end) in json_candidates(answer) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&answer[start..end]) else {
            continue;
        };
        let mut tokens = Vec::new();
        if collect_json(&value, start..end, kinds, &mut tokens, 0) {
            return Some(tokens);
        }
    }
    None
}

/// Byte ranges of `{…}` blocks (balanced, strings respected): at most 16
/// blocks, from at most 64 opening braces, so long answers stay linear.
fn json_candidates(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut tried = 0;
    while i < bytes.len() && out.len() < 16 && tried < 64 {
        if bytes[i] == b'{' {
            tried += 1;
            if let Some(end) = balanced_object_end(bytes, i) {
                out.push((i, end));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn balanced_object_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (k, &b) in bytes.iter().enumerate().skip(start) {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (b == b'}').then_some(k + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Collects labels under mark keys (searching nested objects); returns
/// whether a mark key was found.
fn collect_json(
    value: &serde_json::Value,
    span: Range<usize>,
    kinds: LabelKinds,
    out: &mut Vec<LabelToken>,
    depth: usize,
) -> bool {
    let serde_json::Value::Object(map) = value else {
        return false;
    };
    if depth > 8 {
        return false;
    }
    let mut found = false;
    for key in JSON_MARK_KEYS {
        if let Some(v) = map.get(key) {
            found = true;
            json_value_labels(v, &span, kinds, out, 0);
        }
    }
    if !found {
        for v in map.values() {
            if let serde_json::Value::Object(_) = v {
                found |= collect_json(v, span.clone(), kinds, out, depth + 1);
            }
        }
    }
    found
}

fn json_value_labels(
    v: &serde_json::Value,
    span: &Range<usize>,
    kinds: LabelKinds,
    out: &mut Vec<LabelToken>,
    depth: usize,
) {
    if depth > 8 || out.len() >= MAX_LABELS {
        return;
    }
    match v {
        serde_json::Value::Number(n) => out.push(LabelToken {
            label: normalise(&n.to_string()),
            span: span.clone(),
        }),
        serde_json::Value::String(s) => {
            let trimmed = s.trim();
            let bracketed = kinds.in_brackets();
            let wide = LabelKinds {
                max_letters: bracketed.max_letters.max(trimmed.len().min(6)),
                ..bracketed
            };
            match parse_list(trimmed, 0, wide, true) {
                Some((items, _)) => out.extend(items.into_iter().map(|t| LabelToken {
                    label: t.label,
                    span: span.clone(),
                })),
                None if !trimmed.is_empty() => out.push(LabelToken {
                    label: trimmed.to_string(),
                    span: span.clone(),
                }),
                None => {}
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                json_value_labels(item, span, kinds, out, depth + 1);
            }
        }
        serde_json::Value::Object(map) => {
            for key in JSON_MARK_KEYS {
                if let Some(inner) = map.get(key) {
                    json_value_labels(inner, span, kinds, out, depth + 1);
                }
            }
        }
        serde_json::Value::Bool(_) | serde_json::Value::Null => {}
    }
}

// ---------------------------------------------------------------- whole answer

/// The answer read as nothing but a label list (after an optional
/// `answer:` prefix, quotes, brackets and a final full stop).
fn whole_answer_list(answer: &str, kinds: LabelKinds) -> Option<Vec<LabelToken>> {
    let mut start = 0;
    let mut end = answer.len();
    let lower = answer.to_ascii_lowercase();
    let trim_set = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '*' | '.' | '!');
    let t = answer[start..end].trim_start_matches(trim_set);
    start = end - t.len();
    for prefix in ["final answer:", "answer:", "marks:", "mark:"] {
        if lower[start..].starts_with(prefix) {
            start += prefix.len();
            break;
        }
    }
    let t = answer[start..end].trim_start_matches(trim_set);
    start = end - t.len();
    let t = answer[start..end].trim_end_matches(trim_set);
    end = start + t.len();
    if start >= end {
        return None;
    }
    // Letters only count as a whole answer when the image is lettered
    // (`max_letters` is 0 otherwise).
    let (items, used) = parse_list(&answer[start..end], start, kinds, true)?;
    (used == end - start && !items.is_empty()).then_some(items)
}

// ---------------------------------------------------------------- scanning

/// Words after which a label list is read (`mark 3`, `click 12`,
/// `labeled as 5`). Words that often precede plain counts in prose
/// ("select 3 items") are left out.
const KEYWORDS: [&str; 16] = [
    "marks", "mark", "labels", "label", "regions", "region", "numbers", "number", "click", "tap", "ids",
    "marked", "labeled", "labelled", "tagged", "numbered",
];

/// Keywords that take connector words before the label (`labeled with the number 5`).
const VERB_KEYWORDS: [&str; 5] = ["marked", "labeled", "labelled", "tagged", "numbered"];

/// Words skipped between a verb keyword and its label.
const CONNECTORS: [&str; 13] = [
    "as", "with", "by", "the", "number", "numbers", "mark", "marks", "label", "labels", "letter", "letters",
    "id",
];

/// Skips spaces, `:` and connector words from byte `j`.
fn skip_connectors(s: &str, mut j: usize) -> usize {
    for _ in 0..6 {
        j = skip_ws(s, j);
        let rest = &s[j..];
        match CONNECTORS.iter().find(|w| {
            starts_ci(rest, w)
                && !rest
                    .as_bytes()
                    .get(w.len())
                    .is_some_and(|b| b.is_ascii_alphanumeric())
        }) {
            Some(w) => j += w.len(),
            None => break,
        }
    }
    j + s[j..]
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b':'))
        .count()
}

/// `a` or `an` used as an article at byte `j`: followed by a space and a word
/// other than `and` / `or` ("labeled as a cup").
fn is_article(s: &str, j: usize) -> bool {
    let lower = window(s, j, 16).to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("an ").or_else(|| lower.strip_prefix("a ")) else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with(|c: char| c.is_ascii_alphabetic())
        && !rest.starts_with("and ")
        && !rest.starts_with("or ")
}

fn scan(answer: &str, kinds: LabelKinds) -> Vec<LabelToken> {
    let bytes = answer.as_bytes();
    let lower = answer.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_LABELS {
        let rest = &answer[i..];
        // Brackets: [..], 【..】, ［..］.
        if let Some((open_len, close)) = bracket_at(rest) {
            if let Some(rel) = window(rest, open_len, 202).find(close) {
                let inner_start = i + open_len;
                let inner = &answer[inner_start..inner_start + rel];
                if inner.len() <= 200 {
                    let (skip, body) = strip_list_prefix(inner);
                    let listed = parse_list(body, inner_start + skip, kinds.in_brackets(), true);
                    if let Some((items, used)) = listed {
                        if used == body.len() && !items.is_empty() {
                            out.extend(items);
                            i = inner_start + rel + close.len();
                            continue;
                        }
                    }
                }
            }
        }
        // Parenthesised single label: (3), (c) — only of a kind the image uses.
        if bytes[i] == b'(' {
            if let Some(rel) = window(rest, 1, 16).find(')') {
                let inner = &rest[1..1 + rel];
                if let Some(tok) = single_label(inner, i + 1, kinds) {
                    out.push(tok);
                    i += rel + 2;
                    continue;
                }
            }
        }
        // #12
        if bytes[i] == b'#' && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
            let after = i + 1 + digits;
            if digits > 0 && (after >= bytes.len() || !bytes[after].is_ascii_alphanumeric()) {
                out.push(LabelToken {
                    label: normalise(&answer[i + 1..after]),
                    span: i..after,
                });
                i = after;
                continue;
            }
        }
        // Keyword phrases: mark 3, marks 3 and 5, click 12, region #4.
        if bytes[i].is_ascii_alphabetic() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            if let Some(kw) = KEYWORDS.iter().find(|k| {
                lower[i..].starts_with(*k)
                    && !bytes.get(i + k.len()).is_some_and(|b| b.is_ascii_alphanumeric())
            }) {
                let mut j = i + kw.len();
                // Optional connector: spaces, ':', '#', '(', "on".
                j += answer[j..]
                    .bytes()
                    .take_while(|b| matches!(b, b' ' | b'\t' | b':' | b'('))
                    .count();
                if lower[j..].starts_with("on ") {
                    j += 3;
                    j += answer[j..].bytes().take_while(|b| *b == b' ').count();
                }
                if VERB_KEYWORDS.contains(kw) {
                    j = skip_connectors(answer, j);
                    if is_article(answer, j) {
                        i = j;
                        continue;
                    }
                }
                if let Some((items, used)) = parse_list(&answer[j..], j, kinds, false) {
                    if !items.is_empty() {
                        out.extend(items);
                        i = j + used;
                        continue;
                    }
                }
                i += kw.len();
                continue;
            }
            // Skip the rest of the word.
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

fn bracket_at(s: &str) -> Option<(usize, &'static str)> {
    if s.starts_with('[') {
        Some((1, "]"))
    } else if s.starts_with('【') {
        Some(('【'.len_utf8(), "】"))
    } else if s.starts_with('［') {
        Some(('［'.len_utf8(), "］"))
    } else {
        None
    }
}

/// Strips a leading word such as `mark` or `marks:` inside brackets; returns
/// the bytes skipped and the rest.
fn strip_list_prefix(inner: &str) -> (usize, &str) {
    let lower = inner.to_ascii_lowercase();
    let lead = inner.len() - inner.trim_start().len();
    for kw in KEYWORDS {
        if lower[lead..].starts_with(kw) {
            let after = lead + kw.len();
            if inner[after..].starts_with([' ', ':', '#']) {
                let skip = after
                    + inner[after..]
                        .bytes()
                        .take_while(|b| matches!(b, b' ' | b':'))
                        .count();
                return (skip, &inner[skip..]);
            }
        }
    }
    (0, inner)
}

fn single_label(inner: &str, offset: usize, kinds: LabelKinds) -> Option<LabelToken> {
    let t = inner.trim();
    if t.is_empty() || t.len() > 9 {
        return None;
    }
    let lead = inner.len() - inner.trim_start().len();
    let ok = if t.bytes().all(|b| b.is_ascii_digit()) {
        kinds.numbers
    } else {
        kinds.max_letters > 0 && t.len() <= kinds.max_letters && t.bytes().all(|b| b.is_ascii_alphabetic())
    };
    ok.then(|| LabelToken {
        label: normalise(t),
        span: offset + lead..offset + lead + t.len(),
    })
}

// ---------------------------------------------------------------- label lists

/// Parses `item (sep item)*` from the start of `s`, where an item is a
/// number, a letter label (at most `kinds.max_letters` letters), `#N`, or a
/// range `a-b` / `a–b` / `a to b`. With `whole`, whitespace alone also
/// separates items. Returns the tokens (spans offset by `base`) and the bytes
/// consumed (ending after the last item).
fn parse_list(s: &str, base: usize, kinds: LabelKinds, whole: bool) -> Option<(Vec<LabelToken>, usize)> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    let mut consumed = 0;
    loop {
        if tokens.len() >= MAX_LABELS {
            break;
        }
        let mut p = pos;
        if !tokens.is_empty() {
            let sep_start = p;
            p = skip_ws(s, p);
            let had_ws = p > sep_start;
            let mut sep = false;
            if let Some(c) = s[p..].chars().next() {
                if matches!(c, ',' | ';' | '/' | '&' | '+' | '、' | '，') {
                    p += c.len_utf8();
                    sep = true;
                    p = skip_ws(s, p);
                    // ", and 5"
                    if let Some(w) = ["and ", "or "].iter().find(|w| starts_ci(&s[p..], w)) {
                        p = skip_ws(s, p + w.len());
                    }
                }
            }
            if !sep {
                if let Some(w) = ["and ", "or "].iter().find(|w| starts_ci(&s[p..], w)) {
                    if had_ws {
                        p = skip_ws(s, p + w.len());
                        sep = true;
                    }
                }
            }
            if !sep && (!whole || !had_ws) {
                break;
            }
        }
        p = skip_ws(s, p);
        match parse_item(s, p, base, kinds) {
            Some((mut items, end)) => {
                tokens.append(&mut items);
                pos = end;
                consumed = end;
            }
            None => {
                if tokens.is_empty() {
                    return None;
                }
                break;
            }
        }
    }
    Some((tokens, consumed))
}

/// ASCII case-insensitive `starts_with`, without allocating.
fn starts_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `s[from..]` cut to at most `max` bytes (on a character boundary).
fn window(s: &str, from: usize, max: usize) -> &str {
    let mut end = (from + max).min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[from..end]
}

fn skip_ws(s: &str, p: usize) -> usize {
    p + s[p..].len() - s[p..].trim_start().len()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Letters,
}

/// One label at byte `p` of `s`: returns its text and end.
fn parse_atom(s: &str, p: usize, kinds: LabelKinds) -> Option<(Kind, &str, usize)> {
    let b = s.as_bytes();
    let mut start = p;
    if b.get(start) == Some(&b'#') {
        start += 1;
    }
    let digits = b[start.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits > 0 {
        let end = start + digits;
        if b.get(end).is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        return Some((Kind::Number, &s[start..end], end));
    }
    if start > p {
        return None;
    }
    let letters = b[start.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if letters == 0 || letters > kinds.max_letters {
        return None;
    }
    let end = start + letters;
    if b.get(end).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
        return None;
    }
    let word = s[start..end].to_ascii_lowercase();
    if matches!(word.as_str(), "and" | "or" | "to") {
        return None;
    }
    Some((Kind::Letters, &s[start..end], end))
}

/// An item: a label or a range of labels.
fn parse_item(s: &str, p: usize, base: usize, kinds: LabelKinds) -> Option<(Vec<LabelToken>, usize)> {
    let (kind, first, end) = parse_atom(s, p, kinds)?;
    // Range?
    let q = skip_ws(s, end);
    let dash = ["-", "–", "—", "..", "to "]
        .iter()
        .find(|d| starts_ci(&s[q..], d));
    if let Some(d) = dash {
        let r = skip_ws(s, q + d.len());
        if let Some((kind2, second, end2)) = parse_atom(s, r, kinds) {
            if kind2 == kind {
                return Some((expand_range(kind, first, second, base + p..base + end2), end2));
            }
        }
    }
    Some((
        vec![LabelToken {
            label: normalise(first),
            span: base + p..base + end,
        }],
        end,
    ))
}

fn expand_range(kind: Kind, a: &str, b: &str, span: Range<usize>) -> Vec<LabelToken> {
    let whole = || {
        vec![LabelToken {
            label: format!("{}-{}", normalise(a), normalise(b)),
            span: span.clone(),
        }]
    };
    let (lo, hi) = match kind {
        Kind::Number => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => (x, y),
            _ => return whole(),
        },
        Kind::Letters => match (letter_number(a), letter_number(b)) {
            (Some(x), Some(y)) => (x, y),
            _ => return whole(),
        },
    };
    if hi < lo || hi - lo >= MAX_RANGE {
        return whole();
    }
    (lo..=hi)
        .map(|n| LabelToken {
            label: match kind {
                Kind::Number => n.to_string(),
                Kind::Letters => LabelScheme::Letter.text(n as usize - 1),
            },
            span: span.clone(),
        })
        .collect()
}

/// The 1-based number of a letter label (`a` = 1, `aa` = 27), as `som_core` numbers them.
fn letter_number(s: &str) -> Option<u64> {
    LabelScheme::Letter.rank_of(s).map(|r| r as u64 + 1)
}

/// Digits without leading zeros; letters lowercase; anything else as is.
fn normalise(label: &str) -> String {
    let t = label.trim().trim_start_matches('#');
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let z = t.trim_start_matches('0');
        if z.is_empty() {
            "0".to_string()
        } else {
            z.to_string()
        }
    } else if t.contains('.')
        && t.parse::<f64>()
            .is_ok_and(|f| f.fract() == 0.0 && (0.0..1e9).contains(&f))
    {
        // JSON numbers such as 3.0.
        format!("{}", t.parse::<f64>().unwrap_or(0.0) as u64)
    } else {
        t.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::marked;

    const NUM: LabelKinds = LabelKinds {
        numbers: true,
        max_letters: 0,
    };
    const LET: LabelKinds = LabelKinds {
        numbers: false,
        max_letters: 2,
    };

    fn labels(s: &str, kinds: LabelKinds) -> Vec<String> {
        extract_labels(s, kinds).into_iter().map(|t| t.label).collect()
    }

    fn check(s: &str, kinds: LabelKinds, expect: &[&str]) {
        assert_eq!(labels(s, kinds), expect, "answer: {s:?}");
    }

    #[test]
    fn brackets() {
        check("The cup is [3].", NUM, &["3"]);
        check("[1, 2]", NUM, &["1", "2"]);
        check("[1,2]", NUM, &["1", "2"]);
        check("see [1][2]", NUM, &["1", "2"]);
        check("objects [3-5] and [7]", NUM, &["3", "4", "5", "7"]);
        check("objects [3 – 5]", NUM, &["3", "4", "5"]);
        check("[1 and 2]", NUM, &["1", "2"]);
        check("[1 2 3]", NUM, &["1", "2", "3"]);
        check("[mark 4]", NUM, &["4"]);
        check("【6】", NUM, &["6"]);
        check("[the cup]", NUM, &[]);
        check("[03]", NUM, &["3"]);
        check("[a]", NUM, &["a"]);
        check("x [12", NUM, &[]);
    }

    #[test]
    fn letters_and_parens() {
        check("It is (c).", LET, &["c"]);
        check("It is (c).", NUM, &[]);
        check("see (3)", NUM, &["3"]);
        check("[a-c]", LET, &["a", "b", "c"]);
        check("[B]", LET, &["b"]);
        check("mark aa", LET, &["aa"]);
    }

    #[test]
    fn keywords() {
        check("mark 3", NUM, &["3"]);
        check("Marks 3 and 5 are cups", NUM, &["3", "5"]);
        check("marks 3, 4, and 5.", NUM, &["3", "4", "5"]);
        check("click [12]", NUM, &["12"]);
        check("click(12)", NUM, &["12"]);
        check("click on 12", NUM, &["12"]);
        check("region #4", NUM, &["4"]);
        check("the remarks 3 are", NUM, &[]);
        check("marks and 3", NUM, &[]);
        check("object #7 is red", NUM, &["7"]);
        check("marker 3", NUM, &[]);
        check("select 3 items", NUM, &[]);
        check("The man is labeled with the number 5.", NUM, &["5"]);
        check("It is marked as 12, next to the box", NUM, &["12"]);
        check("the region labelled 3 and 4", NUM, &["3", "4"]);
        check("marked as a cup", LET, &[]);
        check("marked as a.", LET, &["a"]);
        check("labeled a and b", LET, &["a", "b"]);
        check("tagged as c", LET, &["c"]);
        check("marked with the letter d", LET, &["d"]);
        check("numbered differently", NUM, &[]);
    }

    #[test]
    fn whole_answers() {
        check("3", NUM, &["3"]);
        check(" 3-5 ", NUM, &["3", "4", "5"]);
        check("3 and 5.", NUM, &["3", "5"]);
        check("Answer: 1, 2", NUM, &["1", "2"]);
        check("c", LET, &["c"]);
        check("I see 3 cups", NUM, &[]);
    }

    #[test]
    fn json() {
        check(r#"{"marks":[3]}"#, NUM, &["3"]);
        check(
            "```json\n{\"marks\": [1, \"2\", \"4-5\"]}\n```",
            NUM,
            &["1", "2", "4", "5"],
        );
        check(r#"Sure: {"answer": "the cup [9]", "marks": ["c"]}"#, LET, &["c"]);
        check(r#"{"result": {"click": 12}}"#, NUM, &["12"]);
        check(r#"{"marks": []}"#, NUM, &[]);
        check(r#"{"foo": 1} then [2]"#, NUM, &["2"]);
        check(r#"{"marks": [3.0]}"#, NUM, &["3"]);
        // A brace inside a JSON string does not end the object (else the prose is read).
        check(r#"{"note": "unlike mark 7 }", "marks": [5]}"#, NUM, &["5"]);
        // A string is read as a label list with letter labels as long as it is wide…
        check(r#"{"marks": "ab, cd"}"#, NUM, &["ab", "cd"]);
        // …else kept whole when it is not empty.
        check(r#"{"marks": ["x1", "", " "]}"#, NUM, &["x1"]);
    }

    #[test]
    fn ranges_are_bounded() {
        check("[1-5000]", NUM, &["1-5000"]);
        check("[5-3]", NUM, &["5-3"]);
        check("[1-99999999999999999999999]", NUM, &["1-99999999999999999999999"]);
    }

    #[test]
    fn spans_point_at_the_label() {
        let s = "cup: [12], lid: mark 7";
        let toks = extract_labels(s, NUM);
        assert_eq!(&s[toks[0].span.clone()], "12");
        assert_eq!(&s[toks[1].span.clone()], "7");
        let s = "cup (12), lid #4";
        let toks = extract_labels(s, NUM);
        assert_eq!(&s[toks[0].span.clone()], "12");
        assert_eq!(&s[toks[1].span.clone()], "#4");
        let s = "cup (   5)";
        let toks = extract_labels(s, NUM);
        assert_eq!(&s[toks[0].span.clone()], "5");
    }

    #[test]
    fn citations_are_stripped_from_lines() {
        let toks = |s: &str| scan(s, NUM);
        for (line, want) in [
            ("[1] cup", "cup"),
            ("- a red cup: [3][4]", "a red cup"),
            ("**[2]** table.", "table"),
            ("saucer (mark 5)", "saucer"),
            ("the lid is mark 6", "the lid is mark"),
            ("#7 => lid", "lid"),
            // The look-ahead stops before a character it would cut (here the closing
            // bracket itself, 62..65 bytes after the label).
            (
                "see 【note mark 5 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx】",
                "see 【note mark xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx】",
            ),
            // A bracket opened before a label but closed more than 64 bytes after it
            // is prose, not the citation.
            (
                "see [note mark 5 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]",
                "see [note mark xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]",
            ),
            // A label's span starts at its '#', after a keyword too.
            ("the lid is mark #6", "the lid is mark"),
        ] {
            assert_eq!(strip_citations(line, &toks(line)), want, "{line:?}");
        }
    }

    #[test]
    fn non_ascii_does_not_panic() {
        for s in [
            "İ[1]",
            "ß mark 3",
            "[é]",
            "（3）",
            "【",
            "#",
            "mark",
            "[",
            "{",
            "{\"marks\":",
            "ǅ-3",
        ] {
            let _ = labels(s, NUM);
            let _ = labels(s, LET);
        }
    }

    #[test]
    fn label_kinds_come_from_the_mark_texts() {
        let kinds = |texts: &[&str]| LabelKinds::of(&marked(texts));
        assert_eq!(
            kinds(&["1", "12"]),
            LabelKinds {
                numbers: true,
                max_letters: 0
            }
        );
        // Empty, mixed and non-ASCII texts are neither numbers nor letters (a mixed
        // text longer than every letter mark must not raise `max_letters`).
        assert_eq!(
            kinds(&["ab", "c", "", "x12", "é"]),
            LabelKinds {
                numbers: false,
                max_letters: 2
            }
        );
        assert_eq!(
            kinds(&["", "7"]),
            LabelKinds {
                numbers: true,
                max_letters: 0
            }
        );
        assert_eq!(kinds(&[]), LabelKinds::default());
    }

    #[test]
    fn unknown_marks_are_listed_once_each_where_first_cited() {
        let answer = "[7], [1] and [9], again [7]";
        let parsed = parse_marks(answer, &marked(&["1", "2"]));
        assert_eq!(parsed.marks.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
        let e = parsed.into_result().unwrap_err();
        assert_eq!(e.to_string(), "the answer cites marks that do not exist: 7, 9");
        let spans: Vec<&str> = e.0.iter().map(|u| &answer[u.span.clone()]).collect();
        assert_eq!(spans, ["7", "9"]);
        assert_eq!(e.0[0].span, 1..2);
        let ok = parse_marks("[2] then [1]", &marked(&["1", "2"]))
            .into_result()
            .unwrap();
        assert_eq!(
            ok.iter().map(|m| (m.id, m.region)).collect::<Vec<_>>(),
            [(2, 1), (1, 0)]
        );
    }

    #[test]
    fn lines_are_read_one_by_one() {
        let m = marked(&["1", "2", "3"]);
        let answer = "Here you go:\n[1] cup\n\n[2][9] table\n- a saucer: [3]\nnothing here";
        let got: Vec<(usize, String, Vec<u32>, Vec<String>)> = parse_lines(answer, &m)
            .into_iter()
            .map(|l| {
                let ids = l.marks.marks.iter().map(|r| r.id).collect();
                (l.line, l.text, ids, l.marks.unknown_labels())
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "cup".to_string(), vec![1], vec![]),
                (3, "table".to_string(), vec![2], vec!["9".to_string()]),
                (4, "a saucer".to_string(), vec![3], vec![]),
            ]
        );
    }

    #[test]
    fn range_limits_are_exact() {
        // A range of up to MAX_RANGE labels is expanded; one more is reported whole.
        let labels_of = |s: &str| labels(s, NUM);
        let thousand = labels_of("[1-1000]");
        assert_eq!(thousand.len(), 1000);
        assert_eq!((thousand[0].as_str(), thousand[999].as_str()), ("1", "1000"));
        assert_eq!(labels_of("[0-1000]"), ["0-1000"]);
        assert_eq!(labels_of("[5-5]"), ["5"]);
        assert_eq!(labels_of("[6-5]"), ["6-5"]);
        assert_eq!(labels("[y-ab]", LET), ["y", "z", "aa", "ab"]);
        assert_eq!(labels("[a-1]", LET), Vec::<String>::new());
    }

    #[test]
    fn json_search_limits_are_exact() {
        // `{"marks": 3}` is only visible as JSON (the scan does not read it).
        let tail = r#"{"marks": 3}"#;
        assert_eq!(labels(tail, NUM), ["3"]);
        // At most 16 balanced blocks are tried…
        let blocks = |n: usize| format!("{}{tail}", r#"{"a": 1} "#.repeat(n));
        assert_eq!(labels(&blocks(15), NUM), ["3"]);
        assert!(labels(&blocks(16), NUM).is_empty());
        // …from at most 64 opening braces.
        let strays = |n: usize| format!("{}{tail}", "{ ".repeat(n));
        assert_eq!(labels(&strays(63), NUM), ["3"]);
        assert!(labels(&strays(64), NUM).is_empty());
        // Mark keys are looked for up to 8 objects deep, values up to 8 lists deep.
        let nested = |n: usize| format!("{}{tail}{}", r#"{"a": "#.repeat(n), "}".repeat(n));
        assert_eq!(labels(&nested(8), NUM), ["3"]);
        assert!(labels(&nested(9), NUM).is_empty());
        let lists = |n: usize| format!(r#"{{"marks": {}3{}}}"#, "[".repeat(n), "]".repeat(n));
        assert_eq!(labels(&lists(8), NUM), ["3"]);
        assert!(labels(&lists(9), NUM).is_empty());
        // Objects under mark keys count as levels too.
        let objects = |n: usize| format!("{}3{}", r#"{"marks": "#.repeat(n), "}".repeat(n));
        assert_eq!(labels(&objects(9), NUM), ["3"]);
        assert!(labels(&objects(10), NUM).is_empty());
    }

    #[test]
    fn a_line_gives_at_most_max_labels() {
        // parse_lines does not truncate what scan returns, so scan must stop itself.
        let line = "[1]".repeat(MAX_LABELS + 5);
        assert_eq!(scan(&line, NUM).len(), MAX_LABELS);
    }

    #[test]
    fn connectors_may_end_in_a_colon_and_citations_follow_each_other() {
        check("the cup is labeled as: 5", NUM, &["5"]);
        check("the cup is labeled with the number:\t7", NUM, &["7"]);
        // A parenthesised label is skipped exactly: the next citation is read.
        check("(123)[4]", NUM, &["123", "4"]);
        // Keyword phrases: spaces after "on" are skipped forwards, and reading goes on
        // right after the phrase's list.
        check("click on   5", NUM, &["5"]);
        check("mark 12 [4]", NUM, &["12", "4"]);
    }

    #[test]
    fn label_atoms_and_lists_have_exact_bounds() {
        // '#' starts a label only after a non-alphanumeric and with digits after it.
        check("item#12 and # heading and #", NUM, &[]);
        check("(#12) #3", NUM, &["12", "3"]);
        // A keyword inside brackets lets letters through as bracketed labels do.
        check("[mark: a]", NUM, &["a"]);
        // Parenthesised labels: at most 9 characters, letters only up to the longest mark.
        check("(123456789)", NUM, &["123456789"]);
        check("(1234567890)", NUM, &[]);
        check("(x1) (ab)", LET, &["ab"]);
        // After '#' only digits; a letter label ends at a letter boundary.
        check("region #4", NUM, &["4"]);
        check("mark #a", LET, &[]);
        check("mark ab_c", LET, &[]);
        // Items of a list need a separator: in brackets, at least a space.
        check("[3#4]", NUM, &[]);
        check("mark 3 5", NUM, &["3"]);
    }

    #[test]
    fn labels_are_normalised() {
        for (raw, want) in [
            ("007", "7"),
            ("000", "0"),
            ("#12", "12"),
            (" B ", "b"),
            ("3.0", "3"),
            ("3.5", "3.5"),
            ("1e3", "1e3"),
            ("2000000000.0", "2000000000.0"),
        ] {
            assert_eq!(normalise(raw), want, "{raw:?}");
        }
        assert_eq!(labels(r#"{"marks": [3.0, "04", " C "]}"#, LET), ["3", "4", "c"]);
    }

    #[test]
    fn spans_inside_prefixed_brackets_point_at_the_labels() {
        let s = "see [marks: 12, 4-5] and 【mark 7】";
        let got: Vec<(String, &str)> = extract_labels(s, NUM)
            .into_iter()
            .map(|t| (t.label, &s[t.span]))
            .collect();
        let want = [("12", "12"), ("4", "4-5"), ("5", "4-5"), ("7", "7")];
        assert_eq!(got, want.map(|(l, s)| (l.to_string(), s)));
    }
}
