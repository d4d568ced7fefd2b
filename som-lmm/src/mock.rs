//! A loopback HTTP server that plays scripted responses and records the
//! requests it gets, for testing code that talks to model providers without
//! a network (feature `mock`).
//!
//! It uses only std threads, so it works under any async runtime or none.
//! Each connection gets the next scripted response (the last one repeats);
//! a response can also hang (read the request, never answer) or close the
//! connection without answering.
//!
//! [`ScriptedModel`] is the same idea one level up: a
//! [`som_core::GroundingModel`] that answers with scripted texts, parsed
//! exactly as a provider's answer is, for testing evaluation code.
//!
//! ```
//! use som_lmm::mock::{MockResponse, MockServer};
//! let server = MockServer::start(vec![MockResponse::json(200, &serde_json::json!({"ok": true}))])?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.hits(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Send the response.
    Respond,
    /// Read the request and never answer (until the server is dropped).
    Hang,
    /// Read the request and close the connection without answering.
    Close,
}

/// One scripted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether to answer at all.
    pub behaviour: Behaviour,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl MockResponse {
    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::text(status, &body.to_string()).header("content-type", "application/json")
    }

    /// A plain-text (or HTML) response.
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            behaviour: Behaviour::Respond,
            delay: Duration::ZERO,
        }
    }

    /// A connection that is never answered.
    pub fn hang() -> Self {
        Self {
            behaviour: Behaviour::Hang,
            ..Self::text(200, "")
        }
    }

    /// A connection closed without an answer.
    pub fn close() -> Self {
        Self {
            behaviour: Behaviour::Close,
            ..Self::text(200, "")
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Waits `delay` before answering.
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `POST`, `GET`…
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When the whole request had arrived.
    pub received: Instant,
}

impl RecordedRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Debug)]
struct Shared {
    script: Script<MockResponse>,
    requests: Mutex<Vec<RecordedRequest>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Items played in order; once they are used up, the last one repeats.
#[derive(Debug)]
struct Script<T> {
    /// The items not played yet, and the last one played.
    state: Mutex<(VecDeque<T>, Option<T>)>,
}

impl<T: Clone> Script<T> {
    fn new(items: Vec<T>) -> Self {
        Self {
            state: Mutex::new((items.into(), None)),
        }
    }

    /// The next item; `None` only when the script was empty.
    fn next(&self) -> Option<T> {
        let mut state = lock(&self.state);
        if let Some(item) = state.0.pop_front() {
            state.1 = Some(item.clone());
        }
        state.1.clone()
    }
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server on a free loopback port that plays `script` in order.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(script: Vec<MockResponse>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script: Script::new(script),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || serve(stream, &s));
                }
            }
        });
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received.
    pub fn hits(&self) -> usize {
        lock(&self.shared.requests).len()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let response = shared
        .script
        .next()
        .unwrap_or_else(|| MockResponse::text(500, "mock server: empty script"));
    lock(&shared.requests).push(request);
    match response.behaviour {
        Behaviour::Hang => {
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Behaviour::Close => {
            let _ = stream.shutdown(Shutdown::Both);
        }
        Behaviour::Respond => {
            if !response.delay.is_zero() {
                std::thread::sleep(response.delay);
            }
            let mut head = format!(
                "HTTP/1.1 {} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                response.status,
                reason(response.status),
                response.body.len()
            );
            for (k, v) in &response.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&response.body);
            let _ = stream.flush();
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<RecordedRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
        received: Instant::now(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// A [`som_core::GroundingModel`] that answers from a script: each call takes
/// the next text (the last one repeats) and reads its marks exactly as a
/// provider's answer is read (structured JSON, `<think>` blocks, brackets…).
///
/// ```
/// use som_core::{GroundingModel, GroundingRequest};
/// use som_lmm::mock::ScriptedModel;
/// # let seg = som_core::Segmentation::new(som_core::ImageSize::new(4, 4), vec![som_core::Region::from_box(7, som_core::BBox::new(0, 0, 2, 2))])?;
/// # let marks = vec![som_core::Mark::new(1, "1", som_core::Point::new(0, 0), 0, som_core::BBox::new(0, 0, 1, 1))];
/// # let marked = som_core::MarkedImage::new(image::RgbImage::new(4, 4), marks, seg)?;
/// let model = ScriptedModel::new(vec!["It is [1], not [5].".into()]);
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let answer = rt.block_on(model.ground(&GroundingRequest::new(&marked, "Which?")))?;
/// assert_eq!((answer.marks[0].id, answer.unknown.clone()), (1, vec!["5".to_string()]));
/// assert_eq!(model.calls(), 1);
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug)]
pub struct ScriptedModel {
    answers: Script<String>,
    calls: std::sync::atomic::AtomicUsize,
    usage: Option<som_core::Usage>,
}

impl ScriptedModel {
    /// A model that answers `answers` in order.
    pub fn new(answers: Vec<String>) -> Self {
        Self {
            answers: Script::new(answers),
            calls: std::sync::atomic::AtomicUsize::new(0),
            usage: None,
        }
    }

    /// Reports `usage` with every answer.
    #[must_use]
    pub fn with_usage(mut self, usage: som_core::Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// How many questions were asked.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl som_core::GroundingModel for ScriptedModel {
    fn ground<'a>(
        &'a self,
        request: &'a som_core::GroundingRequest<'a>,
    ) -> som_core::BoxFuture<'a, Result<som_core::GroundingAnswer, som_core::SomError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let text = self.answers.next().unwrap_or_default();
        let reply = crate::providers::ApiReply {
            text,
            finish_reason: Some("stop".into()),
            usage: self.usage,
            model: Some("scripted".into()),
            ..crate::providers::ApiReply::default()
        };
        let answer = crate::answer::interpret(reply, request.marked);
        Box::pin(async move { Ok(answer) })
    }

    fn name(&self) -> &str {
        "scripted"
    }
}
