//! Layers of `segment_anything/modeling/common.py`; the generic `torch.nn` layers they use
//! are shared with the other models in `crate::torch::nn`.

use tch::Tensor;

use super::SamError;
use crate::torch::nn::{Activation, Linear};
use crate::torch::Vb;

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

    /// A LayerNorm2d of `(C)` parameters (e.g. a kernel's probe).
    pub(crate) fn from_parts(weight: &Tensor, bias: &Tensor, eps: f64) -> Self {
        LayerNorm2d {
            weight: weight.view([-1, 1, 1]),
            bias: bias.view([-1, 1, 1]),
            eps,
        }
    }

    /// `(weight, bias, eps)`, the parameters as `(C, 1, 1)` tensors.
    pub(crate) fn parts(&self) -> (&Tensor, &Tensor, f64) {
        (&self.weight, &self.bias, self.eps)
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let u = x.mean_dim(1, true, None);
        let d = x - &u;
        let s = d.pow_tensor_scalar(2).mean_dim(1, true, None);
        let x = d / (s + self.eps).sqrt();
        &self.weight * x + &self.bias
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
