//! The metrics against their references, on fixtures written by
//! tools/fixtures/gen_eval.py (pycocotools, numpy formulas, the DAVIS 2017 toolkit).

use std::path::PathBuf;

use serde_json::Value;
use som_core::json::read_regions;
use som_core::{ImageSize, Mask, Rle};
use som_eval::metrics::{coco, davis, grounding, refer, semseg};
use som_eval::LabelMap;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn load(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn rles(set: &str) -> Vec<Rle> {
    let (_, seg) =
        read_regions(&std::fs::read_to_string(root().join(format!("masks/{set}.json"))).unwrap()).unwrap();
    seg.regions()
        .iter()
        .map(|r| r.mask.as_ref().unwrap().to_rle())
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn coco_iou_matrix_with_crowd_flags_equals_pycocotools() {
    let dt = rles("synth_1024x768_n200_b");
    let gt = rles("synth_1024x768_n200");
    let doc = load("eval/metrics/coco_crowd.json");
    let crowd: Vec<bool> = doc["iscrowd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64() == Some(1))
        .collect();
    let ours = coco::iou(&dt, &gt, &crowd).unwrap();
    let plain = load("eval/iou_n200_vs_b.json");
    let mut expected = vec![vec![0.0; gt.len()]; dt.len()];
    for t in plain["nonzero"].as_array().unwrap() {
        let (i, j) = (t[0].as_u64().unwrap() as usize, t[1].as_u64().unwrap() as usize);
        if !crowd[j] {
            expected[i][j] = f(&t[2]);
        }
    }
    for t in doc["nonzero_crowd_columns"].as_array().unwrap() {
        expected[t[0].as_u64().unwrap() as usize][t[1].as_u64().unwrap() as usize] = f(&t[2]);
    }
    let mut crowd_nonzero = 0;
    for (i, row) in expected.iter().enumerate() {
        for (j, &e) in row.iter().enumerate() {
            assert_eq!(ours[i][j], e, "dt {i} gt {j} (crowd {})", crowd[j]);
            crowd_nonzero += (crowd[j] && e > 0.0) as usize;
        }
    }
    assert!(crowd_nonzero > 1000, "{crowd_nonzero}");
}

#[test]
fn coco_area_and_boxes_equal_pycocotools_on_every_reference_set() {
    let mut n = 0;
    let mut sets: Vec<PathBuf> = std::fs::read_dir(root().join("masks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sets.sort();
    assert_eq!(sets.len(), 9, "the nine reference mask sets");
    for path in sets {
        let set = path.display();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (h, w) = (
            doc["image"]["height"].as_u64().unwrap() as u32,
            doc["image"]["width"].as_u64().unwrap() as u32,
        );
        for r in doc["regions"].as_array().unwrap() {
            let rle = Rle::from_compressed(
                ImageSize::new(w, h),
                r["segmentation"]["counts"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(
                coco::area(&rle),
                r["area"].as_u64().unwrap(),
                "{set} region {}",
                r["id"]
            );
            let b: Vec<f64> = r["bbox"].as_array().unwrap().iter().map(f).collect();
            assert_eq!(coco::to_bbox(&rle).to_vec(), b, "{set} region {}", r["id"]);
            n += 1;
        }
    }
    assert!(n > 2500, "{n}");
}

#[test]
fn coco_merges_equal_pycocotools() {
    let dt = rles("synth_1024x768_n200_b");
    let gt = rles("synth_1024x768_n200");
    let doc = load("eval/metrics/coco_merge.json");
    let merges = doc["merges"].as_array().unwrap();
    assert!(merges.len() > 50);
    for m in merges {
        let mut group = vec![gt[m["gt"].as_u64().unwrap() as usize].clone()];
        group.extend(
            m["dt"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| dt[i.as_u64().unwrap() as usize].clone()),
        );
        let u = coco::merge(&group, false).unwrap();
        let i = coco::merge(&group, true).unwrap();
        assert_eq!(u.to_compressed(), m["union"].as_str().unwrap(), "{m}");
        assert_eq!(i.to_compressed(), m["intersection"].as_str().unwrap(), "{m}");
        assert_eq!(coco::area(&u), m["union_area"].as_u64().unwrap());
        assert_eq!(coco::area(&i), m["intersection_area"].as_u64().unwrap());
    }
}

#[test]
fn coco_quirks_on_non_canonical_rles_equal_pycocotools() {
    let doc = load("eval/metrics/coco_quirks.json");
    let cases: Vec<Rle> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let size = c["size"].as_array().unwrap();
            let (h, w) = (size[0].as_u64().unwrap() as u32, size[1].as_u64().unwrap() as u32);
            let counts = c["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let rle = Rle::from_counts(ImageSize::new(w, h), counts).unwrap();
            assert_eq!(rle.to_compressed(), c["compressed"].as_str().unwrap());
            assert_eq!(coco::area(&rle), c["area"].as_u64().unwrap(), "{c}");
            let b: Vec<f64> = c["bbox"].as_array().unwrap().iter().map(f).collect();
            assert_eq!(coco::to_bbox(&rle).to_vec(), b, "{c}");
            rle
        })
        .collect();
    let mut truncated = 0;
    for m in doc["merges"].as_array().unwrap() {
        let (a, b) = (
            m["a"].as_u64().unwrap() as usize,
            m["b"].as_u64().unwrap() as usize,
        );
        let merged = coco::merge(&[cases[a].clone(), cases[b].clone()], m["intersect"] == 1);
        if m["pixels"].as_u64() == Some(cases[a].size().pixels()) {
            assert_eq!(
                merged.unwrap().to_compressed(),
                m["compressed"].as_str().unwrap(),
                "{m}"
            );
        } else {
            // pycocotools returns runs that stop short of the image; we refuse.
            assert!(merged.unwrap_err().to_string().contains("stops after"), "{m}");
            truncated += 1;
        }
    }
    assert_eq!(truncated, 6);
    let same: Vec<usize> = doc["same_size"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let group: Vec<Rle> = same.iter().map(|&i| cases[i].clone()).collect();
    let crowd: Vec<bool> = doc["iou_iscrowd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v == 1)
        .collect();
    let ours = coco::iou(&group, &group, &crowd).unwrap();
    for (i, row) in doc["iou"].as_array().unwrap().iter().enumerate() {
        for (j, v) in row.as_array().unwrap().iter().enumerate() {
            assert_eq!(ours[i][j], f(v), "({i}, {j})");
        }
    }
}

#[test]
fn semantic_miou_equals_the_numpy_confusion_matrix() {
    let doc = load("eval/metrics/semseg.json");
    for (name, case) in doc.as_object().unwrap() {
        let n = case["num_classes"].as_u64().unwrap() as u32;
        let convention = semseg::LabelConvention {
            num_classes: n,
            ignore_index: case["ignore_index"].as_u64().unwrap() as u32,
            reduce_zero_label: case["reduce_zero_label"].as_bool().unwrap(),
        };
        if name == "ade20k" {
            assert_eq!(convention, semseg::LabelConvention::ADE20K);
        }
        let mut cm = semseg::ConfusionMatrix::new(n);
        for (k, img) in case["images"].as_array().unwrap().iter().enumerate() {
            let v = |key: &str| -> Vec<u32> {
                img[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            cm.add(&convention, &v("gt"), &v("pred"), &format!("{name} image {k}"))
                .unwrap();
        }
        let opt = |v: &Value| v.as_f64();
        let want_iou: Vec<Option<f64>> = case["iou"].as_array().unwrap().iter().map(opt).collect();
        let got_iou = cm.iou();
        assert_eq!(got_iou.len(), want_iou.len());
        for (c, (g, w)) in got_iou.iter().zip(&want_iou).enumerate() {
            match (g, w) {
                (Some(g), Some(w)) => assert!(close(*g, *w, 1e-12), "{name} class {c}: {g} vs {w}"),
                (None, None) => {}
                _ => panic!("{name} class {c}: {g:?} vs {w:?}"),
            }
        }
        assert!(
            want_iou.iter().filter(|v| v.is_some()).count() >= 8,
            "{name}: too few classes present"
        );
        assert!(close(cm.mean_iou().unwrap(), f(&case["miou"]), 1e-12), "{name}");
        assert!(
            close(cm.mean_accuracy().unwrap(), f(&case["macc"]), 1e-12),
            "{name}"
        );
        assert!(
            close(cm.pixel_accuracy().unwrap(), f(&case["aacc"]), 1e-12),
            "{name}"
        );
    }
}

#[test]
fn open_vocabulary_precision_equals_numpy() {
    let doc = load("eval/metrics/open_vocab.json");
    let mut s = semseg::NamingScore::default();
    for p in doc["pairs"].as_array().unwrap() {
        s.add(&[p[0].as_str().unwrap()], p[1].as_str());
    }
    assert_eq!(s.named, doc["named"].as_u64().unwrap());
    assert_eq!(s.correct, doc["correct"].as_u64().unwrap());
    assert!(close(s.precision().unwrap(), f(&doc["precision"]), 1e-12));
    assert!(close(s.accuracy().unwrap(), f(&doc["accuracy"]), 1e-12));
}

fn boxes(v: &Value) -> Vec<[f64; 4]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let b: Vec<f64> = b.as_array().unwrap().iter().map(f).collect();
            [b[0], b[1], b[2], b[3]]
        })
        .collect()
}

#[test]
fn rec_accuracy_and_res_iou_equal_numpy() {
    let doc = load("eval/metrics/refer.json");
    let b = &doc["boxes"];
    let (gt, pred) = (boxes(&b["gt"]), boxes(&b["pred"]));
    let mut rec = refer::RecScore::default();
    for (k, (p, g)) in pred.iter().zip(&gt).enumerate() {
        let iou = rec.add(Some(*p), *g);
        assert!(
            close(iou, f(&b["iou"][k]), 1e-12),
            "box {k}: {iou} vs {}",
            b["iou"][k]
        );
    }
    assert!(close(rec.accuracy().unwrap(), f(&b["acc_at_0_5"]), 1e-12));
    assert!(rec.hits > 20 && rec.hits < rec.count - 20, "{rec:?}");

    let m = &doc["masks"];
    let dt = rles("synth_1024x768_n200_b");
    let gtm = rles("synth_1024x768_n200");
    let mut res = refer::ResScore::default();
    for (k, pair) in m["pairs"].as_array().unwrap().iter().enumerate() {
        let i = pair[0].as_u64().unwrap() as usize;
        let g = gtm[i].to_mask();
        let p = if pair[1].as_bool().unwrap() {
            dt[i].to_mask()
        } else {
            Mask::empty(g.size())
        };
        let before = res;
        let iou = res.add(&p, &g).unwrap();
        assert_eq!(
            res.intersection - before.intersection,
            m["intersection"][k].as_u64().unwrap()
        );
        assert_eq!(res.union - before.union, m["union"][k].as_u64().unwrap());
        assert!(close(iou, f(&m["iou"][k]), 1e-15));
    }
    assert!(close(res.mean_iou().unwrap(), f(&m["miou"]), 1e-12));
    assert!(close(res.cumulative_iou().unwrap(), f(&m["ciou"]), 1e-12));
}

#[test]
fn flickr_recall_under_both_protocols_equals_mdetr_formula() {
    let doc = load("eval/metrics/flickr.json");
    let mut any = grounding::RecallAt1::new(grounding::BoxProtocol::AnyBox);
    let mut merged = grounding::RecallAt1::new(grounding::BoxProtocol::MergedBox);
    let mut differ = 0;
    for (k, p) in doc["phrases"].as_array().unwrap().iter().enumerate() {
        let gt: Vec<[f64; 4]> = boxes(&p["gt"])
            .iter()
            .map(|b| [b[0], b[1], b[2] - b[0], b[3] - b[1]])
            .collect();
        let pred: Vec<f64> = p["pred"].as_array().unwrap().iter().map(f).collect();
        let pred = [pred[0], pred[1], pred[2], pred[3]];
        assert_eq!(
            any.add(Some(pred), &gt),
            p["any_box"].as_bool().unwrap(),
            "phrase {k}"
        );
        assert_eq!(
            merged.add(Some(pred), &gt),
            p["merged_box"].as_bool().unwrap(),
            "phrase {k}"
        );
        differ += (p["any_box"] != p["merged_box"]) as usize;
    }
    assert!(
        differ > 10,
        "the protocols should disagree on some phrases ({differ})"
    );
    assert!(close(any.recall().unwrap(), f(&doc["recall_any_box"]), 1e-12));
    assert!(close(
        merged.recall().unwrap(),
        f(&doc["recall_merged_box"]),
        1e-12
    ));
}

#[test]
fn davis_j_and_f_equal_the_davis_2017_toolkit() {
    let base = root().join("eval/davis");
    let expected = load("eval/davis/expected.json");
    let sequences: Vec<String> = std::fs::read_to_string(base.join("ImageSets/2017/val.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut objects = Vec::new();
    for seq in &sequences {
        let mut names: Vec<String> = std::fs::read_dir(base.join("Annotations/480p").join(seq))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".png")
                    .to_string()
            })
            .collect();
        names.sort();
        let gt: Vec<LabelMap> = names
            .iter()
            .map(|n| LabelMap::read_png(&base.join(format!("Annotations/480p/{seq}/{n}.png"))).unwrap())
            .collect();
        let pred: Vec<LabelMap> = names[1..names.len() - 1]
            .iter()
            .map(|n| LabelMap::read_png(&base.join(format!("pred/{seq}/{n}.png"))).unwrap())
            .collect();
        objects.extend(davis::score_sequence(seq, &gt, &pred, &names).unwrap());
    }
    let tol = 1e-12;
    for o in &objects {
        let name = o.name();
        let frames = &expected["frames"][&name];
        for (k, (j, fv)) in o.j_frames.iter().zip(&o.f_frames).enumerate() {
            assert!(
                close(*j, f(&frames["J"][k]), tol),
                "{name} frame {k}: J {j} vs {}",
                frames["J"][k]
            );
            assert!(
                close(*fv, f(&frames["F"][k]), tol),
                "{name} frame {k}: F {fv} vs {}",
                frames["F"][k]
            );
        }
        let e = &expected["objects"][&name];
        for (ours, key) in [(o.j, "J"), (o.f, "F")] {
            assert!(close(ours.mean, f(&e[key]["M"]), tol), "{name} {key} mean");
            assert!(close(ours.recall, f(&e[key]["R"]), tol), "{name} {key} recall");
            assert!(close(ours.decay, f(&e[key]["D"]), tol), "{name} {key} decay");
        }
    }
    assert_eq!(objects.len(), expected["per_object"].as_array().unwrap().len());
    let g = davis::global(&objects).unwrap();
    for (col, v) in g.columns() {
        assert!(
            close(v, f(&expected["global"][col]), tol),
            "{col}: {v} vs {}",
            expected["global"][col]
        );
    }
    // The fixture exercises every branch of F: partial matches, empty results, no boundaries.
    let all_f: Vec<f64> = objects.iter().flat_map(|o| o.f_frames.clone()).collect();
    assert!(all_f.contains(&1.0) && all_f.contains(&0.0));
    assert!(all_f.iter().filter(|&&v| v > 0.0 && v < 1.0).count() > 10);
}
