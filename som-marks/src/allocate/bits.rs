//! Packed-bit masks aligned to the image's 64-column word grid, so that
//! "this region minus every region visited before it" is a few word
//! operations per row.

use som_core::{BBox, ImageSize, Mask, SomError};

use super::edt::BinaryCrop;

/// A mask's bounding box as packed bits. Word `j` of a row covers image
/// columns `64 * (word0 + j)..64 * (word0 + j + 1)`, so rows of different
/// masks line up word for word with a whole-image bitmap.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packed {
    /// Top row (image coordinates).
    pub y0: u32,
    /// Image word index of each row's first word.
    pub word0: u32,
    /// Words per row.
    pub stride: u32,
    /// `height * stride` words.
    pub words: Vec<u64>,
}

impl Packed {
    /// Packs `mask` (its bounding-box crop) into bits.
    pub fn from_mask(mask: &Mask) -> Packed {
        let b = mask.bbox();
        if b.is_empty() {
            return Packed::default();
        }
        let word0 = b.x / 64;
        let stride = ((b.x + b.width - 1) / 64 - word0 + 1) as usize;
        let mut words = vec![0u64; stride * b.height as usize];
        let shift = (b.x % 64) as usize;
        for (row, out) in mask.crop_rows().zip(words.chunks_exact_mut(stride)) {
            // 64 bytes at a time into one word, written at the row's bit offset.
            let mut wide = row.chunks_exact(64);
            let mut bit = shift;
            for c in &mut wide {
                let mut word = 0u64;
                for (k, c8) in c.chunks_exact(8).enumerate() {
                    let v = u64::from_le_bytes([c8[0], c8[1], c8[2], c8[3], c8[4], c8[5], c8[6], c8[7]]);
                    word |= (gather8(v) as u64) << (8 * k);
                }
                put64(out, bit, word);
                bit += 64;
            }
            let mut chunks = wide.remainder().chunks_exact(8);
            for c in &mut chunks {
                let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                put8(out, bit, gather8(v));
                bit += 8;
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut tail = [0u8; 8];
                tail[..rest.len()].copy_from_slice(rest);
                put8(out, bit, gather8(u64::from_le_bytes(tail)));
            }
        }
        Packed {
            y0: b.y,
            word0,
            stride: stride as u32,
            words,
        }
    }

    /// The crop of `window` (image coordinates, inside this mask's rows and
    /// words) as a [`BinaryCrop`].
    pub fn crop(&self, window: BBox) -> Result<BinaryCrop<'_>, SomError> {
        let stride = self.stride as usize;
        let first = (window.y - self.y0) as usize * stride;
        let bit0 = (window.x - self.word0 * 64) as usize;
        BinaryCrop::from_bits(
            window.width as usize,
            window.height as usize,
            &self.words[first.min(self.words.len())..],
            stride,
            bit0,
        )
    }

    /// Removes the pixels set in `covered` (a whole-image bitmap of
    /// `image_words` words per row) from this mask, then adds this mask's
    /// original pixels to `covered`. Returns the remaining pixel count and
    /// their bounding box.
    pub fn subtract_and_cover(&mut self, covered: &mut [u64], image_words: usize) -> (u64, BBox) {
        let stride = self.stride as usize;
        let mut area = 0u64;
        let (mut x0, mut x1, mut y0, mut y1) = (u32::MAX, 0u32, u32::MAX, 0u32);
        if stride == 0 {
            return (0, BBox::default());
        }
        for (r, row) in self.words.chunks_exact_mut(stride).enumerate() {
            let y = self.y0 + r as u32;
            let start = y as usize * image_words + self.word0 as usize;
            let cov = &mut covered[start..start + stride];
            let mut first: Option<usize> = None;
            let mut last = 0usize;
            for (j, (m, c)) in row.iter_mut().zip(cov.iter_mut()).enumerate() {
                let orig = *m;
                let own = orig & !*c;
                *c |= orig;
                *m = own;
                if own != 0 {
                    area += own.count_ones() as u64;
                    if first.is_none() {
                        first = Some(j);
                    }
                    last = j;
                }
            }
            if let Some(f) = first {
                let base = self.word0 * 64;
                let lo = base + 64 * f as u32 + row[f].trailing_zeros();
                let hi = base + 64 * last as u32 + 63 - row[last].leading_zeros();
                x0 = x0.min(lo);
                x1 = x1.max(hi + 1);
                y0 = y0.min(y);
                y1 = y + 1;
            }
        }
        if area == 0 {
            return (0, BBox::default());
        }
        (area, BBox::from_xyxy(x0, y0, x1, y1))
    }
}

/// The low bits of eight 0/1 bytes as one byte (byte `i` → bit `i`).
#[inline]
fn gather8(v: u64) -> u8 {
    ((v & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// ORs the eight bits of `b` into `row` starting at bit `bit`.
#[inline]
fn put8(row: &mut [u64], bit: usize, b: u8) {
    if b == 0 {
        return;
    }
    let (w, o) = (bit / 64, bit % 64);
    row[w] |= (b as u64) << o;
    if o > 56 {
        // Non-zero only for bits inside the row, so the word exists.
        let spill = (b as u64) >> (64 - o);
        if spill != 0 {
            row[w + 1] |= spill;
        }
    }
}

/// ORs the 64 bits of `b` into `row` starting at bit `bit`.
#[inline]
fn put64(row: &mut [u64], bit: usize, b: u64) {
    let (w, o) = (bit / 64, bit % 64);
    row[w] |= b << o;
    if o > 0 {
        // Non-zero only for bits inside the row, so the word exists.
        let spill = b >> (64 - o);
        if spill != 0 {
            row[w + 1] |= spill;
        }
    }
}

/// Words per row of a whole-image bitmap.
pub(crate) fn image_words(size: ImageSize) -> usize {
    (size.width as usize).div_ceil(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_packs_low_bits_in_order() {
        for b in 0u32..256 {
            let bytes: [u8; 8] = std::array::from_fn(|i| (b >> i & 1) as u8);
            assert_eq!(gather8(u64::from_le_bytes(bytes)) as u32, b);
        }
    }

    #[test]
    fn packing_and_subtraction_match_pixels() {
        let size = ImageSize::new(200, 7);
        let a = Mask::from_fn(size, |x, y| (x * 7 + y * 3) % 5 != 0 && (60..190).contains(&x));
        let c = Mask::from_fn(size, |x, y| (x + y) % 3 == 0 && x < 130);
        let iw = image_words(size);
        let mut covered = vec![0u64; iw * 7];
        let mut pc = Packed::from_mask(&c);
        let (ca, _) = pc.subtract_and_cover(&mut covered, iw);
        assert_eq!(ca, c.area());
        let mut pa = Packed::from_mask(&a);
        let (area, bbox) = pa.subtract_and_cover(&mut covered, iw);
        let want = Mask::from_fn(size, |x, y| {
            a.contains(som_core::Point::new(x, y)) && !c.contains(som_core::Point::new(x, y))
        });
        assert_eq!(area, want.area());
        assert_eq!(bbox, want.bbox());
        let crop = pa.crop(bbox).unwrap();
        for y in 0..bbox.height {
            for x in 0..bbox.width {
                let p = som_core::Point::new(bbox.x + x, bbox.y + y);
                assert_eq!(crop.get(x as usize, y as usize), want.contains(p), "{p:?}");
            }
        }
    }
}
