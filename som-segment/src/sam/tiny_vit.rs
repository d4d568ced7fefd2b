//! The TinyViT image encoder of MobileSAM (`mobile_sam/modeling/tiny_vit_sam.py`): a
//! convolutional stem, a stage of MBConv blocks, stages of attention blocks with local
//! windows, attention biases and a depthwise convolution between attention and MLP, patch
//! merging between stages, and SAM's convolutional neck.
//!
//! Parameter paths equal the keys of the official `mobile_sam.pt` state dict, which also
//! holds the batch-norm statistics (`running_mean`, `running_var`, `num_batches_tracked`)
//! and the classifier of the ImageNet model TinyViT was distilled from (`norm_head`,
//! `head`); the classifier is checked and ignored, as the reference's forward pass ignores
//! it.
//!
//! Two details of the reference are kept on purpose:
//! - the patch merging into a stage of width 320, 448 or 576 (the last stages of
//!   TinyViT-5M/11M/21M) keeps the resolution (stride 1), every other one halves it;
//! - windows are padded with zeros *before* the attention's LayerNorm and are not masked,
//!   so the padding takes part in the attention of the border windows.
//!
//! In eval mode the reference reads the attention biases through a buffer `ab` filled by
//! `Attention.train(False)`; `build_sam_vit_t(checkpoint)` calls `eval()` *before* loading
//! the weights, so a model built that way and not put in eval mode again runs with the
//! initial (zero) biases. MobileSAM's README calls `eval()` after loading; this port always
//! uses the loaded biases, which is what that gives.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::common::LayerNorm2d;
use super::SamError;
use crate::torch::nn::{LayerNorm, Linear};
use crate::torch::{Vb, Weights};

/// Batch-norm epsilon (`nn.BatchNorm2d` default).
const BN_EPS: f64 = 1e-5;
/// LayerNorm epsilon of the attention and MLP (`nn.LayerNorm` default).
const LN_EPS: f64 = 1e-5;

/// The TinyViT image encoder's configuration (`TinyViT(...)` in `build_sam_vit_t`).
///
/// ```
/// use som_segment::sam::SamModel;
/// let c = SamModel::VitT.config();
/// let t = c.image_encoder.tiny_vit().unwrap();
/// assert_eq!(t.embed_dims, vec![64, 128, 160, 320]);
/// assert_eq!(t.output_grid(), Some(64));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyVitConfig {
    /// Side of the square input, in pixels (1024).
    pub img_size: i64,
    /// Input channels (3).
    pub in_chans: i64,
    /// Width of each stage (`[64, 128, 160, 320]`).
    pub embed_dims: Vec<i64>,
    /// Blocks per stage (`[2, 2, 6, 2]`); the first stage is MBConv blocks.
    pub depths: Vec<usize>,
    /// Attention heads per stage (`[2, 4, 5, 10]`; the first entry is unused).
    pub num_heads: Vec<i64>,
    /// Attention window side per stage (`[7, 7, 14, 7]`; the first entry is unused).
    pub window_sizes: Vec<i64>,
    /// MLP hidden width as a multiple of the stage width (4).
    pub mlp_ratio: f64,
    /// Hidden width of MBConv blocks as a multiple of the stage width (4).
    pub mbconv_expand_ratio: f64,
    /// Kernel of the depthwise convolution between attention and MLP (3).
    pub local_conv_size: i64,
    /// Channels of the image embedding (the neck, 256).
    pub out_chans: i64,
    /// Classes of the unused ImageNet classifier the checkpoints carry (1000; 0 for none).
    pub num_classes: i64,
}

impl TinyVitConfig {
    /// MobileSAM's encoder (`build_sam_vit_t`).
    pub fn mobile_sam() -> Self {
        TinyVitConfig {
            img_size: 1024,
            in_chans: 3,
            embed_dims: vec![64, 128, 160, 320],
            depths: vec![2, 2, 6, 2],
            num_heads: vec![2, 4, 5, 10],
            window_sizes: vec![7, 7, 14, 7],
            mlp_ratio: 4.0,
            mbconv_expand_ratio: 4.0,
            local_conv_size: 3,
            out_chans: 256,
            num_classes: 1000,
        }
    }

    /// Stride of the patch merging after stage `i` (the reference's rule: 1 into a stage
    /// of width 320, 448 or 576, else 2).
    pub fn merge_stride(&self, i: usize) -> i64 {
        match self.embed_dims.get(i + 1) {
            Some(320 | 448 | 576) => 1,
            _ => 2,
        }
    }

    /// Token grid side of every stage, following the convolutions' strides.
    fn resolutions(&self) -> Vec<i64> {
        // Two stride-2 3x3 convolutions with padding 1.
        let down = |r: i64, s: i64| (r - 1) / s + 1;
        let mut r = down(down(self.img_size, 2), 2);
        let mut out = Vec::with_capacity(self.embed_dims.len());
        for i in 0..self.embed_dims.len() {
            out.push(r);
            if i + 1 < self.embed_dims.len() {
                r = down(r, self.merge_stride(i));
            }
        }
        out
    }

    /// Side of the output embedding grid, `None` for an invalid configuration.
    pub fn output_grid(&self) -> Option<i64> {
        self.validate().ok()?;
        self.resolutions().last().copied()
    }

    /// Checks the invariants the reference relies on (among them that every stage's grid is
    /// the one `TinyViT.__init__` declares for it).
    ///
    /// # Errors
    /// [`SamError::Config`] naming the first broken invariant.
    pub fn validate(&self) -> Result<(), SamError> {
        let bad = |m: String| Err(SamError::Config(m));
        let n = self.embed_dims.len();
        if n < 2 || self.depths.len() != n || self.num_heads.len() != n || self.window_sizes.len() != n {
            return bad(format!(
                "tiny_vit needs at least two stages and one depth, head count and window per stage (embed_dims {:?}, depths {:?}, num_heads {:?}, window_sizes {:?})",
                self.embed_dims, self.depths, self.num_heads, self.window_sizes
            ));
        }
        if self.in_chans != 3 {
            return bad(format!(
                "in_chans {} (only RGB input is supported)",
                self.in_chans
            ));
        }
        if self.img_size < 16 || self.out_chans <= 0 || self.num_classes < 0 || self.local_conv_size < 1 {
            return bad("img_size, out_chans, local_conv_size must be positive".to_owned());
        }
        if self.local_conv_size % 2 == 0 {
            return bad(format!("local_conv_size {} must be odd", self.local_conv_size));
        }
        if self.embed_dims.iter().any(|&d| d < 2 || d % 2 != 0) {
            return bad(format!(
                "embed_dims {:?} must be even and positive",
                self.embed_dims
            ));
        }
        for i in 1..n {
            let (d, h, w) = (self.embed_dims[i], self.num_heads[i], self.window_sizes[i]);
            if h <= 0 || d % h != 0 || w <= 0 {
                return bad(format!(
                    "stage {i}: num_heads {h} must divide width {d} and window {w} must be positive"
                ));
            }
        }
        for (name, r) in [
            ("mlp_ratio", self.mlp_ratio),
            ("mbconv_expand_ratio", self.mbconv_expand_ratio),
        ] {
            if !(r.is_finite() && r > 0.0) {
                return bad(format!("{name} {r} must be positive"));
            }
        }
        let patches = self.img_size / 4;
        for (i, &r) in self.resolutions().iter().enumerate() {
            // TinyViT.__init__: patches // 2 ** (i - 1 if i == 3 else i).
            let shift = if i == 3 { 2 } else { i as u32 };
            let declared = patches >> shift.min(62);
            if r != declared || r < 1 {
                return bad(format!(
                    "stage {i} runs on a {r}x{r} grid but TinyViT declares {declared}x{declared} (widths {:?})",
                    self.embed_dims
                ));
            }
        }
        Ok(())
    }
}

/// `Conv2d_BN`: a convolution without bias followed by batch norm (eval mode).
#[derive(Debug)]
struct ConvBn {
    weight: Tensor,
    bn: [Tensor; 4],
    stride: i64,
    pad: i64,
    groups: i64,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(vb: &Vb, a: i64, b: i64, ks: i64, stride: i64, pad: i64, groups: i64) -> Result<Self, SamError> {
        let c = vb.pp("c");
        let bn = vb.pp("bn");
        let weight = c.get("weight", &[b, a / groups, ks, ks])?;
        let bn_params = [
            bn.get("weight", &[b])?,
            bn.get("bias", &[b])?,
            bn.get("running_mean", &[b])?,
            bn.get("running_var", &[b])?,
        ];
        // Read, so that strict loading accepts it; eval mode does not use it.
        let _ = bn.get("num_batches_tracked", &[])?;
        Ok(ConvBn {
            weight,
            bn: bn_params,
            stride,
            pad,
            groups,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x.conv2d(
            &self.weight,
            None::<&Tensor>,
            [self.stride, self.stride],
            [self.pad, self.pad],
            [1, 1],
            self.groups,
        );
        let [w, b, m, v] = &self.bn;
        x.batch_norm(Some(w), Some(b), Some(m), Some(v), false, 0.1, BN_EPS, true)
    }
}

fn gelu(x: &Tensor) -> Tensor {
    x.gelu("none")
}

/// `MBConv`: expand (1x1), depthwise (3x3), project (1x1), residual.
#[derive(Debug)]
struct MbConv {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
}

impl MbConv {
    fn load(vb: &Vb, dim: i64, expand: f64) -> Result<Self, SamError> {
        let hidden = (dim as f64 * expand) as i64;
        Ok(MbConv {
            conv1: ConvBn::load(&vb.pp("conv1"), dim, hidden, 1, 1, 0, 1)?,
            conv2: ConvBn::load(&vb.pp("conv2"), hidden, hidden, 3, 1, 1, hidden)?,
            conv3: ConvBn::load(&vb.pp("conv3"), hidden, dim, 1, 1, 0, 1)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let y = gelu(&self.conv1.forward(x));
        let y = gelu(&self.conv2.forward(&y));
        let y = self.conv3.forward(&y) + x;
        gelu(&y)
    }
}

/// `PatchMerging`: 1x1, depthwise 3x3 (stride 1 or 2), 1x1, back to tokens.
#[derive(Debug)]
struct PatchMerging {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
}

impl PatchMerging {
    fn load(vb: &Vb, dim: i64, out: i64, stride: i64) -> Result<Self, SamError> {
        Ok(PatchMerging {
            conv1: ConvBn::load(&vb.pp("conv1"), dim, out, 1, 1, 0, 1)?,
            conv2: ConvBn::load(&vb.pp("conv2"), out, out, 3, stride, 1, out)?,
            conv3: ConvBn::load(&vb.pp("conv3"), out, out, 1, 1, 0, 1)?,
        })
    }

    /// `(B, C, H, W)` feature maps or `(B, H·W, C)` tokens of an `res × res` grid in,
    /// `(B, L', C')` tokens out.
    fn forward(&self, x: &Tensor, res: i64) -> Tensor {
        let x = if x.dim() == 3 {
            let b = x.size()[0];
            x.view([b, res, res, -1]).permute([0, 3, 1, 2])
        } else {
            x.shallow_clone()
        };
        let x = gelu(&self.conv1.forward(&x));
        let x = gelu(&self.conv2.forward(&x));
        self.conv3.forward(&x).flatten(2, -1).transpose(1, 2)
    }
}

/// TinyViT's `Attention`: LayerNorm, fused qkv with per-head `[q, k, v]` chunks, learned
/// biases indexed by the (|dy|, |dx|) offset between tokens of a window.
#[derive(Debug)]
struct Attention {
    norm: LayerNorm,
    qkv: Linear,
    proj: Linear,
    num_heads: i64,
    key_dim: i64,
    scale: f64,
    /// `attention_biases[:, attention_bias_idxs]`, `(heads, N, N)`.
    ab: Tensor,
}

impl Attention {
    fn load(vb: &Vb, dim: i64, num_heads: i64, window: i64) -> Result<Self, SamError> {
        let key_dim = dim / num_heads;
        // Offsets between the window's tokens, numbered in first-seen order.
        let points: Vec<(i64, i64)> = (0..window)
            .flat_map(|y| (0..window).map(move |x| (y, x)))
            .collect();
        let mut offsets: std::collections::HashMap<(i64, i64), i64> = std::collections::HashMap::new();
        let mut idxs = Vec::with_capacity(points.len() * points.len());
        for p1 in &points {
            for p2 in &points {
                let off = ((p1.0 - p2.0).abs(), (p1.1 - p2.1).abs());
                let next = offsets.len() as i64;
                idxs.push(*offsets.entry(off).or_insert(next));
            }
        }
        let n = points.len() as i64;
        let biases = vb.get("attention_biases", &[num_heads, offsets.len() as i64])?;
        let idx = Tensor::from_slice(&idxs).view([n, n]).to_device(biases.device());
        let ab = biases.index(&[None::<Tensor>, Some(idx)]);
        Ok(Attention {
            norm: LayerNorm::load(&vb.pp("norm"), dim, LN_EPS)?,
            qkv: Linear::load(&vb.pp("qkv"), dim, 3 * dim, true)?,
            proj: Linear::load(&vb.pp("proj"), dim, dim, true)?,
            num_heads,
            key_dim,
            scale: (key_dim as f64).powf(-0.5),
            ab,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, n, _) = x.size3().expect("attention input is (B, N, C)");
        let x = self.norm.forward(x);
        let qkv = self.qkv.forward(&x).view([b, n, self.num_heads, -1]);
        let parts = qkv.split_with_sizes([self.key_dim, self.key_dim, self.key_dim], 3);
        let q = parts[0].permute([0, 2, 1, 3]);
        let k = parts[1].permute([0, 2, 1, 3]);
        let v = parts[2].permute([0, 2, 1, 3]);
        let attn = q.matmul(&k.transpose(-2, -1)) * self.scale + &self.ab;
        let attn = attn.softmax(-1, None::<Kind>);
        let x = attn
            .matmul(&v)
            .transpose(1, 2)
            .reshape([b, n, self.num_heads * self.key_dim]);
        self.proj.forward(&x)
    }
}

/// TinyViT's `Mlp`: LayerNorm, fc1, GELU, fc2.
#[derive(Debug)]
struct Mlp {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(vb: &Vb, dim: i64, hidden: i64) -> Result<Self, SamError> {
        Ok(Mlp {
            norm: LayerNorm::load(&vb.pp("norm"), dim, LN_EPS)?,
            fc1: Linear::load(&vb.pp("fc1"), dim, hidden, true)?,
            fc2: Linear::load(&vb.pp("fc2"), hidden, dim, true)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&gelu(&self.fc1.forward(&self.norm.forward(x))))
    }
}

/// `TinyViTBlock`: windowed attention, depthwise convolution, MLP.
#[derive(Debug)]
struct Block {
    attn: Attention,
    local_conv: ConvBn,
    mlp: Mlp,
    res: i64,
    window: i64,
}

impl Block {
    fn load(vb: &Vb, c: &TinyVitConfig, stage: usize, res: i64) -> Result<Self, SamError> {
        let dim = c.embed_dims[stage];
        let window = c.window_sizes[stage];
        let k = c.local_conv_size;
        Ok(Block {
            attn: Attention::load(&vb.pp("attn"), dim, c.num_heads[stage], window)?,
            local_conv: ConvBn::load(&vb.pp("local_conv"), dim, dim, k, 1, k / 2, dim)?,
            mlp: Mlp::load(&vb.pp("mlp"), dim, (dim as f64 * c.mlp_ratio) as i64)?,
            res,
            window,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (h, w, ws) = (self.res, self.res, self.window);
        let (b, l, c) = x.size3().expect("block input is (B, L, C)");
        let attended = if h == ws && w == ws {
            self.attn.forward(x)
        } else {
            let x = x.view([b, h, w, c]);
            let pad_b = (ws - h % ws) % ws;
            let pad_r = (ws - w % ws) % ws;
            let x = if pad_b > 0 || pad_r > 0 {
                x.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b])
            } else {
                x
            };
            let (ph, pw) = (h + pad_b, w + pad_r);
            let (nh, nw) = (ph / ws, pw / ws);
            let x = x
                .view([b, nh, ws, nw, ws, c])
                .transpose(2, 3)
                .reshape([b * nh * nw, ws * ws, c]);
            let x = self.attn.forward(&x);
            let x = x
                .view([b, nh, nw, ws, ws, c])
                .transpose(2, 3)
                .reshape([b, ph, pw, c]);
            let x = if pad_b > 0 || pad_r > 0 {
                x.narrow(1, 0, h).narrow(2, 0, w).contiguous()
            } else {
                x
            };
            x.view([b, l, c])
        };
        let x = x + attended;
        let x = x.transpose(1, 2).reshape([b, c, h, w]);
        let x = self.local_conv.forward(&x);
        let x = x.view([b, c, l]).transpose(1, 2);
        &x + self.mlp.forward(&x)
    }
}

/// One stage: MBConv blocks (stage 0) or attention blocks, then patch merging (all but the
/// last stage).
#[derive(Debug)]
enum Stage {
    Conv(Vec<MbConv>),
    Attention(Vec<Block>),
}

/// MobileSAM's image encoder (`TinyViT`).
#[derive(Debug)]
pub struct TinyViT {
    stem: (ConvBn, ConvBn),
    stages: Vec<(Stage, Option<PatchMerging>, i64)>,
    neck_conv1: Tensor,
    neck_ln1: LayerNorm2d,
    neck_conv2: Tensor,
    neck_ln2: LayerNorm2d,
    grid: i64,
    img_size: i64,
}

impl TinyViT {
    pub(crate) fn load(vb: &Vb, c: &TinyVitConfig) -> Result<Self, SamError> {
        c.validate()?;
        let e0 = c.embed_dims[0];
        let seq = vb.pp("patch_embed").pp("seq");
        let stem = (
            ConvBn::load(&seq.pp(0), c.in_chans, e0 / 2, 3, 2, 1, 1)?,
            ConvBn::load(&seq.pp(2), e0 / 2, e0, 3, 2, 1, 1)?,
        );
        let res = c.resolutions();
        let n = c.embed_dims.len();
        let mut stages = Vec::with_capacity(n);
        for (i, &r) in res.iter().enumerate() {
            let layer = vb.pp("layers").pp(i);
            let blocks = layer.pp("blocks");
            let stage = if i == 0 {
                Stage::Conv(
                    (0..c.depths[0])
                        .map(|j| MbConv::load(&blocks.pp(j), e0, c.mbconv_expand_ratio))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Stage::Attention(
                    (0..c.depths[i])
                        .map(|j| Block::load(&blocks.pp(j), c, i, r))
                        .collect::<Result<_, _>>()?,
                )
            };
            let merge = if i + 1 < n {
                Some(PatchMerging::load(
                    &layer.pp("downsample"),
                    c.embed_dims[i],
                    c.embed_dims[i + 1],
                    c.merge_stride(i),
                )?)
            } else {
                None
            };
            stages.push((stage, merge, r));
        }
        let last = c.embed_dims[n - 1];
        // The distillation classifier: checked and ignored (the forward pass does not use it).
        let _ = vb.pp("norm_head").get("weight", &[last])?;
        let _ = vb.pp("norm_head").get("bias", &[last])?;
        if c.num_classes > 0 {
            let _ = vb.pp("head").get("weight", &[c.num_classes, last])?;
            let _ = vb.pp("head").get("bias", &[c.num_classes])?;
        }
        let neck = vb.pp("neck");
        let o = c.out_chans;
        Ok(TinyViT {
            stem,
            stages,
            neck_conv1: neck.pp(0).get("weight", &[o, last, 1, 1])?,
            neck_ln1: LayerNorm2d::load(&neck.pp(1), o)?,
            neck_conv2: neck.pp(2).get("weight", &[o, o, 3, 3])?,
            neck_ln2: LayerNorm2d::load(&neck.pp(3), o)?,
            grid: *res.last().unwrap_or(&1),
            img_size: c.img_size,
        })
    }

    /// Side of the square input this encoder takes.
    pub fn img_size(&self) -> i64 {
        self.img_size
    }

    /// Builds a standalone encoder from a state dict with the encoder's own keys
    /// (`patch_embed.seq.0.c.weight`…, as under `image_encoder.` in `mobile_sam.pt`).
    ///
    /// # Errors
    /// An invalid configuration, or missing, misshapen or unused parameters.
    pub fn from_weights(weights: &Weights, config: &TinyVitConfig) -> Result<Self, SamError> {
        let encoder = TinyViT::load(&weights.root("tiny_vit"), config)?;
        weights.check_all_used("tiny_vit")?;
        Ok(encoder)
    }

    /// Encodes a normalised, padded `(B, 3, img_size, img_size)` batch into
    /// `(B, out_chans, img_size/16, img_size/16)` embeddings.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let x = self.forward_tokens(x);
        let (b, _, c) = x.size3().expect("tokens are (B, L, C)");
        let x = x.view([b, self.grid, self.grid, c]).permute([0, 3, 1, 2]);
        let x = x.conv2d(&self.neck_conv1, None::<&Tensor>, [1, 1], [0, 0], [1, 1], 1);
        let x = self.neck_ln1.forward(&x);
        let x = x.conv2d(&self.neck_conv2, None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1);
        self.neck_ln2.forward(&x)
    }

    /// The tokens `(B, grid², C)` of the last stage, before the neck (what the reference's
    /// `forward_features` has before `self.neck`).
    pub fn forward_tokens(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let x = self.stem.0.forward(x);
        let mut x = self.stem.1.forward(&gelu(&x));
        for (stage, merge, res) in &self.stages {
            match stage {
                Stage::Conv(blocks) => {
                    for blk in blocks {
                        x = blk.forward(&x);
                    }
                }
                Stage::Attention(blocks) => {
                    for blk in blocks {
                        x = blk.forward(&x);
                    }
                }
            }
            if let Some(m) = merge {
                x = m.forward(&x, *res);
            }
        }
        x
    }
}
