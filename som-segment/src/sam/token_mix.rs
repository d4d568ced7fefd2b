//! The token → image attention's softmax over the image tokens and its mix of the image
//! values in one pass, with LibTorch's bits.
//!
//! Each of SAM's token → image attentions ends with `softmax(scores / divisor) @ v`: per
//! prompt, head and token a row of 4096 scores becomes probabilities, which weigh the
//! head's 4096 value rows of 16 floats. LibTorch writes the probabilities (3.7 MB per group
//! of 4 prompts), and MKL reads them back and packs them for a product of seven rows — in
//! the generator those two operations and their threads' waits took about 6% of its time
//! for a few hundred million multiply-adds. Here each row's probabilities are computed into
//! a scratch row that stays in the cache and are mixed right away.
//!
//! The orders, each that of LibTorch's AVX-512 build on this shape (found by emulating
//! candidates against LibTorch on hundreds of random cases, and checked once per process
//! and shape by a probe against LibTorch's own operations, [`softmax_mix`]):
//! - the softmax is ATen's `_vec_softmax_lastdim`: `m` the row's maximum, `e = exp(x − m)`
//!   with SLEEF's `expf_u10` ([`sleef_expf`]), their sum accumulated in the 16 lanes of a
//!   vector (lane `l` adds `e[l], e[16 + l], …` in order) and the lanes then added as a
//!   tree (lane `l` with `l ^ 8`, then `l ^ 4`, `l ^ 2`, `l ^ 1`: [`lane_tree`]), and
//!   `y = e · (1 / sum)`;
//! - the product is MKL's `sgemm` on `(rows, K) × (K, 16)`: the `K` products of each
//!   output summed in blocks ([`k_blocks`]: of 384 while more than 768 remain, then the
//!   rest in two halves), each block by fused multiply-adds in order from zero, and each
//!   block's sum added to the sum of the blocks before it, in order.
//!
//! The kernel needs AVX-512 (on other CPUs the caller runs LibTorch's operations).

use std::ops::Range;

use tch::{Device, Kind, Tensor};

use super::products::{prefetch, probe_tensor, probed, Probe};
#[cfg(target_arch = "x86_64")]
use super::softmax::sleef_expf;
use super::softmax::{exact_inverse, libtorch_scaled_softmax, probe_values};
use crate::torch::floats::{cpu_f32, floats, SharedOutput};
use crate::torch::gemm::{has_avx2_fma, has_avx512};
use crate::torch::parallel::for_each_index;

/// The head width the kernel handles: one AVX-512 vector per output row.
const HEAD: usize = 16;

/// Rows of one matrix that one piece of work mixes together (8 independent sums in flight
/// per block of `K`, twice that with two blocks at once).
const MAX_ROWS: usize = 8;

/// How many value rows ahead of its two blocks [`mix_rows`] asks for the values (they come
/// from memory: in whole generator runs this took 3% off).
const PREFETCH_ROWS: usize = 32;

/// `softmax(scores / divisor) @ values` for `(G, R, K)` float32 `scores` and `(G, K, 16)`
/// float32 `values`: `(G, R, 16)`, LibTorch's bits — or `None` where the kernel does not
/// apply (no AVX-512, other shapes or kinds, a divisor that is not a power of two) or its
/// probe found other bits than LibTorch's for this shape on this machine, and the caller
/// runs LibTorch's operations.
pub(crate) fn softmax_mix(scores: &Tensor, divisor: f64, values: &Tensor) -> Option<Tensor> {
    let (g, r, k) = scores.size3().ok()?;
    let scale = exact_inverse(divisor)?;
    let fits = has_avx2_fma()
        && has_avx512()
        && cpu_f32(scores)
        && cpu_f32(values)
        && values.size() == [g, k, HEAD as i64]
        && k > 0
        && k % HEAD as i64 == 0
        && g > 0
        && r > 0;
    if !fits || !matches_libtorch(g, r, k) {
        return None;
    }
    Some(kernel(scores, scale, values))
}

/// Whether [`kernel`] gives LibTorch's bits for `(G, R, K)` scores: [`probed`] once per
/// shape on the softmax probe's logits (some far out, so that `exp` flushes to 0).
fn matches_libtorch(g: i64, r: i64, k: i64) -> bool {
    probed(Probe::SoftmaxMix([g, r, k]), || {
        let n = (g * r * k) as usize;
        let scores = Tensor::from_slice(&probe_values(n)).view([g, r, k]);
        let values = probe_tensor(&[g, k, HEAD as i64], 22);
        kernel(&scores, 0.25, &values).equal(&libtorch_softmax_mix(&scores, 4.0, &values))
    })
}

/// What the kernel must equal: the reference's `softmax(scores / divisor)` and product.
pub(crate) fn libtorch_softmax_mix(scores: &Tensor, divisor: f64, values: &Tensor) -> Tensor {
    // A division by 1 changes no value: the reference's later blocks divide before their
    // scores reach the softmax.
    let probabilities = if divisor == 1.0 {
        scores.softmax(-1, None::<Kind>)
    } else {
        libtorch_scaled_softmax(scores, divisor)
    };
    probabilities.bmm(values)
}

/// The kernel on checked operands: the rows of each matrix in pieces of at most
/// [`MAX_ROWS`], spread over LibTorch's threads.
fn kernel(scores: &Tensor, scale: f32, values: &Tensor) -> Tensor {
    let (g, r, k) = scores.size3().expect("(G, R, K) scores");
    let (g, r, k) = (g as usize, r as usize, k as usize);
    let (scores, values) = (scores.contiguous(), values.contiguous());
    let out = Tensor::empty([g as i64, r as i64, HEAD as i64], (Kind::Float, Device::Cpu));
    // SAFETY: the contiguous copies outlive the slices and nothing writes them meanwhile.
    let (x, v) = unsafe { (floats(&scores), floats(&values)) };
    // SAFETY: `out` was just allocated here; only the pieces below write it, each its own
    // rows, and nothing reads it until they are done.
    let output = unsafe { SharedOutput::new(&out) };
    let pieces = r.div_ceil(MAX_ROWS);
    let per_piece = r.div_ceil(pieces);
    let blocks = k_blocks(k);
    for_each_index(g * pieces, &|job| {
        let (matrix, piece) = (job / pieces, job % pieces);
        let rows = per_piece * piece..(per_piece * (piece + 1)).min(r);
        let x = &x[(matrix * r + rows.start) * k..][..rows.len() * k];
        let v = &v[matrix * k * HEAD..][..k * HEAD];
        // SAFETY: each job writes its own rows of its own matrix; no two jobs share one.
        let out = unsafe { output.slice((matrix * r + rows.start) * HEAD, rows.len() * HEAD) };
        SCRATCH.with_borrow_mut(|y| {
            y.resize(y.len().max(rows.len() * k), 0.0);
            let y = &mut y[..rows.len() * k];
            // SAFETY: `softmax_mix` takes this path only on a CPU with AVX-512F, AVX2 and
            // FMA; the slices' lengths are the ones the functions document.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                softmax_rows(x, k, scale, y);
                mix(y, k, &blocks, v, out);
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("softmax_mix refuses CPUs without AVX-512");
        });
    });
    out
}

thread_local! {
    /// Each thread's probabilities of the rows it mixes (kept between pieces of work).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// MKL's blocks of the `k` products of each output: of 384 while more than 768 remain,
/// then the rest in two halves (or whole, when `k` is at most 384).
fn k_blocks(k: usize) -> Vec<Range<usize>> {
    const BLOCK: usize = 384;
    let mut blocks = Vec::new();
    let mut start = 0;
    while k - start > 2 * BLOCK {
        blocks.push(start..start + BLOCK);
        start += BLOCK;
    }
    let rest = k - start;
    if rest > BLOCK {
        blocks.push(start..start + rest / 2);
        start += rest / 2;
    }
    blocks.push(start..k);
    blocks
}

/// ATen's AVX-512 `vec_reduce_all` of a vector's 16 lanes: lane `l` plus lane `l ^ 8`,
/// then `l ^ 4`, `l ^ 2` and `l ^ 1`; lane 0's total.
fn lane_tree(lanes: [f32; HEAD]) -> f32 {
    let mut v = lanes;
    for d in [8, 4, 2, 1] {
        let w = v;
        for (l, v) in v.iter_mut().enumerate() {
            *v = w[l] + w[l ^ d];
        }
    }
    v[0]
}

/// The softmax of each row of `k` values of `x · scale` into `y` (as many rows), in ATen's
/// order (the module's documentation).
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn softmax_rows(x: &[f32], k: usize, scale: f32, y: &mut [f32]) {
    for (row, out) in x.chunks_exact(k).zip(y.chunks_exact_mut(k)) {
        let mut m = [f32::NEG_INFINITY; HEAD];
        for chunk in row.chunks_exact(HEAD) {
            for (m, &value) in m.iter_mut().zip(chunk) {
                let value = value * scale;
                *m = if value > *m { value } else { *m };
            }
        }
        let m = m
            .into_iter()
            .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let mut sums = [0.0f32; HEAD];
        for (i, (chunk, out)) in row.chunks_exact(HEAD).zip(out.chunks_exact_mut(HEAD)).enumerate() {
            for ((sum, o), &value) in sums.iter_mut().zip(out.iter_mut()).zip(chunk) {
                let e = sleef_expf(value * scale - m);
                *o = e;
                *sum = if i == 0 { e } else { *sum + e };
            }
        }
        let inverse = 1.0 / lane_tree(sums);
        for o in out.iter_mut() {
            *o *= inverse;
        }
    }
}

/// The mix of `y`'s rows (`k` probabilities each, at most [`MAX_ROWS`]) with the `(k, 16)`
/// `values` into `out` (16 floats per row), summed in MKL's `blocks`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn mix(y: &[f32], k: usize, blocks: &[Range<usize>], values: &[f32], out: &mut [f32]) {
    macro_rules! rows {
        ($($n:literal)*) => {
            match y.len() / k {
                $($n => mix_rows::<$n>(y, k, blocks, values, out),)*
                n => unreachable!("{n} rows: the caller gives 1 to {MAX_ROWS}"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8);
}

/// [`mix`] for `N` rows: two blocks of `k` at a time, so that twice `N` sums are in
/// flight; each block's sums from zero, added to the earlier blocks' in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn mix_rows<const N: usize>(
    y: &[f32],
    k: usize,
    blocks: &[Range<usize>],
    values: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    assert!(y.len() == N * k && values.len() == k * HEAD && out.len() == N * HEAD);
    assert!(blocks.last().is_some_and(|b| b.end == k), "blocks that end at k");
    let (y, v) = (y.as_ptr(), values.as_ptr());
    // One block's step `i` for every row: acc[t] += y[t][i] · values[i].
    // SAFETY (every use): i < k, so each row's i-th value and values' i-th row are in bounds.
    let step = |acc: &mut [__m512; N], i: usize| {
        let w = _mm512_loadu_ps(v.add(i * HEAD));
        for (t, acc) in acc.iter_mut().enumerate() {
            *acc = _mm512_fmadd_ps(_mm512_set1_ps(*y.add(t * k + i)), w, *acc);
        }
    };
    let mut total = [_mm512_setzero_ps(); N];
    let mut first = true;
    let mut add = |acc: [__m512; N]| {
        for (total, acc) in total.iter_mut().zip(acc) {
            *total = if first { acc } else { _mm512_add_ps(*total, acc) };
        }
        first = false;
    };
    for pair in blocks.chunks(2) {
        let (a, b) = (pair[0].clone(), pair.get(1).cloned().unwrap_or(0..0));
        let (mut acc_a, mut acc_b) = ([_mm512_setzero_ps(); N], [_mm512_setzero_ps(); N]);
        let common = a.len().min(b.len());
        for i in 0..common {
            for at in [a.start + i, b.start + i] {
                if let Some(ahead) = values.get((at + PREFETCH_ROWS) * HEAD) {
                    prefetch(ahead);
                }
            }
            step(&mut acc_a, a.start + i);
            step(&mut acc_b, b.start + i);
        }
        for i in a.start + common..a.end {
            step(&mut acc_a, i);
        }
        for i in b.start + common..b.end {
            step(&mut acc_b, i);
        }
        add(acc_a);
        if !b.is_empty() {
            add(acc_b);
        }
    }
    for (t, total) in total.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(t * HEAD), *total);
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::{k_blocks, kernel, lane_tree, libtorch_softmax_mix, softmax_mix, HEAD};
    use crate::sam::products::probe_tensor;
    use crate::torch::gemm::has_avx512;

    #[test]
    fn blocks_are_mkls() {
        let lengths = |k| k_blocks(k).iter().map(|b| b.len()).collect::<Vec<_>>();
        let mut want = vec![384; 9];
        want.extend([320, 320]);
        assert_eq!(lengths(4096), want);
        assert_eq!(lengths(1000), [384, 308, 308]);
        assert_eq!(lengths(768), [384, 384]);
        assert_eq!(lengths(384), [384]);
        assert_eq!(lengths(16), [16]);
        for k in [16, 400, 769, 4096, 8192] {
            let blocks = k_blocks(k);
            assert_eq!(blocks[0].start, 0);
            assert!(
                blocks.windows(2).all(|w| w[0].end == w[1].start),
                "k {k}: contiguous"
            );
            assert_eq!(blocks.last().map(|b| b.end), Some(k));
        }
    }

    #[test]
    fn the_lane_tree_pairs_lanes_as_aten_does() {
        // Lanes whose sum depends on the pairing: 1 + 2^24 rounds away the 1 unless it
        // meets the other 1 first.
        let mut lanes = [0.0f32; HEAD];
        lanes[0] = 16_777_216.0;
        lanes[1] = 1.0;
        lanes[9] = 1.0;
        // Lanes 1 and 9 meet at the first step (1 + 1 = 2), and 2^24 + 2 is exact; a sum
        // left to right rounds each 1 away.
        assert_eq!(lane_tree(lanes), 16_777_218.0);
        // Lanes 1 and 3 meet at the l ^ 2 step, before lane 1 meets 2^24's lane: a tree of
        // neighbours ((l0 + l1) + (l2 + l3)) or a sum left to right loses both 1s.
        lanes[9] = 0.0;
        lanes[3] = 1.0;
        assert_eq!(lane_tree(lanes), 16_777_218.0);
    }

    /// The kernel's whole point: LibTorch's bits, for the decoder's two shapes (a group's
    /// `(B·H, N, HW)` scores, and block 0's `(H, B·N, HW)` scores against one image's
    /// values), and for the 4-D `matmul` the later blocks' reference code calls.
    #[test]
    fn the_fused_kernel_gives_libtorchs_bits() {
        let _guard = tch::no_grad_guard();
        if !has_avx512() {
            eprintln!("no AVX-512 on this CPU: the kernel is never taken here");
            assert!(
                softmax_mix(&probe_tensor(&[1, 1, 16], 1), 1.0, &probe_tensor(&[1, 16, 16], 2)).is_none()
            );
            return;
        }
        for (g, r, k, divisor) in [(32, 7, 4096, 1.0), (8, 28, 4096, 4.0), (3, 5, 1000 - 8, 2.0)] {
            let scores = probe_tensor(&[g, r, k], 5) * 24.0;
            // A row whose other probabilities flush to 0, and a row of equal scores.
            let _ = scores.get(0).get(0).get(7).fill_(400.0);
            let _ = scores.get(g - 1).get(r - 1).fill_(3.0);
            let values = probe_tensor(&[g, k, HEAD as i64], 6) * 8.0;
            let want = libtorch_softmax_mix(&scores, divisor, &values);
            let got = kernel(&scores, (1.0 / divisor) as f32, &values);
            let differ = want.ne_tensor(&got).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(differ, 0, "({g}, {r}, {k}) / {divisor}: {differ} values differ");
            assert!(
                softmax_mix(&scores, divisor, &values).is_some_and(|mixed| mixed.equal(&got)),
                "the generator takes the kernel for ({g}, {r}, {k})"
            );
            // The reference's later blocks: softmax and a 4-D matmul, (B, H, N, HW) by
            // (B, H, HW, c).
            if g == 32 {
                let four = |t: &Tensor| t.view([4, 8, -1, t.size()[2]]);
                let reference = (four(&scores) / divisor)
                    .softmax(-1, None::<Kind>)
                    .matmul(&four(&values));
                assert!(
                    reference.view([g, r, HEAD as i64]).equal(&got),
                    "the 4-D matmul's bits"
                );
            }
        }
    }

    #[test]
    fn other_operands_are_refused() {
        let scores = probe_tensor(&[2, 3, 64], 1);
        let values = probe_tensor(&[2, 64, HEAD as i64], 2);
        assert!(
            softmax_mix(&scores, 3.0, &values).is_none(),
            "divisor 3 is not a power of two"
        );
        assert!(
            softmax_mix(&scores, 1.0, &probe_tensor(&[2, 64, 8], 2)).is_none(),
            "heads of 8"
        );
        assert!(softmax_mix(&probe_tensor(&[2, 3, 60], 1), 1.0, &probe_tensor(&[2, 60, 16], 2)).is_none());
        assert!(softmax_mix(&scores.to_kind(Kind::Double), 1.0, &values).is_none());
        assert!(softmax_mix(&scores, 1.0, &probe_tensor(&[1, 64, HEAD as i64], 2)).is_none());
    }
}
