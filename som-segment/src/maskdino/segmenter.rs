//! [`MaskDinoSegmenter`]: MaskDINO's instance, panoptic or semantic output as a
//! [`som_core::Segmenter`].

use std::path::Path;
use std::sync::Mutex;

use image::DynamicImage;
use serde_json::json;
use som_core::{BBox, ImageSize, Mask, Region, Segmentation, Segmenter, SomError, StageTiming};

use super::config::{Dataset, MaskDinoConfig, MaskDinoModel};
use super::maskdino::{check_size, MaskDino, Outputs};
use super::postprocess::Prediction;
use super::MaskDinoError;

/// detectron2's demo default for `--confidence-threshold`.
pub const DEFAULT_CONFIDENCE_THRESHOLD: f64 = 0.5;

/// Which of MaskDINO's outputs becomes the regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskDinoTask {
    /// One region per instance scoring at least the confidence threshold.
    Instance,
    /// One region per panoptic segment (things and merged stuff).
    Panoptic,
    /// One region per class present in the per-pixel argmax of the semantic map.
    Semantic,
}

impl MaskDinoTask {
    /// The task a published model is made for: panoptic for `*_panoptic`, else instance.
    pub fn default_for(model: MaskDinoModel) -> Self {
        Self::default_for_config(&model.config())
    }

    /// Panoptic when the configuration computes it, else instance (or semantic when that
    /// is all it computes).
    pub fn default_for_config(config: &MaskDinoConfig) -> Self {
        let t = &config.test;
        if t.panoptic_on {
            MaskDinoTask::Panoptic
        } else if t.instance_on || !t.semantic_on {
            MaskDinoTask::Instance
        } else {
            MaskDinoTask::Semantic
        }
    }
}

/// How a [`MaskDinoSegmenter`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskDinoSegmenterOptions {
    /// Which output becomes the regions.
    pub task: MaskDinoTask,
    /// Instances scoring below this are dropped (detectron2 demo's
    /// `--confidence-threshold`, 0.5); 0 keeps every instance the model returns (its
    /// top-k per image).
    pub confidence_threshold: f64,
    /// Overrides the config's `OBJECT_MASK_THRESHOLD` (panoptic).
    pub object_mask_threshold: Option<f64>,
    /// Overrides the config's `OVERLAP_THRESHOLD` (panoptic).
    pub overlap_threshold: Option<f64>,
    /// No progress on stderr (progress is printed by default).
    pub quiet: bool,
    /// LibTorch intra-op threads (`tch::set_num_threads`); `None` leaves LibTorch's default.
    pub num_threads: Option<i32>,
}

impl Default for MaskDinoSegmenterOptions {
    fn default() -> Self {
        MaskDinoSegmenterOptions {
            task: MaskDinoTask::Instance,
            confidence_threshold: DEFAULT_CONFIDENCE_THRESHOLD,
            object_mask_threshold: None,
            overlap_threshold: None,
            quiet: false,
            num_threads: None,
        }
    }
}

impl MaskDinoSegmenterOptions {
    /// The options for a published model: its task, everything else default.
    pub fn for_model(model: MaskDinoModel) -> Self {
        MaskDinoSegmenterOptions {
            task: MaskDinoTask::default_for(model),
            ..Self::default()
        }
    }
}

/// Segments images with MaskDINO; regions carry the class name as `label` and the score as
/// `score`.
///
/// The model's tensors are `Send` but not `Sync`, so the model sits behind a `Mutex`: the
/// segmenter can be shared between threads, and calls run one at a time (each one already
/// uses every core through LibTorch).
///
/// Regions are numbered from 1 in the model's output order. `source` holds `segmenter`
/// (`"maskdino"`), `class_id` (contiguous), `category_id` (the COCO id) and, per task,
/// `box` (the predicted `[x0, y0, x1, y1]` of an instance), `is_thing` and `segment_id`
/// (panoptic).
///
/// ```no_run
/// use som_core::Segmenter;
/// use som_segment::maskdino::{MaskDinoModel, MaskDinoSegmenter, MaskDinoSegmenterOptions};
/// let model = MaskDinoModel::R50Panoptic;
/// let seg = MaskDinoSegmenter::load("maskdino_r50_50ep_300q_hid2048_3sd1_panoptic_pq53.0.pth", model, MaskDinoSegmenterOptions::for_model(model))?;
/// let segmentation = seg.segment(&image::open("photo.jpg")?)?;
/// for r in segmentation.regions() {
///     println!("{} {:?} {:?}", r.id, r.label, r.score);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MaskDinoSegmenter {
    model: Mutex<MaskDino>,
    options: MaskDinoSegmenterOptions,
    dataset: Dataset,
}

impl MaskDinoSegmenter {
    /// Loads a checkpoint of a published model.
    ///
    /// # Errors
    /// Checkpoint and option errors, see [`MaskDino::load`] and [`MaskDinoSegmenter::new`].
    pub fn load(
        path: impl AsRef<Path>,
        model: MaskDinoModel,
        options: MaskDinoSegmenterOptions,
    ) -> Result<Self, MaskDinoError> {
        Self::load_with_config(path, model.config(), options)
    }

    /// Loads a checkpoint with any configuration.
    ///
    /// # Errors
    /// As [`MaskDinoSegmenter::load`].
    pub fn load_with_config(
        path: impl AsRef<Path>,
        config: MaskDinoConfig,
        options: MaskDinoSegmenterOptions,
    ) -> Result<Self, MaskDinoError> {
        validate_options(&options)?;
        Self::new(MaskDino::load_with_config(path, config)?, options)
    }

    /// Wraps a loaded model, setting the options' panoptic thresholds in its configuration.
    ///
    /// # Errors
    /// [`MaskDinoError::Option`] for options out of range or a task the model's
    /// configuration does not compute.
    pub fn new(mut model: MaskDino, options: MaskDinoSegmenterOptions) -> Result<Self, MaskDinoError> {
        model.config = apply_options(model.config.clone(), &options)?;
        let test = &model.config().test;
        let enabled = match options.task {
            MaskDinoTask::Instance => test.instance_on,
            MaskDinoTask::Panoptic => test.panoptic_on,
            MaskDinoTask::Semantic => test.semantic_on,
        };
        if !enabled {
            return Err(MaskDinoError::Option {
                name: "task",
                value: format!("{:?}", options.task).to_lowercase(),
                reason: "the model's config does not compute this output",
            });
        }
        if let Some(n) = options.num_threads {
            tch::set_num_threads(n);
        }
        let dataset = model.config().dataset;
        Ok(MaskDinoSegmenter {
            model: Mutex::new(model),
            options,
            dataset,
        })
    }

    /// The options.
    pub fn options(&self) -> &MaskDinoSegmenterOptions {
        &self.options
    }

    fn run(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), MaskDinoError> {
        let color = image.color();
        if matches!(
            color,
            image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
        ) {
            return Err(MaskDinoError::Image(format!(
                "grayscale image ({color:?}): MaskDINO needs RGB, convert it first"
            )));
        }
        check_size(image.width(), image.height())?;
        let rgb = image.to_rgb8();
        let model = self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = Outputs {
            instance: self.options.task == MaskDinoTask::Instance,
            panoptic: self.options.task == MaskDinoTask::Panoptic,
            semantic: self.options.task == MaskDinoTask::Semantic,
        };
        let (prediction, times) = model.predict_outputs_timed(&rgb, outputs)?;
        drop(model);
        let t = std::time::Instant::now();
        let size = ImageSize::new(rgb.width(), rgb.height());
        let regions = self.regions(prediction, size)?;
        let postprocess_ms = times.postprocess_ms + t.elapsed().as_secs_f64() * 1000.0;
        if !self.options.quiet {
            eprintln!(
                "maskdino: {} regions; backbone {:.0} ms, encoder {:.0} ms, decoder {:.0} ms, post-processing {:.0} ms",
                regions.len(),
                times.backbone_ms,
                times.encoder_ms,
                times.decoder_ms,
                postprocess_ms
            );
        }
        let stage = |name: &str, ms: f64| StageTiming {
            stage: name.into(),
            ms,
        };
        let stages = vec![
            stage("maskdino_backbone", times.backbone_ms),
            stage("maskdino_encoder", times.encoder_ms),
            stage("maskdino_decoder", times.decoder_ms),
            stage("maskdino_postprocess", postprocess_ms),
        ];
        let seg = Segmentation::new(size, regions).map_err(|e| MaskDinoError::Image(e.to_string()))?;
        Ok((seg, stages))
    }

    fn region(&self, id: u64, class_id: i64, mask: Option<Mask>, bbox: BBox) -> Region {
        let mut region = match mask {
            Some(m) if m.area() > 0 => Region::from_mask(id, m),
            _ => Region::from_box(id, bbox),
        };
        if let Some(name) = self.dataset.class_name(class_id) {
            region.label = Some(name.to_owned());
        }
        region.source.insert("segmenter".into(), json!("maskdino"));
        region.source.insert("class_id".into(), json!(class_id));
        if let Some(coco) = self.dataset.coco_id(class_id) {
            region.source.insert("category_id".into(), json!(coco));
        }
        region
    }

    fn regions(&self, prediction: Prediction, size: ImageSize) -> Result<Vec<Region>, MaskDinoError> {
        let mut regions = Vec::new();
        match self.options.task {
            MaskDinoTask::Instance => {
                for inst in prediction.instances.unwrap_or_default() {
                    if inst.score < self.options.confidence_threshold {
                        continue;
                    }
                    let mask = mask_from_tensor(&inst.mask, size)?;
                    let bbox = clip_box(inst.bbox, size);
                    if mask.area() == 0 && bbox.is_empty() {
                        continue;
                    }
                    let id = regions.len() as u64 + 1;
                    let mut region = self
                        .region(id, inst.class_id, Some(mask), bbox)
                        .with_score(inst.score);
                    region.source.insert("box".into(), json!(inst.bbox));
                    regions.push(region);
                }
            }
            MaskDinoTask::Panoptic => {
                if let Some(p) = prediction.panoptic {
                    for s in &p.segments {
                        let mask = mask_from_tensor(&p.ids.eq(i64::from(s.id)), size)?;
                        let id = regions.len() as u64 + 1;
                        let mut region = self
                            .region(id, s.class_id, Some(mask), BBox::new(0, 0, 0, 0))
                            .with_score(s.score);
                        region.source.insert("is_thing".into(), json!(s.is_thing));
                        region.source.insert("segment_id".into(), json!(s.id));
                        regions.push(region);
                    }
                }
            }
            MaskDinoTask::Semantic => {
                if let Some(sem) = prediction.semantic {
                    let labels = sem.argmax(0, false);
                    let classes =
                        Vec::<i64>::try_from(&labels.flatten(0, -1).unique_dim(0, true, false, false).0)
                            .map_err(MaskDinoError::Torch)?;
                    for c in classes {
                        let mask = mask_from_tensor(&labels.eq(c), size)?;
                        let id = regions.len() as u64 + 1;
                        regions.push(self.region(id, c, Some(mask), BBox::new(0, 0, 0, 0)));
                    }
                }
            }
        }
        Ok(regions)
    }
}

impl Segmenter for MaskDinoSegmenter {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        Ok(self.run(image)?.0)
    }

    /// Also reports `maskdino_backbone`, `maskdino_encoder`, `maskdino_decoder` and
    /// `maskdino_postprocess` times.
    fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
        Ok(self.run(image)?)
    }

    fn name(&self) -> &str {
        "maskdino"
    }
}

/// A `(height, width)` boolean tensor as a [`Mask`].
fn mask_from_tensor(t: &tch::Tensor, size: ImageSize) -> Result<Mask, MaskDinoError> {
    let bytes =
        Vec::<u8>::try_from(&t.to_kind(tch::Kind::Uint8).flatten(0, -1)).map_err(MaskDinoError::Torch)?;
    Mask::from_bytes(size, &bytes).map_err(|e| MaskDinoError::Image(e.to_string()))
}

/// A predicted `(x0, y0, x1, y1)` box as whole pixels inside the image.
fn clip_box(b: [f64; 4], size: ImageSize) -> BBox {
    let (w, h) = (f64::from(size.width), f64::from(size.height));
    let x0 = b[0].clamp(0.0, w).floor();
    let y0 = b[1].clamp(0.0, h).floor();
    let x1 = b[2].clamp(0.0, w).ceil();
    let y1 = b[3].clamp(0.0, h).ceil();
    if !(x1 > x0 && y1 > y0) {
        return BBox::new(0, 0, 0, 0);
    }
    BBox::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)
}

fn validate_options(o: &MaskDinoSegmenterOptions) -> Result<(), MaskDinoError> {
    let bad = |name: &'static str, value: String, reason: &'static str| {
        Err(MaskDinoError::Option { name, value, reason })
    };
    if !(o.confidence_threshold.is_finite() && (0.0..=1.0).contains(&o.confidence_threshold)) {
        return bad(
            "confidence_threshold",
            o.confidence_threshold.to_string(),
            "must lie in [0, 1]",
        );
    }
    for (name, v) in [
        ("object_mask_threshold", o.object_mask_threshold),
        ("overlap_threshold", o.overlap_threshold),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(name, v.to_string(), "must lie in [0, 1]");
            }
        }
    }
    if let Some(n) = o.num_threads {
        if n < 1 {
            return bad("num_threads", n.to_string(), "must be at least 1");
        }
    }
    Ok(())
}

/// The config with the options' thresholds.
fn apply_options(
    mut config: MaskDinoConfig,
    o: &MaskDinoSegmenterOptions,
) -> Result<MaskDinoConfig, MaskDinoError> {
    validate_options(o)?;
    if let Some(v) = o.object_mask_threshold {
        config.test.object_mask_threshold = v;
    }
    if let Some(v) = o.overlap_threshold {
        config.test.overlap_threshold = v;
    }
    Ok(config)
}
