//! Rendering 200 masks with tints and labels at 1024×768 (DESIGN §6:
//! supervision's MaskAnnotator + LabelAnnotator take 334 ms; the goal is ≥ 10×
//! faster). `tools/bench/compare_render.py` runs the reference and this bench
//! side by side and prints the ratio.
//!
//! Also: our default look (with contours, and with boxes), PNG encoding, and
//! the dense `felz_astronaut` segmentation (585 regions).
//!
//! Marks sit at the centres of the regions' boxes with labels of the default
//! size centred on them (the Python side uses the same anchors), numbered
//! largest region first.

use criterion::{criterion_group, criterion_main, Criterion};
use som_benches::{background, load_set};
use som_core::io::encode_png;
use som_core::{BBox, LabelMeasure, Mark, MarkRenderer, Segmentation};
use som_marks::render::{Draw, RenderConfig, Renderer};

const SET: &str = "synth_1024x768_n200";

/// One mark per region at its box centre, label of scale 1 centred there and
/// kept inside the image.
fn marks_at_centres(seg: &Segmentation, labels: &dyn LabelMeasure) -> Vec<Mark> {
    seg.order_by_area()
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let c = seg.regions()[i].bbox.center();
            let text = (rank + 1).to_string();
            let (w, h) = labels.label_size(&text, seg.size(), 1.0);
            let x = c.x.saturating_sub(w / 2).min(seg.size().width.saturating_sub(w));
            let y = c.y.saturating_sub(h / 2).min(seg.size().height.saturating_sub(h));
            Mark::new(rank as u32 + 1, text, c, i, BBox::new(x, y, w, h))
        })
        .collect()
}

fn render(c: &mut Criterion) {
    let seg = load_set(SET).expect("fixture mask set");
    let bg = background(SET, &seg).expect("background photo");
    let mut g = c.benchmark_group(format!("render/{SET}"));
    for draw in ["mask,mark", "mask,contour,mark", "mark,mask,contour,box"] {
        let renderer = Renderer::new(RenderConfig {
            draw: draw.parse::<Draw>().expect("draw list"),
            ..RenderConfig::default()
        });
        let marks = marks_at_centres(&seg, &renderer);
        g.bench_function(draw.replace(',', "+"), |b| {
            b.iter(|| renderer.render(&bg, &seg, &marks).expect("render"))
        });
    }
    let renderer = Renderer::default();
    let marked = renderer
        .render(&bg, &seg, &marks_at_centres(&seg, &renderer))
        .expect("render");
    g.bench_function("encode_png", |b| b.iter(|| encode_png(&marked).expect("png")));
    g.finish();

    // a dense photo segmentation (585 regions, 512x512) in the default look
    let dense = "felz_astronaut";
    let seg = load_set(dense).expect("fixture mask set");
    let bg = background(dense, &seg).expect("photo");
    let renderer = Renderer::default();
    let marks = marks_at_centres(&seg, &renderer);
    c.bench_function(&format!("render/{dense}/mark+mask+contour"), |b| {
        b.iter(|| renderer.render(&bg, &seg, &marks).expect("render"))
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
