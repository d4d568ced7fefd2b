//! Parity with MobileSAM (`mobilesam-mirror` 1.0.0, module `mobile_sam`) on random weights:
//! fixtures from tools/fixtures/gen_mobilesam.py.
#![cfg(feature = "torch")]

mod sam_support;

use sam_support::*;
use som_segment::sam::{
    resize_longest_side, AmgOptions, AutomaticMaskGenerator, ImageEncoder, PointPrompt, Prompt, Sam,
    SamConfig, SamError, SamModel, TinyViT, TinyVitConfig, Weights,
};
use tch::{Kind, Tensor};

fn mobile_config() -> SamConfig {
    let text = std::fs::read_to_string(fixture("mobile_tiny_config.json")).expect("mobile_tiny_config.json");
    serde_json::from_str(&text).expect("valid config")
}

fn mobile_sam() -> Sam {
    Sam::load_with_config(fixture("mobile_tiny.pth"), mobile_config()).expect("mobile_tiny.pth loads")
}

fn mobile_expected() -> std::collections::BTreeMap<String, Tensor> {
    Tensor::read_safetensors(fixture("mobile_expected.safetensors"))
        .expect("mobile_expected.safetensors")
        .into_iter()
        .collect()
}

fn mobile_meta() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("mobile_expected.json")).expect("mobile_expected.json");
    serde_json::from_str(&text).expect("json")
}

fn sampled(t: &Tensor, stride: i64) -> Tensor {
    let flat = t.flatten(0, -1);
    let idx = Tensor::arange_start_step(0, flat.size()[0], stride, (Kind::Int64, tch::Device::Cpu));
    flat.index_select(0, &idx)
}

fn abs_sum(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).abs().sum(None::<Kind>).double_value(&[])
}

#[test]
fn tiny_vit_tokens_and_image_embedding_match() {
    let sam = mobile_sam();
    let exp = mobile_expected();
    let meta = mobile_meta();
    let img = image();
    let emb = sam.embed_image(&img).unwrap();
    let input = &meta["input_size"];
    assert_eq!(
        [emb.input_size.0 as u64, emb.input_size.1 as u64],
        [input[0].as_u64().unwrap(), input[1].as_u64().unwrap()]
    );
    let d = max_abs_diff(&emb.features, &exp["embeddings"]);
    assert!(d <= TOL, "image embeddings differ by {d}");

    // The last stage's tokens, before the neck.
    let ImageEncoder::TinyVit(encoder) = sam.image_encoder() else {
        panic!("a TinyViT encoder");
    };
    let resized = resize_longest_side(&img, sam.img_size()).unwrap();
    let (w, h) = (resized.width() as i64, resized.height() as i64);
    let x = Tensor::from_slice(resized.as_raw())
        .view([h, w, 3])
        .permute([2, 0, 1])
        .unsqueeze(0);
    let tokens = encoder.forward_tokens(&sam.preprocess(&x));
    let shape: Vec<i64> = meta["tokens"]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(tokens.size(), shape);
    let stride = meta["tokens"]["sample_stride"].as_i64().unwrap();
    let d = max_abs_diff(&sampled(&tokens, stride), &exp["tokens.sample"]);
    assert!(d <= TOL, "tokens differ by {d}");
    let want = exp["tokens.abs_sum"].double_value(&[0]);
    assert!((abs_sum(&tokens) - want).abs() <= 1e-6 * want, "tokens abs sum");
}

#[test]
fn predictor_masks_for_point_and_box_prompts_match() {
    let sam = mobile_sam();
    let emb = sam.embed_image(&image()).unwrap();
    let exp = mobile_expected();
    let prompts = mobile_meta()["prompts"].as_array().unwrap().clone();
    let names: Vec<&str> = prompts.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"point") && names.contains(&"box"));
    for p in &prompts {
        let name = p["name"].as_str().unwrap();
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
        let prompt = Prompt {
            points,
            bbox,
            mask_input: None,
            multimask_output: p["multimask"].as_bool().unwrap(),
        };
        let pred = sam.predict(&emb, &prompt).unwrap();
        let want = &exp[&format!("prompt.{name}.low_res")];
        let d = max_abs_diff(&pred.low_res_logits, want);
        assert!(d <= logits_tol(want), "{name}: low-res logits differ by {d}");
        let d = max_abs_diff(
            &Tensor::from_slice(&pred.iou_predictions),
            &exp[&format!("prompt.{name}.iou")],
        );
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
    }
}

#[test]
fn automatic_mask_generator_records_match() {
    let sam = mobile_sam();
    let img = image();
    for case in mobile_meta()["amg"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let options: AmgOptions = serde_json::from_value(case["options"].clone()).unwrap();
        let want = case["records"].as_array().unwrap();
        assert!(
            !want.is_empty(),
            "{name}: the fixture must exercise at least one mask"
        );
        let generator = AutomaticMaskGenerator::new(options).unwrap();
        let (records, timings) = generator.generate_timed(&sam, &img).unwrap();
        assert_eq!(
            timings.exact_upscaling_crops, timings.crops,
            "{name}: exact upscaling"
        );
        assert_eq!(
            timings.shared_decoder_crops, timings.crops,
            "{name}: shared decoder"
        );
        assert_eq!(records.len(), want.len(), "{name}: record count");
        for (i, (g, w)) in records.iter().zip(want).enumerate() {
            let w: som_segment::sam::AmgRecord = serde_json::from_value(w.clone()).unwrap();
            assert_eq!(g.segmentation, w.segmentation, "{name} #{i}: segmentation");
            assert_eq!(
                (g.area, g.bbox, g.crop_box),
                (w.area, w.bbox, w.crop_box),
                "{name} #{i}"
            );
            assert!(
                (g.predicted_iou - w.predicted_iou).abs() <= 1e-5,
                "{name} #{i}: iou"
            );
            assert!(
                (g.stability_score as f32).to_bits() == (w.stability_score as f32).to_bits()
                    || (g.stability_score.is_nan() && w.stability_score.is_nan()),
                "{name} #{i}: stability {} vs {}",
                g.stability_score,
                w.stability_score
            );
        }
    }
}

/// The official MobileSAM encoder (unpatched in the reference) on hash weights and a hash
/// input: the full-size architecture (four stages, the stride-1 merge into width 320,
/// 64 x 64 output, 256-channel neck).
#[test]
fn full_size_tiny_vit_matches() {
    let meta = mobile_meta();
    let exp = mobile_expected();
    let full = &meta["full_size"];
    let base = full["seed_base"].as_u64().unwrap();
    let mut tensors = Vec::new();
    for (k, p) in full["params"].as_array().unwrap().iter().enumerate() {
        let name = p["name"].as_str().unwrap().to_owned();
        let shape: Vec<i64> = p["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let scale = if shape.len() > 1 {
            2.0 / (shape[1..].iter().product::<i64>() as f64).sqrt()
        } else {
            0.5
        };
        let mut t = hash_tensor(&shape, base + k as u64, scale);
        if name.ends_with("running_var") || (name.ends_with("weight") && shape.len() == 1) {
            t += 1.0;
        }
        if let Some(prefix) = name.strip_suffix(".bn.weight") {
            tensors.push((format!("{prefix}.bn.num_batches_tracked"), Tensor::from(0i64)));
        }
        tensors.push((name, t));
    }
    let weights = Weights::from_tensors(tensors).unwrap();
    let encoder = TinyViT::from_weights(&weights, &TinyVitConfig::mobile_sam()).unwrap();
    let x = hash_tensor(
        &[1, 3, 1024, 1024],
        full["input_seed"].as_u64().unwrap(),
        full["input_scale"].as_f64().unwrap(),
    );
    let y = encoder.forward(&x);
    assert_eq!(y.size(), vec![1, 256, 64, 64]);
    let stride = full["sample_stride"].as_i64().unwrap();
    let d = max_abs_diff(&sampled(&y, stride), &exp["full.sample"]);
    assert!(d <= TOL, "full-size features differ by {d}");
    let want = exp["full.abs_sum"].double_value(&[0]);
    assert!(
        (abs_sum(&y) - want).abs() <= 1e-6 * want,
        "abs sum {} vs {want}",
        abs_sum(&y)
    );
}

#[test]
fn the_model_is_detected_from_the_checkpoint() {
    let weights = Weights::from_file(fixture("mobile_tiny.pth")).unwrap();
    assert_eq!(SamModel::detect(&weights).unwrap(), SamModel::VitT);
    // Everything the model uses but the input size is in the shapes; TinyViT checkpoints
    // do not record it (MobileSAM's is 1024), nor the unused head count and window of the
    // convolutional first stage.
    let mut want = mobile_config();
    match &mut want.image_encoder {
        som_segment::sam::EncoderConfig::TinyVit(t) => {
            t.img_size = 1024;
            t.num_heads[0] = 1;
            t.window_sizes[0] = 1;
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(SamConfig::infer(&weights).unwrap(), want);
    assert_eq!(
        SamModel::VitT.config().image_encoder.tiny_vit(),
        Some(&TinyVitConfig::mobile_sam())
    );
    assert_eq!("vit_t".parse::<SamModel>().unwrap(), SamModel::VitT);
}

/// A MobileSAM checkpoint asked to load as ViT-B and the reverse: typed errors naming both
/// models (state dicts with the official shapes, zero-filled: only the shapes matter).
#[test]
fn a_checkpoint_of_the_other_family_is_a_model_mismatch() {
    let full = &mobile_meta()["full_size"];
    let tensors: Vec<(String, Tensor)> = full["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let shape: Vec<i64> = p["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            (
                format!("image_encoder.{}", p["name"].as_str().unwrap()),
                Tensor::zeros(shape, (Kind::Float, tch::Device::Cpu)),
            )
        })
        .collect();
    let mobile = Weights::from_tensors(tensors).unwrap();
    for model in [SamModel::VitB, SamModel::VitL, SamModel::VitH] {
        match Sam::from_weights_of(&mobile, model) {
            Err(e @ SamError::ModelMismatch { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("vit_t") && msg.contains(model.name()), "{msg}");
            }
            other => panic!("{model:?}: expected a model mismatch, got {other:?}"),
        }
    }
    let vit_b = Weights::from_tensors([(
        "image_encoder.patch_embed.proj.weight".to_owned(),
        Tensor::zeros([768, 3, 16, 16], (Kind::Float, tch::Device::Cpu)),
    )])
    .unwrap();
    match Sam::from_weights_of(&vit_b, SamModel::VitT) {
        Err(SamError::ModelMismatch { requested, found }) => {
            assert_eq!((requested, found), ("vit_t", "vit_b"))
        }
        other => panic!("expected a model mismatch, got {other:?}"),
    }
    // The tiny ViT fixture is no official size: the first missing parameter is the error.
    assert!(matches!(
        Sam::load(fixture("tiny.pth"), SamModel::VitT),
        Err(SamError::MissingWeight { .. })
    ));
    // Any TinyViT checkpoint is MobileSAM's family.
    assert!(matches!(
        Sam::load(fixture("mobile_tiny.pth"), SamModel::VitB),
        Err(SamError::ModelMismatch {
            requested: "vit_b",
            found: "vit_t"
        })
    ));
}
