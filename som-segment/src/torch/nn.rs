//! Generic `torch.nn` layers shared by the LibTorch models, each applying exactly the ATen
//! operations PyTorch applies, with parameters taken from a checkpoint under their keys.

use tch::Tensor;

use super::gemm::PackedLinear;
use super::layer_norm::RowNorm;
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

    /// The layer packed for our kernel ([`PackedLinear::new`]), where it applies.
    pub(crate) fn packed(&self) -> Option<PackedLinear> {
        PackedLinear::new(&self.weight, self.bias.as_ref())
    }
}

/// Two [`Linear`] layers on the same input computed as one product, their weights stacked.
#[derive(Debug)]
pub(crate) struct StackedLinear {
    layer: Linear,
    /// The first layer's output width.
    split: i64,
}

impl StackedLinear {
    /// `first` and `second` stacked, or `None` when their input widths or biases differ.
    pub(crate) fn new(first: &Linear, second: &Linear) -> Option<Self> {
        if first.weight.size()[1..] != second.weight.size()[1..] {
            return None;
        }
        let bias = match (&first.bias, &second.bias) {
            (Some(a), Some(b)) => Some(Tensor::cat(&[a, b], 0)),
            (None, None) => None,
            _ => return None,
        };
        Some(StackedLinear {
            layer: Linear {
                weight: Tensor::cat(&[&first.weight, &second.weight], 0),
                bias,
            },
            split: first.weight.size()[0],
        })
    }

    /// Both layers' outputs on `x`: views of one product.
    pub(crate) fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.split(&self.layer.forward(x))
    }

    /// The two layers' output widths together.
    pub(crate) fn out_dim(&self) -> i64 {
        self.layer.weight.size()[0]
    }

    /// The stacked layer packed for our kernel, where it applies; its output splits as
    /// [`Self::split`]'s.
    pub(crate) fn packed(&self) -> Option<PackedLinear> {
        self.layer.packed()
    }

    /// `both` (the stacked layer's output) as the two layers' outputs: views.
    pub(crate) fn split(&self, both: &Tensor) -> (Tensor, Tensor) {
        let rest = both.size().last().copied().unwrap_or(0) - self.split;
        (both.narrow(-1, 0, self.split), both.narrow(-1, self.split, rest))
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

    /// A LayerNorm from tensors already taken (e.g. an aliased parameter).
    pub(crate) fn from_parts(weight: Tensor, bias: Tensor, dim: i64, eps: f64) -> Self {
        LayerNorm {
            weight,
            bias,
            dim,
            eps,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.dim], Some(&self.weight), Some(&self.bias), self.eps, true)
    }

    /// This LayerNorm for [`RowNorm`]'s kernel (`None` where the kernel does not apply).
    pub(crate) fn row_norm(&self) -> Option<RowNorm> {
        RowNorm::new(&self.weight, &self.bias, self.eps)
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
        conv_transpose2x2(x, &self.weight, &self.bias)
    }

    /// The `(in, out, 2, 2)` weight and the `(out)` bias.
    pub(crate) fn parts(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }
}

/// LibTorch's transposed convolution with kernel 2 and stride 2 of `(N, in, h, w)` inputs
/// by `(in, out, 2, 2)` weights and an `(out)` bias.
pub(crate) fn conv_transpose2x2(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    x.conv_transpose2d(weight, Some(bias), [2, 2], [0, 0], [0, 0], 1, [1, 1])
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

/// `nn.GroupNorm(groups, channels)` (affine, eps 1e-5).
#[derive(Debug)]
pub(crate) struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: i64,
}

impl GroupNorm {
    pub(crate) fn load(vb: &Vb, groups: i64, channels: i64) -> Result<Self, CheckpointError> {
        Ok(GroupNorm {
            weight: vb.get("weight", &[channels])?,
            bias: vb.get("bias", &[channels])?,
            groups,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.group_norm(self.groups, Some(&self.weight), Some(&self.bias), 1e-5, true)
    }
}

/// detectron2's `FrozenBatchNorm2d`: batch norm with fixed statistics, computed as
/// `F.batch_norm(..., training=False)` (its path when no gradient is needed).
#[derive(Debug)]
pub(crate) struct FrozenBatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
}

impl FrozenBatchNorm2d {
    pub(crate) fn load(vb: &Vb, channels: i64, eps: f64) -> Result<Self, CheckpointError> {
        Ok(FrozenBatchNorm2d {
            weight: vb.get("weight", &[channels])?,
            bias: vb.get("bias", &[channels])?,
            running_mean: vb.get("running_mean", &[channels])?,
            running_var: vb.get("running_var", &[channels])?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.1,
            self.eps,
            true,
        )
    }
}

/// DETR's `MLP`: linear layers `layers.{i}` with ReLU between them.
#[derive(Debug)]
pub(crate) struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    pub(crate) fn load(
        vb: &Vb,
        input_dim: i64,
        hidden_dim: i64,
        output_dim: i64,
        num_layers: usize,
    ) -> Result<Self, CheckpointError> {
        let vb = vb.pp("layers");
        let mut layers = Vec::with_capacity(num_layers);
        for i in 0..num_layers {
            let n = if i == 0 { input_dim } else { hidden_dim };
            let k = if i + 1 == num_layers {
                output_dim
            } else {
                hidden_dim
            };
            layers.push(Linear::load(&vb.pp(i), n, k, true)?);
        }
        Ok(Mlp { layers })
    }

    /// An MLP from `(weight, bias)` pairs already taken (e.g. aliased parameters).
    pub(crate) fn from_layers(layers: Vec<(Tensor, Tensor)>) -> Self {
        Mlp {
            layers: layers
                .into_iter()
                .map(|(weight, bias)| Linear {
                    weight,
                    bias: Some(bias),
                })
                .collect(),
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len().saturating_sub(1);
        let mut x = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i < last {
                x = x.relu();
            }
        }
        x
    }
}

/// `nn.MultiheadAttention` (sequence first, no dropout) as its slow path computes it when
/// key and value are different tensors: `F.multi_head_attention_forward` with
/// `need_weights=True`, the path `DeformableTransformerDecoderLayer` takes.
#[derive(Debug)]
pub(crate) struct MultiheadAttention {
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    b_q: Tensor,
    b_k: Tensor,
    b_v: Tensor,
    out_proj: Linear,
    num_heads: i64,
}

impl MultiheadAttention {
    pub(crate) fn load(vb: &Vb, embed_dim: i64, num_heads: i64) -> Result<Self, CheckpointError> {
        let w = vb.get("in_proj_weight", &[3 * embed_dim, embed_dim])?;
        let b = vb.get("in_proj_bias", &[3 * embed_dim])?;
        let ws = w.chunk(3, 0);
        let bs = b.chunk(3, 0);
        Ok(MultiheadAttention {
            w_q: ws[0].shallow_clone(),
            w_k: ws[1].shallow_clone(),
            w_v: ws[2].shallow_clone(),
            b_q: bs[0].shallow_clone(),
            b_k: bs[1].shallow_clone(),
            b_v: bs[2].shallow_clone(),
            out_proj: Linear::load(&vb.pp("out_proj"), embed_dim, embed_dim, true)?,
            num_heads,
        })
    }

    /// Attention of `query` over `key`/`value`, all `(length, batch, embed_dim)`.
    pub(crate) fn forward(&self, query: &Tensor, key: &Tensor, value: &Tensor) -> Tensor {
        let (tgt_len, bsz, embed_dim) = query.size3().unwrap_or((0, 0, 0));
        let head_dim = embed_dim / self.num_heads;
        let q = query.linear(&self.w_q, Some(&self.b_q));
        let k = key.linear(&self.w_k, Some(&self.b_k));
        let v = value.linear(&self.w_v, Some(&self.b_v));
        let q = q.view([tgt_len, bsz * self.num_heads, head_dim]).transpose(0, 1);
        let k = k.view([-1, bsz * self.num_heads, head_dim]).transpose(0, 1);
        let v = v.view([-1, bsz * self.num_heads, head_dim]).transpose(0, 1);
        let q_scaled = q * (1.0 / head_dim as f64).sqrt();
        let weights = q_scaled.bmm(&k.transpose(-2, -1)).softmax(-1, None::<tch::Kind>);
        let out = weights
            .bmm(&v)
            .transpose(0, 1)
            .reshape([tgt_len * bsz, embed_dim]);
        self.out_proj.forward(&out).view([tgt_len, bsz, embed_dim])
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{Linear, StackedLinear};

    fn linear(out_dim: i64, in_dim: i64, bias: bool) -> Linear {
        let o = (Kind::Float, Device::Cpu);
        Linear {
            weight: Tensor::randn([out_dim, in_dim], o) * 0.06,
            bias: bias.then(|| Tensor::randn([out_dim], o)),
        }
    }

    /// The SAM decoder's stacked image projections (two 256 → 128 layers on the image
    /// tokens of a group of 4 to 7 prompts) give each layer's own bits on the machines we
    /// build on, so its probe lets the decoder take them.
    #[test]
    fn stacked_layers_give_each_layers_bits() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(17);
        let (first, second) = (linear(128, 256, true), linear(128, 256, true));
        let stacked = StackedLinear::new(&first, &second).expect("same input width and biases");
        assert_eq!(stacked.out_dim(), 256);
        for b in 4..8 {
            let x = Tensor::randn([b, 4096, 256], (Kind::Float, Device::Cpu));
            let (a, c) = stacked.forward(&x);
            assert!(a.equal(&first.forward(&x)), "batch {b}: first");
            assert!(c.equal(&second.forward(&x)), "batch {b}: second");
        }
    }

    #[test]
    fn layers_that_cannot_stack() {
        let _guard = tch::no_grad_guard();
        assert!(StackedLinear::new(&linear(8, 16, true), &linear(8, 12, true)).is_none());
        assert!(StackedLinear::new(&linear(8, 16, true), &linear(8, 16, false)).is_none());
        let without = StackedLinear::new(&linear(8, 16, false), &linear(4, 16, false)).expect("no biases");
        assert_eq!(without.out_dim(), 12);
        let (a, b) = without.forward(&Tensor::ones([3, 16], (Kind::Float, Device::Cpu)));
        assert_eq!((a.size(), b.size()), (vec![3, 8], vec![3, 4]));
    }
}
