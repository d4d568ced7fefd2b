//! JPEG decoding: `som_core::jpeg` (pixel-identical to libjpeg-turbo, the
//! default of `som_core::io`) next to the `image` crate's decoder
//! (zune-jpeg), on rocket.jpg (640x427 baseline 4:4:4), a progressive
//! fixture and a 2048x1536 JPEG made at bench time. PIL's own decoding is
//! timed beside ours by `tools/bench/compare_jpeg.py`.

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::{big_jpeg, fixtures_dir};
use som_core::jpeg::{decode, Limits};

const LIMITS: Limits = Limits {
    max_side: som_core::io::MAX_IMAGE_SIDE,
    max_bytes: som_core::io::MAX_DECODE_BYTES,
};

fn jpeg(c: &mut Criterion) {
    let read = |p: &str| std::fs::read(fixtures_dir().join(p)).expect("fixture");
    let files = [
        ("rocket.jpg", read("images/rocket.jpg")),
        ("progressive_420.jpg", read("jpeg/progressive_420.jpg")),
        ("2048x1536.jpg", big_jpeg().expect("big JPEG")),
    ];
    for (name, bytes) in &files {
        let mut g = c.benchmark_group(format!("jpeg/{name}"));
        g.sample_size(20);
        g.bench_function("som_core::jpeg", |b| {
            b.iter(|| decode(bytes, &LIMITS).expect("decodes"))
        });
        g.bench_function("image (zune-jpeg)", |b| {
            b.iter(|| image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("decodes"))
        });
        g.finish();
    }
}

criterion_group!(benches, jpeg);
criterion_main!(benches);
