//! What a downstream application sees: it builds a SAM segmenter in a function
//! that returns `som_core::Result` and gets a `SomError` whose source is the
//! `SamError` itself, so it can tell a weight-shape error from anything else.
#![cfg(feature = "torch")]

mod sam_support;

use sam_support::fixture;
use som_core::{ErrorChain, Segmenter, SomError};
use som_segment::sam::{Sam, SamError, SamModel, SamSegmenter, SamSegmenterOptions};

/// An application's own setup code: `?` turns the SamError into a SomError.
fn build_segmenter(checkpoint: &std::path::Path, model: SamModel) -> som_core::Result<Box<dyn Segmenter>> {
    let sam = Sam::load(checkpoint, model)?;
    Ok(Box::new(SamSegmenter::new(sam, SamSegmenterOptions::default())?))
}

#[test]
fn a_weight_shape_error_survives_the_trip_through_som_error() {
    let err = match build_segmenter(&fixture("tiny.pth"), SamModel::VitB) {
        Ok(_) => panic!("the tiny checkpoint is not ViT-B"),
        Err(e) => e,
    };
    assert!(matches!(err, SomError::Segment(_)), "{err:?}");
    // Downcasting the source works…
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<SamError>().is_some(), "{source:?}");
    // …and so does asking along the chain.
    match err.find::<SamError>() {
        Some(SamError::WeightShape {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(name, "image_encoder.patch_embed.proj.weight");
            assert_eq!((expected[0], found[0]), (768, 64));
        }
        other => panic!("expected a weight-shape error, got {other:?}"),
    }
    let line = ErrorChain(&err).to_string();
    assert!(
        line.starts_with("segmentation failed: parameter `image_encoder.patch_embed.proj.weight`"),
        "{line}"
    );
}
