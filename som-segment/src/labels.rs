//! Label maps (one region id per pixel), their conversion to regions, and the
//! adjusted Rand index used to compare two partitions.

use som_core::{BBox, ImageSize, Mask, Region, Segmentation, SomError};

use crate::error::SegmentError;

/// A partition of an image: one label per pixel, row-major, labels `0..count`.
///
/// This is what [`crate::felzenszwalb()`] returns and what the SoM
/// post-processing works on; [`LabelMap::to_segmentation`] turns it into
/// masks.
///
/// # Example
/// ```
/// use som_core::ImageSize;
/// use som_segment::LabelMap;
/// let map = LabelMap::new(ImageSize::new(3, 2), vec![0, 0, 1, 2, 2, 1])?;
/// assert_eq!(map.count(), 3);
/// assert_eq!(map.areas(), vec![2, 2, 2]);
/// let seg = map.to_segmentation()?;
/// assert_eq!(seg.regions().len(), 3);
/// assert_eq!(seg.regions()[1].id, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    size: ImageSize,
    labels: Vec<u32>,
    count: u32,
}

impl LabelMap {
    /// A label map of `size` from one label per pixel, row-major. The count is
    /// the largest label plus one (labels need not all be used, but per-label
    /// tables are sized by the count, so labels must not exceed
    /// [`LabelMap::MAX_LABEL`]; sparse ids belong in
    /// [`crate::regions_from_values`]).
    ///
    /// # Errors
    /// [`SegmentError::Format`] when `labels.len()` is not `width * height`
    /// or a label exceeds [`LabelMap::MAX_LABEL`].
    ///
    /// ```
    /// use som_core::ImageSize;
    /// use som_segment::LabelMap;
    /// assert!(LabelMap::new(ImageSize::new(2, 1), vec![0, u32::MAX]).is_err());
    /// ```
    pub fn new(size: ImageSize, labels: Vec<u32>) -> Result<Self, SegmentError> {
        if labels.len() as u64 != size.pixels() {
            return Err(SegmentError::format(
                "label map",
                format!(
                    "{} labels for a {size} image ({} pixels)",
                    labels.len(),
                    size.pixels()
                ),
            ));
        }
        let max = labels.iter().copied().max();
        if let Some(m) = max.filter(|&m| m > Self::MAX_LABEL) {
            return Err(SegmentError::format(
                "label map",
                format!("label {m} is above the largest dense label {}", Self::MAX_LABEL),
            ));
        }
        let count = max.map_or(0, |m| m + 1);
        Ok(Self { size, labels, count })
    }

    /// The largest label [`LabelMap::new`] accepts (2^26 − 1).
    pub const MAX_LABEL: u32 = (1 << 26) - 1;

    pub(crate) fn from_parts(size: ImageSize, labels: Vec<u32>, count: u32) -> Self {
        debug_assert_eq!(labels.len() as u64, size.pixels());
        Self { size, labels, count }
    }

    /// The image size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The labels, one per pixel, row-major.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// One more than the largest label.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The label at column `x`, row `y`, or `None` outside the image.
    pub fn get(&self, x: u32, y: u32) -> Option<u32> {
        if x >= self.size.width || y >= self.size.height {
            return None;
        }
        Some(self.labels[y as usize * self.size.width as usize + x as usize])
    }

    /// Pixel count of every label `0..count`.
    pub fn areas(&self) -> Vec<u64> {
        let mut areas = vec![0u64; self.count as usize];
        for &l in &self.labels {
            areas[l as usize] += 1;
        }
        areas
    }

    /// Renumbers labels `0..n` in order of first appearance (row-major),
    /// dropping unused labels. This is the numbering skimage's
    /// `felzenszwalb` returns.
    ///
    /// ```
    /// use som_core::ImageSize;
    /// use som_segment::LabelMap;
    /// let mut map = LabelMap::new(ImageSize::new(4, 1), vec![7, 7, 2, 9])?;
    /// map.relabel_sequential();
    /// assert_eq!(map.labels(), &[0, 0, 1, 2]);
    /// assert_eq!(map.count(), 3);
    /// # Ok::<(), som_segment::SegmentError>(())
    /// ```
    pub fn relabel_sequential(&mut self) {
        let mut map = vec![u32::MAX; self.count as usize];
        let mut next = 0u32;
        for l in self.labels.iter_mut() {
            let m = &mut map[*l as usize];
            if *m == u32::MAX {
                *m = next;
                next += 1;
            }
            *l = *m;
        }
        self.count = next;
    }

    /// One region per non-empty label, in label order; region ids are
    /// `label + 1` (so id 0 never appears).
    ///
    /// # Errors
    /// Only if a mask cannot be built, which does not happen for a valid map.
    pub fn to_segmentation(&self) -> Result<Segmentation, SomError> {
        self.to_segmentation_with(None)
    }

    /// Like [`LabelMap::to_segmentation`], leaving out the pixels of
    /// `background` (no region is made for that label).
    ///
    /// # Errors
    /// Only if a mask cannot be built, which does not happen for a valid map.
    pub fn to_segmentation_with(&self, background: Option<u32>) -> Result<Segmentation, SomError> {
        let masks = self.masks(background)?;
        let regions = masks
            .into_iter()
            .map(|(label, mask)| Region::from_mask(label as u64 + 1, mask))
            .collect();
        Segmentation::new(self.size, regions)
    }

    /// The mask of every non-empty label (except `background`), in label order.
    pub(crate) fn masks(&self, background: Option<u32>) -> Result<Vec<(u32, Mask)>, SomError> {
        let w = self.size.width as usize;
        let n = self.count as usize;
        // Bounding boxes: x0, y0, x1 (exclusive), y1 (exclusive).
        let mut boxes = vec![(u32::MAX, u32::MAX, 0u32, 0u32); n];
        for (y, row) in self.labels.chunks_exact(w.max(1)).enumerate() {
            for (x, &l) in row.iter().enumerate() {
                let b = &mut boxes[l as usize];
                b.0 = b.0.min(x as u32);
                b.1 = b.1.min(y as u32);
                b.2 = b.2.max(x as u32 + 1);
                b.3 = b.3.max(y as u32 + 1);
            }
        }
        let mut crops: Vec<Vec<u8>> = boxes
            .iter()
            .map(|b| {
                if b.0 == u32::MAX {
                    Vec::new()
                } else {
                    vec![0u8; (b.2 - b.0) as usize * (b.3 - b.1) as usize]
                }
            })
            .collect();
        for (y, row) in self.labels.chunks_exact(w.max(1)).enumerate() {
            for (x, &l) in row.iter().enumerate() {
                let b = boxes[l as usize];
                let bw = (b.2 - b.0) as usize;
                crops[l as usize][(y - b.1 as usize) * bw + (x - b.0 as usize)] = 1;
            }
        }
        let mut out = Vec::new();
        for (l, (b, crop)) in boxes.iter().zip(crops).enumerate() {
            if b.0 == u32::MAX || Some(l as u32) == background {
                continue;
            }
            let bbox = BBox::from_xyxy(b.0, b.1, b.2, b.3);
            out.push((l as u32, Mask::from_crop(self.size, bbox, &crop)?));
        }
        Ok(out)
    }
}

/// The adjusted Rand index (Hubert & Arabie 1985) of two labelings of the
/// same pixels, as `sklearn.metrics.adjusted_rand_score` computes it: 1 for
/// identical partitions (whatever the label numbers), about 0 for unrelated
/// ones.
///
/// Two labelings that both put every pixel in one cluster, or both put every
/// pixel in its own cluster, score 1.
///
/// # Errors
/// [`SegmentError::Format`] when the slices differ in length.
///
/// ```
/// use som_segment::adjusted_rand_index;
/// assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 2, 2])?, 1.0);
/// assert!(adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1])? < 0.0);
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> Result<f64, SegmentError> {
    if a.len() != b.len() {
        return Err(SegmentError::format(
            "labelings",
            format!("lengths differ: {} and {}", a.len(), b.len()),
        ));
    }
    let n = a.len() as u64;
    if n < 2 {
        return Ok(1.0);
    }
    let pair2 = |k: u64| (k as f64) * (k as f64 - 1.0) / 2.0;
    let mut pairs: Vec<u64> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as u64) << 32 | y as u64)
        .collect();
    pairs.sort_unstable();
    let mut sum_ij = 0.0;
    let mut run = 1u64;
    for i in 1..=pairs.len() {
        if i < pairs.len() && pairs[i] == pairs[i - 1] {
            run += 1;
        } else {
            sum_ij += pair2(run);
            run = 1;
        }
    }
    let marginal = |labels: &[u32]| {
        let mut v = labels.to_vec();
        v.sort_unstable();
        let mut s = 0.0;
        let mut run = 1u64;
        for i in 1..=v.len() {
            if i < v.len() && v[i] == v[i - 1] {
                run += 1;
            } else {
                s += pair2(run);
                run = 1;
            }
        }
        s
    };
    let sum_a = marginal(a);
    let sum_b = marginal(b);
    let expected = sum_a * sum_b / pair2(n);
    let max = (sum_a + sum_b) / 2.0;
    if max == expected {
        return Ok(1.0);
    }
    Ok((sum_ij - expected) / (max - expected))
}
