//! Marks: the labels placed on regions, and how their text is formed.

use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, Point};

/// How mark texts are formed from a mark's rank (0 = the largest region).
///
/// ```
/// use som_core::LabelScheme;
/// assert_eq!(LabelScheme::Number { zero_based: false }.text(0), "1");
/// assert_eq!(LabelScheme::Number { zero_based: true }.text(0), "0");
/// assert_eq!(LabelScheme::Letter.text(0), "a");
/// assert_eq!(LabelScheme::Letter.text(25), "z");
/// assert_eq!(LabelScheme::Letter.text(26), "aa");
/// assert_eq!(LabelScheme::Letter.text(701), "zz");
/// assert_eq!(LabelScheme::Letter.text(702), "aaa");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelScheme {
    /// Decimal numbers: `1, 2, 3…` (or `0, 1, 2…` when `zero_based`).
    Number {
        /// Start counting at 0 instead of 1.
        zero_based: bool,
    },
    /// Letters in bijective base 26: `a…z, aa, ab…`.
    Letter,
}

impl Default for LabelScheme {
    fn default() -> Self {
        LabelScheme::Number { zero_based: false }
    }
}

impl LabelScheme {
    /// The mark id of the region of `rank` (0 = largest).
    pub fn id(&self, rank: usize) -> u32 {
        match self {
            LabelScheme::Number { zero_based: true } => rank as u32,
            _ => rank as u32 + 1,
        }
    }

    /// The display text of the region of `rank` (0 = largest).
    pub fn text(&self, rank: usize) -> String {
        match self {
            LabelScheme::Number { .. } => self.id(rank).to_string(),
            LabelScheme::Letter => letters(rank as u64 + 1),
        }
    }

    /// The rank a text names under this scheme, if it is well formed.
    ///
    /// ```
    /// use som_core::LabelScheme;
    /// assert_eq!(LabelScheme::Letter.rank_of("aa"), Some(26));
    /// assert_eq!(LabelScheme::Number { zero_based: false }.rank_of("3"), Some(2));
    /// assert_eq!(LabelScheme::Number { zero_based: false }.rank_of("0"), None);
    /// ```
    pub fn rank_of(&self, text: &str) -> Option<usize> {
        match self {
            LabelScheme::Number { zero_based } => {
                if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n: usize = text.parse().ok()?;
                if *zero_based {
                    Some(n)
                } else {
                    n.checked_sub(1)
                }
            }
            LabelScheme::Letter => {
                if text.is_empty() || text.len() > 6 {
                    return None;
                }
                let mut n: u64 = 0;
                for b in text.bytes() {
                    let b = b.to_ascii_lowercase();
                    if !b.is_ascii_lowercase() {
                        return None;
                    }
                    n = n * 26 + (b - b'a' + 1) as u64;
                }
                Some(n as usize - 1)
            }
        }
    }
}

/// Bijective base-26 letters of `n ≥ 1`: 1 → a, 26 → z, 27 → aa.
fn letters(mut n: u64) -> String {
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Where a mark's label ended up relative to its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The anchor is inside the region (the normal case).
    #[default]
    Inside,
    /// The region was too small or fully covered by other regions, so the
    /// label sits just outside its boundary; the anchor is the region pixel
    /// the label points at.
    Outside,
}

/// One mark: a short text naming a region, and where it is drawn.
///
/// ```
/// use som_core::{BBox, Mark, Placement, Point};
/// let m = Mark::new(3, "3", Point::new(10, 12), 0, BBox::new(4, 6, 12, 12));
/// assert_eq!(m.placement, Placement::Inside);
/// assert!(m.overlaps.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Mark id (1-based rank by area by default).
    pub id: u32,
    /// Display text (`"3"`, `"c"`, `"aa"`).
    pub text: String,
    /// The pixel the mark names: inside the region, where a reader sees it.
    pub anchor: Point,
    /// Index of the region in the [`crate::Segmentation`].
    pub region: usize,
    /// The box the rendered label occupies.
    pub label_box: BBox,
    /// Whether the label is inside or beside its region.
    pub placement: Placement,
    /// Exact Euclidean distance from the anchor to the region's outside
    /// (over the pixels the allocator considered), in pixels.
    pub distance: f64,
    /// Ids of marks whose label boxes this one's overlaps (only when the image
    /// cannot hold every label apart).
    pub overlaps: Vec<u32>,
}

impl Mark {
    /// A mark placed inside its region with no overlaps.
    pub fn new(id: u32, text: impl Into<String>, anchor: Point, region: usize, label_box: BBox) -> Self {
        Self {
            id,
            text: text.into(),
            anchor,
            region,
            label_box,
            placement: Placement::Inside,
            distance: 0.0,
            overlaps: Vec::new(),
        }
    }
}
