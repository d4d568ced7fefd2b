//! # som-core
//!
//! Core types and traits for Set-of-Mark (SoM) visual prompting
//! (Yang et al., 2023, arXiv 2310.11441): segment an image into regions, put a
//! mark on each, ask a multimodal model, and map the marks in its answer back
//! to regions.
//!
//! ## Should I be using this crate?
//!
//! Use `som-core` when you write a pipeline stage (a segmenter, an allocator,
//! a renderer, a model client) or when you consume regions and marks. It holds
//! plain data and traits, and depends only on `image`, `ndarray`, `serde`,
//! `serde_json` and `thiserror`: no LibTorch, no HTTP, no async runtime, no
//! fonts. The stages themselves live in `som-segment`, `som-marks` and
//! `som-lmm`.
//!
//! ## What is here
//!
//! - [`Mask`]: a binary mask stored as its bounding-box crop, with COCO RLE
//!   ([`Rle`], byte-identical to pycocotools) and `ndarray` conversion.
//! - [`Region`], [`Segmentation`], [`Mark`], [`MarkedImage`].
//! - The stages: [`Segmenter`], [`MarkAllocator`], [`MarkRenderer`]
//!   (with [`LabelMeasure`]), [`GroundingModel`], composed by [`SomPipeline`].
//! - [`json`]: the regions JSON and marks JSON contracts.
//! - [`io`]: image decoding with resource limits; JPEGs through [`jpeg`],
//!   a decoder whose pixels equal PIL's and OpenCV's (libjpeg-turbo).
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `exact-jpeg` | yes | [`jpeg`]: a pure-Rust JPEG decoder pixel-identical to libjpeg-turbo (PIL, OpenCV), used by [`io`]; without it JPEGs go through the `image` crate's decoder, whose pixels differ by a level or two on a few percent of the values |
//!
//! `exact-jpeg` is on by default because it makes a Rust pipeline see the
//! pixels the same pipeline sees in Python (regions, and so marks, depend on
//! them); it adds no dependency and no native code. Turn it off only to get
//! the `image` crate's faster SIMD decoder when parity does not matter.
//!
//! ## Example
//! ```
//! use som_core::{BBox, ImageSize, Mask, Rle};
//! let mask = Mask::from_box(ImageSize::new(640, 427), BBox::new(10, 20, 30, 40));
//! let rle = mask.to_rle();
//! let again = Rle::from_compressed(rle.size(), &rle.to_compressed())?.to_mask();
//! assert_eq!(again, mask);
//! # Ok::<(), som_core::SomError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod geometry;
mod grounding;
pub mod io;
#[cfg(feature = "exact-jpeg")]
pub mod jpeg;
pub mod json;
mod mark;
mod marked;
mod mask;
mod pipeline;
pub mod polygon;
mod region;
mod rle;
mod timing;
mod traits;

pub use error::{BoxError, ErrorChain, Result, SomError};
pub use geometry::{BBox, ImageSize, Point};
pub use grounding::{
    BoxFuture, ContentPart, GroundingAnswer, GroundingModel, GroundingRequest, ImageScale, MarkRef, Usage,
};
pub use mark::{LabelScheme, Mark, Placement};
pub use marked::MarkedImage;
pub use mask::Mask;
pub use pipeline::SomPipeline;
pub use region::{Region, Segmentation};
pub use rle::Rle;
pub use timing::StageTiming;
pub use traits::{LabelMeasure, MarkAllocator, MarkRenderer, Segmenter};
