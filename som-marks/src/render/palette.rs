//! The mark palette, text colour by luminance, and the integer blend every
//! layer uses.

/// The mark palette: 64 sRGB colours, indexed by mark id modulo 64.
///
/// Chosen by greedy farthest-point selection in CIEDE2000 among vivid sRGB
/// colours of medium-to-high lightness (CIELAB L* 50–82, chroma ≥ 40), so
/// consecutive ids get very different colours and any two entries differ by at
/// least 8.7 CIEDE2000. `som-marks/assets/gen_palette.py` regenerates the
/// table.
///
/// # Example
/// ```
/// use som_marks::render::{mark_colour, PALETTE};
/// assert_eq!(mark_colour(1), PALETTE[1]);
/// assert_eq!(mark_colour(65), PALETTE[1]);
/// ```
pub const PALETTE: [[u8; 3]; 64] = [
    [240, 30, 45],
    [0, 225, 0],
    [0, 180, 255],
    [255, 180, 30],
    [240, 180, 255],
    [120, 90, 255],
    [45, 135, 90],
    [0, 225, 210],
    [135, 120, 0],
    [255, 0, 165],
    [255, 165, 135],
    [195, 105, 0],
    [195, 195, 105],
    [150, 165, 255],
    [0, 120, 225],
    [255, 135, 165],
    [90, 150, 0],
    [180, 120, 195],
    [105, 195, 135],
    [225, 0, 255],
    [0, 210, 240],
    [195, 90, 105],
    [255, 105, 45],
    [210, 150, 90],
    [255, 105, 105],
    [255, 120, 225],
    [180, 105, 75],
    [195, 165, 0],
    [150, 150, 75],
    [120, 120, 195],
    [0, 165, 75],
    [0, 165, 135],
    [195, 105, 150],
    [165, 210, 0],
    [255, 135, 0],
    [195, 150, 255],
    [135, 180, 75],
    [165, 120, 45],
    [210, 75, 0],
    [75, 150, 255],
    [255, 0, 90],
    [195, 75, 180],
    [180, 105, 255],
    [165, 210, 135],
    [0, 225, 120],
    [255, 180, 120],
    [255, 165, 210],
    [240, 90, 135],
    [210, 180, 105],
    [90, 120, 255],
    [90, 225, 180],
    [45, 180, 0],
    [210, 150, 15],
    [0, 150, 210],
    [150, 165, 0],
    [210, 210, 0],
    [120, 135, 0],
    [150, 135, 255],
    [240, 195, 0],
    [60, 135, 45],
    [165, 75, 225],
    [255, 45, 0],
    [240, 90, 255],
    [225, 135, 90],
];

/// The colour of the mark with this `id`: `PALETTE[id % 64]`.
///
/// Everything drawn for a mark (tint, contour, box, label box) uses it.
pub fn mark_colour(id: u32) -> [u8; 3] {
    PALETTE[id as usize % PALETTE.len()]
}

/// WCAG relative luminance of an sRGB colour, in `0.0..=1.0`.
///
/// ```
/// use som_marks::render::relative_luminance;
/// assert_eq!(relative_luminance([0, 0, 0]), 0.0);
/// assert!((relative_luminance([255, 255, 255]) - 1.0).abs() < 1e-12);
/// ```
pub fn relative_luminance(rgb: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])
}

/// Black or white, whichever contrasts more (WCAG contrast ratio) with a
/// label box of colour `background`.
///
/// ```
/// use som_marks::render::text_colour;
/// assert_eq!(text_colour([255, 255, 0]), [0, 0, 0]);
/// assert_eq!(text_colour([0, 0, 160]), [255, 255, 255]);
/// ```
pub fn text_colour(background: [u8; 3]) -> [u8; 3] {
    let l = relative_luminance(background);
    // contrast with black (l + 0.05) / 0.05 vs with white 1.05 / (l + 0.05)
    if (l + 0.05) * (l + 0.05) >= 0.05 * 1.05 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// An opacity in 1/256 steps: `round(alpha · 256)`, clamped to `0..=256`
/// (NaN counts as 0).
pub fn alpha_256(alpha: f32) -> u32 {
    if alpha.is_nan() {
        return 0;
    }
    (alpha.clamp(0.0, 1.0) * 256.0).round() as u32
}

/// Blends `colour` over `pixel` with opacity `a` in 1/256 steps (`0..=256`):
/// `(pixel · (256 − a) + colour · a + 128) >> 8` per channel.
///
/// This is the exact formula of the mask tint (with `a = alpha_256(alpha)`),
/// applied once per pixel whatever the number of masks covering it.
///
/// ```
/// use som_marks::render::blend;
/// assert_eq!(blend([0, 100, 255], [255, 0, 255], 0), [0, 100, 255]);
/// assert_eq!(blend([0, 100, 255], [255, 0, 255], 256), [255, 0, 255]);
/// assert_eq!(blend([0, 0, 0], [255, 255, 255], 102), [102, 102, 102]);
/// ```
#[inline]
pub fn blend(pixel: [u8; 3], colour: [u8; 3], a: u32) -> [u8; 3] {
    let a = a.min(256);
    let inv = 256 - a;
    let mix = |p: u8, c: u8| ((u32::from(p) * inv + u32::from(c) * a + 128) >> 8) as u8;
    [
        mix(pixel[0], colour[0]),
        mix(pixel[1], colour[1]),
        mix(pixel[2], colour[2]),
    ]
}

/// Converts an 8-bit coverage (`0..=255`) to a 1/256 opacity (`0..=256`),
/// mapping 255 to 256 so full coverage replaces the pixel exactly.
#[inline]
pub(crate) fn coverage_256(c: u8) -> u32 {
    u32::from(c) + (u32::from(c) >> 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(rgb: [u8; 3]) -> [f64; 3] {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
        let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
        let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
        let f = |t: f64| {
            if t > 216.0 / 24389.0 {
                t.cbrt()
            } else {
                (24389.0 / 27.0 * t + 16.0) / 116.0
            }
        };
        [116.0 * f(y) - 16.0, 500.0 * (f(x) - f(y)), 200.0 * (f(y) - f(z))]
    }

    #[test]
    fn palette_is_distinct_and_in_range() {
        for (i, &a) in PALETTE.iter().enumerate() {
            let la = lab(a);
            assert!((49.0..=83.0).contains(&la[0]), "entry {i} lightness {}", la[0]);
            for &b in &PALETTE[i + 1..] {
                let lb = lab(b);
                let d = ((la[0] - lb[0]).powi(2) + (la[1] - lb[1]).powi(2) + (la[2] - lb[2]).powi(2)).sqrt();
                // CIE76 is larger than CIEDE2000 for saturated colours; 8 is a safe floor.
                assert!(d > 8.0, "{a:?} and {b:?} are only {d:.1} apart");
            }
        }
    }

    #[test]
    fn first_marks_get_strongly_different_colours() {
        for i in 1..8u32 {
            for j in (i + 1)..8 {
                let (a, b) = (lab(mark_colour(i)), lab(mark_colour(j)));
                let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
                assert!(d > 35.0, "marks {i} and {j}: {d:.1}");
            }
        }
    }

    #[test]
    fn text_colour_follows_wcag_contrast() {
        for &c in &PALETTE {
            let l = relative_luminance(c);
            let black = (l + 0.05) / 0.05;
            let white = 1.05 / (l + 0.05);
            let t = text_colour(c);
            assert_eq!(t == [0, 0, 0], black >= white, "{c:?}");
        }
    }

    #[test]
    fn coverage_maps_full_to_256() {
        assert_eq!(coverage_256(0), 0);
        assert_eq!(coverage_256(255), 256);
        assert_eq!(coverage_256(128), 129);
    }
}
