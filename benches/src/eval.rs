//! Workloads for the som-eval benchmarks, built the same way by
//! `tools/bench/compare_eval.py` so both sides time the same inputs.

use som_core::{ImageSize, Mask, Rle};

use crate::load_set;

/// DAVIS's 480p frame size.
pub const FRAME: ImageSize = ImageSize {
    width: 854,
    height: 480,
};

/// `n` (ground truth, prediction) pairs of 854×480 masks: masks `i` of
/// `synth_1024x768_n200` and `synth_1024x768_n200_b`, cropped to the top-left 854×480.
pub fn davis_pairs(n: usize) -> anyhow::Result<Vec<(Mask, Mask)>> {
    let gt = load_set("synth_1024x768_n200")?;
    let pred = load_set("synth_1024x768_n200_b")?;
    let crop = |m: &Mask| -> anyhow::Result<Mask> {
        let full = m.to_bytes();
        let w = m.size().width as usize;
        let mut out = Vec::with_capacity(FRAME.pixels() as usize);
        for y in 0..FRAME.height as usize {
            out.extend_from_slice(&full[y * w..y * w + FRAME.width as usize]);
        }
        Ok(Mask::from_bytes(FRAME, &out)?)
    };
    gt.regions()
        .iter()
        .zip(pred.regions())
        .take(n)
        .map(|(g, p)| {
            Ok((
                crop(g.mask.as_ref().expect("mask"))?,
                crop(p.mask.as_ref().expect("mask"))?,
            ))
        })
        .collect()
}

/// `images` pairs of 512×512 ADE20K-style label maps (stored ground truth 0..=150,
/// predicted class indices with some wrong and some "no class" = 255).
pub fn label_maps(images: u32) -> Vec<(Vec<u32>, Vec<u32>)> {
    (0..images)
        .map(|k| {
            let mut gt = Vec::with_capacity(512 * 512);
            let mut pred = Vec::with_capacity(512 * 512);
            for y in 0..512u32 {
                for x in 0..512u32 {
                    let g = (x / 37 + (y / 29) * 3 + k * 7) % 151;
                    let mut p = if g == 0 { 255 } else { g - 1 };
                    if (x * y + k) % 11 == 0 {
                        p = (g + 3) % 150;
                    }
                    gt.push(g);
                    pred.push(p);
                }
            }
            (gt, pred)
        })
        .collect()
}

/// The detections and ground truths of the COCO IoU benchmark (200 × 200 masks).
pub fn coco_rles() -> anyhow::Result<(Vec<Rle>, Vec<Rle>)> {
    let rles = |name: &str| -> anyhow::Result<Vec<Rle>> {
        Ok(load_set(name)?
            .regions()
            .iter()
            .filter_map(|r| r.mask.as_ref().map(Mask::to_rle))
            .collect())
    };
    Ok((rles("synth_1024x768_n200_b")?, rles("synth_1024x768_n200")?))
}
