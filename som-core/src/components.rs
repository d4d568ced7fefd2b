//! Connected-component labelling of a pixel grid, with 4- or 8-connectivity.
//!
//! One implementation for every stage that needs it: splitting a label map
//! into connected pieces (`som-segment`'s classic segmenter), one mark per
//! piece of a mask (`som-marks`), filling holes and dropping islands (SAM's
//! automatic mask generator, which renumbers the components in OpenCV's order).
//!
//! The grid is scanned once into runs (maximal stretches of one row that
//! belong together); runs of consecutive rows that touch are joined with
//! union-find (path halving, the run seen first is the root), so the work is
//! proportional to the number of pixels plus the number of runs. Components are
//! numbered from 1 in order of their first pixel in row-major order, as
//! `skimage.measure.label` and `scipy.ndimage.label` number them; 0 is the
//! background.

use crate::{BBox, ImageSize, Mask, SomError};

/// Which neighbours of a pixel it is connected to.
///
/// ```
/// use som_core::Connectivity;
/// assert_eq!(Connectivity::default(), Connectivity::Eight);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Connectivity {
    /// Left, right, up and down: pieces touching only at a corner stay apart.
    Four,
    /// The four edge neighbours and the four diagonal ones (OpenCV's and
    /// skimage's default for binary images).
    #[default]
    Eight,
}

/// The connected components of a grid: one label per pixel (0 = background,
/// components `1..=count` in order of first pixel, row-major), each
/// component's area and bounding box.
///
/// # Example
/// ```
/// use som_core::{Components, Connectivity, ImageSize};
/// let size = ImageSize::new(4, 3);
/// #[rustfmt::skip]
/// let bits = [
///     1, 0, 0, 1,
///     0, 1, 0, 1,
///     0, 0, 0, 0,
/// ];
/// let eight = Components::of_binary(size, &bits, Connectivity::Eight)?;
/// assert_eq!(eight.count(), 2);
/// assert_eq!(eight.labels(), &[1, 0, 0, 2, 0, 1, 0, 2, 0, 0, 0, 0]);
/// assert_eq!(eight.areas(), &[8, 2, 2]); // background first
/// // The diagonal pair is two pieces when only edges connect.
/// assert_eq!(Components::of_binary(size, &bits, Connectivity::Four)?.count(), 3);
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    /// The labelled grid's size.
    size: ImageSize,
    /// Where the grid lies in the image its masks belong to.
    frame: BBox,
    /// The size of that image.
    image: ImageSize,
    /// One label per grid pixel, row-major.
    labels: Vec<u32>,
    /// Pixels per label, index 0 the background.
    areas: Vec<u64>,
    /// Bounding box of each component (index `k - 1`), grid coordinates.
    boxes: Vec<BBox>,
}

/// A maximal stretch `x0..x1` of one row whose pixels belong together.
#[derive(Debug, Clone, Copy)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
}

impl Components {
    /// The components of the non-zero pixels of `bits` (one byte per pixel,
    /// row-major, `size.width` per row).
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when `bits` does not hold `width × height`
    /// bytes or the grid has `u32::MAX` pixels or more.
    ///
    /// ```
    /// use som_core::{Components, Connectivity, ImageSize};
    /// let c = Components::of_binary(ImageSize::new(3, 1), &[7, 0, 255], Connectivity::Eight)?;
    /// assert_eq!(c.labels(), &[1, 0, 2]);
    /// assert!(Components::of_binary(ImageSize::new(3, 2), &[1; 5], Connectivity::Four).is_err());
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn of_binary(size: ImageSize, bits: &[u8], connectivity: Connectivity) -> Result<Self, SomError> {
        check_len(size, bits.len())?;
        Ok(Self::label(size, bits, connectivity, |&v| v != 0, |_, _| true))
    }

    /// The components of a label map: every pixel belongs to a component,
    /// and neighbours are connected when their values are equal (a value that
    /// appears in several separate places gives several components; no
    /// background, so `areas()[0]` is 0).
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when `values` does not hold `width × height`
    /// values or the grid has `u32::MAX` pixels or more.
    ///
    /// ```
    /// use som_core::{Components, Connectivity, ImageSize};
    /// // Value 5 sits in two opposite corners: two components.
    /// let c = Components::of_values(ImageSize::new(3, 2), &[5, 9, 9, 9, 9, 5], Connectivity::Four)?;
    /// assert_eq!(c.labels(), &[1, 2, 2, 2, 2, 3]);
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn of_values<T: PartialEq>(
        size: ImageSize,
        values: &[T],
        connectivity: Connectivity,
    ) -> Result<Self, SomError> {
        check_len(size, values.len())?;
        Ok(Self::label(size, values, connectivity, |_| true, |a, b| a == b))
    }

    /// The components of `mask`, labelled on its bounding-box crop (so
    /// [`Components::labels`] is `bbox.width × bbox.height`); the masks
    /// ([`Components::masks`]) are in the image's coordinates.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the mask's box has `u32::MAX` pixels or more.
    ///
    /// ```
    /// use som_core::{BBox, Components, Connectivity, ImageSize, Mask};
    /// let size = ImageSize::new(20, 10);
    /// let m = Mask::from_fn(size, |x, y| (2..5).contains(&y) && (x < 3 || x > 15));
    /// let c = Components::of_mask(&m, Connectivity::Eight)?;
    /// assert_eq!(c.count(), 2);
    /// let pieces = c.masks()?;
    /// assert_eq!(pieces[1].bbox(), BBox::new(16, 2, 4, 3));
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn of_mask(mask: &Mask, connectivity: Connectivity) -> Result<Self, SomError> {
        let b = mask.bbox();
        let size = ImageSize::new(b.width, b.height);
        check_len(size, mask.crop_data().len())?;
        let mut c = Self::label(size, mask.crop_data(), connectivity, |&v| v != 0, |_, _| true);
        c.frame = b;
        c.image = mask.size();
        Ok(c)
    }

    /// The labelled grid's size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// One label per pixel, row-major: 0 for background, components
    /// `1..=count` in order of their first pixel.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Consumes the labelling and returns the labels.
    pub fn into_labels(self) -> Vec<u32> {
        self.labels
    }

    /// The number of components.
    pub fn count(&self) -> u32 {
        self.boxes.len() as u32
    }

    /// Pixels per label: index 0 counts the background, index `k` component
    /// `k` (like OpenCV's `CC_STAT_AREA`).
    pub fn areas(&self) -> &[u64] {
        &self.areas
    }

    /// The bounding box of component `k` (`1..=count`) in grid coordinates,
    /// `None` for 0 and labels above the count.
    ///
    /// ```
    /// use som_core::{BBox, Components, Connectivity, ImageSize};
    /// let c = Components::of_binary(ImageSize::new(3, 2), &[0, 1, 1, 0, 0, 1], Connectivity::Four)?;
    /// assert_eq!(c.bbox(1), Some(BBox::new(1, 0, 2, 2)));
    /// assert_eq!(c.bbox(2), None);
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn bbox(&self, k: u32) -> Option<BBox> {
        self.boxes.get((k as usize).checked_sub(1)?).copied()
    }

    /// One mask per component, in label order, in the coordinates of the
    /// image the grid belongs to (the mask's image for
    /// [`Components::of_mask`], the grid itself otherwise).
    ///
    /// # Errors
    /// Only if a mask cannot be built, which does not happen for a labelling
    /// made by this type.
    pub fn masks(&self) -> Result<Vec<Mask>, SomError> {
        let w = self.size.width as usize;
        let mut crops: Vec<Vec<u8>> = self.boxes.iter().map(|b| vec![0u8; b.area() as usize]).collect();
        for (y, row) in self.labels.chunks_exact(w.max(1)).enumerate() {
            for (x, &l) in row.iter().enumerate() {
                if l == 0 {
                    continue;
                }
                let b = self.boxes[l as usize - 1];
                let i = (y - b.y as usize) * b.width as usize + (x - b.x as usize);
                crops[l as usize - 1][i] = 1;
            }
        }
        self.boxes
            .iter()
            .zip(crops)
            .map(|(b, crop)| {
                let at = BBox::new(self.frame.x + b.x, self.frame.y + b.y, b.width, b.height);
                Mask::from_crop(self.image, at, &crop)
            })
            .collect()
    }

    /// Labels a checked grid: `member` says whether a pixel belongs to any
    /// component, `joins` whether two members next to each other belong to
    /// the same one.
    fn label<T>(
        size: ImageSize,
        values: &[T],
        connectivity: Connectivity,
        member: impl Fn(&T) -> bool,
        joins: impl Fn(&T, &T) -> bool,
    ) -> Self {
        let (w, h) = (size.width as usize, size.height as usize);
        // Runs, row by row; `rows[y]..rows[y + 1]` are row y's.
        let mut runs: Vec<Run> = Vec::new();
        let mut rows = Vec::with_capacity(h + 1);
        rows.push(0usize);
        for y in 0..h {
            let row = &values[y * w..(y + 1) * w];
            let mut x = 0;
            while x < w {
                if !member(&row[x]) {
                    x += 1;
                    continue;
                }
                let x0 = x;
                x += 1;
                while x < w && member(&row[x]) && joins(&row[x0], &row[x]) {
                    x += 1;
                }
                runs.push(Run {
                    y: y as u32,
                    x0: x0 as u32,
                    x1: x as u32,
                });
            }
            rows.push(runs.len());
        }
        // Join runs of consecutive rows that touch: overlapping columns (4),
        // or columns one apart as well (8).
        let reach = match connectivity {
            Connectivity::Four => 0,
            Connectivity::Eight => 1,
        };
        let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
        let at = |r: &Run, x: u32| &values[r.y as usize * w + x as usize];
        for y in 1..h {
            let (above, here) = (rows[y - 1]..rows[y], rows[y]..rows[y + 1]);
            let mut first = above.start;
            for c in here {
                let run = runs[c];
                // Runs above ending before this one's reach cannot touch it or any later run.
                while first < above.end && runs[first].x1 + reach <= run.x0 {
                    first += 1;
                }
                let mut p = first;
                while p < above.end && runs[p].x0 < run.x1 + reach {
                    if joins(at(&runs[p], runs[p].x0), at(&run, run.x0)) {
                        union(&mut parent, p as u32, c as u32);
                    }
                    p += 1;
                }
            }
        }
        // Number components by their first run (the root, the smallest index).
        let mut run_label = vec![0u32; runs.len()];
        let mut areas = vec![size.pixels()];
        let mut boxes: Vec<BBox> = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            let root = find(&mut parent, r as u32) as usize;
            let l = if root == r {
                areas.push(0);
                boxes.push(BBox::new(run.x0, run.y, run.x1 - run.x0, 1));
                areas.len() as u32 - 1
            } else {
                run_label[root]
            };
            run_label[r] = l;
            let len = u64::from(run.x1 - run.x0);
            areas[l as usize] += len;
            areas[0] -= len;
            let b = &mut boxes[l as usize - 1];
            *b = BBox::from_xyxy(b.x.min(run.x0), b.y, (b.right() as u32).max(run.x1), run.y + 1);
        }
        let mut labels = vec![0u32; w * h];
        for (run, &l) in runs.iter().zip(&run_label) {
            let row = run.y as usize * w;
            labels[row + run.x0 as usize..row + run.x1 as usize].fill(l);
        }
        Self {
            size,
            frame: size.full_box(),
            image: size,
            labels,
            areas,
            boxes,
        }
    }
}

fn check_len(size: ImageSize, len: usize) -> Result<(), SomError> {
    // Below 2^32 - 1 pixels, labels, run ends plus one and run counts fit in u32.
    if len as u64 != size.pixels() || size.pixels() >= u64::from(u32::MAX) {
        return Err(SomError::MaskSize {
            expected: size,
            found: format!("{len} values to label"),
        });
    }
    Ok(())
}

/// The root of `i`, halving the path on the way.
fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[i as usize];
        parent[i as usize] = parent[p as usize];
        i = p;
    }
    i
}

/// Joins the sets of `a` and `b`; the smaller root stays the root.
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_reach_diagonally_only_with_eight() {
        // Runs touching at a corner; a U whose arms meet in the last row.
        #[rustfmt::skip]
        let bits = [
            1, 1, 0, 0, 0, 0,
            0, 0, 1, 1, 0, 0,
            1, 0, 1, 0, 0, 1,
            1, 0, 1, 0, 0, 1,
            1, 1, 1, 0, 1, 0,
        ];
        let size = ImageSize::new(6, 5);
        let eight = Components::of_binary(size, &bits, Connectivity::Eight).unwrap();
        #[rustfmt::skip]
        assert_eq!(eight.labels(), &[
            1, 1, 0, 0, 0, 0,
            0, 0, 1, 1, 0, 0,
            1, 0, 1, 0, 0, 2,
            1, 0, 1, 0, 0, 2,
            1, 1, 1, 0, 2, 0,
        ]);
        // The left arm starts as a component of its own and is merged into
        // the first one by the bottom row.
        let four = Components::of_binary(size, &bits, Connectivity::Four).unwrap();
        #[rustfmt::skip]
        assert_eq!(four.labels(), &[
            1, 1, 0, 0, 0, 0,
            0, 0, 2, 2, 0, 0,
            2, 0, 2, 0, 0, 3,
            2, 0, 2, 0, 0, 3,
            2, 2, 2, 0, 4, 0,
        ]);
        assert_eq!(four.count(), 4);
        assert_eq!(four.areas(), &[16, 2, 9, 2, 1]);
        assert_eq!(four.bbox(2), Some(BBox::new(0, 1, 4, 4)));
        assert_eq!(four.bbox(5), None);
        assert_eq!(four.bbox(0), None);
    }

    #[test]
    fn empty_grids_have_no_components() {
        for size in [ImageSize::new(0, 0), ImageSize::new(0, 5), ImageSize::new(5, 0)] {
            let c = Components::of_binary(size, &[], Connectivity::Eight).unwrap();
            assert_eq!(c.count(), 0);
            assert!(c.labels().is_empty());
            assert!(c.masks().unwrap().is_empty());
        }
        let c = Components::of_mask(&Mask::empty(ImageSize::new(4, 4)), Connectivity::Four).unwrap();
        assert_eq!(c.count(), 0);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let e = Components::of_values(ImageSize::new(2, 2), &[1u32; 3], Connectivity::Four).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mask size mismatch: expected 2x2, found 3 values to label"
        );
    }
}
