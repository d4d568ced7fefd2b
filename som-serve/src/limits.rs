//! What one server lets its clients use.

use std::time::Duration;

/// Resource limits of a server: request sizes, image sizes, time, and how
/// many requests it works on at once.
///
/// A request beyond `max_concurrent + max_queue` admitted requests is refused
/// at once with `503 Service Unavailable` and a `Retry-After` header, so
/// memory stays bounded: at most that many uploads (each at most
/// `max_body_bytes`) are held, at most `max_concurrent` images are being
/// worked on, and `cache_entries` results are kept.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use som_serve::Limits;
/// let limits = Limits { max_concurrent: 1, max_queue: 2, request_timeout: Duration::from_secs(30), ..Limits::default() };
/// assert_eq!(limits.admitted(), 3);
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (`413` beyond it).
    pub max_body_bytes: usize,
    /// The largest text field (`prompt`, `alpha`, …), in bytes.
    pub max_field_bytes: usize,
    /// The most pixels (width × height) an uploaded image may have (`413`
    /// beyond it), checked from the image header before decoding.
    pub max_pixels: u64,
    /// How long a request may take from its first byte to its answer,
    /// waiting in the queue and asking the model included (`503` with
    /// `Retry-After` beyond it).
    pub request_timeout: Duration,
    /// Requests whose CPU stages (decode, segment, allocate, render, encode)
    /// run at the same time.
    pub max_concurrent: usize,
    /// Requests admitted beyond `max_concurrent`, waiting for a worker.
    pub max_queue: usize,
    /// Marked images kept, so that `/api/mark`, `/api/mark.png` and
    /// `/api/ask` on the same image and options segment it once (0: none).
    pub cache_entries: usize,
}

impl Default for Limits {
    /// 32 MiB bodies, 64 KiB text fields, 16.7 megapixels (4096²), five
    /// minutes a request (SAM on a CPU takes tens of seconds), one worker per
    /// core, 16 waiting, 4 cached results.
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_field_bytes: 64 << 10,
            max_pixels: 4096 * 4096,
            request_timeout: Duration::from_secs(300),
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queue: 16,
            cache_entries: 4,
        }
    }
}

impl Limits {
    /// How many requests are admitted at once (working or waiting).
    pub fn admitted(&self) -> usize {
        self.max_concurrent.saturating_add(self.max_queue)
    }

    /// Checks that the limits can serve anything at all.
    ///
    /// # Errors
    /// A message naming the first limit that is zero.
    pub fn validate(&self) -> Result<(), String> {
        let zero = [
            ("max_body_bytes", self.max_body_bytes == 0),
            ("max_field_bytes", self.max_field_bytes == 0),
            ("max_pixels", self.max_pixels == 0),
            ("request_timeout", self.request_timeout.is_zero()),
            ("max_concurrent", self.max_concurrent == 0),
        ];
        match zero.iter().find(|(_, z)| *z) {
            Some((name, _)) => Err(format!("{name} must be more than zero")),
            None => Ok(()),
        }
    }
}
