//! MaskDINO's components on their own, each loaded from weights under a key prefix: the
//! pieces the DINO family shares (Semantic-SAM builds on the same backbone, pixel decoder
//! and decoder), and what the full-width parity tests run.

use tch::Tensor;

use super::config::{BackboneConfig, DecoderConfig, PixelDecoderConfig, SwinConfig};
use super::decoder::{DecoderOutput, MaskDinoDecoder};
use super::encoder::{EncoderOutput, PixelDecoder};
use super::resnet::Bottleneck;
pub use super::resnet::BottleneckSpec;
use super::resnet::ResNet;
use super::swin::{Swin, SwinStage as Stage};
use super::MaskDinoError;
use crate::torch::Weights;

/// A whole backbone (ResNet or Swin), keys as under `backbone.` in a checkpoint.
#[derive(Debug)]
pub enum Backbone {
    /// detectron2's ResNet.
    ResNet(ResNetBackbone),
    /// `D2SwinTransformer`.
    Swin(SwinBackbone),
}

/// detectron2's ResNet backbone (see [`Backbone`]).
#[derive(Debug)]
pub struct ResNetBackbone(ResNet);

/// The Swin Transformer backbone (see [`Backbone`]).
#[derive(Debug)]
pub struct SwinBackbone(Swin);

impl Backbone {
    /// Loads the backbone stored under `prefix`.
    ///
    /// # Errors
    /// [`MaskDinoError::Checkpoint`] for missing or wrongly shaped parameters.
    pub fn load(weights: &Weights, prefix: &str, config: &BackboneConfig) -> Result<Self, MaskDinoError> {
        let vb = weights.root("backbone").pp(prefix);
        Ok(match config {
            BackboneConfig::ResNet(c) => Backbone::ResNet(ResNetBackbone(ResNet::load(&vb, c)?)),
            BackboneConfig::Swin(c) => Backbone::Swin(SwinBackbone(Swin::load(&vb, c)?)),
        })
    }

    /// `res2`…`res5` of a normalised `(N, 3, H, W)` batch.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let _guard = tch::no_grad_guard();
        match self {
            Backbone::ResNet(r) => r.0.forward(x),
            Backbone::Swin(s) => s.0.forward(x),
        }
    }
}

/// detectron2's `BottleneckBlock` with `FrozenBatchNorm2d` (keys `conv1.weight`,
/// `conv1.norm.weight`, …, `shortcut.*`).
///
/// ```no_run
/// use som_segment::maskdino::components::{BottleneckBlock, BottleneckSpec};
/// use som_segment::torch::Weights;
/// let weights = Weights::from_file("model.pth")?;
/// let spec = BottleneckSpec { in_channels: 1024, out_channels: 2048, bottleneck_channels: 512, stride: 2, ..BottleneckSpec::default() };
/// let block = BottleneckBlock::load(&weights, "backbone.res5.0", spec)?;
/// let y = block.forward(&tch::Tensor::zeros([1, 1024, 8, 8], tch::kind::FLOAT_CPU));
/// assert_eq!(y.size(), [1, 2048, 4, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BottleneckBlock(Bottleneck);

impl BottleneckBlock {
    /// Loads the block stored under `prefix` (empty for none).
    ///
    /// # Errors
    /// [`MaskDinoError::Checkpoint`] for missing or wrongly shaped parameters.
    pub fn load(weights: &Weights, prefix: &str, spec: BottleneckSpec) -> Result<Self, MaskDinoError> {
        Ok(BottleneckBlock(Bottleneck::load(
            &weights.root("bottleneck").pp(prefix),
            spec,
        )?))
    }

    /// The block on `(N, in_channels, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.0.forward(x)
    }
}

/// One Swin stage (`BasicLayer`: blocks with regular and shifted windows, then patch
/// merging), keys `blocks.{i}.*` and `downsample.*`.
#[derive(Debug)]
pub struct SwinStage(Stage);

impl SwinStage {
    /// Loads a stage of width `dim` with `depth` blocks of `num_heads` heads; window size,
    /// MLP ratio and qkv bias come from `swin`.
    ///
    /// # Errors
    /// [`MaskDinoError::Checkpoint`] for missing or wrongly shaped parameters.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        dim: i64,
        depth: usize,
        num_heads: i64,
        downsample: bool,
        swin: &SwinConfig,
    ) -> Result<Self, MaskDinoError> {
        if num_heads < 1 || dim % num_heads != 0 || swin.window_size < 2 {
            return Err(MaskDinoError::Config(format!(
                "swin stage: {num_heads} heads, width {dim}, window {}",
                swin.window_size
            )));
        }
        Ok(SwinStage(Stage::load(
            &weights.root("swin stage").pp(prefix),
            dim,
            depth,
            num_heads,
            downsample,
            swin,
        )?))
    }

    /// The stage on `(B, H·W, C)` tokens: the stage output, the next stage's input and its
    /// `(H, W)`.
    pub fn forward(&self, x: &Tensor, h: i64, w: i64) -> (Tensor, Tensor, i64, i64) {
        let _guard = tch::no_grad_guard();
        self.0.forward(x, h, w)
    }
}

/// The pixel decoder (`MaskDINOEncoder`) on its own.
#[derive(Debug)]
pub struct MaskDinoEncoder(PixelDecoder);

impl MaskDinoEncoder {
    /// Loads the pixel decoder stored under `prefix` for a backbone with `channels` in
    /// `res2`…`res5`.
    ///
    /// # Errors
    /// [`MaskDinoError::Checkpoint`] for missing or wrongly shaped parameters.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        config: &PixelDecoderConfig,
        channels: [i64; 4],
    ) -> Result<Self, MaskDinoError> {
        Ok(MaskDinoEncoder(PixelDecoder::load(
            &weights.root("pixel decoder").pp(prefix),
            config,
            channels,
        )?))
    }

    /// `forward_features` on `res2`…`res5`.
    ///
    /// # Errors
    /// [`MaskDinoError::Torch`] when the features do not fit the configuration.
    pub fn forward(&self, features: &[Tensor]) -> Result<EncoderOutput, MaskDinoError> {
        let _guard = tch::no_grad_guard();
        Ok(self.0.forward(features)?)
    }
}

/// The decoder (`MaskDINODecoder`) with its heads, on its own.
#[derive(Debug)]
pub struct MaskDinoDecoderStack(MaskDinoDecoder);

impl MaskDinoDecoderStack {
    /// Loads the decoder stored under `prefix`, reading `levels` levels of `in_channels`
    /// and mask features of `mask_dim` channels.
    ///
    /// # Errors
    /// [`MaskDinoError::Checkpoint`] for missing, wrongly shaped or disagreeing aliased
    /// parameters.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        config: &DecoderConfig,
        in_channels: i64,
        mask_dim: i64,
        levels: usize,
    ) -> Result<Self, MaskDinoError> {
        Ok(MaskDinoDecoderStack(MaskDinoDecoder::load(
            &weights.root("decoder").pp(prefix),
            config,
            in_channels,
            mask_dim,
            levels,
        )?))
    }

    /// The decoder on the encoder levels (highest resolution first) and mask features.
    ///
    /// # Errors
    /// [`MaskDinoError::Torch`] when the inputs do not fit the configuration.
    pub fn forward(&self, levels: &[Tensor], mask_features: &Tensor) -> Result<DecoderOutput, MaskDinoError> {
        let _guard = tch::no_grad_guard();
        Ok(self.0.forward(levels, mask_features)?)
    }
}
