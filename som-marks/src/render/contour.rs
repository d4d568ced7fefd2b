//! Region outlines: marching squares on the mask crop, each boundary
//! segment stamped with an analytically anti-aliased pen.
//!
//! Samples sit at pixel centres; a contour segment joins the midpoints of two
//! sample edges that cross the boundary (the middles of pixel sides), so
//! staircase corners become 45° cuts and diagonal edges come out smooth.
//! Diagonal-only contacts between inside pixels are kept apart (the
//! foreground is 4-connected).
//!
//! A segment's coverage is the box-filter estimate
//! `clamp(width / 2 + 0.5 − d, 0, 1)` at distance `d` from it; segments
//! combine by maximum, which is the coverage of the whole polyline stroked
//! with round joins. Because every segment joins two of the four side
//! midpoints of a cell, there are only six segment shapes: their coverage is
//! computed once per line width as small stamps, and an outline costs one
//! stamp per boundary cell.

use som_core::Mask;

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
    /// (`ox`, `oy`) in an image of `width` × `height`.
    #[cfg(test)]
    fn from_dense(crop: &[u8], cw: usize, ox: i64, oy: i64, width: u32, height: u32) -> Self {
        let mut cov = Coverage::default();
        for (r, row) in crop.chunks_exact(cw.max(1)).enumerate() {
            cov.push_row(row, ox, oy + r as i64, width, height);
        }
        cov
    }

    /// Appends the non-zero runs of one crop row (image row `y`, first pixel
    /// at column `ox`), clipped to an image of `width` × `height`. Gaps
    /// shorter than `MERGE_GAP` zero bytes stay inside a span. Rows must come
    /// in increasing `y`.
    fn push_row(&mut self, row: &[u8], ox: i64, y: i64, width: u32, height: u32) {
        const MERGE_GAP: usize = 8;
        let x0 = (-ox).max(0) as usize; // first crop column inside the image
        let x1 = ((i64::from(width) - ox).max(0) as usize).min(row.len());
        if y < 0 || y >= i64::from(height) || x0 >= x1 {
            return;
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
            self.spans.push(Span {
                y: y as u32,
                x: (ox + (x0 + start) as i64) as u32,
                off: self.data.len() as u32,
                len: (end - start) as u32,
            });
            self.data.extend_from_slice(&row[start..end]);
            i = end;
        }
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

/// Eight mask bytes (0/1 each) starting at `i`, as one word.
#[inline]
fn word(row: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&row[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Eight inside bytes.
const ONES: u64 = 0x0101_0101_0101_0101;

/// Side midpoints of a cell relative to its top-left sample (a pixel
/// centre): top, right, bottom, left.
const MIDPOINTS: [(f32, f32); 4] = [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)];

/// The stamp index of the segment joining sides `a` and `b` (unordered).
fn pair_index(a: usize, b: usize) -> usize {
    match (a.min(b), a.max(b)) {
        (0, 1) => 0,
        (0, 2) => 1,
        (0, 3) => 2,
        (1, 2) => 3,
        (1, 3) => 4,
        _ => 5,
    }
}

/// The six segment stamps for one line width.
#[derive(Debug, Clone)]
pub(crate) struct Pen {
    /// Stamp margin around the cell, in pixels: `ceil(width / 2 + 0.5)`.
    reach: usize,
    /// Stamp side: `2 · reach + 2`.
    side: usize,
    /// Coverage stamps (`side` × `side`), by [`pair_index`].
    stamps: [Vec<u8>; 6],
    /// The non-zero box of each stamp: (`x0`, `y0`, `x1`, `y1`), exclusive ends.
    ink: [(usize, usize, usize, usize); 6],
}

impl Pen {
    /// The pen for lines `width` pixels wide, or `None` for a width that is
    /// not a positive number.
    pub fn new(width: f32) -> Option<Pen> {
        if width.is_nan() || width <= 0.0 {
            return None;
        }
        let half = width.min(256.0) / 2.0;
        let reach_f = half + 0.5;
        let peak = (2.0 * half).min(1.0); // lines thinner than a pixel never cover one fully
        let reach = reach_f.ceil() as usize;
        let side = 2 * reach + 2;
        let stamp = |a: (f32, f32), b: (f32, f32)| -> Vec<u8> {
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let inv = 1.0 / (dx * dx + dy * dy);
            let mut out = vec![0u8; side * side];
            for j in 0..side {
                for i in 0..side {
                    // pixel centre relative to the cell's top-left sample
                    let (px, py) = (i as f32 - reach as f32 - a.0, j as f32 - reach as f32 - a.1);
                    let t = ((px * dx + py * dy) * inv).clamp(0.0, 1.0);
                    let (ex, ey) = (px - t * dx, py - t * dy);
                    let c = (reach_f - (ex * ex + ey * ey).sqrt()).clamp(0.0, peak);
                    out[j * side + i] = (c * 255.0 + 0.5) as u8;
                }
            }
            out
        };
        let m = MIDPOINTS;
        let stamps = [
            stamp(m[0], m[1]),
            stamp(m[0], m[2]),
            stamp(m[0], m[3]),
            stamp(m[1], m[2]),
            stamp(m[1], m[3]),
            stamp(m[2], m[3]),
        ];
        let ink = stamps.each_ref().map(|st| {
            let (mut x0, mut y0, mut x1, mut y1) = (side, side, 0, 0);
            for (i, &v) in st.iter().enumerate() {
                if v != 0 {
                    let (x, y) = (i % side, i / side);
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
                }
            }
            (x0, y0, x1.max(x0), y1.max(y0))
        });
        Some(Pen {
            reach,
            side,
            stamps,
            ink,
        })
    }
}

/// The anti-aliased coverage of `mask`'s outline drawn with `pen` (centred on
/// the boundary, clipped to the image), or `None` when the mask is empty.
pub(crate) fn outline_coverage(mask: &Mask, pen: &Pen) -> Option<Coverage> {
    let b = mask.bbox();
    if b.is_empty() {
        return None;
    }
    let size = mask.size();
    let (bw, bh) = (b.width as usize, b.height as usize);
    let crop = mask.crop_data();
    // sample (sx, sy) of the padded grid is crop pixel (sx - 1, sy - 1); the pad is outside.
    // Cell (cx, cy) has samples cx..=cx+1, cy..=cy+1; its top-left sample is image pixel
    // (b.x + cx - 1, b.y + cy - 1), so with a margin of reach + 1 its stamp starts at (cx, cy).
    let pad = pen.reach + 1;
    let (ox, oy) = (i64::from(b.x) - pad as i64, i64::from(b.y) - pad as i64);
    let cw = bw + 2 * pad;
    let ch = bh + 2 * pad;
    // a ring of `side` crop rows: stamps of cell row cy touch crop rows
    // cy..cy+side, so crop row cy is final once cell row cy is done
    let side = pen.side;
    let mut ring = vec![0u8; cw * side];
    // columns of each ring row that stamps have touched since it was cleared
    let mut dirty = vec![(cw, 0usize); side];
    let mut out = Coverage::default();
    let mut finish_row = |r: usize, ring: &mut [u8], dirty: &mut [(usize, usize)]| {
        let slot = r % side;
        let (lo, hi) = std::mem::replace(&mut dirty[slot], (cw, 0));
        if lo < hi {
            let row = &mut ring[slot * cw + lo..slot * cw + hi];
            out.push_row(row, ox + lo as i64, oy + r as i64, size.width, size.height);
            row.fill(0);
        }
    };
    // the inside columns of each crop row: first and one past the last (empty: lo >= hi)
    let extents: Vec<(usize, usize)> = crop
        .chunks_exact(bw)
        .map(|row| match row.iter().position(|&v| v != 0) {
            Some(first) => (
                first,
                row.iter().rposition(|&v| v != 0).map_or(first + 1, |l| l + 1),
            ),
            None => (bw, 0),
        })
        .collect();
    let inside = |sx: usize, sy: usize| -> bool {
        sx >= 1 && sy >= 1 && sx <= bw && sy <= bh && crop[(sy - 1) * bw + (sx - 1)] != 0
    };
    let zero_row = vec![0u8; bw];
    for cy in 0..=bh {
        // only cells reading an inside column of either row can cross
        let (lo, hi) = {
            let t = if cy >= 1 { extents[cy - 1] } else { (bw, 0) };
            let u = if cy < bh { extents[cy] } else { (bw, 0) };
            (t.0.min(u.0), t.1.max(u.1))
        };
        if lo >= hi {
            finish_row(cy, &mut ring, &mut dirty);
            continue; // two empty rows: no cell crosses (the pad is outside too)
        }
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
        let base = cy % side; // ring slot of crop row cy
        let mut cx = lo;
        while cx <= hi {
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
            for pair in cell_segments(
                inside(cx, cy),
                inside(cx + 1, cy),
                inside(cx + 1, cy + 1),
                inside(cx, cy + 1),
            )
            .into_iter()
            .flatten()
            {
                let st = &pen.stamps[pair];
                let (x0, y0, x1, y1) = pen.ink[pair];
                for j in y0..y1 {
                    let slot = if base + j >= side {
                        base + j - side
                    } else {
                        base + j
                    };
                    let d = &mut dirty[slot];
                    *d = (d.0.min(cx + x0), d.1.max(cx + x1));
                    let row = &mut ring[slot * cw + cx + x0..slot * cw + cx + x1];
                    for (o, &v) in row.iter_mut().zip(&st[j * side + x0..j * side + x1]) {
                        *o = (*o).max(v);
                    }
                }
            }
            cx += 1;
        }
        finish_row(cy, &mut ring, &mut dirty);
    }
    for r in bh + 1..ch {
        finish_row(r, &mut ring, &mut dirty);
    }
    Some(out)
}

/// The boundary segments of a cell with corners (clockwise from top-left)
/// inside or not, as stamp indices: up to two (the saddle cases keep
/// diagonal inside corners apart).
fn cell_segments(a: bool, b: bool, c: bool, d: bool) -> [Option<usize>; 2] {
    let st = [a, b, c, d];
    let mut out = [None; 2];
    if a == b && b == c && c == d {
        return out;
    }
    // crossings in clockwise order (side k walks corner k -> k+1); each entering
    // crossing pairs with the next one clockwise, which is leaving
    let mut crossings = [(0usize, false); 4];
    let mut n = 0;
    for k in 0..4 {
        if st[k] != st[(k + 1) % 4] {
            crossings[n] = (k, st[(k + 1) % 4]);
            n += 1;
        }
    }
    let mut m = 0;
    for i in 0..n {
        let (side, entering) = crossings[i];
        if entering && m < 2 {
            out[m] = Some(pair_index(side, crossings[(i + 1) % n].0));
            m += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use som_core::{BBox, ImageSize};

    use super::*;

    #[test]
    fn cells_give_the_marching_squares_segments() {
        // no crossing
        assert_eq!(cell_segments(false, false, false, false), [None, None]);
        assert_eq!(cell_segments(true, true, true, true), [None, None]);
        // one corner inside (top-left): the segment cuts it off, left side to top side
        assert_eq!(
            cell_segments(true, false, false, false),
            [Some(pair_index(3, 0)), None]
        );
        // top half inside: a horizontal segment, left to right
        assert_eq!(
            cell_segments(true, true, false, false),
            [Some(pair_index(1, 3)), None]
        );
        // saddle: the two inside corners are cut off separately (4-connected inside)
        let mut saddle = cell_segments(true, false, true, false);
        saddle.sort();
        assert_eq!(saddle, [Some(pair_index(0, 3)), Some(pair_index(1, 2))]);
    }

    #[test]
    fn stamps_are_symmetric_where_the_segments_are() {
        let pen = Pen::new(2.0).unwrap();
        let s = pen.side;
        // top-bottom (vertical through the cell middle) mirrors left-right
        let (v, h) = (&pen.stamps[pair_index(0, 2)], &pen.stamps[pair_index(1, 3)]);
        for j in 0..s {
            for i in 0..s {
                assert_eq!(v[j * s + i], h[i * s + j]);
            }
        }
        assert!(Pen::new(0.0).is_none() && Pen::new(f32::NAN).is_none());
    }

    #[test]
    fn rings_get_inner_outlines_and_touching_corners_stay_apart() {
        let size = ImageSize::new(12, 12);
        let pen = Pen::new(1.0).unwrap();
        let ring = Mask::from_fn(size, |x, y| {
            (2..10).contains(&x) && (2..10).contains(&y) && !((4..8).contains(&x) && (4..8).contains(&y))
        });
        let d = dense(&outline_coverage(&ring, &pen).unwrap(), 12, 12);
        assert!(
            d[5 * 12 + 4] > 0 && d[5 * 12 + 3] > 0,
            "the hole's edge is outlined"
        );
        assert_eq!(d[6 * 12 + 6], 0, "the middle of the hole is not");
        let single = Mask::from_fn(size, |x, y| x == 6 && y == 6);
        let d = dense(&outline_coverage(&single, &pen).unwrap(), 12, 12);
        assert!(d[6 * 12 + 6] > 0 && d[6 * 12 + 7] > 0 && d[6 * 12 + 9] == 0);
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
        let c = outline_coverage(&m, &Pen::new(2.0).unwrap()).unwrap();
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
        let c = outline_coverage(&full, &Pen::new(2.0).unwrap()).unwrap();
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
            let c = outline_coverage(&disc, &Pen::new(w).unwrap()).unwrap();
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
