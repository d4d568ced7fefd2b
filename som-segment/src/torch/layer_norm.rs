//! LayerNorm over the last dimension with LibTorch's bits, for rows a kernel has just
//! written (so a normalisation can ride along with the layer before it).
//!
//! LibTorch's CPU LayerNorm on float32 (`LayerNormKernelImplInternal` in ATen's
//! `layer_norm_kernel.cpp`; this LibTorch has no AVX-512 build of it, so its AVX2 code runs
//! on every CPU with AVX2) computes each row's moments with `RowwiseMoments`
//! (`moments_utils.h`): Welford's algorithm per lane of 8-float vectors over chunks of 16
//! vectors, the chunks merged on a small stack, then the 8 lanes merged one by one. The
//! floating-point operations below are those of LibTorch 2.13's compiled code as read from
//! its machine code (`objdump` of `libtorch_cpu.so`), where the compiler fused some
//! multiplications into the additions after them and regrouped one sum:
//!
//! 1. per chunk, for each vector `x` (the `j`-th of the chunk): `d = x − m1`,
//!    `m1 = fma(d, 1/(j+1), m1)`, `m2 = fma(d, x − m1, m2)`, from `m1 = m2 = 0`;
//! 2. a chunk of `k` vectors joins stack level 0 holding `m0` vectors, and a level joins
//!    the next, as `n = m0 + k`, `c = k / n`, `δ = m1ₖ − m1`, `m1 += c·δ`,
//!    `m2 = fma(m0·δ, c·δ, m2ₖ + m2)` (each product rounded) — the levels as a binary
//!    counter over the chunks, one level while there are at most two chunks;
//! 3. the 8 lanes, each holding `n` values, join a running total in lane order: `c = n /
//!    (m0 + n)`, `δ = m1ᵢ − m1`, `m1 = fma(δ, c, m1)`, `m2 = fma(δ·δ·c, m0, m2ᵢ) + m2`;
//! 4. `var = m2 / N`, `rstd = 1 / sqrt(var + eps)` in float32;
//! 5. `y = fma((x + (−mean))·rstd, γ, β)`.
//!
//! The kernel takes rows whose width is a multiple of 8 (no scalar tail). Whether it
//! gives LibTorch's bits on this machine is checked once per process and width against
//! LibTorch's own `layer_norm` ([`RowNorm::matches_libtorch`]) before any caller uses it.

use tch::Tensor;

use super::floats::cpu_f32;
use super::gemm::has_avx2_fma;

/// Floats per vector of LibTorch's AVX2 code.
const LANES: usize = 8;

/// Vectors per Welford chunk (`kChunkSize`).
const CHUNK: usize = 16;

/// Levels of the chunk stack the kernel keeps: rows of up to 2^MAX_DEPTH chunks
/// (32768 floats).
const MAX_DEPTH: usize = 8;

/// A LayerNorm's parameters prepared for the kernel.
#[derive(Debug)]
pub(crate) struct RowNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl RowNorm {
    /// The LayerNorm of `weight` (γ) and `bias` (β) over rows of their width with `eps`, or
    /// `None` where the kernel does not apply: a CPU without AVX2 and FMA, parameters not
    /// float32 vectors on the CPU, of different lengths, or of a width not a multiple of 8
    /// or above 32768.
    pub(crate) fn new(weight: &Tensor, bias: &Tensor, eps: f64) -> Option<Self> {
        if !has_avx2_fma() {
            return None;
        }
        let vector = |t: &Tensor| cpu_f32(t) && t.dim() == 1;
        if !(vector(weight) && vector(bias)) || weight.size() != bias.size() {
            return None;
        }
        let gamma = Vec::<f32>::try_from(&weight.contiguous()).ok()?;
        let beta = Vec::<f32>::try_from(&bias.contiguous()).ok()?;
        let chunks = (gamma.len() / LANES).div_ceil(CHUNK);
        if gamma.is_empty() || !gamma.len().is_multiple_of(LANES) || ceil_log2(chunks) > MAX_DEPTH {
            return None;
        }
        Some(RowNorm {
            gamma,
            beta,
            eps: eps as f32,
        })
    }

    /// The row width.
    pub(crate) fn width(&self) -> usize {
        self.gamma.len()
    }

    /// Normalises each row of `data` (whole rows of [`Self::width`] floats) in place.
    pub(crate) fn rows(&self, data: &mut [f32]) {
        debug_assert!(data.len().is_multiple_of(self.width()));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` returns a RowNorm only on a CPU with AVX2 and FMA, the kernel's only
        // requirement, and only for widths that are multiples of 8 with at most MAX_DEPTH
        // stack levels, the shapes it handles.
        unsafe {
            kernel::rows(self, data)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("RowNorm::new refuses CPUs without AVX2 and FMA")
    }

    /// Whether [`Self::rows`] gives LibTorch's `layer_norm` bits for rows of this width on
    /// this machine (rows of several magnitudes and offsets).
    pub(crate) fn matches_libtorch(&self) -> bool {
        let n = self.width() as i64;
        let x = probe_rows(67, n);
        let gamma = Tensor::from_slice(&self.gamma);
        let beta = Tensor::from_slice(&self.beta);
        let want = x.layer_norm([n], Some(&gamma), Some(&beta), f64::from(self.eps), false);
        let Ok(mut got) = Vec::<f32>::try_from(&x.view([-1])) else {
            return false;
        };
        self.rows(&mut got);
        Vec::<f32>::try_from(&want.view([-1]))
            .is_ok_and(|want| want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()))
    }
}

/// `rows` rows of `n` deterministic values, their spread, offset and magnitude varying by
/// row.
fn probe_rows(rows: i64, n: i64) -> Tensor {
    let values: Vec<f32> = (0..rows * n)
        .map(|i| {
            let (row, col) = ((i / n) as f32, (i % n) as f32);
            let wave = ((col * 0.37 + row * 1.3).sin() * 43_758.547).fract();
            let scale = 2f32.powi((row as i32 % 9) - 4);
            ((wave * 2.0 - 1.0) + (row * 0.71).sin() * 3.0) * scale
        })
        .collect();
    Tensor::from_slice(&values).view([rows, n])
}

/// ATen's `CeilLog2` (1 for 0–2).
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps,
    };

    use super::{ceil_log2, RowNorm, CHUNK, LANES, MAX_DEPTH};

    /// Rows normalised together (independent dependency chains for the CPU to overlap).
    const ROWS: usize = 4;

    /// [`RowNorm::rows`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `norm` must be as `RowNorm::new` makes them (a width
    /// that is a multiple of LANES, at most MAX_DEPTH levels) and `data` whole rows.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows(norm: &RowNorm, data: &mut [f32]) {
        let n = norm.width();
        let mut groups = data.chunks_exact_mut(ROWS * n);
        for group in &mut groups {
            normalise::<ROWS>(norm, group);
        }
        for row in groups.into_remainder().chunks_exact_mut(n) {
            normalise::<1>(norm, row);
        }
    }

    /// `R` rows at once: their operations interleaved, each row's in LibTorch's order
    /// (module docs).
    #[inline(always)]
    unsafe fn normalise<const R: usize>(norm: &RowNorm, rows: &mut [f32]) {
        let n = norm.width();
        let vectors = n / LANES;
        let chunks = vectors.div_ceil(CHUNK);
        let depth = ceil_log2(chunks);
        let zero = Level::zero();
        let mut stack = [[zero; R]; MAX_DEPTH];
        for chunk in 0..chunks {
            let first = chunk * CHUNK;
            let count = CHUNK.min(vectors - first);
            let mut m1 = [zero.m1; R];
            let mut m2 = [zero.m2; R];
            for j in 0..count {
                let c = _mm256_set1_ps(1.0 / (j + 1) as f32);
                for r in 0..R {
                    let x = _mm256_loadu_ps(rows.as_ptr().add(r * n + (first + j) * LANES));
                    let d = _mm256_sub_ps(x, m1[r]);
                    m1[r] = _mm256_fmadd_ps(d, c, m1[r]);
                    m2[r] = _mm256_fmadd_ps(d, _mm256_sub_ps(x, m1[r]), m2[r]);
                }
            }
            for ((level, &m1), &m2) in stack[0].iter_mut().zip(&m1).zip(&m2) {
                level.join(&Level { m0: count, m1, m2 });
            }
            // Chunk `chunk + 1` completes a pair at each level whose bit it has cleared.
            let mut mask = chunk + 1;
            let mut j = 1;
            while j < depth && mask & 1 == 0 {
                let (lower, upper) = stack.split_at_mut(j);
                for (below, level) in lower[j - 1].iter_mut().zip(upper[0].iter_mut()) {
                    level.join(&std::mem::replace(below, zero));
                }
                mask >>= 1;
                j += 1;
            }
        }
        let (bottom, upper) = stack.split_at_mut(1);
        for levels in &upper[..depth - 1] {
            for (total, level) in bottom[0].iter_mut().zip(levels) {
                total.join(level);
            }
        }
        for (r, total) in bottom[0].iter().enumerate() {
            let (mut lanes1, mut lanes2) = ([0.0f32; LANES], [0.0f32; LANES]);
            _mm256_storeu_ps(lanes1.as_mut_ptr(), total.m1);
            _mm256_storeu_ps(lanes2.as_mut_ptr(), total.m2);
            let (mut m0, mut mean, mut m2) = (0usize, 0.0f32, 0.0f32);
            for (&l1, &l2) in lanes1.iter().zip(&lanes2) {
                let total = m0 + vectors;
                let c = vectors as f32 / total as f32;
                let delta = l1 - mean;
                mean = delta.mul_add(c, mean);
                // LibTorch adds the running total last: the same sum either way round.
                m2 += (delta * delta * c).mul_add(m0 as f32, l2);
                m0 = total;
            }
            let rstd = 1.0 / (m2 / n as f32 + norm.eps).sqrt();
            let (neg_mean, rstd) = (_mm256_set1_ps(-mean), _mm256_set1_ps(rstd));
            for v in 0..vectors {
                let at = rows.as_mut_ptr().add(r * n + v * LANES);
                let centred = _mm256_add_ps(_mm256_loadu_ps(at), neg_mean);
                let y = _mm256_fmadd_ps(
                    _mm256_mul_ps(centred, rstd),
                    _mm256_loadu_ps(norm.gamma.as_ptr().add(v * LANES)),
                    _mm256_loadu_ps(norm.beta.as_ptr().add(v * LANES)),
                );
                _mm256_storeu_ps(at, y);
            }
        }
    }

    /// One level of the moments stack: `m0` vectors' per-lane mean `m1` and sum of squared
    /// deviations `m2`.
    #[derive(Clone, Copy)]
    struct Level {
        m0: usize,
        m1: __m256,
        m2: __m256,
    }

    impl Level {
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: only built inside the AVX2 kernel (setzero needs AVX).
            let z = unsafe { _mm256_setzero_ps() };
            Level { m0: 0, m1: z, m2: z }
        }

        /// `AddMomentsVec(add.m0, add.m1, add.m2, self…)` as LibTorch's compiled code runs
        /// it: `m2 = fma(m0·δ, c·δ, add.m2 + m2)`.
        #[inline(always)]
        fn join(&mut self, add: &Level) {
            let total = self.m0 + add.m0;
            let c = if total == 0 {
                0.0
            } else {
                add.m0 as f32 / total as f32
            };
            // SAFETY: only reached from the AVX2 + FMA kernel.
            unsafe {
                let delta = _mm256_sub_ps(add.m1, self.m1);
                let sum2 = _mm256_add_ps(add.m2, self.m2);
                let c_delta = _mm256_mul_ps(_mm256_set1_ps(c), delta);
                self.m1 = _mm256_add_ps(self.m1, c_delta);
                let m0_delta = _mm256_mul_ps(_mm256_set1_ps(self.m0 as f32), delta);
                self.m2 = _mm256_fmadd_ps(m0_delta, c_delta, sum2);
            }
            self.m0 = total;
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{has_avx2_fma, probe_rows, RowNorm};

    /// LibTorch's `layer_norm` and the kernel on the same rows, bit for bit.
    fn agrees(norm: &RowNorm, weight: &Tensor, bias: &Tensor, x: &Tensor, eps: f64) -> bool {
        let n = norm.width() as i64;
        let want = x.layer_norm([n], Some(weight), Some(bias), eps, false);
        let mut got = Vec::<f32>::try_from(&x.contiguous().view([-1])).unwrap();
        norm.rows(&mut got);
        let want = Vec::<f32>::try_from(&want.contiguous().view([-1])).unwrap();
        want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    #[test]
    fn the_kernel_gives_libtorchs_bits() {
        tch::manual_seed(11);
        // One chunk of 8-float vectors, part of one, two (one stack level), three and more
        // (the binary stack), as LibTorch splits a row.
        for n in [8i64, 64, 128, 136, 256, 264, 520, 1024, 2056, 4104] {
            let weight = Tensor::randn([n], (Kind::Float, Device::Cpu));
            let bias = Tensor::randn([n], (Kind::Float, Device::Cpu));
            for eps in [1e-5, 1e-6] {
                let Some(norm) = RowNorm::new(&weight, &bias, eps) else {
                    assert!(!has_avx2_fma(), "width {n} refused on a CPU with AVX2 and FMA");
                    return;
                };
                // Rows of 1-3 (the kernel's remainder) and of whole groups, at offsets and
                // scales far from a standard normal.
                for rows in [1i64, 3, 4, 37] {
                    let x = Tensor::randn([rows, n], (Kind::Float, Device::Cpu))
                        * Tensor::logspace(-3.0, 3.0, rows, 10.0, (Kind::Float, Device::Cpu)).unsqueeze(1)
                        + Tensor::randn([rows, 1], (Kind::Float, Device::Cpu)) * 50.0;
                    assert!(
                        agrees(&norm, &weight, &bias, &x, eps),
                        "width {n}, {rows} rows, eps {eps}: the kernel's bits differ from LibTorch's \
                         (its order is read from libtorch_cpu.so's machine code, see the module docs)"
                    );
                }
                assert!(agrees(&norm, &weight, &bias, &probe_rows(67, n), eps));
                assert!(norm.matches_libtorch(), "width {n}");
            }
        }
    }

    #[test]
    fn a_changed_order_is_caught() {
        // The probe and the test compare bits: a kernel that merged the lanes in reverse
        // would differ somewhere. Emulate that by normalising rows with mirrored lanes.
        let n = 256i64;
        let weight = Tensor::ones([n], (Kind::Float, Device::Cpu));
        let bias = Tensor::zeros([n], (Kind::Float, Device::Cpu));
        let Some(norm) = RowNorm::new(&weight, &bias, 1e-5) else {
            assert!(!has_avx2_fma());
            return;
        };
        let x = probe_rows(67, n);
        let mirrored = x.view([67, n / 8, 8]).flip([2]).contiguous().view([67, n]);
        let want = x
            .layer_norm([n], Some(&weight), Some(&bias), 1e-5, false)
            .view([67, n / 8, 8]);
        let mut got = Vec::<f32>::try_from(&mirrored.view([-1])).unwrap();
        norm.rows(&mut got);
        let got = Tensor::from_slice(&got).view([67, n / 8, 8]).flip([2]);
        assert!(
            !got.equal(&want),
            "mirrored lanes gave the same bits: the test cannot see the order"
        );
        assert!(
            got.allclose(&want, 1e-5, 1e-5, false),
            "the same LayerNorm up to rounding"
        );
    }

    #[test]
    fn other_parameters_are_refused() {
        let f = |n: i64, kind: Kind| Tensor::ones([n], (kind, Device::Cpu));
        assert!(RowNorm::new(&f(12, Kind::Float), &f(12, Kind::Float), 1e-5).is_none());
        assert!(RowNorm::new(&f(16, Kind::Double), &f(16, Kind::Double), 1e-5).is_none());
        assert!(RowNorm::new(&f(16, Kind::Float), &f(24, Kind::Float), 1e-5).is_none());
        assert!(RowNorm::new(&f(0, Kind::Float), &f(0, Kind::Float), 1e-5).is_none());
        let square = Tensor::ones([16, 16], (Kind::Float, Device::Cpu));
        assert!(RowNorm::new(&square, &square, 1e-5).is_none());
        // Rows of more than 2^8 chunks of 16 vectors.
        let wide = 8 * 16 * 257;
        assert!(RowNorm::new(&f(wide, Kind::Float), &f(wide, Kind::Float), 1e-5).is_none());
    }
}
