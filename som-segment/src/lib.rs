//! # som-segment
//!
//! Segmenters for Set-of-Mark (SoM) visual prompting: they split an image
//! into the regions that get marks.
//!
//! ## Should I be using this crate?
//!
//! Use `som-segment` when you need regions for an image and
//!
//! - have nothing but the image: [`Classic`] (the default of `som mark`)
//!   segments it in pure Rust, with no weights and no native libraries —
//!   Felzenszwalb–Huttenlocher graph segmentation, identical to
//!   `skimage.segmentation.felzenszwalb`, followed by SoM post-processing
//!   that leaves a few dozen regions a model can talk about;
//! - already have masks or boxes from elsewhere (SAM in Python, a detector,
//!   a DOM or accessibility tree): [`Precomputed`] reads regions JSON, COCO
//!   annotation files, SAM automatic-mask-generator output, PNG label maps
//!   and folders of PNG masks; [`Boxes`] turns a JSON list of boxes into
//!   box-only regions;
//! - want SAM or MaskDINO (instance / panoptic masks with COCO class names) on
//!   LibTorch: enable the `torch` feature.
//!
//! If you only consume regions (allocation, rendering, evaluation), you need
//! `som-core` alone. Every segmenter here implements
//! [`som_core::Segmenter`], so it plugs into [`som_core::SomPipeline`].
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `torch` | no | SAM (ViT-B/L/H, automatic mask generator) and MaskDINO (R50 / Swin-L, instance, panoptic, semantic) on LibTorch through `tch`; needs a LibTorch install (see the repository's `tools/setup-libtorch.sh`) |
//!
//! Without features the crate is pure Rust (`image`, `rayon`, `serde_json`).
//!
//! ## Example
//! ```
//! use image::{DynamicImage, Rgb, RgbImage};
//! use som_core::Segmenter;
//! use som_segment::{felzenszwalb, Classic, FelzenszwalbParams};
//!
//! let img = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| {
//!     if (x as i32 - 32).pow(2) + (y as i32 - 24).pow(2) < 200 { Rgb([220, 40, 40]) } else { Rgb([30, 90, 200]) }
//! }));
//! // The raw partition, as skimage computes it.
//! // (the blurred rim of the disc is a segment of its own).
//! let labels = felzenszwalb(&img, &FelzenszwalbParams::REFERENCE)?;
//! assert_eq!(labels.count(), 3);
//! // The SoM default: regions ready for marks (the rim is a sliver and merges).
//! let seg = Classic::default().segment(&img)?;
//! assert_eq!(seg.regions().len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod boxes;
mod classic;
mod error;
mod felzenszwalb;
mod labels;
mod precomputed;

pub use boxes::{parse_boxes, parse_boxes_value, BoxFormat, BoxOptions, Boxes};
pub use classic::{split_connected, Classic, ClassicParams};
pub use error::{Result, SegmentError};
pub use felzenszwalb::{felzenszwalb, Felzenszwalb, FelzenszwalbParams, MAX_PIXELS};
pub use labels::{adjusted_rand_index, LabelMap};
pub use precomputed::{
    decode_label_png, regions_from_values, LabelMapOptions, Precomputed, RegionSource,
    DEFAULT_MAX_PRECOMPUTED_REGIONS, MAX_MASK_BYTES,
};

#[cfg(feature = "torch")]
mod device;
#[cfg(feature = "torch")]
pub use device::{Device, DeviceError};
#[cfg(feature = "torch")]
pub mod maskdino;
#[cfg(feature = "torch")]
pub mod sam;
#[cfg(feature = "torch")]
pub mod torch;
