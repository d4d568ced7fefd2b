//! The `classic` segmenter: Felzenszwalb–Huttenlocher, then Set-of-Mark
//! post-processing that turns hundreds of fragments into a few dozen regions
//! a model can talk about.
//!
//! The post-processing works on the region adjacency graph of the label map
//! (4-connected boundaries), with per-region mean CIELAB colour and texture
//! (mean ΔE76 between 4-neighbour pixels inside the region) and, per
//! boundary, its length and mean contrast (ΔE76 between the pixels on either
//! side). Two regions' *dissimilarity* is
//! `ΔE(mean colours) + boundary_weight × max(0, boundary contrast − mean
//! texture of the two)`: a boundary counts only where it is stronger than the
//! texture around it, so wood grain or fur merges while object edges hold.
//! Steps, in order:
//!
//! 1. **Tiny regions** (area below `min_area` of the image) merge into their
//!    most similar neighbour, smallest first.
//! 2. **Slivers** (mean width `2·area/perimeter` below `sliver_width` pixels)
//!    merge into the neighbour they share the longest boundary with.
//! 3. **Holes**: a region with a single neighbour that does not touch the
//!    image border and is smaller than `hole_area` of the image is filled
//!    (merged into the region around it).
//! 4. **Target count**: while there are more than `max_regions` regions, the
//!    pair with the lowest `dissimilarity × sqrt(Aa·Ab / (Aa + Ab) / image
//!    area)` merges (small and similar first, so large distinct objects
//!    survive); then pairs whose dissimilarity is below `merge_delta_e` go
//!    on merging while there are more than `min_regions`, and pairs below
//!    `same_delta_e` (hardly distinguishable) merge whatever the count.
//! 5. Holes left by step 4 are filled (while above `min_regions`), and, if
//!    `split_disconnected` is set, regions are split into 4-connected pieces
//!    (pieces below `min_area` merge into their most similar neighbour).
//!
//! Images larger than `max_side` (default 1024 px) are segmented at that
//! size and the labels scaled back up. Every pixel ends up in exactly one
//! region; regions are numbered `1..` in order of first appearance
//! (row-major).

mod lab;
mod rag;

use image::DynamicImage;
use som_core::{Components, Connectivity, ImageSize, Segmentation, Segmenter, SomError};

use crate::error::SegmentError;
use crate::felzenszwalb::{felzenszwalb, FelzenszwalbParams};
use crate::labels::LabelMap;
use lab::lab_image;
use rag::Rag;

/// Parameters of the [`Classic`] segmenter.
///
/// ```
/// use som_segment::ClassicParams;
/// let p = ClassicParams { max_regions: 30, ..ClassicParams::default() };
/// p.validate()?;
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicParams {
    /// The first stage (default [`FelzenszwalbParams::REFERENCE`]:
    /// scale 100, sigma 0.5, min_size 50).
    pub felzenszwalb: FelzenszwalbParams,
    /// Merging of merely similar neighbours (see `merge_delta_e`) stops at
    /// this many regions (default 10); near-identical neighbours (see
    /// `same_delta_e`), tiny regions, slivers and holes merge regardless.
    pub min_regions: usize,
    /// At most this many regions come out, unless tiny-region, sliver and
    /// hole clean-up alone cannot get there (default 48).
    pub max_regions: usize,
    /// Between `min_regions` and `max_regions`, neighbours whose
    /// dissimilarity is below this (ΔE76 units) still merge (default 12).
    pub merge_delta_e: f64,
    /// Neighbours whose dissimilarity is below this (ΔE76 units) merge even
    /// below `min_regions` (default 4: hardly distinguishable).
    pub same_delta_e: f64,
    /// Weight of the boundary contrast (beyond the regions' texture) in the
    /// dissimilarity (default 1).
    pub boundary_weight: f64,
    /// Regions smaller than this fraction of the image merge into their most
    /// similar neighbour (default 0.002, i.e. 0.2 %).
    pub min_area: f64,
    /// Enclosed regions smaller than this fraction of the image are filled
    /// (default 0.01).
    pub hole_area: f64,
    /// Regions whose mean width `2·area/perimeter` is below this many pixels
    /// are slivers and merge away (default 3).
    pub sliver_width: f64,
    /// Split regions into 4-connected pieces at the end (default false;
    /// Felzenszwalb regions are 8-connected, so this only separates pieces
    /// that touch diagonally).
    pub split_disconnected: bool,
    /// Images whose longer side exceeds this many pixels are segmented at
    /// this size (area-averaged downscale) and the labels scaled back up
    /// (nearest neighbour), so big photos stay fast and get regions of the
    /// same relative size (default 1024; `None`: always native size).
    pub max_side: Option<u32>,
}

impl Default for ClassicParams {
    fn default() -> Self {
        Self {
            felzenszwalb: FelzenszwalbParams::REFERENCE,
            min_regions: 10,
            max_regions: 48,
            merge_delta_e: 12.0,
            same_delta_e: 4.0,
            boundary_weight: 1.0,
            min_area: 0.002,
            hole_area: 0.01,
            sliver_width: 3.0,
            split_disconnected: false,
            max_side: Some(1024),
        }
    }
}

impl ClassicParams {
    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`SegmentError::Param`] naming the first bad parameter.
    pub fn validate(&self) -> Result<(), SegmentError> {
        self.felzenszwalb.validate()?;
        if self.max_regions == 0 {
            return Err(SegmentError::param("max_regions", "0 must be at least 1"));
        }
        if self.max_side == Some(0) {
            return Err(SegmentError::param("max_side", "0 must be at least 1"));
        }
        if self.min_regions > self.max_regions {
            return Err(SegmentError::param(
                "min_regions",
                format!("{} is above max_regions {}", self.min_regions, self.max_regions),
            ));
        }
        let fractions = [("min_area", self.min_area), ("hole_area", self.hole_area)];
        for (name, v) in fractions {
            if !(0.0..=1.0).contains(&v) {
                return Err(SegmentError::param(
                    name,
                    format!("{v} must be a fraction of the image in [0, 1]"),
                ));
            }
        }
        let non_negative = [
            ("merge_delta_e", self.merge_delta_e),
            ("same_delta_e", self.same_delta_e),
            ("boundary_weight", self.boundary_weight),
            ("sliver_width", self.sliver_width),
        ];
        for (name, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(SegmentError::param(
                    name,
                    format!("{v} must be a finite number >= 0"),
                ));
            }
        }
        Ok(())
    }
}

/// Felzenszwalb segmentation plus SoM post-processing: the default segmenter
/// of `som mark` and `som segment` (see the module documentation for the
/// steps).
///
/// ```
/// use image::{DynamicImage, Rgb, RgbImage};
/// use som_core::Segmenter;
/// use som_segment::Classic;
/// // Four flat quadrants with a little noise.
/// let img = RgbImage::from_fn(64, 64, |x, y| {
///     let n = ((x * 7 + y * 13) % 5) as u8;
///     match (x < 32, y < 32) {
///         (true, true) => Rgb([200 + n, 30, 30]),
///         (false, true) => Rgb([30, 200 + n, 30]),
///         (true, false) => Rgb([30, 30, 200 + n]),
///         (false, false) => Rgb([220 + n, 220, 40]),
///     }
/// });
/// let seg = Classic::default().segment(&DynamicImage::ImageRgb8(img))?;
/// assert_eq!(seg.regions().len(), 4);
/// assert!(seg.regions().iter().all(|r| r.area() == 32 * 32));
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Classic {
    /// The parameters.
    pub params: ClassicParams,
}

impl Classic {
    /// A classic segmenter with these parameters.
    pub fn new(params: ClassicParams) -> Self {
        Self { params }
    }

    /// Segments `image` into a label map (regions `0..count`).
    ///
    /// # Errors
    /// [`SegmentError::Param`] for bad parameters, [`SegmentError::Image`] for
    /// images Felzenszwalb cannot take.
    pub fn label_map(&self, image: &DynamicImage) -> Result<LabelMap, SegmentError> {
        self.params.validate()?;
        let (w, h) = (image.width(), image.height());
        let longer = w.max(h);
        match self.params.max_side {
            Some(max) if longer > max && w > 0 && h > 0 => {
                let f = max as f64 / longer as f64;
                let (sw, sh) = (
                    ((w as f64 * f).round() as u32).max(1),
                    ((h as f64 * f).round() as u32).max(1),
                );
                let small = image.resize_exact(sw, sh, image::imageops::FilterType::Triangle);
                let map = self.label_map_native(&small)?;
                Ok(upscale_labels(&map, ImageSize::new(w, h)))
            }
            _ => self.label_map_native(image),
        }
    }

    fn label_map_native(&self, image: &DynamicImage) -> Result<LabelMap, SegmentError> {
        let base = felzenszwalb(image, &self.params.felzenszwalb)?;
        let rgb = image.to_rgb8();
        let lab = lab_image(rgb.as_raw());
        postprocess(&base, &lab, &self.params)
    }
}

impl Segmenter for Classic {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        self.label_map(image)?.to_segmentation()
    }

    fn name(&self) -> &str {
        "classic"
    }
}

/// Nearest-neighbour upscaling of a label map to `size` (pixel centres
/// mapped back), renumbered by first appearance.
fn upscale_labels(map: &LabelMap, size: ImageSize) -> LabelMap {
    let src = map.size();
    let (sw, sh) = (src.width as u64, src.height as u64);
    let xs: Vec<usize> = (0..size.width as u64)
        .map(|x| ((2 * x + 1) * sw / (2 * size.width as u64)).min(sw - 1) as usize)
        .collect();
    let mut labels = Vec::with_capacity(size.pixels() as usize);
    for y in 0..size.height as u64 {
        let sy = ((2 * y + 1) * sh / (2 * size.height as u64)).min(sh - 1) as usize;
        let row = &map.labels()[sy * sw as usize..(sy + 1) * sw as usize];
        labels.extend(xs.iter().map(|&sx| row[sx]));
    }
    let mut out = LabelMap::from_parts(size, labels, map.count());
    out.relabel_sequential();
    out
}

/// Splits every region of `map` into 4-connected pieces (labels renumbered by
/// first appearance).
///
/// # Errors
/// [`SegmentError::Core`] for a map of `u32::MAX` pixels or more (see
/// [`Components::of_values`]).
///
/// ```
/// use som_core::ImageSize;
/// use som_segment::{split_connected, LabelMap};
/// // Label 0 sits in two opposite corners: two pieces.
/// let map = LabelMap::new(ImageSize::new(3, 2), vec![0, 1, 1, 1, 1, 0])?;
/// let split = split_connected(&map)?;
/// assert_eq!(split.count(), 3);
/// assert_eq!(split.labels(), &[0, 1, 1, 1, 1, 2]);
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
pub fn split_connected(map: &LabelMap) -> Result<LabelMap, SegmentError> {
    let pieces = Components::of_values(map.size(), map.labels(), Connectivity::Four)?;
    let count = pieces.count();
    // Every pixel is in a piece (no background), so labels start at 1.
    let labels = pieces.into_labels().into_iter().map(|l| l - 1).collect();
    Ok(LabelMap::from_parts(map.size(), labels, count))
}

/// The SoM post-processing of a label map (see the module documentation).
fn postprocess(base: &LabelMap, lab: &[[f32; 3]], p: &ClassicParams) -> Result<LabelMap, SegmentError> {
    let size: ImageSize = base.size();
    let total = size.pixels() as f64;
    let min_area = (p.min_area * total).ceil() as u64;
    let hole_area = (p.hole_area * total).ceil() as u64;
    let mut rag = Rag::build(base, lab, p.boundary_weight);
    rag.merge_tiny(min_area, 1);
    rag.merge_slivers(p.sliver_width, 1);
    rag.fill_holes(hole_area, 1);
    rag.merge_to_count(p.min_regions, p.max_regions, p.merge_delta_e, p.same_delta_e);
    rag.fill_holes(hole_area, p.min_regions);
    let merged = rag.relabel(base);
    if !p.split_disconnected {
        return Ok(merged);
    }
    let pieces = split_connected(&merged)?;
    if pieces.count() == merged.count() {
        return Ok(merged);
    }
    let mut rag = Rag::build(&pieces, lab, p.boundary_weight);
    rag.merge_tiny(min_area, 1);
    Ok(rag.relabel(&pieces))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_params() {
        for p in [
            ClassicParams {
                max_regions: 0,
                ..Default::default()
            },
            ClassicParams {
                min_regions: 70,
                max_regions: 60,
                ..Default::default()
            },
            ClassicParams {
                min_area: 2.0,
                ..Default::default()
            },
            ClassicParams {
                sliver_width: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(p.validate(), Err(SegmentError::Param { .. })), "{p:?}");
        }
    }

    #[test]
    fn upscaled_labels_keep_the_layout() {
        let map = LabelMap::new(ImageSize::new(2, 2), vec![0, 1, 2, 2]).expect("map");
        // Column 2's centre (2.5 of 5) maps onto the source boundary and rounds right.
        let up = upscale_labels(&map, ImageSize::new(5, 4));
        assert_eq!(up.count(), 3);
        assert_eq!(
            up.labels(),
            &[0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
        );
    }

    #[test]
    fn big_images_are_segmented_downscaled() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 200, |x, _| {
            if x < 150 {
                image::Rgb([200, 30, 30])
            } else {
                image::Rgb([30, 30, 200])
            }
        }));
        let p = ClassicParams {
            max_side: Some(60),
            ..Default::default()
        };
        let map = Classic::new(p).label_map(&img).expect("segments");
        assert_eq!(map.size(), ImageSize::new(300, 200));
        assert_eq!(map.count(), 2);
        assert_eq!(map.get(149, 100), Some(0));
        assert_eq!(map.get(150, 100), Some(1));
    }

    #[test]
    fn hole_is_filled() {
        // A 3x3 dot inside a 40x40 square: one neighbour, off the border.
        let size = ImageSize::new(40, 40);
        let labels: Vec<u32> = (0..1600)
            .map(|i| ((10..13).contains(&(i % 40)) && (10..13).contains(&(i / 40))) as u32)
            .collect();
        let map = LabelMap::new(size, labels).expect("map");
        let lab = vec![[50.0f32, 0.0, 0.0]; 1600];
        let p = ClassicParams {
            min_regions: 1,
            min_area: 0.0,
            sliver_width: 0.0,
            merge_delta_e: 0.0,
            same_delta_e: 0.0,
            ..Default::default()
        };
        assert_eq!(postprocess(&map, &lab, &p).unwrap().count(), 1);
        let p = ClassicParams { hole_area: 0.0, ..p };
        assert_eq!(postprocess(&map, &lab, &p).unwrap().count(), 2);
    }

    #[test]
    fn sliver_merges_into_longest_boundary() {
        // Columns: 0..10 label 0, column 10 label 1 (a 1-px line), 11..20 label 2.
        let size = ImageSize::new(20, 20);
        let labels: Vec<u32> = (0..400)
            .map(|i| match i % 20 {
                0..=9 => 0,
                10 => 1,
                _ => 2,
            })
            .collect();
        let map = LabelMap::new(size, labels).expect("map");
        let lab: Vec<[f32; 3]> = (0..400)
            .map(|i| {
                if i % 20 < 10 {
                    [20.0, 0.0, 0.0]
                } else {
                    [80.0, 0.0, 0.0]
                }
            })
            .collect();
        let p = ClassicParams {
            min_regions: 1,
            min_area: 0.0,
            hole_area: 0.0,
            merge_delta_e: 0.0,
            same_delta_e: 0.0,
            ..Default::default()
        };
        let out = postprocess(&map, &lab, &p).unwrap();
        assert_eq!(out.count(), 2);
        // A tie (20 pixels on each side): the lower index, the left region, wins.
        assert_eq!(out.get(10, 5), out.get(0, 5));
        assert_ne!(out.get(10, 5), out.get(15, 5));
    }
}
