//! Reading dataset JSON with errors that name the file and the item.

use std::path::Path;

use serde_json::Value;

use crate::error::{EvalError, Result};

/// Reads and parses a JSON file.
///
/// # Errors
/// [`EvalError::Io`] when it cannot be read, [`EvalError::Dataset`] naming the
/// file, line and column when it is not JSON.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io("read", path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        EvalError::dataset(
            path.display().to_string(),
            format!("line {} column {}", e.line(), e.column()),
            format!("not valid JSON ({})", e.classify_str()),
        )
    })
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of file",
        }
    }
}

/// A JSON object being read, with the file and item it comes from.
#[derive(Clone, Copy)]
pub struct Obj<'a> {
    /// The value (an object, or the error says so).
    pub value: &'a Value,
    /// The file.
    pub file: &'a str,
    /// The item, e.g. `annotations[3] (id 17)`.
    pub item: &'a str,
}

impl<'a> Obj<'a> {
    /// Wraps `value`; an error if it is not an object.
    pub fn new(value: &'a Value, file: &'a str, item: &'a str) -> Result<Self> {
        if !value.is_object() {
            return Err(EvalError::dataset(file, item, "is not a JSON object"));
        }
        Ok(Self { value, file, item })
    }

    /// An error about this item.
    pub fn err(&self, message: impl Into<String>) -> EvalError {
        EvalError::dataset(self.file, self.item, message)
    }

    /// The value under `key`, an error naming the key when it is missing.
    pub fn get(&self, key: &str) -> Result<&'a Value> {
        match self.value.get(key) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(self.err(format!("missing key {key:?}"))),
        }
    }

    /// The value under `key`, `None` when absent or null.
    pub fn opt(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// A non-negative integer under `key`.
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| self.err(format!("{key:?} must be a non-negative integer")))
    }

    /// A non-negative integer under `key` that fits 32 bits.
    pub fn u32(&self, key: &str) -> Result<u32> {
        u32::try_from(self.u64(key)?).map_err(|_| self.err(format!("{key:?} is too large")))
    }

    /// A number under `key`.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.get(key)?
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| self.err(format!("{key:?} must be a number")))
    }

    /// A string under `key`.
    pub fn str(&self, key: &str) -> Result<&'a str> {
        self.get(key)?
            .as_str()
            .ok_or_else(|| self.err(format!("{key:?} must be a string")))
    }

    /// A list under `key`.
    pub fn array(&self, key: &str) -> Result<&'a [Value]> {
        self.get(key)?
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| self.err(format!("{key:?} must be a list")))
    }

    /// Four numbers `[x, y, w, h]` under `key`, with non-negative sizes.
    pub fn bbox(&self, key: &str) -> Result<[f64; 4]> {
        let v = self.array(key)?;
        let nums: Vec<f64> = v
            .iter()
            .filter_map(Value::as_f64)
            .filter(|x| x.is_finite())
            .collect();
        if v.len() != 4 || nums.len() != 4 || nums[2] < 0.0 || nums[3] < 0.0 {
            return Err(self.err(format!("{key:?} must be [x, y, w, h] with w, h >= 0")));
        }
        Ok([nums[0], nums[1], nums[2], nums[3]])
    }
}

/// A top-level list of a JSON document (`images`, `annotations`…).
///
/// # Errors
/// [`EvalError::Dataset`] naming the file when the key is missing or not a list.
pub fn top_list<'a>(doc: &'a Value, key: &str, file: &str) -> Result<&'a [Value]> {
    match doc.get(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(EvalError::dataset(file, "", format!("{key:?} must be a list"))),
        None => Err(EvalError::dataset(file, "", format!("missing key {key:?}"))),
    }
}
