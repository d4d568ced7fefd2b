//! Model configurations: one serde [`SamConfig`] per model size.
//!
//! The values are those of `segment_anything/build_sam.py` (`_build_sam` and
//! `build_sam_vit_{b,l,h}`), upstream:
//! <https://github.com/facebookresearch/segment-anything/blob/main/segment_anything/build_sam.py>.

use serde::{Deserialize, Serialize};

use super::SamError;

/// Which official SAM model a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamModel {
    /// ViT-B image encoder (`sam_vit_b_01ec64.pth`, 91M parameters).
    VitB,
    /// ViT-L image encoder (`sam_vit_l_0b3195.pth`, 308M parameters).
    VitL,
    /// ViT-H image encoder (`sam_vit_h_4b8939.pth`, 636M parameters).
    VitH,
}

impl SamModel {
    /// The reference name (`vit_b`, `vit_l`, `vit_h`).
    pub fn name(self) -> &'static str {
        match self {
            SamModel::VitB => "vit_b",
            SamModel::VitL => "vit_l",
            SamModel::VitH => "vit_h",
        }
    }

    /// The configuration `build_sam_vit_*` builds.
    pub fn config(self) -> SamConfig {
        let (embed_dim, depth, num_heads, global) = match self {
            SamModel::VitB => (768, 12, 12, vec![2, 5, 8, 11]),
            SamModel::VitL => (1024, 24, 16, vec![5, 11, 17, 23]),
            SamModel::VitH => (1280, 32, 16, vec![7, 15, 23, 31]),
        };
        SamConfig::official(self.name(), embed_dim, depth, num_heads, global)
    }
}

impl SamModel {
    /// The official model a state dict belongs to, from the width of
    /// `image_encoder.patch_embed.proj.weight`.
    ///
    /// # Errors
    /// [`SamError::MissingWeight`] without that key, [`SamError::Config`] for a width no
    /// official model has.
    pub fn detect(weights: &super::Weights) -> Result<SamModel, SamError> {
        const KEY: &str = "image_encoder.patch_embed.proj.weight";
        let t = weights
            .get(KEY)
            .ok_or_else(|| SamError::MissingWeight { name: KEY.to_owned() })?;
        let width = t.size().first().copied().unwrap_or(0);
        [SamModel::VitB, SamModel::VitL, SamModel::VitH]
            .into_iter()
            .find(|m| m.config().image_encoder.embed_dim == width)
            .ok_or_else(|| {
                SamError::Config(format!(
                    "checkpoint's image encoder width {width} matches no official model (vit_b 768, vit_l 1024, vit_h 1280)"
                ))
            })
    }
}

impl std::str::FromStr for SamModel {
    type Err = SamError;

    /// Parses `vit_b`, `vit_l`, `vit_h` (and `default` = `vit_h`, as upstream).
    fn from_str(s: &str) -> Result<Self, SamError> {
        match s {
            "vit_b" => Ok(SamModel::VitB),
            "vit_l" => Ok(SamModel::VitL),
            "vit_h" | "default" => Ok(SamModel::VitH),
            other => Err(SamError::Config(format!(
                "unknown model '{other}' (expected vit_b, vit_l or vit_h)"
            ))),
        }
    }
}

/// The ViT image encoder (`ImageEncoderViT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEncoderConfig {
    /// Side of the square input, in pixels (1024).
    pub img_size: i64,
    /// Patch side (16).
    pub patch_size: i64,
    /// Input channels (3).
    pub in_chans: i64,
    /// Token width (768 / 1024 / 1280).
    pub embed_dim: i64,
    /// Number of transformer blocks (12 / 24 / 32).
    pub depth: usize,
    /// Attention heads per block (12 / 16 / 16).
    pub num_heads: i64,
    /// MLP hidden width as a multiple of `embed_dim` (4).
    pub mlp_ratio: f64,
    /// Channels of the image embedding (256).
    pub out_chans: i64,
    /// Bias on the qkv projection (true).
    pub qkv_bias: bool,
    /// Learned absolute position embedding (true).
    pub use_abs_pos: bool,
    /// Decomposed relative position embeddings in attention (true).
    pub use_rel_pos: bool,
    /// Window side for windowed-attention blocks (14); 0 means all blocks are global.
    pub window_size: i64,
    /// Blocks that use global attention.
    pub global_attn_indexes: Vec<usize>,
    /// LayerNorm epsilon in the blocks (1e-6).
    pub layer_norm_eps: f64,
}

/// The prompt encoder (`PromptEncoder`). The embedding grid and input size follow from
/// the image encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptEncoderConfig {
    /// Prompt embedding width (256).
    pub embed_dim: i64,
    /// Hidden channels of the mask-input downscaler (16).
    pub mask_in_chans: i64,
}

/// The two-way transformer inside the mask decoder (`TwoWayTransformer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoWayTransformerConfig {
    /// Number of two-way attention blocks (2).
    pub depth: usize,
    /// Token width (256).
    pub embedding_dim: i64,
    /// Attention heads (8).
    pub num_heads: i64,
    /// MLP hidden width (2048).
    pub mlp_dim: i64,
    /// Internal width divisor of the cross attentions (2).
    pub attention_downsample_rate: i64,
}

/// The mask decoder (`MaskDecoder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskDecoderConfig {
    /// Masks predicted in multimask mode (3); one more token predicts the single mask.
    pub num_multimask_outputs: i64,
    /// Layers of the IoU head (3).
    pub iou_head_depth: usize,
    /// Hidden width of the IoU head (256).
    pub iou_head_hidden_dim: i64,
    /// The two-way transformer.
    pub transformer: TwoWayTransformerConfig,
}

/// A complete SAM model configuration.
///
/// ```
/// use som_segment::sam::SamModel;
/// let c = SamModel::VitB.config();
/// assert_eq!(c.image_encoder.embed_dim, 768);
/// assert_eq!(c.image_embedding_size(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamConfig {
    /// A name for messages (`vit_b`…, or anything for custom configurations).
    #[serde(default = "custom_name")]
    pub name: String,
    /// The image encoder.
    pub image_encoder: ImageEncoderConfig,
    /// The prompt encoder.
    pub prompt_encoder: PromptEncoderConfig,
    /// The mask decoder.
    pub mask_decoder: MaskDecoderConfig,
    /// Per-channel mean subtracted from RGB pixels (0–255 scale).
    pub pixel_mean: [f64; 3],
    /// Per-channel standard deviation pixels are divided by.
    pub pixel_std: [f64; 3],
}

fn custom_name() -> String {
    "custom".to_owned()
}

impl SamConfig {
    fn official(name: &str, embed_dim: i64, depth: usize, num_heads: i64, global: Vec<usize>) -> Self {
        SamConfig {
            name: name.to_owned(),
            image_encoder: ImageEncoderConfig {
                img_size: 1024,
                patch_size: 16,
                in_chans: 3,
                embed_dim,
                depth,
                num_heads,
                mlp_ratio: 4.0,
                out_chans: 256,
                qkv_bias: true,
                use_abs_pos: true,
                use_rel_pos: true,
                window_size: 14,
                global_attn_indexes: global,
                layer_norm_eps: 1e-6,
            },
            prompt_encoder: PromptEncoderConfig {
                embed_dim: 256,
                mask_in_chans: 16,
            },
            mask_decoder: MaskDecoderConfig {
                num_multimask_outputs: 3,
                iou_head_depth: 3,
                iou_head_hidden_dim: 256,
                transformer: TwoWayTransformerConfig {
                    depth: 2,
                    embedding_dim: 256,
                    num_heads: 8,
                    mlp_dim: 2048,
                    attention_downsample_rate: 2,
                },
            },
            pixel_mean: [123.675, 116.28, 103.53],
            pixel_std: [58.395, 57.12, 57.375],
        }
    }

    /// Side of the image-embedding grid (`img_size / patch_size`, 64).
    pub fn image_embedding_size(&self) -> i64 {
        self.image_encoder.img_size / self.image_encoder.patch_size
    }

    /// Checks the invariants the modules rely on.
    ///
    /// # Errors
    /// [`SamError::Config`] naming the first broken invariant.
    pub fn validate(&self) -> Result<(), SamError> {
        let e = &self.image_encoder;
        let t = &self.mask_decoder.transformer;
        let bad = |m: String| Err(SamError::Config(m));
        if e.img_size <= 0 || e.patch_size <= 0 || e.img_size % e.patch_size != 0 {
            return bad(format!(
                "img_size {} is not a positive multiple of patch_size {}",
                e.img_size, e.patch_size
            ));
        }
        if e.in_chans != 3 {
            return bad(format!("in_chans {} (only RGB input is supported)", e.in_chans));
        }
        if e.embed_dim <= 0 || e.num_heads <= 0 || e.embed_dim % e.num_heads != 0 {
            return bad(format!(
                "embed_dim {} is not divisible by num_heads {}",
                e.embed_dim, e.num_heads
            ));
        }
        if e.window_size < 0 || e.mlp_ratio.is_nan() || e.mlp_ratio <= 0.0 || e.out_chans <= 0 {
            return bad("window_size, mlp_ratio and out_chans must be positive".to_owned());
        }
        if let Some(i) = e.global_attn_indexes.iter().find(|&&i| i >= e.depth) {
            return bad(format!("global attention index {i} is beyond depth {}", e.depth));
        }
        if self.prompt_encoder.embed_dim != e.out_chans || t.embedding_dim != e.out_chans {
            return bad(format!(
                "prompt embed_dim {} and transformer embedding_dim {} must equal out_chans {}",
                self.prompt_encoder.embed_dim, t.embedding_dim, e.out_chans
            ));
        }
        if e.out_chans % 8 != 0 || self.prompt_encoder.embed_dim % 2 != 0 {
            return bad(format!("out_chans {} must be a multiple of 8", e.out_chans));
        }
        if self.prompt_encoder.mask_in_chans < 4 || self.prompt_encoder.mask_in_chans % 4 != 0 {
            return bad(format!(
                "mask_in_chans {} must be a positive multiple of 4",
                self.prompt_encoder.mask_in_chans
            ));
        }
        if t.attention_downsample_rate <= 0
            || t.num_heads <= 0
            || (t.embedding_dim / t.attention_downsample_rate) % t.num_heads != 0
            || t.embedding_dim % t.num_heads != 0
        {
            return bad(format!(
                "transformer num_heads {} must divide embedding_dim {} and embedding_dim / attention_downsample_rate",
                t.num_heads, t.embedding_dim
            ));
        }
        if self.mask_decoder.num_multimask_outputs < 1 || self.mask_decoder.iou_head_depth < 1 {
            return bad("num_multimask_outputs and iou_head_depth must be at least 1".to_owned());
        }
        if self.pixel_std.iter().any(|&s| s.is_nan() || s <= 0.0) {
            return bad(format!("pixel_std {:?} must be positive", self.pixel_std));
        }
        Ok(())
    }
}
