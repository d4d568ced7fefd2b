//! The ViT image encoder (`segment_anything/modeling/image_encoder.py`): patch embedding,
//! absolute position embedding, transformer blocks with windowed or global attention and
//! decomposed relative position embeddings (MViTv2), and the convolutional neck.

use tch::{Kind, Tensor};

use super::common::{LayerNorm2d, MlpBlock};
use super::config::ImageEncoderConfig;
use super::SamError;
use crate::torch::nn::{Activation, Conv2d, LayerNorm, Linear};
use crate::torch::{Vb, Weights};

/// Multi-head attention with decomposed relative position embeddings (`Attention`).
#[derive(Debug)]
pub(crate) struct Attention {
    qkv: Linear,
    proj: Linear,
    num_heads: i64,
    scale: f64,
    rel_pos: Option<(Tensor, Tensor)>,
}

impl Attention {
    pub(crate) fn load(
        vb: &Vb,
        dim: i64,
        num_heads: i64,
        qkv_bias: bool,
        use_rel_pos: bool,
        input_size: (i64, i64),
    ) -> Result<Self, SamError> {
        let head_dim = dim / num_heads;
        let rel_pos = if use_rel_pos {
            Some((
                vb.get("rel_pos_h", &[2 * input_size.0 - 1, head_dim])?,
                vb.get("rel_pos_w", &[2 * input_size.1 - 1, head_dim])?,
            ))
        } else {
            None
        };
        Ok(Attention {
            qkv: Linear::load(&vb.pp("qkv"), dim, 3 * dim, qkv_bias)?,
            proj: Linear::load(&vb.pp("proj"), dim, dim, true)?,
            num_heads,
            scale: (head_dim as f64).powf(-0.5),
            rel_pos,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let (b, h, w, _) = x.size4().expect("attention input is BHWC");
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, h * w, 3, self.num_heads, -1])
            .permute([2, 0, 3, 1, 4]);
        let qkv = qkv.reshape([3, b * self.num_heads, h * w, -1]).unbind(0);
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let mut attn = (q * self.scale).matmul(&k.transpose(-2, -1));
        if let Some((rh, rw)) = &self.rel_pos {
            attn = add_decomposed_rel_pos(attn, q, rh, rw, (h, w), (h, w));
        }
        let attn = attn.softmax(-1, None::<Kind>);
        let x = attn
            .matmul(v)
            .view([b, self.num_heads, h, w, -1])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, -1]);
        self.proj.forward(&x)
    }
}

/// `get_rel_pos`: relative position embeddings for every (query, key) pair along one axis,
/// linearly interpolated first when the table was trained for another size.
pub(crate) fn get_rel_pos(q_size: i64, k_size: i64, rel_pos: &Tensor) -> Tensor {
    let max_rel_dist = 2 * q_size.max(k_size) - 1;
    let table = rel_pos.size()[0];
    let resized = if table != max_rel_dist {
        rel_pos
            .reshape([1, table, -1])
            .permute([0, 2, 1])
            .upsample_linear1d([max_rel_dist], false, None)
            .reshape([-1, max_rel_dist])
            .permute([1, 0])
    } else {
        rel_pos.shallow_clone()
    };
    let qk = (k_size as f64 / q_size as f64).max(1.0);
    let kq = (q_size as f64 / k_size as f64).max(1.0);
    let device = rel_pos.device();
    let q_coords = Tensor::arange(q_size, (Kind::Int64, device)).unsqueeze(1) * qk;
    let k_coords = Tensor::arange(k_size, (Kind::Int64, device)).unsqueeze(0) * kq;
    let relative = (q_coords - k_coords) + (k_size - 1) as f64 * kq;
    resized.index(&[Some(relative.to_kind(Kind::Int64))])
}

/// `add_decomposed_rel_pos`.
pub(crate) fn add_decomposed_rel_pos(
    attn: Tensor,
    q: &Tensor,
    rel_pos_h: &Tensor,
    rel_pos_w: &Tensor,
    q_size: (i64, i64),
    k_size: (i64, i64),
) -> Tensor {
    let (q_h, q_w) = q_size;
    let (k_h, k_w) = k_size;
    let rh = get_rel_pos(q_h, k_h, rel_pos_h);
    let rw = get_rel_pos(q_w, k_w, rel_pos_w);
    let (b, _, dim) = q.size3().expect("q is (B, N, C)");
    let r_q = q.reshape([b, q_h, q_w, dim]);
    let rel_h = Tensor::einsum("bhwc,hkc->bhwk", &[&r_q, &rh], None::<&[i64]>);
    let rel_w = Tensor::einsum("bhwc,wkc->bhwk", &[&r_q, &rw], None::<&[i64]>);
    // Upstream adds out of place (`attn + rel_h + rel_w`). Added in place into `attn` (a
    // fresh product nothing else holds) each element gets the same two roundings, without
    // two more hw × hw matrices: 800 MB each in ViT-B's global blocks, every page of which
    // the kernel would fault in and zero.
    let mut attn = attn.view([b, q_h, q_w, k_h, k_w]);
    let _ = attn.g_add_(&rel_h.unsqueeze(4));
    let _ = attn.g_add_(&rel_w.unsqueeze(3));
    attn.view([b, q_h * q_w, k_h * k_w])
}

/// `window_partition`: pads BHWC tokens to a multiple of `ws` and cuts them into windows.
pub(crate) fn window_partition(x: &Tensor, ws: i64) -> (Tensor, (i64, i64)) {
    let (b, h, w, c) = x.size4().expect("window input is BHWC");
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let x = if pad_h > 0 || pad_w > 0 {
        x.constant_pad_nd([0, 0, 0, pad_w, 0, pad_h])
    } else {
        x.shallow_clone()
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let windows = x
        .view([b, hp / ws, ws, wp / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([-1, ws, ws, c]);
    (windows, (hp, wp))
}

/// `window_unpartition`: the inverse of [`window_partition`], dropping the padding.
pub(crate) fn window_unpartition(windows: &Tensor, ws: i64, pad_hw: (i64, i64), hw: (i64, i64)) -> Tensor {
    let (hp, wp) = pad_hw;
    let (h, w) = hw;
    let b = windows.size()[0] / (hp * wp / ws / ws);
    let x = windows
        .view([b, hp / ws, wp / ws, ws, ws, -1])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([b, hp, wp, -1]);
    if hp > h || wp > w {
        x.narrow(1, 0, h).narrow(2, 0, w).contiguous()
    } else {
        x
    }
}

/// A ViT block (`Block`): pre-norm attention (windowed when `window_size > 0`) and MLP.
#[derive(Debug)]
pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    window_size: i64,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        vb: &Vb,
        dim: i64,
        num_heads: i64,
        mlp_ratio: f64,
        qkv_bias: bool,
        use_rel_pos: bool,
        eps: f64,
        window_size: i64,
        input_size: (i64, i64),
    ) -> Result<Self, SamError> {
        let attn_size = if window_size == 0 {
            input_size
        } else {
            (window_size, window_size)
        };
        Ok(Block {
            norm1: LayerNorm::load(&vb.pp("norm1"), dim, eps)?,
            attn: Attention::load(&vb.pp("attn"), dim, num_heads, qkv_bias, use_rel_pos, attn_size)?,
            norm2: LayerNorm::load(&vb.pp("norm2"), dim, eps)?,
            mlp: MlpBlock::load(
                &vb.pp("mlp"),
                dim,
                (dim as f64 * mlp_ratio) as i64,
                Activation::Gelu,
            )?,
            window_size,
        })
    }

    /// Builds a standalone block from a state dict with the block's own keys
    /// (`norm1.weight`, `attn.qkv.weight`…): ViT-B-style settings (MLP ratio 4, qkv bias,
    /// relative positions, LayerNorm eps 1e-6), `window_size` 0 for global attention,
    /// relative-position tables sized for `rel_pos_size` tokens per side.
    ///
    /// # Errors
    /// Missing, misshapen or unused parameters.
    pub fn from_weights(
        weights: &Weights,
        dim: i64,
        num_heads: i64,
        window_size: i64,
        rel_pos_size: i64,
    ) -> Result<Self, SamError> {
        let block = Block::load(
            &weights.root("block"),
            dim,
            num_heads,
            4.0,
            true,
            true,
            1e-6,
            window_size,
            (rel_pos_size, rel_pos_size),
        )?;
        weights.check_all_used("block")?;
        Ok(block)
    }

    /// Runs the block on `(B, H, W, C)` tokens.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let shortcut = x;
        let mut x = self.norm1.forward(x);
        let mut pad = None;
        if self.window_size > 0 {
            let (h, w) = (x.size()[1], x.size()[2]);
            let (windows, pad_hw) = window_partition(&x, self.window_size);
            x = windows;
            pad = Some((pad_hw, (h, w)));
        }
        x = self.attn.forward(&x);
        if let Some((pad_hw, hw)) = pad {
            x = window_unpartition(&x, self.window_size, pad_hw, hw);
        }
        let x = shortcut + x;
        &x + self.mlp.forward(&self.norm2.forward(&x))
    }
}

/// The image encoder (`ImageEncoderViT`).
#[derive(Debug)]
pub struct ImageEncoderViT {
    patch_embed: Conv2d,
    pos_embed: Option<Tensor>,
    blocks: Vec<Block>,
    neck_conv1: Conv2d,
    neck_ln1: LayerNorm2d,
    neck_conv2: Conv2d,
    neck_ln2: LayerNorm2d,
    img_size: i64,
}

impl ImageEncoderViT {
    pub(crate) fn load(vb: &Vb, c: &ImageEncoderConfig) -> Result<Self, SamError> {
        let grid = c.img_size / c.patch_size;
        let patch_embed = Conv2d::load(
            &vb.pp("patch_embed").pp("proj"),
            c.in_chans,
            c.embed_dim,
            c.patch_size,
            c.patch_size,
            0,
            true,
        )?;
        let pos_embed = if c.use_abs_pos {
            Some(vb.get("pos_embed", &[1, grid, grid, c.embed_dim])?)
        } else {
            None
        };
        let blocks = (0..c.depth)
            .map(|i| {
                let window = if c.global_attn_indexes.contains(&i) {
                    0
                } else {
                    c.window_size
                };
                Block::load(
                    &vb.pp("blocks").pp(i),
                    c.embed_dim,
                    c.num_heads,
                    c.mlp_ratio,
                    c.qkv_bias,
                    c.use_rel_pos,
                    c.layer_norm_eps,
                    window,
                    (grid, grid),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let neck = vb.pp("neck");
        Ok(ImageEncoderViT {
            patch_embed,
            pos_embed,
            blocks,
            neck_conv1: Conv2d::load(&neck.pp(0), c.embed_dim, c.out_chans, 1, 1, 0, false)?,
            neck_ln1: LayerNorm2d::load(&neck.pp(1), c.out_chans)?,
            neck_conv2: Conv2d::load(&neck.pp(2), c.out_chans, c.out_chans, 3, 1, 1, false)?,
            neck_ln2: LayerNorm2d::load(&neck.pp(3), c.out_chans)?,
            img_size: c.img_size,
        })
    }

    /// Side of the square input this encoder takes.
    pub fn img_size(&self) -> i64 {
        self.img_size
    }

    /// Encodes a normalised, padded `(B, 3, img_size, img_size)` batch into
    /// `(B, out_chans, img_size/16, img_size/16)` embeddings.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = self.patch_embed.forward(x).permute([0, 2, 3, 1]);
        if let Some(p) = &self.pos_embed {
            x += p;
        }
        for blk in &self.blocks {
            x = blk.forward(&x);
        }
        let x = x.permute([0, 3, 1, 2]);
        let x = self.neck_ln1.forward(&self.neck_conv1.forward(&x));
        self.neck_ln2.forward(&self.neck_conv2.forward(&x))
    }
}
