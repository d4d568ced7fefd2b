//! Exact Euclidean distance transform (EDT) of binary crops, and the searches a
//! mark allocator needs on it: the arg-max, the arg-max away from forbidden
//! rectangles, and candidates in descending distance.
//!
//! The transform is Felzenszwalb and Huttenlocher's separable algorithm
//! ("Distance Transforms of Sampled Functions", 2012): a column pass gives,
//! for every pixel, the distance `g` to the nearest background pixel in its
//! own column; a row pass takes the lower envelope of the parabolas
//! `(x - x')² + g(x')²` over the row. Everything is integer: squared
//! distances are exact `u32` values, so there are no floating-point ties.
//!
//! The crop is treated as if surrounded by a one-pixel background border
//! (a region's bounding box plus that border holds every pixel that matters:
//! the border is at least as close as anything beyond it), so the transform
//! never touches pixels outside a region's box.
//!
//! A mark needs the arg-max, not the whole transform. [`Edt::compute`] runs
//! only the column pass — branch-free on 16-bit lanes, so it vectorises —
//! and records, per row, an upper bound of the row's squared distances
//! (`max_x min(g, distance to the crop's side)²`: the exact value can never
//! exceed the distance to the nearest outside pixel in the same column or to
//! the crop's side). [`Edt::argmax`] visits rows from the most promising
//! down and stops as soon as the next row's bound cannot beat the best
//! distance found. A visited row is first screened with the tighter bound
//! `min(g, h)²` per pixel (`h`: the distance to the nearest outside pixel in
//! the row); only the columns that can still win are evaluated, each cluster
//! of them with a lower envelope built from the sources within
//! `sqrt(bound)` columns and no higher than the bound — which is still
//! exact, since a pixel's nearest outside pixel is never farther than its
//! bound.
//!
//! For collision avoidance, [`Edt::argmax_excluding`] is the same search
//! restricted to pixels outside a set of rectangles, and [`Edt::candidates`]
//! yields every inside pixel in descending distance, computing rows lazily.
//!
//! # Example
//! ```
//! use som_marks::allocate::edt::{BinaryCrop, Edt};
//! // A 5×3 block of ones: the centre pixel is 2 px from the outside.
//! let crop = BinaryCrop::from_bytes(5, 3, &[1; 15])?;
//! let mut edt = Edt::new();
//! edt.compute(&crop)?;
//! let peak = edt.argmax().expect("non-empty crop");
//! assert_eq!((peak.x, peak.y, peak.d2), (1, 1, 4));
//! assert_eq!(edt.transform(), vec![1, 1, 1, 1, 1, 1, 4, 4, 4, 1, 1, 1, 1, 1, 1]);
//! # Ok::<(), som_core::SomError>(())
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use som_core::{Mask, SomError};

use crate::MarksError;

/// The largest crop side the transform accepts (column distances are
/// 16-bit signed integers, which every x86-64 SIMD level can min and max).
pub const MAX_SIDE: usize = i16::MAX as usize - 1;

/// A binary crop: `width` × `height` pixels, inside or outside, with
/// everything beyond its edges counted as outside.
///
/// Borrowed either as bytes (one per pixel, non-zero = inside, as
/// [`Mask::crop_data`] stores them) or as packed bits (bit `i` of a `u64`
/// word is column `i`, which lets an allocator subtract other regions with
/// word operations).
#[derive(Debug, Clone, Copy)]
pub struct BinaryCrop<'a> {
    width: usize,
    height: usize,
    rows: Rows<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Rows<'a> {
    /// Row `y` is `data[y * stride + x0..][..width]`.
    Bytes {
        data: &'a [u8],
        stride: usize,
        x0: usize,
    },
    /// Row `y` starts at bit `bit0` of `words[y * stride..]`.
    Bits {
        words: &'a [u64],
        stride: usize,
        bit0: usize,
    },
}

fn too_large(width: usize, height: usize) -> SomError {
    SomError::allocate(MarksError::Crop(format!(
        "a {width}x{height} crop exceeds the distance transform's limit of {MAX_SIDE} px per side"
    )))
}

impl<'a> BinaryCrop<'a> {
    /// A crop from one byte per pixel, row-major, non-zero meaning inside.
    ///
    /// # Errors
    /// [`SomError::Allocate`] when `data` does not hold `width * height` bytes
    /// or a side exceeds [`MAX_SIDE`].
    ///
    /// ```
    /// use som_marks::allocate::edt::BinaryCrop;
    /// let crop = BinaryCrop::from_bytes(2, 2, &[0, 1, 1, 1])?;
    /// assert!(!crop.get(0, 0) && crop.get(1, 0));
    /// assert!(BinaryCrop::from_bytes(2, 2, &[0; 3]).is_err());
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn from_bytes(width: usize, height: usize, data: &'a [u8]) -> Result<Self, SomError> {
        Self::from_byte_window(data, width, 0, width, height)
    }

    /// A `width` × `height` window starting at column `x0` of a row-major byte
    /// image whose rows are `stride` bytes long.
    ///
    /// # Errors
    /// [`SomError::Allocate`] when the window does not fit in `data` or a side
    /// exceeds [`MAX_SIDE`].
    pub fn from_byte_window(
        data: &'a [u8],
        stride: usize,
        x0: usize,
        width: usize,
        height: usize,
    ) -> Result<Self, SomError> {
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(too_large(width, height));
        }
        let fits = x0 + width <= stride
            && (height == 0 || (height - 1).checked_mul(stride).map(|s| s + x0 + width) <= Some(data.len()));
        if !fits {
            return Err(SomError::allocate(MarksError::Crop(format!(
                "a {width}x{height} byte crop at column {x0} does not fit in {} bytes of {stride}-byte rows",
                data.len()
            ))));
        }
        Ok(Self {
            width,
            height,
            rows: Rows::Bytes { data, stride, x0 },
        })
    }

    /// The crop of a mask's bounding box.
    ///
    /// # Errors
    /// [`SomError::Allocate`] when a side of the box exceeds [`MAX_SIDE`].
    pub fn from_mask(mask: &'a Mask) -> Result<Self, SomError> {
        let b = mask.bbox();
        Self::from_bytes(b.width as usize, b.height as usize, mask.crop_data())
    }

    /// A crop from packed bits: row `y` starts at bit `bit0` of
    /// `words[y * stride..]`; bit `i` of a word is the column `i` after the
    /// previous words' columns.
    ///
    /// # Errors
    /// [`SomError::Allocate`] when the rows do not fit in `words` or a side
    /// exceeds [`MAX_SIDE`].
    ///
    /// ```
    /// use som_marks::allocate::edt::BinaryCrop;
    /// // Two rows of 3 columns starting at bit 62: the row spans two words.
    /// let words = [3u64 << 62, 1, 0, 0];
    /// let crop = BinaryCrop::from_bits(3, 2, &words, 2, 62)?;
    /// assert!(crop.get(0, 0) && crop.get(1, 0) && crop.get(2, 0));
    /// assert!(!crop.get(0, 1));
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn from_bits(
        width: usize,
        height: usize,
        words: &'a [u64],
        stride: usize,
        bit0: usize,
    ) -> Result<Self, SomError> {
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(too_large(width, height));
        }
        let need = (bit0 + width).div_ceil(64);
        let fits = need <= stride
            && (height == 0 || (height - 1).checked_mul(stride).map(|s| s + need) <= Some(words.len()));
        if !fits {
            return Err(SomError::allocate(MarksError::Crop(format!(
                "a {width}x{height} bit crop at bit {bit0} does not fit in {} words of {stride}-word rows",
                words.len()
            ))));
        }
        Ok(Self {
            width,
            height,
            rows: Rows::Bits { words, stride, bit0 },
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// `true` when pixel (`x`, `y`) is inside; `false` beyond the edges.
    pub fn get(&self, x: usize, y: usize) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        match self.rows {
            Rows::Bytes { data, stride, x0 } => data[y * stride + x0 + x] != 0,
            Rows::Bits { words, stride, bit0 } => {
                let b = bit0 + x;
                words[y * stride + b / 64] >> (b % 64) & 1 == 1
            }
        }
    }
}

/// One pixel of a transform and its squared distance to the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peak {
    /// Column in the crop.
    pub x: u32,
    /// Row in the crop.
    pub y: u32,
    /// Exact squared Euclidean distance to the nearest outside pixel.
    pub d2: u32,
}

impl Peak {
    /// The Euclidean distance, `sqrt(d2)`.
    pub fn distance(&self) -> f64 {
        (self.d2 as f64).sqrt()
    }
}

/// A half-open rectangle of crop pixels: columns `x0..x1`, rows `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// First column.
    pub x0: u32,
    /// First row.
    pub y0: u32,
    /// One past the last column.
    pub x1: u32,
    /// One past the last row.
    pub y1: u32,
}

/// One parabola of a lower envelope: apex column `v`, height `f`, and the
/// column `zn / zd` where it starts to be the lowest.
#[derive(Debug, Clone, Copy, Default)]
struct Parabola {
    v: i64,
    f: i64,
    zn: i64,
    zd: i64,
}

/// Lanes of the vectorised column pass.
const LANES: usize = 16;

/// Byte `b` spread over eight bytes: byte `i` is bit `i` of `b`.
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut v = 0u64;
        let mut i = 0;
        while i < 8 {
            if b >> i & 1 == 1 {
                v |= 1 << (8 * i);
            }
            i += 1;
        }
        t[b] = v;
        b += 1;
    }
    t
};

/// The distance transform of one crop, computed lazily: the column pass on
/// [`Edt::compute`], row passes only where a search needs them.
///
/// An `Edt` keeps its buffers between crops, so one value per thread serves
/// any number of regions without allocating.
#[derive(Debug, Default, Clone)]
pub struct Edt {
    width: usize,
    height: usize,
    /// Column distances, row-major: distance to the nearest outside pixel in
    /// the same column (0 outside).
    g: Vec<i16>,
    /// Per row, an upper bound of its squared distances.
    bound: Vec<u32>,
    /// Rows by descending bound (ties: top first); built on first use.
    order: Vec<u32>,
    order_ready: bool,
    // Scratch.
    bytes: Vec<u8>,
    down: Vec<i16>,
    side: Vec<i16>,
    env: Vec<Parabola>,
    env_len: usize,
    row: Vec<u32>,
    spans: Vec<(u32, u32)>,
    cands: Vec<(usize, usize)>,
    row_start: Vec<usize>,
    row_rects: Vec<u32>,
    row_passes: usize,
}

impl Edt {
    /// An empty transform with no buffers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Width of the last computed crop.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height of the last computed crop.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Runs the column pass on `crop` (O(pixels), vectorised) and the per-row
    /// bounds; the row pass waits for a search.
    ///
    /// # Errors
    /// [`SomError::Allocate`] when a side of the crop exceeds [`MAX_SIDE`].
    pub fn compute(&mut self, crop: &BinaryCrop<'_>) -> Result<(), SomError> {
        let (w, h) = (crop.width, crop.height);
        if w > MAX_SIDE || h > MAX_SIDE {
            return Err(too_large(w, h));
        }
        self.width = w;
        self.height = h;
        self.order_ready = false;
        self.row_passes = 0;
        // Every element in use is written below, so the buffers only grow
        // (no clearing); rows are addressed as `y * w..(y + 1) * w`.
        if self.g.len() < w * h {
            self.g.resize(w * h, 0);
        }
        if self.bound.len() < h {
            self.bound.resize(h, 0);
        }
        if w == 0 || h == 0 {
            self.bound[..h].fill(0);
            return Ok(());
        }
        // Top-down: run length of inside pixels ending at each pixel.
        // Branch-free so that it vectorises: (above + 1) & (inside ? !0 : 0).
        for y in 0..h {
            let (above, rest) = self.g.split_at_mut(y * w);
            let out = &mut rest[..w];
            let row: &[u8] = match crop.rows {
                Rows::Bytes { data, stride, x0 } => &data[y * stride + x0..y * stride + x0 + w],
                Rows::Bits { words, stride, bit0 } => {
                    unpack_row(&words[y * stride..], bit0, w, &mut self.bytes);
                    &self.bytes[..w]
                }
            };
            if y == 0 {
                for (o, &b) in out.iter_mut().zip(row) {
                    *o = (b != 0) as i16;
                }
            } else {
                let prev = &above[(y - 1) * w..];
                for ((o, &p), &b) in out.iter_mut().zip(&prev[..w]).zip(row) {
                    *o = (p + 1) & -((b != 0) as i16);
                }
            }
        }
        // Bottom-up: the distance below, the minimum of both, and row bounds.
        self.down.clear();
        self.down.resize(w, 0);
        self.side.clear();
        self.side.extend((0..w).map(|x| (x + 1).min(w - x) as i16));
        for y in (0..h).rev() {
            let row = &mut self.g[y * w..(y + 1) * w];
            // Sixteen lanes of running maxima, so the loop vectorises.
            let mut lanes = [0i16; LANES];
            let mut gc = row.chunks_exact_mut(LANES);
            let mut dc = self.down.chunks_exact_mut(LANES);
            let mut sc = self.side.chunks_exact(LANES);
            for ((gv, d), s) in (&mut gc).zip(&mut dc).zip(&mut sc) {
                for k in 0..LANES {
                    let nd = (d[k] + 1) & -((gv[k] != 0) as i16);
                    d[k] = nd;
                    let v = gv[k].min(nd);
                    gv[k] = v;
                    lanes[k] = lanes[k].max(v.min(s[k]));
                }
            }
            let mut m = lanes.iter().copied().max().unwrap_or(0);
            for ((gv, d), &s) in gc
                .into_remainder()
                .iter_mut()
                .zip(dc.into_remainder())
                .zip(sc.remainder())
            {
                let nd = (*d + 1) & -((*gv != 0) as i16);
                *d = nd;
                let v = (*gv).min(nd);
                *gv = v;
                m = m.max(v.min(s));
            }
            self.bound[y] = (m as u32) * (m as u32);
        }
        Ok(())
    }

    /// Screens row `y`: the columns in `spans` whose bound `min(g, h)²`
    /// beats `floor` — `g` the column distance, `h` the distance to the
    /// nearest outside pixel (or crop side) in the row — go to `self.cands`
    /// as runs, and the largest such bound is returned (`None`: no column
    /// can beat `floor`).
    ///
    /// Only runs of columns with `g > sqrt(floor)` are looked at, and `h` is
    /// found by scanning at most `sqrt(floor) + 1` columns beyond each run,
    /// so rows that cannot win cost little more than one comparison per column.
    fn screen_row(&mut self, y: usize, spans: &[(u32, u32)], floor: u32) -> Option<u32> {
        let w = self.width;
        let g = &self.g[y * w..(y + 1) * w];
        // t = floor(sqrt(floor)): v² > floor  <=>  v > t for integers v >= 0.
        let mut t = (floor as f64).sqrt() as i64;
        while t * t > floor as i64 {
            t -= 1;
        }
        while (t + 1) * (t + 1) <= floor as i64 {
            t += 1;
        }
        let ti = t.min(i16::MAX as i64) as i16;
        let mut m = 0i64;
        self.cands.clear();
        for &(a0, e0) in spans {
            let (mut x, e0) = (a0 as usize, e0 as usize);
            while x < e0 {
                while x < e0 && g[x] <= ti {
                    x += 1;
                }
                if x >= e0 {
                    break;
                }
                let a = x;
                while x < e0 && g[x] > ti {
                    x += 1;
                }
                let b = x; // g > t on a..b, so no outside pixel there
                           // Nearest outside pixel left of a (the side counts), if within t + 1.
                let mut z = a as i64 - 1;
                while z >= 0 && g[z as usize] != 0 && a as i64 - z <= t + 1 {
                    z -= 1;
                }
                let left = if z < 0 || g[z as usize] == 0 {
                    z.max(-1)
                } else {
                    i64::MIN / 4
                };
                let mut z = b as i64;
                while z < w as i64 && g[z as usize] != 0 && z - (b as i64) <= t {
                    z += 1;
                }
                let right = if z >= w as i64 || g[z as usize] == 0 {
                    z.min(w as i64)
                } else {
                    i64::MAX / 4
                };
                // Candidates: x - left > t and right - x > t.
                let lo = (a as i64).max(left + t + 1);
                let hi = (b as i64).min(right - t);
                if lo < hi {
                    for x in lo..hi {
                        let hv = (x - left).min(right - x);
                        m = m.max((g[x as usize] as i64).min(hv));
                    }
                    self.cands.push((lo as usize, hi as usize));
                }
            }
        }
        (!self.cands.is_empty()).then_some((m * m) as u32)
    }

    /// How many row passes (lower envelopes) the searches ran since the last
    /// [`Edt::compute`]: a measure of how well the row bounds prune.
    pub fn row_passes(&self) -> usize {
        self.row_passes
    }

    /// The column distance (to the nearest outside pixel in the same column)
    /// at (`x`, `y`) of the last computed crop (0 outside the crop).
    pub fn column_distance(&self, x: usize, y: usize) -> u16 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        self.g[y * self.width + x] as u16
    }

    /// The upper bound of row `y`'s squared distances (0 outside the crop).
    pub fn row_bound(&self, y: usize) -> u32 {
        if y >= self.height {
            return 0;
        }
        self.bound[y]
    }

    fn ensure_order(&mut self) {
        if self.order_ready {
            return;
        }
        let bound = &self.bound;
        self.order.clear();
        self.order
            .extend((0..self.height as u32).filter(|&y| bound[y as usize] > 0));
        self.order
            .sort_unstable_by_key(|&y| (Reverse(bound[y as usize]), y));
        self.order_ready = true;
    }

    /// Builds the lower envelope of row `y` (the parabolas of its inside
    /// pixels plus the two border columns).
    ///
    /// Only the sources in columns `lo..hi` (and the two border columns) with
    /// `g² <= max_f` are used: enough for columns whose nearest outside pixel
    /// lies in that range at a squared distance of at most `max_f`.
    fn envelope(&mut self, y: usize, lo: usize, hi: usize, max_f: i64) {
        self.row_passes += 1;
        let w = self.width;
        let g = &self.g[y * w..(y + 1) * w];
        self.env.clear();
        self.env.resize(hi - lo + 3, Parabola::default());
        let e = &mut self.env[..];
        // Source at column -1 with f = 0; its z (-inf) is never compared.
        e[0] = Parabola {
            v: -1,
            f: 0,
            zn: i64::MIN,
            zd: 1,
        };
        let mut top = 0usize;
        #[inline(always)]
        fn add(e: &mut [Parabola], top: &mut usize, q: i64, fq: i64) {
            loop {
                let p = e[*top];
                let n = fq + q * q - p.f - p.v * p.v;
                let d = 2 * (q - p.v);
                if *top > 0 && n * p.zd <= p.zn * d {
                    *top -= 1;
                    continue;
                }
                *top += 1;
                e[*top] = Parabola {
                    v: q,
                    f: fq,
                    zn: n,
                    zd: d,
                };
                return;
            }
        }
        let mut x = lo;
        while x < hi {
            let gv = g[x] as i64;
            if gv == 0 {
                // Only the ends of a run of outside pixels matter.
                let start = x;
                while x + 1 < hi && g[x + 1] == 0 {
                    x += 1;
                }
                add(e, &mut top, start as i64, 0);
                if x != start {
                    add(e, &mut top, x as i64, 0);
                }
            } else if gv * gv <= max_f {
                add(e, &mut top, x as i64, gv * gv);
            }
            x += 1;
        }
        add(e, &mut top, w as i64, 0);
        self.env_len = top + 1;
    }

    /// Evaluates the envelope of the last [`Self::envelope`] (of row `y`) at columns
    /// `x0..x1` into `self.row[x0..x1]`, starting the envelope walk at `*k`.
    fn evaluate(&mut self, y: usize, x0: usize, x1: usize, k: &mut usize) {
        let e = &self.env[..self.env_len];
        let g = &self.g[y * self.width..(y + 1) * self.width];
        let last = e.len() - 1;
        for ((x, &gx), out) in (x0..x1).zip(&g[x0..x1]).zip(&mut self.row[x0..x1]) {
            if gx == 0 {
                *out = 0;
                continue;
            }
            let xi = x as i64;
            while *k < last && e[*k + 1].zn < xi * e[*k + 1].zd {
                *k += 1;
            }
            let p = e[*k];
            let dx = xi - p.v;
            *out = (dx * dx + p.f) as u32;
        }
    }

    /// Exact squared distances of row `y`, one per column (an empty slice
    /// for a row beyond [`Edt::height`]).
    ///
    /// ```
    /// use som_marks::allocate::edt::{BinaryCrop, Edt};
    /// let mut edt = Edt::new();
    /// edt.compute(&BinaryCrop::from_bytes(5, 1, &[1, 1, 1, 0, 1])?)?;
    /// assert_eq!(edt.row(0), &[1, 1, 1, 0, 1]);
    /// assert!(edt.row(1).is_empty());
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn row(&mut self, y: usize) -> &[u32] {
        if y >= self.height {
            return &[];
        }
        let w = self.width;
        self.row.clear();
        self.row.resize(w, 0);
        if self.bound[y] > 0 {
            self.envelope(y, 0, w, i64::MAX);
            let mut k = 0;
            self.evaluate(y, 0, w, &mut k);
        }
        &self.row[..w]
    }

    /// Exact squared distance at (`x`, `y`) (0 outside the crop).
    pub fn distance_sq_at(&mut self, x: usize, y: usize) -> u32 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        self.row(y)[x]
    }

    /// The whole transform, row-major (for checks and pictures; searches do
    /// not need it).
    pub fn transform(&mut self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.width * self.height);
        for y in 0..self.height {
            let r = self.row(y).to_vec();
            out.extend_from_slice(&r);
        }
        out
    }

    /// A pixel of maximal distance, or `None` for an empty crop.
    ///
    /// Rows are visited by descending bound; the search stops when a row's
    /// bound cannot beat the best distance found, so most rows never get a
    /// row pass. Ties go to the first pixel found (deterministic).
    pub fn argmax(&mut self) -> Option<Peak> {
        self.argmax_excluding(&[])
    }

    /// A pixel of maximal distance among those outside every rectangle of
    /// `forbidden` (crop coordinates), or `None` when no inside pixel is left.
    ///
    /// ```
    /// use som_marks::allocate::edt::{BinaryCrop, Edt, Rect};
    /// let crop = BinaryCrop::from_bytes(9, 5, &[1; 45])?;
    /// let mut edt = Edt::new();
    /// edt.compute(&crop)?;
    /// assert_eq!(edt.argmax().map(|p| p.d2), Some(9));
    /// // Forbid the middle row: the best left is 2 px from the outside.
    /// let p = edt.argmax_excluding(&[Rect { x0: 0, y0: 2, x1: 9, y1: 3 }]).unwrap();
    /// assert_eq!((p.y, p.d2), (1, 4));
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn argmax_excluding(&mut self, forbidden: &[Rect]) -> Option<Peak> {
        self.ensure_order();
        let w = self.width as u32;
        let rects: Vec<Rect> = forbidden
            .iter()
            .filter(|r| r.x0 < r.x1.min(w) && r.y0 < r.y1.min(self.height as u32))
            .copied()
            .collect();
        // The rectangles of each row, as one flat list (counting sort by row).
        let h = self.height;
        self.row_start.clear();
        self.row_start.resize(h + 2, 0);
        for r in &rects {
            for y in r.y0 as usize..(r.y1 as usize).min(h) {
                self.row_start[y + 2] += 1;
            }
        }
        for y in 2..h + 2 {
            self.row_start[y] += self.row_start[y - 1];
        }
        self.row_rects.clear();
        self.row_rects.resize(self.row_start[h + 1], 0);
        for (i, r) in rects.iter().enumerate() {
            for y in r.y0 as usize..(r.y1 as usize).min(h) {
                let at = &mut self.row_start[y + 1];
                self.row_rects[*at] = i as u32;
                *at += 1;
            }
        }
        let mut best: Option<Peak> = None;
        let order = std::mem::take(&mut self.order);
        for &y in &order {
            let b = self.bound[y as usize];
            if best.is_some_and(|p| b <= p.d2) {
                break;
            }
            let mine = &self.row_rects[self.row_start[y as usize]..self.row_start[y as usize + 1]];
            allowed_spans(mine.iter().map(|&i| &rects[i as usize]), y, w, &mut self.spans);
            if self.spans.is_empty() {
                continue;
            }
            // Skip the row pass when no allowed pixel's own bound beats the best.
            let floor = best.map_or(0, |p| p.d2);
            let spans = std::mem::take(&mut self.spans);
            let refined = self.screen_row(y as usize, &spans, floor);
            let Some(refined) = refined else {
                self.spans = spans;
                continue;
            };
            // Every candidate's nearest outside pixel is within sqrt(refined)
            // columns, so each cluster of candidates needs only the sources
            // that close (and none higher than refined).
            let r = (refined as f64).sqrt() as usize + 1;
            self.row.clear();
            self.row.resize(self.width, 0);
            let cands = std::mem::take(&mut self.cands);
            let mut i = 0;
            while i < cands.len() {
                let mut j = i + 1;
                while j < cands.len() && cands[j].0 <= cands[j - 1].1 + 2 * r {
                    j += 1;
                }
                let (lo, hi) = (cands[i].0.saturating_sub(r), (cands[j - 1].1 + r).min(self.width));
                self.envelope(y as usize, lo, hi, refined as i64);
                let mut k = 0;
                for &(a, e) in &cands[i..j] {
                    self.evaluate(y as usize, a, e, &mut k);
                    for x in a..e {
                        let d = self.row[x];
                        if d > best.map_or(0, |p| p.d2) {
                            best = Some(Peak {
                                x: x as u32,
                                y,
                                d2: d,
                            });
                        }
                    }
                }
                i = j;
            }
            self.cands = cands;
            self.spans = spans;
        }
        self.order = order;
        best
    }

    /// Inside pixels in descending distance (ties: top row first, then left
    /// first), computing row passes only as the iteration reaches them.
    ///
    /// ```
    /// use som_marks::allocate::edt::{BinaryCrop, Edt};
    /// let crop = BinaryCrop::from_bytes(3, 3, &[1; 9])?;
    /// let mut edt = Edt::new();
    /// edt.compute(&crop)?;
    /// let d2: Vec<u32> = edt.candidates().map(|p| p.d2).collect();
    /// assert_eq!(d2, vec![4, 1, 1, 1, 1, 1, 1, 1, 1]);
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn candidates(&mut self) -> Candidates<'_> {
        let mut heap = BinaryHeap::with_capacity(self.height);
        for y in 0..self.height as u32 {
            let b = self.bound[y as usize];
            if b > 0 {
                heap.push((b, 0u8, Reverse(y), Reverse(0u32)));
            }
        }
        Candidates { edt: self, heap }
    }
}

/// Iterator over a crop's inside pixels in descending distance; see
/// [`Edt::candidates`].
#[derive(Debug)]
pub struct Candidates<'e> {
    edt: &'e mut Edt,
    /// (d², 0 = whole row not yet expanded / 1 = pixel, row, column).
    heap: BinaryHeap<(u32, u8, Reverse<u32>, Reverse<u32>)>,
}

impl Iterator for Candidates<'_> {
    type Item = Peak;

    fn next(&mut self) -> Option<Peak> {
        while let Some((d2, kind, Reverse(y), Reverse(x))) = self.heap.pop() {
            if kind == 1 {
                return Some(Peak { x, y, d2 });
            }
            let row = self.edt.row(y as usize);
            for (x, &d) in row.iter().enumerate() {
                if d > 0 {
                    self.heap.push((d, 1, Reverse(y), Reverse(x as u32)));
                }
            }
        }
        None
    }
}

/// Columns of row `y` (of a `w`-wide crop) outside every rectangle, as
/// half-open spans, left to right.
fn allowed_spans<'r>(rects: impl IntoIterator<Item = &'r Rect>, y: u32, w: u32, out: &mut Vec<(u32, u32)>) {
    out.clear();
    // The cuts go to the end of `out` first, then the spans replace them.
    out.extend(
        rects
            .into_iter()
            .filter(|r| r.y0 <= y && y < r.y1)
            .map(|r| (r.x0, r.x1.min(w))),
    );
    if out.is_empty() {
        out.push((0, w));
        return;
    }
    out.sort_unstable();
    let n = out.len();
    let mut x = 0u32;
    for i in 0..n {
        let (a, e) = out[i];
        if a > x {
            out.push((x, a));
        }
        x = x.max(e);
        if x >= w {
            break;
        }
    }
    if x < w {
        out.push((x, w));
    }
    out.drain(..n);
}

/// Unpacks `width` bits starting at bit `bit0` of `words` into `out` as 0/1 bytes.
fn unpack_row(words: &[u64], bit0: usize, width: usize, out: &mut Vec<u8>) {
    let n8 = width.div_ceil(8);
    out.clear();
    out.resize(n8 * 8, 0);
    let sh = bit0 % 64;
    let w0 = bit0 / 64;
    // 64 columns at a time: one (possibly straddling) word, eight lookups.
    for (j, group) in out.chunks_mut(64).enumerate() {
        let wi = w0 + j;
        let mut v = words[wi] >> sh;
        if sh > 0 && wi + 1 < words.len() {
            v |= words[wi + 1] << (64 - sh);
        }
        for chunk in group.chunks_exact_mut(8) {
            chunk.copy_from_slice(&SPREAD[(v & 0xff) as usize].to_le_bytes());
            v >>= 8;
        }
    }
    // Bits past the width belong to other columns; clear them.
    for b in &mut out[width..] {
        *b = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force exact squared EDT with a zero border.
    pub(crate) fn brute(w: usize, h: usize, px: &[u8]) -> Vec<u32> {
        let mut out = vec![0u32; w * h];
        for y in 0..h {
            for x in 0..w {
                if px[y * w + x] == 0 {
                    continue;
                }
                let mut best = u32::MAX;
                for yy in -1..=h as i64 {
                    for xx in -1..=w as i64 {
                        let outside = yy < 0
                            || xx < 0
                            || yy >= h as i64
                            || xx >= w as i64
                            || px[yy as usize * w + xx as usize] == 0;
                        if outside {
                            let d = (yy - y as i64).pow(2) + (xx - x as i64).pow(2);
                            best = best.min(d as u32);
                        }
                    }
                }
                out[y * w + x] = best;
            }
        }
        out
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn matches_brute_force_on_random_crops() {
        let mut seed = 7u64;
        let mut edt = Edt::new();
        for _ in 0..300 {
            let w = 1 + (lcg(&mut seed) % 23) as usize;
            let h = 1 + (lcg(&mut seed) % 19) as usize;
            let density = lcg(&mut seed) % 10;
            let px: Vec<u8> = (0..w * h)
                .map(|_| (lcg(&mut seed) % 10 >= density) as u8)
                .collect();
            let want = brute(w, h, &px);
            edt.compute(&BinaryCrop::from_bytes(w, h, &px).unwrap()).unwrap();
            assert_eq!(edt.transform(), want, "{w}x{h}");
            let max = want.iter().copied().max().unwrap_or(0);
            match edt.argmax() {
                None => assert_eq!(max, 0),
                Some(p) => {
                    assert_eq!(p.d2, max);
                    assert_eq!(want[p.y as usize * w + p.x as usize], max);
                }
            }
            let mut all: Vec<u32> = edt.candidates().map(|p| p.d2).collect();
            let mut sorted = all.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(all, sorted);
            all.sort_unstable();
            let mut inside: Vec<u32> = want.iter().copied().filter(|&d| d > 0).collect();
            inside.sort_unstable();
            assert_eq!(all, inside);
            // Constrained search equals brute force over the allowed pixels.
            let r = Rect {
                x0: (lcg(&mut seed) % w as u64) as u32,
                y0: (lcg(&mut seed) % h as u64) as u32,
                x1: (lcg(&mut seed) % (w as u64 + 1)) as u32 + 1,
                y1: (lcg(&mut seed) % (h as u64 + 1)) as u32 + 1,
            };
            let allowed_max = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    !(x as u32 >= r.x0 && (x as u32) < r.x1 && y as u32 >= r.y0 && (y as u32) < r.y1)
                })
                .map(|(x, y)| want[y * w + x])
                .max()
                .unwrap_or(0);
            match edt.argmax_excluding(&[r]) {
                None => assert_eq!(allowed_max, 0),
                Some(p) => {
                    assert_eq!(p.d2, allowed_max);
                    assert!(!(p.x >= r.x0 && p.x < r.x1 && p.y >= r.y0 && p.y < r.y1));
                }
            }
        }
    }

    #[test]
    fn bits_and_bytes_agree() {
        let mut seed = 3u64;
        let mut a = Edt::new();
        let mut b = Edt::new();
        for _ in 0..100 {
            let w = 1 + (lcg(&mut seed) % 150) as usize;
            let h = 1 + (lcg(&mut seed) % 9) as usize;
            let bit0 = (lcg(&mut seed) % 64) as usize;
            let stride = (bit0 + w).div_ceil(64) + 1;
            let px: Vec<u8> = (0..w * h)
                .map(|_| !lcg(&mut seed).is_multiple_of(3) as u8)
                .collect();
            let mut words = vec![!0u64; stride * h]; // garbage outside the window
            for y in 0..h {
                for x in 0..w {
                    let bit = bit0 + x;
                    let word = &mut words[y * stride + bit / 64];
                    if px[y * w + x] == 0 {
                        *word &= !(1 << (bit % 64));
                    }
                }
            }
            a.compute(&BinaryCrop::from_bytes(w, h, &px).unwrap()).unwrap();
            b.compute(&BinaryCrop::from_bits(w, h, &words, stride, bit0).unwrap())
                .unwrap();
            assert_eq!(a.transform(), b.transform());
        }
    }

    #[test]
    fn spans_cut_rows() {
        let mut out = Vec::new();
        let rects = [
            Rect {
                x0: 2,
                y0: 0,
                x1: 4,
                y1: 1,
            },
            Rect {
                x0: 3,
                y0: 0,
                x1: 6,
                y1: 1,
            },
        ];
        allowed_spans(&rects, 0, 8, &mut out);
        assert_eq!(out, vec![(0, 2), (6, 8)]);
        allowed_spans(&rects, 1, 8, &mut out);
        assert_eq!(out, vec![(0, 8)]);
    }

    #[test]
    fn rejects_oversized_crops() {
        let data = [1u8; 4];
        assert!(BinaryCrop::from_bytes(MAX_SIDE + 1, 0, &data).is_err());
    }
}
