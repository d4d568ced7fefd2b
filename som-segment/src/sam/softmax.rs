//! The image → token attention's softmax over a handful of prompt tokens, with LibTorch's
//! bits and without its per-row overhead.
//!
//! In the mask decoder each of the 4096 image tokens attends to the 5–7 prompt tokens of its
//! prompt, per head: hundreds of thousands of 7-wide rows per prompt group. LibTorch's
//! last-dimension softmax (`_vec_softmax_lastdim` in ATen's `SoftMaxKernel.cpp`, float)
//! handles each row on its own, with partial vector loads and stores: a seventh of the
//! generator's time went there. Its arithmetic per row is simple and is what this file
//! repeats for many rows at once, each value computed by the same float32 operations in the
//! same order:
//!
//! 1. `m` = the row's maximum;
//! 2. `e_i = exp(x_i − m)` with SLEEF's `expf_u10` (the vectorised `exp` of ATen's CPU
//!    kernels, a fixed sequence of float32 fused multiply-adds);
//! 3. `s = ((e_0 + e_1) + e_2) + …`, left to right (ATen's `vec_reduce_all` on a row
//!    shorter than a vector);
//! 4. `r = 1 / s` and `y_i = e_i · r`.
//!
//! Step 3 holds for rows shorter than ATen's vector (8 floats with AVX2, 16 with AVX-512).
//! Whether the kernel really gives LibTorch's bits on this machine is checked once per
//! process for each row width against LibTorch's own softmax ([`matches_libtorch`]); the
//! generator also checks its whole decoder against the reference path on every crop.

use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

use crate::torch::floats::{floats, floats_mut};

/// Rows at most this wide may go through the kernel (those of a width it matches LibTorch
/// on, see [`matches_libtorch`]); wider ones go through LibTorch. ATen treats rows shorter
/// than its vector (8 floats with AVX2, 16 with AVX-512) as above, and longer ones with
/// partial sums per vector lane, which the kernel does not repeat.
pub(crate) const MAX_WIDTH: usize = 15;

/// Rows processed together (the lanes of the vectorised loops).
const LANES: usize = 16;

/// SLEEF's `expf_u10` (`xexpf` in `sleefsimdsp.c`): Cody–Waite reduction by ln 2 in two
/// parts, a degree-6 polynomial evaluated with fused multiply-adds, scaling by 2^q in two
/// steps, and the flush to 0 below −104 and to infinity above 100.
#[inline(always)]
pub(crate) fn sleef_expf(d: f32) -> f32 {
    // SLEEF's float32 constants, by their bits: ln 2 in two parts and the coefficients.
    const R_LN2: f32 = std::f32::consts::LOG2_E;
    let l2u = f32::from_bits(0x3f31_7200); // 0.693145751953125
    let l2l = f32::from_bits(0x35bf_be8e); // 1.4286068e-6

    // The flushes at the end decide every result for d outside [−104, 100], where
    // |q| < 151: bounding q first changes no result and lets the conversion vectorise
    // (Rust's saturating `as` does not).
    #[allow(clippy::manual_clamp)] // clamp keeps a NaN, which the conversion must not see
    let qf = (d * R_LN2).round_ties_even().max(-200.0).min(200.0);
    // SAFETY: qf is an integer within ±200 (max and min give the bound for a NaN).
    let q: i32 = unsafe { qf.to_int_unchecked() };
    let s = qf.mul_add(-l2u, d);
    let s = qf.mul_add(-l2l, s);
    let mut u = f32::from_bits(0x3950_2bda); // 1.9852762e-4
    for c in [
        0x3ab6_96c9, // 1.3930436e-3
        0x3c08_88a6, // 8.333361e-3
        0x3d2a_aa7a, // 4.1666485e-2
        0x3e2a_aaab, // 0.16666667
    ] {
        u = u.mul_add(s, f32::from_bits(c));
    }
    u = u.mul_add(s, 0.5);
    let u = 1.0 + (s * s).mul_add(u, s);
    let u = u * pow2i(q >> 1) * pow2i(q - (q >> 1));
    let u = if d < -104.0 { 0.0 } else { u };
    if 100.0 < d {
        f32::INFINITY
    } else {
        u
    }
}

/// 2^q for q in float32's normal exponent range, from its bits.
#[inline(always)]
fn pow2i(q: i32) -> f32 {
    f32::from_bits(((q + 0x7f) as u32) << 23)
}

/// Softmax of `rows` rows of `width` values each, `x · scale` first (`scale` a power of two,
/// so the product is the quotient LibTorch's division by its inverse gives).
#[inline(always)]
fn softmax_rows_any(x: &[f32], out: &mut [f32], width: usize, scale: f32) {
    let rows = x.len() / width;
    let mut block = 0;
    while block < rows {
        let n = LANES.min(rows - block);
        let mut v = [[0.0f32; LANES]; MAX_WIDTH];
        for l in 0..n {
            let row = &x[(block + l) * width..(block + l + 1) * width];
            for (i, &value) in row.iter().enumerate() {
                v[i][l] = value * scale;
            }
        }
        let mut m = v[0];
        for vi in &v[1..width] {
            for l in 0..LANES {
                m[l] = if vi[l] > m[l] { vi[l] } else { m[l] };
            }
        }
        let mut sum = [0.0f32; LANES];
        for (i, vi) in v[..width].iter_mut().enumerate() {
            for l in 0..LANES {
                let e = sleef_expf(vi[l] - m[l]);
                vi[l] = e;
                sum[l] = if i == 0 { e } else { sum[l] + e };
            }
        }
        let mut r = [0.0f32; LANES];
        for l in 0..LANES {
            r[l] = 1.0 / sum[l];
        }
        for l in 0..n {
            let row = &mut out[(block + l) * width..(block + l + 1) * width];
            for (i, o) in row.iter_mut().enumerate() {
                *o = v[i][l] * r[l];
            }
        }
        block += n;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(x: &[f32], out: &mut [f32], width: usize, scale: f32) {
    softmax_rows_any(x, out, width, scale);
}

/// [`softmax_rows_any`] on the best instructions the CPU has (the same values on any).
pub(super) fn softmax_rows(x: &[f32], out: &mut [f32], width: usize, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::torch::gemm::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above), the target-feature
            // function's only requirement.
            unsafe { softmax_rows_avx2(x, out, width, scale) };
            return;
        }
    }
    softmax_rows_any(x, out, width, scale);
}

/// `(x / divisor).softmax(-1)` by LibTorch's operations, as the reference's attention
/// computes it: what the kernel must equal.
pub(crate) fn libtorch_scaled_softmax(x: &Tensor, divisor: f64) -> Tensor {
    (x / divisor).softmax(-1, None::<Kind>)
}

/// The factor the kernel multiplies by for `(x / divisor).softmax(-1)` on float32 rows of
/// `width` values, when the kernel gives LibTorch's bits there: `divisor` a power of two
/// and `width` one [`matches_libtorch`] accepts.
pub(crate) fn kernel_scale(width: usize, divisor: f64) -> Option<f32> {
    exact_inverse(divisor).filter(|_| matches_libtorch(width))
}

/// `1 / divisor` when `divisor` is a power of two whose inverse float32 holds (a normal
/// number): then `x · (1 / divisor)` is `x / divisor` exactly (the same real number,
/// rounded once), so a kernel can scale as it writes.
pub(crate) fn exact_inverse(divisor: f64) -> Option<f32> {
    let inverse = (1.0 / divisor) as f32;
    (divisor > 0.0 && divisor.log2().fract() == 0.0 && inverse.is_normal()).then_some(inverse)
}

/// The kernel on a tensor (made contiguous).
fn kernel(x: &Tensor, width: usize, scale: f32) -> Tensor {
    let x = x.contiguous();
    let out = Tensor::empty(x.size(), (Kind::Float, Device::Cpu));
    // SAFETY: `x` (a contiguous copy) outlives the slice and is only read; `out` was just
    // allocated here with the same size and layout, and nothing else refers to its memory
    // while the slice lives.
    let (input, output) = unsafe { (floats(&x), floats_mut(&out)) };
    softmax_rows(input, output, width, scale);
    out
}

/// Whether the kernel gives LibTorch's softmax bit for bit on rows of `width` values on this
/// machine and LibTorch build: checked once per process for every width up to
/// [`MAX_WIDTH`], on 4099 rows of [`probe_values`] divided by 4; `false` for other widths.
pub(crate) fn matches_libtorch(width: usize) -> bool {
    static MATCHES: OnceLock<Vec<bool>> = OnceLock::new();
    let matches = MATCHES.get_or_init(|| {
        let _guard = tch::no_grad_guard();
        (0..=MAX_WIDTH)
            .map(|width| {
                let rows = 4099;
                let values = probe_values(rows * width);
                let x = Tensor::from_slice(&values).view([rows as i64, width as i64]);
                width > 0 && libtorch_scaled_softmax(&x, 4.0).equal(&kernel(&x, width, 0.25))
            })
            .collect()
    });
    matches.get(width).copied().unwrap_or(false)
}

/// Deterministic probe values: spread like attention logits (±12, as the upscaling probe's),
/// every 17th far out (±800, so that after a division by 4 some `exp` arguments fall below
/// −104, where SLEEF flushes to 0).
pub(super) fn probe_values(n: usize) -> Vec<f32> {
    let mut values = super::upscale::probe_values(n, 7);
    for v in values.iter_mut().step_by(17) {
        *v *= 1600.0 / 24.0;
    }
    values
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::{kernel, kernel_scale, libtorch_scaled_softmax, matches_libtorch, probe_values, MAX_WIDTH};

    /// [`libtorch_scaled_softmax`] by the kernel where [`kernel_scale`] allows it (as the
    /// decoder's callers use it), by LibTorch otherwise.
    fn scaled_softmax(x: &Tensor, divisor: f64) -> Tensor {
        let width = x.size().last().copied().unwrap_or(0) as usize;
        match kernel_scale(width, divisor) {
            Some(scale) if x.kind() == Kind::Float => kernel(x, width, scale),
            _ => libtorch_scaled_softmax(x, divisor),
        }
    }

    /// The kernel's whole point: LibTorch's bits. On a machine where they differ the
    /// generator falls back to LibTorch, but the machines we build on must take the kernel.
    #[test]
    fn the_kernel_gives_libtorchs_softmax_bit_for_bit() {
        // Rows shorter than 8 floats (the mask decoder's have 5 to 7) are shorter than ATen's
        // vector on every x86 build.
        for width in 1..8 {
            assert!(
                matches_libtorch(width),
                "the probe found a difference at width {width}"
            );
        }
        assert!(!matches_libtorch(0) && !matches_libtorch(MAX_WIDTH + 1));
        let _guard = tch::no_grad_guard();
        for width in [1, 5, 7, 15, 16] {
            let values = probe_values(30_011 * width);
            // Values as the decoder's attention produces them: (B, heads, tokens, width).
            let x = Tensor::from_slice(&values).view([1, 1, -1, width as i64]) * 3.0;
            for divisor in [1.0, 4.0, 8.0] {
                let want = libtorch_scaled_softmax(&x, divisor);
                let got = scaled_softmax(&x, divisor);
                let differ = want.ne_tensor(&got).sum(Kind::Int64).int64_value(&[]);
                assert_eq!(
                    differ, 0,
                    "width {width}, divisor {divisor}: {differ} values differ"
                );
            }
        }
    }

    #[test]
    fn exp_flushes_and_rows_of_equal_values() {
        let x = Tensor::from_slice(&[0.0f32, -150.0, 150.0, -1e30, 3.0, 3.0, 3.0, 3.0]).view([2, 4]);
        let got = kernel(&x, 4, 1.0);
        let want = x.softmax(-1, None::<Kind>);
        assert!(got.equal(&want), "{got:?} vs {want:?}");
        let rows: Vec<f32> = Vec::try_from(got.flatten(0, -1)).unwrap();
        assert_eq!(&rows[..4], &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(&rows[4..], &[0.25; 4]);
    }

    #[test]
    fn the_kernel_refuses_other_inputs() {
        assert_eq!(kernel_scale(7, 4.0), Some(0.25));
        assert_eq!(kernel_scale(7, 3.0), None, "divisor 3 is not a power of two");
        assert_eq!(kernel_scale(7, -4.0), None);
        assert_eq!(
            kernel_scale(MAX_WIDTH + 1, 4.0),
            None,
            "rows wider than the kernel's"
        );
        assert_eq!(kernel_scale(0, 4.0), None);
    }
}
