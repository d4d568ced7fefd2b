//! When to retry a request, and how long to wait first.
//!
//! The policy is the official OpenAI SDK's: retry 408, 409, 429 and 5xx
//! responses, timeouts and connection errors, up to 2 times by default;
//! honour `retry-after-ms`, then `retry-after` (seconds or an HTTP date) when
//! it asks for a wait in (0, 120] s; otherwise wait
//! `min(0.5 s · 2^n, 8 s) × (1 − 0.25 · rand)`. Quota exhaustion
//! (`insufficient_quota`) is never retried, and an `x-should-retry` header
//! overrides the status rule.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// Retry settings.
///
/// ```
/// use std::time::Duration;
/// use som_lmm::RetryPolicy;
/// let p = RetryPolicy::default();
/// assert_eq!(p.max_retries, 2);
/// // Without jitter: 0.5 s, 1 s, 2 s, … capped at 8 s.
/// assert_eq!(p.backoff(0, 0.0), Duration::from_millis(500));
/// assert_eq!(p.backoff(10, 0.0), Duration::from_secs(8));
/// // Full jitter takes off a quarter.
/// assert_eq!(p.backoff(0, 1.0), Duration::from_millis(375));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` requests at most).
    pub max_retries: u32,
    /// The wait before the first retry, doubled for each further one.
    pub initial_backoff: Duration,
    /// The longest computed wait.
    pub max_backoff: Duration,
    /// The fraction of the wait that jitter may take off (0.25).
    pub jitter: f64,
    /// The longest server-requested wait (`retry-after`) that is honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            jitter: 0.25,
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The computed wait before retry number `retry` (0 = the first retry),
    /// with `unit_random` in [0, 1] drawing the jitter.
    pub fn backoff(&self, retry: u32, unit_random: f64) -> Duration {
        let factor = 2f64.powi(retry.min(30) as i32);
        let base = (self.initial_backoff.as_secs_f64() * factor).min(self.max_backoff.as_secs_f64());
        let jitter = 1.0 - self.jitter.clamp(0.0, 1.0) * unit_random.clamp(0.0, 1.0);
        Duration::from_secs_f64((base * jitter).max(0.0))
    }

    /// The wait before retry number `retry`: the server's `retry-after-ms` /
    /// `retry-after` when it is in (0, `max_retry_after`], else [`Self::backoff`].
    pub fn delay(&self, retry: u32, headers: &HeaderMap, now: SystemTime, unit_random: f64) -> Duration {
        match retry_after(headers, now) {
            Some(d) if !d.is_zero() && d <= self.max_retry_after => d,
            _ => self.backoff(retry, unit_random),
        }
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds), else
/// `retry-after` as seconds (fractions allowed) or as an HTTP date relative
/// to `now`. `None` when absent or unreadable.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use reqwest::header::{HeaderMap, HeaderValue};
/// use som_lmm::retry_after;
/// let mut h = HeaderMap::new();
/// h.insert("retry-after", HeaderValue::from_static("3"));
/// assert_eq!(retry_after(&h, SystemTime::now()), Some(Duration::from_secs(3)));
/// h.insert("retry-after-ms", HeaderValue::from_static("250"));
/// assert_eq!(retry_after(&h, SystemTime::now()), Some(Duration::from_millis(250)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (0.0..1e9).contains(&secs).then(|| Duration::from_secs_f64(secs));
    }
    let date = httpdate::parse_http_date(v).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether an HTTP status is worth retrying: 408, 409, 429 and 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// The `x-should-retry` header's verdict, when present.
pub(crate) fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// A number in [0, 1) for jitter (std's randomly keyed hasher; no RNG crate).
pub(crate) fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &later)]), now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &earlier)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "20"), ("retry-after", "5")]), now),
            Some(Duration::from_millis(20))
        );
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn delay_honours_retry_after_only_in_range() {
        let p = RetryPolicy::default();
        let now = SystemTime::now();
        assert_eq!(
            p.delay(0, &headers(&[("retry-after", "7")]), now, 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(0, &headers(&[("retry-after", "120")]), now, 0.0),
            Duration::from_secs(120)
        );
        // Out of range or zero: computed backoff.
        assert_eq!(
            p.delay(1, &headers(&[("retry-after", "121")]), now, 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(2, &headers(&[("retry-after", "0")]), now, 0.0),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn backoff_bounds() {
        let p = RetryPolicy::default();
        for n in 0..40 {
            for r in [0.0, 0.3, 1.0, 7.0, -1.0] {
                let d = p.backoff(n, r).as_secs_f64();
                let base = (0.5 * 2f64.powi(n.min(30) as i32)).min(8.0);
                assert!(d <= base + 1e-9 && d >= base * 0.75 - 1e-9, "n={n} r={r} d={d}");
            }
        }
        for _ in 0..100 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
