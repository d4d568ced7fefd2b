//! COCO run-length encoding, compatible with pycocotools.
//!
//! A mask of `h × w` pixels is read in column-major (Fortran) order; `counts`
//! alternates runs of zeros and ones, starting with zeros (possibly a run of
//! length 0). The compressed form is pycocotools' `rleToString`: each count
//! (after the third, as the difference to the count two before it) is written
//! as 5-bit little-endian groups with a continuation bit, offset by `'0'`.

use crate::error::SomError;
use crate::geometry::{BBox, ImageSize};

/// A COCO run-length encoded mask.
///
/// # Example
/// ```
/// use som_core::{ImageSize, Rle};
/// // pycocotools encodes a 2x3 mask whose only pixel is (x 0, y 1) as "114".
/// let rle = Rle::from_compressed(ImageSize::new(3, 2), "114")?;
/// assert_eq!(rle.counts(), &[1, 1, 4]);
/// assert_eq!(rle.to_compressed(), "114");
/// assert_eq!(rle.area(), 1);
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rle {
    size: ImageSize,
    counts: Vec<u32>,
}

impl Rle {
    /// An RLE from uncompressed counts.
    ///
    /// # Errors
    /// [`SomError::Rle`] when the counts do not add up to `width * height`
    /// or the image has more pixels than a 32-bit count can address.
    ///
    /// ```
    /// use som_core::{ImageSize, Rle};
    /// assert!(Rle::from_counts(ImageSize::new(2, 2), vec![1, 3]).is_ok());
    /// assert!(Rle::from_counts(ImageSize::new(2, 2), vec![1, 2]).is_err());
    /// ```
    pub fn from_counts(size: ImageSize, counts: Vec<u32>) -> Result<Self, SomError> {
        check_size(size)?;
        let sum: u64 = counts.iter().map(|&c| c as u64).sum();
        if sum != size.pixels() {
            return Err(SomError::Rle(format!(
                "counts add up to {sum} pixels, but a {size} image has {}",
                size.pixels()
            )));
        }
        Ok(Self { size, counts })
    }

    pub(crate) fn from_counts_unchecked(size: ImageSize, counts: Vec<u32>) -> Self {
        Self { size, counts }
    }

    /// Parses pycocotools' compressed `counts` string.
    ///
    /// # Errors
    /// [`SomError::Rle`] for characters outside the alphabet, a truncated
    /// value, negative or overflowing counts, or counts that do not cover the
    /// image exactly.
    pub fn from_compressed(size: ImageSize, s: &str) -> Result<Self, SomError> {
        check_size(size)?;
        let bytes = s.as_bytes();
        let mut counts: Vec<u32> = Vec::with_capacity(bytes.len() / 2);
        let mut p = 0usize;
        while p < bytes.len() {
            let mut x: i64 = 0;
            let mut k = 0u32;
            loop {
                let Some(&ch) = bytes.get(p) else {
                    return Err(SomError::Rle(format!(
                        "compressed counts end in the middle of a value at byte {p}"
                    )));
                };
                if !(48..48 + 64).contains(&ch) {
                    return Err(SomError::Rle(format!(
                        "byte {p} of the compressed counts is {:?}, outside the RLE alphabet",
                        ch as char
                    )));
                }
                if k >= 7 {
                    return Err(SomError::Rle(format!("count at byte {p} is too long")));
                }
                let c = (ch - 48) as i64;
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let m = counts.len();
            if m > 2 {
                x += counts[m - 2] as i64;
            }
            if !(0..=u32::MAX as i64).contains(&x) {
                return Err(SomError::Rle(format!("count {} decodes to {x}", m)));
            }
            counts.push(x as u32);
        }
        Self::from_counts(size, counts)
    }

    /// The compressed `counts` string, byte-identical to pycocotools.
    pub fn to_compressed(&self) -> String {
        let mut out = String::with_capacity(self.counts.len() * 2);
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = c as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut c = (x & 0x1f) as u8;
                x >>= 5;
                let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    c |= 0x20;
                }
                out.push((c + 48) as char);
                if !more {
                    break;
                }
            }
        }
        out
    }

    /// Image size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The run lengths, zeros first.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Number of pixels inside (the sum of the odd runs).
    pub fn area(&self) -> u64 {
        self.counts.iter().skip(1).step_by(2).map(|&c| c as u64).sum()
    }

    /// The union of two masks of the same image, computed on the runs without
    /// decoding either: pycocotools' `merge(…, intersect=False)`, with the same
    /// counts (runs after the first are never empty).
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the two cover images of different sizes.
    ///
    /// ```
    /// use som_core::{ImageSize, Rle};
    /// let size = ImageSize::new(2, 3);
    /// let a = Rle::from_counts(size, vec![0, 2, 4])?; // the top two pixels of column 0
    /// let b = Rle::from_counts(size, vec![1, 3, 2])?; // from (0, 1) to (1, 0), column-major
    /// assert_eq!(a.union(&b)?.counts(), &[0, 4, 2]);
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn union(&self, other: &Rle) -> Result<Rle, SomError> {
        if self.size != other.size {
            return Err(SomError::MaskSize {
                expected: self.size,
                found: format!("an RLE of {}", other.size),
            });
        }
        let (mut a, mut b) = (self.ones().peekable(), other.ones().peekable());
        let mut counts = Vec::with_capacity(self.counts.len() + other.counts.len());
        // The open run of ones, and where the last run written ends.
        let mut open: Option<(u64, u64)> = None;
        let mut written = 0u64;
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            };
            match (open, next) {
                (Some((s, e)), Some((ns, ne))) if ns <= e => open = Some((s, e.max(ne))),
                (Some((s, e)), _) => {
                    counts.push((s - written) as u32);
                    counts.push((e - s) as u32);
                    written = e;
                    open = next;
                }
                (None, _) => open = next,
            }
            if open.is_none() {
                break;
            }
        }
        let total = self.size.pixels();
        if written < total {
            counts.push((total - written) as u32);
        }
        Ok(Self::from_counts_unchecked(self.size, counts))
    }

    /// The runs of ones as `[start, end)` positions in column-major order.
    fn ones(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut pos = 0u64;
        self.counts.iter().enumerate().filter_map(move |(i, &c)| {
            let start = pos;
            pos += c as u64;
            (i % 2 == 1 && c > 0).then_some((start, pos))
        })
    }

    /// Tight bounding box of the inside pixels.
    pub fn bbox(&self) -> BBox {
        let h = self.size.height as u64;
        if h == 0 {
            return BBox::default();
        }
        let (mut x0, mut y0, mut x1, mut y1) = (u64::MAX, u64::MAX, 0u64, 0u64);
        let mut pos = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let c = c as u64;
            if i % 2 == 1 && c > 0 {
                let (sx, sy) = (pos / h, pos % h);
                let end = pos + c - 1;
                let (ex, ey) = (end / h, end % h);
                x0 = x0.min(sx);
                x1 = x1.max(ex + 1);
                if sx == ex {
                    y0 = y0.min(sy);
                    y1 = y1.max(ey + 1);
                } else {
                    y0 = 0;
                    y1 = h;
                }
            }
            pos += c;
        }
        if x0 == u64::MAX {
            return BBox::default();
        }
        BBox::from_xyxy(x0 as u32, y0 as u32, x1 as u32, y1 as u32)
    }
}

pub(crate) fn check_size(size: ImageSize) -> Result<(), SomError> {
    if size.pixels() > u32::MAX as u64 {
        return Err(SomError::Rle(format!(
            "a {size} image has more pixels than COCO RLE can address"
        )));
    }
    Ok(())
}
