//! Colour conversion: libjpeg-turbo's YCbCr → RGB with 16-bit fixed-point
//! tables (`jdcolor.c`, `build_ycc_rgb_table`) and clamping, its YCCK → CMYK,
//! and what PIL does with CMYK JPEGs: read them as Adobe-inverted
//! (`CMYK;I`) and convert to RGB with `cmyk2rgb` (`Convert.c`).

const SCALEBITS: u32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);
/// `FIX(x)`: x in 16-bit fixed point, rounded.
const FIX_1_40200: i32 = 91881;
const FIX_1_77200: i32 = 116130;
const FIX_0_71414: i32 = 46802;
const FIX_0_34414: i32 = 22554;
/// The parts of the constants below 2^16, for 16-bit multiplies:
/// 91881 = 2^16 + 26345, 116130 = 2^17 - 14942, 46802 = 2^16 - 18734.
const CR_R_LOW: i16 = (FIX_1_40200 - (1 << 16)) as i16;
const CB_B_LOW: i16 = (FIX_1_77200 - (1 << 17)) as i16;
const CR_G_LOW: i32 = (1 << 16) - FIX_0_71414;

/// The four lookup tables, indexed by a Cb or Cr sample.
pub(crate) struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

pub(crate) static YCC: YccTables = ycc_tables();

const fn ycc_tables() -> YccTables {
    let mut t = YccTables {
        cr_r: [0; 256],
        cb_b: [0; 256],
        cr_g: [0; 256],
        cb_g: [0; 256],
    };
    let mut i = 0;
    while i < 256 {
        let x = i as i32 - 128;
        t.cr_r[i] = (FIX_1_40200 * x + ONE_HALF) >> SCALEBITS;
        t.cb_b[i] = (FIX_1_77200 * x + ONE_HALF) >> SCALEBITS;
        t.cr_g[i] = -FIX_0_71414 * x;
        t.cb_g[i] = -FIX_0_34414 * x + ONE_HALF;
        i += 1;
    }
    t
}

#[inline(always)]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

impl YccTables {
    /// The R, G, B offsets to add to Y for a Cb, Cr pair.
    #[inline(always)]
    fn offsets(&self, cb: u8, cr: u8) -> (i32, i32, i32) {
        let (cb, cr) = (usize::from(cb), usize::from(cr));
        (
            self.cr_r[cr],
            (self.cb_g[cb] + self.cr_g[cr]) >> SCALEBITS,
            self.cb_b[cb],
        )
    }
}

/// One row of YCbCr samples to interleaved RGB. The table entries are
/// computed instead, with the same integer results, in a form that
/// vectorises with 16-bit lanes where it can: for `x = Cr - 128`,
/// `(91881·x + 2^15) >> 16 = x + ((((2x·26345) >> 16) + 1) >> 1)` (the
/// rounding survives the halving), the same for Cb with 116130 =
/// 2^17 - 14942; the green term stays 32-bit.
pub(crate) fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    const CHUNK: usize = 64;
    let n = out.len() / 3;
    let (y, cb, cr) = (&y[..n], &cb[..n], &cr[..n]);
    let mut r = [0u8; CHUNK];
    let mut g = [0u8; CHUNK];
    let mut b = [0u8; CHUNK];
    for start in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - start);
        let samples = y[start..start + len]
            .iter()
            .zip(&cb[start..start + len])
            .zip(&cr[start..start + len]);
        for (((r, g), b), ((&y, &cb), &cr)) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()).zip(samples) {
            let (y, x_cb, x_cr) = (i16::from(y), i16::from(cb) - 128, i16::from(cr) - 128);
            let mulhi = |a: i16, b: i16| ((i32::from(a) * i32::from(b)) >> 16) as i16;
            let r_off = x_cr + ((mulhi(2 * x_cr, CR_R_LOW) + 1) >> 1);
            let b_off = 2 * x_cb + ((mulhi(2 * x_cb, CB_B_LOW) + 1) >> 1);
            let t = -FIX_0_34414 * i32::from(x_cb) + CR_G_LOW * i32::from(x_cr);
            let g_off = -x_cr + ((t + ONE_HALF) >> SCALEBITS) as i16;
            *r = (y + r_off).clamp(0, 255) as u8;
            *g = (y + g_off).clamp(0, 255) as u8;
            *b = (y + b_off).clamp(0, 255) as u8;
        }
        let pixels = out[3 * start..3 * (start + len)].chunks_exact_mut(3);
        for (px, ((&r, &g), &b)) in pixels.zip(r.iter().zip(&g).zip(&b)) {
            px.copy_from_slice(&[r, g, b]);
        }
    }
}

/// One row of three planes interleaved as they are (an RGB JPEG).
pub(crate) fn interleave(r: &[u8], g: &[u8], b: &[u8], out: &mut [u8]) {
    for (((px, &r), &g), &b) in out.chunks_exact_mut(3).zip(r).zip(g).zip(b) {
        px.copy_from_slice(&[r, g, b]);
    }
}

/// One row of a four-component JPEG to RGB as PIL gives it. `ycck` says
/// whether libjpeg first converts YCCK to CMYK (Adobe transform 2).
pub(crate) fn cmyk_to_rgb(planes: [&[u8]; 4], ycck: bool, out: &mut [u8]) {
    let [c0, c1, c2, k] = planes;
    for ((((px, &a), &b), &c), &k) in out.chunks_exact_mut(3).zip(c0).zip(c1).zip(c2).zip(k) {
        let cmy = if ycck {
            let (r, g, bl) = YCC.offsets(b, c);
            let y = i32::from(a);
            [clamp(255 - (y + r)), clamp(255 - (y + g)), clamp(255 - (y + bl))]
        } else {
            [a, b, c]
        };
        // PIL inverts every channel (rawmode "CMYK;I"), then cmyk2rgb:
        // channel = nk - nk * ink / 255 with nk = 255 - K.
        let nk = i32::from(k);
        for (o, &v) in px.iter_mut().zip(&cmy) {
            let ink = 255 - i32::from(v);
            *o = clamp(nk - muldiv255(ink, nk));
        }
    }
}

/// PIL's `MULDIV255`: a·b/255 rounded, without a division.
#[inline(always)]
fn muldiv255(a: i32, b: i32) -> i32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_conversion_equals_the_tables() {
        for y in [0u8, 1, 100, 128, 254, 255] {
            for cb in 0..=255u8 {
                let cr: Vec<u8> = (0..=255).collect();
                let mut out = vec![0u8; 3 * 256];
                ycc_to_rgb(&[y; 256], &[cb; 256], &cr, &mut out);
                for (px, &cr) in out.chunks(3).zip(&cr) {
                    let (r, g, b) = YCC.offsets(cb, cr);
                    let yv = i32::from(y);
                    assert_eq!(
                        px,
                        [clamp(yv + r), clamp(yv + g), clamp(yv + b)],
                        "y {y} cb {cb} cr {cr}"
                    );
                }
            }
        }
    }

    #[test]
    fn grey_stays_grey_and_primaries_round_like_libjpeg() {
        let mut out = [0u8; 3];
        ycc_to_rgb(&[77], &[128], &[128], &mut out);
        assert_eq!(out, [77, 77, 77]);
        // Pure red encoded by libjpeg: Y 76, Cb 85, Cr 255.
        ycc_to_rgb(&[76], &[85], &[255], &mut out);
        assert_eq!(out, [254, 0, 0]);
    }

    #[test]
    fn cmyk_white_black_and_ink() {
        let mut out = [0u8; 3];
        // Adobe-inverted CMYK: 255 = no ink.
        cmyk_to_rgb([&[255], &[255], &[255], &[255]], false, &mut out);
        assert_eq!(out, [255, 255, 255]);
        cmyk_to_rgb([&[255], &[255], &[255], &[0]], false, &mut out);
        assert_eq!(out, [0, 0, 0]);
        cmyk_to_rgb([&[0], &[255], &[255], &[255]], false, &mut out);
        assert_eq!(out, [0, 255, 255]);
    }
}
