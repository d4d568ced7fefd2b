//! Pillow's antialiased bilinear `Image.resize` on 8-bit RGB, reproduced bit for bit
//! (separable convolution with a triangle filter widened by the downscale factor, 22-bit
//! fixed-point coefficients, horizontal pass first, rounding and clamping to `u8` after each
//! pass). SAM's `ResizeLongestSide` and detectron2's `ResizeShortestEdge` both resize through
//! it, and models on random weights amplify any pixel difference, so it must be exact.

use image::RgbImage;

/// Fixed-point precision of Pillow's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bilinear filter.
fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Per output pixel: first input index, tap count, and fixed-point weights (`precompute_coeffs`
/// followed by `normalize_coeffs_8bpc`).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let support_base = 1.0;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = support_base * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let mut ww = 0.0;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter_mut().enumerate() {
            if x < n {
                if ww != 0.0 {
                    *kx /= ww;
                }
            } else {
                *kx = 0.0;
            }
        }
        for (x, &kx) in k.iter().enumerate() {
            let scaled = kx * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if kx < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples RGB rows horizontally: `src` is `h × in_w`, the result `h × out_w`.
fn horizontal(src: &[u8], h: usize, in_w: usize, out_w: usize) -> Vec<u8> {
    let c = coeffs(in_w, out_w);
    let mut out = vec![0u8; h * out_w * 3];
    for y in 0..h {
        let row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
            for ch in 0..3 {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (x, &kx) in k.iter().enumerate() {
                    ss = ss.wrapping_add(i32::from(row[(xmin + x) * 3 + ch]).wrapping_mul(kx));
                }
                out[(y * out_w + xx) * 3 + ch] = clip8(ss);
            }
        }
    }
    out
}

/// Resamples RGB columns vertically: `src` is `in_h × w`, the result `out_h × w`.
fn vertical(src: &[u8], w: usize, in_h: usize, out_h: usize) -> Vec<u8> {
    let c = coeffs(in_h, out_h);
    let mut out = vec![0u8; out_h * w * 3];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
        for xc in 0..w * 3 {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate() {
                ss = ss.wrapping_add(i32::from(src[(ymin + y) * w * 3 + xc]).wrapping_mul(ky));
            }
            out[yy * w * 3 + xc] = clip8(ss);
        }
    }
    out
}

/// Pillow's `Image.resize((width, height), Image.BILINEAR)` for an RGB image.
///
/// Returns `None` when either side (of the image or the target) is 0.
///
/// ```
/// use image::RgbImage;
/// use som_segment::torch::resize_bilinear;
/// let img = RgbImage::from_pixel(8, 6, image::Rgb([10, 200, 30]));
/// let small = resize_bilinear(&img, 4, 3).unwrap();
/// assert_eq!(small.dimensions(), (4, 3));
/// assert_eq!(small.get_pixel(1, 1).0, [10, 200, 30]);
/// ```
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> Option<RgbImage> {
    if width == 0 || height == 0 || image.width() == 0 || image.height() == 0 {
        return None;
    }
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if in_w == out_w && in_h == out_h {
        return Some(image.clone());
    }
    let mut data = image.as_raw().clone();
    let mut h = in_h;
    if out_w != in_w {
        // Pillow only resamples the rows the vertical pass will read; all rows are read
        // when the box is the whole image, so the full horizontal pass is identical.
        data = horizontal(&data, h, in_w, out_w);
    }
    if out_h != in_h {
        data = vertical(&data, out_w, in_h, out_h);
        h = out_h;
    }
    debug_assert_eq!(h, out_h);
    RgbImage::from_raw(width, height, data)
}
