//! [`SamSegmenter`]: the automatic mask generator as a [`som_core::Segmenter`], and
//! [`SamPromptSegmenter`]: SAM's predictor on given points and boxes, one region per prompt.

use std::path::Path;
use std::sync::Mutex;

use image::DynamicImage;
use serde_json::json;
use som_core::{ImageSize, Region, Segmentation, Segmenter, SomError, StageTiming};

use super::amg::{AmgOptions, AutomaticMaskGenerator};
use super::config::SamModel;
use super::sam::{check_image, PointPrompt, Prompt, Sam};
use super::SamError;
use crate::Device;

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
    /// Where [`SamSegmenter::load`] puts the model (the CPU by default; see [`Device`]).
    pub device: Device,
}

fn set_threads(num_threads: Option<i32>) -> Result<(), SamError> {
    if let Some(n) = num_threads {
        if n < 1 {
            return Err(SamError::Option {
                name: "num_threads",
                value: n.to_string(),
                reason: "must be at least 1",
            });
        }
        tch::set_num_threads(n);
    }
    Ok(())
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
    /// Loads a checkpoint of `model` size (`None`: recognised from the checkpoint, see
    /// [`Sam::load_detect`]) onto `options.device`.
    ///
    /// # Errors
    /// Checkpoint, device and option errors, see [`Sam::load_on`] and
    /// [`AmgOptions::validate`].
    pub fn load(
        path: impl AsRef<Path>,
        model: impl Into<Option<SamModel>>,
        options: SamSegmenterOptions,
    ) -> Result<Self, SamError> {
        let sam = Sam::load_on(path, model.into(), options.device)?;
        Self::new(sam, options)
    }

    /// Wraps a loaded model (which stays on the device it was loaded on).
    ///
    /// # Errors
    /// [`SamError::Option`] for options out of range.
    pub fn new(sam: Sam, options: SamSegmenterOptions) -> Result<Self, SamError> {
        set_threads(options.num_threads)?;
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

/// One object to segment with SAM's predictor: points and/or a box in image pixels.
///
/// ```
/// use som_segment::sam::ObjectPrompt;
/// // Two objects, each with the background point at (5, 5).
/// let prompts = ObjectPrompt::parse_points("40,30; 120.5,80; 5,5,0")?;
/// assert_eq!(prompts.len(), 2);
/// assert_eq!(prompts[1].points.len(), 2);
/// assert!(ObjectPrompt::parse_points("5,5,0").is_err()); // no object
/// # Ok::<(), som_segment::sam::SamError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectPrompt {
    /// Points with foreground/background labels.
    pub points: Vec<PointPrompt>,
    /// A box `[x0, y0, x1, y1]`.
    pub bbox: Option<[f64; 4]>,
    /// A label for the region (e.g. a box's label).
    pub label: Option<String>,
}

impl ObjectPrompt {
    /// A prompt of one box.
    pub fn from_box(bbox: [f64; 4], label: Option<String>) -> Self {
        ObjectPrompt {
            points: Vec::new(),
            bbox: Some(bbox),
            label,
        }
    }

    /// Parses `x,y[,label];…` (label 1: on the object, the default; 0: background): one
    /// prompt per foreground point, each with every background point.
    ///
    /// # Errors
    /// [`SamError::Prompt`] for an empty list, a malformed item (naming it), coordinates that
    /// are not finite, a label other than 0 or 1, or no foreground point.
    pub fn parse_points(s: &str) -> Result<Vec<ObjectPrompt>, SamError> {
        let bad = |m: String| Err(SamError::Prompt(m));
        let mut fg = Vec::new();
        let mut bg = Vec::new();
        for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let parts: Vec<&str> = item.split(',').map(str::trim).collect();
            if parts.len() != 2 && parts.len() != 3 {
                return bad(format!("point '{item}' is not x,y or x,y,label"));
            }
            let coord = |v: &str| v.parse::<f64>().ok().filter(|c| c.is_finite());
            let (Some(x), Some(y)) = (coord(parts[0]), coord(parts[1])) else {
                return bad(format!(
                    "point '{item}' has a coordinate that is not a finite number"
                ));
            };
            let foreground = match parts.get(2) {
                None | Some(&"1") => true,
                Some(&"0") => false,
                Some(other) => return bad(format!("point '{item}' has label '{other}' (expected 1 or 0)")),
            };
            let p = PointPrompt { x, y, foreground };
            if foreground {
                fg.push(p);
            } else {
                bg.push(p);
            }
        }
        if fg.is_empty() {
            return bad(if bg.is_empty() {
                "no points given".to_owned()
            } else {
                "no foreground point: background points only refine objects".to_owned()
            });
        }
        Ok(fg
            .into_iter()
            .map(|p| ObjectPrompt {
                points: std::iter::once(p).chain(bg.iter().copied()).collect(),
                bbox: None,
                label: None,
            })
            .collect())
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "points": self.points.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>(),
            "labels": self.points.iter().map(|p| u8::from(p.foreground)).collect::<Vec<_>>(),
            "box": self.bbox,
        })
    }
}

/// Segments the objects given by prompts with SAM's predictor: one region per prompt, in
/// prompt order (the SoM demo's interactive mode).
///
/// Each prompt is decoded with three candidate masks (`multimask_output=True`) and the one
/// with the highest predicted IoU is kept (the first on ties, as `np.argmax`), skipping
/// empty ones. Regions carry the predicted IoU as their score, the prompt's label, and the
/// prompt in `source`.
///
/// ```no_run
/// use som_core::Segmenter;
/// use som_segment::sam::{ObjectPrompt, SamPromptSegmenter, SamSegmenterOptions};
/// let prompts = ObjectPrompt::parse_points("320,200; 100,80")?;
/// let seg = SamPromptSegmenter::load("mobile_sam.pt", None, prompts, SamSegmenterOptions::default())?;
/// let regions = seg.segment(&image::open("photo.jpg")?)?;
/// assert_eq!(regions.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SamPromptSegmenter {
    sam: Mutex<Sam>,
    prompts: Vec<ObjectPrompt>,
    /// Boxes read per image (their size decides whether they fit), after `prompts`.
    boxes: Option<(serde_json::Value, crate::BoxFormat)>,
}

impl SamPromptSegmenter {
    /// Loads a checkpoint as [`SamSegmenter::load`] does (the generator options are unused).
    ///
    /// # Errors
    /// As [`SamSegmenter::load`] and [`Self::new`].
    pub fn load(
        path: impl AsRef<Path>,
        model: impl Into<Option<SamModel>>,
        prompts: Vec<ObjectPrompt>,
        options: SamSegmenterOptions,
    ) -> Result<Self, SamError> {
        check_prompts(&prompts)?;
        let sam = Sam::load_on(path, model.into(), options.device)?;
        Self::new(sam, prompts, options)
    }

    /// Wraps a loaded model.
    ///
    /// # Errors
    /// [`SamError::Prompt`] with a prompt that has neither a point nor a box,
    /// [`SamError::Option`] for a thread count below 1.
    pub fn new(sam: Sam, prompts: Vec<ObjectPrompt>, options: SamSegmenterOptions) -> Result<Self, SamError> {
        check_prompts(&prompts)?;
        set_threads(options.num_threads)?;
        Ok(SamPromptSegmenter {
            sam: Mutex::new(sam),
            prompts,
            boxes: None,
        })
    }

    /// Also prompts with every box of a boxes document (the format of
    /// [`crate::parse_boxes`]; `format` for boxes that do not say), read for each image:
    /// one region per box, after the other prompts, labelled as the box. A box that does
    /// not lie inside the image is an error.
    ///
    /// # Errors
    /// [`SamError::Prompt`] when the document is not JSON.
    pub fn with_boxes(mut self, json: &str, format: crate::BoxFormat) -> Result<Self, SamError> {
        let doc = serde_json::from_str(json)
            .map_err(|e| SamError::Prompt(format!("boxes are not valid JSON: {e}")))?;
        self.boxes = Some((doc, format));
        Ok(self)
    }

    /// The point and box prompts given directly, in region order (boxes from
    /// [`Self::with_boxes`] follow them).
    pub fn prompts(&self) -> &[ObjectPrompt] {
        &self.prompts
    }

    /// The prompts for one image: the given ones, then the boxes document's.
    fn prompts_for(&self, size: ImageSize) -> Result<Vec<ObjectPrompt>, SamError> {
        let mut prompts = self.prompts.clone();
        if let Some((doc, format)) = &self.boxes {
            let options = crate::BoxOptions {
                format: *format,
                clip: false,
            };
            let boxes =
                crate::parse_boxes_value(doc, size, &options).map_err(|e| SamError::Prompt(e.to_string()))?;
            for r in boxes.regions() {
                let b = r.bbox;
                let (x0, y0) = (f64::from(b.x), f64::from(b.y));
                let bbox = [x0, y0, x0 + f64::from(b.width), y0 + f64::from(b.height)];
                prompts.push(ObjectPrompt::from_box(bbox, r.label.clone()));
            }
        }
        if prompts.is_empty() {
            return Err(SamError::Prompt("no prompts given".to_owned()));
        }
        Ok(prompts)
    }

    fn run(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SamError> {
        let rgb = check_image(image)?;
        let size = ImageSize::new(rgb.width(), rgb.height());
        let prompts = self.prompts_for(size)?;
        let sam = self.sam.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let t = std::time::Instant::now();
        let embedding = sam.embed_image(&rgb)?;
        let encode_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = std::time::Instant::now();
        let mut regions = Vec::with_capacity(prompts.len());
        for (i, p) in prompts.iter().enumerate() {
            let prediction = sam
                .predict(
                    &embedding,
                    &Prompt {
                        points: p.points.clone(),
                        bbox: p.bbox,
                        mask_input: None,
                        multimask_output: true,
                    },
                )
                .map_err(|e| match e {
                    SamError::Prompt(m) => SamError::Prompt(format!("prompt {}: {m}", i + 1)),
                    other => other,
                })?;
            let best = (0..prediction.masks.len())
                .filter(|&k| prediction.masks[k].area() > 0)
                .fold(None, |best: Option<usize>, k| match best {
                    Some(b) if prediction.iou_predictions[b] >= prediction.iou_predictions[k] => Some(b),
                    _ => Some(k),
                })
                .ok_or_else(|| SamError::Prompt(format!("prompt {} gives only empty masks", i + 1)))?;
            let iou = f64::from(prediction.iou_predictions[best]);
            let mut region = Region::from_mask(i as u64 + 1, prediction.masks[best].clone()).with_score(iou);
            region.label = p.label.clone();
            region.source.insert("segmenter".into(), json!("sam"));
            region.source.insert("predicted_iou".into(), json!(iou));
            region.source.insert("prompt".into(), p.describe());
            regions.push(region);
        }
        let stages = vec![
            StageTiming {
                stage: "sam_encoder".into(),
                ms: encode_ms,
            },
            StageTiming {
                stage: "sam_decoder".into(),
                ms: t.elapsed().as_secs_f64() * 1e3,
            },
        ];
        let seg = Segmentation::new(size, regions).map_err(|e| SamError::Image(e.to_string()))?;
        Ok((seg, stages))
    }
}

fn check_prompts(prompts: &[ObjectPrompt]) -> Result<(), SamError> {
    if let Some(i) = prompts
        .iter()
        .position(|p| p.points.is_empty() && p.bbox.is_none())
    {
        return Err(SamError::Prompt(format!(
            "prompt {} has neither a point nor a box",
            i + 1
        )));
    }
    Ok(())
}

impl Segmenter for SamPromptSegmenter {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        Ok(self.run(image)?.0)
    }

    /// Also reports `sam_encoder` and `sam_decoder` times.
    fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
        Ok(self.run(image)?)
    }

    fn name(&self) -> &str {
        "sam"
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn points_parse_into_one_prompt_per_object() {
        let p = ObjectPrompt::parse_points(" 10,20 ;30.5, 40,1; 1e1,2,0;").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].points.len(), 2);
        assert_eq!(
            p[1].points,
            vec![
                PointPrompt {
                    x: 30.5,
                    y: 40.0,
                    foreground: true
                },
                PointPrompt {
                    x: 10.0,
                    y: 2.0,
                    foreground: false
                },
            ]
        );
        for bad in [
            "", ";;", "1,2,3", "1", "a,b", "1,2,1,1", "nan,1", "inf,2", "1,2,-1", "3,4,0",
        ] {
            assert!(
                matches!(ObjectPrompt::parse_points(bad), Err(SamError::Prompt(_))),
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// Any text: a typed error or prompts that each hold exactly one foreground point,
        /// all with finite coordinates.
        #[test]
        fn parsing_points_never_panics(s in ".{0,60}", numbers in prop::collection::vec((any::<f64>(), any::<f64>(), 0u8..3), 0..6)) {
            for text in [s, numbers.iter().map(|(x, y, l)| format!("{x},{y},{l}")).collect::<Vec<_>>().join(";")] {
                if let Ok(prompts) = ObjectPrompt::parse_points(&text) {
                    prop_assert!(!prompts.is_empty());
                    for p in prompts {
                        prop_assert_eq!(p.points.iter().filter(|q| q.foreground).count(), 1);
                        prop_assert!(p.points.iter().all(|q| q.x.is_finite() && q.y.is_finite()));
                    }
                }
            }
        }
    }
}
