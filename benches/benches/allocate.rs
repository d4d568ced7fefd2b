//! Mark allocation on the reference mask sets, both modes, labels measured
//! with the real renderer. The reference (../shared/ref/som_ref.py, cv2) takes
//! 183 ms (bbox-crop variant) and 895 ms (full frame, as released SoM does it)
//! on synth_1024x768_n200; goals: paper >= 20x and independent >= 100x faster
//! (DESIGN.md section 6). Measure the ratios side by side with
//! tools/bench/compare_alloc.py.

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::load_set;
use som_core::MarkAllocator;
use som_marks::{AllocationMode, Allocator, AllocatorConfig, Renderer};

fn allocate(c: &mut Criterion) {
    let measure = Renderer::default();
    let sets = [
        (
            "synth_1024x768_n200",
            &[AllocationMode::Paper, AllocationMode::Independent][..],
        ),
        (
            "felz_astronaut",
            &[AllocationMode::Paper, AllocationMode::Independent][..],
        ),
        ("felz_camera", &[AllocationMode::Paper][..]),
        ("felz_chelsea", &[AllocationMode::Paper][..]),
        ("felz_coffee", &[AllocationMode::Paper][..]),
        ("felz_rocket", &[AllocationMode::Paper][..]),
    ];
    for (name, modes) in sets {
        let seg = load_set(name).expect("fixture");
        let mut g = c.benchmark_group(format!("allocate/{name}"));
        g.sample_size(30);
        for &mode in modes {
            let alloc = Allocator::new(AllocatorConfig {
                mode,
                ..Default::default()
            });
            g.bench_function(mode.to_string(), |b| {
                b.iter(|| alloc.allocate(&seg, &measure).expect("allocation"))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, allocate);
criterion_main!(benches);
