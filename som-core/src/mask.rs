//! Binary masks stored as their bounding-box crop.

use ndarray::{Array2, ArrayView2};

use crate::error::SomError;
use crate::geometry::{BBox, ImageSize, Point};
use crate::rle::Rle;

/// A binary mask over a whole image, stored as the crop of its bounding box.
///
/// The bounding box and the area are computed once, when the mask is built,
/// so both are free to read. Pixels outside the box are outside the mask; the
/// crop holds one byte per pixel (`0` outside, `1` inside), row-major.
///
/// # Example
/// ```
/// use som_core::{BBox, ImageSize, Mask, Point};
/// let size = ImageSize::new(8, 6);
/// let mask = Mask::from_fn(size, |x, y| (2..5).contains(&x) && (1..3).contains(&y));
/// assert_eq!(mask.area(), 6);
/// assert_eq!(mask.bbox(), BBox::new(2, 1, 3, 2));
/// assert!(mask.contains(Point::new(3, 2)));
/// assert!(!mask.contains(Point::new(7, 5)));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mask {
    size: ImageSize,
    bbox: BBox,
    area: u64,
    crop: Vec<u8>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mask")
            .field("size", &self.size)
            .field("bbox", &self.bbox)
            .field("area", &self.area)
            .finish_non_exhaustive()
    }
}

impl Mask {
    /// An empty mask (no pixel inside) over an image of `size`.
    pub fn empty(size: ImageSize) -> Self {
        Self {
            size,
            bbox: BBox::default(),
            area: 0,
            crop: Vec::new(),
        }
    }

    /// The mask whose pixels are exactly those of `bbox` (clipped to the image).
    ///
    /// ```
    /// use som_core::{BBox, ImageSize, Mask};
    /// let m = Mask::from_box(ImageSize::new(10, 10), BBox::new(8, 8, 5, 5));
    /// assert_eq!(m.bbox(), BBox::new(8, 8, 2, 2));
    /// ```
    pub fn from_box(size: ImageSize, bbox: BBox) -> Self {
        let b = bbox.clip_to(size);
        if b.is_empty() {
            return Self::empty(size);
        }
        Self {
            size,
            bbox: b,
            area: b.area(),
            crop: vec![1; b.area() as usize],
        }
    }

    /// Builds a mask by asking `inside(x, y)` for every pixel.
    pub fn from_fn(size: ImageSize, mut inside: impl FnMut(u32, u32) -> bool) -> Self {
        let mut bytes = Vec::with_capacity(size.pixels() as usize);
        for y in 0..size.height {
            for x in 0..size.width {
                bytes.push(inside(x, y) as u8);
            }
        }
        Self::from_bytes_unchecked(size, &bytes)
    }

    /// Builds a mask from one byte per pixel, row-major; non-zero means inside.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when `bytes.len()` is not `width * height`.
    ///
    /// ```
    /// use som_core::{ImageSize, Mask};
    /// let m = Mask::from_bytes(ImageSize::new(3, 2), &[0, 1, 0, 0, 255, 0])?;
    /// assert_eq!(m.area(), 2);
    /// assert!(Mask::from_bytes(ImageSize::new(3, 2), &[0; 5]).is_err());
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn from_bytes(size: ImageSize, bytes: &[u8]) -> Result<Self, SomError> {
        if bytes.len() as u64 != size.pixels() {
            return Err(SomError::MaskSize {
                expected: size,
                found: format!("{} bytes", bytes.len()),
            });
        }
        Ok(Self::from_bytes_unchecked(size, bytes))
    }

    fn from_bytes_unchecked(size: ImageSize, bytes: &[u8]) -> Self {
        let w = size.width as usize;
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        for (y, row) in bytes.chunks_exact(w.max(1)).enumerate() {
            if let Some(first) = row.iter().position(|&v| v != 0) {
                let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
                x0 = x0.min(first);
                x1 = x1.max(last + 1);
                y0 = y0.min(y);
                y1 = y + 1;
            }
        }
        if x0 == usize::MAX {
            return Self::empty(size);
        }
        let bbox = BBox::from_xyxy(x0 as u32, y0 as u32, x1 as u32, y1 as u32);
        let bw = bbox.width as usize;
        let mut crop = Vec::with_capacity(bbox.area() as usize);
        let mut area = 0u64;
        for y in y0..y1 {
            for &v in &bytes[y * w + x0..y * w + x0 + bw] {
                let b = (v != 0) as u8;
                area += b as u64;
                crop.push(b);
            }
        }
        Self {
            size,
            bbox,
            area,
            crop,
        }
    }

    /// Builds a mask from the crop of its box: `crop` holds one byte per pixel of
    /// `bbox`, row-major, non-zero meaning inside. The box is shrunk to the
    /// pixels actually set.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the box leaves the image or `crop` has the
    /// wrong length.
    ///
    /// ```
    /// use som_core::{BBox, ImageSize, Mask};
    /// let m = Mask::from_crop(ImageSize::new(10, 10), BBox::new(2, 2, 3, 1), &[0, 1, 1])?;
    /// assert_eq!(m.bbox(), BBox::new(3, 2, 2, 1));
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn from_crop(size: ImageSize, bbox: BBox, crop: &[u8]) -> Result<Self, SomError> {
        if !size.full_box().contains_box(&bbox) || crop.len() as u64 != bbox.area() {
            return Err(SomError::MaskSize {
                expected: size,
                found: format!("a crop of {} bytes at {:?}", crop.len(), bbox.to_xywh()),
            });
        }
        if bbox.is_empty() {
            return Ok(Self::empty(size));
        }
        let inner = Self::from_bytes_unchecked(ImageSize::new(bbox.width, bbox.height), crop);
        if inner.area == 0 {
            return Ok(Self::empty(size));
        }
        Ok(Self {
            size,
            bbox: BBox::new(
                bbox.x + inner.bbox.x,
                bbox.y + inner.bbox.y,
                inner.bbox.width,
                inner.bbox.height,
            ),
            area: inner.area,
            crop: inner.crop,
        })
    }

    /// Builds a mask from a `(height, width)` boolean array.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use som_core::Mask;
    /// let mut a = Array2::from_elem((4, 5), false);
    /// a[[1, 2]] = true;
    /// let m = Mask::from_array(a.view());
    /// assert_eq!(m.area(), 1);
    /// assert_eq!(m.to_array(), a);
    /// ```
    pub fn from_array(array: ArrayView2<'_, bool>) -> Self {
        let (h, w) = array.dim();
        let size = ImageSize::new(w as u32, h as u32);
        let bytes: Vec<u8> = array.iter().map(|&b| b as u8).collect();
        Self::from_bytes_unchecked(size, &bytes)
    }

    /// The mask as a `(height, width)` boolean array of the full image.
    pub fn to_array(&self) -> Array2<bool> {
        let mut a = Array2::from_elem((self.size.height as usize, self.size.width as usize), false);
        for (y, row) in self.crop_rows().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                if v != 0 {
                    a[[self.bbox.y as usize + y, self.bbox.x as usize + x]] = true;
                }
            }
        }
        a
    }

    /// The mask as one byte per pixel of the full image (`0` or `1`), row-major.
    pub fn to_bytes(&self) -> Vec<u8> {
        let w = self.size.width as usize;
        let mut out = vec![0u8; self.size.pixels() as usize];
        for (y, row) in self.crop_rows().enumerate() {
            let start = (self.bbox.y as usize + y) * w + self.bbox.x as usize;
            out[start..start + row.len()].copy_from_slice(row);
        }
        out
    }

    /// Size of the image the mask covers.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// Tight bounding box of the inside pixels (empty for an empty mask).
    pub fn bbox(&self) -> BBox {
        self.bbox
    }

    /// Number of inside pixels.
    pub fn area(&self) -> u64 {
        self.area
    }

    /// `true` when no pixel is inside.
    pub fn is_empty(&self) -> bool {
        self.area == 0
    }

    /// `true` when `p` is inside the mask.
    pub fn contains(&self, p: Point) -> bool {
        if !self.bbox.contains(p) {
            return false;
        }
        let i = (p.y - self.bbox.y) as usize * self.bbox.width as usize + (p.x - self.bbox.x) as usize;
        self.crop[i] != 0
    }

    /// The crop of the bounding box: one byte per pixel (`0`/`1`), row-major,
    /// `bbox().width` bytes per row.
    pub fn crop_data(&self) -> &[u8] {
        &self.crop
    }

    /// The rows of the bounding-box crop, top to bottom.
    pub fn crop_rows(&self) -> impl Iterator<Item = &[u8]> {
        self.crop.chunks_exact(self.bbox.width.max(1) as usize)
    }

    /// The number of pixels inside both masks.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the masks cover images of different sizes.
    pub fn intersection_area(&self, other: &Mask) -> Result<u64, SomError> {
        self.check_same_size(other)?;
        let Some(common) = self.bbox.intersection(&other.bbox) else {
            return Ok(0);
        };
        let mut n = 0u64;
        for y in common.y..common.y + common.height {
            let a = self.row_slice(y, common.x, common.width);
            let b = other.row_slice(y, common.x, common.width);
            n += a.iter().zip(b).filter(|(p, q)| **p & **q != 0).count() as u64;
        }
        Ok(n)
    }

    /// Intersection over union of two masks (0 when both are empty).
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the masks cover images of different sizes.
    ///
    /// ```
    /// use som_core::{BBox, ImageSize, Mask};
    /// let s = ImageSize::new(10, 10);
    /// let a = Mask::from_box(s, BBox::new(0, 0, 4, 4));
    /// let b = Mask::from_box(s, BBox::new(2, 0, 4, 4));
    /// assert!((a.iou(&b)? - 8.0 / 24.0).abs() < 1e-12);
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn iou(&self, other: &Mask) -> Result<f64, SomError> {
        let inter = self.intersection_area(other)?;
        let union = self.area + other.area - inter;
        Ok(if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        })
    }

    fn check_same_size(&self, other: &Mask) -> Result<(), SomError> {
        if self.size != other.size {
            return Err(SomError::MaskSize {
                expected: self.size,
                found: format!("a mask of {}", other.size),
            });
        }
        Ok(())
    }

    /// The crop bytes of row `y` for columns `x..x + width`; all of it must lie
    /// in the bounding box.
    fn row_slice(&self, y: u32, x: u32, width: u32) -> &[u8] {
        let bw = self.bbox.width as usize;
        let start = (y - self.bbox.y) as usize * bw + (x - self.bbox.x) as usize;
        &self.crop[start..start + width as usize]
    }

    /// COCO run-length encoding of this mask (column-major, starting with a
    /// run of zeros), as pycocotools computes it.
    ///
    /// ```
    /// use som_core::{BBox, ImageSize, Mask};
    /// let m = Mask::from_box(ImageSize::new(3, 2), BBox::new(1, 0, 1, 2));
    /// assert_eq!(m.to_rle().counts(), &[2, 2, 2]);
    /// ```
    pub fn to_rle(&self) -> Rle {
        let h = self.size.height as u64;
        let total = self.size.pixels();
        if self.area == 0 {
            return Rle::from_counts_unchecked(
                self.size,
                if total == 0 { vec![] } else { vec![total as u32] },
            );
        }
        let bw = self.bbox.width as usize;
        let bh = self.bbox.height as usize;
        let mut counts: Vec<u32> = Vec::new();
        // Position (column-major) just after the last emitted run, and the value of the open run.
        let mut current = 0u8;
        let mut run_start = 0u64;
        for cx in 0..bw {
            let col_top = (self.bbox.x as u64 + cx as u64) * h;
            if current == 1 && self.bbox.y > 0 {
                // A run of ones from the previous column's bottom ends at this column's top.
                counts.push((col_top - run_start) as u32);
                run_start = col_top;
                current = 0;
            }
            let col_base = (self.bbox.x as u64 + cx as u64) * h + self.bbox.y as u64;
            for cy in 0..bh {
                let v = self.crop[cy * bw + cx];
                if v != current {
                    let pos = col_base + cy as u64;
                    counts.push((pos - run_start) as u32);
                    run_start = pos;
                    current = v;
                }
            }
            if current == 1 {
                // The column continues with zeros below the box (or the box ends at the bottom).
                let pos = col_base + bh as u64;
                if pos < col_top + h {
                    counts.push((pos - run_start) as u32);
                    run_start = pos;
                    current = 0;
                }
            }
        }
        if current == 1 {
            // The box's last column ended inside a run of ones; the columns after it are empty.
            let pos = (self.bbox.x as u64 + bw as u64) * h;
            counts.push((pos - run_start) as u32);
            run_start = pos;
        }
        if run_start < total {
            counts.push((total - run_start) as u32);
        }
        Rle::from_counts_unchecked(self.size, counts)
    }

    /// Decodes a COCO RLE into a mask.
    pub fn from_rle(rle: &Rle) -> Mask {
        rle.to_mask()
    }
}

/// Mask conversions of [`Rle`] live beside [`Mask`], so the codec in `rle.rs`
/// knows nothing about masks.
impl Rle {
    /// Decodes into a [`Mask`].
    pub fn to_mask(&self) -> Mask {
        let bbox = self.bbox();
        if bbox.is_empty() {
            return Mask::empty(self.size());
        }
        let h = self.size().height as u64;
        let bw = bbox.width as usize;
        let mut crop = vec![0u8; bbox.area() as usize];
        let mut pos = 0u64;
        for (i, &c) in self.counts().iter().enumerate() {
            let c = c as u64;
            if i % 2 == 1 {
                // Split the run into column segments and fill each one.
                let (mut p, mut left) = (pos, c);
                while left > 0 {
                    let (x, y) = (p / h, p % h);
                    let len = left.min(h - y);
                    let cx = (x - bbox.x as u64) as usize;
                    let y0 = (y - bbox.y as u64) as usize;
                    for cy in y0..y0 + len as usize {
                        crop[cy * bw + cx] = 1;
                    }
                    p += len;
                    left -= len;
                }
            }
            pos += c;
        }
        // The box is tight and the crop has the right length by construction.
        Mask::from_crop(self.size(), bbox, &crop).unwrap_or_else(|_| Mask::empty(self.size()))
    }
}

impl From<&Mask> for Rle {
    fn from(mask: &Mask) -> Self {
        mask.to_rle()
    }
}
