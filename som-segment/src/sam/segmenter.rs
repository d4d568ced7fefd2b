//! [`SamSegmenter`]: the automatic mask generator as a [`som_core::Segmenter`].

use std::path::Path;
use std::sync::Mutex;

use image::DynamicImage;
use serde_json::json;
use som_core::{ImageSize, Region, Segmentation, Segmenter, SomError, StageTiming};

use super::amg::{AmgOptions, AutomaticMaskGenerator};
use super::config::SamModel;
use super::sam::{check_image, Sam};
use super::SamError;

/// How a [`SamSegmenter`] runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SamSegmenterOptions {
    /// The automatic mask generator's options.
    pub amg: AmgOptions,
    /// No progress on stderr (progress is printed by default).
    pub quiet: bool,
    /// LibTorch intra-op threads (`tch::set_num_threads`); `None` leaves LibTorch's default
    /// (one per core).
    pub num_threads: Option<i32>,
}

/// Segments images with SAM's automatic mask generator.
///
/// The model's tensors are `Send` but not `Sync`, so the model sits behind a `Mutex`: the
/// segmenter can be shared between threads, and calls run one at a time (each one already
/// uses every core through LibTorch).
///
/// Regions are numbered from 1 in the generator's output order; each carries the record's
/// `predicted_iou` as its score and `predicted_iou`, `stability_score`, `point_coords` and
/// `crop_box` in `source`.
///
/// ```no_run
/// use som_core::Segmenter;
/// use som_segment::sam::{SamModel, SamSegmenter, SamSegmenterOptions};
/// let seg = SamSegmenter::load("sam_vit_b_01ec64.pth", SamModel::VitB, SamSegmenterOptions::default())?;
/// let regions = seg.segment(&image::open("photo.jpg")?)?;
/// println!("{} regions", regions.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SamSegmenter {
    sam: Mutex<Sam>,
    generator: AutomaticMaskGenerator,
    quiet: bool,
}

impl SamSegmenter {
    /// Loads a checkpoint of `model` size.
    ///
    /// # Errors
    /// Checkpoint and option errors, see [`Sam::load`] and [`AmgOptions::validate`].
    pub fn load(
        path: impl AsRef<Path>,
        model: SamModel,
        options: SamSegmenterOptions,
    ) -> Result<Self, SamError> {
        Self::new(Sam::load(path, model)?, options)
    }

    /// Wraps a loaded model.
    ///
    /// # Errors
    /// [`SamError::Option`] for options out of range.
    pub fn new(sam: Sam, options: SamSegmenterOptions) -> Result<Self, SamError> {
        if let Some(n) = options.num_threads {
            if n < 1 {
                return Err(SamError::Option {
                    name: "num_threads",
                    value: n.to_string(),
                    reason: "must be at least 1",
                });
            }
            tch::set_num_threads(n);
        }
        let generator = AutomaticMaskGenerator::new(options.amg)?.quiet(options.quiet);
        Ok(SamSegmenter {
            sam: Mutex::new(sam),
            generator,
            quiet: options.quiet,
        })
    }

    /// The generator (and through it, the options).
    pub fn generator(&self) -> &AutomaticMaskGenerator {
        &self.generator
    }

    fn run(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SamError> {
        let rgb = check_image(image)?;
        let sam = self.sam.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (records, timings) = self.generator.generate_timed(&sam, &rgb)?;
        if !self.quiet {
            eprintln!(
                "sam: {} masks; image encoder {:.0} ms, mask decoder {:.0} ms, post-processing {:.0} ms",
                records.len(),
                timings.encode_ms,
                timings.decode_ms,
                timings.post_ms
            );
        }
        let size = ImageSize::new(rgb.width(), rgb.height());
        let mut regions = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let mask = r.rle().map_err(|e| SamError::Image(e.to_string()))?.to_mask();
            let mut region = Region::from_mask(i as u64 + 1, mask).with_score(r.predicted_iou);
            region.source.insert("segmenter".into(), json!("sam"));
            region
                .source
                .insert("predicted_iou".into(), json!(r.predicted_iou));
            region
                .source
                .insert("stability_score".into(), json!(r.stability_score));
            region.source.insert("point_coords".into(), json!(r.point_coords));
            region.source.insert("crop_box".into(), json!(r.crop_box));
            regions.push(region);
        }
        let stages = vec![
            StageTiming {
                stage: "sam_encoder".into(),
                ms: timings.encode_ms,
            },
            StageTiming {
                stage: "sam_decoder".into(),
                ms: timings.decode_ms,
            },
            StageTiming {
                stage: "sam_postprocess".into(),
                ms: timings.post_ms,
            },
        ];
        let seg = Segmentation::new(size, regions).map_err(|e| SamError::Image(e.to_string()))?;
        Ok((seg, stages))
    }
}

impl Segmenter for SamSegmenter {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        Ok(self.run(image)?.0)
    }

    /// Also reports `sam_encoder`, `sam_decoder` and `sam_postprocess` times.
    fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
        Ok(self.run(image)?)
    }

    fn name(&self) -> &str {
        "sam"
    }
}
