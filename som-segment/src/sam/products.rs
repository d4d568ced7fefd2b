//! The mask decoder's attention products over a handful of prompt tokens, with LibTorch's
//! bits and without its layout copies.
//!
//! - Token → image: each of the 5–7 prompt tokens of a prompt scores every one of the 4096
//!   image tokens, per head: `q_h · k_hᵀ` with a head width of 16. The reference computes
//!   it with `torch.matmul` on the heads' views, which copies the image keys into a
//!   `(B·H, 16, 4096)` batch first (their heads are interleaved in memory) and then runs
//!   one small matrix product per head. [`token_image_scores`] reads the keys where the
//!   projection left them.
//! - Image → token: each image token mixes the prompt's token values by the softmax of
//!   its 5–7 scores, per head; the reference runs the softmax, one small product per head
//!   and a copy that puts the heads back side by side. [`image_token_mix`] does the three
//!   in one pass (the softmax by [`super::softmax`]'s kernel), writing each mix where the
//!   copy would put it. [`image_token_attention`] also computes those scores (16-term dot
//!   products of the image queries with the token keys), per block of image rows, where
//!   they are used: LibTorch copies the image queries into a per-head batch, writes the
//!   scores out and reads them back. In the generator on two Intel Xeon cores, alternating
//!   whole runs of MobileSAM (default thresholds, records identical): 16.1 / 16.5 s
//!   against 17.1 / 16.7 s. On AVX-512 with heads of 16 it puts 16 image rows in the lanes
//!   of each vector instead of the tokens ([`attention_avx512`]): 1–2% of the generator
//!   (alternating zero-threshold runs, 16.59 / 17.03 / 16.58 s against 16.82 / 17.13 /
//!   16.91 s), most of it from reading each block's queries in one sweep, prefetched.
//!
//! All compute each sum as LibTorch's product does on those shapes: one fused
//! multiply-add per term, in order, from zero ([`weighted_sums`]). Whether that is
//! LibTorch's arithmetic on this machine (its matrix products come from MKL, whose kernels
//! may change with the shape, the thread count and the CPU: the image → token scores sum
//! in this order on an Intel Xeon with AVX-512, in another on an AMD Zen 4) is checked
//! once per process for each shape against LibTorch's own operations ([`probed`]); shapes
//! that differ go through LibTorch. The generator also checks its whole decoder against the
//! reference path on every crop.

use std::collections::HashMap;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::softmax::{exact_inverse, kernel_scale, libtorch_scaled_softmax, softmax_rows};
use crate::torch::floats::{cpu_f32, floats, floats_mut};
use crate::torch::parallel::for_each_chunk_mut;

/// What a probe checked, with the shapes it checked it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Probe {
    /// [`token_image_scores`] for `(batch, tokens, image tokens, heads, head width)`.
    TokenImageScores([i64; 5]),
    /// [`image_token_mix`] for `(batch, image tokens, tokens, heads, head width)`.
    ImageTokenMix([i64; 5]),
    /// [`image_token_attention`] for `(batch, image tokens, tokens, heads, head width)`.
    ImageTokenAttention([i64; 5]),
    /// Two linear layers of `(out, in)` weights on the same `(batch, rows, in)` input
    /// computed as one, stacked ([`crate::torch::nn::StackedLinear`]): `(batch, rows, in,
    /// out)`.
    StackedLinear([i64; 4]),
    /// A layer packed for [`crate::torch::gemm::PackedLinear`] on `(batch, rows, in)` inputs
    /// with `out` outputs, the batch counts of the input addition and of the residual
    /// (0: none), summed in blocks of `block` inputs: `(batch, rows, in, out, addition
    /// batches, residual batches, block)`.
    PackedLinear([i64; 7]),
    /// [`crate::torch::layer_norm::RowNorm`] on rows of this width.
    LayerNorm(i64),
    /// `super::norm_gelu::layer_norm2d_gelu` for `(channels, eps's bits)`.
    LayerNorm2dGelu(i64, u64),
    /// `super::norm_gelu::gelu`.
    Gelu,
    /// [`super::mask_product::MaskProduct::masks`] on `(S, h, w, 64)` pixels with `K`
    /// masks: `(S, h, w, K)`.
    MaskProduct([i64; 4]),
    /// [`super::token_mix::softmax_mix`] on `(G, R, K)` scores.
    SoftmaxMix([i64; 3]),
}

/// `check()`'s answer for `probe`, computed once per process (LibTorch's values for a
/// shape do not change while it runs) and remembered.
pub(crate) fn probed(probe: Probe, check: impl FnOnce() -> bool) -> bool {
    static SEEN: Mutex<Option<HashMap<Probe, bool>>> = Mutex::new(None);
    if let Some(&known) = SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&probe)
    {
        return known;
    }
    // Outside the lock: the check runs LibTorch, and another thread may probe meanwhile
    // (both then compute the same answer).
    let _guard = tch::no_grad_guard();
    let answer = check();
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(probe, answer);
    answer
}

/// `Attention._separate_heads`: `(B, N, H·c)` → `(B, H, N, c)` (a view).
pub(crate) fn separate_heads(x: &Tensor, heads: i64) -> Tensor {
    let (b, n, c) = x.size3().expect("tokens are (B, N, C)");
    x.reshape([b, n, heads, c / heads]).transpose(1, 2)
}

/// `Attention._recombine_heads`: `(B, H, N, c)` → `(B, N, H·c)`.
pub(crate) fn recombine_heads(x: &Tensor) -> Tensor {
    let (b, h, n, c) = x.size4().expect("heads are (B, H, N, C)");
    x.transpose(1, 2).reshape([b, n, h * c])
}

/// `(B, H, N, HW)` attention scores `q_h · k_hᵀ / divisor` of `(B, N, H·c)` token queries
/// `q` on `(B, HW, H·c)` image keys `k` (each row contiguous, rows at any stride, e.g. a
/// narrowed stacked projection), as the reference's `q.matmul(k.permute(0, 1, 3, 2))` on
/// their per-head views and its division before the softmax give them: by the kernel where
/// [`probed`] found it gives LibTorch's bits for these shapes, by those expressions
/// otherwise. With `divisor` a power of two the kernel multiplies each sum by its inverse
/// as it writes it, which is the division's result exactly (the same real number, rounded
/// once), instead of a pass of its own.
pub(crate) fn token_image_scores(q: &Tensor, k: &Tensor, heads: i64, divisor: f64) -> Tensor {
    let libtorch = || libtorch_token_image_scores(q, k, heads) / divisor;
    let (Ok((b, n, width)), Ok((kb, hw, kwidth))) = (q.size3(), k.size3()) else {
        return libtorch();
    };
    if !(cpu_f32(q) && cpu_f32(k) && kb == b && kwidth == width && heads > 0 && width % heads == 0)
        || k.stride().last() != Some(&1)
    {
        return libtorch();
    }
    match (
        scores_kernel_exact(b, n, hw, heads, width / heads),
        exact_inverse(divisor),
    ) {
        (true, Some(scale)) => scores_kernel(q, k, heads, scale),
        (true, None) => scores_kernel(q, k, heads, 1.0) / divisor,
        (false, _) => libtorch(),
    }
}

/// Whether [`token_image_scores`]'s kernel gives LibTorch's bits for `(batch, tokens,
/// image tokens, heads, head width)`: [`probed`] once per shape.
pub(crate) fn scores_kernel_exact(b: i64, n: i64, hw: i64, heads: i64, c: i64) -> bool {
    probed(Probe::TokenImageScores([b, n, hw, heads, c]), || {
        let width = heads * c;
        let q = probe_tensor(&[b, n, width], 11);
        let k = probe_tensor(&[b, hw, width], 12);
        scores_kernel(&q, &k, heads, 1.0).equal(&libtorch_token_image_scores(&q, &k, heads))
    })
}

/// The reference's expression for [`token_image_scores`] (`Attention._separate_heads`,
/// then `q @ k.permute(0, 1, 3, 2)`).
pub(crate) fn libtorch_token_image_scores(q: &Tensor, k: &Tensor, heads: i64) -> Tensor {
    separate_heads(q, heads).matmul(&separate_heads(k, heads).permute([0, 1, 3, 2]))
}

/// The image → token attention's output before its out-projection, `(B, HW, H·c)`: each
/// image token's mix of the `(B, N, H·c)` token values `v` weighted by
/// `softmax(scores / divisor)` of its `(B, H, HW, N)` scores, per head, as the reference
/// computes it (`_recombine_heads(softmax(attn / √c) @ v)`): by the kernel where the
/// softmax kernel applies ([`kernel_scale`]) and [`probed`] found the whole gives
/// LibTorch's bits for these shapes, by LibTorch otherwise. The kernel writes each mix
/// where the recombined heads go, without the per-head product and the copy.
pub(crate) fn image_token_mix(scores: &Tensor, divisor: f64, v: &Tensor, heads: i64) -> Tensor {
    let (Ok((b, h, hw, n)), Ok((vb, vn, width))) = (scores.size4(), v.size3()) else {
        return libtorch_mix(scores, divisor, v, heads);
    };
    let scale = kernel_scale(n as usize, divisor);
    let fits = h == heads && vb == b && vn == n && heads > 0 && width % heads == 0;
    let (Some(scale), true) = (scale, fits && cpu_f32(scores) && cpu_f32(v)) else {
        return libtorch_mix(scores, divisor, v, heads);
    };
    let c = width / heads;
    let exact = probed(Probe::ImageTokenMix([b, hw, n, heads, c]), || {
        let scores = probe_tensor(&[b, heads, hw, n], 13) * 8.0;
        let v = probe_tensor(&[b, n, width], 14);
        mix_kernel(&scores, &v, heads, scale).equal(&libtorch_mix(&scores, divisor, &v, heads))
    });
    if exact {
        mix_kernel(scores, v, heads, scale)
    } else {
        libtorch_mix(scores, divisor, v, heads)
    }
}

/// The reference's expression for [`image_token_mix`].
pub(crate) fn libtorch_mix(scores: &Tensor, divisor: f64, v: &Tensor, heads: i64) -> Tensor {
    recombine_heads(&libtorch_scaled_softmax(scores, divisor).matmul(&separate_heads(v, heads)))
}

/// The image → token attention before its out-projection, `(B, HW, H·c)`, of `(B, H, HW, c)`
/// image queries `q` on `(B, N, H·c)` token keys `k` and values `v`: what
/// [`image_token_mix`] gives for the scores [`libtorch_token_image_scores`] gives (the
/// reference's `q @ k.permute(0, 1, 3, 2)` on the heads' views), each image row's scores
/// computed where they are used instead of stored and read back. `q` may have any strides
/// with the last one 1 (a head view of a stacked projection's half, one image's queries
/// expanded over the batch), so no head is copied out.
///
/// `None` where the kernel does not apply (more than 8 tokens, heads wider than 16, a
/// divisor the softmax kernel does not take, not float32 on the CPU) or [`probed`] found
/// that it does not give LibTorch's bits for these shapes (the scores then sum in another
/// order than one fused multiply-add per term from zero, as on some CPUs): the caller then
/// computes the scores and the mix apart.
pub(crate) fn image_token_attention(q: &Tensor, k: &Tensor, v: &Tensor, divisor: f64) -> Option<Tensor> {
    image_token_attention_scale(q, k, v, divisor).map(|scale| attention_kernel(q, k, v, scale))
}

/// The softmax factor [`image_token_attention`]'s kernel runs with on these operands, or
/// `None` where it does not apply or its probe refused it (the function's docs).
pub(crate) fn image_token_attention_scale(q: &Tensor, k: &Tensor, v: &Tensor, divisor: f64) -> Option<f32> {
    let ((b, heads, hw, c), (kb, n, width)) = (q.size4().ok()?, k.size3().ok()?);
    let strides = q.stride();
    let fits = v.size() == k.size()
        && kb == b
        && width == heads * c
        && (1..=LANES as i64).contains(&n)
        && (1..=MAX_HEAD_WIDTH as i64).contains(&c)
        && strides.last() == Some(&1)
        && strides.iter().all(|&s| s >= 0)
        && [q, k, v].into_iter().all(cpu_f32);
    if !fits {
        return None;
    }
    let scale = kernel_scale(n as usize, divisor)?;
    let exact = probed(Probe::ImageTokenAttention([b, hw, n, heads, c]), || {
        let q = probe_tensor(&[b, hw, width], 15);
        let k = probe_tensor(&[b, n, width], 16);
        let v = probe_tensor(&[b, n, width], 17);
        let want = libtorch_mix(&libtorch_token_image_scores(&q, &k, heads), divisor, &v, heads);
        attention_kernel(&separate_heads(&q, heads), &k, &v, scale).equal(&want)
    });
    exact.then_some(scale)
}

/// The token count and heads of one prompt's attention, for the kernels on a block of
/// image rows ([`attention_rows`], [`score_rows`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenHeads {
    /// Prompt tokens.
    pub(crate) tokens: usize,
    /// Heads.
    pub(crate) heads: usize,
    /// Head width.
    pub(crate) c: usize,
}

/// [`image_token_attention`]'s kernel for one prompt on a block of image rows: the image
/// queries of `source` ([`Scores::Queries`], from the block's first row) against its token
/// keys, the mix of the `(N, H·c)` token `values` into `out`, `(rows, H·c)`; `scale` is
/// [`image_token_attention_scale`]'s. Each row's values are those of the whole-tensor
/// kernel (every row is computed alone).
///
/// # Panics
/// If the source is [`Scores::Queries`] and there are more than 8 tokens or heads wider
/// than 16 (the whole-tensor kernel's limits, which [`image_token_attention_scale`]
/// checks).
pub(crate) fn attention_rows(
    source: &Scores,
    values: &[f32],
    shape: TokenHeads,
    scale: f32,
    out: &mut [f32],
) {
    if let Scores::Queries { .. } = source {
        assert!(
            shape.tokens <= LANES && shape.c <= MAX_HEAD_WIDTH,
            "at most {LANES} tokens and heads of at most {MAX_HEAD_WIDTH}"
        );
    }
    let width = shape.heads * shape.c;
    let dims = MixDims {
        image: out.len() / width,
        tokens: shape.tokens,
        heads: shape.heads,
        c: shape.c,
    };
    mix_one(source, values, out, &dims, scale);
}

/// [`token_image_scores`]'s kernel for one prompt on a block of image rows: its `(N, H·c)`
/// token queries `q` against the `H·c` keys that begin each of the block's rows of `keys`
/// (`key_row_stride` floats apart), each sum multiplied by `scale` (a power of two), into
/// `out` as `(H, N, rows)`: the values the whole-tensor kernel writes for those rows.
pub(crate) fn score_rows(
    q: &[f32],
    keys: &[f32],
    key_row_stride: usize,
    shape: TokenHeads,
    scale: f32,
    out: &mut [f32],
) {
    let dims = ScoreDims {
        tokens: shape.tokens,
        image: out.len() / (shape.heads * shape.tokens),
        heads: shape.heads,
        c: shape.c,
        key_batch_stride: 0,
        key_row_stride,
        scale,
    };
    scores_one(q, keys, out, &dims);
}

/// The kernel of [`image_token_attention`] (shapes and strides already checked).
fn attention_kernel(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Tensor {
    let (k, v) = (k.contiguous(), v.contiguous());
    let (b, heads, hw, c) = q.size4().expect("checked by the caller");
    let [sb, sh, sr, _] = q.stride()[..] else {
        unreachable!("a 4-d tensor has four strides")
    };
    let n = k.size()[1];
    let out = Tensor::empty([b, hw, heads * c], (Kind::Float, Device::Cpu));
    let dims = MixDims {
        image: hw as usize,
        tokens: n as usize,
        heads: heads as usize,
        c: c as usize,
    };
    // SAFETY: the tensors outlive the slices; `k`, `v` (contiguous copies) and `q` are only
    // read here and written by no one else meanwhile; `out` was just allocated here and
    // nothing else refers to its memory while the slice lives.
    let (q_data, k_data, v_data, out_data) = unsafe { (floats(q), floats(&k), floats(&v), floats_mut(&out)) };
    let per_k = dims.tokens * dims.heads * dims.c;
    let (sb, sh, sr) = (sb as usize, sh as usize, sr as usize);
    for_each_chunk_mut(out_data, dims.image * dims.heads * dims.c, |j, out| {
        let source = Scores::Queries {
            q: &q_data[j * sb..],
            head_stride: sh,
            row_stride: sr,
            keys: &k_data[j * per_k..][..per_k],
        };
        mix_one(&source, &v_data[j * per_k..][..per_k], out, &dims, scale);
    });
    out
}

/// Image rows whose softmax the mix kernel computes at once (kept in the cache).
const MIX_ROWS: usize = 256;

/// Rows the mix kernel mixes together (their accumulators fill the vector registers).
const MIX_BLOCK: usize = 4;

/// Head widths the mix kernel handles in registers.
const MAX_HEAD_WIDTH: usize = 16;

/// The kernel of [`image_token_mix`] (shapes already checked).
fn mix_kernel(scores: &Tensor, v: &Tensor, heads: i64, scale: f32) -> Tensor {
    let (scores, v) = (scores.contiguous(), v.contiguous());
    let (b, _, hw, n) = scores.size4().expect("checked by the caller");
    let width = v.size()[2];
    let out = Tensor::empty([b, hw, width], (Kind::Float, Device::Cpu));
    let dims = MixDims {
        image: hw as usize,
        tokens: n as usize,
        heads: heads as usize,
        c: (width / heads) as usize,
    };
    // SAFETY: the tensors outlive the slices; `scores` and `v` (contiguous copies) are only
    // read here and written by no one else meanwhile; `out` was just allocated here and
    // nothing else refers to its memory while the slice lives.
    let (s_data, v_data, out_data) = unsafe { (floats(&scores), floats(&v), floats_mut(&out)) };
    let (per_scores, per_v) = (
        dims.heads * dims.image * dims.tokens,
        dims.tokens * dims.heads * dims.c,
    );
    for_each_chunk_mut(out_data, dims.image * dims.heads * dims.c, |j, out| {
        let source = Scores::Plane(&s_data[j * per_scores..][..per_scores]);
        mix_one(&source, &v_data[j * per_v..][..per_v], out, &dims, scale);
    });
    out
}

/// The shapes of one [`mix_any`] call.
#[derive(Clone, Copy)]
struct MixDims {
    image: usize,
    tokens: usize,
    heads: usize,
    c: usize,
}

/// Where one prompt's image → token scores come from.
pub(crate) enum Scores<'a> {
    /// Its `(H, HW, N)` scores, computed before.
    Plane(&'a [f32]),
    /// Computed here from its image queries (element `(h, r, i)` at `h · head_stride +
    /// r · row_stride + i`) and its `(N, H·c)` token keys: for each head, image row and
    /// token, one fused multiply-add per term in order from zero (LibTorch's product on the
    /// shapes its probe accepted).
    Queries {
        q: &'a [f32],
        head_stride: usize,
        row_stride: usize,
        keys: &'a [f32],
    },
}

/// One prompt's mix (its scores from `source` and its `(N, H·c)` token values into its
/// `(HW, H·c)` output), per head and block of image rows: the softmax kernel's
/// probabilities, then each row's mix of the head's token values, one fused multiply-add
/// per token in order from zero (LibTorch's product on these shapes), written into the
/// row's head columns. [`Scores::Queries`] requires at most [`LANES`] tokens and heads at
/// most [`MAX_HEAD_WIDTH`] wide.
#[inline(always)]
fn mix_any(source: &Scores, v: &[f32], out: &mut [f32], d: &MixDims, scale: f32) {
    let width = d.heads * d.c;
    let mut p = vec![0.0f32; MIX_ROWS * d.tokens];
    let mut computed = match source {
        Scores::Plane(_) => Vec::new(),
        // LANES floats of slack: each computed row is stored as its whole vector of lanes
        // (one fixed-length store; the next row overwrites the unused lanes).
        Scores::Queries { .. } => vec![0.0f32; MIX_ROWS * d.tokens + LANES],
    };
    for h in 0..d.heads {
        // The head's token keys, transposed (kt[i][token]), for computed scores.
        let kt: Vec<[f32; LANES]> = match source {
            Scores::Plane(_) => Vec::new(),
            Scores::Queries { keys, .. } => (0..d.c)
                .map(|i| {
                    std::array::from_fn(|t| {
                        if t < d.tokens {
                            keys[t * width + h * d.c + i]
                        } else {
                            0.0
                        }
                    })
                })
                .collect(),
        };
        for c0 in (0..d.c).step_by(MAX_HEAD_WIDTH) {
            let cw = MAX_HEAD_WIDTH.min(d.c - c0);
            // The head's values for these columns: vh[token][column].
            let vh: Vec<[f32; MAX_HEAD_WIDTH]> = (0..d.tokens)
                .map(|t| {
                    let mut row = [0.0; MAX_HEAD_WIDTH];
                    let at = t * width + h * d.c + c0;
                    row[..cw].copy_from_slice(&v[at..at + cw]);
                    row
                })
                .collect();
            for r0 in (0..d.image).step_by(MIX_ROWS) {
                let rows = MIX_ROWS.min(d.image - r0);
                let scores: &[f32] = match source {
                    Scores::Plane(plane) => &plane[(h * d.image + r0) * d.tokens..][..rows * d.tokens],
                    Scores::Queries {
                        q,
                        head_stride,
                        row_stride,
                        ..
                    } => {
                        let q = &q[h * head_stride..];
                        let mut i = 0;
                        while i < rows {
                            let n = if i + ROWS <= rows { ROWS } else { 1 };
                            let block = weighted_block::<ROWS, LANES>(&kt, n, |j| {
                                &q[(r0 + i + j) * row_stride..][..d.c]
                            });
                            for (j, s) in block.iter().enumerate().take(n) {
                                computed[(i + j) * d.tokens..][..LANES].copy_from_slice(s);
                            }
                            i += n;
                        }
                        &computed[..rows * d.tokens]
                    }
                };
                let p = &mut p[..rows * d.tokens];
                softmax_rows(scores, p, d.tokens, scale);
                // MIX_BLOCK rows at a time: independent chains of multiply-adds.
                let mut i = 0;
                while i < rows {
                    let n = if i + MIX_BLOCK <= rows { MIX_BLOCK } else { 1 };
                    let block = weighted_block::<MIX_BLOCK, MAX_HEAD_WIDTH>(&vh, n, |j| {
                        &p[(i + j) * d.tokens..(i + j + 1) * d.tokens]
                    });
                    for (j, acc) in block.iter().enumerate().take(n) {
                        let at = (r0 + i + j) * width + h * d.c + c0;
                        if cw == MAX_HEAD_WIDTH {
                            // A fixed length: vector moves rather than a call to memcpy.
                            out[at..at + MAX_HEAD_WIDTH].copy_from_slice(acc);
                        } else {
                            copy_part(&mut out[at..at + cw], acc);
                        }
                    }
                    i += n;
                }
            }
        }
    }
}

/// The first `to.len()` values of `from` into `to`: the copy of a narrow head's columns,
/// kept out of line so that the compiler does not merge it with the fixed-length copy of
/// whole heads into one call to `memcpy`.
#[cold]
#[inline(never)]
fn copy_part(to: &mut [f32], from: &[f32]) {
    to.copy_from_slice(&from[..to.len()]);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mix_avx2(source: &Scores, v: &[f32], out: &mut [f32], d: &MixDims, scale: f32) {
    mix_any(source, v, out, d, scale);
}

/// [`mix_any`] on the best instructions the CPU has (the same values on any): computed
/// scores with heads of 16 on AVX-512 by [`attention_avx512`] (its row blocks; the rows
/// after them as below), the rest by `mix_any` compiled for AVX2 where the CPU has it.
fn mix_one(source: &Scores, v: &[f32], out: &mut [f32], d: &MixDims, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::torch::gemm::{has_avx2_fma, has_avx512};
        if let Scores::Queries {
            q,
            head_stride,
            row_stride,
            keys,
        } = *source
        {
            let blocks = d.image / ROW_LANES;
            if d.c == ROW_LANES
                && (1..=LANES).contains(&d.tokens)
                && blocks > 0
                && has_avx512()
                && has_avx2_fma()
            {
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked just above), the
                // target-feature function's only requirement.
                unsafe { attention_avx512(source, v, out, d, scale, blocks) };
                let done = blocks * ROW_LANES;
                if done == d.image {
                    return;
                }
                let rest = Scores::Queries {
                    q: &q[done * row_stride..],
                    head_stride,
                    row_stride,
                    keys,
                };
                let dims = MixDims {
                    image: d.image - done,
                    ..*d
                };
                return mix_one(&rest, v, &mut out[done * d.heads * d.c..], &dims, scale);
            }
        }
        if has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above), the target-feature
            // function's only requirement.
            unsafe { mix_avx2(source, v, out, d, scale) };
            return;
        }
    }
    mix_any(source, v, out, d, scale);
}

/// Image rows [`attention_avx512`] takes at once (the lanes of its vectors), and the head
/// width it handles (a head's 16 floats of 16 rows are transposed in registers).
const ROW_LANES: usize = 16;

/// How many blocks of rows ahead [`attention_avx512`] asks for its queries.
const PREFETCH_BLOCKS: usize = 2;

/// [`mix_any`] for computed scores ([`Scores::Queries`]) with heads of 16 floats and at
/// most [`LANES`] tokens, on the first `blocks` blocks of 16 image rows, with the rows in
/// the lanes of the vectors instead of the tokens (no broadcast load per multiply-add, and
/// the softmax needs no transpose of its own): per head and block, the rows' queries are
/// transposed in registers; each token's scores are the 16 products with that token's
/// keys, summed by fused multiply-adds in order from zero; the softmax is
/// [`super::softmax`]'s, operation for operation; each column of the mix is the tokens'
/// values weighted by their probabilities, fused multiply-adds in token order from zero;
/// the mixes are transposed back into the rows. Every sum has the order and rounding of
/// `mix_any`'s, so the values are its values.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attention_avx512(
    source: &Scores,
    v: &[f32],
    out: &mut [f32],
    d: &MixDims,
    scale: f32,
    blocks: usize,
) {
    macro_rules! tokens {
        ($($n:literal)*) => {
            match d.tokens {
                $($n => attention_blocks::<$n>(source, v, out, d, scale, blocks),)*
                n => unreachable!("{n} tokens: the caller checked 1 to {LANES}"),
            }
        };
    }
    tokens!(1 2 3 4 5 6 7 8);
}

/// [`attention_avx512`] for `N` tokens.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attention_blocks<const N: usize>(
    source: &Scores,
    v: &[f32],
    out: &mut [f32],
    d: &MixDims,
    scale: f32,
    blocks: usize,
) {
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_div_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_mul_ps,
        _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_ps,
    };

    let Scores::Queries {
        q,
        head_stride,
        row_stride,
        keys,
    } = *source
    else {
        unreachable!("the caller passes computed scores")
    };
    let width = d.heads * ROW_LANES;
    assert!(d.c == ROW_LANES && N == d.tokens && blocks * ROW_LANES <= d.image);
    assert!(out.len() >= blocks * ROW_LANES * width && keys.len() >= N * width && v.len() >= N * width);
    // Each token's keys and values per head: [t · heads + h][i].
    let (keys, _) = keys[..N * width].as_chunks::<ROW_LANES>();
    let (values, _) = v[..N * width].as_chunks::<ROW_LANES>();
    // Rows outer, heads inner: a block's queries (16 whole rows) are read in one sweep
    // (they come from memory; a head at a time over all rows missed the cache).
    // Plain loops, no closures: a closure is compiled without this function's target
    // features and is not inlined into it.
    for block in 0..blocks {
        let r0 = block * ROW_LANES;
        // The queries of the block after next (the hardware's prefetcher alone left these
        // loads waiting on memory).
        if block + PREFETCH_BLOCKS < blocks {
            for l in 0..ROW_LANES {
                let row = (r0 + PREFETCH_BLOCKS * ROW_LANES + l) * row_stride;
                for h in 0..d.heads {
                    prefetch(&q[row + h * head_stride]);
                }
            }
        }
        for h in 0..d.heads {
            let column = h * ROW_LANES;
            let (mut k, mut vh) = ([&[0.0f32; ROW_LANES]; N], [&[0.0f32; ROW_LANES]; N]);
            for t in 0..N {
                (k[t], vh[t]) = (&keys[t * d.heads + h], &values[t * d.heads + h]);
            }
            // qt[i] lane l: element i of row r0 + l's head.
            let mut rows = [_mm512_setzero_ps(); ROW_LANES];
            for (l, row) in rows.iter_mut().enumerate() {
                let at = &q[h * head_stride + (r0 + l) * row_stride..][..ROW_LANES];
                *row = _mm512_loadu_ps(at.as_ptr());
            }
            let qt = super::mask_product::transpose16(rows);
            let mut x = [_mm512_setzero_ps(); N];
            for (i, &qi) in qt.iter().enumerate() {
                for (s, kt) in x.iter_mut().zip(&k) {
                    *s = _mm512_fmadd_ps(qi, _mm512_set1_ps(kt[i]), *s);
                }
            }
            // The softmax kernel's operations (`softmax_rows_any`), 16 rows at once.
            let factor = _mm512_set1_ps(scale);
            for xi in &mut x {
                *xi = _mm512_mul_ps(*xi, factor);
            }
            // max(a, b) is `a > b ? a : b`, the kernel's comparison.
            let mut m = x[0];
            for &xi in &x[1..] {
                m = _mm512_max_ps(xi, m);
            }
            let mut sum = _mm512_setzero_ps();
            for (t, xi) in x.iter_mut().enumerate() {
                let mut lanes = [0.0f32; ROW_LANES];
                _mm512_storeu_ps(lanes.as_mut_ptr(), _mm512_sub_ps(*xi, m));
                for lane in &mut lanes {
                    *lane = super::softmax::sleef_expf(*lane);
                }
                *xi = _mm512_loadu_ps(lanes.as_ptr());
                sum = if t == 0 { *xi } else { _mm512_add_ps(sum, *xi) };
            }
            let r = _mm512_div_ps(_mm512_set1_ps(1.0), sum);
            let mut mixed = [_mm512_setzero_ps(); ROW_LANES];
            for (&e, vt) in x.iter().zip(&vh) {
                let p = _mm512_mul_ps(e, r);
                for (acc, &value) in mixed.iter_mut().zip(vt.iter()) {
                    *acc = _mm512_fmadd_ps(p, _mm512_set1_ps(value), *acc);
                }
            }
            for (l, row) in super::mask_product::transpose16(mixed).iter().enumerate() {
                let at = &mut out[(r0 + l) * width + column..][..ROW_LANES];
                _mm512_storeu_ps(at.as_mut_ptr(), *row);
            }
        }
    }
}

/// Tokens processed together: the lanes of the kernel's vectors.
const LANES: usize = 8;

/// Image rows scored together (independent accumulators).
const ROWS: usize = 8;

/// How far ahead of the rows being scored the kernel asks for keys (the keys come from
/// memory: the projection that wrote them covered megabytes since).
const PREFETCH_ROWS: usize = 32;

/// The kernel of [`token_image_scores`] (shapes already checked), each sum multiplied by
/// `scale` (a power of two).
fn scores_kernel(q: &Tensor, k: &Tensor, heads: i64, scale: f32) -> Tensor {
    let q = q.contiguous();
    let (b, n, width) = q.size3().expect("checked by the caller");
    let (_, hw, _) = k.size3().expect("checked by the caller");
    let [sb, sr, _] = k.stride()[..] else {
        unreachable!("a 3-d tensor has three strides")
    };
    let out = Tensor::empty([b, heads, n, hw], (Kind::Float, Device::Cpu));
    let dims = ScoreDims {
        tokens: n as usize,
        image: hw as usize,
        heads: heads as usize,
        c: (width / heads) as usize,
        key_batch_stride: sb as usize,
        key_row_stride: sr as usize,
        scale,
    };
    // SAFETY: the tensors outlive the slices; `q` (a contiguous copy) and `k` (a view whose
    // rows the scores read in place: every element lies within its slice) are only read
    // here and written by no one else meanwhile; `out` was just allocated here and nothing
    // else refers to its memory while the slice lives.
    let (q_data, k_data, out_data) = unsafe { (floats(&q), floats(k), floats_mut(&out)) };
    scores(q_data, k_data, out_data, &dims);
    out
}

/// The shapes and key strides of one [`scores`] call.
struct ScoreDims {
    tokens: usize,
    image: usize,
    heads: usize,
    c: usize,
    key_batch_stride: usize,
    key_row_stride: usize,
    /// What each sum is multiplied by (a power of two: exact).
    scale: f32,
}

/// One prompt's scores: its `(N, H·c)` queries against its image keys (rows
/// `key_row_stride` apart) into its `(H, N, HW)` output.
#[inline(always)]
fn scores_any(q: &[f32], keys: &[f32], out: &mut [f32], d: &ScoreDims) {
    let width = d.heads * d.c;
    // The queries of a token block, per head and transposed: qt[h·c + c][lane].
    let mut qt = vec![[0.0f32; LANES]; width];
    for t0 in (0..d.tokens).step_by(LANES) {
        let lanes = LANES.min(d.tokens - t0);
        for (j, lane) in qt.iter_mut().enumerate() {
            *lane = [0.0; LANES];
            for (l, v) in lane.iter_mut().enumerate().take(lanes) {
                *v = q[(t0 + l) * width + j];
            }
        }
        // ROWS image rows at a time (independent chains of multiply-adds keep the
        // vector units busy), each row's heads in turn (its keys read in order).
        let mut r = 0;
        while r < d.image {
            let n = if r + ROWS <= d.image { ROWS } else { 1 };
            for h in 0..d.heads {
                if r + PREFETCH_ROWS + ROWS <= d.image {
                    for i in 0..ROWS {
                        prefetch(&keys[(r + PREFETCH_ROWS + i) * d.key_row_stride + h * d.c]);
                    }
                }
                let qh = &qt[h * d.c..(h + 1) * d.c];
                let block = weighted_block::<ROWS, LANES>(qh, n, |i| {
                    &keys[(r + i) * d.key_row_stride + h * d.c..][..d.c]
                });
                let plane = (h * d.tokens + t0) * d.image;
                for (i, a) in block.iter().enumerate().take(n) {
                    for (l, &v) in a.iter().enumerate().take(lanes) {
                        out[plane + l * d.image + r + i] = v * d.scale;
                    }
                }
            }
            r += n;
        }
    }
}

/// Asks the CPU to bring `value`'s cache line in (a hint; no effect on any value).
#[inline(always)]
pub(super) fn prefetch(value: &f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and writes nothing; the address is a live
        // reference's.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const f32).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// `R` weighted sums of `vectors`, one per row of `weights` (a weight per vector):
/// `Σᵢ weights[r][i] · vectors[i]` lane by lane, one fused multiply-add per term in order
/// from zero (LibTorch's arithmetic for the decoder's small products). Rows are summed
/// together so that their independent chains keep the vector units busy.
#[inline(always)]
fn weighted_sums<const R: usize, const W: usize>(
    vectors: &[[f32; W]],
    weights: [&[f32]; R],
) -> [[f32; W]; R] {
    let mut acc = [[0.0f32; W]; R];
    for row in weights {
        assert_eq!(row.len(), vectors.len());
    }
    for (i, vector) in vectors.iter().enumerate() {
        for (a, row) in acc.iter_mut().zip(weights) {
            let w = row[i];
            for (x, &v) in a.iter_mut().zip(vector) {
                *x = w.mul_add(v, *x);
            }
        }
    }
    acc
}

/// [`weighted_sums`] of the weight rows `row(0)`, …, `row(n − 1)`, `n` being `R` (all
/// summed together) or 1 (a tail row, summed alone; the other results are zeros).
#[inline(always)]
fn weighted_block<'a, const R: usize, const W: usize>(
    vectors: &[[f32; W]],
    n: usize,
    row: impl Fn(usize) -> &'a [f32],
) -> [[f32; W]; R] {
    if n == R {
        return weighted_sums::<R, W>(vectors, std::array::from_fn(row));
    }
    assert_eq!(n, 1, "a block of {R} rows or a single one");
    let mut block = [[0.0; W]; R];
    block[0] = weighted_sums::<1, W>(vectors, [row(0)])[0];
    block
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_avx2(q: &[f32], k: &[f32], out: &mut [f32], d: &ScoreDims) {
    scores_any(q, k, out, d);
}

/// [`scores_one`] for every prompt of the batch, spread over LibTorch's threads.
fn scores(q: &[f32], k: &[f32], out: &mut [f32], d: &ScoreDims) {
    let per_q = d.tokens * d.heads * d.c;
    for_each_chunk_mut(out, d.heads * d.tokens * d.image, |b, out| {
        scores_one(&q[b * per_q..][..per_q], &k[b * d.key_batch_stride..], out, d);
    });
}

/// [`scores_any`] on the best instructions the CPU has (the same values on any: `mul_add`
/// is a fused multiply-add with or without the instruction).
fn scores_one(q: &[f32], k: &[f32], out: &mut [f32], d: &ScoreDims) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::torch::gemm::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above), the target-feature
            // function's only requirement.
            unsafe { scores_avx2(q, k, out, d) };
            return;
        }
    }
    scores_any(q, k, out, d);
}

/// A deterministic float32 tensor of `shape` for the probes, values spread like
/// projected tokens (±1.5).
pub(crate) fn probe_tensor(shape: &[i64], seed: u64) -> Tensor {
    let n = shape.iter().product::<i64>().max(0) as usize;
    let values: Vec<f32> = super::upscale::probe_values(n, seed)
        .into_iter()
        .map(|v| v / 8.0)
        .collect();
    Tensor::from_slice(&values).view(shape)
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::{
        attention_kernel, image_token_attention, image_token_mix, libtorch_mix, libtorch_token_image_scores,
        probe_tensor, probed, separate_heads, token_image_scores, Probe,
    };
    use crate::torch::gemm::tests::values;

    /// `(B, H, HW, N)` scores of `(B, HW, H·c)` image queries on `(B, N, H·c)` token keys,
    /// each a scalar chain of fused multiply-adds in order from zero (the fused kernel's
    /// documented order).
    fn scalar_scores(q: &Tensor, k: &Tensor, heads: usize) -> Tensor {
        let ((b, hw, width), (_, n, _)) = (q.size3().unwrap(), k.size3().unwrap());
        let (b, hw, width, n) = (b as usize, hw as usize, width as usize, n as usize);
        let c = width / heads;
        let (qv, kv) = (values(q), values(k));
        let mut out = vec![0.0f32; b * heads * hw * n];
        for bi in 0..b {
            for h in 0..heads {
                for r in 0..hw {
                    for t in 0..n {
                        let qr = &qv[(bi * hw + r) * width + h * c..][..c];
                        let kt = &kv[(bi * n + t) * width + h * c..][..c];
                        let s = qr.iter().zip(kt).fold(0.0f32, |acc, (&x, &y)| x.mul_add(y, acc));
                        out[((bi * heads + h) * hw + r) * n + t] = s;
                    }
                }
            }
        }
        Tensor::from_slice(&out).view([b as i64, heads as i64, hw as i64, n as i64])
    }

    /// The fused image → token attention computes each score as documented, on any CPU:
    /// its values are the mix of scalar-chained scores (by [`image_token_mix`], LibTorch's
    /// values for given scores), with tails after the row blocks, 5 to 8 tokens, and
    /// queries shared by the batch (stride 0, as the generator's first block reads them).
    #[test]
    fn attention_sums_each_score_in_the_documented_order() {
        let _guard = tch::no_grad_guard();
        for (b, hw, n) in [(2, 4099, 7), (1, 300, 5), (3, 64, 8), (2, 9, 6)] {
            let q = probe_tensor(&[b, hw, 128], 21) * 4.0;
            let k = probe_tensor(&[b, n, 128], 22) * 4.0;
            let v = probe_tensor(&[b, n, 128], 23);
            let want = image_token_mix(&scalar_scores(&q, &k, 8), 4.0, &v, 8);
            let got = attention_kernel(&separate_heads(&q, 8), &k, &v, 0.25);
            let differ = want.ne_tensor(&got).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(
                differ, 0,
                "batch {b}, {hw} rows, {n} tokens: {differ} values differ"
            );
        }
        let one = probe_tensor(&[1, 100, 128], 24) * 4.0;
        let k = probe_tensor(&[3, 7, 128], 25) * 4.0;
        let v = probe_tensor(&[3, 7, 128], 26);
        let shared = separate_heads(&one, 8).expand([3, -1, -1, -1], false);
        let want = image_token_mix(&scalar_scores(&one.expand([3, -1, -1], false), &k, 8), 4.0, &v, 8);
        assert!(
            attention_kernel(&shared, &k, &v, 0.25).equal(&want),
            "shared queries"
        );
    }

    /// On the decoder's shapes the fused attention gives LibTorch's bits wherever its probe
    /// takes it (CPUs whose MKL sums these scores in another order are refused), and it
    /// declines what it does not handle.
    #[test]
    fn attention_is_libtorchs_where_probed_and_declines_the_rest() {
        let _guard = tch::no_grad_guard();
        for (b, n) in [(4, 7), (5, 7), (4, 5)] {
            let q = probe_tensor(&[b, 4096, 256], 27).narrow(2, 128, 128) * 4.0;
            let k = probe_tensor(&[b, n, 128], 28) * 4.0;
            let v = probe_tensor(&[b, n, 128], 29);
            let want = libtorch_mix(&libtorch_token_image_scores(&q, &k, 8), 4.0, &v, 8);
            let got = image_token_attention(&separate_heads(&q, 8), &k, &v, 4.0);
            let accepted = probed(Probe::ImageTokenAttention([b, 4096, n, 8, 16]), || false);
            assert_eq!(got.is_some(), accepted, "batch {b}, {n} tokens");
            if let Some(got) = got {
                let differ = want.ne_tensor(&got).sum(Kind::Int64).int64_value(&[]);
                assert_eq!(differ, 0, "batch {b}, {n} tokens: {differ} values differ");
            }
        }
        let q = separate_heads(&probe_tensor(&[2, 40, 128], 30), 8);
        let k = probe_tensor(&[2, 7, 128], 31);
        let nine = probe_tensor(&[2, 9, 128], 32);
        assert!(
            image_token_attention(&q, &nine, &nine, 4.0).is_none(),
            "nine tokens"
        );
        let wide = separate_heads(&probe_tensor(&[2, 40, 160], 33), 8);
        let k20 = probe_tensor(&[2, 7, 160], 34);
        assert!(
            image_token_attention(&wide, &k20, &k20, 20f64.sqrt()).is_none(),
            "heads of 20"
        );
        let (qd, kd) = (q.to_kind(Kind::Double), k.to_kind(Kind::Double));
        assert!(image_token_attention(&qd, &kd, &kd, 4.0).is_none(), "float64");
        assert!(
            image_token_attention(&q, &k, &k, 3.0).is_none(),
            "a divisor not a power of two"
        );
    }

    /// The decoder's shapes (groups of 4 to 7 prompts, 7 tokens, 64×64 image tokens, 8 heads
    /// of 16) must take the kernel on the machines we build on, and give LibTorch's bits.
    #[test]
    fn scores_are_libtorchs_bit_for_bit() {
        let _guard = tch::no_grad_guard();
        for b in 4..8 {
            let q = probe_tensor(&[b, 7, 128], 1) * 3.0;
            // Keys as a narrowed stacked projection: rows 256 floats apart.
            let stacked = probe_tensor(&[b, 4096, 256], 2);
            let k = stacked.narrow(2, 0, 128);
            let want = libtorch_token_image_scores(&q, &k, 8) / 4.0;
            let got = token_image_scores(&q, &k, 8, 4.0);
            let differ = want.ne_tensor(&got).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(differ, 0, "batch {b}: {differ} scores differ");
            assert!(
                probed(Probe::TokenImageScores([b, 7, 4096, 8, 16]), || false),
                "batch {b} went through LibTorch"
            );
        }
        // Image rows that leave a tail after the blocks of eight.
        let q = probe_tensor(&[4, 7, 128], 1);
        let k = probe_tensor(&[4, 4099, 128], 2);
        for divisor in [4.0, 3.0] {
            let want = libtorch_token_image_scores(&q, &k, 8) / divisor;
            assert!(
                token_image_scores(&q, &k, 8, divisor).equal(&want),
                "divisor {divisor}"
            );
        }
        assert!(
            probed(Probe::TokenImageScores([4, 7, 4099, 8, 16]), || false),
            "4099 image rows went through LibTorch"
        );
    }

    /// The image → token mixes of the decoder's shapes (groups of 4 to 7 prompts, 4096
    /// image tokens, 5 to 7 tokens, 8 heads of 16) must take the kernel and give
    /// LibTorch's bits.
    #[test]
    fn mixes_are_libtorchs_bit_for_bit() {
        let _guard = tch::no_grad_guard();
        for (b, n) in [(4, 7), (5, 7), (7, 7), (4, 6), (4, 5)] {
            let scores = probe_tensor(&[b, 8, 4096, n], 7) * 20.0;
            let v = probe_tensor(&[b, n, 128], 8);
            let want = libtorch_mix(&scores, 4.0, &v, 8);
            let got = image_token_mix(&scores, 4.0, &v, 8);
            let differ = want.ne_tensor(&got).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(differ, 0, "batch {b}, {n} tokens: {differ} values differ");
            assert!(
                probed(Probe::ImageTokenMix([b, 4096, n, 8, 16]), || false),
                "batch {b}, {n} tokens went through LibTorch"
            );
        }
        // Heads wider than the kernel's registers, a divisor that is not a power of two, float64.
        let scores = probe_tensor(&[2, 2, 33, 3], 9) * 20.0;
        let v = probe_tensor(&[2, 3, 40], 10);
        for divisor in [4.0, 3.0] {
            let want = libtorch_mix(&scores, divisor, &v, 2);
            assert!(
                image_token_mix(&scores, divisor, &v, 2).equal(&want),
                "divisor {divisor}"
            );
        }
        assert!(
            probed(Probe::ImageTokenMix([2, 33, 3, 2, 20]), || false),
            "33 rows (a tail after the blocks of four), heads of 20 went through LibTorch"
        );
        let (scores, v) = (scores.to_kind(Kind::Double), v.to_kind(Kind::Double));
        let want = libtorch_mix(&scores, 4.0, &v, 2);
        assert!(image_token_mix(&scores, 4.0, &v, 2).equal(&want), "float64");
    }

    /// The AVX-512 attention (image rows in the vector lanes) gives the values of the
    /// general kernel (tokens in the lanes, compiled for AVX2) for every token count it
    /// takes, with rows after its blocks of 16, heads read at a stride (a stacked
    /// projection's half), scores far enough apart that `exp` flushes to zero, and equal
    /// scores.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_attention_gives_the_general_kernels_values() {
        use super::{attention_avx512, mix_avx2, MixDims, Scores, ROW_LANES};
        use crate::torch::gemm::{has_avx2_fma, has_avx512};
        if !(has_avx512() && has_avx2_fma()) {
            eprintln!("no AVX-512 on this CPU: the kernel is never called here");
            return;
        }
        let (heads, c) = (8, 16);
        let width = heads * c;
        for tokens in 1..=8 {
            for rows in [16, 53] {
                let mut q =
                    values(&(probe_tensor(&[rows as i64, 2 * width as i64], 40 + tokens as u64) * 6.0));
                // A far-out query in row 5's first head (its scores below −104 after the
                // maximum is taken away: the other tokens' exponentials flush to zero) and a
                // row of zeros (all scores equal).
                q[width + 5 * 2 * width + 3] = 900.0;
                q[width + 7 * 2 * width..width + 8 * 2 * width].fill(0.0);
                let keys = values(&(probe_tensor(&[tokens as i64, width as i64], 50) * 6.0));
                let v = values(&probe_tensor(&[tokens as i64, width as i64], 51));
                let source = Scores::Queries {
                    q: &q[width..],
                    head_stride: c,
                    row_stride: 2 * width,
                    keys: &keys,
                };
                let d = MixDims {
                    image: rows,
                    tokens,
                    heads,
                    c,
                };
                let (mut want, mut got) = (vec![0.0f32; rows * width], vec![f32::NAN; rows * width]);
                let blocks = rows / ROW_LANES;
                // SAFETY: the CPU has AVX2, FMA and AVX-512F (checked above).
                unsafe {
                    mix_avx2(&source, &v, &mut want, &d, 0.25);
                    attention_avx512(&source, &v, &mut got, &d, 0.25, blocks);
                }
                let done = blocks * ROW_LANES * width;
                let same = want[..done]
                    .iter()
                    .zip(&got[..done])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{tokens} tokens, {rows} rows: values differ");
                assert!(
                    got[done..].iter().all(|x| x.is_nan()),
                    "rows after the blocks left alone"
                );
                // Row 5's first head: one token's values exactly (probability 1, the
                // others 0).
                let row5 = &got[5 * width..][..c];
                assert!(
                    (0..tokens).any(|t| row5 == &v[t * width..][..c]),
                    "{tokens} tokens: the far-out row is not one token's values"
                );
            }
        }
    }

    #[test]
    fn other_inputs_go_through_libtorch() {
        let _guard = tch::no_grad_guard();
        let q = probe_tensor(&[2, 5, 12], 3);
        let k = probe_tensor(&[2, 9, 12], 4);
        // A small shape (kernel or LibTorch, as its probe finds), float64, keys with strided
        // columns: always LibTorch's values.
        let want = libtorch_token_image_scores(&q, &k, 4) / 2.0;
        assert!(token_image_scores(&q, &k, 4, 2.0).equal(&want));
        let (qd, kd) = (q.to_kind(Kind::Double), k.to_kind(Kind::Double));
        let want = libtorch_token_image_scores(&qd, &kd, 4) / 2.0;
        assert!(token_image_scores(&qd, &kd, 4, 2.0).equal(&want));
        let kt = probe_tensor(&[2, 12, 9], 5).transpose(1, 2);
        let want = libtorch_token_image_scores(&q, &kt, 3) / 2.0;
        assert!(token_image_scores(&q, &kt, 3, 2.0).equal(&want));
    }

    #[test]
    fn probes_are_remembered() {
        let mut calls = 0;
        let key = Probe::StackedLinear([-1, -2, -3, -4]);
        assert!(probed(key, || {
            calls += 1;
            true
        }));
        assert!(probed(key, || unreachable!("asked twice")));
        assert_eq!(calls, 1);
    }
}
