//! Upsampling a component plane to full resolution as libjpeg-turbo does
//! with its default "fancy" upsampling (`jdsample.c`): a triangle filter
//! for 2:1 horizontal (h2v1), 2:1 vertical (h1v2) and 2:1 both ways (h2v2),
//! with its alternating rounding biases; plain replication for any other
//! integral ratio and for planes at most 2 samples wide. Outside the plane,
//! the nearest edge sample is repeated (`jdmainct.c` repeats the first and
//! last sample row; the fancy filters repeat the edge columns).

use super::error::{JpegError, Result};

/// A component's decoded samples.
pub(crate) struct Plane {
    pub data: Vec<u8>,
    pub stride: usize,
    /// Samples holding image data (the component's `downsampled_width`).
    pub width: usize,
    pub height: usize,
}

impl Plane {
    #[inline]
    fn row(&self, y: usize) -> &[u8] {
        let y = y.min(self.height - 1);
        &self.data[y * self.stride..y * self.stride + self.width]
    }
}

/// How one component reaches full resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsampler {
    Full,
    H2V1Fancy,
    H1V2Fancy,
    H2V2Fancy,
    /// Replicate each sample `h` times across and `v` times down.
    Replicate {
        h: usize,
        v: usize,
    },
}

impl Upsampler {
    /// The method libjpeg-turbo picks (`jinit_upsampler`) for a component
    /// with sampling factors `h`x`v` in a frame whose largest are
    /// `hmax`x`vmax`, the component being `width` samples wide.
    pub(crate) fn choose(h: usize, v: usize, hmax: usize, vmax: usize, width: usize) -> Result<Self> {
        Ok(if h == hmax && v == vmax {
            Upsampler::Full
        } else if h * 2 == hmax && v == vmax {
            if width > 2 {
                Upsampler::H2V1Fancy
            } else {
                Upsampler::Replicate { h: 2, v: 1 }
            }
        } else if h == hmax && v * 2 == vmax {
            Upsampler::H1V2Fancy
        } else if h * 2 == hmax && v * 2 == vmax {
            if width > 2 {
                Upsampler::H2V2Fancy
            } else {
                Upsampler::Replicate { h: 2, v: 2 }
            }
        } else if hmax.is_multiple_of(h) && vmax.is_multiple_of(v) {
            Upsampler::Replicate {
                h: hmax / h,
                v: vmax / v,
            }
        } else {
            return Err(JpegError::unsupported(format!(
                "fractional sampling ratio {h}x{v} of {hmax}x{vmax}"
            )));
        })
    }

    /// The length of an upsampled row of `plane` (at least the image width).
    pub(crate) fn row_len(self, plane: &Plane) -> usize {
        match self {
            Upsampler::Full | Upsampler::H1V2Fancy => plane.width,
            Upsampler::H2V1Fancy | Upsampler::H2V2Fancy => 2 * plane.width,
            Upsampler::Replicate { h, .. } => h * plane.width,
        }
    }

    /// Writes full-resolution row `y` of `plane` into the first
    /// [`row_len`](Self::row_len) bytes of `out`.
    pub(crate) fn row(self, plane: &Plane, y: usize, out: &mut [u8]) {
        match self {
            Upsampler::Full => out[..plane.width].copy_from_slice(plane.row(y)),
            Upsampler::H2V1Fancy => h2v1(plane.row(y), out),
            Upsampler::H1V2Fancy => {
                let (near, far, bias) = vertical_pair(plane, y);
                for ((o, &a), &b) in out.iter_mut().zip(near).zip(far) {
                    *o = ((3 * u16::from(a) + u16::from(b) + bias) >> 2) as u8;
                }
            }
            Upsampler::H2V2Fancy => {
                let (near, far, _) = vertical_pair(plane, y);
                h2v2(near, far, out);
            }
            Upsampler::Replicate { h, v } => {
                let row = plane.row(y / v);
                for (chunk, &s) in out.chunks_mut(h).zip(row) {
                    chunk.fill(s);
                }
            }
        }
    }
}

/// For vertical 2:1: the nearer input row, the next-nearer one (above for
/// even output rows, below for odd) and the rounding bias of h1v2.
fn vertical_pair(plane: &Plane, y: usize) -> (&[u8], &[u8], u16) {
    let row = y / 2;
    if y.is_multiple_of(2) {
        (plane.row(row), plane.row(row.saturating_sub(1)), 1)
    } else {
        (plane.row(row), plane.row(row + 1), 2)
    }
}

/// 3/4 of the nearer sample plus 1/4 of the further one, rounding biases
/// 1 (left output) and 2 (right output); `out` holds `2 * input.len()`.
fn h2v1(input: &[u8], out: &mut [u8]) {
    let n = input.len();
    let at = |i: usize| u16::from(input[i]);
    out[0] = input[0];
    out[1] = ((3 * at(0) + at(1) + 2) >> 2) as u8;
    for (pair, w) in out[2..2 * n - 2].chunks_exact_mut(2).zip(input.windows(3)) {
        let (l, c, r) = (u16::from(w[0]), 3 * u16::from(w[1]), u16::from(w[2]));
        pair[0] = ((c + l + 1) >> 2) as u8;
        pair[1] = ((c + r + 2) >> 2) as u8;
    }
    out[2 * n - 2] = ((3 * at(n - 1) + at(n - 2) + 1) >> 2) as u8;
    out[2 * n - 1] = input[n - 1];
}

/// The vertical triangle (column sums 3·near + far) then the horizontal one,
/// rounding biases 8 (left output) and 7 (right output); `out` holds
/// `2 * near.len()`.
fn h2v2(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    let sum = |i: usize| 3 * u16::from(near[i]) + u16::from(far[i]);
    out[0] = ((sum(0) * 4 + 8) >> 4) as u8;
    out[1] = ((sum(0) * 3 + sum(1) + 7) >> 4) as u8;
    let (mut last, mut this) = (sum(0), sum(1));
    for (j, pair) in out[2..2 * n - 2].chunks_exact_mut(2).enumerate() {
        let next = sum(j + 2);
        pair[0] = ((this * 3 + last + 8) >> 4) as u8;
        pair[1] = ((this * 3 + next + 7) >> 4) as u8;
        last = this;
        this = next;
    }
    out[2 * n - 2] = ((this * 3 + last + 8) >> 4) as u8;
    out[2 * n - 1] = ((this * 4 + 7) >> 4) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(width: usize, height: usize, data: Vec<u8>) -> Plane {
        Plane {
            data,
            stride: width,
            width,
            height,
        }
    }

    #[test]
    fn choice_follows_libjpeg_turbo() {
        use Upsampler::*;
        assert_eq!(Upsampler::choose(2, 2, 2, 2, 100).unwrap(), Full);
        assert_eq!(Upsampler::choose(1, 1, 2, 2, 100).unwrap(), H2V2Fancy);
        assert_eq!(
            Upsampler::choose(1, 1, 2, 2, 2).unwrap(),
            Replicate { h: 2, v: 2 }
        );
        assert_eq!(Upsampler::choose(1, 1, 2, 1, 100).unwrap(), H2V1Fancy);
        assert_eq!(Upsampler::choose(1, 1, 1, 2, 1).unwrap(), H1V2Fancy);
        assert_eq!(
            Upsampler::choose(1, 1, 4, 1, 100).unwrap(),
            Replicate { h: 4, v: 1 }
        );
        assert!(Upsampler::choose(2, 1, 3, 1, 100).is_err());
    }

    #[test]
    fn h2v1_is_a_triangle_filter_with_repeated_edges() {
        let p = plane(3, 1, vec![0, 100, 200]);
        let mut out = [0u8; 6];
        Upsampler::H2V1Fancy.row(&p, 0, &mut out);
        // (3*0+100+2)/4=25, (300+0+1)/4=75, (300+200+2)/4=125, (600+100+1)/4=175
        assert_eq!(out, [0, 25, 75, 125, 175, 200]);
    }

    #[test]
    fn h2v2_uses_the_row_above_then_below() {
        let p = plane(3, 2, vec![0, 0, 0, 160, 160, 160]);
        let mut out = [0u8; 6];
        // Output row 1 is nearest input row 0, next nearest row 1 (below).
        Upsampler::H2V2Fancy.row(&p, 1, &mut out);
        assert!(out.iter().all(|&v| v == ((160 * 4 + 7) >> 4) as u8), "{out:?}");
        // Output row 0 repeats row 0 above itself.
        Upsampler::H2V2Fancy.row(&p, 0, &mut out);
        assert!(out.iter().all(|&v| v == 0));
        // The last output row repeats the last input row below itself.
        Upsampler::H2V2Fancy.row(&p, 3, &mut out);
        assert!(out.iter().all(|&v| v == 160));
    }
}
