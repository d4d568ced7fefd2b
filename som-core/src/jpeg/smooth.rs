//! Block smoothing of progressive JPEGs whose low-frequency coefficients are
//! not all fully decoded (the file ended early, or its scans never refine
//! them): libjpeg-turbo's `decompress_smooth_data` (`jdcoefct.c`). The first
//! nine AC coefficients of each block, where still zero and not known
//! exactly, are estimated from the DC values of the 5x5 neighbouring blocks
//! (JPEG Annex K.8 on a larger window); when no AC data arrived at all the
//! DC value itself is smoothed too.

use super::frame::Component;

/// Whether libjpeg smooths (`smoothing_ok`): a progressive frame where
/// every component has DC data, the quantisation entries used are nonzero,
/// and some component has one of its first nine AC coefficients unfinished.
pub(crate) fn wanted(progressive: bool, bits: &[[i32; 64]], quant: &[Option<[u16; 64]>]) -> bool {
    if !progressive {
        return false;
    }
    let mut useful = false;
    for (bits, q) in bits.iter().zip(quant) {
        let Some(q) = q else { return false };
        if [0, 1, 8, 16, 9, 2, 3, 10, 17, 24].iter().any(|&i| q[i] == 0) || bits[0] < 0 {
            return false;
        }
        useful |= bits[1..10].iter().any(|&b| b != 0);
    }
    useful
}

/// What smoothing one component needs to know about the decoding.
pub(crate) struct Context<'a> {
    pub component: &'a Component,
    /// Coefficients of every stored block of the component.
    pub blocks: &'a [[i16; 64]],
    pub quant: &'a [u16; 64],
    /// Decoding state of zig-zag coefficients 0..=9 after the last scan,
    /// and before it (used past the last fully decoded MCU row).
    pub bits: &'a [i32],
    pub previous: &'a [i32],
    pub last_good_imcu_row: usize,
    pub imcu_rows: usize,
}

/// Calls `emit(bx, by, block)` with the smoothed coefficients of every
/// image block of the component.
pub(crate) fn smooth(ctx: &Context, mut emit: impl FnMut(usize, usize, &[i16; 64])) {
    let c = ctx.component;
    let (v, wib) = (c.v, c.width_in_blocks);
    let total = ctx.imcu_rows;
    let q = |i: usize| i64::from(ctx.quant[i]);
    for imcu in 0..total {
        // libjpeg's bookkeeping, edge cases included: the block rows of the
        // last iMCU row also scale the row count used for the edge tests.
        let block_rows = if imcu + 1 < total {
            v
        } else {
            match c.height_in_blocks % v {
                0 => v,
                r => r,
            }
        };
        let bits = if imcu > ctx.last_good_imcu_row {
            ctx.previous
        } else {
            ctx.bits
        };
        let change_dc = bits[1..10].iter().all(|&b| b == -1);
        let image_block_rows = (block_rows * total) as i64;
        for block_row in 0..block_rows {
            let abs = imcu * v + block_row;
            let ibr = (imcu * block_rows + block_row) as i64;
            let prev = if ibr > 0 { abs - 1 } else { abs };
            let prev_prev = if ibr > 1 { abs - 2 } else { prev };
            let next = if ibr < image_block_rows - 1 { abs + 1 } else { abs };
            let next_next = if ibr < image_block_rows - 2 { abs + 2 } else { next };
            let rows = [prev_prev, prev, abs, next, next_next].map(|r| r.min(c.blocks_h - 1));
            for bx in 0..wib {
                // dc[n] is libjpeg's DC(n+1): 5 rows of 5 columns around the block.
                let mut dc = [0i64; 25];
                for (r, &row) in rows.iter().enumerate() {
                    for k in 0..5 {
                        let col = (bx + k).saturating_sub(2).min(wib - 1);
                        dc[r * 5 + k] = i64::from(ctx.blocks[row * c.blocks_w + col][0]);
                    }
                }
                let d = |n: usize| dc[n - 1];
                let mut ws = ctx.blocks[abs * c.blocks_w + bx];
                let estimate = |ws: &mut [i16; 64], pos: usize, zz: usize, qpos: usize, sum: i64| {
                    let al = bits[zz];
                    if al != 0 && ws[pos] == 0 {
                        ws[pos] = predict(q(0) * sum, q(qpos), al);
                    }
                };
                let ac01 = if change_dc {
                    -d(1) - d(2) + d(4) + d(5) - 3 * d(6) + 13 * d(7) - 13 * d(9) + 3 * d(10) - 3 * d(11)
                        + 38 * d(12)
                        - 38 * d(14)
                        + 3 * d(15)
                        - 3 * d(16)
                        + 13 * d(17)
                        - 13 * d(19)
                        + 3 * d(20)
                        - d(21)
                        - d(22)
                        + d(24)
                        + d(25)
                } else {
                    -7 * d(11) + 50 * d(12) - 50 * d(14) + 7 * d(15)
                };
                estimate(&mut ws, 1, 1, 1, ac01);
                let ac10 = if change_dc {
                    -d(1) - 3 * d(2) - 3 * d(3) - 3 * d(4) - d(5) - d(6) + 13 * d(7) + 38 * d(8) + 13 * d(9)
                        - d(10)
                        + d(16)
                        - 13 * d(17)
                        - 38 * d(18)
                        - 13 * d(19)
                        + d(20)
                        + d(21)
                        + 3 * d(22)
                        + 3 * d(23)
                        + 3 * d(24)
                        + d(25)
                } else {
                    -7 * d(3) + 50 * d(8) - 50 * d(18) + 7 * d(23)
                };
                estimate(&mut ws, 8, 2, 8, ac10);
                let ac20 = if change_dc {
                    d(3) + 2 * d(7) + 7 * d(8) + 2 * d(9) - 5 * d(12) - 14 * d(13) - 5 * d(14)
                        + 2 * d(17)
                        + 7 * d(18)
                        + 2 * d(19)
                        + d(23)
                } else {
                    -d(3) + 13 * d(8) - 24 * d(13) + 13 * d(18) - d(23)
                };
                estimate(&mut ws, 16, 3, 16, ac20);
                let ac11 = if change_dc {
                    -d(1) + d(5) + 9 * d(7) - 9 * d(9) - 9 * d(17) + 9 * d(19) + d(21) - d(25)
                } else {
                    d(10) + d(16) - 10 * d(17) + 10 * d(19) - d(2) - d(20) + d(22) - d(24) + d(4) - d(6)
                        + 10 * d(7)
                        - 10 * d(9)
                };
                estimate(&mut ws, 9, 4, 9, ac11);
                let ac02 = if change_dc {
                    2 * d(7) - 5 * d(8) + 2 * d(9) + d(11) + 7 * d(12) - 14 * d(13)
                        + 7 * d(14)
                        + d(15)
                        + 2 * d(17)
                        - 5 * d(18)
                        + 2 * d(19)
                } else {
                    -d(11) + 13 * d(12) - 24 * d(13) + 13 * d(14) - d(15)
                };
                estimate(&mut ws, 2, 5, 2, ac02);
                if change_dc {
                    estimate(
                        &mut ws,
                        3,
                        6,
                        3,
                        d(7) - d(9) + 2 * d(12) - 2 * d(14) + d(17) - d(19),
                    );
                    estimate(
                        &mut ws,
                        10,
                        7,
                        10,
                        d(7) - 3 * d(8) + d(9) - d(17) + 3 * d(18) - d(19),
                    );
                    estimate(
                        &mut ws,
                        17,
                        8,
                        17,
                        d(7) - d(9) - 3 * d(12) + 3 * d(14) + d(17) - d(19),
                    );
                    estimate(
                        &mut ws,
                        24,
                        9,
                        24,
                        d(7) + 2 * d(8) + d(9) - d(17) - 2 * d(18) - d(19),
                    );
                    let sum = -2 * d(1) - 6 * d(2) - 8 * d(3) - 6 * d(4) - 2 * d(5) - 6 * d(6)
                        + 6 * d(7)
                        + 42 * d(8)
                        + 6 * d(9)
                        - 6 * d(10)
                        - 8 * d(11)
                        + 42 * d(12)
                        + 152 * d(13)
                        + 42 * d(14)
                        - 8 * d(15)
                        - 6 * d(16)
                        + 6 * d(17)
                        + 42 * d(18)
                        + 6 * d(19)
                        - 6 * d(20)
                        - 2 * d(21)
                        - 6 * d(22)
                        - 8 * d(23)
                        - 6 * d(24)
                        - 2 * d(25);
                    ws[0] = predict(q(0) * sum, q(0), 0);
                }
                emit(bx, abs, &ws);
            }
        }
    }
}

/// `num / (q << 8)` rounded, limited below `2^al` when `al > 0` (libjpeg's
/// prediction step, with its int and JCOEF truncations).
fn predict(num: i64, q: i64, al: i32) -> i16 {
    let limit = |p: i64| {
        if al > 0 && p >= 1 << al {
            (1 << al) - 1
        } else {
            p
        }
    };
    let pred = if num >= 0 {
        limit(((q << 7) + num) / (q << 8))
    } else {
        -limit(((q << 7) - num) / (q << 8))
    };
    pred as i32 as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_round_and_respect_the_known_bits() {
        // 1000 / 256 = 3.9 -> 4 with rounding; limited to 2^2 - 1 = 3 when Al = 2.
        assert_eq!(predict(1000, 1, 0), 4);
        assert_eq!(predict(1000, 1, 2), 3);
        assert_eq!(predict(-1000, 1, 2), -3);
        assert_eq!(predict(-1000, 1, -1), -4);
    }

    #[test]
    fn only_unfinished_progressive_frames_are_smoothed() {
        let q = Some([1u16; 64]);
        let mut bits = [[0i32; 64]; 1];
        assert!(!wanted(true, &bits, &[q]));
        bits[0][3] = 1;
        assert!(wanted(true, &bits, &[q]));
        assert!(!wanted(false, &bits, &[q]));
        bits[0][0] = -1;
        assert!(!wanted(true, &bits, &[q]));
    }
}
