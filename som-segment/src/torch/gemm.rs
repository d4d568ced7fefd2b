//! Linear layers with LibTorch's bits, computed by our own kernel so that the additions
//! around them ride along.
//!
//! LibTorch's CPU linear layer on float32 (`addmm` into MKL's `sgemm`, the bias copied into
//! the output first) computes each output, on the shapes of SAM's mask decoder, as the
//! bias, plus the products of the first 128 inputs summed by fused multiply-adds in order
//! from zero, plus those of the next 128 summed the same way, and so on: found by comparing
//! with LibTorch on (16384, 256) × (256, 128), (256, 256) and (128, 256), where every one of
//! millions of outputs agreed. MKL is free to change that order with the shape, the
//! thread count or the CPU, so the callers use [`PackedLinear`] only for shapes a
//! once-per-process probe finds identical to LibTorch's (`sam::products::probed`).
//!
//! The kernel packs the weights once, reads the inputs where they are (MKL packs both
//! operands on every call) and writes the bias with the first sums (LibTorch writes it in a
//! separate pass), and it fuses the additions next to the layer with the same roundings as
//! LibTorch's separate operations: `(x + x_add) W + b` (each input rounded to float32 before
//! its product) and `residual + (x W + b)`. Its rows are spread over LibTorch's threads
//! ([`super::parallel`]). On this machine's two Zen 4 cores, in alternating runs of 40:
//! 6.0–8.0 ms for a (16384, 256) × (256, 128) product where LibTorch takes 7.9–14.9 ms,
//! 11.2–12.0 ms for (256, 256) against 13.9–16.1 ms, 6.0–6.6 ms for (128, 256) against
//! 7.4–8.3 ms. (An AVX-512 version of the kernel was no faster on these cores.)

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

use tch::{Device, Kind, Tensor};

use super::parallel::for_each_chunk_mut;

/// Output columns per packed panel: two 8-float vectors.
const PANEL: usize = 16;

/// Inputs per partial sum (MKL's block on these shapes).
const BLOCK: usize = 128;

/// Rows computed together (12 accumulators of the 16 vector registers).
const TILE: usize = 6;

/// Rows per piece of work handed to a thread.
const CHUNK_ROWS: usize = 8 * TILE;

/// A `(out, in)` float32 linear layer with a bias, its weights packed for the kernel.
#[derive(Debug)]
pub(crate) struct PackedLinear {
    /// `panels[p][k][j]` = `weight[p·PANEL + j][k]`.
    panels: Vec<f32>,
    bias: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
}

impl PackedLinear {
    /// The layer of `weight` and `bias` packed, or `None` where the kernel does not apply:
    /// a CPU without AVX2 and FMA, weights not float32 on the CPU, no bias, an output width
    /// not a multiple of 16 or an input width not a multiple of 128.
    pub(crate) fn new(weight: &Tensor, bias: Option<&Tensor>) -> Option<Self> {
        if !has_avx2_fma() {
            return None;
        }
        let bias = bias?;
        let (out_dim, in_dim) = weight.size2().ok()?;
        let (out_dim, in_dim) = (usize::try_from(out_dim).ok()?, usize::try_from(in_dim).ok()?);
        let cpu_f32 = |t: &Tensor| t.kind() == Kind::Float && t.device() == Device::Cpu;
        if !(cpu_f32(weight) && cpu_f32(bias))
            || bias.size() != [out_dim as i64]
            || out_dim == 0
            || in_dim == 0
            || out_dim % PANEL != 0
            || in_dim % BLOCK != 0
        {
            return None;
        }
        let w = Vec::<f32>::try_from(&weight.contiguous().view([-1])).ok()?;
        let bias = Vec::<f32>::try_from(&bias.contiguous()).ok()?;
        let mut panels = vec![0.0f32; out_dim * in_dim];
        for (p, panel) in panels.chunks_mut(in_dim * PANEL).enumerate() {
            for (k, row) in panel.chunks_mut(PANEL).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = w[(p * PANEL + j) * in_dim + k];
                }
            }
        }
        Some(PackedLinear {
            panels,
            bias,
            in_dim,
            out_dim,
        })
    }

    /// The output width.
    pub(crate) fn out_dim(&self) -> i64 {
        self.out_dim as i64
    }

    /// `residual + ((x + x_add) Wᵀ + b)` for `(B, M, in)` inputs `x`, with the optional
    /// `(1 or B, M, in)` `x_add` and `(1 or B, M, out)` `residual` (a batch of one is
    /// shared by all): the values of LibTorch's `linear` and additions wherever its linear
    /// sums as described in the module docs. `None` when a tensor is not a contiguous
    /// float32 CPU tensor of those shapes.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        x_add: Option<&Tensor>,
        residual: Option<&Tensor>,
    ) -> Option<Tensor> {
        let (b, m, k) = x.size3().ok()?;
        let fits = |t: &Tensor, width: usize| {
            t.kind() == Kind::Float
                && t.device() == Device::Cpu
                && t.is_contiguous()
                && t.size3()
                    .is_ok_and(|(tb, tm, tk)| (tb == 1 || tb == b) && tm == m && tk == width as i64)
        };
        if k != self.in_dim as i64 || !fits(x, self.in_dim) {
            return None;
        }
        if x_add.is_some_and(|t| !fits(t, self.in_dim)) || residual.is_some_and(|t| !fits(t, self.out_dim)) {
            return None;
        }
        let out = Tensor::empty([b, m, self.out_dim as i64], (Kind::Float, Device::Cpu));
        let (b, m) = (b as usize, m as usize);
        // SAFETY: the inputs are contiguous float32 CPU tensors of the sizes given (checked
        // above) that outlive these slices, which are only read; `out` was just allocated
        // here, contiguous, and nothing else refers to its memory while the slice lives.
        let slice = |t: &Tensor| unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) };
        let (x_data, add_data, res_data) = (slice(x), x_add.map(slice), residual.map(slice));
        let out_data = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, out.numel()) };
        let inputs = Inputs {
            x: x_data,
            x_add: add_data,
            residual: res_data,
            rows_per_batch: m,
        };
        if b * m > 0 {
            for_each_chunk_mut(out_data, CHUNK_ROWS * self.out_dim, |chunk, out| {
                self.rows(&inputs, chunk * CHUNK_ROWS, out);
            });
        }
        Some(out)
    }

    /// The output rows from `first` on, into `out` (whole rows).
    fn rows(&self, inputs: &Inputs, first: usize, out: &mut [f32]) {
        let (k, n) = (self.in_dim, self.out_dim);
        let rows = out.len() / n;
        let mut sums = vec![0.0f32; if inputs.x_add.is_some() { TILE * k } else { 0 }];
        let mut r = 0;
        while r < rows {
            let tile = if r + TILE <= rows { TILE } else { 1 };
            // The tile's input rows: x's own, or x + x_add rounded as LibTorch's addition.
            let a: [&[f32]; TILE] = match inputs.x_add {
                None => std::array::from_fn(|i| inputs.x_row(first + r + i.min(tile - 1), k)),
                Some(add) => {
                    for (i, sum) in sums.chunks_mut(k).take(tile).enumerate() {
                        let row = first + r + i;
                        let (xr, ar) = (inputs.x_row(row, k), inputs.broadcast_row(add, row, k));
                        for ((s, &x), &y) in sum.iter_mut().zip(xr).zip(ar) {
                            *s = x + y;
                        }
                    }
                    std::array::from_fn(|i| &sums[i.min(tile - 1) * k..][..k])
                }
            };
            let res: Option<[&[f32]; TILE]> = inputs.residual.map(|res| {
                std::array::from_fn(|i| inputs.broadcast_row(res, first + r + i.min(tile - 1), n))
            });
            let out_rows = &mut out[r * n..(r + tile) * n];
            for p in 0..n / PANEL {
                let panel = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
                let bias = &self.bias[p * PANEL..(p + 1) * PANEL];
                // SAFETY: the CPU has AVX2 and FMA (`new` checked them); every `a` row holds `k`
                // floats, `panel` k·PANEL, `bias` PANEL, each `res` row `n` and
                // `out_rows` tile·n, the extents the kernel reads and writes.
                unsafe {
                    if tile == TILE {
                        tile_avx2::<TILE>(&a, panel, bias, res.as_ref(), p * PANEL, out_rows, n);
                    } else {
                        tile_avx2::<1>(
                            &[a[0]],
                            panel,
                            bias,
                            res.as_ref().map(|r| [r[0]]).as_ref(),
                            p * PANEL,
                            out_rows,
                            n,
                        );
                    }
                }
            }
            r += tile;
        }
    }
}

/// One call's inputs, as flat slices.
struct Inputs<'a> {
    x: &'a [f32],
    x_add: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    rows_per_batch: usize,
}

impl Inputs<'_> {
    /// Row `row` (over all batches) of `x`.
    fn x_row(&self, row: usize, width: usize) -> &[f32] {
        &self.x[row * width..][..width]
    }

    /// Row `row` of a `(1 or B, M, width)` tensor's data: the same row of every batch when
    /// it has one batch.
    fn broadcast_row<'b>(&self, data: &'b [f32], row: usize, width: usize) -> &'b [f32] {
        let row = if data.len() == self.rows_per_batch * width {
            row % self.rows_per_batch
        } else {
            row
        };
        &data[row * width..][..width]
    }
}

/// Whether the CPU has AVX2 and FMA (the kernel's instructions).
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `R` output rows × one panel of `PANEL` columns (from column `col`): per block of
/// [`BLOCK`] inputs, the products summed by fused multiply-adds in order from zero; the
/// bias plus the first block's sums, plus each next block's in turn; plus the residual.
///
/// # Safety
/// The CPU must have AVX2 and FMA; every `a` row must hold the panel's input count
/// (`panel.len() / PANEL`, a multiple of [`BLOCK`]), `bias` PANEL floats, each residual row
/// at least `col + PANEL` and `out` `R · ldc` with `col + PANEL <= ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    a: &[&[f32]; R],
    panel: &[f32],
    bias: &[f32],
    residual: Option<&[&[f32]; R]>,
    col: usize,
    out: &mut [f32],
    ldc: usize,
) {
    let k = panel.len() / PANEL;
    debug_assert!(k % BLOCK == 0 && bias.len() >= PANEL && out.len() >= (R - 1) * ldc + col + PANEL);
    debug_assert!(a.iter().all(|row| row.len() >= k));
    let a_ptr: [*const f32; R] = std::array::from_fn(|i| a[i].as_ptr());
    let b = panel.as_ptr();
    let mut total = [[_mm256_setzero_ps(); 2]; R];
    let mut k0 = 0;
    while k0 < k {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for kk in k0..k0 + BLOCK {
            // SAFETY (whole block): kk < k, so the panel row and each `a` element are in
            // bounds (the caller's contract).
            let b0 = _mm256_loadu_ps(b.add(kk * PANEL));
            let b1 = _mm256_loadu_ps(b.add(kk * PANEL + 8));
            for (acc, &row) in acc.iter_mut().zip(&a_ptr) {
                let x = _mm256_set1_ps(*row.add(kk));
                acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            }
        }
        if k0 == 0 {
            let bias: [__m256; 2] = [
                _mm256_loadu_ps(bias.as_ptr()),
                _mm256_loadu_ps(bias.as_ptr().add(8)),
            ];
            for (t, acc) in total.iter_mut().zip(&acc) {
                t[0] = _mm256_add_ps(bias[0], acc[0]);
                t[1] = _mm256_add_ps(bias[1], acc[1]);
            }
        } else {
            for (t, acc) in total.iter_mut().zip(&acc) {
                t[0] = _mm256_add_ps(t[0], acc[0]);
                t[1] = _mm256_add_ps(t[1], acc[1]);
            }
        }
        k0 += BLOCK;
    }
    for (i, t) in total.iter().enumerate() {
        let (mut lo, mut hi) = (t[0], t[1]);
        if let Some(res) = residual {
            let res = res[i].as_ptr().add(col);
            lo = _mm256_add_ps(_mm256_loadu_ps(res), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(res.add(8)), hi);
        }
        let dst = out.as_mut_ptr().add(i * ldc + col);
        _mm256_storeu_ps(dst, lo);
        _mm256_storeu_ps(dst.add(8), hi);
    }
}

/// Never called: [`has_avx2_fma`] is false off x86-64, so no [`PackedLinear`] exists there.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_avx2<const R: usize>(
    _: &[&[f32]; R],
    _: &[f32],
    _: &[f32],
    _: Option<&[&[f32]; R]>,
    _: usize,
    _: &mut [f32],
    _: usize,
) {
    unreachable!("PackedLinear::new refuses CPUs without AVX2 and FMA")
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::PackedLinear;

    fn random(shape: &[i64], scale: f64) -> Tensor {
        Tensor::randn(shape, (Kind::Float, Device::Cpu)) * scale
    }

    /// Where the kernel applies, it gives LibTorch's linear bit for bit on the decoder's
    /// shapes, with and without the fused additions (batch-shared or per batch), including
    /// row counts that leave a tail after the tiles.
    #[test]
    fn packed_layers_give_libtorchs_bits() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(7);
        for (in_dim, out_dim) in [(256, 128), (128, 256), (256, 256)] {
            let w = random(&[out_dim, in_dim], 0.06);
            let bias = random(&[out_dim], 0.1);
            let Some(packed) = PackedLinear::new(&w, Some(&bias)) else {
                assert!(!std::arch::is_x86_feature_detected!("avx2"));
                return;
            };
            for (b, m) in [(4, 4096), (5, 4096), (2, 100)] {
                let x = random(&[b, m, in_dim], 1.0);
                let pe = random(&[1, m, in_dim], 1.0);
                let res = random(&[b, m, out_dim], 1.0);
                let shared_res = random(&[1, m, out_dim], 1.0);
                let cases: [(Option<&Tensor>, Option<&Tensor>, Tensor); 4] = [
                    (None, None, x.linear(&w, Some(&bias))),
                    (Some(&pe), None, (&x + &pe).linear(&w, Some(&bias))),
                    (None, Some(&res), &res + x.linear(&w, Some(&bias))),
                    (
                        Some(&pe),
                        Some(&shared_res),
                        &shared_res + (&x + &pe).linear(&w, Some(&bias)),
                    ),
                ];
                for (i, (add, residual, want)) in cases.iter().enumerate() {
                    let got = packed
                        .forward(&x, *add, *residual)
                        .expect("contiguous float32 inputs");
                    let differ = got.ne_tensor(want).sum(Kind::Int64).int64_value(&[]);
                    assert_eq!(differ, 0, "({in_dim}->{out_dim}) batch {b}x{m}, case {i}");
                }
            }
        }
    }

    #[test]
    fn other_layers_and_inputs_are_refused() {
        let _guard = tch::no_grad_guard();
        let w = random(&[128, 256], 0.06);
        let bias = random(&[128], 0.1);
        assert!(PackedLinear::new(&w, None).is_none(), "no bias");
        assert!(PackedLinear::new(&random(&[100, 256], 1.0), Some(&random(&[100], 1.0))).is_none());
        assert!(PackedLinear::new(&random(&[128, 200], 1.0), Some(&bias)).is_none());
        assert!(PackedLinear::new(&w.to_kind(Kind::Double), Some(&bias.to_kind(Kind::Double))).is_none());
        let Some(packed) = PackedLinear::new(&w, Some(&bias)) else {
            return;
        };
        let x = random(&[2, 10, 256], 1.0);
        assert!(packed.forward(&x.to_kind(Kind::Double), None, None).is_none());
        assert!(
            packed.forward(&x.transpose(0, 1), None, None).is_none(),
            "not contiguous"
        );
        assert!(packed.forward(&random(&[2, 10, 128], 1.0), None, None).is_none());
        assert!(packed
            .forward(&x, Some(&random(&[3, 10, 256], 1.0)), None)
            .is_none());
        assert!(packed
            .forward(&x, None, Some(&random(&[2, 10, 256], 1.0)))
            .is_none());
        assert_eq!(
            packed.forward(&x, None, None).map(|y| y.size()),
            Some(vec![2, 10, 128])
        );
    }
}
