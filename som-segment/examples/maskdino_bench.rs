//! Timings for `tools/bench/compare_maskdino.py` (run it instead of this directly).
//!
//! ```text
//! maskdino_bench <checkpoint> <model> <image> <threads> <reps>
//! ```
//! `<model>` is a published config name (`r50_instance`…). Prints one JSON object per line:
//! the load, then per repetition the stage times, wall and CPU time, and a checksum of the
//! instance scores; the last line has the process's peak resident memory.

#[cfg(feature = "torch")]
fn main() -> anyhow::Result<()> {
    use std::time::Instant;

    use som_segment::maskdino::{MaskDino, MaskDinoModel};

    // As the `som` binary does.
    som_segment::torch::retain_freed_memory();

    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> anyhow::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("missing argument {i}; see the file's docs"))
    };
    let threads: i32 = arg(4)?.parse()?;
    tch::set_num_threads(threads);
    let model: MaskDinoModel = arg(2)?.parse()?;
    let t = Instant::now();
    let maskdino = MaskDino::load(arg(1)?, model)?;
    println!(
        "{{\"stage\": \"load\", \"ms\": {:.1}}}",
        t.elapsed().as_secs_f64() * 1e3
    );
    let image = image::open(arg(3)?)?.to_rgb8();
    let reps: usize = arg(5)?.parse()?;
    for _ in 0..reps {
        let t = Instant::now();
        let cpu = cpu_ms();
        let (prediction, times) = maskdino.predict_timed(&image)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let cpu = cpu_ms() - cpu;
        let instances = prediction.instances.unwrap_or_default();
        let checksum: f64 = instances.iter().map(|i| i.score).sum();
        println!(
            "{{\"stage\": \"predict\", \"ms\": {ms:.1}, \"cpu_ms\": {cpu:.1}, \"backbone_ms\": {:.1}, \"encoder_ms\": {:.1}, \"decoder_ms\": {:.1}, \"postprocess_ms\": {:.1}, \"instances\": {}, \"checksum\": {checksum}}}",
            times.backbone_ms,
            times.encoder_ms,
            times.decoder_ms,
            times.postprocess_ms,
            instances.len()
        );
    }
    println!("{{\"stage\": \"peak\", \"rss_mb\": {:.1}}}", peak_rss_mb());
    Ok(())
}

/// CPU time of this process (user + system) in milliseconds.
#[cfg(feature = "torch")]
fn cpu_ms() -> f64 {
    // /proc/self/stat fields 14 and 15 are utime and stime in clock ticks (100 per second).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit(')').next()?.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks * 10.0)
        })
        .unwrap_or(0.0)
}

/// Peak resident set size of this process (`VmHWM`) in MB.
#[cfg(feature = "torch")]
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        })
        .unwrap_or(0.0)
}

#[cfg(not(feature = "torch"))]
fn main() {
    eprintln!("maskdino_bench needs the torch feature: cargo run -p som-segment --features torch --example maskdino_bench");
}
