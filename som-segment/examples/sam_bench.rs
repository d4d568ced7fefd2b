//! Timings for `tools/bench/compare_sam.py` (run it instead of this directly).
//!
//! ```text
//! sam_bench encode <checkpoint> <image> <reps>
//! sam_bench amg <checkpoint> <image> <options.json> <reps> <records-out.json> [reference]
//! sam_bench decode <config.json> <checkpoint> <image> <batches>
//! ```
//! The model is recognised from the checkpoint (`Sam::load_detect`); `reference` runs the
//! generator with LibTorch upscaling every mask (`reference_upscaling`). Prints one JSON
//! object per line.

#[cfg(feature = "torch")]
fn main() -> anyhow::Result<()> {
    use std::time::Instant;

    use som_segment::sam::{AmgOptions, AutomaticMaskGenerator, Sam, SamConfig};

    // As the `som` binary does.
    som_segment::torch::retain_freed_memory();

    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> anyhow::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("missing argument {i}; see the file's docs"))
    };
    match arg(1)? {
        "encode" => {
            let t = Instant::now();
            let sam = Sam::load_detect(arg(2)?)?;
            println!(
                "{{\"stage\": \"load\", \"ms\": {:.1}}}",
                t.elapsed().as_secs_f64() * 1e3
            );
            let image = image::open(arg(3)?)?.to_rgb8();
            let reps: usize = arg(4)?.parse()?;
            for _ in 0..reps {
                let t = Instant::now();
                let cpu = cpu_ms();
                let emb = sam.embed_image(&image)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let cpu = cpu_ms() - cpu;
                println!(
                    "{{\"stage\": \"encode\", \"ms\": {ms:.1}, \"cpu_ms\": {cpu:.1}, \"checksum\": {}}}",
                    emb.features.abs().sum(tch::Kind::Double).double_value(&[])
                );
            }
        }
        "amg" => {
            let sam = Sam::load_detect(arg(2)?)?;
            let image = image::open(arg(3)?)?.to_rgb8();
            let options: AmgOptions = serde_json::from_str(&std::fs::read_to_string(arg(4)?)?)?;
            let reps: usize = arg(5)?.parse()?;
            let reference = args.get(7).is_some_and(|a| a == "reference");
            let generator = AutomaticMaskGenerator::new(options)?.reference_upscaling(reference);
            let mut last = Vec::new();
            for _ in 0..reps {
                let t0 = Instant::now();
                let cpu = cpu_ms();
                let (records, t) = generator.generate_timed(&sam, &image)?;
                println!(
                    "{{\"stage\": \"amg\", \"ms\": {:.1}, \"cpu_ms\": {:.1}, \"encode_ms\": {:.1}, \"decode_ms\": {:.1}, \"post_ms\": {:.1}, \"records\": {}, \"exact_crops\": {}, \"shared_crops\": {}, \"crops\": {}}}",
                    t0.elapsed().as_secs_f64() * 1e3,
                    cpu_ms() - cpu,
                    t.encode_ms,
                    t.decode_ms,
                    t.post_ms,
                    records.len(),
                    t.exact_upscaling_crops,
                    t.shared_decoder_crops,
                    t.crops
                );
                last = records;
            }
            std::fs::write(arg(6)?, serde_json::to_string(&last)?)?;
        }
        "decode" => {
            // decode <config.json> <checkpoint> <image> <batches>: 64-point batches, timed apart.
            let config: SamConfig = serde_json::from_str(&std::fs::read_to_string(arg(2)?)?)?;
            let sam = Sam::load_with_config(arg(3)?, config)?;
            let image = image::open(arg(4)?)?.to_rgb8();
            let batches: usize = arg(5)?.parse()?;
            let emb = sam.embed_image(&image)?;
            let _guard = tch::no_grad_guard();
            let pts = tch::Tensor::rand([64, 1, 2], (tch::Kind::Double, tch::Device::Cpu)) * 100.0;
            let labels = tch::Tensor::ones([64, 1], (tch::Kind::Int, tch::Device::Cpu));
            let (mut pe, mut md, mut up) = (0.0, 0.0, 0.0);
            for _ in 0..batches {
                let t = Instant::now();
                let (sparse, dense) = sam.prompt_encoder().forward(Some((&pts, &labels)), None, None);
                let dpe = sam.prompt_encoder().dense_pe();
                pe += t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let (low, _iou) = sam
                    .mask_decoder()
                    .forward(&emb.features, &dpe, &sparse, &dense, true);
                md += t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let m = sam.postprocess_masks(&low, emb.input_size, emb.original_size);
                let _ = m.sum(tch::Kind::Float).double_value(&[]);
                up += t.elapsed().as_secs_f64() * 1e3;
            }
            println!("{{\"stage\": \"decode\", \"prompt_ms\": {pe:.1}, \"decoder_ms\": {md:.1}, \"upscale_ms\": {up:.1}, \"threads\": {}}}", tch::get_num_threads());
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
    Ok(())
}

/// User + system CPU time of this process (all threads), from /proc/self/stat, in ms.
#[cfg(feature = "torch")]
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `after` starts at field 3.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks * 10.0 // USER_HZ is 100 on Linux
}

#[cfg(not(feature = "torch"))]
fn main() {
    eprintln!("sam_bench needs the torch feature: cargo run --release -p som-segment --features torch --example sam_bench");
    std::process::exit(2);
}
