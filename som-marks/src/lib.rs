//! # som-marks
//!
//! Mark allocation and rendering for Set-of-Mark prompting, in pure Rust.
//!
//! ## Should I be using this crate?
//!
//! Use it when you have regions (from any [`som_core::Segmenter`], or loaded
//! with [`som_core::json`]) and want marks a multimodal model can read: a
//! number or letter on each region, placed where a reader sees which region it
//! names, drawn with an optional mask tint, contour and box. It needs no native
//! library, no system fonts and no network.
//!
//! - [`Allocator`] ([`som_core::MarkAllocator`]): two modes. [`AllocationMode::Paper`]
//!   (the default) is the SoM paper's Algorithm 1 made robust: smallest regions
//!   first, each region minus the smaller ones already marked, the anchor at the
//!   exact Euclidean-distance maximum of what remains, label boxes inside the
//!   image and apart, labels beside regions that are too small or covered, and
//!   — when the image cannot hold every label — shrinking, then the fewest
//!   overlaps, each flagged in [`som_core::Mark::overlaps`].
//!   [`AllocationMode::Independent`] is what the released SoM code does.
//!   Marks are numbered largest region first in both modes.
//! - [`Renderer`] ([`som_core::MarkRenderer`] + [`som_core::LabelMeasure`]):
//!   deterministic palette, tint drawn once per pixel, anti-aliased contours,
//!   boxes, labels in the embedded DejaVu Sans Bold.
//! - [`allocate::edt`]: the exact distance transform (Felzenszwalb–Huttenlocher)
//!   with an early-exit arg-max, usable on its own.
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | *(none)* | | `som-marks` has no optional features |
//!
//! ## Example
//! ```
//! use som_core::{BBox, ImageSize, Mask, MarkAllocator, MarkRenderer, Region, Segmentation};
//! use som_marks::{Allocator, Renderer};
//!
//! let size = ImageSize::new(200, 120);
//! let seg = Segmentation::new(size, vec![
//!     Region::from_mask(1, Mask::from_box(size, BBox::new(10, 10, 120, 90))),
//!     Region::from_mask(2, Mask::from_box(size, BBox::new(140, 20, 50, 50))),
//! ])?;
//! let renderer = Renderer::default();
//! let marks = Allocator::default().allocate(&seg, &renderer)?;
//! assert_eq!(marks[0].text, "1"); // the larger region
//! assert!(seg.regions()[marks[0].region].mask.as_ref().unwrap().contains(marks[0].anchor));
//! let image = renderer.render(&image::RgbImage::new(200, 120), &seg, &marks)?;
//! assert_eq!(image.dimensions(), (200, 120));
//! # Ok::<(), som_core::SomError>(())
//! ```
#![deny(missing_docs)]

pub mod allocate;
mod error;
pub mod render;
pub mod style;
pub use allocate::{AllocationMode, Allocator, AllocatorConfig};
pub use error::{MarksError, Result};
pub use render::{Draw, RenderConfig, Renderer};
pub use style::{LabelKind, MarkStyle};
