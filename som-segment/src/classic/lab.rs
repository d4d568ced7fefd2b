//! The colour space the classic segmenter compares regions in: CIELAB
//! (sRGB, D65 white), and the CIE76 colour difference ΔE*ab between two
//! CIELAB colours. The segmenter's thresholds (`merge_delta_e`,
//! `same_delta_e`) are in these units, where about 2.3 is a just noticeable
//! difference.

use rayon::prelude::*;

/// sRGB (8-bit, D65) to CIELAB, one `[L, a, b]` per pixel.
pub(super) fn lab_image(rgb: &[u8]) -> Vec<[f32; 3]> {
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

/// The CIE76 colour difference ΔE*ab: the Euclidean distance of two
/// CIELAB colours.
pub(super) fn delta_e(a: &[f32; 3], b: &[f32; 3]) -> f64 {
    let d: f64 = (0..3).map(|i| (a[i] as f64 - b[i] as f64).powi(2)).sum();
    d.sqrt()
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
}
