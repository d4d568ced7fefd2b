//! Bad input to the MaskDINO port, and the segmenter: typed errors, never a panic or a
//! LibTorch abort.
#![cfg(feature = "torch")]

mod maskdino_support;

use maskdino_support::*;
use som_core::{Segmenter, SomError};
use som_segment::maskdino::{
    MaskDino, MaskDinoError, MaskDinoModel, MaskDinoSegmenter, MaskDinoSegmenterOptions, MaskDinoTask,
};
use som_segment::torch::{CheckpointError, Weights};

fn sam_checkpoint() -> std::path::PathBuf {
    fixture("../sam/tiny.pth")
}

#[test]
fn a_sam_checkpoint_is_not_maskdino() {
    for model in MaskDinoModel::ALL {
        match MaskDino::load(sam_checkpoint(), model) {
            Err(e @ MaskDinoError::NotMaskDino(_)) => {
                let msg = e.to_string();
                assert!(msg.contains("image_encoder."), "{msg}");
            }
            other => panic!("{model}: expected NotMaskDino, got {other:?}"),
        }
    }
}

#[test]
fn devices_are_resolved_before_anything_loads() {
    use som_segment::Device;
    // No GPU on this machine: a typed device error, before the file is even opened
    // (skipped on a machine with one).
    if Device::Cuda(0).resolve().is_err() {
        match MaskDino::load_on("no-such-file.pth", None, Device::Cuda(0)) {
            Err(MaskDinoError::Device(e)) => assert!(e.to_string().contains("cuda:0"), "{e}"),
            other => panic!("expected a device error, got {other:?}"),
        }
    }
    // `auto` falls back to the CPU, where a model built from weights read there runs;
    // detection still refuses what is no published model.
    let auto = Device::Auto.resolve().unwrap();
    let weights = Weights::from_file_on(fixture("tiny.pth"), auto).unwrap();
    let model = MaskDino::from_weights(&weights, tiny_config("no")).unwrap();
    assert_eq!(model.device(), auto);
    match MaskDino::load_on(sam_checkpoint(), None, Device::Auto) {
        Err(MaskDinoError::NotMaskDino(_)) => {}
        other => panic!("expected NotMaskDino, got {other:?}"),
    }
}

#[test]
fn configs_that_do_not_match_the_checkpoint_are_rejected() {
    // The tiny checkpoint is a ResNet with 133 classes: r50_panoptic's layout.
    for model in [
        MaskDinoModel::R50Instance,
        MaskDinoModel::SwinlInstance,
        MaskDinoModel::SwinlPanoptic,
    ] {
        match MaskDino::load(fixture("tiny.pth"), model) {
            Err(e @ MaskDinoError::WrongModel { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("r50_panoptic") && msg.contains(model.name()),
                    "{msg}"
                );
            }
            other => panic!("{model}: expected WrongModel, got {other:?}"),
        }
    }
    // The right layout at another width: a shape error before anything runs.
    match MaskDino::load(fixture("tiny.safetensors"), MaskDinoModel::R50Panoptic) {
        Err(MaskDinoError::Checkpoint(CheckpointError::WeightShape {
            name,
            expected,
            found,
            ..
        })) => {
            assert_eq!(name, "backbone.stem.conv1.weight");
            assert_eq!(expected, [64, 3, 7, 7]);
            assert_eq!(found, [8, 3, 7, 7]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let mut wider = tiny_config("no");
    wider.pixel_decoder.conv_dim = 64;
    assert!(matches!(
        MaskDino::load_with_config(fixture("tiny.pth"), wider),
        Err(MaskDinoError::Checkpoint(CheckpointError::WeightShape { .. }))
    ));
    let mut deeper = tiny_config("no");
    deeper.decoder.dec_layers = 3;
    match MaskDino::load_with_config(fixture("tiny.pth"), deeper) {
        Err(MaskDinoError::Checkpoint(CheckpointError::MissingWeight { name, .. })) => {
            assert!(name.contains("decoder.layers.2."), "{name}")
        }
        other => panic!("expected a missing weight, got {other:?}"),
    }
    let mut shallower = tiny_config("no");
    shallower.pixel_decoder.enc_layers = 1;
    match MaskDino::load_with_config(fixture("tiny.pth"), shallower) {
        Err(MaskDinoError::Checkpoint(CheckpointError::UnexpectedWeights { first, count, .. })) => {
            assert!(first.contains("encoder.layers.1."), "{first}");
            assert!(count > 1);
        }
        other => panic!("expected unexpected weights, got {other:?}"),
    }
    let mut inconsistent = tiny_config("no");
    inconsistent.pixel_decoder.conv_dim = 40;
    assert!(matches!(
        MaskDino::load_with_config(fixture("tiny.pth"), inconsistent),
        Err(MaskDinoError::Config(_))
    ));
}

#[test]
fn aliased_parameters_must_agree() {
    let weights = Weights::from_file(fixture("tiny.pth")).unwrap();
    let mut tensors: Vec<(String, tch::Tensor)> = weights
        .names()
        .map(|n| (n.to_owned(), weights.get(n).unwrap().shallow_clone()))
        .collect();
    for (name, t) in &mut tensors {
        if name == "sem_seg_head.predictor.decoder.bbox_embed.1.layers.2.bias" {
            *t = &*t + 1.0;
        }
    }
    let weights = Weights::from_tensors(tensors).unwrap();
    match MaskDino::from_weights(&weights, tiny_config("no")) {
        Err(e @ MaskDinoError::Checkpoint(CheckpointError::Inconsistent { .. })) => {
            assert!(
                e.to_string().contains("decoder.bbox_embed.1.layers.2.bias"),
                "{e}"
            )
        }
        other => panic!("expected an inconsistency, got {other:?}"),
    }
}

#[test]
fn truncated_and_foreign_files_are_rejected() {
    let pth = std::fs::read(fixture("tiny.pth")).unwrap();
    let st = std::fs::read(fixture("tiny.safetensors")).unwrap();
    for (name, bytes) in [
        ("half.pth", &pth[..pth.len() / 2]),
        ("head.pth", &pth[..200]),
        ("tail.pth", &pth[..pth.len() - 30]),
        ("half.safetensors", &st[..st.len() / 2]),
        ("header.safetensors", &st[..16]),
        ("empty.pth", &[][..]),
        ("text.pth", &b"not a checkpoint at all"[..]),
    ] {
        let path = temp_path(name);
        std::fs::write(&path, bytes).unwrap();
        match MaskDino::load_with_config(&path, tiny_config("no")) {
            Err(e @ MaskDinoError::Checkpoint(CheckpointError::Format { .. })) => {
                assert!(e.to_string().contains(name), "{e}")
            }
            other => panic!("{name}: expected a format error, got {other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
    }
    assert!(matches!(
        MaskDino::load(temp_path("missing.pth"), MaskDinoModel::R50Instance),
        Err(MaskDinoError::Checkpoint(CheckpointError::Io { .. }))
    ));
}

fn options(task: MaskDinoTask) -> MaskDinoSegmenterOptions {
    MaskDinoSegmenterOptions {
        task,
        quiet: true,
        ..MaskDinoSegmenterOptions::default()
    }
}

fn segmenter(task: MaskDinoTask) -> MaskDinoSegmenter {
    MaskDinoSegmenter::load_with_config(fixture("tiny.pth"), tiny_config("no"), options(task)).unwrap()
}

#[test]
fn grayscale_tiny_and_too_thin_images_are_rejected() {
    let model = tiny_model("tiny.safetensors", "no");
    for (w, h) in [(1, 1), (1, 40), (40, 1), (0, 0)] {
        match model.predict(&image::RgbImage::new(w, h)) {
            Err(MaskDinoError::Image(m)) => assert!(m.contains(&format!("{w}x{h}")), "{m}"),
            other => panic!("{w}x{h}: expected an image error, got {other:?}"),
        }
    }
    // Resizes to nothing along its short side.
    assert!(matches!(
        model.predict(&image::RgbImage::new(2000, 2)),
        Err(MaskDinoError::Image(_))
    ));
    let seg = segmenter(MaskDinoTask::Instance);
    let gray = image::DynamicImage::ImageLuma8(image::GrayImage::new(32, 32));
    // Through the Segmenter trait the MaskDinoError is the SomError's source.
    let err = seg.segment(&gray).unwrap_err();
    assert!(matches!(err, SomError::Segment(_)), "{err:?}");
    match err.find::<MaskDinoError>() {
        Some(MaskDinoError::Image(m)) => assert!(m.contains("grayscale"), "{m}"),
        other => panic!("expected an image error, got {other:?}"),
    }
    let one = image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1));
    let err = seg.segment(&one).unwrap_err();
    assert!(
        matches!(err.find::<MaskDinoError>(), Some(MaskDinoError::Image(_))),
        "{err:?}"
    );
}

#[test]
fn options_out_of_range_are_rejected() {
    for bad in [
        MaskDinoSegmenterOptions {
            confidence_threshold: 1.5,
            ..options(MaskDinoTask::Instance)
        },
        MaskDinoSegmenterOptions {
            confidence_threshold: f64::NAN,
            ..options(MaskDinoTask::Instance)
        },
        MaskDinoSegmenterOptions {
            overlap_threshold: Some(-0.1),
            ..options(MaskDinoTask::Panoptic)
        },
        MaskDinoSegmenterOptions {
            num_threads: Some(0),
            ..options(MaskDinoTask::Instance)
        },
    ] {
        match MaskDinoSegmenter::load_with_config(fixture("tiny.pth"), tiny_config("no"), bad.clone()) {
            Err(e @ MaskDinoError::Option { .. }) => {
                assert!(e.to_string().starts_with("invalid option"), "{e}")
            }
            other => panic!("{bad:?}: expected an option error, got {other:?}"),
        }
    }
    // An instance-only config has no panoptic output.
    let mut config = tiny_config("mask2box");
    config.test.panoptic_on = false;
    config.test.semantic_on = false;
    assert!(matches!(
        MaskDinoSegmenter::load_with_config(fixture("tiny.pth"), config, options(MaskDinoTask::Panoptic)),
        Err(MaskDinoError::Option { name: "task", .. })
    ));
}

#[test]
fn segmenter_regions_carry_class_names_scores_and_stage_timings() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MaskDinoSegmenter>();
    let img = image::DynamicImage::ImageRgb8(image());
    let model = tiny_model("tiny.pth", "no");
    let prediction = model.predict(&img.to_rgb8()).unwrap();

    // Instances: threshold 0 keeps every instance the model returns.
    let all = MaskDinoSegmenter::load_with_config(
        fixture("tiny.pth"),
        tiny_config("no"),
        MaskDinoSegmenterOptions {
            confidence_threshold: 0.0,
            ..options(MaskDinoTask::Instance)
        },
    )
    .unwrap();
    let (seg, stages) = all.segment_timed(&img).unwrap();
    let instances = prediction.instances.as_ref().unwrap();
    assert_eq!(seg.regions().len(), instances.len());
    for (r, inst) in seg.regions().iter().zip(instances) {
        assert_eq!(r.score, Some(inst.score));
        let name = model.config().dataset.class_name(inst.class_id).unwrap();
        assert_eq!(r.label.as_deref(), Some(name));
        assert_eq!(r.source["segmenter"], "maskdino");
        assert_eq!(r.source["class_id"], inst.class_id);
    }
    let names: Vec<&str> = stages.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(
        names,
        [
            "maskdino_backbone",
            "maskdino_encoder",
            "maskdino_decoder",
            "maskdino_postprocess"
        ]
    );
    assert!(
        stages.iter().all(|t| t.ms.is_finite() && t.ms >= 0.0),
        "{stages:?}"
    );
    // The default threshold keeps only instances scoring at least 0.5.
    let kept = segmenter(MaskDinoTask::Instance).segment(&img).unwrap();
    let want = instances.iter().filter(|i| i.score >= 0.5).count();
    assert_eq!(kept.regions().len(), want);

    // Panoptic: one region per segment, labelled with its class.
    let seg = segmenter(MaskDinoTask::Panoptic).segment(&img).unwrap();
    let panoptic = prediction.panoptic.as_ref().unwrap();
    assert_eq!(seg.regions().len(), panoptic.segments.len());
    for (r, s) in seg.regions().iter().zip(&panoptic.segments) {
        let area = panoptic
            .ids
            .eq(i64::from(s.id))
            .sum(tch::Kind::Int64)
            .int64_value(&[]);
        assert_eq!(r.area(), area as u64);
        assert_eq!(r.label.as_deref(), model.config().dataset.class_name(s.class_id));
        assert_eq!(r.source["is_thing"], s.is_thing);
    }
    // Semantic: one region per class present, covering the image.
    let seg = segmenter(MaskDinoTask::Semantic).segment(&img).unwrap();
    let total: u64 = seg.regions().iter().map(|r| r.area()).sum();
    assert_eq!(total, u64::from(img.width() * img.height()));
    assert!(seg.regions().iter().all(|r| r.label.is_some()));
}
