//! Felzenszwalb (scale 100, sigma 0.5, min_size 50) and the classic SoM
//! segmenter on each bundled photo at native size. skimage's felzenszwalb
//! takes 130-340 ms on these photos on the reference machine; the goal is
//! 4x faster. `tools/bench/compare_segment.py` runs both side by side.

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::fixtures_dir;
use som_core::Segmenter;
use som_segment::{felzenszwalb, Classic, FelzenszwalbParams};

const PHOTOS: [&str; 5] = [
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
];

fn segment(c: &mut Criterion) {
    let classic = Classic::default();
    for photo in PHOTOS {
        let image = som_core::io::load_image(&fixtures_dir().join("images").join(photo)).expect("photo");
        let mut g = c.benchmark_group(format!("segment/{photo}"));
        g.sample_size(20);
        g.bench_function("felzenszwalb", |b| {
            b.iter(|| felzenszwalb(&image, &FelzenszwalbParams::REFERENCE).expect("segments"))
        });
        g.bench_function("classic", |b| {
            b.iter(|| classic.segment(&image).expect("segments"))
        });
        g.finish();
    }
}

criterion_group!(benches, segment);
criterion_main!(benches);
