//! The inverse DCT libjpeg-turbo uses by default, "islow" (`jidctint.c`:
//! Loeffler–Ligtenberg–Moschytz with 13-bit fixed-point constants, two
//! passes with 2 extra bits in between), with the arithmetic of its x86
//! SIMD versions (`jidctint-avx2.asm`, `jidctint-sse2.asm`), which is what
//! PIL and OpenCV run on x86-64:
//!
//! - dequantisation keeps the low 16 bits of coefficient × table entry;
//! - the workspace between the passes is 16-bit, saturated;
//! - `in0 ± in4`, `in7 + in3` and `in5 + in1` are 16-bit sums, the products
//!   are paired (`pmaddwd`), and the final sums wrap at 32 bits;
//! - when rows 1–7 of the block are zero, pass 1 just shifts the
//!   dequantised first row (16-bit);
//! - outputs saturate to 0..=255.
//!
//! On every real image this equals the portable C code bit for bit; they
//! part only on crafted or corrupt coefficients that overflow 16 bits,
//! where the C code's range-limit table wraps instead of saturating.

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

const F_0_298: i32 = 2446;
const F_0_390: i32 = 3196;
const F_0_541: i32 = 4433;
const F_0_765: i32 = 6270;
const F_0_899: i32 = 7373;
const F_1_175: i32 = 9633;
const F_1_501: i32 = 12299;
const F_1_847: i32 = 15137;
const F_1_961: i32 = 16069;
const F_2_053: i32 = 16819;
const F_2_562: i32 = 20995;
const F_3_072: i32 = 25172;

/// One 1-D pass over eight 16-bit inputs, descaled by `shift` with rounding
/// and saturated to 16 bits.
#[inline(always)]
fn pass(v: [i16; 8], shift: u32) -> [i16; 8] {
    let w = |x: i16| i32::from(x);
    // Even part.
    let tmp3 = w(v[2]) * (F_0_541 + F_0_765) + w(v[6]) * F_0_541;
    let tmp2 = w(v[2]) * F_0_541 + w(v[6]) * (F_0_541 - F_1_847);
    let tmp0 = w(v[0].wrapping_add(v[4])) << CONST_BITS;
    let tmp1 = w(v[0].wrapping_sub(v[4])) << CONST_BITS;
    let tmp10 = tmp0.wrapping_add(tmp3);
    let tmp13 = tmp0.wrapping_sub(tmp3);
    let tmp11 = tmp1.wrapping_add(tmp2);
    let tmp12 = tmp1.wrapping_sub(tmp2);
    // Odd part: v[7], v[5], v[3], v[1] are the C code's tmp0..tmp3.
    // Each line below is one pmaddwd lane: two 16x16-bit products, whose
    // sum cannot overflow 32 bits with these constants.
    let s73 = w(v[7].wrapping_add(v[3]));
    let s51 = w(v[5].wrapping_add(v[1]));
    let z3 = s73 * (F_1_175 - F_1_961) + s51 * F_1_175;
    let z4 = s73 * F_1_175 + s51 * (F_1_175 - F_0_390);
    let t0 = (w(v[7]) * (F_0_298 - F_0_899) + w(v[1]) * -F_0_899).wrapping_add(z3);
    let t1 = (w(v[5]) * (F_2_053 - F_2_562) + w(v[3]) * -F_2_562).wrapping_add(z4);
    let t2 = (w(v[5]) * -F_2_562 + w(v[3]) * (F_3_072 - F_2_562)).wrapping_add(z3);
    let t3 = (w(v[7]) * -F_0_899 + w(v[1]) * (F_1_501 - F_0_899)).wrapping_add(z4);
    let round = 1i32 << (shift - 1);
    let out = |x: i32| (x.wrapping_add(round) >> shift).clamp(i16::MIN.into(), i16::MAX.into()) as i16;
    [
        out(tmp10.wrapping_add(t3)),
        out(tmp11.wrapping_add(t2)),
        out(tmp12.wrapping_add(t1)),
        out(tmp13.wrapping_add(t0)),
        out(tmp13.wrapping_sub(t0)),
        out(tmp12.wrapping_sub(t1)),
        out(tmp11.wrapping_sub(t2)),
        out(tmp10.wrapping_sub(t3)),
    ]
}

/// Eight 1-D transforms side by side: `v[k][l]` is input `k` of transform
/// `l`, and so is the result. Written lane by lane so it vectorises.
#[inline(always)]
fn pass8(v: &[[i16; 8]; 8], shift: u32) -> [[i16; 8]; 8] {
    let mut out = [[0i16; 8]; 8];
    for l in 0..8 {
        let o = pass(std::array::from_fn(|k| v[k][l]), shift);
        for (row, &x) in out.iter_mut().zip(&o) {
            row[l] = x;
        }
    }
    out
}

fn transpose(m: &[[i16; 8]; 8]) -> [[i16; 8]; 8] {
    let mut t = [[0i16; 8]; 8];
    for (r, row) in m.iter().enumerate() {
        for (c, &x) in row.iter().enumerate() {
            t[c][r] = x;
        }
    }
    t
}

/// Dequantises and inverse-transforms one block (coefficients and table in
/// natural order) into 8 rows of `out`, `stride` bytes apart.
pub(crate) fn idct_block(coef: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) {
    let mut deq = [[0i16; 8]; 8];
    for ((row, c), q) in deq
        .iter_mut()
        .zip(coef.chunks_exact(8))
        .zip(quant.chunks_exact(8))
    {
        for ((d, &c), &q) in row.iter_mut().zip(c).zip(q) {
            *d = (i32::from(c) * i32::from(q as i16)) as i16;
        }
    }
    // Pass 1 works on columns: lanes are columns, inputs the rows.
    let ws = if coef[8..].iter().fold(0, |acc, &c| acc | c) == 0 {
        // Rows 1-7 zero: every row of the workspace is the first row × 4.
        let first = deq[0].map(|x| x.wrapping_shl(PASS1_BITS));
        if first[1..].iter().fold(0, |acc, &x| acc | x) == 0 {
            // A flat block (the usual DC-only case): one value.
            let value = pixel(pass(first, CONST_BITS + PASS1_BITS + 3)[0]);
            for row in out.chunks_mut(stride).take(8) {
                row[..8].fill(value);
            }
            return;
        }
        [first; 8]
    } else {
        pass8(&deq, CONST_BITS - PASS1_BITS)
    };
    // Pass 2 works on rows: lanes are rows, inputs the columns; its outputs
    // are samples by column, turned into rows.
    let columns = pass8_samples(&transpose(&ws));
    for (row, word) in out.chunks_mut(stride).take(8).zip(transpose_bytes(columns)) {
        row[..8].copy_from_slice(&word.to_le_bytes());
    }
}

/// Pass 2 of eight rows side by side, each output a sample; output `k` of
/// every row packed in one word (row `l` in byte `l`).
#[inline(always)]
fn pass8_samples(v: &[[i16; 8]; 8]) -> [u64; 8] {
    let mut out = [[0u8; 8]; 8];
    for l in 0..8 {
        let o = pass(std::array::from_fn(|k| v[k][l]), CONST_BITS + PASS1_BITS + 3);
        for (column, &x) in out.iter_mut().zip(&o) {
            column[l] = pixel(x);
        }
    }
    out.map(u64::from_le_bytes)
}

/// Transposes an 8x8 byte matrix held as eight words (byte `c` of word `r`
/// is element `(r, c)`) by swapping 4x4, 2x2, then 1x1 blocks.
fn transpose_bytes(mut w: [u64; 8]) -> [u64; 8] {
    const LO32: u64 = 0x0000_0000_FFFF_FFFF;
    const M16: u64 = 0x0000_FFFF_0000_FFFF;
    const M8: u64 = 0x00FF_00FF_00FF_00FF;
    for r in 0..4 {
        let (a, b) = (w[r], w[r + 4]);
        w[r] = (a & LO32) | (b << 32);
        w[r + 4] = (a >> 32) | (b & !LO32);
    }
    for r in [0, 1, 4, 5] {
        let (a, b) = (w[r], w[r + 2]);
        w[r] = (a & M16) | ((b & M16) << 16);
        w[r + 2] = ((a >> 16) & M16) | (b & !M16);
    }
    for r in [0, 2, 4, 6] {
        let (a, b) = (w[r], w[r + 1]);
        w[r] = (a & M8) | ((b & M8) << 8);
        w[r + 1] = ((a >> 8) & M8) | (b & !M8);
    }
    w
}

/// Level shift and saturation to a sample.
#[inline(always)]
fn pixel(x: i16) -> u8 {
    (i32::from(x).clamp(-128, 127) + 128) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_only_block_is_flat() {
        let mut coef = [0i16; 64];
        coef[0] = 37;
        let mut flat = [0u8; 64];
        idct_block(&coef, &[3u16; 64], &mut flat, 8);
        // 37 * 3 = 111 -> 111 / 8 = 13.9 -> 128 + 14.
        assert!(flat.iter().all(|&v| v == 142));
    }

    #[test]
    fn a_single_ac_term_gives_a_cosine_ramp() {
        let mut coef = [0i16; 64];
        coef[1] = 40; // horizontal frequency 1
        let mut out = [0u8; 64];
        idct_block(&coef, &[1u16; 64], &mut out, 8);
        let row = &out[..8];
        assert!(row.windows(2).all(|w| w[0] >= w[1]), "{row:?}");
        assert!(row[0] > 128 && row[7] < 128);
        assert!(out.chunks(8).all(|r| r == row));
        // The same term vertically gives the transposed ramp.
        coef[1] = 0;
        coef[8] = 40;
        let mut down = [0u8; 64];
        idct_block(&coef, &[1u16; 64], &mut down, 8);
        assert!((0..8).all(|r| (0..8).all(|c| down[r * 8 + c] == out[c * 8 + r])));
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let m: [[i16; 8]; 8] = std::array::from_fn(|r| std::array::from_fn(|c| (r * 8 + c) as i16));
        let t = transpose(&m);
        assert!((0..8).all(|r| (0..8).all(|c| t[c][r] == m[r][c])));
    }

    #[test]
    fn byte_transpose_swaps_rows_and_columns() {
        let m: [[u8; 8]; 8] = std::array::from_fn(|r| std::array::from_fn(|c| (r * 8 + c) as u8));
        let t = transpose_bytes(m.map(u64::from_le_bytes)).map(u64::to_le_bytes);
        assert!((0..8).all(|r| (0..8).all(|c| t[c][r] == m[r][c])));
    }

    #[test]
    fn out_of_range_values_saturate() {
        let mut coef = [0i16; 64];
        coef[0] = 2000;
        let mut out = [0u8; 64];
        idct_block(&coef, &[255u16; 64], &mut out, 8);
        assert!(out.iter().all(|&v| v == 255));
        coef[0] = -2000;
        idct_block(&coef, &[255u16; 64], &mut out, 8);
        assert!(out.iter().all(|&v| v == 0));
    }
}
