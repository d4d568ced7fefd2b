//! Plumbing shared by the LibTorch models: checkpoint reading, the generic layers, and
//! Pillow's bilinear resize.
//!
//! Available with the `torch` feature.
//!
//! - [`Weights`] reads official `.pth` checkpoints (a PyTorch zip archive holding a pickled
//!   state dict, read in Rust by a minimal unpickler that understands only what state dicts
//!   contain, never running code) and safetensors files.
//! - Parameters are taken from it under their checkpoint keys and checked against the shape
//!   the configured model needs before any is used; every key must be taken (strict
//!   loading), so a checkpoint of another model is a [`CheckpointError`], not garbage output.
//!
//! ```no_run
//! use som_segment::torch::Weights;
//! let weights = Weights::from_file("sam_vit_b_01ec64.pth")?;
//! println!("{} tensors, first {:?}", weights.len(), weights.names().next());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allocator;
pub(crate) mod deform_attn;
mod error;
pub(crate) mod floats;
pub(crate) mod gemm;
pub(crate) mod layer_norm;
pub(crate) mod nn;
pub(crate) mod parallel;
mod pickle;
mod resize;
mod weights;

pub use allocator::retain_freed_memory;
pub use deform_attn::ms_deform_attn;
pub use error::CheckpointError;
pub use resize::resize_bilinear;
pub(crate) use weights::Vb;
pub use weights::Weights;
