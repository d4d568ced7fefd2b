//! Prints median timings of our implementation as JSON lines, for the
//! side-by-side comparison scripts in `tools/bench/`.
//!
//! Usage: `som-bench rle [SET] [REPS]`, `som-bench eval _ [REPS]`

use anyhow::bail;
use som_benches::{load_rle_strings, load_set, time_median};
use som_core::{Mask, Rle};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("rle");
    let set = args.get(1).map(String::as_str).unwrap_or("synth_1024x768_n200");
    let reps: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(10);
    match what {
        "rle" => {
            let seg = load_set(set)?;
            let masks: Vec<Mask> = seg.regions().iter().filter_map(|r| r.mask.clone()).collect();
            let strings = load_rle_strings(set)?;
            let enc = time_median(reps, || {
                let out: Vec<String> = masks.iter().map(|m| m.to_rle().to_compressed()).collect();
                assert_eq!(out, strings, "encoded strings differ from pycocotools");
            });
            let dec = time_median(reps, || {
                let out: Vec<Mask> = strings
                    .iter()
                    .map(|s| Rle::from_compressed(seg.size(), s).map(|r| r.to_mask()))
                    .collect::<Result<_, _>>()
                    .expect("valid fixture");
                assert_eq!(out.len(), masks.len());
            });
            println!(
                "{}",
                serde_json::json!({"set": set, "what": "rle_encode", "median_ms": enc})
            );
            println!(
                "{}",
                serde_json::json!({"set": set, "what": "rle_decode", "median_ms": dec})
            );
        }
        "eval" => eval(reps)?,
        other => bail!("unknown benchmark {other:?} (known: rle, eval)"),
    }
    Ok(())
}

/// som-eval's heavy metrics on the workloads of `som_benches::eval`; each line
/// carries a check value the comparison script matches against the reference.
fn eval(reps: usize) -> anyhow::Result<()> {
    use som_benches::eval::{coco_rles, davis_pairs, label_maps};
    use som_eval::metrics::{coco, davis, semseg};
    let pairs = davis_pairs(50)?;
    let mut f_sum = 0.0;
    let f = time_median(reps, || {
        f_sum = pairs
            .iter()
            .map(|(g, p)| davis::boundary_measure(g, p, davis::BOUND_TH).expect("same size"))
            .sum::<f64>();
    });
    let maps = label_maps(8);
    let mut miou_value = 0.0;
    let miou = time_median(reps, || {
        let mut cm = semseg::ConfusionMatrix::new(150);
        for (gt, pred) in &maps {
            cm.add(&semseg::LabelConvention::ADE20K, gt, pred, "bench")
                .expect("valid");
        }
        miou_value = cm.mean_iou().expect("classes present");
    });
    let (dt, gt) = coco_rles()?;
    let mut iou_sum = 0.0;
    let iou = time_median(reps, || {
        let m = coco::iou(&dt, &gt, &vec![false; gt.len()]).expect("same size");
        iou_sum = m.iter().flatten().sum::<f64>();
    });
    for (what, ms, check) in [
        ("davis_f_50_pairs_854x480", f, f_sum),
        ("miou_ade20k_8x512x512", miou, miou_value),
        ("coco_iou_200x200", iou, iou_sum),
    ] {
        println!(
            "{}",
            serde_json::json!({"what": what, "median_ms": ms, "check": check})
        );
    }
    Ok(())
}
