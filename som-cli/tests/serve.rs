//! `som serve` over loopback: each endpoint's happy path against what `som
//! mark` writes for the same options, every kind of bad input, the size
//! limits, and saturation (many requests at once: 200 or 503 with
//! `Retry-After`, the server stays up, its memory stays bounded).

mod common;

use std::sync::{Arc, Barrier};

use common::server::{client, form, Server};
use common::{assert_ok, fixture, root, s, som, tmp};
use serde_json::Value;

fn coffee() -> Vec<u8> {
    std::fs::read(fixture("images/coffee.png")).unwrap()
}

/// `som mark IMAGE --json --o` with `flags`: (marks JSON text, PNG bytes).
fn som_mark(image: &str, flags: &[&str], name: &str) -> (String, Vec<u8>) {
    let dir = tmp(name);
    let (json, png) = (dir.join("marks.json"), dir.join("marked.png"));
    let mut args = vec!["mark", image, "--json", s(&json), "-o", s(&png)];
    args.extend_from_slice(flags);
    assert_ok(&som(&args));
    (
        std::fs::read_to_string(&json).unwrap(),
        std::fs::read(&png).unwrap(),
    )
}

fn error_of(response: reqwest::blocking::Response) -> (u16, String) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "status {status}"
    );
    let v: Value = response.json().unwrap();
    (status, v["error"].as_str().expect("an error message").to_string())
}

#[test]
fn mark_and_mark_png_answer_what_som_mark_writes() {
    let server = Server::start(&["--max-concurrent", "2"], &[]);
    let http = client();
    let health: Value = http
        .get(format!("{}/api/health", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");
    let names: Vec<&str> = health["segmenters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["classic", "felzenszwalb"]);
    assert_eq!(health["default_segmenter"], "classic");
    assert_eq!(health["provider"]["available"], false);
    assert!(
        health["provider"]["reason"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY"),
        "{health}"
    );

    let image = fixture("images/coffee.png");
    let bytes = coffee();
    // The defaults, and every style option set away from its default.
    // (form fields, the same as som mark flags)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 3] = [
        (&[], &[]),
        (
            &[
                ("labels", "letter"),
                ("draw", "mark,contour,box"),
                ("alpha", "0.25"),
                ("font_size", "15"),
                ("allocation", "independent"),
            ],
            &[
                "--labels",
                "letter",
                "--draw",
                "mark,contour,box",
                "--alpha",
                "0.25",
                "--font-size",
                "15",
                "--allocation",
                "independent",
            ],
        ),
        (
            &[("segmenter", "felzenszwalb"), ("zero_based", "true")],
            &["--segmenter", "felzenszwalb", "--zero-based"],
        ),
    ];
    for (i, (fields, flags)) in cases.iter().enumerate() {
        let (want_json, want_png) = som_mark(s(&image), flags, &format!("serve-mark-{i}"));
        let r = http
            .post(format!("{}/api/mark", server.url))
            .multipart(form(&bytes, "coffee.png", fields))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{fields:?}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let got = r.text().unwrap();
        assert!(
            got == want_json,
            "{fields:?}: /api/mark differs from som mark --json"
        );
        let r = http
            .post(format!("{}/api/mark.png", server.url))
            .multipart(form(&bytes, "coffee.png", fields))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{fields:?}");
        assert_eq!(r.headers()["content-type"], "image/png");
        let got = r.bytes().unwrap();
        assert!(
            got[..] == want_png[..],
            "{fields:?}: /api/mark.png differs from som mark -o"
        );
    }
    // A bundled photo as the page sends it: the JPEG the server itself offers
    // (decoded by som-core's JPEG decoder on both sides).
    let photo = root().join("som-serve/assets/photos/chelsea.jpg");
    let served = http
        .get(format!("{}/photos/chelsea.jpg", server.url))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(
        served[..] == std::fs::read(&photo).unwrap()[..],
        "/photos/chelsea.jpg"
    );
    let (want_json, _) = som_mark(s(&photo), &["--labels", "letter"], "serve-mark-jpeg");
    let r = http
        .post(format!("{}/api/mark", server.url))
        .multipart(form(&served, "chelsea.jpg", &[("labels", "letter")]))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let got = r.text().unwrap();
    assert!(
        got == want_json,
        "chelsea.jpg: /api/mark differs from som mark --json"
    );

    // One request line each in the log, none with the body.
    let log = server.log_with(&[
        "som serve: POST /api/mark 200",
        "som serve: POST /api/mark.png 200",
    ]);
    assert!(log.contains("som serve: POST /api/mark 200"), "{log}");
    assert!(log.contains("som serve: POST /api/mark.png 200"), "{log}");
}

#[test]
fn bad_input_gets_a_4xx_json_error_and_the_server_stays_up() {
    let mut server = Server::start(&["--max-pixels", "200000", "--max-upload", "0.6"], &[]);
    let http = client();
    let coffee = coffee(); // 600x400 = 240 000 pixels, 466 KB
    let chelsea = std::fs::read(fixture("images/chelsea.png")).unwrap(); // 451x300, 241 KB
    let astronaut = std::fs::read(fixture("images/astronaut.png")).unwrap(); // 792 KB
    let jpeg = std::fs::read(root().join("som-serve/assets/photos/chelsea.jpg")).unwrap();
    let url = server.url.clone();
    let mark = |f: reqwest::blocking::multipart::Form| {
        http.post(format!("{url}/api/mark")).multipart(f).send().unwrap()
    };

    let no_image = reqwest::blocking::multipart::Form::new().text("alpha", "0.2");
    let cases: Vec<(reqwest::blocking::multipart::Form, u16, &str)> = vec![
        (no_image, 400, "missing field \"image\""),
        (
            form(b"not an image at all", "notes.txt", &[]),
            415,
            "no PNG or JPEG image",
        ),
        (
            form(&chelsea[..chelsea.len() / 2], "cut.png", &[]),
            422,
            "cannot decode the image",
        ),
        (
            form(&chelsea[..30], "cut.png", &[]),
            422,
            "cannot read the image header",
        ),
        (form(&jpeg[..jpeg.len() / 2], "cut.jpg", &[]), 422, "truncated"),
        (
            form(&coffee, "coffee.png", &[]),
            413,
            "600x400 = 240000 pixels, more than this server's limit of 200000",
        ),
        (
            form(&astronaut, "astronaut.png", &[]),
            413,
            "larger than this server's limit of 629145 bytes",
        ),
    ];
    for (f, status, needle) in cases {
        let (got, message) = error_of(mark(f));
        assert_eq!(got, status, "{needle}: {message}");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    // Option values the command line would refuse too, and unknown names.
    for (field, value, needle) in [
        ("alpha", "3", "invalid alpha: must be between 0 and 1, got 3"),
        ("labels", "roman", "unknown kind \"roman\""),
        ("allocation", "random", "random"),
        ("font_size", "2", "invalid font_size: must be between 4"),
        ("zero_based", "maybe", "\"maybe\" is not true or false"),
        (
            "segmenter",
            "sam",
            "unknown segmenter \"sam\" (this server has classic, felzenszwalb)",
        ),
        ("colour", "red", "unknown field \"colour\""),
    ] {
        let (got, message) = error_of(mark(form(&chelsea, "chelsea.png", &[(field, value)])));
        assert_eq!(got, 400, "{field}={value}: {message}");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    // Not multipart at all; a GET where a POST belongs; a page that does not exist.
    let r = http
        .post(format!("{}/api/mark", server.url))
        .body("{\"image\": 1}")
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(error_of(r).0, 400);
    assert_eq!(
        error_of(http.get(format!("{}/api/mark", server.url)).send().unwrap()).0,
        405
    );
    assert_eq!(
        error_of(http.get(format!("{}/api/nope", server.url)).send().unwrap()).0,
        404
    );
    // No model configured: asking is refused with the reason.
    let r = http
        .post(format!("{}/api/ask", server.url))
        .multipart(form(
            &chelsea,
            "chelsea.png",
            &[("prompt", "Which mark is the cat?")],
        ))
        .send()
        .unwrap();
    let (status, message) = error_of(r);
    assert_eq!(status, 501);
    assert!(message.contains("OPENAI_API_KEY"), "{message}");

    // Still up, and still marking.
    assert!(server.alive());
    let r = mark(form(&chelsea, "chelsea.png", &[]));
    assert_eq!(r.status().as_u16(), 200);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_saturated_server_answers_503_with_retry_after_and_stays_up() {
    // One worker and two waiting: most of a burst of 32 is turned away.
    let mut server = Server::start(&["--max-concurrent", "1", "--max-queue", "2"], &[]);
    let bytes = Arc::new(coffee());
    let burst = |round: usize| -> (usize, usize) {
        let barrier = Arc::new(Barrier::new(32));
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (url, bytes, barrier) = (server.url.clone(), bytes.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // Different options each, so no answer comes from the cache.
                    let alpha = format!("{:.2}", 0.1 + 0.02 * i as f64 + 0.001 * round as f64);
                    let f = form(&bytes, "coffee.png", &[("alpha", alpha.as_str())]);
                    barrier.wait();
                    client()
                        .post(format!("{url}/api/mark"))
                        .multipart(f)
                        .send()
                        .expect("every request gets an answer")
                })
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for t in threads {
            let r = t.join().unwrap();
            match r.status().as_u16() {
                200 => {
                    let v: Value = r.json().unwrap();
                    assert!(!v["marks"].as_array().unwrap().is_empty());
                    ok += 1;
                }
                503 => {
                    let secs: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                    assert!((1..=120).contains(&secs), "Retry-After {secs}");
                    let (_, message) = error_of(r);
                    assert!(message.contains("the server is busy"), "{message}");
                    busy += 1;
                }
                other => panic!("status {other}: {}", r.text().unwrap_or_default()),
            }
        }
        (ok, busy)
    };

    // The peak resident size once warm (one image marked), then after bursts.
    let r = client()
        .post(format!("{}/api/mark", server.url))
        .multipart(form(&bytes, "coffee.png", &[]))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let warm = server.status_kb("VmHWM");
    let mut peaks = Vec::new();
    for round in 1..=3 {
        let (ok, busy) = burst(round);
        assert!(ok >= 1 && busy >= 1, "round {round}: {ok} ok, {busy} busy");
        peaks.push(server.status_kb("VmHWM"));
        eprintln!("saturation round {round}: {ok} answered, {busy} refused");
    }
    eprintln!("peak resident size: warm {warm} kB, after each burst {peaks:?} kB");
    // Bounded by the three admitted requests, not by the 32 sent at once:
    // marking this photo holds about 19 MB (upload, form, pixels, masks,
    // rendering); a server admitting all 32 (`--max-concurrent 32
    // --max-queue 0`) peaked at 640 MB here, this one at 65 MB.
    let most = *peaks.iter().max().unwrap();
    assert!(
        most <= warm + 128 * 1024,
        "peak resident size grew from {warm} kB to {most} kB"
    );

    assert!(server.alive());
    let health: Value = client()
        .get(format!("{}/api/health", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");
}

/// A torch segmenter (the reduced MaskDINO of the parity fixtures) is loaded
/// once at start, offered beside the pure-Rust ones, served one request at a
/// time, and answers what `som mark` writes with the same options.
#[cfg(feature = "torch")]
#[test]
fn a_torch_segmenter_is_loaded_once_and_serves_what_som_mark_writes() {
    let dir = tmp("serve-maskdino");
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("maskdino/tiny_config.json")).unwrap())
            .unwrap();
    let config = dir.join("tiny.json");
    std::fs::write(&config, all["no"].to_string()).unwrap();
    let checkpoint = fixture("maskdino/tiny.pth");
    let model = [
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&checkpoint),
        "--maskdino-config",
        s(&config),
        "--threads",
        "1",
        "--quiet",
    ];
    let mut args = model.to_vec();
    args.extend(["--max-concurrent", "2"]);
    let mut server = Server::start(&args, &[]);
    let log = server.log_with(&["loaded maskdino in"]);
    assert!(log.contains("loaded maskdino in"), "{log}");
    let http = client();
    let health: Value = http
        .get(format!("{}/api/health", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["default_segmenter"], "maskdino");
    let offered: Vec<(&str, bool)> = health["segmenters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["one_at_a_time"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        offered,
        [("maskdino", true), ("classic", false), ("felzenszwalb", false)]
    );

    let image = fixture("maskdino/image.png");
    let (want, _) = som_mark(s(&image), &model, "serve-maskdino-mark");
    let bytes = Arc::new(std::fs::read(&image).unwrap());
    // Two at once (two slots): the one model serves them in turn, both right.
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (url, bytes) = (server.url.clone(), bytes.clone());
            std::thread::spawn(move || {
                // Different options, so neither answer comes from the cache.
                let draw = ["mark,mask,contour", "mark,mask,contour,box"][i];
                let r = client()
                    .post(format!("{url}/api/mark"))
                    .multipart(form(&bytes, "image.png", &[("draw", draw)]))
                    .send()
                    .unwrap();
                (r.status().as_u16(), r.text().unwrap())
            })
        })
        .collect();
    for t in threads {
        let (status, got) = t.join().unwrap();
        assert_eq!(status, 200, "{got}");
        let (got, want): (Value, Value) = (
            serde_json::from_str(&got).unwrap(),
            serde_json::from_str(&want).unwrap(),
        );
        assert_eq!(got["marks"], want["marks"], "the marks do not depend on draw");
    }
    let r = http
        .post(format!("{}/api/mark", server.url))
        .multipart(form(&bytes, "image.png", &[]))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let got = r.text().unwrap();
    assert!(got == want, "/api/mark differs from som mark --json");
    assert!(server.alive());
}
