//! Generic `torch.nn` layers shared by the LibTorch models, each applying exactly the ATen
//! operations PyTorch applies, with parameters taken from a checkpoint under their keys.

use tch::Tensor;

use super::{CheckpointError, Vb};

/// `nn.Linear`.
#[derive(Debug)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn load(vb: &Vb, in_dim: i64, out_dim: i64, bias: bool) -> Result<Self, CheckpointError> {
        Ok(Linear {
            weight: vb.get("weight", &[out_dim, in_dim])?,
            bias: if bias {
                Some(vb.get("bias", &[out_dim])?)
            } else {
                None
            },
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// `nn.LayerNorm` over the last dimension.
#[derive(Debug)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    dim: i64,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn load(vb: &Vb, dim: i64, eps: f64) -> Result<Self, CheckpointError> {
        Ok(LayerNorm {
            weight: vb.get("weight", &[dim])?,
            bias: vb.get("bias", &[dim])?,
            dim,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.dim], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

/// `nn.Conv2d` with a square kernel (detectron2's `Conv2d` wrapper calls the same
/// `F.conv2d`; its norm and activation are separate layers here).
#[derive(Debug)]
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    dilation: i64,
    groups: i64,
}

/// Stride, padding, dilation, groups and bias of a [`Conv2d`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvOptions {
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
    pub groups: i64,
    pub bias: bool,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        vb: &Vb,
        in_ch: i64,
        out_ch: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        bias: bool,
    ) -> Result<Self, CheckpointError> {
        let options = ConvOptions {
            stride,
            padding,
            bias,
            ..ConvOptions::default()
        };
        Self::load_with(vb, in_ch, out_ch, kernel, options)
    }

    /// A convolution with any [`ConvOptions`]; `in_ch` is the input width (the weight holds
    /// `in_ch / groups` input channels per filter).
    pub(crate) fn load_with(
        vb: &Vb,
        in_ch: i64,
        out_ch: i64,
        kernel: i64,
        options: ConvOptions,
    ) -> Result<Self, CheckpointError> {
        Ok(Conv2d {
            weight: vb.get("weight", &[out_ch, in_ch / options.groups.max(1), kernel, kernel])?,
            bias: if options.bias {
                Some(vb.get("bias", &[out_ch])?)
            } else {
                None
            },
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            groups: options.groups,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [self.dilation, self.dilation],
            self.groups,
        )
    }
}

/// `nn.ConvTranspose2d` with kernel 2, stride 2 (the decoder's upscaling).
#[derive(Debug)]
pub(crate) struct ConvTranspose2d {
    weight: Tensor,
    bias: Tensor,
}

impl ConvTranspose2d {
    pub(crate) fn load(vb: &Vb, in_ch: i64, out_ch: i64) -> Result<Self, CheckpointError> {
        Ok(ConvTranspose2d {
            weight: vb.get("weight", &[in_ch, out_ch, 2, 2])?,
            bias: vb.get("bias", &[out_ch])?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.conv_transpose2d(&self.weight, Some(&self.bias), [2, 2], [0, 0], [0, 0], 1, [1, 1])
    }
}

/// An activation function between layers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    /// `nn.GELU()` (exact, erf-based).
    Gelu,
    /// `nn.ReLU()`.
    Relu,
}

impl Activation {
    pub(crate) fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Gelu => x.gelu("none"),
            Activation::Relu => x.relu(),
        }
    }
}
