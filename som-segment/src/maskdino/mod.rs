//! MaskDINO on LibTorch: a native port of IDEA-Research/MaskDINO's inference (CVPR 2023),
//! instance, panoptic and semantic segmentation with COCO class names.
//!
//! Available with the `torch` feature. One module per upstream component — backbones
//! (ResNet as detectron2 builds it, Swin), the pixel decoder (multi-scale
//! deformable attention encoder and FPN), the DINO decoder and the MaskDINO decoder with
//! its heads, post-processing, configs — with parameter paths equal to the checkpoint keys
//! (`sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.value_proj.weight`…)
//! and the same ATen operations in the same order as the reference, so outputs match it to
//! float rounding (the parity tests under `tests/maskdino_*.rs` check this against
//! fixtures produced by `tools/fixtures/gen_maskdino.py`, which runs upstream itself).
//!
//! The deformable attention runs in its exact pure-tensor form
//! ([`crate::torch::ms_deform_attn`], bilinear `grid_sample` per level, upstream's own CPU
//! path): no compiled `MultiScaleDeformableAttention` op, no detectron2, no Python.
//!
//! - [`MaskDino`] loads the released `.pth` checkpoints directly (detectron2's checkpointer
//!   format: a dict whose `model` entry is the state dict; other entries such as optimizer
//!   state are ignored) or safetensors copies, with the configuration named by
//!   [`MaskDinoModel`] (`r50_instance`, `r50_panoptic`, `swinl_instance`, `swinl_panoptic`)
//!   and checked against every tensor's shape as the model is built.
//! - [`components`] exposes the backbone, pixel decoder and decoder on their own (the
//!   parts the DINO family shares).
//! - [`MaskDinoSegmenter`] is a [`som_core::Segmenter`]: regions carry the COCO class name
//!   as `label` and the score as `score`, and [`som_core::Segmenter::segment_timed`]
//!   reports `maskdino_backbone`, `maskdino_encoder`, `maskdino_decoder` and
//!   `maskdino_postprocess`.
//!
//! # Differences from upstream
//!
//! - Inference only (no denoising queries, losses or training paths); one image per batch,
//!   so nothing is padded inside a batch and valid ratios are 1 (upstream's masks are all
//!   `False` at inference too).
//! - `gen_sineembed_for_position` hard-codes 128 features per coordinate, half of the
//!   published width 256; the port uses half the configured width, the same function for
//!   every published model.
//! - Only the queries an output uses are upsampled to the image size (the top-k of
//!   instances, the kept queries of panoptic), which gives the same values for less memory.
//! - Images under [`MIN_IMAGE_SIDE`] pixels a side and grayscale images are rejected with
//!   [`MaskDinoError::Image`] instead of failing inside the model.
//!
//! ```no_run
//! use som_segment::maskdino::{MaskDino, MaskDinoModel};
//! let model = MaskDino::load("maskdino_r50_50ep_300q_hid2048_3sd1_instance_maskenhanced_mask46.3ap_box51.7ap.pth", MaskDinoModel::R50Instance)?;
//! let image = image::open("photo.jpg")?.to_rgb8();
//! for inst in model.predict(&image)?.instances.unwrap_or_default() {
//!     let name = model.config().dataset.class_name(inst.class_id).unwrap_or("?");
//!     println!("{name} {:.2} {:?}", inst.score, inst.bbox);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classes;
pub mod components;
mod config;
mod decoder;
mod dino_decoder;
mod encoder;
mod error;
#[allow(clippy::module_inception)]
mod maskdino;
mod position;
mod postprocess;
mod resnet;
mod segmenter;
mod swin;

pub use config::{
    BackboneConfig, BoxInit, Dataset, DecoderConfig, InputConfig, MaskDinoConfig, MaskDinoModel,
    PixelDecoderConfig, ResNetConfig, SwinConfig, TestConfig,
};
pub use decoder::DecoderOutput;
pub use encoder::EncoderOutput;
pub use error::MaskDinoError;
pub use maskdino::{resize_shortest_edge, MaskDino, Outputs, PreparedImage, StageTimes, MIN_IMAGE_SIDE};
pub use postprocess::{ImageSizes, Instance, Panoptic, PanopticSegment, Prediction};
pub use segmenter::{
    MaskDinoSegmenter, MaskDinoSegmenterOptions, MaskDinoTask, DEFAULT_CONFIDENCE_THRESHOLD,
};
