//! Model configurations: one serde [`MaskDinoConfig`] per published model.
//!
//! The values are those detectron2 builds from upstream's config files (detectron2's
//! `config/defaults.py`, MaskDINO's `maskdino/config.py`, and the YAML files of the released
//! checkpoints under `configs/coco/`), upstream:
//! <https://github.com/IDEA-Research/MaskDINO/tree/main/configs/coco>.
//!
//! | name | YAML | released checkpoint |
//! |---|---|---|
//! | `r50_instance` | `instance-segmentation/maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml` | `maskdino_r50_50ep_300q_hid2048_3sd1_instance_maskenhanced_mask46.3ap_box51.7ap.pth` |
//! | `r50_panoptic` | `panoptic-segmentation/maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml` | `maskdino_r50_50ep_300q_hid2048_3sd1_panoptic_pq53.0.pth` |
//! | `swinl_instance` | `instance-segmentation/swin/maskdino_R50_bs16_50ep_4s_dowsample1_2048.yaml` | `maskdino_swinl_50ep_300q_hid2048_3sd1_instance_maskenhanced_mask52.3ap_box59.0ap.pth` |
//! | `swinl_panoptic` | `panoptic-segmentation/swin/maskdino_R50_bs16_50ep_4s_dowsample1_2048.yaml` | `maskdino_swinl_50ep_300q_hid2048_3sd1_panoptic_58.3pq.pth` |

use serde::{Deserialize, Serialize};

use super::MaskDinoError;

/// Which published MaskDINO model a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskDinoModel {
    /// ResNet-50, COCO instance segmentation (80 classes), 300 queries.
    R50Instance,
    /// ResNet-50, COCO panoptic segmentation (133 classes), 300 queries.
    R50Panoptic,
    /// Swin-L (window 12, ImageNet-22k 384 pretraining), COCO instance segmentation.
    SwinlInstance,
    /// Swin-L (window 12, ImageNet-22k 384 pretraining), COCO panoptic segmentation.
    SwinlPanoptic,
}

impl MaskDinoModel {
    /// Every published model, in the order of the table above.
    pub const ALL: [MaskDinoModel; 4] = [
        MaskDinoModel::R50Instance,
        MaskDinoModel::R50Panoptic,
        MaskDinoModel::SwinlInstance,
        MaskDinoModel::SwinlPanoptic,
    ];

    /// The name used on the command line (`r50_instance`…).
    ///
    /// ```
    /// use som_segment::maskdino::MaskDinoModel;
    /// assert_eq!(MaskDinoModel::SwinlPanoptic.name(), "swinl_panoptic");
    /// assert_eq!("r50_instance".parse::<MaskDinoModel>()?, MaskDinoModel::R50Instance);
    /// # Ok::<(), som_segment::maskdino::MaskDinoError>(())
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            MaskDinoModel::R50Instance => "r50_instance",
            MaskDinoModel::R50Panoptic => "r50_panoptic",
            MaskDinoModel::SwinlInstance => "swinl_instance",
            MaskDinoModel::SwinlPanoptic => "swinl_panoptic",
        }
    }

    /// The configuration detectron2 builds for this model's YAML file.
    pub fn config(self) -> MaskDinoConfig {
        let panoptic = matches!(self, MaskDinoModel::R50Panoptic | MaskDinoModel::SwinlPanoptic);
        let swin = matches!(self, MaskDinoModel::SwinlInstance | MaskDinoModel::SwinlPanoptic);
        let backbone = if swin {
            BackboneConfig::Swin(SwinConfig::large_384())
        } else {
            BackboneConfig::ResNet(ResNetConfig::r50())
        };
        let (in_features, levels) = if swin {
            (vec!["res2", "res3", "res4", "res5"], 5)
        } else {
            (vec!["res3", "res4", "res5"], 4)
        };
        let initialize_box_type = match (panoptic, swin) {
            (true, _) => BoxInit::No,
            (false, false) => BoxInit::Mask2Box,
            (false, true) => BoxInit::Bitmask,
        };
        let dataset = if panoptic {
            Dataset::CocoPanoptic
        } else {
            Dataset::CocoInstance
        };
        MaskDinoConfig {
            name: self.name().to_owned(),
            backbone,
            pixel_decoder: PixelDecoderConfig {
                in_features: strings(&["res2", "res3", "res4", "res5"]),
                transformer_in_features: strings(&in_features),
                conv_dim: 256,
                mask_dim: 256,
                dim_feedforward: 2048,
                enc_layers: 6,
                nheads: 8,
                n_points: 4,
                total_num_feature_levels: levels,
                common_stride: 4,
            },
            decoder: DecoderConfig {
                num_classes: dataset.num_classes(),
                hidden_dim: 256,
                num_queries: 300,
                nheads: 8,
                dim_feedforward: 2048,
                dec_layers: 9,
                n_points: 4,
                enforce_input_project: false,
                initialize_box_type,
            },
            input: InputConfig::default(),
            test: TestConfig {
                instance_on: true,
                panoptic_on: panoptic,
                semantic_on: panoptic,
                ..TestConfig::default()
            },
            dataset,
        }
    }
}

impl std::fmt::Display for MaskDinoModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MaskDinoModel {
    type Err = MaskDinoError;

    /// Parses `r50_instance`, `r50_panoptic`, `swinl_instance`, `swinl_panoptic`.
    fn from_str(s: &str) -> Result<Self, MaskDinoError> {
        MaskDinoModel::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                MaskDinoError::Config(format!(
                    "unknown model '{s}' (expected r50_instance, r50_panoptic, swinl_instance or swinl_panoptic)"
                ))
            })
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A complete MaskDINO configuration: what detectron2's `CfgNode` says about inference.
///
/// Build one from a [`MaskDinoModel`] and change fields for checkpoints of other widths
/// (the parity fixtures use a reduced one); [`MaskDinoConfig::validate`] checks it before a
/// model is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskDinoConfig {
    /// A name for messages (`r50_instance`…).
    pub name: String,
    /// `MODEL.BACKBONE`, `MODEL.RESNETS` / `MODEL.SWIN`.
    pub backbone: BackboneConfig,
    /// `MODEL.SEM_SEG_HEAD`: the pixel decoder (`MaskDINOEncoder`).
    pub pixel_decoder: PixelDecoderConfig,
    /// `MODEL.MaskDINO`: the transformer decoder (`MaskDINODecoder`).
    pub decoder: DecoderConfig,
    /// `INPUT` and `MODEL.PIXEL_*`: test-time resize and normalisation.
    pub input: InputConfig,
    /// `MODEL.MaskDINO.TEST` and `TEST`: post-processing.
    pub test: TestConfig,
    /// The training set, which names the classes.
    pub dataset: Dataset,
}

/// The backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneConfig {
    /// detectron2's `build_resnet_backbone` (bottleneck blocks, frozen batch norm).
    ResNet(ResNetConfig),
    /// `D2SwinTransformer`.
    Swin(SwinConfig),
}

/// `MODEL.RESNETS` (detectron2 defaults plus MaskDINO's base config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// 50, 101 or 152 (bottleneck blocks per stage: 3-4-6-3, 3-4-23-3, 3-8-36-3).
    pub depth: usize,
    /// Stem convolution output channels (64).
    pub stem_out_channels: i64,
    /// `res2` output channels (256); doubled per stage.
    pub res2_out_channels: i64,
    /// Bottleneck width of `res2` per group (64); doubled per stage.
    pub width_per_group: i64,
    /// Groups of the 3×3 convolutions (1).
    pub num_groups: i64,
    /// Stride in the first 1×1 convolution of a block instead of the 3×3 one. MaskDINO's
    /// base config sets `False` (torchvision placement), detectron2's default is `True`.
    pub stride_in_1x1: bool,
    /// Dilation of `res5` (1 or 2).
    pub res5_dilation: i64,
    /// `FrozenBatchNorm2d` epsilon (1e-5).
    pub norm_eps: f64,
}

impl ResNetConfig {
    /// ResNet-50 as MaskDINO's COCO configs build it.
    pub fn r50() -> Self {
        ResNetConfig {
            depth: 50,
            stem_out_channels: 64,
            res2_out_channels: 256,
            width_per_group: 64,
            num_groups: 1,
            stride_in_1x1: false,
            res5_dilation: 1,
            norm_eps: 1e-5,
        }
    }

    /// Bottleneck blocks per stage `res2`…`res5`.
    pub fn blocks_per_stage(&self) -> Option<[usize; 4]> {
        match self.depth {
            50 => Some([3, 4, 6, 3]),
            101 => Some([3, 4, 23, 3]),
            152 => Some([3, 8, 36, 3]),
            _ => None,
        }
    }

    /// Output channels of `res2`…`res5`.
    pub fn out_channels(&self) -> [i64; 4] {
        let c = self.res2_out_channels;
        [c, c * 2, c * 4, c * 8]
    }
}

/// `MODEL.SWIN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwinConfig {
    /// Patch side (4).
    pub patch_size: i64,
    /// Width of the first stage (192 for Swin-L); doubled per stage.
    pub embed_dim: i64,
    /// Blocks per stage (2, 2, 18, 2 for Swin-L).
    pub depths: Vec<usize>,
    /// Attention heads per stage (6, 12, 24, 48 for Swin-L).
    pub num_heads: Vec<i64>,
    /// Attention window side (12 for the 384-pretrained Swin-L).
    pub window_size: i64,
    /// MLP hidden width as a multiple of the stage width (4).
    pub mlp_ratio: f64,
    /// Bias on the qkv projection (true).
    pub qkv_bias: bool,
    /// LayerNorm after the patch embedding (true).
    pub patch_norm: bool,
}

impl SwinConfig {
    /// Swin-L, window 12, as pretrained on ImageNet-22k at 384×384
    /// (`swin_large_patch4_window12_384_22k`).
    pub fn large_384() -> Self {
        SwinConfig {
            patch_size: 4,
            embed_dim: 192,
            depths: vec![2, 2, 18, 2],
            num_heads: vec![6, 12, 24, 48],
            window_size: 12,
            mlp_ratio: 4.0,
            qkv_bias: true,
            patch_norm: true,
        }
    }

    /// Output channels of `res2`…`res5`.
    pub fn out_channels(&self) -> Vec<i64> {
        (0..self.depths.len()).map(|i| self.embed_dim << i).collect()
    }
}

/// `MODEL.SEM_SEG_HEAD`: the multi-scale deformable encoder and the mask-feature FPN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelDecoderConfig {
    /// Backbone features the head sees (`res2`…`res5`).
    pub in_features: Vec<String>,
    /// Backbone features the deformable encoder attends over.
    pub transformer_in_features: Vec<String>,
    /// Width of the encoder and the FPN (`CONVS_DIM`, 256).
    pub conv_dim: i64,
    /// Channels of the mask features (`MASK_DIM`, 256).
    pub mask_dim: i64,
    /// Encoder feed-forward width (`DIM_FEEDFORWARD`, 2048).
    pub dim_feedforward: i64,
    /// Encoder layers (`TRANSFORMER_ENC_LAYERS`, 6).
    pub enc_layers: usize,
    /// Encoder attention heads (`MODEL.MaskDINO.NHEADS`, 8).
    pub nheads: i64,
    /// Sampling points per head and level (4, upstream's fixed default).
    pub n_points: i64,
    /// Levels including the extra downsampled ones (`TOTAL_NUM_FEATURE_LEVELS`).
    pub total_num_feature_levels: usize,
    /// Stride of the mask features (`COMMON_STRIDE`, 4).
    pub common_stride: i64,
}

/// How the decoder initialises its query boxes (`INITIALIZE_BOX_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxInit {
    /// The boxes the encoder's proposals predict.
    No,
    /// Tight boxes of the initial masks, inclusive of the last pixel (`box_ops.masks_to_boxes`).
    #[serde(rename = "mask2box")]
    Mask2Box,
    /// Tight boxes of the initial masks, exclusive (`BitMasks.get_bounding_boxes`).
    Bitmask,
}

/// `MODEL.MaskDINO`: the DINO-style decoder and its heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// Classes (`SEM_SEG_HEAD.NUM_CLASSES`: 80 instance, 133 panoptic).
    pub num_classes: i64,
    /// Query width (`HIDDEN_DIM`, 256).
    pub hidden_dim: i64,
    /// Queries selected from the encoder output (`NUM_OBJECT_QUERIES`, 300).
    pub num_queries: i64,
    /// Attention heads of the decoder layers (8: upstream builds them with its default, not
    /// with `NHEADS`).
    pub nheads: i64,
    /// Feed-forward width (`DIM_FEEDFORWARD`, 2048).
    pub dim_feedforward: i64,
    /// Decoder layers (`DEC_LAYERS`, 9).
    pub dec_layers: usize,
    /// Sampling points per head and level of the cross-attention (4).
    pub n_points: i64,
    /// A 1×1 projection of the encoder levels even when widths agree (`ENFORCE_INPUT_PROJ`).
    pub enforce_input_project: bool,
    /// Box initialisation from the first masks (`INITIALIZE_BOX_TYPE`).
    pub initialize_box_type: BoxInit,
}

/// `INPUT` and `MODEL.PIXEL_*`: detectron2's test-time `ResizeShortestEdge` and normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputConfig {
    /// Shortest edge after resizing (`MIN_SIZE_TEST`, 800); 0 keeps the image size.
    pub min_size_test: u32,
    /// Longest edge limit (`MAX_SIZE_TEST`, 1333).
    pub max_size_test: u32,
    /// RGB mean subtracted from the pixels.
    pub pixel_mean: [f64; 3],
    /// RGB standard deviation the pixels are divided by.
    pub pixel_std: [f64; 3],
    /// Padding of the batch to a multiple of this (`SIZE_DIVISIBILITY`, 32).
    pub size_divisibility: i64,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            min_size_test: 800,
            max_size_test: 1333,
            pixel_mean: [123.675, 116.280, 103.530],
            pixel_std: [58.395, 57.120, 57.375],
            size_divisibility: 32,
        }
    }
}

/// `MODEL.MaskDINO.TEST` and `TEST.DETECTIONS_PER_IMAGE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    /// Instance output (`INSTANCE_ON`).
    pub instance_on: bool,
    /// Panoptic output (`PANOPTIC_ON`); when on, instances keep only "thing" classes.
    pub panoptic_on: bool,
    /// Semantic output (`SEMANTIC_ON`).
    pub semantic_on: bool,
    /// Queries whose class score is at most this are no panoptic segment
    /// (`OBJECT_MASK_THRESHOLD`, 0.25).
    pub object_mask_threshold: f64,
    /// A panoptic segment keeps at least this share of its mask (`OVERLAP_THRESHOLD`, 0.8).
    pub overlap_threshold: f64,
    /// Softmax temperature of the panoptic and semantic class scores (`PANO_TEMPERATURE`, 0.06).
    pub pano_temp: f64,
    /// Sharpen panoptic and semantic scores with that softmax (`PANO_TRANSFORM_EVAL`, true).
    pub transform_eval: bool,
    /// Instances per image, the top-k over queries × classes (`DETECTIONS_PER_IMAGE`, 100).
    pub topk_per_image: i64,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            instance_on: true,
            panoptic_on: false,
            semantic_on: false,
            object_mask_threshold: 0.25,
            overlap_threshold: 0.8,
            pano_temp: 0.06,
            transform_eval: true,
            topk_per_image: 100,
        }
    }
}

/// The dataset a model was trained on: its class names and which are "things".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// `coco_2017_train`: the 80 instance categories.
    CocoInstance,
    /// `coco_2017_train_panoptic`: 80 things then 53 stuff categories.
    CocoPanoptic,
}

impl Dataset {
    /// Number of classes.
    pub fn num_classes(self) -> i64 {
        match self {
            Dataset::CocoInstance => 80,
            Dataset::CocoPanoptic => 133,
        }
    }

    /// The name of contiguous class `id`, if there is one.
    ///
    /// ```
    /// use som_segment::maskdino::Dataset;
    /// assert_eq!(Dataset::CocoInstance.class_name(0), Some("person"));
    /// assert_eq!(Dataset::CocoPanoptic.class_name(132), Some("rug-merged"));
    /// assert_eq!(Dataset::CocoInstance.class_name(80), None);
    /// ```
    pub fn class_name(self, id: i64) -> Option<&'static str> {
        self.class(id).map(|(name, _)| name)
    }

    /// The COCO category id (as in COCO annotation files) of contiguous class `id`.
    ///
    /// ```
    /// use som_segment::maskdino::Dataset;
    /// assert_eq!(Dataset::CocoInstance.coco_id(79), Some(90)); // toothbrush
    /// assert_eq!(Dataset::CocoPanoptic.coco_id(80), Some(92)); // banner
    /// ```
    pub fn coco_id(self, id: i64) -> Option<u32> {
        self.class(id).map(|(_, coco)| coco)
    }

    fn class(self, id: i64) -> Option<(&'static str, u32)> {
        let n = self.num_classes();
        usize::try_from(id)
            .ok()
            .filter(|_| id < n)
            .map(|i| super::classes::COCO_PANOPTIC[i])
    }

    /// Whether contiguous class `id` is a "thing" (countable object) rather than "stuff".
    pub fn is_thing(self, id: i64) -> bool {
        (0..super::classes::COCO_THINGS).contains(&id) && id < self.num_classes()
    }
}

impl MaskDinoConfig {
    /// Checks the configuration is one the model can be built from.
    ///
    /// # Errors
    /// [`MaskDinoError::Config`] naming the inconsistent field.
    pub fn validate(&self) -> Result<(), MaskDinoError> {
        let bad = |m: String| Err(MaskDinoError::Config(format!("{}: {m}", self.name)));
        let p = &self.pixel_decoder;
        let d = &self.decoder;
        match &self.backbone {
            BackboneConfig::ResNet(r) => {
                if r.blocks_per_stage().is_none() {
                    return bad(format!("resnet depth {} is not 50, 101 or 152", r.depth));
                }
                if !matches!(r.res5_dilation, 1 | 2) {
                    return bad(format!("res5_dilation {} is not 1 or 2", r.res5_dilation));
                }
                if r.stem_out_channels < 1
                    || r.res2_out_channels < 1
                    || r.width_per_group < 1
                    || r.num_groups < 1
                {
                    return bad("resnet widths must be positive".into());
                }
            }
            BackboneConfig::Swin(s) => {
                if s.depths.len() != 4 || s.num_heads.len() != 4 {
                    return bad("swin needs four stages (depths and num_heads)".into());
                }
                if s.patch_size < 1 || s.window_size < 2 || s.mlp_ratio <= 0.0 || s.embed_dim < 1 {
                    return bad("swin patch size, window size, width and mlp ratio must be positive".into());
                }
                for (i, &h) in s.num_heads.iter().enumerate() {
                    if h < 1 || (s.embed_dim << i) % h != 0 {
                        return bad(format!(
                            "swin stage {i}: {h} heads do not divide width {}",
                            s.embed_dim << i
                        ));
                    }
                }
            }
        }
        let known = ["res2", "res3", "res4", "res5"];
        for f in p.in_features.iter().chain(&p.transformer_in_features) {
            if !known.contains(&f.as_str()) {
                return bad(format!("unknown backbone feature '{f}' (expected res2..res5)"));
            }
        }
        if p.transformer_in_features.is_empty()
            || p.transformer_in_features
                .iter()
                .any(|f| !p.in_features.contains(f))
        {
            return bad("transformer_in_features must be a non-empty subset of in_features".into());
        }
        if p.total_num_feature_levels < p.transformer_in_features.len() {
            return bad(format!(
                "total_num_feature_levels {} is below the {} encoder input levels",
                p.total_num_feature_levels,
                p.transformer_in_features.len()
            ));
        }
        if p.conv_dim < 32 || p.conv_dim % 32 != 0 {
            return bad(format!(
                "conv_dim {} is not a multiple of 32 (GroupNorm(32, c))",
                p.conv_dim
            ));
        }
        if p.nheads < 1 || p.conv_dim % p.nheads != 0 {
            return bad(format!(
                "{} encoder heads do not divide conv_dim {}",
                p.nheads, p.conv_dim
            ));
        }
        if p.n_points < 1 || p.dim_feedforward < 1 || p.mask_dim < 1 {
            return bad("pixel decoder points, feed-forward width and mask_dim must be positive".into());
        }
        if p.common_stride < 1 || (p.common_stride as u64).count_ones() != 1 {
            return bad(format!("common_stride {} is not a power of two", p.common_stride));
        }
        if d.nheads < 1 || d.hidden_dim % d.nheads != 0 || d.hidden_dim % 2 != 0 {
            return bad(format!(
                "{} decoder heads do not divide hidden_dim {}",
                d.nheads, d.hidden_dim
            ));
        }
        if d.num_classes != self.dataset.num_classes() {
            return bad(format!(
                "num_classes {} but the {:?} dataset has {}",
                d.num_classes,
                self.dataset,
                self.dataset.num_classes()
            ));
        }
        if d.num_queries < 1 || d.dec_layers < 1 || d.n_points < 1 || d.dim_feedforward < 1 {
            return bad("decoder queries, layers, points and feed-forward width must be positive".into());
        }
        if d.hidden_dim != p.mask_dim {
            return bad(format!(
                "decoder hidden_dim {} differs from mask_dim {} (the mask embedding MLP needs both equal here)",
                d.hidden_dim, p.mask_dim
            ));
        }
        let t = &self.test;
        if !(t.instance_on || t.panoptic_on || t.semantic_on) {
            return bad("no output enabled (instance_on, panoptic_on, semantic_on)".into());
        }
        if t.topk_per_image < 1 || t.topk_per_image > d.num_queries * d.num_classes {
            return bad(format!(
                "topk_per_image {} outside 1..={}",
                t.topk_per_image,
                d.num_queries * d.num_classes
            ));
        }
        for (name, v) in [
            ("object_mask_threshold", t.object_mask_threshold),
            ("overlap_threshold", t.overlap_threshold),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} {v} is not finite"));
            }
        }
        if !(t.pano_temp.is_finite() && t.pano_temp > 0.0) {
            return bad(format!("pano_temp {} is not positive", t.pano_temp));
        }
        let i = &self.input;
        if i.size_divisibility < 0 || i.pixel_std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
            return bad("size_divisibility must be >= 0 and pixel_std positive".into());
        }
        if i.min_size_test > 0 && i.max_size_test == 0 {
            return bad("max_size_test must be positive".into());
        }
        Ok(())
    }

    /// The backbone's output channels per feature name (`res2`…`res5`).
    pub(crate) fn backbone_channels(&self) -> [i64; 4] {
        match &self.backbone {
            BackboneConfig::ResNet(r) => r.out_channels(),
            BackboneConfig::Swin(s) => {
                let c = s.out_channels();
                [c[0], c[1], c[2], c[3]]
            }
        }
    }
}

/// Index of a backbone feature name: `res2` is 0, `res5` is 3.
pub(crate) fn feature_index(name: &str) -> usize {
    match name {
        "res2" => 0,
        "res3" => 1,
        "res4" => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_configs_validate_and_roundtrip() {
        for m in MaskDinoModel::ALL {
            let c = m.config();
            c.validate().unwrap();
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<MaskDinoConfig>(&json).unwrap(), c);
            assert_eq!(m.name().parse::<MaskDinoModel>().unwrap(), m);
        }
        assert!("r50".parse::<MaskDinoModel>().is_err());
    }

    #[test]
    fn inconsistent_configs_are_rejected() {
        let mut c = MaskDinoModel::R50Instance.config();
        c.pixel_decoder.conv_dim = 48;
        assert!(c.validate().unwrap_err().to_string().contains("conv_dim 48"));
        let mut c = MaskDinoModel::R50Panoptic.config();
        c.decoder.num_classes = 80;
        assert!(c.validate().unwrap_err().to_string().contains("num_classes 80"));
        let mut c = MaskDinoModel::SwinlInstance.config();
        if let BackboneConfig::Swin(s) = &mut c.backbone {
            s.num_heads[1] = 7;
        }
        assert!(c.validate().is_err());
        let mut c = MaskDinoModel::R50Instance.config();
        c.test.topk_per_image = 0;
        assert!(c.validate().is_err());
    }
}
