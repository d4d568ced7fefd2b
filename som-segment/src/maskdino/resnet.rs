//! The ResNet backbone as detectron2 builds it for MaskDINO
//! (`detectron2/modeling/backbone/resnet.py`: `BasicStem`, `BottleneckBlock`,
//! `build_resnet_backbone`): convolutions without bias followed by `FrozenBatchNorm2d`, the
//! stride of a stage's first block in the 3×3 convolution (`STRIDE_IN_1X1: False`, the
//! torchvision placement MaskDINO's configs choose) or in the first 1×1 one.

use tch::Tensor;

use super::config::ResNetConfig;
use crate::torch::nn::{Conv2d, ConvOptions, FrozenBatchNorm2d};
use crate::torch::{CheckpointError, Vb};

/// detectron2's `Conv2d` with a `FrozenBatchNorm2d` norm (`conv.weight`, `conv.norm.*`).
#[derive(Debug)]
struct ConvNorm {
    conv: Conv2d,
    norm: FrozenBatchNorm2d,
}

impl ConvNorm {
    fn load(
        vb: &Vb,
        in_ch: i64,
        out_ch: i64,
        kernel: i64,
        options: ConvOptions,
        eps: f64,
    ) -> Result<Self, CheckpointError> {
        let options = ConvOptions {
            bias: false,
            ..options
        };
        Ok(ConvNorm {
            conv: Conv2d::load_with(vb, in_ch, out_ch, kernel, options)?,
            norm: FrozenBatchNorm2d::load(&vb.pp("norm"), out_ch, eps)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&self.conv.forward(x))
    }
}

/// `BottleneckBlock`: 1×1, 3×3, 1×1 convolutions and a projection shortcut when the width
/// changes.
#[derive(Debug)]
pub(crate) struct Bottleneck {
    conv1: ConvNorm,
    conv2: ConvNorm,
    conv3: ConvNorm,
    shortcut: Option<ConvNorm>,
}

/// The shape of a bottleneck block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BottleneckSpec {
    /// Input channels.
    pub in_channels: i64,
    /// Output channels (a projection shortcut when they differ from the input's).
    pub out_channels: i64,
    /// Width of the 3×3 convolution.
    pub bottleneck_channels: i64,
    /// Stride of the block.
    pub stride: i64,
    /// Groups of the 3×3 convolution.
    pub num_groups: i64,
    /// Stride in the first 1×1 convolution instead of the 3×3 one.
    pub stride_in_1x1: bool,
    /// Dilation of the 3×3 convolution.
    pub dilation: i64,
    /// Batch-norm epsilon.
    pub norm_eps: f64,
}

impl Default for BottleneckSpec {
    /// ResNet-50's first `res2` block, with MaskDINO's stride placement.
    fn default() -> Self {
        BottleneckSpec {
            in_channels: 64,
            out_channels: 256,
            bottleneck_channels: 64,
            stride: 1,
            num_groups: 1,
            stride_in_1x1: false,
            dilation: 1,
            norm_eps: 1e-5,
        }
    }
}

impl Bottleneck {
    pub(crate) fn load(vb: &Vb, s: BottleneckSpec) -> Result<Self, CheckpointError> {
        let eps = s.norm_eps;
        let shortcut = if s.in_channels != s.out_channels {
            let o = ConvOptions {
                stride: s.stride,
                ..ConvOptions::default()
            };
            Some(ConvNorm::load(
                &vb.pp("shortcut"),
                s.in_channels,
                s.out_channels,
                1,
                o,
                eps,
            )?)
        } else {
            None
        };
        let (stride_1x1, stride_3x3) = if s.stride_in_1x1 {
            (s.stride, 1)
        } else {
            (1, s.stride)
        };
        let o1 = ConvOptions {
            stride: stride_1x1,
            ..ConvOptions::default()
        };
        let o2 = ConvOptions {
            stride: stride_3x3,
            padding: s.dilation,
            dilation: s.dilation,
            groups: s.num_groups,
            ..ConvOptions::default()
        };
        let b = s.bottleneck_channels;
        Ok(Bottleneck {
            conv1: ConvNorm::load(&vb.pp("conv1"), s.in_channels, b, 1, o1, eps)?,
            conv2: ConvNorm::load(&vb.pp("conv2"), b, b, 3, o2, eps)?,
            conv3: ConvNorm::load(&vb.pp("conv3"), b, s.out_channels, 1, ConvOptions::default(), eps)?,
            shortcut,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let mut out = self.conv1.forward(x);
        let _ = out.relu_();
        let mut out = self.conv2.forward(&out);
        let _ = out.relu_();
        let mut out = self.conv3.forward(&out);
        match &self.shortcut {
            Some(s) => out += s.forward(x),
            None => out += x,
        }
        let _ = out.relu_();
        out
    }
}

/// The backbone: `stem` and stages `res2`…`res5`, returning all four stage outputs.
#[derive(Debug)]
pub(crate) struct ResNet {
    stem: ConvNorm,
    stages: Vec<Vec<Bottleneck>>,
}

impl ResNet {
    pub(crate) fn load(vb: &Vb, c: &ResNetConfig) -> Result<Self, CheckpointError> {
        let blocks = c.blocks_per_stage().unwrap_or([3, 4, 6, 3]);
        let stem_options = ConvOptions {
            stride: 2,
            padding: 3,
            ..ConvOptions::default()
        };
        let stem = ConvNorm::load(
            &vb.pp("stem").pp("conv1"),
            3,
            c.stem_out_channels,
            7,
            stem_options,
            c.norm_eps,
        )?;
        let mut in_channels = c.stem_out_channels;
        let mut out_channels = c.res2_out_channels;
        let mut bottleneck = c.num_groups * c.width_per_group;
        let mut stages = Vec::with_capacity(4);
        for (idx, &n) in blocks.iter().enumerate() {
            let stage_idx = idx + 2;
            let dilation = if stage_idx == 5 { c.res5_dilation } else { 1 };
            let first_stride = if idx == 0 || (stage_idx == 5 && dilation == 2) {
                1
            } else {
                2
            };
            let vb = vb.pp(format!("res{stage_idx}"));
            let mut stage = Vec::with_capacity(n);
            for i in 0..n {
                let spec = BottleneckSpec {
                    in_channels,
                    out_channels,
                    bottleneck_channels: bottleneck,
                    stride: if i == 0 { first_stride } else { 1 },
                    num_groups: c.num_groups,
                    stride_in_1x1: c.stride_in_1x1,
                    dilation,
                    norm_eps: c.norm_eps,
                };
                stage.push(Bottleneck::load(&vb.pp(i), spec)?);
                in_channels = out_channels;
            }
            stages.push(stage);
            out_channels *= 2;
            bottleneck *= 2;
        }
        let stem = stem;
        Ok(ResNet { stem, stages })
    }

    /// `res2`…`res5` of a normalised `(N, 3, H, W)` batch.
    pub(crate) fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let mut x = self.stem.forward(x);
        let _ = x.relu_();
        let mut x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut outs = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            for block in stage {
                x = block.forward(&x);
            }
            outs.push(x.shallow_clone());
        }
        outs
    }
}
