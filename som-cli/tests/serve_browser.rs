//! `som serve`'s page in a real browser: headless Chromium (Debian's
//! `chromium`; `tools/test.sh` installs it) loads the page, uploads a photo,
//! waits for the marked image, hovers a mark (its region highlighted, its
//! details shown), selects it, and asks the mock model (the answer's marks
//! highlighted). One browser session, driven over the DevTools protocol.
//!
//! Screenshots go to the test's temporary folder (PNG); with
//! `SOM_UPDATE_DOCS=1` also to `docs/serve-hover.jpg` and `docs/serve-ask.jpg`
//! (the README's).
//! `SOM_CHROMIUM` names another Chromium binary.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::server::{client, form, Server};
use common::{fixture, root, s, tmp};
use serde_json::{json, Value};
use som_lmm::mock::{MockResponse, MockServer};
use tungstenite::{Message, WebSocket};

const KEY: &str = "sk-browser-test-SECRET-7";

/// Headless Chromium, one page, spoken to over the DevTools protocol.
struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
    /// Uncaught page exceptions and console errors, as they arrive.
    problems: Vec<String>,
}

impl Browser {
    fn launch(profile: &Path) -> Browser {
        let exe = std::env::var("SOM_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let mut child = Command::new(&exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                // Containers often have a small /dev/shm; Chromium then crashes without this.
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,860",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {exe} ({e}): the browser test needs Chromium \
                     (`apt-get install chromium`; tools/test.sh installs it)"
                )
            });
        // Chromium prints its DevTools address on stderr; keep reading it so it never blocks.
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("Chromium printed no DevTools address");
        let host = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&host).expect("connect to DevTools");
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools websocket");
        let mut browser = Browser {
            child,
            ws,
            next_id: 0,
            session: None,
            problems: Vec::new(),
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends a command to the page (the browser before a page is attached)
    /// and returns its result; events that arrive meanwhile are looked at for
    /// page errors.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .expect("send to DevTools");
        loop {
            let text = match self.ws.read().expect("read from DevTools") {
                Message::Text(t) => t.to_string(),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    self.problems.push(v["params"]["exceptionDetails"].to_string())
                }
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.problems.push(v["params"]["args"].to_string())
                }
                _ => {}
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    fn wait_for(&mut self, expression: &str, timeout: Duration) {
        let start = Instant::now();
        while self.eval(expression) != json!(true) {
            if start.elapsed() > timeout {
                let error = self.eval("window.som ? window.som.error : 'no page state'");
                panic!("waited {timeout:?} for {expression} (page error: {error})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        let mut params = json!({"type": kind, "x": x, "y": y});
        if kind != "mouseMoved" {
            params["button"] = json!("left");
            params["clickCount"] = json!(1);
        }
        self.call("Input.dispatchMouseEvent", params);
    }

    fn click(&mut self, x: f64, y: f64) {
        self.mouse("mousePressed", x, y);
        self.mouse("mouseReleased", x, y);
    }

    /// A screenshot of the page: PNG, or JPEG for a path ending in `.jpg`
    /// (the README's, a quarter of the size).
    fn screenshot(&mut self, path: &Path) {
        let params = match path.extension().and_then(|e| e.to_str()) {
            Some("jpg") => json!({"format": "jpeg", "quality": 88}),
            _ => json!({"format": "png"}),
        };
        let shot = self.call("Page.captureScreenshot", params);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat(content: &str) -> Value {
    json!({
        "id": "chatcmpl-page", "object": "chat.completion", "created": 1, "model": "mock-vl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1210, "completion_tokens": 14, "total_tokens": 1224}
    })
}

/// The colour and opacity of a pixel of the highlight layer (image coordinates).
fn overlay_pixel(browser: &mut Browser, x: u64, y: u64) -> Vec<u64> {
    let v = browser.eval(&format!(
        "Array.from(document.getElementById('overlay').getContext('2d').getImageData({x}, {y}, 1, 1).data)"
    ));
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect()
}

/// A pixel of mark `i`'s region that the pointer would pick (no smaller
/// region above it, no label box over it) and that lies off the region's
/// edge, in image coordinates.
const POINT_OF_MARK: &str = r#"(i) => {
  const s = window.som, m = s.masks[i], W = s.doc.image.width;
  const on = (x, y) => x >= 0 && y >= 0 && x < m.w && y < m.h && m.bits[y * m.w + x] === 1;
  const inLabel = (x, y) => s.doc.marks.some((k) => {
    const [lx, ly, lw, lh] = k.label_box; return x >= lx && y >= ly && x < lx + lw && y < ly + lh; });
  for (let y = 0; y < m.h; y++) for (let x = 0; x < m.w; x++) {
    const X = m.x + x, Y = m.y + y;
    if (s.hitMap[Y * W + X] !== i || inLabel(X, Y)) continue;
    let inside = true;
    for (let d = 1; d <= 3 && inside; d++) inside = on(x - d, y) && on(x + d, y) && on(x, y - d) && on(x, y + d);
    if (inside) return [X, Y];
  }
  return null;
}"#;

/// `pixel` is `want`: opacity exactly, colour up to the rounding of the
/// canvas's premultiplied alpha.
fn assert_colour(pixel: &[u64], want: [u64; 4], what: &str) {
    let close = pixel.len() == 4 && pixel[3] == want[3] && (0..3).all(|c| pixel[c].abs_diff(want[c]) <= 4);
    assert!(close, "{what}: the highlight layer has {pixel:?}, not {want:?}");
}

/// Viewport coordinates of the centre of image pixel (x, y).
fn to_viewport(browser: &mut Browser, x: u64, y: u64) -> (f64, f64) {
    let v = browser.eval(&format!(
        "(() => {{ const c = document.getElementById('overlay'), r = c.getBoundingClientRect();
           return [r.left + ({x} + 0.5) * r.width / c.width, r.top + ({y} + 0.5) * r.height / c.height]; }})()"
    ));
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

#[test]
fn the_page_marks_highlights_selects_and_asks_in_chromium() {
    // The model names the coffee and the saucer's marks (as classic marks the photo).
    let structured =
        json!({"answer": "The coffee is [8]; the saucer is [2] and [5].", "marks": ["8", "2", "5"]});
    let mock = MockServer::start(vec![MockResponse::json(200, &chat(&structured.to_string()))]).unwrap();
    let base_url = format!("{}/v1", mock.url());
    let server = Server::start(
        &[
            "--provider",
            "openai",
            "--model",
            "mock-vl",
            "--base-url",
            &base_url,
        ],
        &[("OPENAI_API_KEY", KEY)],
    );
    // Chromium reads the file itself: an absolute path without `..`.
    let photo = fixture("images/coffee.png").canonicalize().unwrap();
    // What the API answers for this photo, to check the page against.
    let marks: Value = client()
        .post(format!("{}/api/mark", server.url))
        .multipart(form(&std::fs::read(&photo).unwrap(), "coffee.png", &[]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let marks = marks["marks"].as_array().unwrap().clone();
    assert!(marks.len() >= 4, "{} marks", marks.len());

    let dir = tmp("browser");
    // (folder, file extension): the test's own folder, and with SOM_UPDATE_DOCS=1 docs/.
    let shots: Vec<(PathBuf, &str)> = match std::env::var("SOM_UPDATE_DOCS").as_deref() {
        Ok("1") => vec![(dir.clone(), "png"), (root().join("docs"), "jpg")],
        _ => vec![(dir.clone(), "png")],
    };
    let mut browser = Browser::launch(&dir.join("profile"));
    browser.call("Page.navigate", json!({"url": format!("{}/", server.url)}));
    browser.wait_for(
        "!!(window.som && window.som.health && document.readyState === 'complete')",
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("document.getElementById('segmenter').value"),
        "classic"
    );

    // Upload the photo through the file input, as a person choosing it would.
    let document = browser.call("DOM.getDocument", json!({}));
    let input = browser.call(
        "DOM.querySelector",
        json!({"nodeId": document["root"]["nodeId"], "selector": "#file"}),
    );
    browser.call(
        "DOM.setFileInputFiles",
        json!({"nodeId": input["nodeId"], "files": [s(&photo)]}),
    );
    // Progress shows while the server segments (well over the moment this
    // takes); then the marked image.
    let progress = browser.eval(
        "[window.som.busy, document.getElementById('progress').hidden, document.getElementById('progress-text').textContent, window.som.error]",
    );
    assert_eq!(progress[0], true, "{progress}");
    assert_eq!(progress[1], false, "{progress}");
    assert!(
        progress[2]
            .as_str()
            .unwrap()
            .starts_with("Segmenting coffee.png with classic…"),
        "{progress}"
    );
    browser.wait_for(
        "window.som.ready && document.getElementById('marked').complete && !window.som.busy",
        Duration::from_secs(180),
    );
    assert_eq!(browser.eval("document.getElementById('progress').hidden"), true);
    assert_eq!(
        browser.eval("[document.getElementById('marked').naturalWidth, window.som.doc.marks.length]"),
        json!([600, marks.len()])
    );
    assert_eq!(browser.eval("window.som.doc.image.file_name"), "coffee.png");

    // Hover mark 3: its region lights up, its details show.
    let i = 2usize;
    let mark = &marks[i];
    let region = &mark["region"];
    let point = browser.eval(&format!("({POINT_OF_MARK})({i})"));
    let (px, py) = (point[0].as_u64().unwrap(), point[1].as_u64().unwrap());
    let (vx, vy) = to_viewport(&mut browser, px, py);
    browser.mouse("mouseMoved", vx, vy);
    browser.wait_for(&format!("window.som.hovered === {i}"), Duration::from_secs(5));
    // Inside: a light wash of the hover colour; everything else veiled.
    assert_colour(
        &overlay_pixel(&mut browser, px, py),
        [255, 196, 0, 60],
        "hovered region",
    );
    // A pixel of another region, away from this region's box, stays clear.
    let other = browser.eval(&format!(
        "(() => {{ const s = window.som, W = s.doc.image.width, [bx, by, bw, bh] = s.doc.marks[{i}].region.bbox;
           for (let p = 0; p < s.hitMap.length; p++) {{ const x = p % W, y = Math.floor(p / W);
             if (s.hitMap[p] >= 0 && s.hitMap[p] !== {i} && (x < bx - 4 || y < by - 4 || x > bx + bw + 4 || y > by + bh + 4)) return [x, y]; }}
           return null; }})()"
    ));
    let (ox, oy) = (other[0].as_u64().unwrap(), other[1].as_u64().unwrap());
    assert_colour(
        &overlay_pixel(&mut browser, ox, oy),
        [0, 0, 0, 120],
        "another region",
    );
    let b = region["bbox"].as_array().unwrap();
    let details = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#details dd')].map((d) => [d.dataset.field, d.textContent]))",
    );
    assert_eq!(details["mark"], mark["text"]);
    assert_eq!(details["region id"], region["id"].to_string());
    assert_eq!(details["area"], format!("{} px", region["area"]));
    assert_eq!(
        details["box"],
        format!("[{}, {}, {}, {}]", b[0], b[1], b[2], b[3])
    );
    assert_eq!(details["score"], "—");
    assert_eq!(details["label"], "—");
    for (d, ext) in &shots {
        browser.screenshot(&d.join(format!("serve-hover.{ext}")));
    }

    // Click selects the mark; a second click lets it go.
    browser.click(vx, vy);
    assert_eq!(browser.eval(&format!("window.som.selected.has({i})")), true);
    let selection = browser.eval("document.getElementById('selection').textContent");
    assert!(
        selection
            .as_str()
            .unwrap()
            .contains(&format!("[{}]", mark["text"].as_str().unwrap())),
        "{selection}"
    );
    browser.click(vx, vy);
    assert_eq!(browser.eval("window.som.selected.size"), 0);
    browser.mouse("mouseMoved", 5.0, 5.0);
    browser.wait_for("window.som.hovered === -1", Duration::from_secs(5));

    // Ask: the answer's marks light up in the answer colour.
    browser.eval("document.getElementById('prompt').value = 'Where are the coffee and the saucer?'");
    browser.eval("document.getElementById('ask').click()");
    browser.wait_for(
        "window.som.answer !== null && !window.som.busy",
        Duration::from_secs(60),
    );
    assert_eq!(
        browser.eval("[...window.som.answerMarks].sort()"),
        json!([1, 4, 7])
    );
    for j in [1usize, 4, 7] {
        let p = browser.eval(&format!("({POINT_OF_MARK})({j})"));
        let px = overlay_pixel(&mut browser, p[0].as_u64().unwrap(), p[1].as_u64().unwrap());
        assert_colour(&px, [0, 200, 83, 120], &format!("answer mark {}", j + 1));
    }
    let answer = browser.eval("document.getElementById('answer').textContent");
    let answer = answer.as_str().unwrap();
    assert!(
        answer.contains("The coffee is [8]; the saucer is [2] and [5]."),
        "{answer}"
    );
    assert!(
        answer.contains("[2][5][8]"),
        "the answer's marks as chips: {answer}"
    );
    // Nothing else is lit: a pixel of a mark not in the answer stays clear.
    let p = browser.eval(&format!("({POINT_OF_MARK})(0)"));
    assert_eq!(
        overlay_pixel(&mut browser, p[0].as_u64().unwrap(), p[1].as_u64().unwrap())[3],
        0
    );
    for (d, ext) in &shots {
        browser.screenshot(&d.join(format!("serve-ask.{ext}")));
    }

    // The model got the marked image with the key; the page never did.
    let request = &mock.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let html = browser.eval("document.documentElement.outerHTML");
    assert!(!html.as_str().unwrap().contains(KEY));
    assert!(browser.problems.is_empty(), "page errors: {:?}", browser.problems);
    assert!(!server.log().contains(KEY));
}
