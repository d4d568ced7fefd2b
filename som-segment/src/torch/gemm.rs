//! Linear layers with LibTorch's bits, computed by our own kernel so that the additions
//! around them ride along.
//!
//! LibTorch's CPU linear layer on float32 (`addmm` into MKL's `sgemm`, the bias copied into
//! the output first) computes each output, on the shapes of SAM's mask decoder, as the
//! bias, plus the products of the first `block` inputs summed by fused multiply-adds in
//! order from zero, plus those of the next `block` summed the same way, and so on. The
//! block depends on the CPU MKL runs on: 128 inputs on AMD Zen 4 (MKL's AVX2 code), 256 on
//! Intel Xeons with AVX-512 (so a 256-input layer is one sequential sum there), found by
//! comparing with LibTorch on (16384, 256) × (256, 128), (256, 256) and (128, 256), where
//! every one of millions of outputs agreed with one of them (the reference venv's
//! `torch.nn.functional.linear` against an emulation of each order:
//! `tools/bench/mkl_order.py`, which names the block on a new CPU). [`BLOCKS`] lists
//! those orders. MKL is free to change its order with the shape, the thread count, the
//! CPU or its version, so the callers use [`PackedLinear`] only with a block that a
//! once-per-process probe finds identical to LibTorch's for the shape
//! (`sam::products::probed`), and LibTorch's own linear otherwise.
//!
//! The kernel packs the weights once, reads the inputs where they are (MKL packs both
//! operands on every call) and writes the bias with the first sums (LibTorch writes it in a
//! separate pass), and it fuses the additions next to the layer with the same roundings as
//! LibTorch's separate operations: `(x + x_add) W + b` (each input rounded to float32 before
//! its product) and `residual + (x W + b)`. Its rows are spread over LibTorch's threads
//! ([`super::parallel`]). On two Zen 4 cores, in alternating runs of 40: 6.0–8.0 ms for a
//! (16384, 256) × (256, 128) product where LibTorch takes 7.9–14.9 ms, 11.2–12.0 ms for
//! (256, 256) against 13.9–16.1 ms, 6.0–6.6 ms for (128, 256) against 7.4–8.3 ms. (An
//! AVX-512 version of the kernel was no faster on those cores.) On two cores of an Intel
//! Xeon with AVX-512, where MKL runs its AVX-512 code, best of 60 alternating runs: the
//! AVX-512 tiles 3.05 ms where LibTorch takes 2.85 ms for (16384, 256) × (256, 128), 6.48
//! against 6.15 ms for (256, 256) with `keys + key_pe` fused, 3.35 against 3.88 ms for
//! (128, 256) with the residual fused (the AVX2 tiles: 4.75, 9.86 and 5.07 ms).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, __m512, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use tch::{Device, Kind, Tensor};

use super::floats::{cpu_f32, floats, floats_mut};
use super::layer_norm::RowNorm;
use super::parallel::for_each_chunk_mut;

/// What [`PackedLinear::rows_into_split`]'s split must be a multiple of (two panels: the
/// widest group of columns a tile writes).
pub(crate) const SPLIT_STEP: usize = 2 * PANEL;

/// Output columns per packed panel: two 8-float AVX2 vectors, or one 16-float AVX-512 one.
const PANEL: usize = 16;

/// The inputs per partial sum that MKL uses on the decoder's shapes on the CPUs we know
/// (module docs), in the order the callers try them.
pub(crate) const BLOCKS: [usize; 2] = [128, 256];

/// Rows per piece of work handed to a thread (a multiple of both kernels' tile heights).
const CHUNK_ROWS: usize = 48;

/// The instructions the kernel runs on; both give the same bits (each output is its own
/// chain of fused multiply-adds, whatever the vector width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// Tiles of 6 rows × one panel: 12 accumulators of the 16 `ymm` registers.
    Avx2,
    /// Tiles of 8 rows × two panels: 16 accumulators of the 32 `zmm` registers (of 12 × 2,
    /// 8 × 2 and 6 × 4 the fastest on an Intel Xeon with AVX-512, by a few percent). MKL
    /// takes its AVX-512 code on such CPUs, where the AVX2 tiles ran at 0.6 of its speed.
    Avx512,
}

/// A `(out, in)` float32 linear layer with a bias, its weights packed for the kernel.
#[derive(Debug)]
pub(crate) struct PackedLinear {
    /// `panels[p][k][j]` = `weight[p·PANEL + j][k]`, one 64-byte line per `(p, k)`.
    panels: Vec<Line>,
    bias: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
    isa: Isa,
}

impl PackedLinear {
    /// The layer of `weight` and `bias` packed, or `None` where the kernel does not apply:
    /// a CPU without AVX2 and FMA, weights not float32 on the CPU, no bias, an output width
    /// not a multiple of 16 or an input width that no block of [`BLOCKS`] divides.
    pub(crate) fn new(weight: &Tensor, bias: Option<&Tensor>) -> Option<Self> {
        if !has_avx2_fma() {
            return None;
        }
        let bias = bias?;
        let (out_dim, in_dim) = weight.size2().ok()?;
        let (out_dim, in_dim) = (usize::try_from(out_dim).ok()?, usize::try_from(in_dim).ok()?);
        if !(cpu_f32(weight) && cpu_f32(bias))
            || bias.size() != [out_dim as i64]
            || out_dim == 0
            || in_dim == 0
            || !out_dim.is_multiple_of(PANEL)
            || !BLOCKS.iter().any(|&block| in_dim.is_multiple_of(block))
        {
            return None;
        }
        let w = Vec::<f32>::try_from(&weight.contiguous().view([-1])).ok()?;
        let bias = Vec::<f32>::try_from(&bias.contiguous()).ok()?;
        let mut panels = vec![Line([0.0; PANEL]); out_dim * in_dim / PANEL];
        for (p, panel) in panels.chunks_mut(in_dim).enumerate() {
            for (k, row) in panel.iter_mut().enumerate() {
                for (j, v) in row.0.iter_mut().enumerate() {
                    *v = w[(p * PANEL + j) * in_dim + k];
                }
            }
        }
        let isa = if has_avx512() && out_dim.is_multiple_of(2 * PANEL) {
            Isa::Avx512
        } else {
            Isa::Avx2
        };
        Some(PackedLinear {
            panels,
            bias,
            in_dim,
            out_dim,
            isa,
        })
    }

    /// The output width.
    pub(crate) fn out_dim(&self) -> i64 {
        self.out_dim as i64
    }

    /// The input width.
    pub(crate) fn in_dim(&self) -> i64 {
        self.in_dim as i64
    }

    /// `residual + ((x + x_add) Wᵀ + b)` for `(B, M, in)` inputs `x`, with the optional
    /// `(1 or B, M, in)` `x_add` and `(1 or B, M, out)` `residual` (a batch of one is
    /// shared by all), the products summed in blocks of `block` inputs: the values of
    /// LibTorch's `linear` and additions wherever its linear sums in such blocks (module
    /// docs); then each output row normalised by `norm` while it is in the cache, where
    /// given. `None` when a tensor is not a contiguous float32 CPU tensor of those shapes,
    /// `block` is not one of [`BLOCKS`] that divides the input width or `norm` is not as
    /// wide as the output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        x_add: Option<&Tensor>,
        residual: Option<&Tensor>,
        block: usize,
        norm: Option<&RowNorm>,
    ) -> Option<Tensor> {
        let (b, m, k) = x.size3().ok()?;
        let fits = |t: &Tensor, width: usize| {
            cpu_f32(t)
                && t.is_contiguous()
                && t.size3()
                    .is_ok_and(|(tb, tm, tk)| (tb == 1 || tb == b) && tm == m && tk == width as i64)
        };
        if k != self.in_dim as i64
            || !fits(x, self.in_dim)
            || !BLOCKS.contains(&block)
            || !self.in_dim.is_multiple_of(block)
        {
            return None;
        }
        if x_add.is_some_and(|t| !fits(t, self.in_dim))
            || residual.is_some_and(|t| !fits(t, self.out_dim))
            || norm.is_some_and(|norm| norm.width() != self.out_dim)
        {
            return None;
        }
        let out = Tensor::empty([b, m, self.out_dim as i64], (Kind::Float, Device::Cpu));
        let (b, m) = (b as usize, m as usize);
        // SAFETY: the inputs (contiguous, of the sizes given: checked above) outlive these
        // slices and are only read while they live; `out` was just allocated here, and
        // nothing else refers to its memory while the slice lives.
        let (x_data, add_data, res_data, out_data) = unsafe {
            (
                floats(x),
                x_add.map(|t| floats(t)),
                residual.map(|t| floats(t)),
                floats_mut(&out),
            )
        };
        let inputs = Inputs {
            x: x_data,
            x_add: add_data,
            residual: res_data,
            rows_per_batch: m,
            norm,
        };
        if b * m > 0 {
            for_each_chunk_mut(out_data, CHUNK_ROWS * self.out_dim, |chunk, out| {
                self.rows(&inputs, chunk * CHUNK_ROWS, RowsOut::Whole(out), block);
            });
        }
        Some(out)
    }

    /// [`Self::forward`] on one block of rows, on the calling thread: `out` (whole rows of
    /// the output width) = `residual + ((x + x_add) Wᵀ + b)`, normalised by `norm` where
    /// given, with `x` and `x_add` the same rows of the input width and `residual` of the
    /// output width. The caller has chosen `block` (one of [`BLOCKS`] dividing the input
    /// width, as [`Self::forward`] requires) and checked `norm`'s width.
    ///
    /// # Panics
    /// If a slice's length is not its rows' count times its width, or `block` does not
    /// divide the input width.
    pub(crate) fn rows_into(
        &self,
        x: &[f32],
        x_add: Option<&[f32]>,
        residual: Option<&[f32]>,
        norm: Option<&RowNorm>,
        block: usize,
        out: &mut [f32],
    ) {
        let rows = out.len() / self.out_dim;
        assert_eq!(out.len(), rows * self.out_dim, "whole output rows");
        assert!(
            residual.is_none_or(|res| res.len() == out.len()),
            "a residual per output"
        );
        assert!(
            norm.is_none_or(|norm| norm.width() == self.out_dim),
            "a norm as wide as the output"
        );
        let inputs = self.block_inputs(x, x_add, rows, block);
        let inputs = Inputs {
            residual,
            norm,
            ..inputs
        };
        self.rows(&inputs, 0, RowsOut::Whole(out), block);
    }

    /// [`Self::rows_into`] without a residual or a norm, each output row's first `split`
    /// columns written into `left` (rows of `split` floats) and the others into `right`
    /// (rows of `out_dim − split`): the two halves of a stacked projection
    /// ([`crate::torch::nn::StackedLinear`]) straight where their readers want them, the
    /// same values as `rows_into` gives.
    ///
    /// # Panics
    /// If a slice's length is not its rows' count times its width, `split` is not a
    /// multiple of [`SPLIT_STEP`] strictly inside the output width, or `block` does not
    /// divide the input width.
    pub(crate) fn rows_into_split(
        &self,
        x: &[f32],
        x_add: Option<&[f32]>,
        block: usize,
        split: usize,
        left: &mut [f32],
        right: &mut [f32],
    ) {
        assert!(
            split > 0 && split < self.out_dim && split.is_multiple_of(SPLIT_STEP),
            "a split at a multiple of {SPLIT_STEP} inside the output width"
        );
        let rows = left.len() / split;
        assert_eq!(left.len(), rows * split, "whole left rows");
        assert_eq!(
            right.len(),
            rows * (self.out_dim - split),
            "as many right rows as left rows"
        );
        let inputs = self.block_inputs(x, x_add, rows, block);
        self.rows(&inputs, 0, RowsOut::Split { split, left, right }, block);
    }

    /// The inputs of one block of `rows` rows ([`Self::rows_into`],
    /// [`Self::rows_into_split`]), without a residual or a norm, its sizes and `block`
    /// checked.
    fn block_inputs<'a>(
        &self,
        x: &'a [f32],
        x_add: Option<&'a [f32]>,
        rows: usize,
        block: usize,
    ) -> Inputs<'a> {
        assert_eq!(x.len(), rows * self.in_dim, "as many input rows as output rows");
        assert!(
            x_add.is_none_or(|add| add.len() == x.len()),
            "an input addition per input"
        );
        assert!(
            block > 0 && self.in_dim.is_multiple_of(block),
            "a block that divides the input width"
        );
        Inputs {
            x,
            x_add,
            residual: None,
            rows_per_batch: rows,
            norm: None,
        }
    }

    /// The output rows from `first` on, into `out`, summed in blocks of `block` inputs.
    fn rows(&self, inputs: &Inputs, first: usize, out: RowsOut, block: usize) {
        match self.isa {
            // SAFETY: `new` chose the ISA from the CPU's features (AVX2 and FMA for any
            // packed layer, AVX-512F for `Isa::Avx512`), the functions' only requirement.
            Isa::Avx2 => unsafe { self.tiles_avx2(inputs, first, out, block) },
            Isa::Avx512 => unsafe { self.tiles_avx512(inputs, first, out, block) },
        }
    }

    /// [`Self::tiles`] for the AVX2 kernel, compiled for AVX2 (the input additions too).
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    unsafe fn tiles_avx2(&self, inputs: &Inputs, first: usize, out: RowsOut, block: usize) {
        self.tiles::<6, 1>(inputs, first, out, block);
    }

    /// [`Self::tiles`] for the AVX-512 kernel, compiled for AVX-512 (the input additions too).
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx2,fma"))]
    unsafe fn tiles_avx512(&self, inputs: &Inputs, first: usize, out: RowsOut, block: usize) {
        self.tiles::<8, 2>(inputs, first, out, block);
    }

    /// [`Self::rows`] in tiles of `T` rows × `P` panels (the rows left after the last whole
    /// tile one at a time).
    #[inline(always)]
    fn tiles<const T: usize, const P: usize>(
        &self,
        inputs: &Inputs,
        first: usize,
        mut out: RowsOut,
        block: usize,
    ) {
        let (k, n) = (self.in_dim, self.out_dim);
        let rows = match &out {
            RowsOut::Whole(out) => out.len() / n,
            RowsOut::Split { split, left, .. } => {
                // The kernels read a residual at the output's column, and the norm needs
                // whole rows: neither exists for the halves of a split.
                assert!(
                    inputs.residual.is_none() && inputs.norm.is_none(),
                    "a split output has no residual and no norm"
                );
                left.len() / split
            }
        };
        let mut sums = vec![0.0f32; if inputs.x_add.is_some() { T * k } else { 0 }];
        let mut r = 0;
        while r < rows {
            let tile = if r + T <= rows { T } else { 1 };
            // The tile's input rows: x's own, or x + x_add rounded as LibTorch's addition.
            let a: [&[f32]; T] = match inputs.x_add {
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
            let res: Option<[&[f32]; T]> = inputs.residual.map(|res| {
                std::array::from_fn(|i| inputs.broadcast_row(res, first + r + i.min(tile - 1), n))
            });
            for p in (0..n / PANEL).step_by(P) {
                // The tile's rows of the part this panel's columns go to: whole rows, or
                // one side of the split (whose columns count from its own first).
                let (out_rows, col, ldc) = match &mut out {
                    RowsOut::Whole(out) => (&mut out[r * n..(r + tile) * n], p * PANEL, n),
                    RowsOut::Split { split, left, .. } if p * PANEL < *split => {
                        (&mut left[r * *split..(r + tile) * *split], p * PANEL, *split)
                    }
                    RowsOut::Split { split, right, .. } => {
                        let w = n - *split;
                        (&mut right[r * w..(r + tile) * w], p * PANEL - *split, w)
                    }
                };
                let panels = Line::floats(&self.panels[p * k..(p + P) * k]);
                let bias = &self.bias[p * PANEL..(p + P) * PANEL];
                let (a1, res1) = ([a[0]], res.as_ref().map(|r| [r[0]]));
                let at = At { col, ldc, block };
                // SAFETY: `new` chose the ISA from the CPU's features and P from it (two
                // panels only for AVX-512, whose output widths are multiples of 32); every
                // `a` row holds `k` floats (a multiple of `block`, checked by `forward` and
                // `block_inputs`), `panels` P·k·PANEL, `bias` P·PANEL, each `res` row `n`
                // (whole output rows only: asserted above) and `out_rows` tile·ldc with
                // col + P·PANEL <= ldc (a split is a multiple of SPLIT_STEP = 2·PANEL, so
                // no group of panels straddles it), the extents the kernels read and write.
                unsafe {
                    match (self.isa, tile == T) {
                        (Isa::Avx2, true) => tile_avx2::<T, 2>(&a, panels, bias, res.as_ref(), out_rows, at),
                        (Isa::Avx2, false) => {
                            tile_avx2::<1, 2>(&a1, panels, bias, res1.as_ref(), out_rows, at)
                        }
                        (Isa::Avx512, true) => {
                            tile_avx512::<T, 2>(&a, panels, bias, res.as_ref(), out_rows, at)
                        }
                        (Isa::Avx512, false) => {
                            tile_avx512::<1, 2>(&a1, panels, bias, res1.as_ref(), out_rows, at)
                        }
                    }
                }
            }
            if let (Some(norm), RowsOut::Whole(out)) = (inputs.norm, &mut out) {
                norm.rows(&mut out[r * n..(r + tile) * n]);
            }
            r += tile;
        }
    }
}

/// One panel row of weights on its own cache line, so that the AVX-512 tiles' loads of a
/// row never straddle two lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([f32; PANEL]);

impl Line {
    /// The floats of `lines`, in order.
    fn floats(lines: &[Line]) -> &[f32] {
        // SAFETY: a Line is exactly PANEL floats (repr(C), 64 bytes, no padding), so
        // `lines` is `lines.len() · PANEL` initialised floats, borrowed as long as `lines`.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), lines.len() * PANEL) }
    }
}

/// Where a tile's sums go and how they are formed: from output column `col` of rows `ldc`
/// floats apart, summed in blocks of `block` inputs.
#[derive(Clone, Copy, Debug)]
struct At {
    col: usize,
    ldc: usize,
    block: usize,
}

/// Where one call's output rows go.
enum RowsOut<'a> {
    /// Whole rows of the output width.
    Whole(&'a mut [f32]),
    /// Each row's first `split` columns into `left` (rows of `split` floats), the others
    /// into `right` (`split` a multiple of two panels, so no tile straddles it).
    Split {
        split: usize,
        left: &'a mut [f32],
        right: &'a mut [f32],
    },
}

/// One call's inputs, as flat slices.
struct Inputs<'a> {
    x: &'a [f32],
    x_add: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    rows_per_batch: usize,
    /// Normalises the finished output rows.
    norm: Option<&'a RowNorm>,
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

/// Whether the CPU has AVX2 and FMA (the instructions of this kernel, of
/// [`super::layer_norm`]'s and of the SAM decoder's).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F (with [`has_avx2_fma`]: the AVX-512 tiles here and the
/// AVX-512 builds of the SAM decoder's elementwise kernels).
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `unsafe fn $name<const R: usize, const V: usize>(a, panels, bias, residual,
/// out, at)`: `R` output rows × `V` registers of `$lanes` columns (`V · $lanes / PANEL`
/// consecutive panels, from column `at.col`). Per block of `at.block` inputs, the products
/// summed by fused multiply-adds in order from zero; the bias plus the first block's sums,
/// plus each next block's in turn; plus the residual.
///
/// The generated function's safety contract: the CPU must have `$features`; with
/// `width = V · $lanes` (a multiple of PANEL), `panels` must hold `width · k` floats (`k` a
/// multiple of `at.block`), every `a` row `k` floats, `bias` `width`, each residual row at
/// least `at.col + width` and `out` `R · at.ldc` with `at.col + width <= at.ldc`.
macro_rules! tile_kernel {
    ($name:ident, $features:literal, $vec:ty, $lanes:expr,
     $zero:ident, $load:ident, $set1:ident, $fmadd:ident, $add:ident, $store:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize, const V: usize>(
            a: &[&[f32]; R],
            panels: &[f32],
            bias: &[f32],
            residual: Option<&[&[f32]; R]>,
            out: &mut [f32],
            at: At,
        ) {
            let At { col, ldc, block } = at;
            let width = V * $lanes;
            let k = panels.len() / width;
            debug_assert!(width.is_multiple_of(PANEL) && bias.len() >= width);
            debug_assert!(block > 0 && k.is_multiple_of(block));
            debug_assert!(out.len() >= (R - 1) * ldc + col + width);
            debug_assert!(a.iter().all(|row| row.len() >= k));
            // Register `v` holds columns `v · $lanes ..` of the tile: in panel
            // `v · $lanes / PANEL`, at `v · $lanes % PANEL` within each of its rows.
            let b: [*const f32; V] = std::array::from_fn(|v| {
                let (panel, within) = ((v * $lanes) / PANEL, (v * $lanes) % PANEL);
                panels.as_ptr().add(panel * k * PANEL + within)
            });
            let a_ptr: [*const f32; R] = std::array::from_fn(|i| a[i].as_ptr());
            let mut total: [[$vec; V]; R] = [[$zero(); V]; R];
            let mut k0 = 0;
            while k0 < k {
                let mut acc: [[$vec; V]; R] = [[$zero(); V]; R];
                for kk in k0..k0 + block {
                    // SAFETY (whole block): kk < k, so the panels' rows and each `a` element
                    // are in bounds (the caller's contract).
                    let w: [$vec; V] = std::array::from_fn(|v| $load(b[v].add(kk * PANEL)));
                    for (acc, &row) in acc.iter_mut().zip(&a_ptr) {
                        let x = $set1(*row.add(kk));
                        for (acc, &w) in acc.iter_mut().zip(&w) {
                            *acc = $fmadd(x, w, *acc);
                        }
                    }
                }
                for (t, acc) in total.iter_mut().zip(&acc) {
                    for (v, (t, &acc)) in t.iter_mut().zip(acc.iter()).enumerate() {
                        *t = if k0 == 0 {
                            $add($load(bias.as_ptr().add(v * $lanes)), acc)
                        } else {
                            $add(*t, acc)
                        };
                    }
                }
                k0 += block;
            }
            for (i, t) in total.iter().enumerate() {
                for (v, &sum) in t.iter().enumerate() {
                    let mut sum = sum;
                    if let Some(res) = residual {
                        sum = $add($load(res[i].as_ptr().add(col + v * $lanes)), sum);
                    }
                    $store(out.as_mut_ptr().add(i * ldc + col + v * $lanes), sum);
                }
            }
        }

        /// Never called: [`has_avx2_fma`] is false off x86-64, so no [`PackedLinear`]
        /// exists there.
        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn $name<const R: usize, const V: usize>(
            _: &[&[f32]; R],
            _: &[f32],
            _: &[f32],
            _: Option<&[&[f32]; R]>,
            _: &mut [f32],
            _: At,
        ) {
            unreachable!("PackedLinear::new refuses CPUs without AVX2 and FMA")
        }
    };
}

tile_kernel!(
    tile_avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    _mm256_storeu_ps
);
tile_kernel!(
    tile_avx512,
    "avx512f",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    _mm512_storeu_ps
);

#[cfg(test)]
pub(crate) mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{has_avx512, Isa, PackedLinear, BLOCKS};
    use crate::torch::layer_norm::RowNorm;

    fn random(shape: &[i64], scale: f64) -> Tensor {
        Tensor::randn(shape, (Kind::Float, Device::Cpu)) * scale
    }

    /// `packed` once per kernel this CPU can run: the AVX2 tiles always, and the AVX-512
    /// ones where `new` chose them.
    fn each_isa(packed: &PackedLinear) -> Vec<PackedLinear> {
        let copy = |isa| PackedLinear {
            panels: packed.panels.clone(),
            bias: packed.bias.clone(),
            isa,
            ..*packed
        };
        if packed.isa == Isa::Avx512 {
            assert!(has_avx512());
            vec![copy(Isa::Avx2), copy(Isa::Avx512)]
        } else {
            vec![copy(Isa::Avx2)]
        }
    }

    /// A float32 tensor's values in row-major order.
    pub(crate) fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(&t.contiguous().view([-1])).expect("float32")
    }

    /// The order the module docs describe, one scalar at a time: per block of `block`
    /// inputs a chain of fused multiply-adds from zero; the bias plus the first block's sum,
    /// plus each next block's.
    fn scalar_order(x: &[f32], w: &[f32], bias: &[f32], in_dim: usize, block: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for row in x.chunks(in_dim) {
            for (j, &b) in bias.iter().enumerate() {
                let weights = &w[j * in_dim..][..in_dim];
                let mut total = b;
                for (xs, ws) in row.chunks(block).zip(weights.chunks(block)) {
                    let sum = xs.iter().zip(ws).fold(0.0f32, |acc, (&x, &w)| x.mul_add(w, acc));
                    total += sum;
                }
                out.push(total);
            }
        }
        out
    }

    /// On any CPU with AVX2 and FMA the kernel computes exactly the documented order, for
    /// every block, including row counts that leave a tail after the tiles; the two blocks
    /// give different bits (so the block really is honoured).
    #[test]
    fn the_kernel_sums_in_the_documented_order() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(3);
        let (in_dim, out_dim, rows) = (256usize, 32usize, 13i64);
        let w = random(&[out_dim as i64, in_dim as i64], 0.06);
        let bias = random(&[out_dim as i64], 0.1);
        let Some(packed) = PackedLinear::new(&w, Some(&bias)) else {
            assert!(
                !std::arch::is_x86_feature_detected!("avx2") || !std::arch::is_x86_feature_detected!("fma")
            );
            return;
        };
        let x = random(&[1, rows, in_dim as i64], 1.0);
        for packed in each_isa(&packed) {
            let mut outputs = Vec::new();
            for block in BLOCKS {
                let got = values(
                    &packed
                        .forward(&x, None, None, block, None)
                        .expect("a block dividing 256"),
                );
                let want = scalar_order(&values(&x), &values(&w), &values(&bias), in_dim, block);
                assert_eq!(got, want, "{:?}, block {block}", packed.isa);
                outputs.push(got);
            }
            assert_ne!(outputs[0], outputs[1], "blocks of 128 and 256 summed alike");
        }
    }

    /// On the decoder's shapes, one of [`BLOCKS`] gives LibTorch's linear bit for bit on this
    /// CPU, with and without the fused additions (batch-shared or per batch), including row
    /// counts that leave a tail after the tiles. A CPU where MKL sums in yet another order
    /// fails here, and its block belongs in [`BLOCKS`] (the decoder would run LibTorch's
    /// linear layers there: the same values, slower).
    #[test]
    fn packed_layers_give_libtorchs_bits() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(7);
        for (in_dim, out_dim) in [(256, 128), (128, 256), (256, 256)] {
            let w = random(&[out_dim, in_dim], 0.06);
            let bias = random(&[out_dim], 0.1);
            let Some(packed) = PackedLinear::new(&w, Some(&bias)) else {
                assert!(
                    !std::arch::is_x86_feature_detected!("avx2")
                        || !std::arch::is_x86_feature_detected!("fma")
                );
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
                for packed in each_isa(&packed) {
                    let exact = |block: usize| {
                        cases.iter().all(|(add, residual, want)| {
                            packed
                                .forward(&x, *add, *residual, block, None)
                                .is_some_and(|got| got.equal(want))
                        })
                    };
                    assert!(
                        BLOCKS.into_iter().any(exact),
                        "({in_dim}->{out_dim}) batch {b}x{m}, {:?}: no block of {BLOCKS:?} gives LibTorch's bits on this CPU (tools/bench/mkl_order.py finds MKL's)",
                        packed.isa
                    );
                    // The LayerNorm after the layer, on each finished tile of rows (whole
                    // tiles and the single rows after them: m = 100 is no multiple of 8).
                    let (gamma, beta) = (random(&[out_dim], 1.0), random(&[out_dim], 1.0));
                    let norm = RowNorm::new(&gamma, &beta, 1e-5).expect("AVX2 and FMA are here");
                    let want = (&res + x.linear(&w, Some(&bias))).layer_norm(
                        [out_dim],
                        Some(&gamma),
                        Some(&beta),
                        1e-5,
                        false,
                    );
                    assert!(
                        BLOCKS.into_iter().any(|block| packed
                            .forward(&x, None, Some(&res), block, Some(&norm))
                            .is_some_and(|got| got.equal(&want))),
                        "({in_dim}->{out_dim}) batch {b}x{m}, {:?}: the normalised rows differ",
                        packed.isa
                    );
                }
            }
        }
    }

    /// The split output gives each row's two halves exactly as the whole output does, on
    /// each kernel (rows after the whole tiles too), with an input addition; a split that
    /// would cut a tile is refused.
    #[test]
    fn split_rows_are_the_whole_rows_halves() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(11);
        let (in_dim, out_dim, rows) = (256usize, 256usize, 29usize);
        let w = random(&[out_dim as i64, in_dim as i64], 0.06);
        let bias = random(&[out_dim as i64], 0.1);
        let Some(packed) = PackedLinear::new(&w, Some(&bias)) else {
            return;
        };
        let x = values(&random(&[rows as i64, in_dim as i64], 1.0));
        let pe = values(&random(&[rows as i64, in_dim as i64], 1.0));
        for packed in each_isa(&packed) {
            for split in [32, 128, 224] {
                let mut whole = vec![0.0f32; rows * out_dim];
                packed.rows_into(&x, Some(&pe), None, None, 256, &mut whole);
                let (mut left, mut right) = (
                    vec![f32::NAN; rows * split],
                    vec![f32::NAN; rows * (out_dim - split)],
                );
                packed.rows_into_split(&x, Some(&pe), 256, split, &mut left, &mut right);
                for (r, row) in whole.chunks(out_dim).enumerate() {
                    assert_eq!(
                        &row[..split],
                        &left[r * split..][..split],
                        "{:?}, split {split}: row {r}'s left",
                        packed.isa
                    );
                    let w = out_dim - split;
                    assert_eq!(
                        &row[split..],
                        &right[r * w..][..w],
                        "{:?}, split {split}: row {r}'s right",
                        packed.isa
                    );
                }
            }
        }
        let refused = std::panic::catch_unwind(|| {
            let (mut left, mut right) = (vec![0.0; rows * 16], vec![0.0; rows * 240]);
            packed.rows_into_split(&x, None, 256, 16, &mut left, &mut right);
        });
        assert!(refused.is_err(), "a split inside a tile's columns");
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
        assert!(packed
            .forward(&x.to_kind(Kind::Double), None, None, 128, None)
            .is_none());
        assert!(
            packed
                .forward(&x.transpose(0, 1), None, None, 128, None)
                .is_none(),
            "not contiguous"
        );
        assert!(packed
            .forward(&random(&[2, 10, 128], 1.0), None, None, 128, None)
            .is_none());
        assert!(packed
            .forward(&x, Some(&random(&[3, 10, 256], 1.0)), None, 128, None)
            .is_none());
        assert!(packed
            .forward(&x, None, Some(&random(&[2, 10, 256], 1.0)), 128, None)
            .is_none());
        for block in [0, 64, 512] {
            assert!(
                packed.forward(&x, None, None, block, None).is_none(),
                "block {block}"
            );
        }
        let wide_norm = RowNorm::new(&random(&[256], 1.0), &random(&[256], 1.0), 1e-5).expect("AVX2");
        assert!(
            packed.forward(&x, None, None, 128, Some(&wide_norm)).is_none(),
            "a norm of 256 on 128 outputs"
        );
        let narrow = PackedLinear::new(&random(&[256, 128], 0.06), Some(&random(&[256], 0.1)))
            .expect("128 inputs take blocks of 128");
        let x = random(&[2, 10, 128], 1.0);
        assert!(
            narrow.forward(&x, None, None, 256, None).is_none(),
            "256 does not divide 128"
        );
        for block in BLOCKS {
            assert_eq!(
                packed
                    .forward(&random(&[2, 10, 256], 1.0), None, None, block, None)
                    .map(|y| y.size()),
                Some(vec![2, 10, 128])
            );
        }
    }
}
