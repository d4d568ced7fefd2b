//! Field types for reading provider responses leniently.
//!
//! Providers and the servers that imitate them disagree on details a strict
//! reader trips over (async-openai's issue tracker is a catalogue):
//! `"finish_reason": ""` or `null`, token counts as floats or strings, fields
//! of an unexpected type, `null` lists. These types read such values as
//! "absent" instead of failing the whole response; the fields a response
//! cannot do without (OpenAI's `choices`, Anthropic's `content`…) are checked
//! by each provider's reader and reported by name.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};

/// A JSON value, as far as the readers below look into it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    Other(IgnoredAny),
}

/// A string field: `Some` only for a non-empty string; `null`, `""`, numbers,
/// lists and objects read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(match Scalar::deserialize(d)? {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }))
    }
}

impl Text {
    /// The string, or `""`.
    pub fn or_empty(self) -> String {
        self.0.unwrap_or_default()
    }
}

/// A token count: a non-negative integer, a float (truncated, negatives read
/// as 0) or a string holding an integer; anything else reads as `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Count(match Scalar::deserialize(d)? {
            Scalar::Unsigned(n) => Some(n),
            Scalar::Signed(n) => Some(n.max(0) as u64),
            Scalar::Float(f) if f.is_finite() => Some(f.max(0.0) as u64),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }))
    }
}

impl Count {
    /// The count, or 0.
    pub fn or_zero(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

/// A boolean that is `true` only when the value is `true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Flag(matches!(Scalar::deserialize(d)?, Scalar::Bool(true))))
    }
}

/// For `#[serde(default, deserialize_with = "null_default")]`: `null` reads as
/// the default (an empty list), like a missing field.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// For `#[serde(default, deserialize_with = "optional")]` on fields a response
/// can do without (usage, feedback): a value of another shape reads as `None`.
pub(crate) fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe {
        text: Text,
        count: Count,
        flag: Flag,
        #[serde(deserialize_with = "null_default")]
        list: Vec<u32>,
        #[serde(deserialize_with = "optional")]
        inner: Option<Inner>,
    }

    #[derive(Deserialize)]
    struct Inner {
        n: u32,
    }

    fn probe(v: serde_json::Value) -> Probe {
        Probe::deserialize(&v).expect("lenient fields never fail")
    }

    #[test]
    fn odd_values_read_as_absent() {
        for v in [
            json!(""),
            json!(null),
            json!(3),
            json!([1]),
            json!({"a": 1}),
            json!(true),
        ] {
            assert_eq!(probe(json!({"text": v})).text, Text(None), "{v}");
        }
        assert_eq!(probe(json!({"text": "stop"})).text.or_empty(), "stop");
        let counts = [
            (json!(12), Some(12)),
            (json!(-3), Some(0)),
            (json!(7.9), Some(7)),
            (json!(" 41 "), Some(41)),
            (json!("many"), None),
            (json!(null), None),
            (json!([1]), None),
        ];
        for (v, want) in counts {
            assert_eq!(probe(json!({"count": v})).count, Count(want), "{v}");
        }
        assert!(probe(json!({"flag": true})).flag.0);
        for v in [json!(false), json!("true"), json!(1), json!(null)] {
            assert!(!probe(json!({"flag": v})).flag.0, "{v}");
        }
        assert!(probe(json!({"list": null})).list.is_empty());
        assert_eq!(probe(json!({"list": [4, 5]})).list, [4, 5]);
        assert_eq!(probe(json!({"inner": {"n": 2}})).inner.map(|i| i.n), Some(2));
        for v in [json!("x"), json!({"n": "two"}), json!(null)] {
            assert!(probe(json!({"inner": v})).inner.is_none(), "{v}");
        }
        let empty = probe(json!({}));
        assert_eq!(
            (empty.text, empty.count, empty.flag.0),
            (Text(None), Count(None), false)
        );
    }
}
