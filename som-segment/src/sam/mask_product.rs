//! The decoder's last upscaling step and its mask product in one pass, with LibTorch's bits.
//!
//! Per surviving prompt upstream computes `up = gelu(conv_transpose2d(x))`, a
//! `(32, 4h, 4w)` map from the `(64, 2h, 2w)` one before it, and the masks `hyper_in @ up`,
//! four `(4h, 4w)` planes. LibTorch writes the map (4.7 MB per prompt on a 1280×720
//! photo), its GELU reads and rewrites it, and MKL reads it again for the product — three
//! trips through memory for an eighth of the data at the end. Here each group of 16 input
//! pixels of a row has its 4 × 16 output pixels' 32 channels computed in registers, put
//! through GELU and reduced to the four masks' values in the L1 cache: the map is never
//! written.
//!
//! The orders, each LibTorch's on channels-last inputs of the decoder's shapes (found by
//! emulating candidates on millions of values, and checked once per process and shape by a
//! probe against LibTorch's own operations, [`MaskProduct::masks`]):
//! - each convolution output is the bias plus the 64 input channels' products summed by
//!   fused multiply-adds in order from zero (oneDNN's `conv_transpose2d`; the same order as
//!   [`crate::torch::gemm::PackedLinear`] with one block);
//! - GELU is [`super::norm_gelu`]'s emulation of LibTorch's AVX-512 `vectorized_gelu`,
//!   which LibTorch runs on the map wherever [`super::norm_gelu::gelu`] takes its kernel;
//! - each mask value is the 32 channels' products summed by fused multiply-adds in order
//!   from zero (MKL's `bmm` of `(4, 32)` by the channels-last `(32, 4h·4w)`).
//!
//! The kernel needs AVX-512 (on other CPUs the caller runs LibTorch's operations).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_castpd_ps, _mm512_castps_pd, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_storeu_ps, _mm512_unpackhi_pd,
    _mm512_unpackhi_ps, _mm512_unpacklo_pd, _mm512_unpacklo_ps,
};

use tch::{Device, Kind, Tensor};

use super::mask_decoder::mask_logits;
use super::norm_gelu::{gelu_applies, gelu_value};
use super::products::{probe_tensor, probed, Probe};
use crate::torch::floats::{cpu_f32, floats, SharedOutput};
use crate::torch::gemm::has_avx512;
use crate::torch::nn::{conv_transpose2x2, ConvTranspose2d};
use crate::torch::parallel::for_each_index;

/// Input channels of the convolution (SAM's `transformer_dim / 4`).
const CIN: usize = 64;

/// Output channels of the convolution (`transformer_dim / 8`, the hypernetworks' width).
const COUT: usize = 32;

/// Input pixels per block: the lanes of an AVX-512 vector.
const LANES: usize = 16;

/// The last transposed convolution of the decoder's upscaling (`(64, 32, 2, 2)` weights),
/// packed for the fused kernel.
#[derive(Debug)]
pub(crate) struct MaskProduct {
    /// `weights[(2·dy + dx)·CIN + ci][co]` = `weight[ci][co][dy][dx]`.
    weights: Vec<[f32; COUT]>,
    /// Each output channel's bias.
    bias: [f32; COUT],
}

impl MaskProduct {
    /// `conv` packed, or `None` where the kernel does not apply: a CPU without AVX-512, or a
    /// convolution not of 64 to 32 float32 channels on the CPU.
    pub(crate) fn new(conv: &ConvTranspose2d) -> Option<Self> {
        let (weight, bias) = conv.parts();
        Self::from_parts(weight, bias)
    }

    /// [`Self::new`] for a `(64, 32, 2, 2)` weight and a `(32)` bias.
    fn from_parts(weight: &Tensor, bias: &Tensor) -> Option<Self> {
        if !has_avx512()
            || weight.size() != [CIN as i64, COUT as i64, 2, 2]
            || weight.kind() != Kind::Float
            || weight.device() != Device::Cpu
            || bias.kind() != Kind::Float
        {
            return None;
        }
        // (dy, dx, ci, co)
        let w = Vec::<f32>::try_from(&weight.permute([2, 3, 0, 1]).contiguous().view([-1])).ok()?;
        let b = Vec::<f32>::try_from(&bias.contiguous()).ok()?;
        Some(MaskProduct {
            weights: w
                .chunks_exact(COUT)
                .map(|c| c.try_into().expect("COUT floats"))
                .collect(),
            bias: b.try_into().ok()?,
        })
    }

    /// The masks `hyper @ gelu(conv_transpose2d(x))` of `(S, h, w, 64)` pixels (the
    /// channels-last memory of the first upscaling step's output after its norm and GELU)
    /// and `(S, K, 32)` hypernetwork outputs: `(S, K, 2h, 2w)`, contiguous, with the bits of
    /// upstream's three LibTorch operations (module docs) — where a probe found the
    /// kernel to give them for these shapes on this machine; `None` otherwise (and where the
    /// tensors are not contiguous float32 CPU tensors of those shapes), and the caller runs
    /// LibTorch's operations.
    pub(crate) fn masks(&self, pixels: &Tensor, hyper: &Tensor) -> Option<Tensor> {
        let (s, h, w, c) = pixels.size4().ok()?;
        let (hs, k, hc) = hyper.size3().ok()?;
        let fits = |t: &Tensor| cpu_f32(t) && t.is_contiguous();
        if c != CIN as i64 || hc != COUT as i64 || hs != s || !fits(pixels) || !fits(hyper) {
            return None;
        }
        // LibTorch's GELU on the (S, 32, 2h, 2w) map takes the path the kernel emulates.
        if !gelu_applies(s * COUT as i64 * 4 * h * w) {
            return None;
        }
        let exact = probed(Probe::MaskProduct([s, h, w, k]), || matches_libtorch(s, h, w, k));
        exact.then(|| self.masks_unprobed(pixels, hyper))
    }

    /// [`Self::masks`] without its checks (shapes as it requires).
    fn masks_unprobed(&self, pixels: &Tensor, hyper: &Tensor) -> Tensor {
        let (s, h, w, _) = pixels.size4().expect("checked by the caller");
        let k = hyper.size()[1];
        let out = Tensor::empty([s, k, 2 * h, 2 * w], (Kind::Float, Device::Cpu));
        let (s, h, w, k) = (s as usize, h as usize, w as usize, k as usize);
        // SAFETY: `pixels` and `hyper` (contiguous, of these sizes: checked by the caller)
        // outlive the slices and are only read while they live.
        let (x, hyper) = unsafe { (floats(pixels), floats(hyper)) };
        // SAFETY: `out` was just allocated here; only the lines below write it (each its
        // own rows) and nothing reads it meanwhile.
        let dest = unsafe { SharedOutput::new(&out) };
        let dims = Dims { h, w, k };
        for_each_index(s * h, &|line| {
            let (image, y) = (line / h, line % h);
            let x = &x[line * w * CIN..][..w * CIN];
            let hyper = &hyper[image * k * COUT..][..k * COUT];
            // SAFETY: the CPU has AVX-512F (`new`) and AVX2 and FMA (`gelu_applies`, which
            // every caller checked); `x` holds the line's w·CIN inputs and
            // `hyper` the image's k·COUT values; `dest` is `out`'s data, s·k·2h·2w floats,
            // of which this call writes only image `image`'s output rows 2y and 2y + 1 of
            // each mask — no other line writes them, and `out` outlives the calls.
            unsafe { self.line(x, hyper, dest.at(image * k * 4 * h * w), y, &dims) };
        });
        out
    }

    /// One input row `y` of pixels `x` (`w·CIN` floats) into output rows `2y` and `2y + 1`
    /// of each of the `k` masks whose planes start at `out`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX2 and FMA (`new` and `masks` checked them);
    /// `out` must be valid for writes of `k·4·h·w` floats
    /// and this call the only one writing those two rows of each plane.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn line(&self, x: &[f32], hyper: &[f32], out: *mut f32, y: usize, d: &Dims) {
        let (w, plane) = (d.w, 4 * d.h * d.w);
        // masks[m][dx][lane]: output pixel (2y + dy, 2(x0 + lane) + dx) of mask m.
        let mut masks = vec![[[0.0f32; LANES]; 2]; d.k];
        for x0 in (0..w).step_by(LANES) {
            let n = LANES.min(w - x0);
            // The block's inputs channel by channel: xt[ci][lane] (zeros past the row's end).
            let mut xt = [[0.0f32; LANES]; CIN];
            if n == LANES {
                for group in 0..CIN / LANES {
                    let rows: [__m512; LANES] = std::array::from_fn(|lane| {
                        _mm512_loadu_ps(x[(x0 + lane) * CIN + group * LANES..].as_ptr())
                    });
                    for (i, column) in transpose16(rows).iter().enumerate() {
                        _mm512_storeu_ps(xt[group * LANES + i].as_mut_ptr(), *column);
                    }
                }
            } else {
                for lane in 0..n {
                    let pixel = &x[(x0 + lane) * CIN..][..CIN];
                    for (ci, &v) in pixel.iter().enumerate() {
                        xt[ci][lane] = v;
                    }
                }
            }
            for dy in 0..2 {
                for dx in 0..2 {
                    let mut g = [[0.0f32; LANES]; COUT];
                    self.convolve(&xt, 2 * dy + dx, &mut g);
                    for v in g.as_flattened_mut() {
                        *v = gelu_value(*v);
                    }
                    for (m, mask) in masks.iter_mut().enumerate() {
                        mask[dx] = mix(&g, &hyper[m * COUT..][..COUT]);
                    }
                }
                for (m, mask) in masks.iter().enumerate() {
                    let row = out.add(m * plane + (2 * y + dy) * 2 * w + 2 * x0);
                    for (lane, (&left, &right)) in mask[0].iter().zip(&mask[1]).take(n).enumerate() {
                        *row.add(2 * lane) = left;
                        *row.add(2 * lane + 1) = right;
                    }
                }
            }
        }
    }

    /// Never called: `new` requires AVX-512, which only x86-64 has.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn line(&self, _: &[f32], _: &[f32], _: *mut f32, _: usize, _: &Dims) {
        unreachable!("MaskProduct::new refuses CPUs without AVX-512")
    }

    /// The convolution's outputs at offset `at = 2·dy + dx` for the 16 pixels of `xt`:
    /// `g[co][lane]`, the bias plus the products summed in order from zero.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn convolve(&self, xt: &[[f32; LANES]; CIN], at: usize, g: &mut [[f32; LANES]; COUT]) {
        let weights = &self.weights[at * CIN..][..CIN];
        for half in 0..COUT / LANES {
            let mut acc: [__m512; LANES] = [_mm512_setzero_ps(); LANES];
            for (xv, w) in xt.iter().zip(weights) {
                let xv = _mm512_loadu_ps(xv.as_ptr());
                let w = &w[half * LANES..][..LANES];
                for (acc, &w) in acc.iter_mut().zip(w) {
                    *acc = _mm512_fmadd_ps(xv, _mm512_set1_ps(w), *acc);
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                let co = half * LANES + j;
                _mm512_storeu_ps(
                    g[co].as_mut_ptr(),
                    _mm512_add_ps(_mm512_set1_ps(self.bias[co]), *acc),
                );
            }
        }
    }
}

/// Whether the kernel gives LibTorch's bits on probe tensors (weights included) of these
/// shapes.
fn matches_libtorch(s: i64, h: i64, w: i64, k: i64) -> bool {
    let weight = probe_tensor(&[CIN as i64, COUT as i64, 2, 2], 50);
    let bias = probe_tensor(&[COUT as i64], 53);
    let pixels = probe_tensor(&[s, h, w, CIN as i64], 51) * 8.0;
    let hyper = probe_tensor(&[s, k, COUT as i64], 52) * 8.0;
    MaskProduct::from_parts(&weight, &bias).is_some_and(|kernel| {
        kernel
            .masks_unprobed(&pixels, &hyper)
            .equal(&libtorch_masks(&pixels, &weight, &bias, &hyper))
    })
}

/// The masks of `(S, h, w, 64)` pixels by LibTorch's operations, as
/// `MaskDecoder::predict_masks` runs them on a channels-last map.
fn libtorch_masks(pixels: &Tensor, weight: &Tensor, bias: &Tensor, hyper: &Tensor) -> Tensor {
    let up = conv_transpose2x2(&pixels.permute([0, 3, 1, 2]), weight, bias).gelu("none");
    mask_logits(hyper, &up)
}

/// The 16 × 16 transpose of `r` (`out[j]` lane `i` = `r[i]` lane `j`): interleaved
/// pairs of floats, then of pairs, then of 128-bit quarters, twice.
///
/// # Safety
/// The CPU must have AVX-512F (the caller's target features must include it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn transpose16(r: [__m512; LANES]) -> [__m512; LANES] {
    // Plain loops (unrolled), no `array::from_fn`: its closures are compiled without the
    // caller's target features and are not always inlined into it.
    let mut t = [_mm512_setzero_ps(); LANES];
    for (i, t) in t.iter_mut().enumerate() {
        let (a, b) = (r[i & !1], r[i | 1]);
        *t = if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        };
    }
    let mut u = [_mm512_setzero_ps(); LANES];
    for (i, u) in u.iter_mut().enumerate() {
        // Within each group of four: (0, 2) low, (0, 2) high, (1, 3) low, (1, 3) high.
        let base = i & !3;
        let (a, b) = (t[base + (i & 3) / 2], t[base + (i & 3) / 2 + 2]);
        let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
        *u = _mm512_castpd_ps(if i % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        });
    }
    let mut v = [_mm512_setzero_ps(); LANES];
    for (i, v) in v.iter_mut().enumerate() {
        // Within each group of eight: quarters (0, 2) of i and i + 4, then (1, 3).
        let (base, j) = (i & !7, i & 7);
        let (a, b) = (u[base + (j & 3)], u[base + (j & 3) + 4]);
        *v = if j < 4 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        };
    }
    let mut out = [_mm512_setzero_ps(); LANES];
    for (i, out) in out.iter_mut().enumerate() {
        let (a, b) = (v[i & 7], v[(i & 7) + 8]);
        *out = if i < 8 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        };
    }
    out
}

/// One mask's values for a block's 16 pixels: `hyper`'s 32 weights times the channels
/// `g[co]`, summed by fused multiply-adds in order from zero.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mix(g: &[[f32; LANES]; COUT], hyper: &[f32]) -> [f32; LANES] {
    let mut acc = _mm512_setzero_ps();
    for (gv, &h) in g.iter().zip(hyper) {
        acc = _mm512_fmadd_ps(_mm512_set1_ps(h), _mm512_loadu_ps(gv.as_ptr()), acc);
    }
    let mut out = [0.0f32; LANES];
    _mm512_storeu_ps(out.as_mut_ptr(), acc);
    out
}

/// The shapes of one [`MaskProduct::masks`] call: input rows and pixels per row, masks.
struct Dims {
    h: usize,
    w: usize,
    k: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torch::Weights;

    /// A `(64, 32, 2, 2)` transposed convolution with probe weights of the decoder's scale.
    fn conv() -> ConvTranspose2d {
        let weights = Weights::from_tensors(vec![
            ("weight".to_string(), probe_tensor(&[64, 32, 2, 2], 61)),
            ("bias".to_string(), probe_tensor(&[32], 62)),
        ])
        .expect("float tensors");
        ConvTranspose2d::load(&weights.root("sam"), 64, 32).expect("the shapes asked for")
    }

    /// LibTorch's operations with `conv`'s parameters.
    fn libtorch(conv: &ConvTranspose2d, pixels: &Tensor, hyper: &Tensor) -> Tensor {
        let (weight, bias) = conv.parts();
        libtorch_masks(pixels, weight, bias, hyper)
    }

    /// On the generator's shapes (groups of 4 to 7 prompts; the maps of a landscape and of
    /// a portrait photo, whose rows end in a block of 8 pixels) the kernel must be taken
    /// where the CPU has AVX-512 and give LibTorch's bits.
    #[test]
    fn the_masks_are_libtorchs_bit_for_bit() {
        let _guard = tch::no_grad_guard();
        let conv = conv();
        let Some(kernel) = MaskProduct::new(&conv) else {
            assert!(!has_avx512(), "the kernel applies on AVX-512 CPUs");
            return;
        };
        for (s, h, w) in [(4, 72, 128), (7, 72, 128), (5, 128, 72), (4, 6, 40)] {
            let pixels = (probe_tensor(&[s, h, w, 64], 63) * 16.0).gelu("none");
            let hyper = probe_tensor(&[s, 4, 32], 64) * 8.0;
            let want = libtorch(&conv, &pixels, &hyper);
            let got = kernel.masks(&pixels, &hyper);
            assert!(got.is_some(), "{s} prompts, {h} x {w}: the kernel was refused");
            let differ = want
                .ne_tensor(&got.expect("checked"))
                .sum(Kind::Int64)
                .int64_value(&[]);
            assert_eq!(differ, 0, "{s} prompts, {h} x {w}: {differ} values differ");
        }
    }

    /// Inputs the kernel does not handle are declined (the caller runs LibTorch).
    #[test]
    fn other_inputs_are_declined() {
        let _guard = tch::no_grad_guard();
        let conv = conv();
        let Some(kernel) = MaskProduct::new(&conv) else {
            return;
        };
        let pixels = probe_tensor(&[4, 8, 32, 64], 65);
        let hyper = probe_tensor(&[4, 4, 32], 66);
        assert!(kernel.masks(&pixels, &hyper).is_some(), "the shapes it handles");
        let strided = probe_tensor(&[4, 8, 64, 64], 65).narrow(2, 0, 32);
        assert!(kernel.masks(&strided, &hyper).is_none(), "non-contiguous pixels");
        let wide = probe_tensor(&[4, 8, 32, 128], 65);
        assert!(kernel.masks(&wide, &hyper).is_none(), "128 channels");
        let other_batch = probe_tensor(&[5, 4, 32], 66);
        assert!(
            kernel.masks(&pixels, &other_batch).is_none(),
            "5 hypernetwork rows for 4 images"
        );
        let double = pixels.to_kind(Kind::Double);
        assert!(kernel.masks(&double, &hyper).is_none(), "float64");
        let weights = Weights::from_tensors(vec![
            ("weight".to_string(), probe_tensor(&[128, 32, 2, 2], 61)),
            ("bias".to_string(), probe_tensor(&[32], 62)),
        ])
        .expect("float tensors");
        let wide_conv = ConvTranspose2d::load(&weights.root("sam"), 128, 32).expect("the shapes asked for");
        assert!(
            MaskProduct::new(&wide_conv).is_none(),
            "a convolution of 128 input channels"
        );
    }

    /// The transpose puts lane `i` of row `j` at lane `j` of row `i`.
    #[test]
    fn the_transpose_transposes() {
        if !has_avx512() {
            return;
        }
        let m: Vec<[f32; LANES]> = (0..LANES)
            .map(|i| std::array::from_fn(|j| (i * LANES + j) as f32))
            .collect();
        #[target_feature(enable = "avx512f")]
        unsafe fn run(m: &[[f32; LANES]]) -> Vec<[f32; LANES]> {
            let rows: [__m512; LANES] = std::array::from_fn(|i| _mm512_loadu_ps(m[i].as_ptr()));
            transpose16(rows)
                .iter()
                .map(|r| {
                    let mut out = [0.0; LANES];
                    _mm512_storeu_ps(out.as_mut_ptr(), *r);
                    out
                })
                .collect()
        }
        // SAFETY: the CPU has AVX-512F (checked above).
        let t = unsafe { run(&m) };
        for i in 0..LANES {
            for j in 0..LANES {
                assert_eq!(t[i][j], m[j][i], "out[{i}][{j}]");
            }
        }
    }
}
