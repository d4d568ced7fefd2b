//! Model configurations: one serde [`SamConfig`] per model size.
//!
//! The values are those of `segment_anything/build_sam.py` (`_build_sam` and
//! `build_sam_vit_{b,l,h}`), upstream:
//! <https://github.com/facebookresearch/segment-anything/blob/main/segment_anything/build_sam.py>.

use serde::{Deserialize, Serialize};

use super::tiny_vit::TinyVitConfig;
use super::SamError;

/// Which official SAM model a checkpoint holds (the names of the reference's
/// `sam_model_registry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamModel {
    /// ViT-B image encoder (`sam_vit_b_01ec64.pth`, 91M parameters).
    VitB,
    /// ViT-L image encoder (`sam_vit_l_0b3195.pth`, 308M parameters).
    VitL,
    /// ViT-H image encoder (`sam_vit_h_4b8939.pth`, 636M parameters).
    VitH,
    /// MobileSAM: the TinyViT image encoder (`mobile_sam.pt`, 10M parameters) with SAM's
    /// prompt encoder and mask decoder.
    VitT,
}

impl SamModel {
    /// Every official model.
    pub const ALL: [SamModel; 4] = [SamModel::VitB, SamModel::VitL, SamModel::VitH, SamModel::VitT];

    /// The reference name (`vit_b`, `vit_l`, `vit_h`, `vit_t`).
    pub fn name(self) -> &'static str {
        match self {
            SamModel::VitB => "vit_b",
            SamModel::VitL => "vit_l",
            SamModel::VitH => "vit_h",
            SamModel::VitT => "vit_t",
        }
    }

    /// The configuration `build_sam_vit_*` builds.
    pub fn config(self) -> SamConfig {
        let (embed_dim, depth, num_heads, global) = match self {
            SamModel::VitB => (768, 12, 12, vec![2, 5, 8, 11]),
            SamModel::VitL => (1024, 24, 16, vec![5, 11, 17, 23]),
            SamModel::VitH => (1280, 32, 16, vec![7, 15, 23, 31]),
            SamModel::VitT => {
                let mut c = SamConfig::official(self.name(), 768, 12, 12, vec![]);
                c.image_encoder = EncoderConfig::TinyVit(TinyVitConfig::mobile_sam());
                return c;
            }
        };
        SamConfig::official(self.name(), embed_dim, depth, num_heads, global)
    }

    /// The official model a state dict belongs to: MobileSAM when it has TinyViT's stem
    /// (`image_encoder.patch_embed.seq.0.c.weight`), else the ViT whose width
    /// `image_encoder.patch_embed.proj.weight` has.
    ///
    /// # Errors
    /// [`SamError::MissingWeight`] without either key, [`SamError::Config`] for a width no
    /// official model has.
    pub fn detect(weights: &super::Weights) -> Result<SamModel, SamError> {
        if weights.get(TINY_VIT_STEM).is_some() {
            return Ok(SamModel::VitT);
        }
        const KEY: &str = "image_encoder.patch_embed.proj.weight";
        let t = weights
            .get(KEY)
            .ok_or_else(|| SamError::MissingWeight { name: KEY.to_owned() })?;
        let width = t.size().first().copied().unwrap_or(0);
        [SamModel::VitB, SamModel::VitL, SamModel::VitH]
            .into_iter()
            .find(|m| m.config().image_encoder.vit().map(|v| v.embed_dim) == Some(width))
            .ok_or_else(|| {
                SamError::Config(format!(
                    "checkpoint's image encoder width {width} matches no official model (vit_b 768, vit_l 1024, vit_h 1280)"
                ))
            })
    }
}

/// The first convolution of TinyViT's stem: its presence tells a MobileSAM checkpoint.
pub(crate) const TINY_VIT_STEM: &str = "image_encoder.patch_embed.seq.0.c.weight";

impl std::str::FromStr for SamModel {
    type Err = SamError;

    /// Parses `vit_b`, `vit_l`, `vit_h`, `vit_t` (and `default` = `vit_h`, as upstream).
    fn from_str(s: &str) -> Result<Self, SamError> {
        match s {
            "vit_b" => Ok(SamModel::VitB),
            "vit_l" => Ok(SamModel::VitL),
            "vit_h" | "default" => Ok(SamModel::VitH),
            "vit_t" => Ok(SamModel::VitT),
            other => Err(SamError::Config(format!(
                "unknown model '{other}' (expected vit_b, vit_l, vit_h or vit_t)"
            ))),
        }
    }
}

/// The image encoder's configuration: SAM's ViT or MobileSAM's TinyViT.
///
/// In JSON it is the encoder's own object; a `tiny_vit` one is recognised by its
/// `embed_dims` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EncoderConfig {
    /// `ImageEncoderViT` (SAM ViT-B/L/H).
    Vit(ImageEncoderConfig),
    /// `TinyViT` (MobileSAM).
    TinyVit(TinyVitConfig),
}

impl<'de> Deserialize<'de> for EncoderConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        if v.get("embed_dims").is_some() {
            serde_json::from_value(v)
                .map(EncoderConfig::TinyVit)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(v)
                .map(EncoderConfig::Vit)
                .map_err(D::Error::custom)
        }
    }
}

impl EncoderConfig {
    /// The ViT configuration, if this is one.
    pub fn vit(&self) -> Option<&ImageEncoderConfig> {
        match self {
            EncoderConfig::Vit(c) => Some(c),
            EncoderConfig::TinyVit(_) => None,
        }
    }

    /// The ViT configuration, mutably, if this is one.
    pub fn vit_mut(&mut self) -> Option<&mut ImageEncoderConfig> {
        match self {
            EncoderConfig::Vit(c) => Some(c),
            EncoderConfig::TinyVit(_) => None,
        }
    }

    /// The TinyViT configuration, if this is one.
    pub fn tiny_vit(&self) -> Option<&TinyVitConfig> {
        match self {
            EncoderConfig::TinyVit(c) => Some(c),
            EncoderConfig::Vit(_) => None,
        }
    }

    /// Side of the square input, in pixels.
    pub fn img_size(&self) -> i64 {
        match self {
            EncoderConfig::Vit(c) => c.img_size,
            EncoderConfig::TinyVit(c) => c.img_size,
        }
    }

    /// Channels of the image embedding.
    pub fn out_chans(&self) -> i64 {
        match self {
            EncoderConfig::Vit(c) => c.out_chans,
            EncoderConfig::TinyVit(c) => c.out_chans,
        }
    }

    /// Side of the image-embedding grid (0 for an invalid configuration).
    pub fn embedding_grid(&self) -> i64 {
        match self {
            EncoderConfig::Vit(c) if c.patch_size > 0 => c.img_size / c.patch_size,
            EncoderConfig::Vit(_) => 0,
            EncoderConfig::TinyVit(c) => c.output_grid().unwrap_or(0),
        }
    }
}

/// The ViT image encoder (`ImageEncoderViT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
/// assert_eq!(c.image_encoder.vit().unwrap().embed_dim, 768);
/// assert_eq!(c.image_embedding_size(), 64);
/// assert_eq!(SamModel::VitT.config().image_embedding_size(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamConfig {
    /// A name for messages (`vit_b`…, or anything for custom configurations).
    #[serde(default = "custom_name")]
    pub name: String,
    /// The image encoder.
    pub image_encoder: EncoderConfig,
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
            image_encoder: EncoderConfig::Vit(ImageEncoderConfig {
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
            }),
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

    /// Side of the image-embedding grid (64 for the official models).
    pub fn image_embedding_size(&self) -> i64 {
        self.image_encoder.embedding_grid()
    }

    /// Checks the invariants the modules rely on.
    ///
    /// # Errors
    /// [`SamError::Config`] naming the first broken invariant.
    pub fn validate(&self) -> Result<(), SamError> {
        let t = &self.mask_decoder.transformer;
        let bad = |m: String| Err(SamError::Config(m));
        let out_chans = self.image_encoder.out_chans();
        match &self.image_encoder {
            EncoderConfig::Vit(e) => Self::validate_vit(e)?,
            EncoderConfig::TinyVit(e) => e.validate()?,
        }
        if self.image_embedding_size() < 1 {
            return bad("the image encoder's output grid is empty".to_owned());
        }
        if self.prompt_encoder.embed_dim != out_chans || t.embedding_dim != out_chans {
            return bad(format!(
                "prompt embed_dim {} and transformer embedding_dim {} must equal out_chans {out_chans}",
                self.prompt_encoder.embed_dim, t.embedding_dim
            ));
        }
        if out_chans % 8 != 0 || self.prompt_encoder.embed_dim % 2 != 0 {
            return bad(format!("out_chans {out_chans} must be a multiple of 8"));
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

    fn validate_vit(e: &ImageEncoderConfig) -> Result<(), SamError> {
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
        Ok(())
    }
}

/// Shape of `name`, or a [`SamError::MissingWeight`].
fn shape(weights: &super::Weights, name: &str) -> Result<Vec<i64>, SamError> {
    weights
        .get(name)
        .map(|t| t.size())
        .ok_or_else(|| SamError::MissingWeight {
            name: name.to_owned(),
        })
}

/// Dimension `i` of `name`'s shape.
fn dim(weights: &super::Weights, name: &str, i: usize) -> Result<i64, SamError> {
    let s = shape(weights, name)?;
    s.get(i).copied().ok_or_else(|| {
        SamError::Config(format!(
            "parameter `{name}` has shape {s:?}, which has no dimension {i}"
        ))
    })
}

/// How many `prefix.{i}.` sub-modules (`i` = 0, 1, …, contiguous) the state dict has.
fn count(weights: &super::Weights, prefix: &str) -> usize {
    let mut n = 0;
    while weights.names().any(|k| k.starts_with(&format!("{prefix}.{n}."))) {
        n += 1;
    }
    n
}

impl SamConfig {
    /// The configuration a state dict's parameter shapes determine: an official one when
    /// the checkpoint matches it, else a custom one (named `custom`).
    ///
    /// Checkpoints do not record everything; these come from the released models:
    /// - the mask decoder's transformer has 8 attention heads;
    /// - LayerNorm epsilons, pixel mean and standard deviation are SAM's;
    /// - a TinyViT's input is 1024 pixels (`build_sam_vit_t`), its stages without blocks
    ///   use one head and window 1 (neither is used);
    /// - a ViT without relative positions uses windows of 14 with global attention in the
    ///   blocks of `build_sam_vit_b/l/h` for its depth.
    ///
    /// # Errors
    /// [`SamError::MissingWeight`] or [`SamError::Config`] for a state dict that is not a
    /// SAM model this port can build.
    pub fn infer(weights: &super::Weights) -> Result<SamConfig, SamError> {
        let e = "image_encoder";
        let image_encoder = if weights.get(TINY_VIT_STEM).is_some() {
            EncoderConfig::TinyVit(Self::infer_tiny_vit(weights)?)
        } else {
            let w = shape(weights, &format!("{e}.patch_embed.proj.weight"))?;
            let (embed_dim, in_chans, patch_size) = match w[..] {
                [a, b, p, q] if p == q => (a, b, p),
                _ => return Err(SamError::Config(format!("patch embedding has shape {w:?}"))),
            };
            let depth = count(weights, &format!("{e}.blocks"));
            let pos = weights.get(&format!("{e}.pos_embed")).map(|t| t.size());
            let rel: Vec<Option<i64>> = (0..depth)
                .map(|i| {
                    weights
                        .get(&format!("{e}.blocks.{i}.attn.rel_pos_h"))
                        .map(|t| (t.size()[0] + 1) / 2)
                })
                .collect();
            let use_rel_pos = rel.first().is_some_and(|r| r.is_some());
            let grid = match (&pos, use_rel_pos) {
                (Some(p), _) if p.len() == 4 => p[1],
                (_, true) => rel.iter().flatten().copied().max().unwrap_or(0),
                _ => 64,
            };
            let (window_size, global_attn_indexes, num_heads) = if use_rel_pos {
                let head_dim = dim(weights, &format!("{e}.blocks.0.attn.rel_pos_h"), 1)?;
                let global: Vec<usize> = (0..depth).filter(|&i| rel[i] == Some(grid)).collect();
                let window = rel.iter().flatten().copied().find(|&s| s != grid).unwrap_or(0);
                (window, global, embed_dim / head_dim.max(1))
            } else {
                let official = [SamModel::VitB, SamModel::VitL, SamModel::VitH]
                    .into_iter()
                    .filter_map(|m| m.config().image_encoder.vit().cloned())
                    .find(|c| c.depth == depth && c.embed_dim == embed_dim)
                    .ok_or_else(|| {
                        SamError::Config(format!(
                            "a ViT of width {embed_dim} and depth {depth} without relative positions: its windows cannot be inferred"
                        ))
                    })?;
                (
                    official.window_size,
                    official.global_attn_indexes,
                    official.num_heads,
                )
            };
            let hidden = dim(weights, &format!("{e}.blocks.0.mlp.lin1.weight"), 0)?;
            EncoderConfig::Vit(ImageEncoderConfig {
                img_size: grid * patch_size,
                patch_size,
                in_chans,
                embed_dim,
                depth,
                num_heads,
                mlp_ratio: hidden as f64 / embed_dim as f64,
                out_chans: dim(weights, &format!("{e}.neck.0.weight"), 0)?,
                qkv_bias: weights.get(&format!("{e}.blocks.0.attn.qkv.bias")).is_some(),
                use_abs_pos: pos.is_some(),
                use_rel_pos,
                window_size,
                global_attn_indexes,
                layer_norm_eps: 1e-6,
            })
        };
        let p = "prompt_encoder";
        let d = "mask_decoder";
        let t = "mask_decoder.transformer";
        let embedding_dim = dim(weights, &format!("{p}.point_embeddings.0.weight"), 1)?;
        let iou_head_depth = count(weights, &format!("{d}.iou_prediction_head.layers"));
        let config = SamConfig {
            name: custom_name(),
            image_encoder,
            prompt_encoder: PromptEncoderConfig {
                embed_dim: embedding_dim,
                mask_in_chans: dim(weights, &format!("{p}.mask_downscaling.3.weight"), 0)?,
            },
            mask_decoder: MaskDecoderConfig {
                num_multimask_outputs: dim(weights, &format!("{d}.mask_tokens.weight"), 0)? - 1,
                iou_head_depth,
                iou_head_hidden_dim: if iou_head_depth > 1 {
                    dim(weights, &format!("{d}.iou_prediction_head.layers.0.weight"), 0)?
                } else {
                    embedding_dim
                },
                transformer: TwoWayTransformerConfig {
                    depth: count(weights, &format!("{t}.layers")),
                    embedding_dim,
                    num_heads: 8,
                    mlp_dim: dim(weights, &format!("{t}.layers.0.mlp.lin1.weight"), 0)?,
                    attention_downsample_rate: embedding_dim
                        / dim(
                            weights,
                            &format!("{t}.final_attn_token_to_image.q_proj.weight"),
                            0,
                        )?
                        .max(1),
                },
            },
            pixel_mean: [123.675, 116.28, 103.53],
            pixel_std: [58.395, 57.12, 57.375],
        };
        config.validate()?;
        let official = SamModel::ALL
            .into_iter()
            .map(SamModel::config)
            .find(|o| same_model(o, &config));
        Ok(official.unwrap_or(config))
    }

    fn infer_tiny_vit(weights: &super::Weights) -> Result<TinyVitConfig, SamError> {
        let e = "image_encoder";
        let stages = count(weights, &format!("{e}.layers"));
        let mut embed_dims = vec![dim(weights, &format!("{e}.patch_embed.seq.2.c.weight"), 0)?];
        for i in 0..stages.saturating_sub(1) {
            embed_dims.push(dim(
                weights,
                &format!("{e}.layers.{i}.downsample.conv1.c.weight"),
                0,
            )?);
        }
        let depths: Vec<usize> = (0..stages)
            .map(|i| count(weights, &format!("{e}.layers.{i}.blocks")))
            .collect();
        let (mut num_heads, mut window_sizes) = (vec![1i64; stages], vec![1i64; stages]);
        let (mut mlp_ratio, mut local_conv_size) = (4.0, 3);
        for i in 1..stages {
            if depths[i] == 0 {
                continue;
            }
            let b = format!("{e}.layers.{i}.blocks.0");
            let biases = shape(weights, &format!("{b}.attn.attention_biases"))?;
            num_heads[i] = biases.first().copied().unwrap_or(1);
            let offsets = biases.get(1).copied().unwrap_or(1);
            window_sizes[i] = (offsets as f64).sqrt().round() as i64;
            mlp_ratio = dim(weights, &format!("{b}.mlp.fc1.weight"), 0)? as f64 / embed_dims[i] as f64;
            local_conv_size = dim(weights, &format!("{b}.local_conv.c.weight"), 2)?;
        }
        let mbconv_expand_ratio = if depths.first().is_some_and(|&d| d > 0) {
            dim(weights, &format!("{e}.layers.0.blocks.0.conv1.c.weight"), 0)? as f64 / embed_dims[0] as f64
        } else {
            4.0
        };
        Ok(TinyVitConfig {
            img_size: 1024,
            in_chans: dim(weights, TINY_VIT_STEM, 1)?,
            embed_dims,
            depths,
            num_heads,
            window_sizes,
            mlp_ratio,
            mbconv_expand_ratio,
            local_conv_size,
            out_chans: dim(weights, &format!("{e}.neck.0.weight"), 0)?,
            num_classes: weights
                .get(&format!("{e}.head.weight"))
                .map_or(0, |t| t.size()[0]),
        })
    }
}

/// Whether two configurations build the same model, ignoring the name and the TinyViT
/// settings no module uses (the first stage's heads and window, those of stages without
/// blocks).
fn same_model(a: &SamConfig, b: &SamConfig) -> bool {
    let normalise = |c: &SamConfig| {
        let mut c = c.clone();
        c.name = String::new();
        if let EncoderConfig::TinyVit(t) = &mut c.image_encoder {
            for i in 0..t.depths.len() {
                if i == 0 || t.depths[i] == 0 {
                    t.num_heads[i] = 1;
                    t.window_sizes[i] = 1;
                }
            }
            if t.depths.first() == Some(&0) {
                t.mbconv_expand_ratio = 4.0;
            }
        }
        c
    };
    normalise(a) == normalise(b)
}
