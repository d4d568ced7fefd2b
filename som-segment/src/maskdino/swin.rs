//! The Swin Transformer backbone (`backbone/swin.py`, `D2SwinTransformer`): patch embedding,
//! stages of window attention blocks (every second one on windows shifted by half a
//! window, with the cyclic-shift mask) with relative position bias, patch merging between
//! stages, and a LayerNorm on each stage output.

use tch::{Device, Kind, Tensor};

use super::config::SwinConfig;
use crate::torch::nn::{Activation, Conv2d, LayerNorm, Linear};
use crate::torch::{CheckpointError, Vb};

/// `window_partition`: `(B, H, W, C)` to `(B·nW, ws, ws, C)`.
fn window_partition(x: &Tensor, ws: i64) -> Tensor {
    let (b, h, w, c) = x.size4().unwrap_or((0, 0, 0, 0));
    x.view([b, h / ws, ws, w / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([-1, ws, ws, c])
}

/// `window_reverse`: `(B·nW, ws, ws, C)` back to `(B, H, W, C)`.
fn window_reverse(windows: &Tensor, ws: i64, h: i64, w: i64) -> Tensor {
    let b = windows.size()[0] / (h * w / ws / ws);
    windows
        .view([b, h / ws, w / ws, ws, ws, -1])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([b, h, w, -1])
}

/// The relative position index of a `ws × ws` window (`relative_position_index`).
fn relative_position_index(ws: i64) -> Vec<i64> {
    let n = (ws * ws) as usize;
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n as i64 {
        for j in 0..n as i64 {
            let dh = i / ws - j / ws + ws - 1;
            let dw = i % ws - j % ws + ws - 1;
            index.push(dh * (2 * ws - 1) + dw);
        }
    }
    index
}

/// `WindowAttention` with its relative position bias already gathered into
/// `(heads, ws², ws²)`.
#[derive(Debug)]
struct WindowAttention {
    qkv: Linear,
    proj: Linear,
    bias: Tensor,
    num_heads: i64,
    scale: f64,
}

impl WindowAttention {
    fn load(vb: &Vb, dim: i64, ws: i64, num_heads: i64, qkv_bias: bool) -> Result<Self, CheckpointError> {
        let table = vb.get(
            "relative_position_bias_table",
            &[(2 * ws - 1) * (2 * ws - 1), num_heads],
        )?;
        let n = ws * ws;
        // A persistent buffer in the checkpoint; the port computes it and checks it agrees.
        let stored = vb.get("relative_position_index", &[n, n])?;
        let index = Tensor::from_slice(&relative_position_index(ws)).to_device(table.device());
        let agrees = stored
            .to_kind(Kind::Int64)
            .view([-1])
            .eq_tensor(&index)
            .all()
            .int64_value(&[])
            == 1;
        if !agrees {
            return Err(CheckpointError::Inconsistent {
                name: vb.key("relative_position_index"),
                reason: format!("is not the relative position index of a {ws}x{ws} window"),
            });
        }
        let bias = table
            .index_select(0, &index)
            .view([n, n, -1])
            .permute([2, 0, 1])
            .contiguous();
        let head_dim = dim / num_heads;
        Ok(WindowAttention {
            qkv: Linear::load(&vb.pp("qkv"), dim, dim * 3, qkv_bias)?,
            proj: Linear::load(&vb.pp("proj"), dim, dim, true)?,
            bias,
            num_heads,
            scale: (head_dim as f64).powf(-0.5),
        })
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b_, n, c) = x.size3().unwrap_or((0, 0, 0));
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b_, n, 3, self.num_heads, c / self.num_heads])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv.get(0) * self.scale;
        let k = qkv.get(1);
        let v = qkv.get(2);
        let attn = q.matmul(&k.transpose(-2, -1)) + self.bias.unsqueeze(0);
        let attn = match mask {
            Some(mask) => {
                let nw = mask.size()[0];
                let attn = attn.view([b_ / nw, nw, self.num_heads, n, n]) + mask.unsqueeze(1).unsqueeze(0);
                attn.view([-1, self.num_heads, n, n]).softmax(-1, None::<Kind>)
            }
            None => attn.softmax(-1, None::<Kind>),
        };
        let x = attn.matmul(&v).transpose(1, 2).reshape([b_, n, c]);
        self.proj.forward(&x)
    }
}

/// `SwinTransformerBlock`.
#[derive(Debug)]
pub(crate) struct SwinBlock {
    norm1: LayerNorm,
    attn: WindowAttention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    window_size: i64,
    shift_size: i64,
}

impl SwinBlock {
    pub(crate) fn load(
        vb: &Vb,
        dim: i64,
        num_heads: i64,
        window_size: i64,
        shift_size: i64,
        c: &SwinConfig,
    ) -> Result<Self, CheckpointError> {
        let hidden = (dim as f64 * c.mlp_ratio) as i64;
        Ok(SwinBlock {
            norm1: LayerNorm::load(&vb.pp("norm1"), dim, 1e-5)?,
            attn: WindowAttention::load(&vb.pp("attn"), dim, window_size, num_heads, c.qkv_bias)?,
            norm2: LayerNorm::load(&vb.pp("norm2"), dim, 1e-5)?,
            fc1: Linear::load(&vb.pp("mlp").pp("fc1"), dim, hidden, true)?,
            fc2: Linear::load(&vb.pp("mlp").pp("fc2"), hidden, dim, true)?,
            window_size,
            shift_size,
        })
    }

    /// `x` is `(B, H·W, C)`; `mask` the cyclic-shift mask of the stage.
    pub(crate) fn forward(&self, x: &Tensor, h: i64, w: i64, mask: &Tensor) -> Tensor {
        let (b, l, c) = x.size3().unwrap_or((0, 0, 0));
        debug_assert_eq!(l, h * w);
        let ws = self.window_size;
        let shortcut = x;
        let x = self.norm1.forward(x).view([b, h, w, c]);
        let pad_r = (ws - w % ws) % ws;
        let pad_b = (ws - h % ws) % ws;
        let x = x.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b]);
        let (_, hp, wp, _) = x.size4().unwrap_or((0, 0, 0, 0));
        let (shifted, attn_mask) = if self.shift_size > 0 {
            (x.roll([-self.shift_size, -self.shift_size], [1, 2]), Some(mask))
        } else {
            (x, None)
        };
        let windows = window_partition(&shifted, ws).view([-1, ws * ws, c]);
        let attn = self.attn.forward(&windows, attn_mask).view([-1, ws, ws, c]);
        let shifted = window_reverse(&attn, ws, hp, wp);
        let x = if self.shift_size > 0 {
            shifted.roll([self.shift_size, self.shift_size], [1, 2])
        } else {
            shifted
        };
        let x = if pad_r > 0 || pad_b > 0 {
            x.narrow(1, 0, h).narrow(2, 0, w).contiguous()
        } else {
            x
        };
        let x = shortcut + x.view([b, h * w, c]);
        let y = self
            .fc2
            .forward(&Activation::Gelu.apply(&self.fc1.forward(&self.norm2.forward(&x))));
        x + y
    }
}

/// `PatchMerging`.
#[derive(Debug)]
struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
}

impl PatchMerging {
    fn load(vb: &Vb, dim: i64) -> Result<Self, CheckpointError> {
        Ok(PatchMerging {
            norm: LayerNorm::load(&vb.pp("norm"), 4 * dim, 1e-5)?,
            reduction: Linear::load(&vb.pp("reduction"), 4 * dim, 2 * dim, false)?,
        })
    }

    fn forward(&self, x: &Tensor, h: i64, w: i64) -> Tensor {
        let (b, _, c) = x.size3().unwrap_or((0, 0, 0));
        let mut x = x.view([b, h, w, c]);
        if h % 2 == 1 || w % 2 == 1 {
            x = x.constant_pad_nd([0, 0, 0, w % 2, 0, h % 2]);
        }
        let (_, hp, wp, _) = x.size4().unwrap_or((0, 0, 0, 0));
        let part = |r: i64, s: i64| x.slice(1, r, hp, 2).slice(2, s, wp, 2);
        let x = Tensor::cat(&[part(0, 0), part(1, 0), part(0, 1), part(1, 1)], -1).view([b, -1, 4 * c]);
        self.reduction.forward(&self.norm.forward(&x))
    }
}

/// One stage (`BasicLayer`).
#[derive(Debug)]
pub(crate) struct SwinStage {
    blocks: Vec<SwinBlock>,
    downsample: Option<PatchMerging>,
    window_size: i64,
}

impl SwinStage {
    /// A stage of `depth` blocks (every second one shifted), with patch merging when
    /// `downsample`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        vb: &Vb,
        dim: i64,
        depth: usize,
        num_heads: i64,
        downsample: bool,
        c: &SwinConfig,
    ) -> Result<Self, CheckpointError> {
        let mut blocks = Vec::with_capacity(depth);
        for j in 0..depth {
            let shift = if j % 2 == 0 { 0 } else { c.window_size / 2 };
            blocks.push(SwinBlock::load(
                &vb.pp("blocks").pp(j),
                dim,
                num_heads,
                c.window_size,
                shift,
                c,
            )?);
        }
        let downsample = if downsample {
            Some(PatchMerging::load(&vb.pp("downsample"), dim)?)
        } else {
            None
        };
        Ok(SwinStage {
            blocks,
            downsample,
            window_size: c.window_size,
        })
    }

    /// The attention mask of the shifted windows (`BasicLayer.forward`): `(nW, ws², ws²)`
    /// with 0 inside a window's own region and -100 across regions.
    fn shift_mask(&self, h: i64, w: i64, device: Device) -> Tensor {
        let ws = self.window_size;
        let shift = ws / 2;
        let hp = (h + ws - 1) / ws * ws;
        let wp = (w + ws - 1) / ws * ws;
        let region = |i: i64, p: i64| -> f32 {
            if i < p - ws {
                0.0
            } else if i < p - shift {
                1.0
            } else {
                2.0
            }
        };
        let mut img = Vec::with_capacity((hp * wp) as usize);
        for y in 0..hp {
            for x in 0..wp {
                img.push(region(y, hp) * 3.0 + region(x, wp));
            }
        }
        let img = Tensor::from_slice(&img).view([1, hp, wp, 1]).to_device(device);
        let windows = window_partition(&img, ws).view([-1, ws * ws]);
        let diff = windows.unsqueeze(1) - windows.unsqueeze(2);
        let zero = diff.eq(0.0);
        diff.masked_fill(&diff.ne(0.0), -100.0).masked_fill(&zero, 0.0)
    }

    /// Returns the stage output `(B, H·W, C)` and the downsampled input of the next stage
    /// with its size.
    pub(crate) fn forward(&self, x: &Tensor, h: i64, w: i64) -> (Tensor, Tensor, i64, i64) {
        let mask = self.shift_mask(h, w, x.device());
        let mut x = x.shallow_clone();
        for blk in &self.blocks {
            x = blk.forward(&x, h, w, &mask);
        }
        match &self.downsample {
            Some(d) => {
                let down = d.forward(&x, h, w);
                (x, down, (h + 1) / 2, (w + 1) / 2)
            }
            None => {
                let same = x.shallow_clone();
                (x, same, h, w)
            }
        }
    }
}

/// The backbone: `res2`…`res5` feature maps `(N, C_i, H_i, W_i)`.
#[derive(Debug)]
pub(crate) struct Swin {
    proj: Conv2d,
    patch_norm: Option<LayerNorm>,
    stages: Vec<SwinStage>,
    norms: Vec<LayerNorm>,
    patch_size: i64,
    embed_dim: i64,
}

impl Swin {
    pub(crate) fn load(vb: &Vb, c: &SwinConfig) -> Result<Self, CheckpointError> {
        let pe = vb.pp("patch_embed");
        let proj = Conv2d::load(
            &pe.pp("proj"),
            3,
            c.embed_dim,
            c.patch_size,
            c.patch_size,
            0,
            true,
        )?;
        let patch_norm = if c.patch_norm {
            Some(LayerNorm::load(&pe.pp("norm"), c.embed_dim, 1e-5)?)
        } else {
            None
        };
        let mut stages = Vec::with_capacity(c.depths.len());
        let mut norms = Vec::with_capacity(c.depths.len());
        for (i, (&depth, &heads)) in c.depths.iter().zip(&c.num_heads).enumerate() {
            let dim = c.embed_dim << i;
            let last = i + 1 == c.depths.len();
            stages.push(SwinStage::load(
                &vb.pp("layers").pp(i),
                dim,
                depth,
                heads,
                !last,
                c,
            )?);
            norms.push(LayerNorm::load(&vb.pp(format!("norm{i}")), dim, 1e-5)?);
        }
        Ok(Swin {
            proj,
            patch_norm,
            stages,
            norms,
            patch_size: c.patch_size,
            embed_dim: c.embed_dim,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let (_, _, h, w) = x.size4().unwrap_or((0, 0, 0, 0));
        let ps = self.patch_size;
        let mut x = x.shallow_clone();
        if w % ps != 0 {
            x = x.constant_pad_nd([0, ps - w % ps]);
        }
        if h % ps != 0 {
            x = x.constant_pad_nd([0, 0, 0, ps - h % ps]);
        }
        let mut x = self.proj.forward(&x);
        let (_, _, mut wh, mut ww) = x.size4().unwrap_or((0, 0, 0, 0));
        if let Some(norm) = &self.patch_norm {
            let t = norm.forward(&x.flatten(2, -1).transpose(1, 2));
            x = t.transpose(1, 2).view([-1, self.embed_dim, wh, ww]);
        }
        let mut x = x.flatten(2, -1).transpose(1, 2);
        let mut outs = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let (x_out, down, nh, nw) = stage.forward(&x, wh, ww);
            let c = self.embed_dim << i;
            let out = self.norms[i]
                .forward(&x_out)
                .view([-1, wh, ww, c])
                .permute([0, 3, 1, 2])
                .contiguous();
            outs.push(out);
            x = down;
            wh = nh;
            ww = nw;
        }
        outs
    }
}
