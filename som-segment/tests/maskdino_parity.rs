//! Parity with upstream MaskDINO (IDEA-Research/MaskDINO + detectron2, CPU) on random
//! weights, within 1e-4: fixtures from tools/fixtures/gen_maskdino.py.
#![cfg(feature = "torch")]

mod maskdino_support;

use maskdino_support::*;
use som_segment::maskdino::components::{
    Backbone, BottleneckBlock, BottleneckSpec, MaskDinoDecoderStack, MaskDinoEncoder, SwinStage,
};
use som_segment::maskdino::{
    resize_shortest_edge, BackboneConfig, BoxInit, DecoderConfig, Instance, MaskDino, MaskDinoModel, Outputs,
    SwinConfig,
};
use som_segment::torch::{ms_deform_attn, Weights};
use tch::{Kind, Tensor};

fn dims(v: &serde_json::Value) -> Vec<i64> {
    ints(v)
}

#[test]
fn test_time_resize_is_detectron2s() {
    for case in meta()["resize_cases"].as_array().unwrap() {
        let n = |k: &str| case[k].as_u64().unwrap() as u32;
        let out = ints(&case["out"]);
        assert_eq!(
            resize_shortest_edge(n("h"), n("w"), n("short"), n("max")),
            (out[0] as u32, out[1] as u32),
            "{case}"
        );
    }
    // The resized pixels are Pillow's.
    let model = tiny_model("tiny.pth", "no");
    let prepared = model.prepare(&image()).unwrap();
    let exp = expected();
    let resized = &exp["resized"];
    let (rh, rw) = prepared.sizes.resized;
    assert_eq!([rh, rw, 3], resized.size()[..]);
    let sizes = &meta()["sizes"];
    assert_eq!(
        ints(&sizes["padded"]),
        [prepared.sizes.padded.0, prepared.sizes.padded.1]
    );
    assert_eq!(
        ints(&sizes["original"]),
        [prepared.sizes.original.0, prepared.sizes.original.1]
    );
    // Undo the normalisation of the unpadded part: exact integers again.
    let mean = Tensor::from_slice(&[123.675f32, 116.28, 103.53]).view([3, 1, 1]);
    let std = Tensor::from_slice(&[58.395f32, 57.12, 57.375]).view([3, 1, 1]);
    let x = prepared.tensor.get(0).narrow(1, 0, rh).narrow(2, 0, rw);
    let pixels = (x * std + mean).round().permute([1, 2, 0]);
    assert_eq!(max_abs_diff(&pixels, &resized.to_kind(Kind::Float)), 0.0);
    // Padding is zeros after normalisation.
    let pad = prepared.tensor.narrow(3, rw, prepared.sizes.padded.1 - rw);
    assert_eq!(pad.abs().sum(Kind::Double).double_value(&[]), 0.0);
}

#[test]
fn backbone_encoder_and_decoder_outputs_match() {
    let exp = expected();
    let model = tiny_model("tiny.pth", "no");
    let _guard = tch::no_grad_guard();
    let prepared = model.prepare(&image()).unwrap();
    let features = model.backbone(&prepared.tensor);
    for (i, f) in features.iter().enumerate() {
        assert_close(&exp, &format!("backbone.res{}", i + 2), f);
    }
    let encoded = model.encode(&features).unwrap();
    assert_close(&exp, "encoder.mask_features", &encoded.mask_features);
    assert_eq!(encoded.multi_scale_features.len(), 4);
    for (i, level) in encoded.multi_scale_features.iter().enumerate() {
        assert_close(&exp, &format!("encoder.level{i}"), level);
    }
    // The decoder for every box initialisation (the same weights).
    for variant in ["no", "mask2box", "bitmask"] {
        let decoded = tiny_model("tiny.pth", variant).decode(&encoded).unwrap();
        let p = |k: &str| format!("{variant}.{k}");
        assert_close(&exp, &p("pred_logits"), &decoded.pred_logits);
        assert_close(&exp, &p("pred_boxes"), &decoded.pred_boxes);
        if variant != "bitmask" {
            assert_close(&exp, &p("pred_masks"), &decoded.pred_masks);
        }
        assert_close(&exp, &p("interm_logits"), &decoded.interm_logits);
        assert_close(&exp, &p("interm_boxes"), &decoded.interm_boxes);
        for i in 0..decoded.layer_boxes.len() - 1 {
            assert_close(&exp, &p(&format!("aux{i}_boxes")), &decoded.layer_boxes[i]);
        }
    }
}

/// Unpacks numpy `packbits` (big-endian bit order) into `n` booleans.
fn unpack_bits(packed: &Tensor, n: usize) -> Vec<bool> {
    let bytes = Vec::<u8>::try_from(packed).unwrap();
    (0..n).map(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0).collect()
}

fn check_instances(key: &str, got: &[Instance], height: i64, width: i64) {
    let exp = expected();
    let scores = &exp[&format!("{key}.scores")];
    let classes = Vec::<i64>::try_from(&exp[&format!("{key}.classes")]).unwrap();
    let boxes = &exp[&format!("{key}.boxes")];
    let n = classes.len();
    assert_eq!(got.len(), n, "{key}: instance count");
    let masks = unpack_bits(&exp[&format!("{key}.masks")], n * (height * width) as usize);
    for (i, inst) in got.iter().enumerate() {
        assert_eq!(inst.class_id, classes[i], "{key}: class of instance {i}");
        let ds = (inst.score - scores.double_value(&[i as i64])).abs();
        assert!(ds <= TOL, "{key}: score of instance {i} differs by {ds}");
        for j in 0..4 {
            // Boxes are in pixels (up to ~150): 1e-4 relative.
            let want = boxes.double_value(&[i as i64, j]);
            let d = (inst.bbox[j as usize] - want).abs();
            assert!(
                d <= TOL * want.abs().max(1.0),
                "{key}: box {i} coordinate {j} differs by {d}"
            );
        }
        let mask = Vec::<bool>::try_from(&inst.mask.flatten(0, -1)).unwrap();
        let offset = i * (height * width) as usize;
        let wrong = mask
            .iter()
            .enumerate()
            .filter(|&(p, &m)| m != masks[offset + p])
            .count();
        assert_eq!(wrong, 0, "{key}: {wrong} pixels of mask {i} differ");
    }
}

#[test]
fn instances_panoptic_and_semantic_outputs_match() {
    let exp = expected();
    let meta = meta();
    let (h, w) = (100, 150);
    assert_eq!(ints(&meta["sizes"]["original"]), [h, w]);
    let model = tiny_model("tiny.pth", "no");
    let prediction = model.predict(&image()).unwrap();
    // Instances of a panoptic config keep "things" only.
    check_instances("no.instances", prediction.instances.as_ref().unwrap(), h, w);
    let panoptic = prediction.panoptic.as_ref().unwrap();
    let ids = panoptic.ids.to_kind(Kind::Int64);
    let want_ids = exp["no.panoptic.ids"].to_kind(Kind::Int64);
    let wrong = ids.ne_tensor(&want_ids).sum(Kind::Int64).int64_value(&[]);
    assert_eq!(wrong, 0, "{wrong} panoptic pixels differ");
    let segments = meta["no.panoptic.segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    assert_eq!(panoptic.segments.len(), segments.len());
    for (s, want) in panoptic.segments.iter().zip(segments) {
        assert_eq!(i64::from(s.id), want["id"].as_i64().unwrap());
        assert_eq!(s.class_id, want["category_id"].as_i64().unwrap());
        assert_eq!(s.is_thing, want["isthing"].as_bool().unwrap());
    }
    let semantic = prediction.semantic.as_ref().unwrap();
    let (max, argmax) = semantic.max_dim(0, false);
    assert_close(&exp, "no.semantic.max", &max);
    let wrong = argmax
        .ne_tensor(&exp["no.semantic.argmax"].to_kind(Kind::Int64))
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert_eq!(wrong, 0, "{wrong} semantic labels differ");

    // An instance config (all classes), with mask-based box initialisation.
    let mut config = tiny_config("mask2box");
    config.test.panoptic_on = false;
    config.test.semantic_on = false;
    let model = MaskDino::load_with_config(fixture("tiny.safetensors"), config).unwrap();
    let (prediction, _) = model
        .predict_outputs_timed(
            &image(),
            Outputs {
                instance: true,
                panoptic: false,
                semantic: false,
            },
        )
        .unwrap();
    check_instances("mask2box.allclass", prediction.instances.as_ref().unwrap(), h, w);
}

#[test]
fn pth_and_safetensors_give_identical_outputs() {
    let pth = Weights::from_file(fixture("tiny.pth")).unwrap();
    let st = Weights::from_file(fixture("tiny.safetensors")).unwrap();
    // The .pth keeps upstream's aliased keys (shared storages); the safetensors copy has
    // one key per storage.
    let aliases: Vec<String> = meta()["aliased_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        aliases.iter().any(|k| k.contains("decoder.bbox_embed.")),
        "{aliases:?}"
    );
    assert_eq!(pth.len(), st.len() + aliases.len());
    for name in st.names() {
        assert!(pth.get(name).unwrap().equal(st.get(name).unwrap()), "{name}");
    }
    let a = MaskDino::from_weights(&pth, tiny_config("mask2box")).unwrap();
    let b = MaskDino::from_weights(&st, tiny_config("mask2box")).unwrap();
    let pa = a.predict(&image()).unwrap();
    let pb = b.predict(&image()).unwrap();
    let (ia, ib) = (pa.instances.unwrap(), pb.instances.unwrap());
    assert_eq!(ia.len(), ib.len());
    for (x, y) in ia.iter().zip(&ib) {
        assert_eq!((x.class_id, x.score, x.bbox), (y.class_id, y.score, y.bbox));
        assert!(x.mask.equal(&y.mask));
    }
    assert!(pa.panoptic.unwrap().ids.equal(&pb.panoptic.unwrap().ids));
    assert!(pa.semantic.unwrap().equal(&pb.semantic.unwrap()));
}

#[test]
fn deformable_attention_matches_ms_deform_attn_core_pytorch() {
    let meta = meta();
    let m = &meta["msda"];
    let shapes: Vec<(i64, i64)> = m["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_i64().unwrap(), s[1].as_i64().unwrap()))
        .collect();
    let g = |k: &str| m[k].as_i64().unwrap();
    let (n, heads, d, lq, p) = (g("n"), g("heads"), g("d"), g("lq"), g("points"));
    let s: i64 = shapes.iter().map(|(h, w)| h * w).sum();
    let l = shapes.len() as i64;
    let value = uniform_tensor("msda.value", &[n, s, heads, d]);
    let loc = uniform_tensor("msda.loc", &[n, lq, heads, l, p, 2]) * 0.7 + 0.5;
    // Sampling points outside every level are part of the test.
    assert!(loc.min().double_value(&[]) < 0.0 && loc.max().double_value(&[]) > 1.0);
    let weights = uniform_tensor("msda.weights", &[n, lq, heads, l, p]).softmax(-1, Kind::Float);
    let out = ms_deform_attn(&value, &shapes, &loc, &weights).unwrap();
    assert_close(&expected(), "msda.output", &out);
    // Shapes that do not fit are errors, not aborts.
    assert!(ms_deform_attn(&value, &shapes[..2], &loc, &weights).is_err());
    assert!(ms_deform_attn(&value, &shapes, &loc.narrow(-1, 0, 1), &weights).is_err());
}

#[test]
fn full_width_resnet_block_matches() {
    let weights = block_weights("resnet", "resnet.", vec![]);
    let spec = BottleneckSpec {
        in_channels: 1024,
        out_channels: 2048,
        bottleneck_channels: 512,
        stride: 2,
        ..BottleneckSpec::default()
    };
    let block = BottleneckBlock::load(&weights, "", spec).unwrap();
    let x = uniform_tensor("resnet.input", &dims(&meta()["blocks"]["resnet"]["input"]));
    assert_close(&expected(), "resnet.output", &block.forward(&x));
}

#[test]
fn full_width_swin_l_stage_matches() {
    let exp = expected();
    let meta = meta();
    let b = &meta["blocks"]["swin"];
    let index = exp["swin.relative_position_index"].to_kind(Kind::Int64);
    let extra = (0..2)
        .map(|i| {
            (
                format!("blocks.{i}.attn.relative_position_index"),
                index.shallow_clone(),
            )
        })
        .collect();
    let weights = block_weights("swin", "swin.", extra);
    let swin = SwinConfig::large_384();
    let stage = SwinStage::load(&weights, "", 384, 2, 12, true, &swin).unwrap();
    let hw = ints(&b["hw"]);
    let x = uniform_tensor("swin.input", &dims(&b["input"]));
    let (out, down, h, w) = stage.forward(&x, hw[0], hw[1]);
    assert_eq!(vec![h, w], ints(&b["down_hw"]));
    assert_sampled_close(&exp, "swin.out", &out);
    assert_sampled_close(&exp, "swin.down", &down);
}

#[test]
fn reduced_swin_backbone_matches() {
    let exp = expected();
    let meta = meta();
    let b = &meta["blocks"]["swin_backbone"];
    let config: SwinConfig = serde_json::from_value(b["config"].clone()).unwrap();
    let index = exp["swin.relative_position_index"].to_kind(Kind::Int64);
    let extra = (0..4)
        .flat_map(|i| (0..2).map(move |j| format!("layers.{i}.blocks.{j}.attn.relative_position_index")))
        .map(|k| (k, index.shallow_clone()))
        .collect();
    let weights = block_weights("swin_backbone", "swin_backbone.", extra);
    let backbone = Backbone::load(&weights, "", &BackboneConfig::Swin(config)).unwrap();
    let x = uniform_tensor("swin_backbone.input", &dims(&b["input"]));
    let features = backbone.forward(&x);
    assert_eq!(features.len(), 4);
    for (i, f) in features.iter().enumerate() {
        assert_sampled_close(&exp, &format!("swin_backbone.res{}", i + 2), f);
    }
}

#[test]
fn full_width_pixel_decoder_matches() {
    let exp = expected();
    let meta = meta();
    let b = &meta["blocks"]["encoder"];
    let weights = block_weights("encoder", "encoder.", vec![]);
    let mut config = MaskDinoModel::R50Instance.config().pixel_decoder;
    config.enc_layers = 1;
    let encoder = MaskDinoEncoder::load(&weights, "", &config, [256, 512, 1024, 2048]).unwrap();
    let features: Vec<Tensor> = ["res2", "res3", "res4", "res5"]
        .iter()
        .map(|k| uniform_tensor(&format!("encoder.input.{k}"), &dims(&b["inputs"][k])))
        .collect();
    let out = encoder.forward(&features).unwrap();
    assert_sampled_close(&exp, "encoder_full.mask_features", &out.mask_features);
    for (i, level) in out.multi_scale_features.iter().enumerate() {
        assert_sampled_close(&exp, &format!("encoder_full.level{i}"), level);
    }
}

#[test]
fn full_width_decoder_and_heads_match() {
    let exp = expected();
    let meta = meta();
    let b = &meta["blocks"]["decoder"];
    let weights = block_weights("decoder", "decoder.", vec![]);
    let config = DecoderConfig {
        dec_layers: 2,
        ..MaskDinoModel::R50Instance.config().decoder
    };
    assert_eq!(config.initialize_box_type, BoxInit::Mask2Box);
    let decoder = MaskDinoDecoderStack::load(&weights, "", &config, 256, 256, 4).unwrap();
    let levels: Vec<Tensor> = b["levels"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| uniform_tensor(&format!("decoder.input.level{i}"), &dims(s)))
        .collect();
    let mask_features = uniform_tensor("decoder.input.mask_features", &dims(&b["mask_features"]));
    let out = decoder.forward(&levels, &mask_features).unwrap();
    assert_sampled_close(&exp, "decoder_full.pred_logits", &out.pred_logits);
    assert_sampled_close(&exp, "decoder_full.pred_masks", &out.pred_masks);
    assert_close(&exp, "decoder_full.pred_boxes", &out.pred_boxes);
    assert_close(&exp, "decoder_full.interm_boxes", &out.interm_boxes);
}
