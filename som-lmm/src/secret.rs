//! API keys that never print.

use std::fmt;

/// An API key. Its `Debug` output is redacted and it has no `Display`, so it
/// cannot leak through logs, configs or error messages.
///
/// ```
/// use som_lmm::ApiKey;
/// let key = ApiKey::new("sk-secret-123");
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert_eq!(key.expose(), "sk-secret-123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key in the environment variable `var`, if it is set and not blank.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(Self)
    }

    /// The key itself, for building request headers.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `<redacted>`.
    ///
    /// ```
    /// use som_lmm::ApiKey;
    /// let key = ApiKey::new("sk-abc");
    /// assert_eq!(key.scrub("bad key sk-abc"), "bad key <redacted>");
    /// ```
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            // Too short to be a real key; replacing it would mangle text.
            return text.to_string();
        }
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// `text` with `key` scrubbed out, when there is a key.
pub(crate) fn scrub(key: Option<&ApiKey>, text: &str) -> String {
    match key {
        Some(k) => k.scrub(text),
        None => text.to_string(),
    }
}
