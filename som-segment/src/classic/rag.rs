//! The region adjacency graph the classic segmenter merges on: per region
//! its area, CIELAB colour sum, perimeter and texture (ΔE between
//! 4-neighbour pixels inside it); per boundary between two regions its
//! length and contrast. Regions merge pairwise (union-find over the original
//! labels) under the policies in the [module docs](super): tiny regions,
//! slivers, holes, then the cheapest pairs down to a target count.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::lab::delta_e;
use crate::labels::LabelMap;

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
pub(super) struct Rag {
    nodes: Vec<Node>,
    /// Union-find over the original labels; a merged node points at its survivor.
    parent: Vec<u32>,
    alive: usize,
    total: f64,
    boundary_weight: f64,
}

impl Rag {
    pub(super) fn build(map: &LabelMap, lab: &[[f32; 3]], boundary_weight: f64) -> Self {
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
    pub(super) fn merge_tiny(&mut self, min_area: u64, floor: usize) {
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
    pub(super) fn merge_slivers(&mut self, width: f64, floor: usize) {
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
    pub(super) fn fill_holes(&mut self, max_area: u64, floor: usize) {
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
    pub(super) fn merge_to_count(
        &mut self,
        min_regions: usize,
        max_regions: usize,
        delta_e: f64,
        same_delta_e: f64,
    ) {
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
    pub(super) fn relabel(&self, map: &LabelMap) -> LabelMap {
        let roots: Vec<u32> = (0..self.nodes.len() as u32).map(|i| self.root(i)).collect();
        let labels: Vec<u32> = map.labels().iter().map(|&l| roots[l as usize]).collect();
        let mut out = LabelMap::from_parts(map.size(), labels, map.count());
        out.relabel_sequential();
        out
    }
}
