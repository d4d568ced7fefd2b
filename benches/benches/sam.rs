//! SAM's automatic mask generator (needs the `torch` feature:
//! `cargo bench -p som-benches --features torch --bench sam`), image encoding included,
//! on the fixture models (`fixtures/sam/tiny.pth`, a small ViT, and
//! `fixtures/sam/mobile_tiny.pth`, a small TinyViT; both recognised from their shapes)
//! at the default settings (32x32 points) and with both thresholds at 0, each with the
//! fast exact path and with LibTorch upscaling every mask as the reference does
//! (`reference_upscaling`): the gap between the two is what the exact levers save.
//!
//! `SOM_SAM_BENCH_CHECKPOINT=path.pth` (and optionally `SOM_SAM_BENCH_IMAGE`) adds a
//! full-size model on a photo; `tools/bench/compare_sam.py` times the same generator
//! against the Python references side by side.

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::fixtures_dir;
use som_segment::sam::{AmgOptions, AutomaticMaskGenerator, Sam};

fn settings() -> [(&'static str, AmgOptions); 2] {
    let default = AmgOptions::default();
    let zero = AmgOptions {
        pred_iou_thresh: 0.0,
        stability_score_thresh: 0.0,
        ..AmgOptions::default()
    };
    [("default", default), ("zero", zero)]
}

fn generator(c: &mut Criterion) {
    tch::set_num_threads(2);
    let fixture_image = fixtures_dir().join("sam").join("image.png");
    let mut models = vec![
        (
            "tiny_vit_b",
            fixtures_dir().join("sam").join("tiny.pth"),
            fixture_image.clone(),
        ),
        (
            "tiny_vit_t",
            fixtures_dir().join("sam").join("mobile_tiny.pth"),
            fixture_image.clone(),
        ),
    ];
    if let Ok(checkpoint) = std::env::var("SOM_SAM_BENCH_CHECKPOINT") {
        let image = std::env::var("SOM_SAM_BENCH_IMAGE")
            .map(Into::into)
            .unwrap_or_else(|_| fixtures_dir().join("images").join("coffee.png"));
        models.push(("checkpoint", checkpoint.into(), image));
    }
    for (name, checkpoint, image) in models {
        let sam = Sam::load_detect(&checkpoint).expect("SAM checkpoint");
        let image = image::open(&image).expect("image").to_rgb8();
        let mut g = c.benchmark_group(format!("sam_amg/{name}"));
        g.sample_size(10);
        for (setting, options) in settings() {
            for (path, reference) in [("fast", false), ("reference_upscaling", true)] {
                let amg = AutomaticMaskGenerator::new(options.clone())
                    .expect("options")
                    .reference_upscaling(reference);
                g.bench_function(format!("{setting}/{path}"), |b| {
                    b.iter(|| amg.generate(&sam, &image).expect("records"))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, generator);
criterion_main!(benches);
