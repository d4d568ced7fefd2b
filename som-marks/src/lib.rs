//! som-marks (being built; see ARCHITECTURE.md).
#![deny(missing_docs)]

pub mod allocate;
pub mod render;
pub use allocate::{AllocationMode, Allocator, AllocatorConfig};
pub use render::{Draw, RenderConfig, Renderer};
