//! A `som serve` process on a free loopback port, for the serve tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Provider variables a test must not inherit from the developer's shell.
pub const PROVIDER_ENV: [&str; 5] = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_BASE_URL",
];

/// A running `som serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `som serve --port 0 ARGS` with a clean provider environment plus
    /// `env`, and waits until it listens.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_som"));
        cmd.args(["serve", "--port", "0"]).args(args);
        for var in PROVIDER_ENV {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start som serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready, listening) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, ready) = (log.clone(), ready.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let url = rest.split('/').take(3).collect::<Vec<_>>().join("/");
                        let _ = ready.send(url);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        // Up to two minutes (a model may load first), but no longer than the process lives.
        for _ in 0..1200 {
            if let Ok(url) = listening.recv_timeout(Duration::from_millis(100)) {
                return Server { child, url, log };
            }
            if child.try_wait().ok().flatten().is_some() {
                std::thread::sleep(Duration::from_millis(200)); // the readers catch its last words
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("som serve did not start; its output:\n{}", log.lock().unwrap());
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// [`Self::log`] once it contains every one of `lines` (or after ten seconds, for the
    /// assertion to show what it has): the server writes a request's line as it answers, and
    /// the reader threads may take it from the pipe after the client has the response.
    pub fn log_with(&self, lines: &[&str]) -> String {
        for _ in 0..500 {
            let log = self.log();
            if lines.iter().all(|l| log.contains(l)) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }

    /// The server process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `true` while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A field of `/proc/PID/status` in kB (e.g. `VmHWM`, the peak resident size).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A multipart form with `bytes` as the file `image` (named `file_name`) and text fields.
pub fn form(bytes: &[u8], file_name: &str, fields: &[(&str, &str)]) -> reqwest::blocking::multipart::Form {
    let part = reqwest::blocking::multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_string());
    fields.iter().fold(
        reqwest::blocking::multipart::Form::new().part("image", part),
        |f, (k, v)| f.text(k.to_string(), v.to_string()),
    )
}

/// A client with a generous timeout (test builds segment slowly).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}
