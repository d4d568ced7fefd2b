//! Times the Felzenszwalb and classic segmenters on images, for
//! `tools/bench/compare_segment.py` (which runs skimage in the same session).
//!
//! ```sh
//! cargo run --release -p som-segment --example time_segment -- [--reps N] [--threads T] IMAGE...
//! ```
//! Prints one JSON object per image and segmenter on stdout:
//! `{"image":"astronaut.png","segmenter":"felzenszwalb","median_ms":…,"min_ms":…,"regions":585}`.
//! Images are decoded before timing starts; each measurement is one full
//! segmentation to a label map (felzenszwalb) or to regions (classic).

use std::time::Instant;

use som_core::Segmenter;
use som_segment::{felzenszwalb, Classic, FelzenszwalbParams};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut reps = 7usize;
    let mut threads = 0usize;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => {
                reps = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--reps needs a value"))?
                    .parse()?
            }
            "--threads" => {
                threads = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--threads needs a value"))?
                    .parse()?
            }
            _ => paths.push(a),
        }
    }
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
    }
    let params = FelzenszwalbParams::REFERENCE;
    let classic = Classic::default();
    for path in &paths {
        let image = image::open(path)?;
        let name = std::path::Path::new(path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        // Warm-up.
        let n = felzenszwalb(&image, &params)?.count();
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            std::hint::black_box(felzenszwalb(&image, &params)?);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{}",
            serde_json::json!({"image": name, "segmenter": "felzenszwalb", "median_ms": median(&mut times), "min_ms": min, "regions": n})
        );
        let n = classic.segment(&image)?.len();
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            std::hint::black_box(classic.segment(&image)?);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{}",
            serde_json::json!({"image": name, "segmenter": "classic", "median_ms": median(&mut times), "min_ms": min, "regions": n})
        );
    }
    Ok(())
}
