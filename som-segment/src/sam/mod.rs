//! Segment Anything (SAM) on LibTorch: a native port of `segment_anything` 1.0.
//!
//! Available with the `torch` feature. One module per upstream component, parameter paths
//! equal to the checkpoint keys (`image_encoder.blocks.0.attn.qkv.weight`…), and the same
//! ATen operations in the same order as the reference, so outputs match it to float
//! rounding (the parity tests under `tests/sam_*.rs` check this against fixtures produced by
//! `tools/fixtures/gen_sam.py`).
//!
//! - [`Sam`] loads official `.pth` checkpoints directly (a PyTorch zip archive with a pickled
//!   state dict, read in Rust) or safetensors, embeds an image once ([`Sam::embed_image`])
//!   and answers many prompts ([`Sam::predict`]).
//! - [`AutomaticMaskGenerator`] is `SamAutomaticMaskGenerator`: point grids, crops, filtering,
//!   NMS and small-region clean-up, writing the same records ([`AmgRecord`]).
//! - [`SamSegmenter`] plugs the generator into the [`som_core::Segmenter`] pipeline.
//!
//! # LibTorch
//!
//! `tch` 0.26 links LibTorch 2.13.0 at build time. `tools/setup-libtorch.sh` installs the
//! CPU subset of the PyPI wheel once into `${SOM_CACHE:-~/.cache/som}/libtorch-2.13.0` and
//! prints the environment:
//!
//! ```sh
//! eval "$(tools/setup-libtorch.sh --env)"
//! cargo test -p som-segment --features torch
//! ```
//!
//! Test binaries, examples and `som` carry an rpath to that LibTorch, so they run without
//! `LD_LIBRARY_PATH`.
//!
//! # Differences from upstream
//!
//! - Only `points_per_side` grids (not custom `point_grids`); records are always
//!   `coco_rle`.
//! - With more than 1000 boxes in one NMS call, torchvision switches to a per-class path
//!   that re-sorts kept boxes with an unstable sort; boxes with *equal* scores may then come
//!   out in another order (the same set is kept). Below that size, order is identical.
//! - Images whose sides are under [`MIN_IMAGE_SIDE`] pixels and grayscale images are
//!   rejected with [`SamError::Image`] instead of failing inside the model.
//!
//! ```no_run
//! use som_segment::sam::{PointPrompt, Prompt, Sam, SamModel};
//! let sam = Sam::load("sam_vit_b_01ec64.pth", SamModel::VitB)?;
//! let image = image::open("photo.jpg")?.to_rgb8();
//! let embedding = sam.embed_image(&image)?;
//! let prompt = Prompt {
//!     points: vec![PointPrompt { x: 320.0, y: 200.0, foreground: true }],
//!     multimask_output: true,
//!     ..Prompt::default()
//! };
//! let prediction = sam.predict(&embedding, &prompt)?;
//! println!("{} masks, IoU {:?}", prediction.masks.len(), prediction.iou_predictions);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod amg;
mod common;
mod components;
mod config;
mod error;
mod image_encoder;
mod image_rows;
mod mask_decoder;
mod mask_product;
mod norm_gelu;
mod products;
mod prompt_encoder;
mod resize;
#[allow(clippy::module_inception)]
mod sam;
mod segmenter;
mod softmax;
mod tiny_vit;
mod token_mix;
mod transformer;
mod upscale;

pub use crate::torch::resize_bilinear;
pub use crate::torch::Weights;
pub use amg::{AmgOptions, AmgRecord, AmgTimings, AutomaticMaskGenerator, RleRecord};
pub use config::{
    EncoderConfig, ImageEncoderConfig, MaskDecoderConfig, PromptEncoderConfig, SamConfig, SamModel,
    TwoWayTransformerConfig,
};
pub use error::SamError;
pub use image_encoder::{Block as EncoderBlock, ImageEncoderViT};
pub use mask_decoder::MaskDecoder;
pub use prompt_encoder::PromptEncoder;
pub use resize::{apply_coords, preprocess_shape, resize_longest_side};
pub use sam::{
    ImageEmbedding, ImageEncoder, PointPrompt, Prediction, Prompt, Sam, MASK_THRESHOLD, MIN_IMAGE_SIDE,
};
pub use segmenter::{ObjectPrompt, SamPromptSegmenter, SamSegmenter, SamSegmenterOptions};
pub use tiny_vit::{TinyViT, TinyVitConfig};
pub use transformer::TwoWayTransformer;
