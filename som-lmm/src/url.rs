//! Request URLs: the endpoint with its query, and the query as shown in `Debug`.

use crate::secret::{scrub, ApiKey};

/// `{base}{path}?k=v&…` with keys and values percent-encoded.
pub(crate) fn endpoint(base: &str, path: &str, query: &[(String, String)]) -> String {
    let mut url = format!("{base}{path}");
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode_query(k));
        url.push('=');
        url.push_str(&encode_query(v));
    }
    url
}

/// The query with values that look secret (by their name: `key`, `token`,
/// `secret`, `sig`, `password`, `auth`) replaced by `<redacted>`, and `key`
/// scrubbed from the others.
pub(crate) fn redact_query(query: &[(String, String)], key: Option<&ApiKey>) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let secret = ["key", "token", "secret", "sig", "password", "auth"]
                .iter()
                .any(|w| lower.contains(w));
            let shown = if secret {
                "<redacted>".to_string()
            } else {
                scrub(key, v)
            };
            (k.clone(), shown)
        })
        .collect()
}

fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(encode_query("2024-10-21"), "2024-10-21");
        assert_eq!(encode_query("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        let q = [
            ("api-version".to_string(), "1".to_string()),
            ("x y".into(), "&".into()),
        ];
        assert_eq!(
            endpoint("http://h/v1", "/p", &q),
            "http://h/v1/p?api-version=1&x%20y=%26"
        );
        assert_eq!(endpoint("http://h", "/p", &[]), "http://h/p");
    }

    #[test]
    fn secret_looking_query_values_are_redacted() {
        let key = ApiKey::new("sk-abcdef");
        let q = [
            ("Api_Key".to_string(), "anything".to_string()),
            ("sig".into(), "s".into()),
            ("alt".into(), "json sk-abcdef".into()),
        ];
        let shown = redact_query(&q, Some(&key));
        assert_eq!(shown[0].1, "<redacted>");
        assert_eq!(shown[1].1, "<redacted>");
        assert_eq!(shown[2].1, "json <redacted>");
    }
}
