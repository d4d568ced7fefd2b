//! The `classic` segmenter: Felzenszwalb–Huttenlocher, then Set-of-Mark
//! post-processing that turns hundreds of fragments into a few dozen regions
//! a model can talk about.
//!
//! The post-processing works on the region adjacency graph of the label map
//! (4-connected boundaries), with per-region mean CIELAB colour and texture
//! (mean ΔE76 between 4-neighbour pixels inside the region) and, per
//! boundary, its length and mean contrast (ΔE76 between the pixels on either
//! side). Two regions' *dissimilarity* is
//! `ΔE(mean colours) + boundary_weight × max(0, boundary contrast − mean
//! texture of the two)`: a boundary counts only where it is stronger than the
//! texture around it, so wood grain or fur merges while object edges hold.
//! Steps, in order:
//!
//! 1. **Tiny regions** (area below `min_area` of the image) merge into their
//!    most similar neighbour, smallest first.
//! 2. **Slivers** (mean width `2·area/perimeter` below `sliver_width` pixels)
//!    merge into the neighbour they share the longest boundary with.
//! 3. **Holes**: a region with a single neighbour that does not touch the
//!    image border and is smaller than `hole_area` of the image is filled
//!    (merged into the region around it).
//! 4. **Target count**: while there are more than `max_regions` regions, the
//!    pair with the lowest `dissimilarity × sqrt(Aa·Ab / (Aa + Ab) / image
//!    area)` merges (small and similar first, so large distinct objects
//!    survive); then pairs whose dissimilarity is below `merge_delta_e` go
//!    on merging while there are more than `min_regions`, and pairs below
//!    `same_delta_e` (hardly distinguishable) merge whatever the count.
//! 5. Holes left by step 4 are filled (while above `min_regions`), and, if
//!    `split_disconnected` is set, regions are split into 4-connected pieces
//!    (pieces below `min_area` merge into their most similar neighbour).
//!
//! Images larger than `max_side` (default 1024 px) are segmented at that
//! size and the labels scaled back up. Every pixel ends up in exactly one
//! region; regions are numbered `1..` in order of first appearance
//! (row-major).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use image::DynamicImage;
use rayon::prelude::*;
use som_core::{ImageSize, Segmentation, Segmenter, SomError};

use crate::error::SegmentError;
use crate::felzenszwalb::{felzenszwalb, FelzenszwalbParams};
use crate::labels::LabelMap;

/// Parameters of the [`Classic`] segmenter.
///
/// ```
/// use som_segment::ClassicParams;
/// let p = ClassicParams { max_regions: 30, ..ClassicParams::default() };
/// p.validate()?;
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicParams {
    /// The first stage (default [`FelzenszwalbParams::REFERENCE`]:
    /// scale 100, sigma 0.5, min_size 50).
    pub felzenszwalb: FelzenszwalbParams,
    /// Merging of merely similar neighbours (see `merge_delta_e`) stops at
    /// this many regions (default 10); near-identical neighbours (see
    /// `same_delta_e`), tiny regions, slivers and holes merge regardless.
    pub min_regions: usize,
    /// At most this many regions come out, unless tiny-region, sliver and
    /// hole clean-up alone cannot get there (default 48).
    pub max_regions: usize,
    /// Between `min_regions` and `max_regions`, neighbours whose
    /// dissimilarity is below this (ΔE76 units) still merge (default 12).
    pub merge_delta_e: f64,
    /// Neighbours whose dissimilarity is below this (ΔE76 units) merge even
    /// below `min_regions` (default 4: hardly distinguishable).
    pub same_delta_e: f64,
    /// Weight of the boundary contrast (beyond the regions' texture) in the
    /// dissimilarity (default 1).
    pub boundary_weight: f64,
    /// Regions smaller than this fraction of the image merge into their most
    /// similar neighbour (default 0.002, i.e. 0.2 %).
    pub min_area: f64,
    /// Enclosed regions smaller than this fraction of the image are filled
    /// (default 0.01).
    pub hole_area: f64,
    /// Regions whose mean width `2·area/perimeter` is below this many pixels
    /// are slivers and merge away (default 3).
    pub sliver_width: f64,
    /// Split regions into 4-connected pieces at the end (default false;
    /// Felzenszwalb regions are 8-connected, so this only separates pieces
    /// that touch diagonally).
    pub split_disconnected: bool,
    /// Images whose longer side exceeds this many pixels are segmented at
    /// this size (area-averaged downscale) and the labels scaled back up
    /// (nearest neighbour), so big photos stay fast and get regions of the
    /// same relative size (default 1024; `None`: always native size).
    pub max_side: Option<u32>,
}

impl Default for ClassicParams {
    fn default() -> Self {
        Self {
            felzenszwalb: FelzenszwalbParams::REFERENCE,
            min_regions: 10,
            max_regions: 48,
            merge_delta_e: 12.0,
            same_delta_e: 4.0,
            boundary_weight: 1.0,
            min_area: 0.002,
            hole_area: 0.01,
            sliver_width: 3.0,
            split_disconnected: false,
            max_side: Some(1024),
        }
    }
}

impl ClassicParams {
    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`SegmentError::Param`] naming the first bad parameter.
    pub fn validate(&self) -> Result<(), SegmentError> {
        self.felzenszwalb.validate()?;
        if self.max_regions == 0 {
            return Err(SegmentError::param("max_regions", "0 must be at least 1"));
        }
        if self.max_side == Some(0) {
            return Err(SegmentError::param("max_side", "0 must be at least 1"));
        }
        if self.min_regions > self.max_regions {
            return Err(SegmentError::param(
                "min_regions",
                format!("{} is above max_regions {}", self.min_regions, self.max_regions),
            ));
        }
        let fractions = [("min_area", self.min_area), ("hole_area", self.hole_area)];
        for (name, v) in fractions {
            if !(0.0..=1.0).contains(&v) {
                return Err(SegmentError::param(
                    name,
                    format!("{v} must be a fraction of the image in [0, 1]"),
                ));
            }
        }
        let non_negative = [
            ("merge_delta_e", self.merge_delta_e),
            ("same_delta_e", self.same_delta_e),
            ("boundary_weight", self.boundary_weight),
            ("sliver_width", self.sliver_width),
        ];
        for (name, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(SegmentError::param(
                    name,
                    format!("{v} must be a finite number >= 0"),
                ));
            }
        }
        Ok(())
    }
}

/// Felzenszwalb segmentation plus SoM post-processing: the default segmenter
/// of `som mark` and `som segment` (see the module documentation for the
/// steps).
///
/// ```
/// use image::{DynamicImage, Rgb, RgbImage};
/// use som_core::Segmenter;
/// use som_segment::Classic;
/// // Four flat quadrants with a little noise.
/// let img = RgbImage::from_fn(64, 64, |x, y| {
///     let n = ((x * 7 + y * 13) % 5) as u8;
///     match (x < 32, y < 32) {
///         (true, true) => Rgb([200 + n, 30, 30]),
///         (false, true) => Rgb([30, 200 + n, 30]),
///         (true, false) => Rgb([30, 30, 200 + n]),
///         (false, false) => Rgb([220 + n, 220, 40]),
///     }
/// });
/// let seg = Classic::default().segment(&DynamicImage::ImageRgb8(img))?;
/// assert_eq!(seg.regions().len(), 4);
/// assert!(seg.regions().iter().all(|r| r.area() == 32 * 32));
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Classic {
    /// The parameters.
    pub params: ClassicParams,
}

impl Classic {
    /// A classic segmenter with these parameters.
    pub fn new(params: ClassicParams) -> Self {
        Self { params }
    }

    /// Segments `image` into a label map (regions `0..count`).
    ///
    /// # Errors
    /// [`SegmentError::Param`] for bad parameters, [`SegmentError::Image`] for
    /// images Felzenszwalb cannot take.
    pub fn label_map(&self, image: &DynamicImage) -> Result<LabelMap, SegmentError> {
        self.params.validate()?;
        let (w, h) = (image.width(), image.height());
        let longer = w.max(h);
        match self.params.max_side {
            Some(max) if longer > max && w > 0 && h > 0 => {
                let f = max as f64 / longer as f64;
                let (sw, sh) = (
                    ((w as f64 * f).round() as u32).max(1),
                    ((h as f64 * f).round() as u32).max(1),
                );
                let small = image.resize_exact(sw, sh, image::imageops::FilterType::Triangle);
                let map = self.label_map_native(&small)?;
                Ok(upscale_labels(&map, ImageSize::new(w, h)))
            }
            _ => self.label_map_native(image),
        }
    }

    fn label_map_native(&self, image: &DynamicImage) -> Result<LabelMap, SegmentError> {
        let base = felzenszwalb(image, &self.params.felzenszwalb)?;
        let rgb = image.to_rgb8();
        let lab = lab_image(rgb.as_raw());
        Ok(postprocess(&base, &lab, &self.params))
    }
}

impl Segmenter for Classic {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        self.label_map(image)?.to_segmentation()
    }

    fn name(&self) -> &str {
        "classic"
    }
}

/// Nearest-neighbour upscaling of a label map to `size` (pixel centres
/// mapped back), renumbered by first appearance.
fn upscale_labels(map: &LabelMap, size: ImageSize) -> LabelMap {
    let src = map.size();
    let (sw, sh) = (src.width as u64, src.height as u64);
    let xs: Vec<usize> = (0..size.width as u64)
        .map(|x| ((2 * x + 1) * sw / (2 * size.width as u64)).min(sw - 1) as usize)
        .collect();
    let mut labels = Vec::with_capacity(size.pixels() as usize);
    for y in 0..size.height as u64 {
        let sy = ((2 * y + 1) * sh / (2 * size.height as u64)).min(sh - 1) as usize;
        let row = &map.labels()[sy * sw as usize..(sy + 1) * sw as usize];
        labels.extend(xs.iter().map(|&sx| row[sx]));
    }
    let mut out = LabelMap::from_parts(size, labels, map.count());
    out.relabel_sequential();
    out
}

/// sRGB (8-bit, D65) to CIELAB, one `[L, a, b]` per pixel.
fn lab_image(rgb: &[u8]) -> Vec<[f32; 3]> {
    let lin: Vec<f64> = (0..256)
        .map(|v| {
            let c = v as f64 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            cbrt_unit(t)
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    rgb.par_chunks_exact(3)
        .map(|p| {
            let (r, g, b) = (lin[p[0] as usize], lin[p[1] as usize], lin[p[2] as usize]);
            let x = (0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b) / 0.950_47;
            let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
            let z = (0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b) / 1.088_83;
            let (fx, fy, fz) = (f(x), f(y), f(z));
            [
                (116.0 * fy - 16.0) as f32,
                (500.0 * (fx - fy)) as f32,
                (200.0 * (fy - fz)) as f32,
            ]
        })
        .collect()
}

/// Cube root of a positive normal `t` to about 1e-12 relative: the
/// exponent-divided-by-three bit trick (within 3.2 %) and three Newton
/// steps. Much faster than the software `cbrt`, and the same on every
/// platform.
#[inline]
fn cbrt_unit(t: f64) -> f64 {
    let mut y = f64::from_bits(t.to_bits() / 3 + 0x2A9F_7893_782D_A1CE);
    for _ in 0..3 {
        y -= (y * y * y - t) / (3.0 * y * y);
    }
    y
}

fn delta_e(a: &[f32; 3], b: &[f32; 3]) -> f64 {
    let d: f64 = (0..3).map(|i| (a[i] as f64 - b[i] as f64).powi(2)).sum();
    d.sqrt()
}

#[derive(Debug, Clone, Copy, Default)]
struct Boundary {
    /// Number of 4-neighbour pixel pairs across the boundary.
    len: u64,
    /// Sum of their ΔE.
    contrast: f64,
}

#[derive(Debug, Clone, Default)]
struct Node {
    area: u64,
    lab_sum: [f64; 3],
    /// Boundary pixel edges, including those on the image border.
    perimeter: u64,
    touches_border: bool,
    alive: bool,
    adj: BTreeMap<u32, Boundary>,
    /// 4-neighbour pixel pairs inside the region and the sum of their ΔE
    /// (its texture, against which boundary contrast is judged).
    inner: Boundary,
}

impl Node {
    fn mean(&self) -> [f64; 3] {
        let a = self.area.max(1) as f64;
        [self.lab_sum[0] / a, self.lab_sum[1] / a, self.lab_sum[2] / a]
    }
}

/// A region adjacency graph whose nodes merge.
struct Rag {
    nodes: Vec<Node>,
    /// Union-find over the original labels; a merged node points at its survivor.
    parent: Vec<u32>,
    alive: usize,
    total: f64,
    boundary_weight: f64,
}

impl Rag {
    fn build(map: &LabelMap, lab: &[[f32; 3]], boundary_weight: f64) -> Self {
        let n = map.count() as usize;
        let size = map.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let labels = map.labels();
        let mut nodes = vec![Node::default(); n];
        for (i, &l) in labels.iter().enumerate() {
            let node = &mut nodes[l as usize];
            node.area += 1;
            for (sum, &v) in node.lab_sum.iter_mut().zip(&lab[i]) {
                *sum += v as f64;
            }
        }
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let l = labels[i];
                let mut border_edges = 0;
                if x == 0 {
                    border_edges += 1;
                }
                if x + 1 == w {
                    border_edges += 1;
                }
                if y == 0 {
                    border_edges += 1;
                }
                if y + 1 == h {
                    border_edges += 1;
                }
                if border_edges > 0 {
                    nodes[l as usize].perimeter += border_edges;
                    nodes[l as usize].touches_border = true;
                }
                let link = |j: usize, nodes: &mut Vec<Node>| {
                    let m = labels[j];
                    let c = delta_e(&lab[i], &lab[j]);
                    if m == l {
                        let inner = &mut nodes[l as usize].inner;
                        inner.len += 1;
                        inner.contrast += c;
                    } else {
                        for (a, b) in [(l, m), (m, l)] {
                            let node = &mut nodes[a as usize];
                            node.perimeter += 1;
                            let e = node.adj.entry(b).or_default();
                            e.len += 1;
                            e.contrast += c;
                        }
                    }
                };
                if x + 1 < w {
                    link(i + 1, &mut nodes);
                }
                if y + 1 < h {
                    link(i + w, &mut nodes);
                }
            }
        }
        let mut alive = 0;
        for node in nodes.iter_mut() {
            node.alive = node.area > 0;
            alive += node.alive as usize;
        }
        Self {
            nodes,
            parent: (0..n as u32).collect(),
            alive,
            total: size.pixels() as f64,
            boundary_weight,
        }
    }

    fn dissimilarity(&self, a: u32, b: u32) -> f64 {
        let (na, nb) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        let (ma, mb) = (na.mean(), nb.mean());
        let de = ((ma[0] - mb[0]).powi(2) + (ma[1] - mb[1]).powi(2) + (ma[2] - mb[2]).powi(2)).sqrt();
        // Boundary contrast beyond the regions' own texture.
        let mean = |e: &Boundary| {
            if e.len == 0 {
                0.0
            } else {
                e.contrast / e.len as f64
            }
        };
        let boundary = na.adj.get(&b).map_or(0.0, mean);
        let texture = 0.5 * (mean(&na.inner) + mean(&nb.inner));
        de + self.boundary_weight * (boundary - texture).max(0.0)
    }

    /// The size-weighted merge cost used for the target count.
    fn merge_cost(&self, a: u32, b: u32) -> f64 {
        let (aa, ab) = (
            self.nodes[a as usize].area as f64,
            self.nodes[b as usize].area as f64,
        );
        let h = aa * ab / (aa + ab);
        self.dissimilarity(a, b) * (h / self.total).sqrt()
    }

    /// The neighbour of `a` with the lowest dissimilarity (ties: lowest index).
    fn most_similar(&self, a: u32) -> Option<u32> {
        let mut best: Option<(f64, u32)> = None;
        for &b in self.nodes[a as usize].adj.keys() {
            let d = self.dissimilarity(a, b);
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, b));
            }
        }
        best.map(|(_, b)| b)
    }

    /// The neighbour sharing the longest boundary with `a` (ties: lowest index).
    fn longest_boundary(&self, a: u32) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for (&b, e) in &self.nodes[a as usize].adj {
            if best.is_none_or(|(bl, _)| e.len > bl) {
                best = Some((e.len, b));
            }
        }
        best.map(|(_, b)| b)
    }

    /// Merges `b` into `a` (both alive and adjacent); `a` survives.
    fn merge(&mut self, a: u32, b: u32) {
        let nb = std::mem::take(&mut self.nodes[b as usize]);
        let shared = nb.adj.get(&a).map_or(0, |e| e.len);
        for (&c, e) in &nb.adj {
            if c == a {
                continue;
            }
            let nc = &mut self.nodes[c as usize];
            nc.adj.remove(&b);
            let ec = nc.adj.entry(a).or_default();
            ec.len += e.len;
            ec.contrast += e.contrast;
            let ea = self.nodes[a as usize].adj.entry(c).or_default();
            ea.len += e.len;
            ea.contrast += e.contrast;
        }
        let na = &mut self.nodes[a as usize];
        let between = na.adj.remove(&b).unwrap_or_default();
        na.inner.len += nb.inner.len + between.len;
        na.inner.contrast += nb.inner.contrast + between.contrast;
        na.area += nb.area;
        for c in 0..3 {
            na.lab_sum[c] += nb.lab_sum[c];
        }
        na.perimeter = na.perimeter + nb.perimeter - 2 * shared;
        na.touches_border |= nb.touches_border;
        self.parent[b as usize] = a;
        self.alive -= 1;
    }

    fn alive_ids(&self) -> Vec<u32> {
        (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].alive)
            .collect()
    }

    /// Merges every region below `min_area` pixels into its most similar
    /// neighbour, smallest first.
    fn merge_tiny(&mut self, min_area: u64, floor: usize) {
        let mut heap: BinaryHeap<Reverse<(u64, u32)>> = self
            .alive_ids()
            .into_iter()
            .filter(|&i| self.nodes[i as usize].area < min_area)
            .map(|i| Reverse((self.nodes[i as usize].area, i)))
            .collect();
        while let Some(Reverse((area, a))) = heap.pop() {
            if self.alive <= floor.max(1) {
                break;
            }
            let node = &self.nodes[a as usize];
            if !node.alive || node.area != area {
                continue;
            }
            let Some(b) = self.most_similar(a) else { continue };
            self.merge(b, a);
            let nb = &self.nodes[b as usize];
            if nb.area < min_area {
                heap.push(Reverse((nb.area, b)));
            }
        }
    }

    /// Merges slivers (mean width below `width`) into the neighbour with the
    /// longest shared boundary.
    fn merge_slivers(&mut self, width: f64, floor: usize) {
        if width <= 0.0 {
            return;
        }
        let mut changed = true;
        while changed {
            changed = false;
            for a in self.alive_ids() {
                if self.alive <= floor.max(1) {
                    return;
                }
                let node = &self.nodes[a as usize];
                if !node.alive || node.perimeter == 0 {
                    continue;
                }
                let mean_width = 2.0 * node.area as f64 / node.perimeter as f64;
                if mean_width >= width {
                    continue;
                }
                if let Some(b) = self.longest_boundary(a) {
                    self.merge(b, a);
                    changed = true;
                }
            }
        }
    }

    /// Fills enclosed regions (one neighbour, off the border) below `max_area`.
    fn fill_holes(&mut self, max_area: u64, floor: usize) {
        let mut changed = true;
        while changed {
            changed = false;
            for a in self.alive_ids() {
                if self.alive <= floor.max(1) {
                    return;
                }
                let node = &self.nodes[a as usize];
                if !node.alive || node.touches_border || node.adj.len() != 1 || node.area >= max_area {
                    continue;
                }
                if let Some(&b) = node.adj.keys().next() {
                    self.merge(b, a);
                    changed = true;
                }
            }
        }
    }

    /// Merges the cheapest pair (size-weighted) until at most `max_regions`
    /// remain, then goes on with pairs whose dissimilarity is below
    /// `delta_e` while more than `min_regions` remain, and with pairs below
    /// `same_delta_e` down to one region.
    fn merge_to_count(&mut self, min_regions: usize, max_regions: usize, delta_e: f64, same_delta_e: f64) {
        let key = |c: f64| c.max(0.0).to_bits();
        let mut stamp = vec![0u32; self.nodes.len()];
        // (cost bits, a, b, stamp of a, stamp of b); stale entries are skipped.
        type Entry = Reverse<(u64, u32, u32, u32, u32)>;
        let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
        for a in self.alive_ids() {
            for &b in self.nodes[a as usize].adj.keys() {
                if a < b {
                    heap.push(Reverse((key(self.merge_cost(a, b)), a, b, 0, 0)));
                }
            }
        }
        while self.alive > 1 {
            let Some(Reverse((_, a, b, sa, sb))) = heap.pop() else {
                break;
            };
            if !self.nodes[a as usize].alive
                || !self.nodes[b as usize].alive
                || stamp[a as usize] != sa
                || stamp[b as usize] != sb
            {
                continue;
            }
            if self.alive <= max_regions {
                let d = self.dissimilarity(a, b);
                let limit = if self.alive > min_regions {
                    delta_e.max(same_delta_e)
                } else {
                    same_delta_e
                };
                if d >= limit {
                    // Too different for now; a pair that is cheaper only by
                    // size may still qualify, so keep looking.
                    continue;
                }
            }
            // The larger region survives (keeps its index).
            let (keep, gone) = if self.nodes[a as usize].area >= self.nodes[b as usize].area {
                (a, b)
            } else {
                (b, a)
            };
            self.merge(keep, gone);
            stamp[keep as usize] += 1;
            let s = stamp[keep as usize];
            let neighbours: Vec<u32> = self.nodes[keep as usize].adj.keys().copied().collect();
            for c in neighbours {
                let (x, y) = if keep < c { (keep, c) } else { (c, keep) };
                let (sx, sy) = if keep < c {
                    (s, stamp[c as usize])
                } else {
                    (stamp[c as usize], s)
                };
                heap.push(Reverse((key(self.merge_cost(x, y)), x, y, sx, sy)));
            }
        }
    }

    fn root(&self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }

    /// The merged label map, renumbered by first appearance.
    fn relabel(&self, map: &LabelMap) -> LabelMap {
        let roots: Vec<u32> = (0..self.nodes.len() as u32).map(|i| self.root(i)).collect();
        let labels: Vec<u32> = map.labels().iter().map(|&l| roots[l as usize]).collect();
        let mut out = LabelMap::from_parts(map.size(), labels, map.count());
        out.relabel_sequential();
        out
    }
}

/// Splits every region of `map` into 4-connected pieces (labels renumbered by
/// first appearance).
///
/// ```
/// use som_core::ImageSize;
/// use som_segment::{split_connected, LabelMap};
/// // Label 0 sits in two opposite corners: two pieces.
/// let map = LabelMap::new(ImageSize::new(3, 2), vec![0, 1, 1, 1, 1, 0])?;
/// let split = split_connected(&map);
/// assert_eq!(split.count(), 3);
/// assert_eq!(split.labels(), &[0, 1, 1, 1, 1, 2]);
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
pub fn split_connected(map: &LabelMap) -> LabelMap {
    let size = map.size();
    let (w, h) = (size.width as usize, size.height as usize);
    let labels = map.labels();
    let mut out = vec![u32::MAX; labels.len()];
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..labels.len() {
        if out[start] != u32::MAX {
            continue;
        }
        let l = labels[start];
        out[start] = next;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if out[j] == u32::MAX && labels[j] == l {
                    out[j] = next;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        next += 1;
    }
    LabelMap::from_parts(size, out, next)
}

/// The SoM post-processing of a label map (see the module documentation).
fn postprocess(base: &LabelMap, lab: &[[f32; 3]], p: &ClassicParams) -> LabelMap {
    let size: ImageSize = base.size();
    let total = size.pixels() as f64;
    let min_area = (p.min_area * total).ceil() as u64;
    let hole_area = (p.hole_area * total).ceil() as u64;
    let mut rag = Rag::build(base, lab, p.boundary_weight);
    rag.merge_tiny(min_area, 1);
    rag.merge_slivers(p.sliver_width, 1);
    rag.fill_holes(hole_area, 1);
    rag.merge_to_count(p.min_regions, p.max_regions, p.merge_delta_e, p.same_delta_e);
    rag.fill_holes(hole_area, p.min_regions);
    let merged = rag.relabel(base);
    if !p.split_disconnected {
        return merged;
    }
    let pieces = split_connected(&merged);
    if pieces.count() == merged.count() {
        return merged;
    }
    let mut rag = Rag::build(&pieces, lab, p.boundary_weight);
    rag.merge_tiny(min_area, 1);
    rag.relabel(&pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbrt_unit_is_accurate_on_its_range() {
        let mut t = 216.0 / 24389.0;
        while t <= 1.1 {
            let (got, want) = (cbrt_unit(t), t.cbrt());
            assert!((got - want).abs() < 1e-10 * want, "{t}: {got} vs {want}");
            t *= 1.01;
        }
    }

    #[test]
    fn lab_of_white_and_black() {
        let lab = lab_image(&[255, 255, 255, 0, 0, 0, 255, 0, 0]);
        assert!((lab[0][0] - 100.0).abs() < 0.01 && lab[0][1].abs() < 0.01 && lab[0][2].abs() < 0.01);
        assert!(lab[1][0].abs() < 1e-6);
        // sRGB red: L 53.24, a 80.09, b 67.20.
        assert!(
            (lab[2][0] - 53.24).abs() < 0.05
                && (lab[2][1] - 80.09).abs() < 0.05
                && (lab[2][2] - 67.20).abs() < 0.05
        );
    }

    #[test]
    fn rejects_bad_params() {
        for p in [
            ClassicParams {
                max_regions: 0,
                ..Default::default()
            },
            ClassicParams {
                min_regions: 70,
                max_regions: 60,
                ..Default::default()
            },
            ClassicParams {
                min_area: 2.0,
                ..Default::default()
            },
            ClassicParams {
                sliver_width: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(p.validate(), Err(SegmentError::Param { .. })), "{p:?}");
        }
    }

    #[test]
    fn upscaled_labels_keep_the_layout() {
        let map = LabelMap::new(ImageSize::new(2, 2), vec![0, 1, 2, 2]).expect("map");
        // Column 2's centre (2.5 of 5) maps onto the source boundary and rounds right.
        let up = upscale_labels(&map, ImageSize::new(5, 4));
        assert_eq!(up.count(), 3);
        assert_eq!(
            up.labels(),
            &[0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
        );
    }

    #[test]
    fn big_images_are_segmented_downscaled() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 200, |x, _| {
            if x < 150 {
                image::Rgb([200, 30, 30])
            } else {
                image::Rgb([30, 30, 200])
            }
        }));
        let p = ClassicParams {
            max_side: Some(60),
            ..Default::default()
        };
        let map = Classic::new(p).label_map(&img).expect("segments");
        assert_eq!(map.size(), ImageSize::new(300, 200));
        assert_eq!(map.count(), 2);
        assert_eq!(map.get(149, 100), Some(0));
        assert_eq!(map.get(150, 100), Some(1));
    }

    #[test]
    fn hole_is_filled() {
        // A 3x3 dot inside a 40x40 square: one neighbour, off the border.
        let size = ImageSize::new(40, 40);
        let labels: Vec<u32> = (0..1600)
            .map(|i| ((10..13).contains(&(i % 40)) && (10..13).contains(&(i / 40))) as u32)
            .collect();
        let map = LabelMap::new(size, labels).expect("map");
        let lab = vec![[50.0f32, 0.0, 0.0]; 1600];
        let p = ClassicParams {
            min_regions: 1,
            min_area: 0.0,
            sliver_width: 0.0,
            merge_delta_e: 0.0,
            same_delta_e: 0.0,
            ..Default::default()
        };
        assert_eq!(postprocess(&map, &lab, &p).count(), 1);
        let p = ClassicParams { hole_area: 0.0, ..p };
        assert_eq!(postprocess(&map, &lab, &p).count(), 2);
    }

    #[test]
    fn sliver_merges_into_longest_boundary() {
        // Columns: 0..10 label 0, column 10 label 1 (a 1-px line), 11..20 label 2.
        let size = ImageSize::new(20, 20);
        let labels: Vec<u32> = (0..400)
            .map(|i| match i % 20 {
                0..=9 => 0,
                10 => 1,
                _ => 2,
            })
            .collect();
        let map = LabelMap::new(size, labels).expect("map");
        let lab: Vec<[f32; 3]> = (0..400)
            .map(|i| {
                if i % 20 < 10 {
                    [20.0, 0.0, 0.0]
                } else {
                    [80.0, 0.0, 0.0]
                }
            })
            .collect();
        let p = ClassicParams {
            min_regions: 1,
            min_area: 0.0,
            hole_area: 0.0,
            merge_delta_e: 0.0,
            same_delta_e: 0.0,
            ..Default::default()
        };
        let out = postprocess(&map, &lab, &p);
        assert_eq!(out.count(), 2);
        // A tie (20 pixels on each side): the lower index, the left region, wins.
        assert_eq!(out.get(10, 5), out.get(0, 5));
        assert_ne!(out.get(10, 5), out.get(15, 5));
    }
}
