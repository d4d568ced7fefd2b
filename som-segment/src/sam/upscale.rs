//! Exact shortcuts for SAM's mask upscaling.
//!
//! `Sam.postprocess_masks` upscales every low-resolution mask (`4h × 4w` logits, 256 × 256
//! for the official models) twice with `F.interpolate(mode="bilinear",
//! align_corners=False)`: to the padded model input, and after cropping the padding, to the
//! image. The generator then only asks three questions of every output pixel: is it above
//! `+offset` (stability intersection), above `-offset` (stability union), above 0 (the mask).
//!
//! Bilinear interpolation makes every output pixel a combination, with non-negative weights
//! summing to one, of the low-resolution logits in its *footprint* (at most 3 × 3 of them
//! over both steps). Where a footprint lies entirely above `t` (with a margin that covers
//! float32 rounding), the pixel is above `t` too; entirely below, it is not. Only pixels
//! whose footprint straddles `t` need their value, and those are computed here with exactly
//! the float32 operations LibTorch's kernel performs (same indices, same weights, same
//! fused multiply-adds, same order), so every decision is bit-identical to upscaling
//! everything.
//!
//! LibTorch's CPU kernel has two variants (a generic one and a channels-last one, picked by
//! output size and thread count) and its arithmetic depends on how it was compiled. Rather
//! than trusting a copy of its dispatch rules, [`UpscalePlan::probe`] runs LibTorch's
//! `upsample_bilinear2d` on a random tensor of the real sizes once per geometry and keeps
//! the variant that reproduces every output bit; when none does (another LibTorch, a GPU),
//! there is no plan and the generator upscales with LibTorch as the reference does.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use tch::{Device, Tensor};

/// One output index's two source taps along an axis, as LibTorch computes them
/// (`compute_source_index_and_lambda`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tap {
    pub(crate) i0: u32,
    pub(crate) i1: u32,
    pub(crate) w0: f32,
    pub(crate) w1: f32,
}

/// How one bilinear step combines its four taps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    /// `upsample_non_separable_Nd_kernel_impl`: `t0 * w0 + t1 * w1` per axis, rows outside.
    Generic,
    /// `upsample_linear_channels_last`: `i00 * w00 + i01 * w01 + i10 * w10 + i11 * w11` with
    /// products of the axis weights.
    ChannelsLast,
}

/// A kernel and whether the compiler fused its multiply-adds (and the index arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub(crate) kernel: Kernel,
    pub(crate) fma: bool,
}

impl Variant {
    /// The candidates, most likely first (LibTorch 2.x x86-64 builds fuse).
    const ALL: [Variant; 4] = [
        Variant {
            kernel: Kernel::Generic,
            fma: true,
        },
        Variant {
            kernel: Kernel::ChannelsLast,
            fma: true,
        },
        Variant {
            kernel: Kernel::Generic,
            fma: false,
        },
        Variant {
            kernel: Kernel::ChannelsLast,
            fma: false,
        },
    ];
}

/// `compute_source_index_and_lambda` (align_corners = false, no explicit scale) for every
/// output index of an `input → output` axis.
pub(crate) fn axis_taps(input: usize, output: usize, fma: bool) -> Vec<Tap> {
    if input == output {
        return (0..output)
            .map(|d| Tap {
                i0: d as u32,
                i1: d as u32,
                w0: 1.0,
                w1: 0.0,
            })
            .collect();
    }
    let scale = input as f32 / output as f32;
    let last = input as i64 - 1;
    (0..output)
        .map(|d| {
            let x = d as f32 + 0.5;
            let mut real = if fma {
                scale.mul_add(x, -0.5)
            } else {
                scale * x - 0.5
            };
            if real < 0.0 {
                real = 0.0;
            }
            let i0 = (real.floor() as i64).min(last);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < last { i0 + 1 } else { i0 };
            Tap {
                i0: i0 as u32,
                i1: i1 as u32,
                w0: 1.0 - l1,
                w1: l1,
            }
        })
        .collect()
}

#[inline(always)]
fn comb<const FMA: bool>(t0: f32, w0: f32, t1: f32, w1: f32) -> f32 {
    if FMA {
        t0.mul_add(w0, t1 * w1)
    } else {
        t0 * w0 + t1 * w1
    }
}

/// One bilinear evaluation from the four taps `a = (y0, x0)`, `b = (y0, x1)`, `c = (y1, x0)`,
/// `d = (y1, x1)`.
#[inline(always)]
fn bilinear<const FMA: bool, const CL: bool>(a: f32, b: f32, c: f32, d: f32, ty: Tap, tx: Tap) -> f32 {
    if CL {
        let (w00, w01, w10, w11) = (ty.w0 * tx.w0, ty.w0 * tx.w1, ty.w1 * tx.w0, ty.w1 * tx.w1);
        if FMA {
            let s = a.mul_add(w00, b * w01);
            let s = c.mul_add(w10, s);
            d.mul_add(w11, s)
        } else {
            a * w00 + b * w01 + c * w10 + d * w11
        }
    } else {
        let t0 = comb::<FMA>(a, tx.w0, b, tx.w1);
        let t1 = comb::<FMA>(c, tx.w0, d, tx.w1);
        comb::<FMA>(t0, ty.w0, t1, ty.w1)
    }
}

/// A rectangle of low-resolution logits: rows `r0..r0 + h`, columns `c0..c0 + w`, row-major.
#[derive(Debug, Clone)]
pub(crate) struct LowRes {
    pub(crate) data: Vec<f32>,
    pub(crate) r0: usize,
    pub(crate) c0: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

impl LowRes {
    #[inline(always)]
    fn at(&self, r: u32, c: u32) -> f32 {
        self.data[(r as usize - self.r0) * self.w + (c as usize - self.c0)]
    }

    /// The sub-rectangle rows `rows`, columns `cols` (absolute indices inside `self`).
    pub(crate) fn sub(&self, rows: Range<usize>, cols: Range<usize>) -> LowRes {
        let w = cols.len();
        let mut data = Vec::with_capacity(rows.len() * w);
        for r in rows.clone() {
            let start = (r - self.r0) * self.w + (cols.start - self.c0);
            data.extend_from_slice(&self.data[start..start + w]);
        }
        LowRes {
            data,
            r0: rows.start,
            c0: cols.start,
            h: rows.len(),
            w,
        }
    }
}

/// A run of output indices whose low-resolution footprint is the same `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Group {
    lo: u32,
    hi: u32,
    start: u32,
    end: u32,
}

/// One axis of the two-step upscaling: taps of both steps, footprints and their groups.
#[derive(Debug, Clone)]
struct Axis {
    /// Step 1 taps (low-res → padded input), for the kept input indices only.
    s1: Vec<Tap>,
    /// Step 2 taps (cropped input → output).
    s2: Vec<Tap>,
    groups: Vec<Group>,
    /// For every low-res index `c` (and one past the end): the first group with `lo >= c`.
    first_lo_ge: Vec<u32>,
    /// For every low-res index `c`: one past the last group with `hi <= c`.
    end_hi_le: Vec<u32>,
    /// Low-res indices that reach any output: `0..used`.
    used: usize,
}

impl Axis {
    fn new(low: usize, img: usize, input: usize, output: usize, fma1: bool, fma2: bool) -> Axis {
        let mut s1 = axis_taps(low, img, fma1);
        s1.truncate(input);
        let s2 = axis_taps(input, output, fma2);
        let mut groups: Vec<Group> = Vec::new();
        for (o, t) in s2.iter().enumerate() {
            let lo = s1[t.i0 as usize].i0;
            let hi = s1[t.i1 as usize].i1;
            match groups.last_mut() {
                Some(g) if g.lo == lo && g.hi == hi => g.end = o as u32 + 1,
                _ => groups.push(Group {
                    lo,
                    hi,
                    start: o as u32,
                    end: o as u32 + 1,
                }),
            }
        }
        let used = groups.last().map_or(0, |g| g.hi as usize + 1);
        let mut first_lo_ge = vec![groups.len() as u32; used + 1];
        let mut end_hi_le = vec![0u32; used + 1];
        for c in 0..=used {
            first_lo_ge[c] = groups.partition_point(|g| (g.lo as usize) < c) as u32;
            end_hi_le[c] = groups.partition_point(|g| (g.hi as usize) <= c) as u32;
        }
        Axis {
            s1,
            s2,
            groups,
            first_lo_ge,
            end_hi_le,
            used,
        }
    }

    /// Groups whose footprint meets low-res indices `range`.
    fn groups_meeting(&self, range: Range<usize>) -> Range<usize> {
        let a = self.groups.partition_point(|g| (g.hi as usize) < range.start);
        let b = self.groups.partition_point(|g| (g.lo as usize) < range.end);
        a..b.max(a)
    }
}

/// Everything needed to answer threshold questions about upscaled masks of one geometry
/// exactly: `low` logits → `img × img` (step 1), crop to `input`, → `output` (step 2).
#[derive(Debug, Clone)]
pub(crate) struct UpscalePlan {
    rows: Axis,
    cols: Axis,
    v1: Variant,
    v2: Variant,
}

/// The geometry of one upscaling, the key of the probe cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Geometry {
    low: (usize, usize),
    img: usize,
    input: (usize, usize),
    output: (usize, usize),
    threads: i32,
    device: DeviceKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DeviceKey {
    Cpu,
    Other(i64),
}

/// Probe results: the variants of both steps per geometry, `None` when none matched.
type ProbeCache = Mutex<HashMap<Geometry, Option<(Variant, Variant)>>>;

fn probe_cache() -> &'static ProbeCache {
    static CACHE: OnceLock<ProbeCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Deterministic probe values: logits of both signs and varied magnitudes.
pub(super) fn probe_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            (u - 0.5) * 24.0
        })
        .collect()
}

fn to_vec(t: &Tensor) -> Option<Vec<f32>> {
    let t = t.f_to_device(Device::Cpu).ok()?.f_contiguous().ok()?;
    Vec::<f32>::try_from(&t.flatten(0, -1)).ok()
}

impl UpscalePlan {
    /// The plan for masks of `low` logits upscaled like `Sam.postprocess_masks` to `img`,
    /// cropped to `input` and resized to `output` (all `(height, width)`), with the
    /// arithmetic LibTorch uses here and now on `device`; `None` when no known variant
    /// reproduces LibTorch bit for bit.
    pub(crate) fn probe(
        low: (usize, usize),
        img: usize,
        input: (usize, usize),
        output: (usize, usize),
        device: Device,
    ) -> Option<UpscalePlan> {
        if low.0 == 0 || low.1 == 0 || input.0 == 0 || input.1 == 0 || output.0 == 0 || output.1 == 0 {
            return None;
        }
        if input.0 > img || input.1 > img {
            return None;
        }
        let geometry = Geometry {
            low,
            img,
            input,
            output,
            threads: tch::get_num_threads(),
            device: match device {
                Device::Cpu => DeviceKey::Cpu,
                Device::Cuda(i) => DeviceKey::Other(i as i64),
                _ => DeviceKey::Other(-1),
            },
        };
        let cached = probe_cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&geometry)
            .copied();
        let variants = match cached {
            Some(v) => v,
            None => {
                let found = Self::find_variants(&geometry, device);
                probe_cache()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(geometry, found);
                found
            }
        };
        let (v1, v2) = variants?;
        Some(Self::with_variants(low, img, input, output, v1, v2))
    }

    fn with_variants(
        low: (usize, usize),
        img: usize,
        input: (usize, usize),
        output: (usize, usize),
        v1: Variant,
        v2: Variant,
    ) -> UpscalePlan {
        UpscalePlan {
            rows: Axis::new(low.0, img, input.0, output.0, v1.fma, v2.fma),
            cols: Axis::new(low.1, img, input.1, output.1, v1.fma, v2.fma),
            v1,
            v2,
        }
    }

    /// Runs LibTorch on random logits of this geometry (three channels, as the generator's
    /// multimask batches have, since the kernel choice can depend on it) and returns the
    /// first variant of each step that reproduces every bit.
    fn find_variants(g: &Geometry, device: Device) -> Option<(Variant, Variant)> {
        let _guard = tch::no_grad_guard();
        let (lh, lw) = g.low;
        let n = 3 * lh * lw;
        let values = probe_values(n, (lh * 31 + lw) as u64);
        let x = Tensor::f_from_slice(&values)
            .ok()?
            .view([1, 3, lh as i64, lw as i64])
            .f_to_device(device)
            .ok()?;
        let img = g.img as i64;
        let (ih, iw) = (g.input.0 as i64, g.input.1 as i64);
        let (oh, ow) = (g.output.0 as i64, g.output.1 as i64);
        let up1 = x.f_upsample_bilinear2d([img, img], false, None, None).ok()?;
        let cropped = up1.narrow(-2, 0, ih).narrow(-1, 0, iw);
        let up2 = cropped.f_upsample_bilinear2d([oh, ow], false, None, None).ok()?;
        let want1 = to_vec(&cropped.get(0).get(0))?;
        let want2 = to_vec(&up2.get(0).get(0))?;
        let low = LowRes {
            data: values[..lh * lw].to_vec(),
            r0: 0,
            c0: 0,
            h: lh,
            w: lw,
        };
        let v1 = Variant::ALL.into_iter().find(|v| {
            let rows = axis_taps(lh, g.img, v.fma);
            let cols = axis_taps(lw, g.img, v.fma);
            let mut i = 0;
            (0..g.input.0).all(|m| {
                (0..g.input.1).all(|xx| {
                    let got = step1(*v, &low, rows[m], cols[xx]);
                    i += 1;
                    got.to_bits() == want1[i - 1].to_bits()
                })
            })
        })?;
        let v2 = Variant::ALL.into_iter().find(|v| {
            let rows = axis_taps(g.input.0, g.output.0, v.fma);
            let cols = axis_taps(g.input.1, g.output.1, v.fma);
            let at = |r: u32, c: u32| want1[r as usize * g.input.1 + c as usize];
            let mut i = 0;
            (0..g.output.0).all(|y| {
                (0..g.output.1).all(|xx| {
                    let (ty, tx) = (rows[y], cols[xx]);
                    let got = dispatch(
                        *v,
                        at(ty.i0, tx.i0),
                        at(ty.i0, tx.i1),
                        at(ty.i1, tx.i0),
                        at(ty.i1, tx.i1),
                        ty,
                        tx,
                    );
                    i += 1;
                    got.to_bits() == want2[i - 1].to_bits()
                })
            })
        })?;
        Some((v1, v2))
    }

    /// The output size `(height, width)`.
    #[cfg(test)]
    pub(crate) fn output(&self) -> (usize, usize) {
        (self.rows.s2.len(), self.cols.s2.len())
    }

    /// Low-res rows and columns that reach the output: `(0..rows, 0..cols)`.
    pub(crate) fn used(&self) -> (usize, usize) {
        (self.rows.used, self.cols.used)
    }

    /// Exact upscaled values of the output rectangle `rows × cols`, row-major, from logits
    /// that cover its footprint.
    fn eval_block(&self, low: &LowRes, rows: Range<usize>, cols: Range<usize>, out: &mut Vec<f32>) {
        out.clear();
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if (self.v1.fma || self.v2.fma) && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports FMA (checked just above), which is the only
                // requirement of the target-feature function.
                unsafe { self.eval_block_fma(low, rows, cols, out) };
                return;
            }
        }
        self.eval_block_any(low, rows, cols, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn eval_block_fma(
        &self,
        low: &LowRes,
        rows: Range<usize>,
        cols: Range<usize>,
        out: &mut Vec<f32>,
    ) {
        self.eval_block_any(low, rows, cols, out);
    }

    #[inline(always)]
    fn eval_block_any(&self, low: &LowRes, rows: Range<usize>, cols: Range<usize>, out: &mut Vec<f32>) {
        let (r2, c2) = (&self.rows.s2, &self.cols.s2);
        let m0 = r2[rows.start].i0 as usize;
        let m1 = r2[rows.end - 1].i1 as usize + 1;
        let x0 = c2[cols.start].i0 as usize;
        let x1 = c2[cols.end - 1].i1 as usize + 1;
        let sw = x1 - x0;
        // Step 1 on the intermediate grid the block needs.
        let mut s = Vec::with_capacity((m1 - m0) * sw);
        for m in m0..m1 {
            let ty = self.rows.s1[m];
            for xi in x0..x1 {
                s.push(step1(self.v1, low, ty, self.cols.s1[xi]));
            }
        }
        let at = |m: u32, x: u32| s[(m as usize - m0) * sw + (x as usize - x0)];
        out.reserve(rows.len() * cols.len());
        for y in rows {
            let ty = r2[y];
            for xx in cols.clone() {
                let tx = c2[xx];
                out.push(dispatch(
                    self.v2,
                    at(ty.i0, tx.i0),
                    at(ty.i0, tx.i1),
                    at(ty.i1, tx.i0),
                    at(ty.i1, tx.i1),
                    ty,
                    tx,
                ));
            }
        }
    }

    /// Walks the output pixels that may lie above `t` for the logits `low` (which must cover
    /// every low-res pixel at or above `t - margin` plus two pixels around them, within
    /// [`Self::used`]): `visit(rows, cols, None)` for rectangles certainly above `t`,
    /// `visit(rows, cols, Some(values))` with the exact values (row-major) where the
    /// footprint straddles `t`. Pixels not visited are certainly not above `t`.
    pub(crate) fn walk(
        &self,
        low: &LowRes,
        t: f32,
        margin: f32,
        mut visit: impl FnMut(Range<usize>, Range<usize>, Option<&[f32]>),
    ) {
        let Some(Window {
            active: (ar, ac),
            rows: wr,
            cols: wc,
        }) = window(low, t, margin)
        else {
            return;
        };
        let exact_everywhere = !margin.is_finite();
        let (ar0, ar1, ac0, ac1) = (ar.start, ar.end, ac.start, ac.end);
        let (wr0, wr1, wc0, wc1) = (wr.start, wr.end, wc.start, wc.end);
        let ww = wc1 - wc0;
        let words = ww.div_ceil(64);
        // Above / below bitsets per low-res row of the window.
        let mut above = vec![0u64; (wr1 - wr0) * words];
        let mut below = vec![0u64; (wr1 - wr0) * words];
        if !exact_everywhere {
            for r in wr0..wr1 {
                let row = &low.data[(r - low.r0) * low.w + (wc0 - low.c0)..][..ww];
                let base = (r - wr0) * words;
                for (c, &v) in row.iter().enumerate() {
                    if v > t + margin {
                        above[base + c / 64] |= 1 << (c % 64);
                    } else if v < t - margin {
                        below[base + c / 64] |= 1 << (c % 64);
                    }
                }
            }
        }
        let row_groups = self.rows.groups_meeting(ar0..ar1);
        let col_groups = self.cols.groups_meeting(ac0..ac1);
        if col_groups.is_empty() {
            return;
        }
        let mut a = vec![0u64; words];
        let mut b = vec![0u64; words];
        let mut covered: Vec<(usize, usize)> = Vec::new();
        let mut values = Vec::new();
        for g in &self.rows.groups[row_groups] {
            let (lo, hi) = (g.lo as usize, g.hi as usize);
            let ys = g.start as usize..g.end as usize;
            a.iter_mut().for_each(|w| *w = !0);
            b.iter_mut().for_each(|w| *w = !0);
            for r in lo..=hi {
                let base = (r - wr0) * words;
                for k in 0..words {
                    a[k] &= above[base + k];
                    b[k] &= below[base + k];
                }
            }
            // Column groups fully inside runs of `a` (certainly above) or `b` (certainly
            // below), as group-index intervals.
            covered.clear();
            for (bits, is_above) in [(&a, true), (&b, false)] {
                for (s, e) in runs(bits, ww) {
                    let (s, e) = (s + wc0, e + wc0);
                    let first = self.cols.first_lo_ge[s] as usize;
                    let end = self.cols.end_hi_le[e - 1] as usize;
                    let (first, end) = (first.max(col_groups.start), end.min(col_groups.end));
                    if first < end {
                        covered.push((first, end));
                        if is_above {
                            let xs = self.cols.groups[first].start as usize
                                ..self.cols.groups[end - 1].end as usize;
                            visit(ys.clone(), xs, None);
                        }
                    }
                }
            }
            covered.sort_unstable();
            // The rest of the column groups straddle t: exact values.
            let mut next = col_groups.start;
            for &(s, e) in covered
                .iter()
                .chain(std::iter::once(&(col_groups.end, col_groups.end)))
            {
                if s > next {
                    let xs = self.cols.groups[next].start as usize..self.cols.groups[s - 1].end as usize;
                    self.eval_block(low, ys.clone(), xs.clone(), &mut values);
                    visit(ys.clone(), xs, Some(&values));
                }
                next = next.max(e);
            }
        }
    }
}

/// Where a threshold question about one mask has to look, in absolute low-res indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// The bounding rectangle of the logits not certainly below the threshold.
    pub(crate) active: (Range<usize>, Range<usize>),
    /// `active` grown by the footprint's reach (two pixels), inside the given logits: all
    /// the logits any output pixel that may lie above the threshold depends on.
    pub(crate) rows: Range<usize>,
    /// Columns of the same.
    pub(crate) cols: Range<usize>,
}

/// The [`Window`] of `low` for threshold `t`, `None` when every logit is certainly below it.
pub(crate) fn window(low: &LowRes, t: f32, margin: f32) -> Option<Window> {
    let exact_everywhere = !margin.is_finite();
    let (mut ar0, mut ar1, mut ac0, mut ac1) = (usize::MAX, 0, usize::MAX, 0);
    for r in 0..low.h {
        let row = &low.data[r * low.w..(r + 1) * low.w];
        let mut first = None;
        let mut last = 0;
        for (c, &v) in row.iter().enumerate() {
            if exact_everywhere || v.is_nan() || v >= t - margin {
                first.get_or_insert(c);
                last = c;
            }
        }
        if let Some(f) = first {
            ar0 = ar0.min(r);
            ar1 = r + 1;
            ac0 = ac0.min(f);
            ac1 = ac1.max(last + 1);
        }
    }
    if ar0 == usize::MAX {
        return None;
    }
    let (ar, ac) = (ar0 + low.r0..ar1 + low.r0, ac0 + low.c0..ac1 + low.c0);
    let rows = ar.start.saturating_sub(2).max(low.r0)..(ar.end + 2).min(low.r0 + low.h);
    let cols = ac.start.saturating_sub(2).max(low.c0)..(ac.end + 2).min(low.c0 + low.w);
    Some(Window {
        active: (ar, ac),
        rows,
        cols,
    })
}

/// Step 1 at one intermediate pixel.
#[inline(always)]
fn step1(v: Variant, low: &LowRes, ty: Tap, tx: Tap) -> f32 {
    dispatch(
        v,
        low.at(ty.i0, tx.i0),
        low.at(ty.i0, tx.i1),
        low.at(ty.i1, tx.i0),
        low.at(ty.i1, tx.i1),
        ty,
        tx,
    )
}

#[inline(always)]
fn dispatch(v: Variant, a: f32, b: f32, c: f32, d: f32, ty: Tap, tx: Tap) -> f32 {
    match (v.fma, v.kernel) {
        (true, Kernel::Generic) => bilinear::<true, false>(a, b, c, d, ty, tx),
        (true, Kernel::ChannelsLast) => bilinear::<true, true>(a, b, c, d, ty, tx),
        (false, Kernel::Generic) => bilinear::<false, false>(a, b, c, d, ty, tx),
        (false, Kernel::ChannelsLast) => bilinear::<false, true>(a, b, c, d, ty, tx),
    }
}

/// Maximal runs of set bits among the first `n` bits, as `[start, end)`.
fn runs(bits: &[u64], n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let word = bits[i / 64] >> (i % 64);
        if word == 0 {
            i = (i / 64 + 1) * 64;
            continue;
        }
        i += word.trailing_zeros() as usize;
        if i >= n {
            break;
        }
        let start = i;
        loop {
            let word = !bits[i / 64] >> (i % 64);
            let step = if word == 0 {
                64 - i % 64
            } else {
                word.trailing_zeros() as usize
            };
            i += step;
            if word != 0 || i >= n {
                break;
            }
        }
        out.push((start, i.min(n)));
    }
    out
}

/// The margin around a threshold inside which a footprint's logits leave the upscaled value
/// undecided: 64 float32 rounding units of the largest logit magnitude (the two bilinear
/// steps round at most 16 times), at least one; infinite when a logit is not finite.
pub(crate) fn margin(low: &LowRes) -> f32 {
    let mut m = 1.0f32;
    for &v in &low.data {
        if !v.is_finite() {
            return f32::INFINITY;
        }
        m = m.max(v.abs());
    }
    m * (1.0 / (1u32 << 18) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_finds_maximal_intervals() {
        let mut bits = vec![0u64; 3];
        for i in [0, 1, 2, 63, 64, 65, 130] {
            bits[i / 64] |= 1 << (i % 64);
        }
        assert_eq!(runs(&bits, 150), vec![(0, 3), (63, 66), (130, 131)]);
        assert_eq!(runs(&bits, 65), vec![(0, 3), (63, 65)]);
        assert_eq!(runs(&[!0u64, !0u64], 100), vec![(0, 100)]);
        assert!(runs(&[0], 64).is_empty());
    }

    /// Logits like a decoder's: smooth blobs of tens of units, plus noise, plus values
    /// placed exactly on and next to the thresholds.
    fn logits(h: usize, w: usize, seed: u64) -> Vec<f32> {
        let noise = probe_values(h * w, seed);
        let mut v: Vec<f32> = (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f32 / h as f32, (i % w) as f32 / w as f32);
                let blob = ((x * 7.0 + seed as f32).sin() + (y * 5.0).cos()) * 20.0;
                blob + noise[i] * 0.05
            })
            .collect();
        for (i, x) in v.iter_mut().enumerate().step_by(37) {
            *x = [0.0, 1.0, -1.0, f32::EPSILON, -1.0 - f32::EPSILON, 1e-30][i % 6];
        }
        v
    }

    /// Decisions of the plan against LibTorch upscaling everything, on several geometries
    /// (up- and downscaling, identity, odd sizes).
    #[test]
    fn decisions_match_libtorch_upscaling() {
        let geometries = [
            ((40, 40), 160, (106, 160), (133, 200)),
            ((24, 24), 96, (96, 50), (77, 40)),
            ((40, 40), 160, (160, 107), (100, 67)),
            ((16, 16), 64, (64, 64), (64, 64)),
            ((12, 20), 80, (80, 31), (201, 77)),
        ];
        for (gi, (low, img, input, output)) in geometries.into_iter().enumerate() {
            let plan = UpscalePlan::probe(low, img, input, output, Device::Cpu).expect("a known variant");
            assert_eq!(plan.output(), output);
            for seed in 0..3u64 {
                let data = logits(low.0, low.1, 10 * gi as u64 + seed);
                let t = Tensor::from_slice(&data).view([1, 1, low.0 as i64, low.1 as i64]);
                let t = t.repeat([1, 3, 1, 1]);
                let up = t
                    .upsample_bilinear2d([img as i64, img as i64], false, None, None)
                    .narrow(2, 0, input.0 as i64)
                    .narrow(3, 0, input.1 as i64)
                    .upsample_bilinear2d([output.0 as i64, output.1 as i64], false, None, None);
                let want = to_vec(&up.get(0).get(0)).unwrap();
                let (ur, uc) = plan.used();
                let mut sub = Vec::new();
                for r in 0..ur {
                    sub.extend_from_slice(&data[r * low.1..r * low.1 + uc]);
                }
                let low_res = LowRes {
                    data: sub,
                    r0: 0,
                    c0: 0,
                    h: ur,
                    w: uc,
                };
                let m = margin(&low_res);
                for thr in [1.0f32, 0.0, -1.0, 17.5] {
                    let mut got = vec![0u8; output.0 * output.1];
                    plan.walk(&low_res, thr, m, |ys, xs, values| {
                        for (j, y) in ys.clone().enumerate() {
                            for (k, x) in xs.clone().enumerate() {
                                let above = values.is_none_or(|v| v[j * xs.len() + k] > thr);
                                assert_eq!(got[y * output.1 + x], 0, "pixel visited twice");
                                got[y * output.1 + x] = if above { 1 } else { 2 };
                            }
                        }
                    });
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g == 1,
                            w > thr,
                            "geometry {gi} seed {seed} t {thr} pixel {i}: {w}"
                        );
                    }
                    // Exact values where visited: bit-identical to LibTorch.
                    plan.walk(&low_res, thr, m, |ys, xs, values| {
                        if let Some(v) = values {
                            for (j, y) in ys.clone().enumerate() {
                                for (k, x) in xs.clone().enumerate() {
                                    assert_eq!(
                                        v[j * xs.len() + k].to_bits(),
                                        want[y * output.1 + x].to_bits()
                                    );
                                }
                            }
                        }
                    });
                }
            }
        }
    }

    #[test]
    fn non_finite_logits_are_decided_exactly() {
        let (low, img, input, output) = ((16, 16), 64, (64, 40), (50, 31));
        let plan = UpscalePlan::probe(low, img, input, output, Device::Cpu).expect("a known variant");
        let mut data = logits(16, 16, 99);
        data[5 * 16 + 3] = f32::NAN;
        data[9 * 16 + 7] = f32::INFINITY;
        data[2 * 16 + 8] = f32::NEG_INFINITY;
        let t = Tensor::from_slice(&data)
            .view([1, 1, 16, 16])
            .repeat([1, 3, 1, 1]);
        let up = t
            .upsample_bilinear2d([64, 64], false, None, None)
            .narrow(3, 0, 40)
            .upsample_bilinear2d([50, 31], false, None, None);
        let want = to_vec(&up.get(0).get(0)).unwrap();
        let (ur, uc) = plan.used();
        let low_res = LowRes {
            data: (0..ur).flat_map(|r| data[r * 16..r * 16 + uc].to_vec()).collect(),
            r0: 0,
            c0: 0,
            h: ur,
            w: uc,
        };
        let m = margin(&low_res);
        assert!(m.is_infinite());
        let mut above = 0usize;
        plan.walk(&low_res, 0.0, m, |_, _, values| {
            above += values.expect("all exact").iter().filter(|&&v| v > 0.0).count();
        });
        assert_eq!(above, want.iter().filter(|&&v| v > 0.0).count());
    }

    #[test]
    fn taps_match_the_identity_and_the_edges() {
        let t = axis_taps(4, 4, true);
        assert_eq!(
            t[2],
            Tap {
                i0: 2,
                i1: 2,
                w0: 1.0,
                w1: 0.0
            }
        );
        let t = axis_taps(256, 1024, true);
        assert_eq!((t[0].i0, t[0].i1, t[0].w1), (0, 1, 0.0));
        assert_eq!((t[1023].i0, t[1023].i1), (255, 255));
        assert_eq!((t[5].i0, t[5].w1), (0, 0.875));
        assert_eq!((t[6].i0, t[6].w1), (1, 0.125));
    }
}
