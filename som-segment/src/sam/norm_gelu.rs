//! The mask decoder's output upscaling after its convolutions — `LayerNorm2d` then GELU,
//! and the last GELU — with LibTorch's bits, in two passes over the pixels instead of
//! LibTorch's ten.
//!
//! The generator upscales the image keys of every prompt with a surviving mask: per
//! prompt a `(64, 128, 128)` feature map goes through upstream's `LayerNorm2d` (written
//! out as `mean`, `-`, `pow`, `mean`, `+`, `sqrt`, `/`, `*`, `+`) and GELU, and a
//! `(32, 256, 256)` one through GELU. Its tensors come out of the transposed convolutions
//! channels-last (channels adjacent in memory), and on such tensors LibTorch computes:
//!
//! - the channel mean as ATen's `vectorized_inner_sum` adds a row of `C` floats: 8-float
//!   vectors, vector `k` of each group of four into accumulator `k` in order from zero, the
//!   vectors after the last whole group into accumulator 0, then `((a₀ + a₁) + a₂) + a₃`,
//!   then its 8 lanes in order from zero; divided by `C`;
//! - the variance the same way from `(x − mean)²`, then `+ eps` in float32;
//! - GELU as its AVX-512 `vectorized_gelu` (`erf` by Abramowitz–Stegun 7.1.26 with fused
//!   multiply-adds and SLEEF's `expf_u10`, read from `libtorch_cpu.so`'s machine code:
//!   `y = x·√½`, `t = 1 / fma(|y|, p, 1)`, `r` by Horner's rule in fused multiply-adds,
//!   `erf = ±fma(−exp(−y²)·t, r, 1)`, result `(x·0.5)·(erf + 1)`). On a contiguous
//!   (not channels-last) tensor LibTorch hands GELU to oneDNN instead, with other bits.
//!
//! The square root stays LibTorch's (on the per-pixel `var + eps` only, a 64th of the
//! values): it is not correctly rounded on this LibTorch (one in a hundred values differs
//! from `f32::sqrt` by one ulp). Whether the kernels give LibTorch's bits is checked once
//! per process and channel count against LibTorch's own operations on a channels-last
//! probe ([`matches_libtorch`]); the generator's per-crop check covers the whole decoder.

use tch::{Device, Kind, Tensor};

use super::common::LayerNorm2d;
use super::products::{probe_tensor, probed, Probe};
use super::softmax::sleef_expf;
use crate::torch::floats::{floats, floats_mut};
use crate::torch::gemm::{has_avx2_fma, has_avx512};
use crate::torch::parallel::for_each_chunk_mut;

/// Floats per vector of the inner sum (ATen's AVX2 `Vectorized<float>`).
const LANES: usize = 8;

/// Accumulators of the inner sum (ATen's `ilp_factor`).
const ILP: usize = 4;

/// Pixels per piece of work handed to a thread.
const CHUNK_PIXELS: usize = 256;

/// `norm.forward(x).gelu("none")` for a `(S, C, H, W)` channels-last float32 tensor `x`,
/// with the kernels (module docs); `None` where they do not apply or a probe found them to
/// differ from LibTorch on this machine (the caller runs LibTorch's operations).
pub(crate) fn layer_norm2d_gelu(norm: &LayerNorm2d, x: &Tensor) -> Option<Tensor> {
    let shape = channels_last(x)?;
    let (weight, bias, eps) = norm.parts();
    let (s, c, h, w) = shape;
    if !applies(c) || weight.numel() != c || bias.numel() != c || !libtorch_vectorises_all(s * c * h * w) {
        return None;
    }
    let channels = c as i64;
    if !probed(Probe::LayerNorm2dGelu(channels, eps.to_bits()), || {
        matches_libtorch(channels, eps)
    }) {
        return None;
    }
    Some(norm_gelu(x, weight, bias, eps, shape))
}

/// `*x = x.gelu("none")` in place for a `(S, C, H, W)` channels-last float32 tensor, with
/// the kernel where a probe found it to give LibTorch's bits, else by LibTorch.
pub(crate) fn gelu(x: &mut Tensor) {
    if channels_last(x).is_some() && gelu_applies(x.numel() as i64) {
        gelu_unprobed(x);
    } else {
        *x = x.gelu("none");
    }
}

/// Whether [`gelu_value`] gives LibTorch's GELU of a channels-last tensor of `n` values on
/// this machine: LibTorch vectorises all of them and a probe found the emulation exact.
pub(super) fn gelu_applies(n: i64) -> bool {
    has_avx2_fma()
        && usize::try_from(n).is_ok_and(libtorch_vectorises_all)
        && probed(Probe::Gelu, matches_libtorch_gelu)
}

/// Whether LibTorch's elementwise GELU over `n` dense values runs its vectorised code on
/// every one: ATen's loop takes 32 values (two AVX-512 vectors) at a time and the values
/// left at the end of each thread's range one by one, with `std::erf` (other bits). The
/// ranges are ATen's `parallel_for` split of the `n` values (grain 32768) over LibTorch's
/// threads.
fn libtorch_vectorises_all(n: usize) -> bool {
    const STEP: usize = 32;
    const GRAIN: usize = 32_768;
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    if n < GRAIN || threads == 1 {
        return n.is_multiple_of(STEP);
    }
    let chunk = n.div_ceil(threads.min(n.div_ceil(GRAIN)));
    n.is_multiple_of(STEP) && chunk.is_multiple_of(STEP)
}

/// Whether the kernel handles `c` channels: a power of two from 8 to 256 (whole vectors,
/// fewer than 16 groups of four, so ATen's sum has no cascade levels, and the mean's
/// division exact as a multiplication).
fn applies(c: usize) -> bool {
    has_avx2_fma() && c.is_power_of_two() && (LANES..=256).contains(&c)
}

/// `(S, C, H, W)` of a float32 CPU tensor laid out channels-last without gaps.
fn channels_last(x: &Tensor) -> Option<(usize, usize, usize, usize)> {
    if x.kind() != Kind::Float || x.device() != Device::Cpu {
        return None;
    }
    let (s, c, h, w) = x.size4().ok()?;
    (x.stride() == [h * w * c, 1, w * c, c] && s > 0 && c > 0 && h > 0 && w > 0)
        .then_some((s as usize, c as usize, h as usize, w as usize))
}

/// [`layer_norm2d_gelu`] without its checks.
fn norm_gelu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    (s, c, h, w): (usize, usize, usize, usize),
) -> Tensor {
    let pixels = s * h * w;
    // SAFETY: `x` (channels-last, checked by `channels_last`: its S·C·H·W values one dense
    // block) outlives the slice and is only read while it lives.
    let input = unsafe { floats(x) };
    let weight = Vec::<f32>::try_from(&weight.contiguous().view([-1])).unwrap_or_default();
    let bias = Vec::<f32>::try_from(&bias.contiguous().view([-1])).unwrap_or_default();
    // Pass 1: each pixel's mean and `var + eps`.
    let mut stats = vec![[0.0f32; 2]; pixels];
    let eps = eps as f32;
    for_each_chunk_mut(&mut stats, CHUNK_PIXELS, |i, chunk| {
        // SAFETY: `applies` checked AVX2 and FMA.
        unsafe { moments(&input[i * CHUNK_PIXELS * c..], c, eps, chunk) }
    });
    // LibTorch's square root, as upstream computes it (module docs).
    let var_eps: Vec<f32> = stats.iter().map(|s| s[1]).collect();
    let den = Tensor::from_slice(&var_eps)
        .view([s as i64, 1, h as i64, w as i64])
        .sqrt();
    let den = Vec::<f32>::try_from(&den.view([-1])).unwrap_or_default();
    // Pass 2: normalise, scale, shift and GELU into a channels-last output.
    let out = Tensor::empty(
        [s as i64, h as i64, w as i64, c as i64],
        (Kind::Float, Device::Cpu),
    );
    // SAFETY: `out` was just allocated here, and nothing else refers to it.
    let out_data = unsafe { floats_mut(&out) };
    for_each_chunk_mut(out_data, CHUNK_PIXELS * c, |i, chunk| {
        let pixels = i * CHUNK_PIXELS..i * CHUNK_PIXELS + chunk.len() / c;
        let rows = Rows {
            input: &input[pixels.start * c..pixels.end * c],
            stats: &stats[pixels.clone()],
            den: &den[pixels],
            weight: &weight,
            bias: &bias,
        };
        Pass::Normalise(rows).run(chunk);
    });
    out.permute([0, 3, 1, 2])
}

/// Pass 2's inputs for a run of pixels.
#[derive(Clone, Copy)]
struct Rows<'a> {
    input: &'a [f32],
    stats: &'a [[f32; 2]],
    den: &'a [f32],
    weight: &'a [f32],
    bias: &'a [f32],
}

/// ATen's inner sum of one pixel's channels (module docs).
#[inline(always)]
fn inner_sum(x: &[f32]) -> f32 {
    let vectors = x.len() / LANES;
    let groups = vectors / ILP;
    let mut acc = [[0.0f32; LANES]; ILP];
    for g in 0..groups {
        for (k, acc) in acc.iter_mut().enumerate() {
            let v = &x[(g * ILP + k) * LANES..][..LANES];
            for (a, &v) in acc.iter_mut().zip(v) {
                *a += v;
            }
        }
    }
    for v in x[groups * ILP * LANES..].chunks_exact(LANES) {
        for (a, &v) in acc[0].iter_mut().zip(v) {
            *a += v;
        }
    }
    let mut partial = acc[0];
    for acc in &acc[1..] {
        for (p, &a) in partial.iter_mut().zip(acc) {
            *p += a;
        }
    }
    partial.iter().fold(0.0f32, |total, &p| total + p)
}

/// Pass 1 for the pixels of `out` (`[mean, var + eps]`), their `c` channels each from
/// `input` on.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn moments(input: &[f32], c: usize, eps: f32, out: &mut [[f32; 2]]) {
    let scale = 1.0 / c as f32;
    let mut squares = vec![0.0f32; c];
    for (pixel, stats) in input.chunks_exact(c).zip(out.iter_mut()) {
        let mean = inner_sum(pixel) * scale;
        for (sq, &x) in squares.iter_mut().zip(pixel) {
            let d = x - mean;
            *sq = d * d;
        }
        *stats = [mean, inner_sum(&squares) * scale + eps];
    }
}

/// Pass 2: `gelu(weight · ((x − mean) / den) + bias)` per channel of each pixel.
#[inline(always)]
fn normalise(rows: Rows, out: &mut [f32]) {
    let c = rows.weight.len();
    let pixels = rows.input.chunks_exact(c).zip(out.chunks_exact_mut(c));
    for ((pixel, out), (stats, &den)) in pixels.zip(rows.stats.iter().zip(rows.den)) {
        let mean = stats[0];
        for (((o, &x), &w), &b) in out.iter_mut().zip(pixel).zip(rows.weight).zip(rows.bias) {
            *o = gelu_value(w * ((x - mean) / den) + b);
        }
    }
}

/// GELU of every value of `x`, in place.
#[inline(always)]
fn gelu_values(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_value(*v);
    }
}

/// The elementwise passes compiled for AVX2 + FMA and for AVX-512 (16 values per
/// instruction where the CPU has it; each value's operations are the same either way).
#[derive(Clone, Copy)]
enum Pass<'a> {
    Normalise(Rows<'a>),
    Gelu,
}

impl Pass<'_> {
    fn run(self, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: every caller checked AVX2 and FMA (`has_avx2_fma`), and AVX-512F is
        // checked here.
        unsafe {
            if has_avx512() {
                self.run_avx512(out)
            } else {
                self.run_avx2(out)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.run_any(out)
    }

    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    unsafe fn run_avx2(self, out: &mut [f32]) {
        self.run_any(out)
    }

    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx2,fma"))]
    unsafe fn run_avx512(self, out: &mut [f32]) {
        self.run_any(out)
    }

    #[inline(always)]
    fn run_any(self, out: &mut [f32]) {
        match self {
            Pass::Normalise(rows) => normalise(rows, out),
            Pass::Gelu => gelu_values(out),
        }
    }
}

/// [`gelu`] by the kernel, without its checks.
fn gelu_unprobed(x: &mut Tensor) {
    // SAFETY: this function holds `x` mutably while the slice lives (callers checked, by
    // `channels_last`, that its values are one dense block).
    let data = unsafe { floats_mut(x) };
    for_each_chunk_mut(data, CHUNK_PIXELS * 64, |_, chunk| Pass::Gelu.run(chunk));
}

/// LibTorch's AVX-512 `vectorized_gelu` on one value (module docs).
#[inline(always)]
pub(super) fn gelu_value(x: f32) -> f32 {
    // The float32 constants of LibTorch's code, by their bits.
    let alpha = f32::from_bits(0x3f35_04f3); // 1/√2
    let p = f32::from_bits(0x3ea7_ba05); // 0.3275911
    let [p1, p2, p3, p4, p5] =
        [0x3e82_7906, 0xbe91_a98e, 0x3fb5_f0e3, 0xbfba_00e3, 0x3f87_dc22].map(f32::from_bits);
    let y = x * alpha;
    let t = 1.0 / y.abs().mul_add(p, 1.0);
    let r = t.mul_add(p5, p4);
    let r = t.mul_add(r, p3);
    let r = t.mul_add(r, p2);
    let r = t.mul_add(r, p1);
    let e = sleef_expf(-(y * y));
    let erf_abs = (t * -e).mul_add(r, 1.0);
    let erf = f32::from_bits(erf_abs.to_bits() ^ (y.to_bits() & 0x8000_0000));
    (x * 0.5) * (erf + 1.0)
}

/// Whether [`layer_norm2d_gelu`]'s kernels give LibTorch's `LayerNorm2d` + GELU for `c`
/// channels and `eps` on a channels-last probe of several magnitudes.
fn matches_libtorch(c: i64, eps: f64) -> bool {
    let x = channels_last_probe(c, 40);
    let weight = probe_tensor(&[c], 42) * 8.0;
    let bias = probe_tensor(&[c], 43);
    let want = LayerNorm2d::from_parts(&weight, &bias, eps)
        .forward(&x)
        .gelu("none");
    channels_last(&x).is_some_and(|shape| norm_gelu(&x, &weight, &bias, eps, shape).equal(&want))
}

/// Whether [`gelu_value`] gives LibTorch's GELU on a channels-last tensor over a wide range.
fn matches_libtorch_gelu() -> bool {
    let x = channels_last_probe(32, 44) * 16.0;
    let want = x.gelu("none");
    let mut got = x.copy();
    gelu_unprobed(&mut got);
    got.equal(&want)
}

/// A `(2, c, 12, 12)` channels-last probe whose pixels differ in offset and spread.
fn channels_last_probe(c: i64, seed: u64) -> Tensor {
    let values = probe_tensor(&[2, 12, 12, c], seed) * 8.0;
    let offsets = probe_tensor(&[2, 12, 12, 1], seed + 1) * 40.0;
    let spread = (probe_tensor(&[2, 12, 12, 1], seed + 2) * 4.0).exp();
    (values * spread + offsets).permute([0, 3, 1, 2])
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{gelu, layer_norm2d_gelu, probed, Probe};
    use crate::sam::common::LayerNorm2d;
    use crate::torch::gemm::has_avx2_fma;

    /// A `(s, c, h, w)` channels-last tensor (as the transposed convolutions write theirs):
    /// pixels of very different offsets and spreads.
    fn channels_last(s: i64, c: i64, h: i64, w: i64) -> Tensor {
        let opts = (Kind::Float, Device::Cpu);
        let spread = Tensor::logspace(-3.0, 2.0, s * h * w, 10.0, opts).view([s, h, w, 1]);
        let offset = Tensor::randn([s, h, w, 1], opts) * 30.0;
        (Tensor::randn([s, h, w, c], opts) * spread + offset).permute([0, 3, 1, 2])
    }

    #[test]
    fn the_kernels_give_libtorchs_bits() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(21);
        for c in [8i64, 32, 64, 128, 256] {
            // 4·9·11·c values: none left for LibTorch's scalar GELU (a multiple of 32 in
            // each thread's range).
            let x = channels_last(4, c, 9, 11);
            let norm = LayerNorm2d::from_parts(
                &Tensor::randn([c], (Kind::Float, Device::Cpu)),
                &Tensor::randn([c], (Kind::Float, Device::Cpu)),
                1e-6,
            );
            let want = norm.forward(&x).gelu("none");
            match layer_norm2d_gelu(&norm, &x) {
                Some(got) => {
                    assert!(
                        got.equal(&want),
                        "{c} channels: the values differ from LibTorch's"
                    );
                    assert_eq!(got.stride(), want.stride(), "{c} channels: not channels-last");
                }
                None => assert!(
                    !has_avx2_fma(),
                    "{c} channels: declined on a CPU with AVX2 and FMA"
                ),
            }
        }
        // GELU over its whole range, the special values and a tail of a few values.
        let mut values: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.01).collect();
        values.extend([
            0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 80.0, -80.0, 200.0, -200.0, 1e30, -1e30,
        ]);
        values.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
        ]);
        values.resize(values.len().next_multiple_of(32), 0.5);
        let n = values.len() as i64;
        let x = Tensor::from_slice(&values)
            .view([1, 1, n / 4, 4])
            .permute([0, 3, 1, 2]);
        let want = x.gelu("none");
        let mut got = x.copy();
        gelu(&mut got);
        let (got, want) = (
            Vec::<f32>::try_from(&got.permute([0, 2, 3, 1]).contiguous().view([-1])).unwrap(),
            Vec::<f32>::try_from(&want.permute([0, 2, 3, 1]).contiguous().view([-1])).unwrap(),
        );
        for ((g, w), x) in got.iter().zip(&want).zip(&values) {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "gelu({x:e}): {g:e} against LibTorch's {w:e}"
            );
        }
        if has_avx2_fma() {
            assert!(probed(Probe::Gelu, || false), "GELU went through LibTorch");
        }
    }

    #[test]
    fn other_layouts_and_shapes_are_declined() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(22);
        let norm = |c: i64| {
            LayerNorm2d::from_parts(
                &Tensor::ones([c], (Kind::Float, Device::Cpu)),
                &Tensor::zeros([c], (Kind::Float, Device::Cpu)),
                1e-6,
            )
        };
        let x = channels_last(2, 64, 5, 5);
        // LibTorch sums and takes GELU otherwise on a contiguous tensor.
        assert!(
            layer_norm2d_gelu(&norm(64), &x.contiguous()).is_none(),
            "contiguous"
        );
        assert!(
            layer_norm2d_gelu(&norm(64), &x.to_kind(Kind::Double)).is_none(),
            "float64"
        );
        assert!(
            layer_norm2d_gelu(&norm(32), &x).is_none(),
            "parameters of another width"
        );
        let odd = channels_last(2, 48, 5, 5);
        assert!(layer_norm2d_gelu(&norm(48), &odd).is_none(), "48 channels");
        let wide = channels_last(1, 512, 2, 2);
        assert!(layer_norm2d_gelu(&norm(512), &wide).is_none(), "512 channels");
        // 3·9·11·8 values: LibTorch's GELU takes the last 8 one by one, with other bits.
        let tail = channels_last(3, 8, 9, 11);
        assert!(layer_norm2d_gelu(&norm(8), &tail).is_none(), "a scalar tail");
        let mut got = tail.copy();
        gelu(&mut got);
        assert!(got.equal(&tail.gelu("none")), "GELU with a scalar tail");
        // GELU falls back to LibTorch's (and its values) where the kernel declines.
        let contiguous = x.contiguous() * 3.0;
        let mut got = contiguous.copy();
        gelu(&mut got);
        assert!(got.equal(&contiguous.gelu("none")));
    }
}
