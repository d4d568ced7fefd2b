//! Integer pixel geometry: image sizes, points and axis-aligned boxes.

use serde::{Deserialize, Serialize};

/// The size of an image in pixels.
///
/// # Example
/// ```
/// use som_core::ImageSize;
/// let size = ImageSize::new(640, 427);
/// assert_eq!(size.pixels(), 640 * 427);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ImageSize {
    /// A size of `width` × `height` pixels.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Number of pixels, `width * height`, without overflow.
    pub const fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// `true` when either side is zero.
    pub const fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// The box covering the whole image.
    ///
    /// ```
    /// use som_core::{BBox, ImageSize};
    /// assert_eq!(ImageSize::new(4, 3).full_box(), BBox::new(0, 0, 4, 3));
    /// ```
    pub const fn full_box(&self) -> BBox {
        BBox::new(0, 0, self.width, self.height)
    }
}

impl std::fmt::Display for ImageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A pixel position (column `x`, row `y`).
///
/// ```
/// use som_core::Point;
/// let p = Point::new(3, 4);
/// assert_eq!((p.x, p.y), (3, 4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Point {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
}

impl Point {
    /// The point (`x`, `y`).
    pub const fn new(x: u32, y: u32) -> Self {
        Self { x, y }
    }
}

/// An axis-aligned box of whole pixels: columns `x..x + width`, rows `y..y + height`.
///
/// Serialised as COCO's `[x, y, w, h]`.
///
/// ```
/// use som_core::BBox;
/// let a = BBox::new(0, 0, 10, 10);
/// let b = BBox::new(5, 5, 10, 10);
/// assert!(a.intersects(&b));
/// assert_eq!(a.intersection(&b), Some(BBox::new(5, 5, 5, 5)));
/// assert_eq!(a.union(&b), BBox::new(0, 0, 15, 15));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl BBox {
    /// The box at (`x`, `y`) of `width` × `height` pixels.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self { x, y, width, height }
    }

    /// The box spanning columns `x0..x1` and rows `y0..y1` (exclusive ends).
    /// Reversed bounds give an empty box.
    pub fn from_xyxy(x0: u32, y0: u32, x1: u32, y1: u32) -> Self {
        Self::new(x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
    }

    /// One past the right-most column.
    pub const fn right(&self) -> u64 {
        self.x as u64 + self.width as u64
    }

    /// One past the bottom row.
    pub const fn bottom(&self) -> u64 {
        self.y as u64 + self.height as u64
    }

    /// Number of pixels covered.
    pub const fn area(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// `true` when the box covers no pixel.
    pub const fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// `true` when `p` lies inside the box.
    pub fn contains(&self, p: Point) -> bool {
        (p.x as u64) >= self.x as u64
            && (p.x as u64) < self.right()
            && (p.y as u64) >= self.y as u64
            && (p.y as u64) < self.bottom()
    }

    /// `true` when `other` lies completely inside this box.
    pub fn contains_box(&self, other: &BBox) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    /// `true` when the two boxes share at least one pixel.
    pub fn intersects(&self, other: &BBox) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && (self.x as u64) < other.right()
            && (other.x as u64) < self.right()
            && (self.y as u64) < other.bottom()
            && (other.y as u64) < self.bottom()
    }

    /// The pixels both boxes cover, or `None` when they are disjoint.
    pub fn intersection(&self, other: &BBox) -> Option<BBox> {
        if !self.intersects(other) {
            return None;
        }
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = self.right().min(other.right()) as u32;
        let y1 = self.bottom().min(other.bottom()) as u32;
        Some(BBox::from_xyxy(x0, y0, x1, y1))
    }

    /// The smallest box covering both (an empty box is ignored).
    pub fn union(&self, other: &BBox) -> BBox {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        let x0 = self.x.min(other.x);
        let y0 = self.y.min(other.y);
        let x1 = self.right().max(other.right()).min(u32::MAX as u64) as u32;
        let y1 = self.bottom().max(other.bottom()).min(u32::MAX as u64) as u32;
        BBox::from_xyxy(x0, y0, x1, y1)
    }

    /// This box clipped to an image of `size`.
    pub fn clip_to(&self, size: ImageSize) -> BBox {
        self.intersection(&size.full_box()).unwrap_or_default()
    }

    /// The centre pixel (rounded down).
    pub fn center(&self) -> Point {
        Point::new(self.x + self.width / 2, self.y + self.height / 2)
    }

    /// `[x, y, w, h]`.
    pub const fn to_xywh(&self) -> [u32; 4] {
        [self.x, self.y, self.width, self.height]
    }
}

impl Serialize for BBox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_xywh().serialize(s)
    }
}

impl<'de> Deserialize<'de> for BBox {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [x, y, w, h] = <[f64; 4]>::deserialize(d)?;
        BBox::from_float_xywh(x, y, w, h).map_err(serde::de::Error::custom)
    }
}

impl BBox {
    /// The smallest whole-pixel box covering the float box `[x, y, w, h]`
    /// (COCO stores boxes as floats).
    ///
    /// # Errors
    /// Negative or non-finite sizes, or coordinates beyond `u32`.
    ///
    /// ```
    /// use som_core::BBox;
    /// assert_eq!(BBox::from_float_xywh(1.5, 2.0, 3.0, 4.2).unwrap(), BBox::new(1, 2, 4, 5));
    /// assert!(BBox::from_float_xywh(0.0, 0.0, -1.0, 3.0).is_err());
    /// ```
    pub fn from_float_xywh(x: f64, y: f64, w: f64, h: f64) -> Result<BBox, String> {
        if ![x, y, w, h].iter().all(|v| v.is_finite()) {
            return Err(format!("box [{x}, {y}, {w}, {h}] has a non-finite value"));
        }
        if w < 0.0 || h < 0.0 {
            return Err(format!("box [{x}, {y}, {w}, {h}] has a negative size"));
        }
        let limit = u32::MAX as f64;
        let x0 = x.max(0.0).floor();
        let y0 = y.max(0.0).floor();
        let x1 = (x + w).max(0.0).ceil();
        let y1 = (y + h).max(0.0).ceil();
        if x1 > limit || y1 > limit {
            return Err(format!("box [{x}, {y}, {w}, {h}] is too large"));
        }
        Ok(BBox::from_xyxy(x0 as u32, y0 as u32, x1 as u32, y1 as u32))
    }
}
