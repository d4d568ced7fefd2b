//! COCO polygons, rasterised exactly as pycocotools' `frPyObjects` does.
//!
//! pycocotools does not fill polygons by pixel centres: it upsamples the
//! outline by 5, walks it with a DDA, keeps the points where the walk crosses a
//! pixel column boundary, and turns those y-boundaries into a column-major run
//! encoding. Reproducing that walk is the only way to get the same pixels, so
//! that is what [`polygon_to_rle`] does.

use crate::error::SomError;
use crate::geometry::ImageSize;
use crate::rle::Rle;

/// Rasterises one polygon `[x0, y0, x1, y1, …]` into a COCO RLE of an image of
/// `size`, pixel-identical to `pycocotools.mask.frPyObjects`.
///
/// # Errors
/// [`SomError::Polygon`] for an odd number of coordinates, fewer than three
/// points, or non-finite coordinates.
///
/// # Example
/// ```
/// use som_core::{ImageSize, polygon::polygon_to_rle};
/// let rle = polygon_to_rle(&[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0], ImageSize::new(6, 5))?;
/// // pycocotools gives the pixels (1..4, 1..3): 6 of them, not 12.
/// assert_eq!(rle.area(), 6);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn polygon_to_rle(xy: &[f64], size: ImageSize) -> Result<Rle, SomError> {
    if xy.len() % 2 != 0 {
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
    let (h, w) = (size.height as i64, size.width as i64);
    let scale = 5.0f64;
    let k = xy.len() / 2;
    // Upsampled vertices, closed.
    let mut x: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j] + 0.5) as i64).collect();
    let mut y: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j + 1] + 0.5) as i64).collect();
    x.push(x[0]);
    y.push(y[0]);
    // Dense points along the outline.
    let mut u: Vec<i64> = Vec::new();
    let mut v: Vec<i64> = Vec::new();
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
                u.push(t + xs);
                v.push((ys as f64 + s * t as f64 + 0.5) as i64);
            }
        } else {
            let s = (xe - xs) as f64 / dy as f64;
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                v.push(t + ys);
                u.push((xs as f64 + s * t as f64 + 0.5) as i64);
            }
        }
    }
    // Points where the outline crosses a column boundary, downsampled.
    let mut a: Vec<u64> = Vec::new();
    for j in 1..u.len() {
        if u[j] == u[j - 1] {
            continue;
        }
        let xd = if u[j] < u[j - 1] { u[j] } else { u[j] - 1 } as f64;
        let xd = (xd + 0.5) / scale - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > (w - 1) as f64 {
            continue;
        }
        let yd = if v[j] < v[j - 1] { v[j] } else { v[j - 1] } as f64;
        let mut yd = (yd + 0.5) / scale - 0.5;
        if yd < 0.0 {
            yd = 0.0;
        } else if yd > h as f64 {
            yd = h as f64;
        }
        let yd = yd.ceil();
        a.push((xd as i64 * h + yd as i64) as u64);
    }
    a.push((h * w) as u64);
    a.sort_unstable();
    let mut prev = 0u64;
    for value in a.iter_mut() {
        let t = *value;
        *value -= prev;
        prev = t;
    }
    // Merge zero-length runs.
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

/// Rasterises several polygons and merges them (union), as pycocotools does
/// for an annotation with a list of polygons.
///
/// # Errors
/// As [`polygon_to_rle`]; also when the list is empty.
pub fn polygons_to_rle(polygons: &[Vec<f64>], size: ImageSize) -> Result<Rle, SomError> {
    if polygons.is_empty() {
        return Err(SomError::Polygon("an empty list of polygons".into()));
    }
    let mut bytes = vec![0u8; size.pixels() as usize];
    for p in polygons {
        let mask = polygon_to_rle(p, size)?.to_mask();
        let w = size.width as usize;
        let b = mask.bbox();
        for (ry, row) in mask.crop_rows().enumerate() {
            let start = (b.y as usize + ry) * w + b.x as usize;
            for (dst, &s) in bytes[start..start + row.len()].iter_mut().zip(row) {
                *dst |= s;
            }
        }
    }
    Ok(crate::mask::Mask::from_bytes(size, &bytes)?.to_rle())
}
