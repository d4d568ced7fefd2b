//! COCO polygons, rasterised exactly as pycocotools' `frPyObjects` does.
//!
//! pycocotools does not fill polygons by pixel centres: it upsamples the
//! outline by 5, walks it with a DDA, keeps the points where the walk crosses a
//! pixel column boundary, and turns those y-boundaries into a column-major run
//! encoding. Reproducing that walk is the only way to get the same pixels, so
//! that is what [`polygon_to_rle`] does.

use crate::error::SomError;
use crate::geometry::ImageSize;
use crate::rle::{check_size, Rle};

/// The longest outline a polygon, or all the polygons of one call of
/// [`polygons_to_rle`] together, may have, in points of pycocotools' walk
/// (which steps along the outline at 5× the image resolution, one point per
/// step): 2²⁶ points, about 13 million pixels of outline, hundreds of times the
/// perimeter of the largest image som reads. The walk's time grows with the
/// outline, not with the image, so without this bound a few coordinates far
/// outside the image would keep it busy for minutes.
pub const MAX_OUTLINE_POINTS: u64 = 1 << 26;

/// Rasterises one polygon `[x0, y0, x1, y1, …]` into a COCO RLE of an image of
/// `size`, pixel-identical to `pycocotools.mask.frPyObjects`.
///
/// # Errors
/// [`SomError::Polygon`] for an odd number of coordinates, fewer than three
/// points, non-finite coordinates or coordinates beyond ±10⁸, an outline
/// longer than [`MAX_OUTLINE_POINTS`]; [`SomError::Rle`] for an image with
/// more pixels than COCO RLE can address.
///
/// # Example
/// ```
/// use som_core::{ImageSize, polygon::polygon_to_rle};
/// let rle = polygon_to_rle(&[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0], ImageSize::new(6, 5))?;
/// // pycocotools gives the pixels (1..4, 1..3): 6 of them, not 12.
/// assert_eq!(rle.area(), 6);
/// // A far-away vertex makes an outline too long to walk.
/// assert!(polygon_to_rle(&[0.0, 0.0, 9e7, 0.0, 0.0, 9e7], ImageSize::new(6, 5)).is_err());
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn polygon_to_rle(xy: &[f64], size: ImageSize) -> Result<Rle, SomError> {
    let mut budget = MAX_OUTLINE_POINTS;
    polygon_to_rle_within(xy, size, &mut budget)
}

/// [`polygon_to_rle`], taking the outline's points from `budget` (the points
/// a whole document may still walk).
pub(crate) fn polygon_to_rle_within(xy: &[f64], size: ImageSize, budget: &mut u64) -> Result<Rle, SomError> {
    if !xy.len().is_multiple_of(2) {
        return Err(SomError::Polygon(format!(
            "{} coordinates is an odd number",
            xy.len()
        )));
    }
    // pycocotools treats a 4-value list as a box; a polygon needs three points.
    if xy.len() < 6 {
        return Err(SomError::Polygon(format!(
            "a polygon needs at least 3 points, got {}",
            xy.len() / 2
        )));
    }
    if let Some(v) = xy.iter().find(|v| !v.is_finite() || v.abs() > 1e8) {
        return Err(SomError::Polygon(format!(
            "coordinate {v} is not a usable number"
        )));
    }
    check_size(size)?;
    let (h, w) = (size.height as i64, size.width as i64);
    let scale = 5.0f64;
    let k = xy.len() / 2;
    // Upsampled vertices, closed.
    let mut x: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j] + 0.5) as i64).collect();
    let mut y: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j + 1] + 0.5) as i64).collect();
    x.push(x[0]);
    y.push(y[0]);
    // The walk visits max(|dx|, |dy|) + 1 points per edge: count them before walking.
    let points: u64 = (0..k)
        .map(|j| {
            (x[j + 1] - x[j])
                .unsigned_abs()
                .max((y[j + 1] - y[j]).unsigned_abs())
                + 1
        })
        .sum();
    if points > *budget {
        return Err(SomError::Polygon(format!(
            "the outline walks {points} points at 5x resolution, more than the {} left of the {MAX_OUTLINE_POINTS} allowed",
            *budget
        )));
    }
    *budget -= points;
    // Walk the dense outline; wherever it crosses a pixel column boundary
    // inside the image, keep the crossing (downsampled) as a run boundary.
    let mut a: Vec<u64> = Vec::new();
    let mut prev: Option<(i64, i64)> = None;
    let mut visit = |u: i64, v: i64| {
        let Some((pu, pv)) = prev.replace((u, v)) else {
            return;
        };
        if u == pu {
            return;
        }
        let xd = if u < pu { u } else { u - 1 } as f64;
        let xd = (xd + 0.5) / scale - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > (w - 1) as f64 {
            return;
        }
        let yd = v.min(pv) as f64;
        let yd = ((yd + 0.5) / scale - 0.5).clamp(0.0, h as f64).ceil();
        a.push((xd as i64 * h + yd as i64) as u64);
    };
    for j in 0..k {
        let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
        let dx = (xe - xs).abs();
        let dy = (ys - ye).abs();
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        if dx >= dy {
            let s = if dx == 0 {
                0.0
            } else {
                (ye - ys) as f64 / dx as f64
            };
            for d in 0..=dx {
                let t = if flip { dx - d } else { d };
                visit(t + xs, (ys as f64 + s * t as f64 + 0.5) as i64);
            }
        } else {
            let s = (xe - xs) as f64 / dy as f64;
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                visit((xs as f64 + s * t as f64 + 0.5) as i64, t + ys);
            }
        }
    }
    a.push((h * w) as u64);
    a.sort_unstable();
    let mut prev = 0u64;
    for value in a.iter_mut() {
        let t = *value;
        *value -= prev;
        prev = t;
    }
    // Merge zero-length runs. Every value is at most h * w, which fits a u32
    // (checked above), and so does every sum of consecutive runs.
    let mut counts: Vec<u32> = Vec::with_capacity(a.len());
    let mut j = 0;
    counts.push(a[j] as u32);
    j += 1;
    while j < a.len() {
        if a[j] > 0 {
            counts.push(a[j] as u32);
            j += 1;
        } else {
            j += 1;
            if j < a.len() {
                if let Some(last) = counts.last_mut() {
                    *last += a[j] as u32;
                }
                j += 1;
            }
        }
    }
    Rle::from_counts(size, counts)
}

/// Rasterises several polygons and merges them (union), as pycocotools'
/// `merge(frPyObjects(polygons, h, w))` does for an annotation with a list of
/// polygons: the same counts, computed on the runs (no image-sized buffer).
///
/// # Errors
/// As [`polygon_to_rle`] (the outlines together may walk at most
/// [`MAX_OUTLINE_POINTS`]); also when the list is empty.
///
/// ```
/// use som_core::{ImageSize, polygon::polygons_to_rle};
/// let square = |x: f64| vec![x, 0.0, x + 2.0, 0.0, x + 2.0, 2.0, x, 2.0];
/// let rle = polygons_to_rle(&[square(0.0), square(4.0)], ImageSize::new(8, 3))?;
/// assert_eq!(rle.area(), 8);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn polygons_to_rle(polygons: &[Vec<f64>], size: ImageSize) -> Result<Rle, SomError> {
    let mut budget = MAX_OUTLINE_POINTS;
    polygons_to_rle_within(polygons, size, &mut budget)
}

/// [`polygons_to_rle`], taking the outlines' points from `budget`.
pub(crate) fn polygons_to_rle_within(
    polygons: &[Vec<f64>],
    size: ImageSize,
    budget: &mut u64,
) -> Result<Rle, SomError> {
    let Some((first, rest)) = polygons.split_first() else {
        return Err(SomError::Polygon("an empty list of polygons".into()));
    };
    let mut rle = polygon_to_rle_within(first, size, budget)?;
    for p in rest {
        rle = rle.union(&polygon_to_rle_within(p, size, budget)?)?;
    }
    Ok(rle)
}
