//! Sine positional encodings (`pixel_decoder/position_encoding.py` and
//! `utils/utils.py::gen_sineembed_for_position`), written with the ATen operations upstream
//! uses so they agree to the bit.

use tch::{Device, Kind, Tensor};

const TEMPERATURE: i64 = 10000;

/// `10000 ** (2 * (arange(n) // 2) / n)` as upstream computes it in `float32`.
fn dim_t(num_pos_feats: i64, device: Device) -> Tensor {
    let d = Tensor::arange(num_pos_feats, (Kind::Float, device));
    let e = (d.floor_divide_scalar(2) * 2).divide_scalar(num_pos_feats);
    Tensor::pow_scalar(TEMPERATURE, &e)
}

/// `(sin, cos)` of even and odd channels interleaved: `stack((p[..., 0::2].sin(),
/// p[..., 1::2].cos()), dim=last+1).flatten(last)`.
fn interleave_sin_cos(p: &Tensor) -> Tensor {
    let last = p.dim() as i64 - 1;
    let n = p.size()[last as usize];
    let even = p.slice(last, 0, n, 2).sin();
    let odd = p.slice(last, 1, n, 2).cos();
    Tensor::stack(&[even, odd], last + 1).flatten(last, last + 1)
}

/// `PositionEmbeddingSine(num_pos_feats, normalize=True)` of an unpadded `(N, C, H, W)`
/// feature map: `(N, 2·num_pos_feats, H, W)`.
pub(crate) fn position_embedding_sine(x: &Tensor, num_pos_feats: i64) -> Tensor {
    let (n, _, h, w) = x.size4().unwrap_or((0, 0, 0, 0));
    let device = x.device();
    let scale = 2.0 * std::f64::consts::PI;
    let eps = 1e-6;
    let not_mask = Tensor::ones([n, h, w], (Kind::Bool, device));
    let y_embed = not_mask.cumsum(1, Kind::Float);
    let x_embed = not_mask.cumsum(2, Kind::Float);
    let y_embed = &y_embed / (y_embed.narrow(1, h - 1, 1) + eps) * scale;
    let x_embed = &x_embed / (x_embed.narrow(2, w - 1, 1) + eps) * scale;
    let dim_t = dim_t(num_pos_feats, device);
    let pos_x = interleave_sin_cos(&(x_embed.unsqueeze(-1) / &dim_t));
    let pos_y = interleave_sin_cos(&(y_embed.unsqueeze(-1) / &dim_t));
    Tensor::cat(&[pos_y, pos_x], 3).permute([0, 3, 1, 2])
}

/// `gen_sineembed_for_position` for boxes `(nq, bs, 4)` as `(x, y, w, h)`:
/// `(nq, bs, 4·num_feats)` in the order `y, x, w, h`.
///
/// Upstream hard-codes `num_feats = 128`, half the published hidden width 256; the port
/// takes half the configured width, which is the same function for every published model.
pub(crate) fn sine_embed_for_boxes(pos: &Tensor, num_feats: i64) -> Tensor {
    let scale = 2.0 * std::f64::consts::PI;
    let dim_t = dim_t(num_feats, pos.device());
    let embed = |i: i64| {
        let e = pos.select(2, i) * scale;
        interleave_sin_cos(&(e.unsqueeze(-1) / &dim_t))
    };
    let pos_x = embed(0);
    let pos_y = embed(1);
    let pos_w = embed(2);
    let pos_h = embed(3);
    Tensor::cat(&[pos_y, pos_x, pos_w, pos_h], 2)
}
