//! Times the Felzenszwalb and classic segmenters on images, for
//! `tools/bench/compare_segment.py` (which runs skimage in the same session).
//!
//! ```sh
//! cargo run --release -p som-segment --example time_segment -- \
//!     [--reps N] [--threads T] [--only felzenszwalb|classic] IMAGE...
//! ```
//! Prints one JSON object per image and segmenter on stdout:
//! `{"image":"astronaut.png","segmenter":"felzenszwalb","median_ms":…,"min_ms":…,"regions":585}`.
//! Images are decoded before timing starts; each measurement is one full
//! segmentation to a label map (felzenszwalb) or to regions (classic), after
//! one warm-up run.

use std::time::Instant;

use anyhow::Context;
use som_core::Segmenter;
use som_segment::{felzenszwalb, Classic, FelzenszwalbParams};

/// Runs `f` once to warm up, then `reps` times; returns (median, min) ms and
/// the warm-up's result.
fn time<T>(reps: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64, T)> {
    let first = f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        std::hint::black_box(f()?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[0], first))
}

fn main() -> anyhow::Result<()> {
    let mut reps = 7usize;
    let mut threads = 0usize;
    let mut only: Option<String> = None;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().with_context(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--reps" => reps = value("--reps")?.parse()?,
            "--threads" => threads = value("--threads")?.parse()?,
            "--only" => only = Some(value("--only")?),
            _ => paths.push(a),
        }
    }
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
    }
    let wanted = |what: &str| only.as_deref().is_none_or(|o| o == what);
    let classic = Classic::default();
    for path in &paths {
        let image = som_core::io::load_image(std::path::Path::new(path))?;
        let name = std::path::Path::new(path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        if wanted("felzenszwalb") {
            let (median, min, map) =
                time(reps, || Ok(felzenszwalb(&image, &FelzenszwalbParams::REFERENCE)?))?;
            let line = serde_json::json!({"image": name, "segmenter": "felzenszwalb",
                "median_ms": median, "min_ms": min, "regions": map.count()});
            println!("{line}");
        }
        if wanted("classic") {
            let (median, min, seg) = time(reps, || Ok(classic.segment(&image)?))?;
            let line = serde_json::json!({"image": name, "segmenter": "classic",
                "median_ms": median, "min_ms": min, "regions": seg.len()});
            println!("{line}");
        }
    }
    Ok(())
}
