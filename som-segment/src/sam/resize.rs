//! `ResizeLongestSide` (`segment_anything/utils/transforms.py`): the resized shape, the
//! coordinate mapping, and the image resize, which is torchvision's `resize` of a PIL image,
//! i.e. Pillow's antialiased bilinear `Image.resize` ([`resize_bilinear`], shared with the
//! other LibTorch models).

use image::RgbImage;

use crate::torch::resize_bilinear;

/// The preprocessed size `(h, w)` whose longer side is `long_side`
/// (`ResizeLongestSide.get_preprocess_shape`).
///
/// ```
/// use som_segment::sam::preprocess_shape;
/// assert_eq!(preprocess_shape(427, 640, 1024), (683, 1024));
/// ```
pub fn preprocess_shape(old_h: u32, old_w: u32, long_side: u32) -> (u32, u32) {
    let scale = f64::from(long_side) * 1.0 / f64::from(old_h.max(old_w));
    let new_h = f64::from(old_h) * scale;
    let new_w = f64::from(old_w) * scale;
    ((new_h + 0.5) as u32, (new_w + 0.5) as u32)
}

/// Maps coordinates of an `original` (h, w) image into the resized frame
/// (`ResizeLongestSide.apply_coords`), in `f64` as upstream's numpy path does.
pub fn apply_coords(x: f64, y: f64, original: (u32, u32), long_side: u32) -> (f64, f64) {
    let (old_h, old_w) = original;
    let (new_h, new_w) = preprocess_shape(old_h, old_w, long_side);
    (
        x * (f64::from(new_w) / f64::from(old_w)),
        y * (f64::from(new_h) / f64::from(old_h)),
    )
}

/// `ResizeLongestSide.apply_image`: resizes so the longer side is `long_side`.
///
/// Returns `None` when the shorter side would round to 0 pixels.
pub fn resize_longest_side(image: &RgbImage, long_side: u32) -> Option<RgbImage> {
    let (h, w) = preprocess_shape(image.height(), image.width(), long_side);
    resize_bilinear(image, w, h)
}
