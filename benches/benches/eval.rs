//! som-eval's heavy metrics: DAVIS boundary F on 480p frames, the mIoU
//! confusion matrix, the COCO IoU matrix (see tools/bench/compare_eval.py for
//! the side-by-side with the DAVIS toolkit, numpy and pycocotools).

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::eval::{coco_rles, davis_pairs, label_maps};
use som_eval::metrics::{coco, davis, semseg};

fn metrics(c: &mut Criterion) {
    let pairs = davis_pairs(50).expect("fixture");
    let maps = label_maps(8);
    let (dt, gt) = coco_rles().expect("fixture");
    let mut g = c.benchmark_group("eval");
    g.bench_function("davis_f_50_pairs_854x480", |b| {
        b.iter(|| {
            pairs
                .iter()
                .map(|(g, p)| davis::boundary_measure(g, p, davis::BOUND_TH).expect("same size"))
                .sum::<f64>()
        })
    });
    g.bench_function("davis_j_50_pairs_854x480", |b| {
        b.iter(|| {
            pairs
                .iter()
                .map(|(g, p)| davis::region_similarity(g, p).expect("same size"))
                .sum::<f64>()
        })
    });
    g.bench_function("miou_ade20k_8x512x512", |b| {
        b.iter(|| {
            let mut cm = semseg::ConfusionMatrix::new(150);
            for (gt, pred) in &maps {
                cm.add(&semseg::LabelConvention::ADE20K, gt, pred, "bench")
                    .expect("valid");
            }
            cm.mean_iou()
        })
    });
    g.bench_function("coco_iou_200x200", |b| {
        b.iter(|| coco::iou(&dt, &gt, &vec![false; gt.len()]).expect("same size"))
    });
    g.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
