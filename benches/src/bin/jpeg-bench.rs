//! Times JPEG decoding for `tools/bench/compare_jpeg.py`: `som_core::jpeg`
//! and the `image` crate's decoder on each file, best of REPS runs after a
//! warm-up, as JSON lines. `--dump DIR` also writes our decoded RGB bytes as
//! `DIR/<file name>.rgb`, so the script can check them against PIL's.
//!
//! Usage: `jpeg-bench [--reps N] [--dump DIR] FILE...`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use som_core::jpeg::{decode, Limits};

fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut reps, mut dump, mut files) = (10usize, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().context("--reps N")?.parse()?,
            "--dump" => dump = Some(PathBuf::from(args.next().context("--dump DIR")?)),
            _ => files.push(PathBuf::from(a)),
        }
    }
    let limits = Limits {
        max_side: som_core::io::MAX_IMAGE_SIDE,
        max_bytes: som_core::io::MAX_DECODE_BYTES,
    };
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| file.display().to_string())?;
        let ours = decode(&bytes, &limits)?;
        if let Some(dir) = &dump {
            let name = file.file_name().context("file name")?.to_string_lossy();
            std::fs::write(dir.join(format!("{name}.rgb")), ours.to_rgb8().as_raw())?;
        }
        let som = best_ms(reps, || {
            decode(&bytes, &limits).expect("decodes");
        });
        let image = best_ms(reps, || {
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("decodes");
        });
        let line = serde_json::json!({
            "file": file.display().to_string(),
            "width": ours.width(),
            "height": ours.height(),
            "som_ms": som,
            "image_ms": image,
        });
        println!("{line}");
    }
    Ok(())
}
