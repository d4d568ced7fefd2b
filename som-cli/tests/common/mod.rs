//! Helpers shared by the `som` end-to-end tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file under the repository's `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// A fresh, empty temporary folder for one test.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("som-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs the `som` binary with `args`.
pub fn som(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_som"))
        .args(args)
        .output()
        .expect("run som")
}

/// The command succeeded.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit status 1 and exactly one line on stderr, `som: error: …`, that mentions `needle`.
pub fn assert_fails(out: &Output, needle: &str) {
    assert_fails_with(out, 1, needle);
}

/// Exit status 2 (a flag value the parser refuses) and one `som: error: …` line
/// that mentions `needle`.
pub fn assert_usage_error(out: &Output, needle: &str) {
    assert_fails_with(out, 2, needle);
}

fn assert_fails_with(out: &Output, status: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("som: error: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert_said_once(err.trim_end());
}

/// No clause of an error line (the parts between ": ") is said twice, and no
/// clause repeats the end of the one before it.
pub fn assert_said_once(line: &str) {
    let clauses: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, a) in clauses.iter().enumerate() {
        for b in &clauses[i + 1..] {
            assert!(a != b, "{a:?} said twice in {line:?}");
        }
    }
    for pair in clauses.windows(2) {
        assert!(!pair[0].ends_with(pair[1]), "{:?} repeated in {line:?}", pair[1]);
    }
}
