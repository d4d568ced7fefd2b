//! Times the Felzenszwalb and classic segmenters on images, for
//! `tools/bench/compare_segment.py` (which runs skimage in the same session).
//!
//! ```sh
//! cargo run --release -p som-segment --example time_segment -- \
//!     [--reps N] [--threads T] [--only felzenszwalb|classic] IMAGE...
//! ```
//! Prints one JSON object per image and segmenter on stdout:
//! `{"image":"astronaut.png","segmenter":"felzenszwalb","median_ms":…,"min_ms":…,"cpu_ms":…,"regions":585}`
//! (`cpu_ms`: mean CPU time per run over all threads; Linux only, else null).
//! Images are decoded before timing starts; each measurement is one full
//! segmentation to a label map (felzenszwalb) or to regions (classic), after
//! one warm-up run.

use std::time::Instant;

use anyhow::Context;
use som_core::Segmenter;
use som_segment::{felzenszwalb, Classic, FelzenszwalbParams};

/// CPU time of the whole process (all threads) in ms, from
/// `/proc/self/task/*/schedstat` (Linux; `None` elsewhere).
fn process_cpu_ms() -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 / 1e6)
}

/// Timings of one segmenter on one image, as a JSON line.
fn report(name: &str, segmenter: &str, times: &mut [f64], cpu_ms: Option<f64>, regions: usize) -> String {
    times.sort_by(f64::total_cmp);
    serde_json::json!({"image": name, "segmenter": segmenter, "median_ms": times[times.len() / 2],
        "min_ms": times[0], "cpu_ms": cpu_ms, "regions": regions})
    .to_string()
}

/// Runs `f` once to warm up, then `reps` times; returns the wall times (ms),
/// the mean CPU time per run over all threads (robust to a busy machine),
/// and the warm-up's result.
fn time<T>(
    reps: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<f64>, Option<f64>, T)> {
    let first = f()?;
    let reps = reps.max(1);
    let mut times = Vec::with_capacity(reps);
    let cpu0 = process_cpu_ms();
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f()?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = process_cpu_ms().zip(cpu0).map(|(b, a)| (b - a) / reps as f64);
    Ok((times, cpu, first))
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
            let (mut times, cpu, map) =
                time(reps, || Ok(felzenszwalb(&image, &FelzenszwalbParams::REFERENCE)?))?;
            println!(
                "{}",
                report(&name, "felzenszwalb", &mut times, cpu, map.count() as usize)
            );
        }
        if wanted("classic") {
            let (mut times, cpu, seg) = time(reps, || Ok(classic.segment(&image)?))?;
            println!("{}", report(&name, "classic", &mut times, cpu, seg.len()));
        }
    }
    Ok(())
}
