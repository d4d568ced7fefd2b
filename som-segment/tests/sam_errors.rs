//! Bad input to the SAM port: typed errors, never a panic or a LibTorch abort.
#![cfg(feature = "torch")]

mod sam_support;

use sam_support::*;
use som_core::{Segmenter, SomError};
use som_segment::sam::{
    AmgOptions, AutomaticMaskGenerator, PointPrompt, Prompt, Sam, SamError, SamModel, SamSegmenter,
    SamSegmenterOptions, Weights,
};
use tch::{Kind, Tensor};

#[test]
fn checkpoint_of_another_model_size_is_rejected() {
    for model in [SamModel::VitB, SamModel::VitL, SamModel::VitH] {
        match Sam::load(fixture("tiny.pth"), model) {
            Err(SamError::WeightShape {
                name,
                expected,
                found,
                ..
            }) => {
                assert_eq!(name, "image_encoder.patch_embed.proj.weight");
                assert_eq!(found, vec![64, 3, 16, 16]);
                let width = model.config().image_encoder.vit().unwrap().embed_dim;
                assert_eq!(expected, vec![width, 3, 16, 16]);
            }
            other => panic!("{model:?}: expected a shape error, got {other:?}"),
        }
    }
    let mut deeper = tiny_config();
    deeper.image_encoder.vit_mut().unwrap().depth = 3;
    match Sam::load_with_config(fixture("tiny.safetensors"), deeper) {
        Err(SamError::MissingWeight { name }) => {
            assert!(name.starts_with("image_encoder.blocks.2."), "{name}")
        }
        other => panic!("expected a missing weight, got {other:?}"),
    }
    let mut shallower = tiny_config();
    let vit = shallower.image_encoder.vit_mut().unwrap();
    vit.depth = 1;
    vit.global_attn_indexes = vec![];
    match Sam::load_with_config(fixture("tiny.pth"), shallower) {
        Err(SamError::UnexpectedWeights { first, .. }) => {
            assert!(first.starts_with("image_encoder.blocks.1."), "{first}")
        }
        other => panic!("expected unexpected weights, got {other:?}"),
    }
}

fn expect_checkpoint_error(path: &std::path::Path, what: &str) -> String {
    match Weights::from_file(path).map_err(SamError::from) {
        Err(e @ SamError::Checkpoint { .. }) => e.to_string(),
        other => panic!("{what}: expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn truncated_and_foreign_files_are_rejected() {
    let pth = std::fs::read(fixture("tiny.pth")).unwrap();
    let st = std::fs::read(fixture("tiny.safetensors")).unwrap();
    for (name, bytes) in [
        ("half.pth", &pth[..pth.len() / 2]),
        ("head.pth", &pth[..100]),
        ("tail.pth", &pth[..pth.len() - 10]),
        ("half.safetensors", &st[..st.len() / 2]),
        ("header.safetensors", &st[..12]),
        ("empty.bin", &[][..]),
        ("text.bin", &b"this is not a checkpoint"[..]),
    ] {
        let path = temp_path(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = expect_checkpoint_error(&path, name);
        assert!(msg.contains(name), "{msg}");
        assert!(Sam::load_with_config(&path, tiny_config()).is_err());
        std::fs::remove_file(&path).unwrap();
    }
    let msg = expect_checkpoint_error(&fixture("not_a_checkpoint.zip"), "zip");
    assert!(msg.contains("no state dict"), "{msg}");
    match Weights::from_file(temp_path("does-not-exist.pth")).map_err(SamError::from) {
        Err(SamError::Io { .. }) => {}
        other => panic!("expected an io error, got {other:?}"),
    }
}

#[test]
fn grayscale_and_tiny_images_are_rejected() {
    let sam = tiny_sam_pth();
    for (w, h) in [(1, 1), (1, 50), (50, 1), (0, 0)] {
        match sam.embed_image(&image::RgbImage::new(w, h)) {
            Err(SamError::Image(m)) => assert!(m.contains(&format!("{w}x{h}")), "{m}"),
            other => panic!("{w}x{h}: expected an image error, got {other:?}"),
        }
    }
    // So long and thin that the short side resizes to nothing.
    assert!(matches!(
        sam.embed_image(&image::RgbImage::new(2, 1000)),
        Err(SamError::Image(_))
    ));
    let generator = AutomaticMaskGenerator::new(AmgOptions::default()).unwrap();
    assert!(matches!(
        generator.generate(&sam, &image::RgbImage::new(1, 1)),
        Err(SamError::Image(_))
    ));

    let options = SamSegmenterOptions {
        quiet: true,
        ..SamSegmenterOptions::default()
    };
    let seg = SamSegmenter::new(tiny_sam_pth(), options).unwrap();
    let gray = image::DynamicImage::ImageLuma8(image::GrayImage::new(32, 32));
    // Through the Segmenter trait the SamError arrives as the source of SomError::Segment.
    match seg.segment(&gray) {
        Err(e @ SomError::Segment(_)) => match e.find::<SamError>() {
            Some(SamError::Image(m)) => assert!(m.contains("grayscale"), "{m}"),
            other => panic!("expected a SamError::Image source, got {other:?}"),
        },
        other => panic!("expected a segmentation error, got {other:?}"),
    }
    let one = image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1));
    let e = seg.segment(&one).unwrap_err();
    assert!(matches!(e.find::<SamError>(), Some(SamError::Image(_))), "{e:?}");
}

#[test]
fn prompts_outside_the_image_are_rejected() {
    let sam = tiny_sam_pth();
    let img = image();
    let emb = sam.embed_image(&img).unwrap();
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let point = |x: f64, y: f64| Prompt {
        points: vec![PointPrompt {
            x,
            y,
            foreground: true,
        }],
        ..Prompt::default()
    };
    for (x, y) in [
        (-1.0, 5.0),
        (w + 0.5, 5.0),
        (5.0, h + 1.0),
        (f64::NAN, 1.0),
        (1.0, f64::INFINITY),
    ] {
        match sam.predict(&emb, &point(x, y)) {
            Err(SamError::Prompt(m)) => assert!(m.contains("outside"), "{m}"),
            other => panic!("({x}, {y}): expected a prompt error, got {other:?}"),
        }
    }
    // The image border itself is inside.
    assert!(sam.predict(&emb, &point(w, h)).is_ok());
    for bbox in [
        [10.0, 10.0, 5.0, 20.0],
        [0.0, 0.0, w + 10.0, h],
        [-5.0, 0.0, 10.0, 10.0],
    ] {
        let prompt = Prompt {
            bbox: Some(bbox),
            ..Prompt::default()
        };
        assert!(
            matches!(sam.predict(&emb, &prompt), Err(SamError::Prompt(_))),
            "{bbox:?}"
        );
    }
    for shape in [vec![40i64, 39], vec![2, 40, 40], vec![1, 1, 1, 40, 40], vec![40]] {
        let prompt = Prompt {
            mask_input: Some(Tensor::zeros(shape.as_slice(), (Kind::Float, tch::Device::Cpu))),
            ..Prompt::default()
        };
        match sam.predict(&emb, &prompt) {
            Err(SamError::Prompt(m)) => assert!(m.contains("mask input"), "{m}"),
            other => panic!("{shape:?}: expected a prompt error, got {other:?}"),
        }
    }
}

#[test]
fn generator_options_out_of_range_are_rejected() {
    let bad = [
        AmgOptions {
            points_per_side: 0,
            ..AmgOptions::default()
        },
        AmgOptions {
            points_per_batch: 0,
            ..AmgOptions::default()
        },
        AmgOptions {
            crop_overlap_ratio: 1.5,
            ..AmgOptions::default()
        },
        AmgOptions {
            pred_iou_thresh: f64::NAN,
            ..AmgOptions::default()
        },
        AmgOptions {
            crop_n_layers: 2,
            points_per_side: 3,
            crop_n_points_downscale_factor: 2,
            ..AmgOptions::default()
        },
    ];
    for options in bad {
        match AutomaticMaskGenerator::new(options.clone()) {
            Err(e @ SamError::Option { .. }) => assert!(e.to_string().starts_with("invalid option"), "{e}"),
            other => panic!("{options:?}: expected an option error, got {other:?}"),
        }
    }
}

#[test]
fn segmenter_is_shareable_and_matches_the_generator() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SamSegmenter>();
    let case = &meta()["amg"][0];
    let amg: AmgOptions = serde_json::from_value(case["options"].clone()).unwrap();
    let options = SamSegmenterOptions {
        amg,
        quiet: true,
        num_threads: Some(2),
        ..SamSegmenterOptions::default()
    };
    let seg = SamSegmenter::new(tiny_sam_safetensors(), options).unwrap();
    let segmentation = seg.segment(&image::DynamicImage::ImageRgb8(image())).unwrap();
    let records = case["records"].as_array().unwrap();
    assert_eq!(segmentation.regions().len(), records.len());
    for (region, record) in segmentation.regions().iter().zip(records) {
        let rle = region.mask.as_ref().unwrap().to_rle().to_compressed();
        assert_eq!(rle, record["segmentation"]["counts"].as_str().unwrap());
        assert_eq!(region.source["segmenter"], "sam");
        assert_eq!(region.source["crop_box"], record["crop_box"]);
    }
    // The timed variant gives the same regions and SAM's own stages for `--timings`.
    let (timed, stages) = seg
        .segment_timed(&image::DynamicImage::ImageRgb8(image()))
        .unwrap();
    assert_eq!(timed, segmentation);
    let names: Vec<&str> = stages.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(names, ["sam_encoder", "sam_decoder", "sam_postprocess"]);
    assert!(
        stages.iter().all(|t| t.ms.is_finite() && t.ms >= 0.0),
        "{stages:?}"
    );
}
