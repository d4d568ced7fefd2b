//! Layers shared by the SAM components (`segment_anything/modeling/common.py` and the
//! `torch.nn` layers it uses), each applying exactly the ATen operations PyTorch applies.

use tch::Tensor;

use super::weights::Vb;
use super::SamError;

/// `nn.Linear`.
#[derive(Debug)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn load(vb: &Vb, in_dim: i64, out_dim: i64, bias: bool) -> Result<Self, SamError> {
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
    pub(crate) fn load(vb: &Vb, dim: i64, eps: f64) -> Result<Self, SamError> {
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

/// `LayerNorm2d`: normalises over channels of an NCHW tensor, written out as upstream does.
#[derive(Debug)]
pub(crate) struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    pub(crate) fn load(vb: &Vb, channels: i64) -> Result<Self, SamError> {
        Ok(LayerNorm2d {
            weight: vb.get("weight", &[channels])?.view([-1, 1, 1]),
            bias: vb.get("bias", &[channels])?.view([-1, 1, 1]),
            eps: 1e-6,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let u = x.mean_dim(1, true, None);
        let d = x - &u;
        let s = d.pow_tensor_scalar(2).mean_dim(1, true, None);
        let x = d / (s + self.eps).sqrt();
        &self.weight * x + &self.bias
    }
}

/// `nn.Conv2d` (square kernel, no dilation, one group).
#[derive(Debug)]
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
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
    ) -> Result<Self, SamError> {
        Ok(Conv2d {
            weight: vb.get("weight", &[out_ch, in_ch, kernel, kernel])?,
            bias: if bias {
                Some(vb.get("bias", &[out_ch])?)
            } else {
                None
            },
            stride,
            padding,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
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
    pub(crate) fn load(vb: &Vb, in_ch: i64, out_ch: i64) -> Result<Self, SamError> {
        Ok(ConvTranspose2d {
            weight: vb.get("weight", &[in_ch, out_ch, 2, 2])?,
            bias: vb.get("bias", &[out_ch])?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.conv_transpose2d(&self.weight, Some(&self.bias), [2, 2], [0, 0], [0, 0], 1, [1, 1])
    }
}

/// The activation of an [`MlpBlock`].
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

/// `MLPBlock`: `lin2(act(lin1(x)))`.
#[derive(Debug)]
pub(crate) struct MlpBlock {
    lin1: Linear,
    lin2: Linear,
    act: Activation,
}

impl MlpBlock {
    pub(crate) fn load(vb: &Vb, dim: i64, mlp_dim: i64, act: Activation) -> Result<Self, SamError> {
        Ok(MlpBlock {
            lin1: Linear::load(&vb.pp("lin1"), dim, mlp_dim, true)?,
            lin2: Linear::load(&vb.pp("lin2"), mlp_dim, dim, true)?,
            act,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        self.lin2.forward(&self.act.apply(&self.lin1.forward(x)))
    }
}
