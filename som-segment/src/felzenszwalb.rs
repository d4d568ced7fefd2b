//! Felzenszwalb–Huttenlocher graph segmentation with the semantics of
//! `skimage.segmentation.felzenszwalb` (scikit-image 0.26).
//!
//! What skimage does, and this module reproduces step by step:
//!
//! 1. The image becomes float64 in `[0, 1]` (`img_as_float64`: `u8 * (1/255)`,
//!    `u16 * (1/65535)`); grayscale stays one channel, colour is three.
//! 2. Each channel is smoothed with `scipy.ndimage.gaussian_filter`
//!    (`sigma` on both image axes, none across channels, `mode="reflect"`
//!    — half-sample symmetric —, `truncate=4`, so a kernel of radius
//!    `int(4 * sigma + 0.5)`), rows first, then columns.
//! 3. The graph is the 8-neighbourhood: each pixel is joined to its right,
//!    lower, lower-right and upper-right neighbour. An edge's weight is the
//!    Euclidean distance of the two smoothed colours.
//! 4. Edges are visited by increasing weight; two components merge when the
//!    weight is below `min(Int(A) + k/|A|, Int(B) + k/|B|)` with
//!    `k = scale / 255`, and the merged component's internal difference
//!    becomes that weight (the thresholds are rounded to `f32`, as skimage's
//!    Cython does).
//! 5. A second pass over the same sorted edges joins every edge one of whose
//!    components is smaller than `min_size`.
//! 6. Labels are numbered in order of first appearance (row-major).
//!
//! skimage sorts with NumPy's non-stable `argsort`, so edges of exactly equal
//! weight may be visited in another order there; this implementation breaks
//! ties by pixel position (a stable radix sort), which keeps the result
//! deterministic. On the bundled photos the partitions agree with an
//! adjusted Rand index above 0.9 (see `tests/felzenszwalb.rs`).

use image::DynamicImage;
use rayon::prelude::*;
use som_core::{ImageSize, Segmentation, Segmenter, SomError};

use crate::error::SegmentError;
use crate::labels::LabelMap;

/// Parameters of [`felzenszwalb()`], named and defaulted as in skimage.
///
/// ```
/// use som_segment::FelzenszwalbParams;
/// let p = FelzenszwalbParams::default();
/// assert_eq!((p.scale, p.sigma, p.min_size), (1.0, 0.8, 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FelzenszwalbParams {
    /// Observation level `k` (higher: fewer, larger segments). skimage divides
    /// it by 255 because it works on `[0, 1]` colours.
    pub scale: f64,
    /// Standard deviation of the Gaussian pre-smoothing, in pixels (0: none).
    pub sigma: f64,
    /// Minimum segment size in pixels, enforced by post-merging.
    pub min_size: usize,
}

impl Default for FelzenszwalbParams {
    /// skimage's defaults: `scale=1, sigma=0.8, min_size=20`.
    fn default() -> Self {
        Self {
            scale: 1.0,
            sigma: 0.8,
            min_size: 20,
        }
    }
}

impl FelzenszwalbParams {
    /// The parameters used for the reference comparison and as the first
    /// stage of the `classic` segmenter: `scale=100, sigma=0.5, min_size=50`.
    pub const REFERENCE: FelzenszwalbParams = FelzenszwalbParams {
        scale: 100.0,
        sigma: 0.5,
        min_size: 50,
    };

    /// Checks the ranges: `scale` finite and non-negative, `sigma` finite and
    /// non-negative.
    ///
    /// # Errors
    /// [`SegmentError::Param`] naming the parameter.
    pub fn validate(&self) -> Result<(), SegmentError> {
        if !self.scale.is_finite() || self.scale < 0.0 {
            return Err(SegmentError::param(
                "scale",
                format!("{} must be a finite number >= 0", self.scale),
            ));
        }
        if !self.sigma.is_finite() || self.sigma < 0.0 {
            return Err(SegmentError::param(
                "sigma",
                format!("{} must be a finite number >= 0", self.sigma),
            ));
        }
        if self.sigma > 1000.0 {
            return Err(SegmentError::param(
                "sigma",
                format!("{} is unreasonably large (> 1000)", self.sigma),
            ));
        }
        Ok(())
    }
}

/// The largest image [`felzenszwalb()`] accepts: 50 megapixels (it needs
/// about 150 bytes per pixel, so 7.5 GB at this size).
pub const MAX_PIXELS: u64 = 50_000_000;

/// The image as float64 planes in `[0, 1]`, one per channel (1 or 3).
pub(crate) struct Planes {
    pub(crate) size: ImageSize,
    pub(crate) planes: Vec<Vec<f64>>,
}

/// Checks the image size for [`felzenszwalb()`].
fn check_size(size: ImageSize) -> Result<(), SegmentError> {
    if size.is_empty() {
        return Err(SegmentError::Image(format!("the image is empty ({size})")));
    }
    if size.pixels() > MAX_PIXELS {
        return Err(SegmentError::Image(format!(
            "{size} has more than {MAX_PIXELS} pixels (Felzenszwalb needs about 150 bytes per pixel); downscale it first"
        )));
    }
    Ok(())
}

/// A sample type and its `img_as_float64` conversion.
trait Sample: Copy + Sync {
    fn to_f64(self) -> f64;
}

impl Sample for u8 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64 * (1.0 / 255.0)
    }
}

impl Sample for u16 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64 * (1.0 / 65535.0)
    }
}

impl Sample for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        let v = self as f64;
        if v.is_finite() {
            v
        } else {
            0.0
        }
    }
}

/// One channel of interleaved samples: sample `i` is `data[i * stride + offset]`.
struct Channel<'a, T> {
    data: &'a [T],
    stride: usize,
    offset: usize,
}

impl<T: Sample> Channel<'_, T> {
    #[inline]
    fn get(&self, i: usize) -> f64 {
        self.data[i * self.stride + self.offset].to_f64()
    }
}

/// The first `keep` channels of interleaved `data`, converted and smoothed.
fn smooth_all<T: Sample>(
    data: &[T],
    channels: usize,
    keep: usize,
    size: ImageSize,
    sigma: f64,
) -> Vec<Vec<f64>> {
    (0..keep)
        .into_par_iter()
        .map(|offset| {
            let ch = Channel {
                data,
                stride: channels,
                offset,
            };
            smooth_channel(&ch, size, sigma)
        })
        .collect()
}

/// Converts the image the way skimage's `img_as_float64` does (`u8 *
/// (1/255)`, `u16 * (1/65535)`, floats as they are with non-finite values
/// read as 0; alpha dropped, grayscale kept as one channel) and smooths each
/// channel (see [`smooth_channel`]).
pub(crate) fn smoothed_planes(image: &DynamicImage, sigma: f64) -> Result<Planes, SegmentError> {
    let size = ImageSize::new(image.width(), image.height());
    check_size(size)?;
    let planes = match image {
        DynamicImage::ImageLuma8(im) => smooth_all(im.as_raw(), 1, 1, size, sigma),
        DynamicImage::ImageLumaA8(im) => smooth_all(im.as_raw(), 2, 1, size, sigma),
        DynamicImage::ImageRgb8(im) => smooth_all(im.as_raw(), 3, 3, size, sigma),
        DynamicImage::ImageRgba8(im) => smooth_all(im.as_raw(), 4, 3, size, sigma),
        DynamicImage::ImageLuma16(im) => smooth_all(im.as_raw(), 1, 1, size, sigma),
        DynamicImage::ImageLumaA16(im) => smooth_all(im.as_raw(), 2, 1, size, sigma),
        DynamicImage::ImageRgb16(im) => smooth_all(im.as_raw(), 3, 3, size, sigma),
        DynamicImage::ImageRgba16(im) => smooth_all(im.as_raw(), 4, 3, size, sigma),
        DynamicImage::ImageRgb32F(im) => smooth_all(im.as_raw(), 3, 3, size, sigma),
        DynamicImage::ImageRgba32F(im) => smooth_all(im.as_raw(), 4, 3, size, sigma),
        other => smooth_all(other.to_rgb8().as_raw(), 3, 3, size, sigma),
    };
    Ok(Planes { size, planes })
}

/// NumPy's pairwise summation (`np.sum` of a contiguous float64 array), so the
/// kernel normalisation rounds as scipy's does.
fn numpy_sum(a: &[f64]) -> f64 {
    if a.len() < 8 {
        let mut res = -0.0;
        for &v in a {
            res += v;
        }
        res
    } else if a.len() <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i + 8 <= a.len() {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < a.len() {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = a.len() / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// scipy's `_gaussian_kernel1d(sigma, 0, radius)`: weights for offsets
/// `-radius..=radius`.
pub(crate) fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as i64;
    let c = -0.5 / (sigma * sigma);
    let phi: Vec<f64> = (-radius..=radius).map(|x| (c * (x * x) as f64).exp()).collect();
    let total = numpy_sum(&phi);
    phi.into_iter().map(|v| v / total).collect()
}

/// Index of `i` (which may lie outside `0..n`) under scipy's `reflect` mode
/// (`d c b a | a b c d | d c b a`).
#[inline]
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let mut m = i.rem_euclid(period);
    if m >= n {
        m = period - 1 - m;
    }
    m as usize
}

/// One channel smoothed as `scipy.ndimage.gaussian_filter(plane, sigma,
/// mode="reflect", truncate=4.0)` would smooth its float64 conversion:
/// axis 0 (down the columns, read straight from the image), then axis 1
/// (along the rows, in place), each with scipy's symmetric correlation order
/// (`in[0]·w0`, then `(in[-j] + in[j])·wj` from the outermost tap in).
fn smooth_channel<T: Sample>(ch: &Channel<'_, T>, size: ImageSize, sigma: f64) -> Vec<f64> {
    let w = size.width as usize;
    let h = size.height as usize;
    if sigma <= 1e-15 {
        return (0..w * h).map(|i| ch.get(i)).collect();
    }
    let k = gaussian_kernel(sigma);
    let r = k.len() / 2;
    let centre = k[r];
    let mut plane = vec![0.0f64; w * h];
    // Axis 0.
    plane.par_chunks_mut(w).enumerate().for_each(|(y, out)| {
        let row = |yy: i64| reflect(yy, h as i64) * w;
        let here = row(y as i64);
        for (x, o) in out.iter_mut().enumerate() {
            *o = ch.get(here + x) * centre;
        }
        for j in (1..=r).rev() {
            let up = row(y as i64 - j as i64);
            let down = row(y as i64 + j as i64);
            let wj = k[r - j];
            for (x, o) in out.iter_mut().enumerate() {
                *o += (ch.get(up + x) + ch.get(down + x)) * wj;
            }
        }
    });
    // Axis 1.
    plane.par_chunks_mut(w).for_each(|row| {
        let mut line = Vec::with_capacity(w + 2 * r);
        for i in -(r as i64)..(w + r) as i64 {
            line.push(row[reflect(i, w as i64)]);
        }
        for (x, out) in row.iter_mut().enumerate() {
            let c = x + r;
            let mut acc = line[c] * centre;
            for j in (1..=r).rev() {
                acc += (line[c - j] + line[c + j]) * k[r - j];
            }
            *out = acc;
        }
    });
    plane
}

/// The smoothed image's planes and the edge geometry.
struct Smoothed<'a> {
    width: usize,
    planes: &'a [Vec<f64>],
    /// Index offset of the other end for each direction (wrapping: up-right
    /// is `1 - width`). A table, not a `match`: directions come in random
    /// order in the merge loops and a branch would mispredict half the time.
    offsets: [usize; 4],
}

impl<'a> Smoothed<'a> {
    fn new(planes: &'a Planes) -> Self {
        let width = planes.size.width as usize;
        Self {
            width,
            planes: &planes.planes,
            offsets: [1, width, width + 1, 1usize.wrapping_sub(width)],
        }
    }

    /// The two ends of edge `id` (`pixel * 4 + direction`).
    #[inline]
    fn ends(&self, id: u32) -> (usize, usize) {
        let p = (id >> 2) as usize;
        (p, p.wrapping_add(self.offsets[(id & 3) as usize]))
    }

    /// skimage's weight: `sqrt(sum over channels of (b - a)^2)`, summed in
    /// channel order.
    #[inline]
    fn weight(&self, a: usize, b: usize) -> f64 {
        let mut s = -0.0f64;
        for plane in self.planes {
            let d = plane[b] - plane[a];
            s += d * d;
        }
        s.sqrt()
    }
}

/// The weights of all edges, indexed by `pixel * 4 + direction`
/// (directions right, down, down-right, up-right); edges that leave the
/// image get infinity.
fn edge_weights(img: &Smoothed, height: usize) -> Vec<f64> {
    let w = img.width;
    let h = height;
    let mut weights = vec![f64::INFINITY; w * h * 4];
    weights.par_chunks_mut(4 * w).enumerate().for_each(|(y, row)| {
        for x in 0..w {
            let i = y * w + x;
            let o = &mut row[4 * x..4 * x + 4];
            if x + 1 < w {
                o[0] = img.weight(i, i + 1);
                if y + 1 < h {
                    o[2] = img.weight(i, i + w + 1);
                }
                if y > 0 {
                    o[3] = img.weight(i, i + 1 - w);
                }
            }
            if y + 1 < h {
                o[1] = img.weight(i, i + w);
            }
        }
    });
    weights
}

/// The `f32` sort key of a weight (rounding to nearest is monotone, so the
/// key order agrees with the weight order except inside runs of equal keys).
#[inline]
fn key(w: f64) -> u32 {
    (w as f32).to_bits()
}

/// Bits of the key used by the first (global) pass: bits 19..31 (the sign
/// bit is always 0 for weights, which are non-negative).
const TOP_SHIFT: u32 = 19;
const TOP_BUCKETS: usize = 1 << 12;

/// Orders the finite `weights` exactly, ties by index, and returns them with
/// their indices.
///
/// One global counting pass distributes the edges by the top 12 bits of
/// their `f32` key (stably, so indices stay increasing); each bucket (a few
/// thousand edges, cache-resident) is then sorted on its remaining 19 key
/// bits by a two-pass LSD radix sort, and runs of equal `f32` keys are
/// re-sorted by the exact `f64` weight where needed. Buckets are sorted in
/// parallel.
fn sort_edges(weights: Vec<f64>) -> (Vec<f64>, Vec<u32>) {
    let top = |w: f64| (key(w) >> TOP_SHIFT) as usize & (TOP_BUCKETS - 1);
    let hist = weights
        .par_chunks(1 << 16)
        .map(|chunk| {
            let mut h = vec![0u32; TOP_BUCKETS];
            for &w in chunk {
                if w != f64::INFINITY {
                    h[top(w)] += 1;
                }
            }
            h
        })
        .reduce(
            || vec![0u32; TOP_BUCKETS],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        );
    let n: usize = hist.iter().map(|&c| c as usize).sum();
    let mut starts = vec![0usize; TOP_BUCKETS + 1];
    for b in 0..TOP_BUCKETS {
        starts[b + 1] = starts[b] + hist[b] as usize;
    }
    let mut out_w = vec![0.0f64; n];
    let mut out_i = vec![0u32; n];
    {
        let mut offsets = starts.clone();
        for (i, &w) in weights.iter().enumerate() {
            if w != f64::INFINITY {
                let o = &mut offsets[top(w)];
                out_w[*o] = w;
                out_i[*o] = i as u32;
                *o += 1;
            }
        }
    }
    drop(weights);
    // Per-bucket slices, sorted in parallel.
    let mut buckets: Vec<(&mut [f64], &mut [u32])> = Vec::new();
    let (mut rest_w, mut rest_i) = (out_w.as_mut_slice(), out_i.as_mut_slice());
    for &count in &hist {
        let len = count as usize;
        let (w, tw) = rest_w.split_at_mut(len);
        let (i, ti) = rest_i.split_at_mut(len);
        rest_w = tw;
        rest_i = ti;
        if len > 1 {
            buckets.push((w, i));
        }
    }
    buckets.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |scratch, (w, i)| sort_bucket(w, i, scratch),
    );
    (out_w, out_i)
}

/// Sorts one bucket (all keys share their top bits) by exact weight, ties by
/// index, given that indices increase within the bucket on entry.
fn sort_bucket(w: &mut [f64], idx: &mut [u32], scratch: &mut (Vec<f64>, Vec<u32>)) {
    let n = w.len();
    if n <= 32 {
        // Insertion sort on (exact weight, index): small buckets only.
        for j in 1..n {
            let (cw, ci) = (w[j], idx[j]);
            let mut t = j;
            while t > 0 && (w[t - 1], idx[t - 1]) > (cw, ci) {
                w[t] = w[t - 1];
                idx[t] = idx[t - 1];
                t -= 1;
            }
            w[t] = cw;
            idx[t] = ci;
        }
        return;
    }
    // Two stable LSD passes on key bits 0..10 and 10..19.
    let (sw, si) = scratch;
    sw.clear();
    sw.resize(n, 0.0);
    si.clear();
    si.resize(n, 0);
    for (shift, bits) in [(0u32, 10u32), (10, 9)] {
        let mask = (1usize << bits) - 1;
        let mut counts = [0usize; 1 << 10];
        for &x in w.iter() {
            counts[(key(x) >> shift) as usize & mask] += 1;
        }
        if counts.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        for (&x, &i) in w.iter().zip(idx.iter()) {
            let o = &mut counts[(key(x) >> shift) as usize & mask];
            sw[*o] = x;
            si[*o] = i;
            *o += 1;
        }
        w.copy_from_slice(sw);
        idx.copy_from_slice(si);
    }
    // Fix-up: inside a run of equal f32 keys the order must follow the exact
    // weight (then the index, which the stable passes keep). Rounding to
    // nearest is monotone, so the only disorder is a weight smaller than its
    // predecessor inside such a run: scan for that (rare, so the branch
    // predicts well) and re-sort just that run.
    let mut j = 1;
    while j < n {
        if w[j] >= w[j - 1] {
            j += 1;
            continue;
        }
        let k = key(w[j]);
        let mut start = j - 1;
        while start > 0 && key(w[start - 1]) == k {
            start -= 1;
        }
        let mut end = j + 1;
        while end < n && key(w[end]) == k {
            end += 1;
        }
        let mut run: Vec<(u64, u32)> = (start..end).map(|t| (w[t].to_bits(), idx[t])).collect();
        run.sort_unstable();
        for (t, (x, i)) in (start..end).zip(run) {
            w[t] = f64::from_bits(x);
            idx[t] = i;
        }
        j = end;
    }
}

/// Union-find over pixels with path halving and union by size; each root
/// also holds the `f32` merge threshold `Int(C) + k / |C|` skimage compares
/// edge weights against.
struct Forest {
    parent: Vec<u32>,
    /// Per root: size and threshold, side by side for locality.
    root: Vec<(u32, f32)>,
}

impl Forest {
    fn new(n: usize, threshold: f32) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            root: vec![(1, threshold); n],
        }
    }

    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = self.parent[x as usize];
            if p == x {
                return x;
            }
            let gp = self.parent[p as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
    }

    #[inline]
    fn size(&self, r: u32) -> u32 {
        self.root[r as usize].0
    }

    /// Joins the roots `a` and `b`; returns the new root.
    #[inline]
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (big, small) = if self.size(a) >= self.size(b) {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[small as usize] = big;
        self.root[big as usize].0 += self.root[small as usize].0;
        big
    }
}

/// Segments `image` exactly as `skimage.segmentation.felzenszwalb(image,
/// scale, sigma, min_size)` does (see the module documentation for the
/// steps and for how ties are broken).
///
/// # Errors
/// [`SegmentError::Param`] for out-of-range parameters,
/// [`SegmentError::Image`] for an empty image or one of more than
/// [`MAX_PIXELS`] pixels.
///
/// # Example
/// ```
/// use image::{DynamicImage, RgbImage, Rgb};
/// use som_segment::{felzenszwalb, FelzenszwalbParams};
/// // Two flat halves: two segments.
/// let img = RgbImage::from_fn(40, 20, |x, _| if x < 20 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) });
/// let labels = felzenszwalb(&DynamicImage::ImageRgb8(img), &FelzenszwalbParams::REFERENCE)?;
/// assert_eq!(labels.count(), 2);
/// assert_eq!(labels.get(0, 0), Some(0));
/// assert_eq!(labels.get(39, 19), Some(1));
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
pub fn felzenszwalb(image: &DynamicImage, params: &FelzenszwalbParams) -> Result<LabelMap, SegmentError> {
    params.validate()?;
    let planes = smoothed_planes(image, params.sigma)?;
    Ok(felzenszwalb_planes(&planes, params))
}

/// The graph part of [`felzenszwalb()`] on smoothed planes.
fn felzenszwalb_planes(planes: &Planes, params: &FelzenszwalbParams) -> LabelMap {
    let size = planes.size;
    let n = size.pixels() as usize;
    let img = Smoothed::new(planes);
    let weights = edge_weights(&img, size.height as usize);
    let (sorted, order) = sort_edges(weights);

    let k = params.scale / 255.0;
    let mut forest = Forest::new(n, k as f32);
    for (&cost, &id) in sorted.iter().zip(&order) {
        let (p, q) = img.ends(id);
        let a = forest.find(p as u32);
        let b = forest.find(q as u32);
        if a == b {
            continue;
        }
        let t = forest.root[a as usize].1.min(forest.root[b as usize].1);
        if cost < t as f64 {
            let r = forest.union(a, b);
            let root = &mut forest.root[r as usize];
            root.1 = (cost + k / root.0 as f64) as f32;
        }
    }
    if params.min_size > 1 {
        let min = params.min_size.min(u32::MAX as usize) as u32;
        for &id in &order {
            let (p, q) = img.ends(id);
            let a = forest.find(p as u32);
            let b = forest.find(q as u32);
            if a != b && (forest.size(a) < min || forest.size(b) < min) {
                forest.union(a, b);
            }
        }
    }
    let mut label_of = vec![u32::MAX; n];
    let mut labels = vec![0u32; n];
    let mut next = 0u32;
    for (i, l) in labels.iter_mut().enumerate() {
        let r = forest.find(i as u32) as usize;
        if label_of[r] == u32::MAX {
            label_of[r] = next;
            next += 1;
        }
        *l = label_of[r];
    }
    LabelMap::from_parts(size, labels, next)
}

/// The raw Felzenszwalb–Huttenlocher partition as a [`Segmenter`]: every
/// segment becomes a region (hundreds on a photo; the `classic` segmenter,
/// [`crate::Classic`], merges them into a few dozen).
///
/// ```
/// use image::DynamicImage;
/// use som_core::Segmenter;
/// use som_segment::{Felzenszwalb, FelzenszwalbParams};
/// let seg = Felzenszwalb::new(FelzenszwalbParams::REFERENCE).segment(&DynamicImage::new_rgb8(30, 20))?;
/// assert_eq!(seg.regions().len(), 1);
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Felzenszwalb {
    /// The parameters.
    pub params: FelzenszwalbParams,
}

impl Felzenszwalb {
    /// A segmenter with these parameters.
    pub fn new(params: FelzenszwalbParams) -> Self {
        Self { params }
    }
}

impl Segmenter for Felzenszwalb {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        felzenszwalb(image, &self.params)?.to_segmentation()
    }

    fn name(&self) -> &str {
        "felzenszwalb"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_scipy() {
        // scipy.ndimage._filters._gaussian_kernel1d(0.5, 0, 2)
        let k = gaussian_kernel(0.5);
        let want = [
            0.000_263_865_082_737_354_14,
            0.106_450_771_973_591_51,
            0.786_570_725_887_342_2,
            0.106_450_771_973_591_51,
            0.000_263_865_082_737_354_14,
        ];
        assert_eq!(k.len(), 5);
        for (a, b) in k.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }

    #[test]
    fn reflect_is_half_sample_symmetric() {
        let got: Vec<usize> = (-4..7).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0]);
        assert_eq!(reflect(-2, 1), 0);
    }

    /// Sorts weights by exact value, stably, through the edge-sorting path.
    fn argsort_exact(costs: &[f64]) -> Vec<u32> {
        sort_edges(costs.to_vec()).1
    }

    #[test]
    fn edge_order_is_exact_and_stable() {
        // 1.0 and 1.0 + 1e-12 round to the same f32: the fix-up orders them.
        let costs = [
            3.0f64,
            0.5,
            1.0 + 1e-12,
            3.0,
            0.0,
            1e-9,
            0.5,
            1.0,
            f64::INFINITY,
            1.0 - 1e-12,
        ];
        assert_eq!(argsort_exact(&costs), vec![4, 5, 1, 6, 9, 7, 2, 0, 3]);
        assert_eq!(argsort_exact(&[2.0, 2.0, f64::INFINITY, 2.0]), vec![0, 1, 3]);
        assert!(argsort_exact(&[f64::INFINITY]).is_empty());
    }

    #[test]
    fn rejects_bad_parameters() {
        let img = DynamicImage::new_rgb8(4, 4);
        for p in [
            FelzenszwalbParams {
                scale: -1.0,
                ..Default::default()
            },
            FelzenszwalbParams {
                sigma: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(felzenszwalb(&img, &p), Err(SegmentError::Param { .. })));
        }
        assert!(matches!(
            felzenszwalb(&DynamicImage::new_rgb8(0, 4), &FelzenszwalbParams::default()),
            Err(SegmentError::Image(_))
        ));
    }

    #[test]
    fn alpha_is_ignored_and_gray_stays_one_channel() {
        let rgb = image::RgbImage::from_fn(37, 23, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x * y) % 256) as u8])
        });
        let rgba = image::RgbaImage::from_fn(37, 23, |x, y| {
            let p = rgb.get_pixel(x, y);
            image::Rgba([p[0], p[1], p[2], (x * 3) as u8])
        });
        let p = FelzenszwalbParams {
            scale: 50.0,
            sigma: 0.8,
            min_size: 5,
        };
        let a = felzenszwalb(&DynamicImage::ImageRgb8(rgb), &p).expect("rgb");
        let b = felzenszwalb(&DynamicImage::ImageRgba8(rgba), &p).expect("rgba");
        assert_eq!(a, b);
        let gray = image::GrayImage::from_fn(37, 23, |x, y| image::Luma([((x * 13 + y * 5) % 256) as u8]));
        let gray_alpha =
            image::GrayAlphaImage::from_fn(37, 23, |x, y| image::LumaA([gray.get_pixel(x, y)[0], 9]));
        let c = felzenszwalb(&DynamicImage::ImageLuma8(gray), &p).expect("gray");
        let d = felzenszwalb(&DynamicImage::ImageLumaA8(gray_alpha), &p).expect("gray alpha");
        assert_eq!(c, d);
    }

    #[test]
    fn single_row_and_column_images_work() {
        for (w, h) in [(1, 1), (1, 7), (9, 1), (2, 2)] {
            let img = DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([(x * 40 + y * 90) as u8])
            }));
            let m = felzenszwalb(&img, &FelzenszwalbParams::default()).expect("segments");
            assert_eq!(m.labels().len(), (w * h) as usize);
            assert_eq!(m.get(0, 0), Some(0));
        }
    }
}
