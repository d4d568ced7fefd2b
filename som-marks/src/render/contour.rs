//! Region outlines: marching squares on the mask crop, linked into closed
//! polylines and stroked with analytic anti-aliasing.
//!
//! Samples sit at pixel centres; a contour vertex is the midpoint of a sample
//! edge that crosses the boundary, i.e. the middle of a pixel side. Staircase
//! corners become 45° cuts, so diagonal edges come out smooth. Diagonal-only
//! contacts between inside pixels are kept apart (the foreground is
//! 4-connected). Collinear runs are merged before stroking.

use som_core::{BBox, Mask};

/// A run of covered pixels on one image row: `len` coverage bytes starting at
/// `data[off]` for pixels `x..x + len` of row `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub y: u32,
    pub x: u32,
    pub off: u32,
    pub len: u32,
}

/// An outline's anti-aliased coverage, clipped to the image and kept as
/// sparse row spans (ordered by row, then column), so memory and compositing
/// cost follow the outline's length, not its region's box.
#[derive(Debug, Clone, Default)]
pub(crate) struct Coverage {
    pub spans: Vec<Span>,
    pub data: Vec<u8>,
}

impl Coverage {
    /// Collects the non-zero runs of a dense crop whose top-left pixel is at
    /// (`ox`, `oy`) in an image of `width` × `height`. Gaps shorter than
    /// `MERGE_GAP` zero bytes stay inside a span.
    fn from_dense(crop: &[u8], cw: usize, ox: i64, oy: i64, width: u32, height: u32) -> Self {
        const MERGE_GAP: usize = 8;
        let mut cov = Coverage::default();
        let x0 = (-ox).max(0) as usize; // first crop column inside the image
        let x1 = ((i64::from(width) - ox).max(0) as usize).min(cw);
        for (r, row) in crop.chunks_exact(cw.max(1)).enumerate() {
            let y = oy + r as i64;
            if y < 0 || y >= i64::from(height) || x0 >= x1 {
                continue;
            }
            let row = &row[x0..x1];
            let mut i = 0;
            while i < row.len() {
                if row[i] == 0 {
                    // skip zeros, eight at a time where possible
                    while i + 8 <= row.len() && word(row, i) == 0 {
                        i += 8;
                    }
                    while i < row.len() && row[i] == 0 {
                        i += 1;
                    }
                    continue;
                }
                // extend while non-zero, or zero gaps shorter than MERGE_GAP
                let start = i;
                let mut end = i + 1;
                let mut j = i + 1;
                while j < row.len() && j - end < MERGE_GAP {
                    if row[j] != 0 {
                        end = j + 1;
                    }
                    j += 1;
                }
                cov.spans.push(Span {
                    y: y as u32,
                    x: (ox + (x0 + start) as i64) as u32,
                    off: cov.data.len() as u32,
                    len: (end - start) as u32,
                });
                cov.data.extend_from_slice(&row[start..end]);
                i = end;
            }
        }
        cov
    }

    /// The spans on rows `y0..y1`.
    pub fn rows(&self, y0: u32, y1: u32) -> &[Span] {
        let a = self.spans.partition_point(|s| s.y < y0);
        let b = self.spans.partition_point(|s| s.y < y1);
        &self.spans[a..b.max(a)]
    }

    /// The coverage bytes of a span.
    pub fn bytes(&self, s: &Span) -> &[u8] {
        &self.data[s.off as usize..(s.off + s.len) as usize]
    }
}

/// Closed boundary loops of `mask`, as vertex lists in image coordinates.
pub(crate) fn boundary_loops(mask: &Mask) -> Vec<Vec<(f32, f32)>> {
    let b = mask.bbox();
    if b.is_empty() {
        return Vec::new();
    }
    let (bw, bh) = (b.width as usize, b.height as usize);
    let crop = mask.crop_data();
    // sample (sx, sy) of the padded grid is crop pixel (sx - 1, sy - 1); the pad is outside
    let gw = bw + 2; // samples per padded row
    let inside = |sx: usize, sy: usize| -> bool {
        sx >= 1 && sy >= 1 && sx <= bw && sy <= bh && crop[(sy - 1) * bw + (sx - 1)] != 0
    };
    // directed segments (entering crossing -> leaving crossing), by edge id:
    // horizontal edge (sx,sy)-(sx+1,sy) = 2*(sy*gw+sx), vertical (sx,sy)-(sx,sy+1) = 2*(sy*gw+sx)+1
    let mut segs: Vec<Seg> = Vec::new();
    // segs of cell row cy are segs[row_start[cy]..row_start[cy + 1]], in cell x order
    let mut row_start: Vec<u32> = Vec::with_capacity(bh + 2);
    let zero_row = vec![0u8; bw];
    for cy in 0..=bh {
        row_start.push(segs.len() as u32);
        // cells between sample rows cy and cy+1 => crop rows cy-1 and cy
        let top: &[u8] = if cy >= 1 {
            &crop[(cy - 1) * bw..cy * bw]
        } else {
            &zero_row
        };
        let bot: &[u8] = if cy < bh {
            &crop[cy * bw..(cy + 1) * bw]
        } else {
            &zero_row
        };
        if top == bot && top.iter().all(|&v| v == 0) {
            continue; // two empty rows: no cell crosses (the pad is outside too)
        }
        let mut cx = 0usize;
        while cx <= bw {
            // cells cx..cx+8 read crop columns cx-1..=cx+7: skip them when those
            // nine columns are all inside or all outside in both rows
            if cx >= 1 && cx + 8 <= bw {
                let t0 = word(top, cx - 1);
                if (t0 == 0 || t0 == ONES)
                    && word(bot, cx - 1) == t0
                    && word(top, cx) == t0
                    && word(bot, cx) == t0
                {
                    cx += 8;
                    continue;
                }
            }
            cell(cx, cy, gw, &inside, &mut segs);
            cx += 1;
        }
    }
    row_start.push(segs.len() as u32);
    link(&segs, &row_start, gw, bw, b)
}

/// Eight mask bytes (0/1 each) starting at `i`, as one word.
#[inline]
fn word(row: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&row[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Eight inside bytes.
const ONES: u64 = 0x0101_0101_0101_0101;

/// A directed contour segment of cell column `cx`: from the edge where the
/// boundary enters the cell to the edge where it leaves (edge ids as in
/// [`boundary_loops`]).
#[derive(Debug, Clone, Copy)]
struct Seg {
    cx: u32,
    from: u32,
    to: u32,
}

/// Adds the segments of cell (`cx`, `cy`) (samples cx..=cx+1, cy..=cy+1).
fn cell(cx: usize, cy: usize, gw: usize, inside: &impl Fn(usize, usize) -> bool, segs: &mut Vec<Seg>) {
    // corners clockwise (y down): a top-left, b top-right, c bottom-right, d bottom-left
    let st = [
        inside(cx, cy),
        inside(cx + 1, cy),
        inside(cx + 1, cy + 1),
        inside(cx, cy + 1),
    ];
    if st[0] == st[1] && st[1] == st[2] && st[2] == st[3] {
        return;
    }
    // the edge walked from corner k to k+1: top, right, bottom, left
    let edge = |k: usize| -> u32 {
        let id = match k {
            0 => 2 * (cy * gw + cx),         // top: (cx,cy)-(cx+1,cy)
            1 => 2 * (cy * gw + cx + 1) + 1, // right: (cx+1,cy)-(cx+1,cy+1)
            2 => 2 * ((cy + 1) * gw + cx),   // bottom: (cx,cy+1)-(cx+1,cy+1)
            _ => 2 * (cy * gw + cx) + 1,     // left: (cx,cy)-(cx,cy+1)
        };
        id as u32
    };
    // crossings in clockwise order; each entering one pairs with the next leaving one
    let mut crossings = [(0u32, false); 4];
    let mut n = 0;
    for k in 0..4 {
        let (from, to) = (st[k], st[(k + 1) % 4]);
        if from != to {
            crossings[n] = (edge(k), to); // to == true: entering the inside
            n += 1;
        }
    }
    for i in 0..n {
        let (e, entering) = crossings[i];
        if entering {
            let (l, _) = crossings[(i + 1) % n];
            segs.push(Seg {
                cx: cx as u32,
                from: e,
                to: l,
            });
        }
    }
}

/// Links directed segments into closed loops and converts edge ids to image
/// coordinates (merging collinear runs).
fn link(segs: &[Seg], row_start: &[u32], gw: usize, bw: usize, b: BBox) -> Vec<Vec<(f32, f32)>> {
    let mut used = vec![false; segs.len()];
    // the segment leaving through edge `e` lies in one of the two cells sharing it
    let find = |e: u32| -> Option<usize> {
        let (c, vertical) = ((e / 2) as usize, e % 2 == 1);
        let (sx, sy) = (c % gw, c / gw);
        let cands = if vertical {
            [(sx, sy), (sx.wrapping_sub(1), sy)] // left edge of (sx,sy), right edge of (sx-1,sy)
        } else {
            [(sx, sy), (sx, sy.wrapping_sub(1))] // top edge of (sx,sy), bottom edge of (sx,sy-1)
        };
        for (cx, cy) in cands {
            if cx > bw || cy + 1 >= row_start.len() {
                continue;
            }
            let (lo, hi) = (row_start[cy] as usize, row_start[cy + 1] as usize);
            let row = &segs[lo..hi];
            let mut i = row.partition_point(|s| (s.cx as usize) < cx);
            while i < row.len() && row[i].cx as usize == cx {
                if row[i].from == e {
                    return Some(lo + i);
                }
                i += 1;
            }
        }
        None
    };
    let point = |e: u32| -> (f32, f32) {
        let (cell, vertical) = ((e / 2) as usize, e % 2 == 1);
        let (sx, sy) = ((cell % gw) as f32, (cell / gw) as f32);
        // sample (sx, sy) is pixel (b.x + sx - 1, b.y + sy - 1), centre +0.5
        let (px, py) = (b.x as f32 + sx - 0.5, b.y as f32 + sy - 0.5);
        if vertical {
            (px, py + 0.5)
        } else {
            (px + 0.5, py)
        }
    };
    let mut loops = Vec::new();
    for start in 0..segs.len() {
        if used[start] {
            continue;
        }
        let mut pts: Vec<(f32, f32)> = Vec::new();
        let mut i = start;
        loop {
            used[i] = true;
            push_merged(&mut pts, point(segs[i].from));
            match find(segs[i].to) {
                Some(j) if !used[j] => i = j,
                _ => break,
            }
        }
        // close: drop a last point collinear with the first two
        if pts.len() >= 3 {
            let n = pts.len();
            if collinear(pts[n - 2], pts[n - 1], pts[0]) {
                pts.pop();
            }
        }
        if pts.len() >= 3 && collinear(pts[pts.len() - 1], pts[0], pts[1]) {
            pts.remove(0);
        }
        if pts.len() >= 2 {
            loops.push(pts);
        }
    }
    loops
}

fn collinear(a: (f32, f32), b: (f32, f32), c: (f32, f32)) -> bool {
    let cross = (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0);
    let dot = (b.0 - a.0) * (c.0 - b.0) + (b.1 - a.1) * (c.1 - b.1);
    cross == 0.0 && dot > 0.0
}

fn push_merged(pts: &mut Vec<(f32, f32)>, p: (f32, f32)) {
    let n = pts.len();
    if n >= 2 && collinear(pts[n - 2], pts[n - 1], p) {
        pts[n - 1] = p;
    } else {
        pts.push(p);
    }
}

/// The anti-aliased coverage of `mask`'s outline stroked `width` pixels wide
/// (centred on the boundary), or `None` when the mask is empty.
///
/// Each polyline segment is drawn as a capsule (a segment with round ends)
/// whose pixel coverage is the analytic box-filter estimate
/// `clamp(width / 2 + 0.5 − d, 0, 1)` at distance `d` from the segment;
/// segments combine by maximum, so joins are round and never darker than the
/// line.
pub(crate) fn outline_coverage(mask: &Mask, width: f32) -> Option<Coverage> {
    let size = mask.size();
    let loops = boundary_loops(mask);
    if loops.is_empty() || width.is_nan() || width <= 0.0 {
        return None;
    }
    let b = mask.bbox();
    let half = width / 2.0;
    let pad = (half + 0.5).ceil() as i64 + 1;
    let ox = i64::from(b.x) - pad;
    let oy = i64::from(b.y) - pad;
    let cw = b.width as usize + 2 * pad as usize;
    let ch = b.height as usize + 2 * pad as usize;
    let mut cov = vec![0u8; cw * ch];
    for l in &loops {
        for (i, &p) in l.iter().enumerate() {
            let q = l[(i + 1) % l.len()];
            let a = (
                (f64::from(p.0) - ox as f64) as f32,
                (f64::from(p.1) - oy as f64) as f32,
            );
            let e = (
                (f64::from(q.0) - ox as f64) as f32,
                (f64::from(q.1) - oy as f64) as f32,
            );
            // long (especially diagonal) segments go in pieces of at most
            // PIECE px, so each capsule's box stays close to the line
            let len = ((e.0 - a.0).powi(2) + (e.1 - a.1).powi(2)).sqrt();
            let n = (len / PIECE).ceil().max(1.0) as usize;
            for k in 0..n {
                let (t0, t1) = (k as f32 / n as f32, (k + 1) as f32 / n as f32);
                let p0 = (a.0 + (e.0 - a.0) * t0, a.1 + (e.1 - a.1) * t0);
                let p1 = (a.0 + (e.0 - a.0) * t1, a.1 + (e.1 - a.1) * t1);
                capsule(&mut cov, cw, ch, p0, p1, half);
            }
        }
    }
    Some(Coverage::from_dense(&cov, cw, ox, oy, size.width, size.height))
}

/// The longest piece a segment is rasterised in (see [`outline_coverage`]).
const PIECE: f32 = 4.0;

/// Max-blends into `cov` (`cw` × `ch`) the coverage of the capsule of radius
/// `half` around the segment `a`–`b` (crop coordinates, pixel centres at +0.5).
fn capsule(cov: &mut [u8], cw: usize, ch: usize, a: (f32, f32), b: (f32, f32), half: f32) {
    let reach = half + 0.5;
    let peak = (2.0 * half).min(1.0); // lines thinner than a pixel never cover one fully
    let x0 = (a.0.min(b.0) - reach).floor().max(0.0) as usize;
    let y0 = (a.1.min(b.1) - reach).floor().max(0.0) as usize;
    let x1 = ((a.0.max(b.0) + reach).ceil().max(0.0) as usize).min(cw);
    let y1 = ((a.1.max(b.1) + reach).ceil().max(0.0) as usize).min(ch);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let inv = if len2 > 0.0 { 1.0 / len2 } else { 0.0 };
    for y in y0..y1 {
        let py = y as f32 + 0.5 - a.1;
        let row = &mut cov[y * cw..(y + 1) * cw];
        for (x, out) in row.iter_mut().enumerate().take(x1).skip(x0) {
            let px = x as f32 + 0.5 - a.0;
            let t = ((px * dx + py * dy) * inv).clamp(0.0, 1.0);
            let (ex, ey) = (px - t * dx, py - t * dy);
            let c = (reach - (ex * ex + ey * ey).sqrt()).clamp(0.0, peak);
            let v = (c * 255.0 + 0.5) as u8;
            if v > *out {
                *out = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use som_core::ImageSize;

    use super::*;

    #[test]
    fn a_square_has_one_loop_of_four_corners() {
        let m = Mask::from_box(ImageSize::new(10, 10), BBox::new(2, 3, 4, 2));
        let loops = boundary_loops(&m);
        assert_eq!(loops.len(), 1);
        // midpoints of the outer pixel sides, corners cut at 45°
        let l = &loops[0];
        assert_eq!(l.len(), 8, "{l:?}");
        for &(x, y) in l {
            assert!((2.0..=6.0).contains(&x) && (3.0..=5.0).contains(&y), "{l:?}");
        }
    }

    #[test]
    fn a_ring_has_two_loops_and_blobs_are_separate() {
        let size = ImageSize::new(12, 12);
        let ring = Mask::from_fn(size, |x, y| {
            (2..10).contains(&x) && (2..10).contains(&y) && !((4..8).contains(&x) && (4..8).contains(&y))
        });
        assert_eq!(boundary_loops(&ring).len(), 2);
        let diag = Mask::from_fn(size, |x, y| (x == 3 && y == 3) || (x == 4 && y == 4));
        assert_eq!(boundary_loops(&diag).len(), 2);
        let single = Mask::from_fn(size, |x, y| x == 0 && y == 0);
        assert_eq!(boundary_loops(&single).len(), 1);
    }

    #[test]
    fn every_segment_is_used_once() {
        let size = ImageSize::new(20, 16);
        let m = Mask::from_fn(size, |x, y| (x * 7 + y * 3) % 5 < 2);
        let loops = boundary_loops(&m);
        // every boundary pixel side contributes a vertex or is merged into a run; loops close
        assert!(!loops.is_empty());
        for l in &loops {
            assert!(l.len() >= 2);
        }
    }

    /// The coverage as a full `w` × `h` image.
    fn dense(c: &Coverage, w: u32, h: u32) -> Vec<u8> {
        let mut out = vec![0u8; (w * h) as usize];
        for s in c.rows(0, h) {
            for (i, &v) in c.bytes(s).iter().enumerate() {
                out[(s.y * w + s.x) as usize + i] = v;
            }
        }
        out
    }

    #[test]
    fn outline_stays_near_the_boundary() {
        let size = ImageSize::new(40, 40);
        let m = Mask::from_box(size, BBox::new(10, 10, 20, 20));
        let c = outline_coverage(&m, 2.0).unwrap();
        let d = dense(&c, 40, 40);
        let at = |x: usize, y: usize| d[y * 40 + x];
        for y in 0..40 {
            for x in 0..40 {
                // interior well away from the edge, and far outside, stay clear
                if (13..27).contains(&x) && (13..27).contains(&y)
                    || !(7..33).contains(&x)
                    || !(7..33).contains(&y)
                {
                    assert_eq!(at(x, y), 0, "({x},{y})");
                }
            }
        }
        // the pixels on both sides of the boundary are covered
        assert!(at(10, 20) > 100 && at(9, 20) > 100 && at(20, 29) > 100);
        // spans are ordered by row and stay inside the image
        assert!(c.spans.windows(2).all(|p| (p[0].y, p[0].x) < (p[1].y, p[1].x)));
    }

    #[test]
    fn outlines_clip_to_the_image() {
        let size = ImageSize::new(12, 9);
        let full = Mask::from_box(size, size.full_box());
        let c = outline_coverage(&full, 2.0).unwrap();
        for s in &c.spans {
            assert!(s.y < 9 && s.x + s.len <= 12, "{s:?}");
        }
        let d = dense(&c, 12, 9);
        assert!(d[0] > 0 && d[11] > 0 && d[8 * 12] > 0);
        assert_eq!(d[4 * 12 + 6], 0, "the middle is not on the outline");
    }

    #[test]
    fn dense_runs_become_spans_with_short_gaps_merged() {
        let row = [0u8, 5, 5, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0];
        let c = Coverage::from_dense(&row, row.len(), -1, 3, 100, 100);
        assert_eq!(c.spans.len(), 2);
        assert_eq!(
            c.spans[0],
            Span {
                y: 3,
                x: 0,
                off: 0,
                len: 5
            }
        );
        assert_eq!(c.bytes(&c.spans[0]), &[5, 5, 0, 0, 7]);
        assert_eq!((c.spans[1].x, c.spans[1].len), (15, 1));
    }

    #[test]
    fn outlines_are_anti_aliased_and_scale_with_width() {
        let size = ImageSize::new(60, 60);
        let disc = Mask::from_fn(size, |x, y| {
            let (dx, dy) = (x as f32 - 30.0, y as f32 - 30.0);
            dx * dx + dy * dy <= 400.0
        });
        let total = |w: f32| -> (u64, usize) {
            let c = outline_coverage(&disc, w).unwrap();
            let partial = c.data.iter().filter(|&&v| v > 0 && v < 255).count();
            (c.data.iter().map(|&v| u64::from(v)).sum(), partial)
        };
        let (one, partial_one) = total(1.0);
        let (two, partial_two) = total(2.0);
        // partial coverage along the curve: the edges are smoothed, not stepped
        assert!(
            partial_one > 20 && partial_two > 20,
            "{partial_one} {partial_two}"
        );
        // twice the width, about twice the ink
        let ratio = two as f64 / one as f64;
        assert!((1.6..2.4).contains(&ratio), "{ratio}");
    }
}
