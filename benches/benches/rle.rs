//! COCO RLE encode/decode of the 200-mask 1024x768 reference set
//! (pycocotools: 64 ms encode, 240 ms decode; see tools/bench/compare_rle.py).

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::{load_rle_strings, load_set};
use som_core::{Mask, Rle};

fn rle(c: &mut Criterion) {
    let seg = load_set("synth_1024x768_n200").expect("fixture");
    let masks: Vec<Mask> = seg.regions().iter().filter_map(|r| r.mask.clone()).collect();
    let strings = load_rle_strings("synth_1024x768_n200").expect("fixture");
    let size = seg.size();
    let mut g = c.benchmark_group("rle/synth_1024x768_n200");
    g.bench_function("encode_200_masks_to_strings", |b| {
        b.iter(|| {
            masks
                .iter()
                .map(|m| m.to_rle().to_compressed())
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("decode_200_strings_to_masks", |b| {
        b.iter(|| {
            strings
                .iter()
                .map(|s| Rle::from_compressed(size, s).map(|r| r.to_mask()))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    g.finish();
}

criterion_group!(benches, rle);
criterion_main!(benches);
