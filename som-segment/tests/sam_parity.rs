//! Parity with segment_anything 1.0 on random weights (fixtures from tools/fixtures/gen_sam.py).
#![cfg(feature = "torch")]

mod sam_support;

use sam_support::*;
use som_segment::sam::{
    resize_longest_side, AmgOptions, AmgRecord, AmgTimings, AutomaticMaskGenerator, EncoderBlock,
    PointPrompt, Prompt, Sam, Weights,
};
use tch::{Kind, Tensor};

#[test]
fn resize_longest_side_is_pils_bilinear() {
    let exp = expected();
    let meta = meta();
    for (k, case) in meta["resize_cases"].as_array().unwrap().iter().enumerate() {
        let input = &exp[&format!("resize.{k}.input")];
        let output = &exp[&format!("resize.{k}.output")];
        let (h, w) = (input.size()[0] as u32, input.size()[1] as u32);
        let img =
            image::RgbImage::from_raw(w, h, Vec::<u8>::try_from(input.flatten(0, -1)).unwrap()).unwrap();
        let target = case["target"].as_u64().unwrap() as u32;
        let got = resize_longest_side(&img, target).expect("resizable");
        assert_eq!(
            (got.height() as i64, got.width() as i64),
            (output.size()[0], output.size()[1]),
            "case {k} size"
        );
        let want = Vec::<u8>::try_from(output.flatten(0, -1)).unwrap();
        let diff = got.as_raw().iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "case {k}: {diff} bytes differ from PIL");
    }
}

#[test]
fn image_embeddings_match() {
    let sam = tiny_sam_pth();
    let emb = sam.embed_image(&image()).unwrap();
    let meta = meta();
    let input: Vec<u32> = meta["input_size"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!([emb.input_size.0, emb.input_size.1], [input[0], input[1]]);
    let d = max_abs_diff(&emb.features, &expected()["embeddings"]);
    assert!(d <= TOL, "embeddings differ by {d}");
}

fn prompt_from(p: &serde_json::Value, prev: Option<&Tensor>) -> Prompt {
    let points = p["points"]
        .as_array()
        .map(|pts| {
            pts.iter()
                .zip(p["labels"].as_array().unwrap())
                .map(|(xy, l)| PointPrompt {
                    x: xy[0].as_f64().unwrap(),
                    y: xy[1].as_f64().unwrap(),
                    foreground: l.as_i64() == Some(1),
                })
                .collect()
        })
        .unwrap_or_default();
    let bbox = p["box"].as_array().map(|b| {
        let v: Vec<f64> = b.iter().map(|x| x.as_f64().unwrap()).collect();
        [v[0], v[1], v[2], v[3]]
    });
    Prompt {
        points,
        bbox,
        mask_input: prev.map(Tensor::shallow_clone),
        multimask_output: p["multimask"].as_bool().unwrap(),
    }
}

#[test]
fn prompted_masks_and_iou_match() {
    let sam = tiny_sam_pth();
    let emb = sam.embed_image(&image()).unwrap();
    let exp = expected();
    let meta = meta();
    let mut low_res: std::collections::BTreeMap<String, Tensor> = Default::default();
    for p in meta["prompts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let prev = p["mask_from"].as_str().map(|from| {
            let i = p["mask_index"].as_i64().unwrap();
            low_res[from].get(i).unsqueeze(0)
        });
        let pred = sam.predict(&emb, &prompt_from(p, prev.as_ref())).unwrap();
        let want_low = &exp[&format!("prompt.{name}.low_res")];
        let d = max_abs_diff(&pred.low_res_logits, want_low);
        assert!(d <= logits_tol(want_low), "{name}: low-res logits differ by {d}");
        let want_iou = &exp[&format!("prompt.{name}.iou")];
        let got_iou = Tensor::from_slice(&pred.iou_predictions);
        let d = max_abs_diff(&got_iou, want_iou);
        assert!(d <= TOL, "{name}: iou differs by {d}");
        let masks = p["masks"].as_array().unwrap();
        assert_eq!(pred.masks.len(), masks.len(), "{name}: mask count");
        for (i, (m, want)) in pred.masks.iter().zip(masks).enumerate() {
            assert_eq!(
                m.to_rle().to_compressed(),
                want["counts"].as_str().unwrap(),
                "{name}: mask {i}"
            );
        }
        low_res.insert(name.to_owned(), pred.low_res_logits.shallow_clone());
    }
}

fn check_records(case: &str, got: &[AmgRecord], want: &serde_json::Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{case}: record count");
    assert!(
        !got.is_empty(),
        "{case}: the fixture must exercise at least one mask"
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w: AmgRecord = serde_json::from_value(w.clone()).unwrap();
        assert_eq!(g.segmentation, w.segmentation, "{case} #{i}: segmentation");
        assert_eq!(g.area, w.area, "{case} #{i}: area");
        assert_eq!(g.bbox, w.bbox, "{case} #{i}: bbox");
        assert_eq!(g.crop_box, w.crop_box, "{case} #{i}: crop_box");
        // serde_json may read a decimal one ulp off (its fast float parser).
        let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(1.0);
        assert!(
            g.point_coords.len() == w.point_coords.len()
                && g.point_coords
                    .iter()
                    .zip(&w.point_coords)
                    .all(|(a, b)| close(a[0], b[0]) && close(a[1], b[1])),
            "{case} #{i}: point_coords {:?} vs {:?}",
            g.point_coords,
            w.point_coords
        );
        assert!(
            (g.predicted_iou - w.predicted_iou).abs() <= 1e-5,
            "{case} #{i}: iou {} vs {}",
            g.predicted_iou,
            w.predicted_iou
        );
        // The stability score is a float32 ratio of two pixel counts: equal counts give the
        // same float32 bits, so any difference means a pixel decided differently. (Compared
        // as float32: serde_json may read the decimal one f64 ulp off.)
        assert!(
            (g.stability_score as f32).to_bits() == (w.stability_score as f32).to_bits()
                || (g.stability_score.is_nan() && w.stability_score.is_nan()),
            "{case} #{i}: stability {} vs {}",
            g.stability_score,
            w.stability_score
        );
    }
}

/// Every generator case of the fixtures with the fast generator (exact decisions from the
/// low-res logits), and the cheaper ones also with the reference upscaling (every mask
/// upscaled by LibTorch): both give the reference's records.
#[test]
fn automatic_mask_generator_records_match() {
    let sam = tiny_sam_pth();
    let img = image();
    let cases = meta()["amg"].as_array().unwrap().clone();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for required in [
        "default",
        "zero_thresholds",
        "keep_all",
        "crops_default",
        "crops_small_regions",
    ] {
        assert!(names.contains(&required), "fixture case {required} missing");
    }
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let options: AmgOptions = serde_json::from_value(case["options"].clone()).unwrap();
        let slow_too = !matches!(name, "default" | "crops_default");
        for reference in [false, true] {
            if reference && !slow_too {
                continue;
            }
            let generator = AutomaticMaskGenerator::new(options.clone())
                .unwrap()
                .reference_upscaling(reference);
            let (records, timings) = generator.generate_timed(&sam, &img).unwrap();
            let label = format!(
                "{name} ({})",
                if reference { "reference upscaling" } else { "fast" }
            );
            // The fast generator must really have taken both shortcuts on every crop.
            let fast = if reference { 0 } else { timings.crops };
            assert!(timings.crops >= 1, "{label}: no crop");
            assert_eq!(timings.exact_upscaling_crops, fast, "{label}: exact upscaling");
            assert_eq!(timings.shared_decoder_crops, fast, "{label}: shared decoder");
            check_records(&label, &records, &case["records"]);
        }
    }
}

/// The fast generator's records (as JSON) with its timings, and the records of the reference
/// upscaling (every mask upscaled by LibTorch), for `options`; panics when the reference
/// gives no record (the comparison would test nothing).
fn fast_and_reference(
    sam: &Sam,
    img: &image::RgbImage,
    options: &AmgOptions,
) -> (String, AmgTimings, String) {
    let run = |reference| {
        let generator = AutomaticMaskGenerator::new(options.clone())
            .unwrap()
            .quiet(true)
            .reference_upscaling(reference);
        generator.generate_timed(sam, img).unwrap()
    };
    let json = |r: &[AmgRecord]| serde_json::to_string(r).unwrap();
    let (fast, timings) = run(false);
    let (slow, _) = run(true);
    assert!(!slow.is_empty(), "the reference upscaling gives no record");
    (json(&fast), timings, json(&slow))
}

/// The fast generator decodes a batch in groups of a few prompts; whatever the batch size
/// (so whatever the last group's size), its records equal those of the reference decoder,
/// which decodes every batch whole.
#[test]
fn every_batch_size_gives_the_reference_records() {
    let sam = tiny_sam_pth();
    let img = image();
    for points_per_batch in 2..=13 {
        let options = AmgOptions {
            points_per_side: 5,
            points_per_batch,
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            ..AmgOptions::default()
        };
        let (fast, timings, slow) = fast_and_reference(&sam, &img, &options);
        assert_eq!(timings.shared_decoder_crops, 1, "batches of {points_per_batch}");
        assert_eq!(fast, slow, "batches of {points_per_batch}");
    }
}

/// Without a stability filter the fast generator counts the stability score after NMS,
/// from logits kept down to the lowest of the score's and the mask's thresholds; with a
/// negative offset (allowed, as upstream allows it) the lowest is the score's nominal
/// upper threshold, with a zero one all three are equal. Every offset gives the records of
/// the reference upscaling.
#[test]
fn every_stability_offset_gives_the_reference_records() {
    let sam = tiny_sam_pth();
    let img = image();
    for stability_score_offset in [-1.0, -0.25, 0.0, 0.5, 1.0] {
        let options = AmgOptions {
            points_per_side: 5,
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            stability_score_offset,
            ..AmgOptions::default()
        };
        let (fast, timings, slow) = fast_and_reference(&sam, &img, &options);
        assert_eq!(
            timings.exact_upscaling_crops, 1,
            "offset {stability_score_offset}"
        );
        assert_eq!(fast, slow, "offset {stability_score_offset}");
    }
}

#[test]
fn pth_and_safetensors_give_the_same_model() {
    let a = Weights::from_file(fixture("tiny.pth")).unwrap();
    let b = Weights::from_file(fixture("tiny.safetensors")).unwrap();
    let names: Vec<&str> = a.names().collect();
    assert_eq!(names, b.names().collect::<Vec<_>>());
    assert!(names.contains(&"image_encoder.blocks.0.attn.qkv.weight"));
    for n in names {
        assert!(a.get(n).unwrap().equal(b.get(n).unwrap()), "{n} differs");
    }
    let img = image();
    let ea = tiny_sam_pth().embed_image(&img).unwrap();
    let eb = tiny_sam_safetensors().embed_image(&img).unwrap();
    assert!(ea.features.equal(&eb.features));
}

#[test]
fn one_vit_b_block_matches() {
    let exp = expected();
    let meta = meta();
    for (case_idx, name) in ["vitb_window", "vitb_global", "vitb_global_interp"]
        .iter()
        .enumerate()
    {
        let m = &meta[*name];
        let dim = m["dim"].as_i64().unwrap();
        let heads = m["num_heads"].as_i64().unwrap();
        let rel = m["rel_pos_size"].as_i64().unwrap();
        let side = m["side"].as_i64().unwrap();
        let window = m["window_size"].as_i64().unwrap();
        let rel_len = if window == 0 { 2 * rel - 1 } else { 2 * window - 1 };
        let shape_of = |p: &str| -> Vec<i64> {
            match p {
                "attn.proj.weight" => vec![dim, dim],
                "attn.qkv.weight" => vec![3 * dim, dim],
                "attn.qkv.bias" => vec![3 * dim],
                "attn.rel_pos_h" | "attn.rel_pos_w" => vec![rel_len, dim / heads],
                "mlp.lin1.weight" => vec![4 * dim, dim],
                "mlp.lin1.bias" => vec![4 * dim],
                "mlp.lin2.weight" => vec![dim, 4 * dim],
                _ => vec![dim],
            }
        };
        let mut tensors = Vec::new();
        for (k, p) in m["param_order"].as_array().unwrap().iter().enumerate() {
            let p = p.as_str().unwrap();
            let shape = shape_of(p);
            let scale = if shape.len() > 1 {
                2.0 / (*shape.last().unwrap() as f64).sqrt()
            } else {
                0.5
            };
            let mut t = hash_tensor(&shape, (1000 * case_idx + k) as u64, scale);
            if p.ends_with("norm1.weight") || p.ends_with("norm2.weight") {
                t += 1.0;
            }
            tensors.push((p.to_owned(), t));
        }
        let block_window = if window == 0 { 0 } else { window };
        let block_rel = if window == 0 { rel } else { window };
        let block = EncoderBlock::from_weights(
            &Weights::from_tensors(tensors).unwrap(),
            dim,
            heads,
            block_window,
            block_rel,
        )
        .unwrap();
        let x = hash_tensor(&[1, side, side, dim], 999 + case_idx as u64, 4.0);
        let y = block.forward(&x);
        let stride = m["sample_stride"].as_i64().unwrap();
        let flat = y.flatten(0, -1);
        let idx = Tensor::arange_start_step(0, flat.size()[0], stride, (Kind::Int64, tch::Device::Cpu));
        let d = max_abs_diff(&flat.index_select(0, &idx), &exp[&format!("{name}.sample")]);
        assert!(d <= TOL, "{name}: sampled outputs differ by {d}");
        let sum = y.to_kind(Kind::Double).sum(None::<Kind>).double_value(&[]);
        let want_sum = exp[&format!("{name}.sum")].double_value(&[0]);
        let abs_sum = y.to_kind(Kind::Double).abs().sum(None::<Kind>).double_value(&[]);
        let want_abs = exp[&format!("{name}.abs_sum")].double_value(&[0]);
        assert!(
            (abs_sum - want_abs).abs() <= 1e-6 * want_abs,
            "{name}: abs sum {abs_sum} vs {want_abs}"
        );
        assert!(
            (sum - want_sum).abs() <= 1e-6 * want_abs,
            "{name}: sum {sum} vs {want_sum}"
        );
    }
}

/// The tiny model's configuration is what its checkpoint's shapes determine, so
/// `Sam::load_detect` builds the same model as the explicit configuration.
#[test]
fn the_configuration_is_inferred_from_the_checkpoint() {
    use som_segment::sam::{Sam, SamConfig, SamModel};
    let weights = Weights::from_file(fixture("tiny.pth")).unwrap();
    assert_eq!(SamConfig::infer(&weights).unwrap(), tiny_config());
    let sam = Sam::load_detect(fixture("tiny.pth")).unwrap();
    assert_eq!(sam.config(), &tiny_config());
    assert_eq!(sam.model(), None);
    for model in SamModel::ALL {
        let c = model.config();
        assert_eq!(c.name, model.name());
        c.validate().unwrap();
    }
}
