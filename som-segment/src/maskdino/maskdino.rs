//! The model (`maskdino.py`, `MaskDINO` at inference, with detectron2's `DefaultPredictor`
//! preprocessing): test-time resize, normalisation and padding, backbone, pixel decoder,
//! decoder, post-processing.

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use tch::{Device, Kind, Tensor};

use super::config::{BackboneConfig, MaskDinoConfig, MaskDinoModel, TestConfig};
use super::decoder::{DecoderOutput, MaskDinoDecoder};
use super::encoder::{EncoderOutput, PixelDecoder};
use super::postprocess::{
    instance_inference, panoptic_inference, semantic_inference, ImageSizes, Prediction,
};
use super::resnet::ResNet;
use super::swin::Swin;
use super::MaskDinoError;
use crate::torch::{resize_bilinear, Weights};

/// The smallest image side MaskDINO accepts, in pixels.
pub const MIN_IMAGE_SIDE: u32 = 2;

/// detectron2's `ResizeShortestEdge.get_output_shape`: the `(height, width)` whose shorter
/// side is `short_edge` unless the longer one would exceed `max_size`, computed in `f64`
/// and rounded half up as upstream does.
///
/// ```
/// use som_segment::maskdino::resize_shortest_edge;
/// assert_eq!(resize_shortest_edge(480, 640, 800, 1333), (800, 1067));
/// assert_eq!(resize_shortest_edge(750, 1333, 800, 1333), (750, 1333));
/// ```
pub fn resize_shortest_edge(h: u32, w: u32, short_edge: u32, max_size: u32) -> (u32, u32) {
    let (h, w) = (f64::from(h), f64::from(w));
    let size = f64::from(short_edge);
    let scale = size / h.min(w);
    let (mut newh, mut neww) = if h < w {
        (size, scale * w)
    } else {
        (scale * h, size)
    };
    if newh.max(neww) > f64::from(max_size) {
        let scale = f64::from(max_size) / newh.max(neww);
        newh *= scale;
        neww *= scale;
    }
    ((newh + 0.5) as u32, (neww + 0.5) as u32)
}

/// An image ready for the network: the normalised, padded `(1, 3, H, W)` batch and the
/// sizes that map outputs back.
#[derive(Debug)]
pub struct PreparedImage {
    /// The normalised, padded batch of one image.
    pub tensor: Tensor,
    /// Original, resized and padded sizes.
    pub sizes: ImageSizes,
}

/// Which outputs [`MaskDino::predict_outputs_timed`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    /// Instances.
    pub instance: bool,
    /// The panoptic segmentation.
    pub panoptic: bool,
    /// The semantic map.
    pub semantic: bool,
}

impl From<&TestConfig> for Outputs {
    /// The outputs a config switches on.
    fn from(t: &TestConfig) -> Self {
        Outputs {
            instance: t.instance_on,
            panoptic: t.panoptic_on,
            semantic: t.semantic_on,
        }
    }
}

/// How long each stage took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Resize, normalisation and the backbone.
    pub backbone_ms: f64,
    /// The pixel decoder (deformable encoder and FPN).
    pub encoder_ms: f64,
    /// Query selection, decoder and heads.
    pub decoder_ms: f64,
    /// Mask upsampling and instance / panoptic / semantic inference.
    pub postprocess_ms: f64,
}

#[derive(Debug)]
enum Backbone {
    ResNet(ResNet),
    Swin(Swin),
}

/// MaskDINO: a backbone, the multi-scale deformable pixel decoder, the DINO decoder and
/// the post-processing of its configuration.
///
/// Tensors are `Send` but not `Sync`: a `MaskDino` moves between threads but is not
/// shared; wrap it in a `Mutex` to share it (as [`super::MaskDinoSegmenter`] does).
///
/// ```no_run
/// use som_segment::maskdino::{MaskDino, MaskDinoModel};
/// let model = MaskDino::load("maskdino_r50_50ep_300q_hid2048_3sd1_panoptic_pq53.0.pth", MaskDinoModel::R50Panoptic)?;
/// let image = image::open("photo.jpg")?.to_rgb8();
/// let prediction = model.predict(&image)?;
/// for s in &prediction.panoptic.unwrap().segments {
///     println!("{} {:?}", s.id, model.config().dataset.class_name(s.class_id));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MaskDino {
    pub(crate) config: MaskDinoConfig,
    backbone: Backbone,
    pixel_decoder: PixelDecoder,
    decoder: MaskDinoDecoder,
    pixel_mean: Tensor,
    pixel_std: Tensor,
}

impl MaskDino {
    /// Loads a released checkpoint (`.pth` in detectron2's format, or safetensors) of a
    /// published model.
    ///
    /// # Errors
    /// [`MaskDinoError::Checkpoint`] for unreadable files and parameters that do not fit,
    /// [`MaskDinoError::NotMaskDino`] for other models' checkpoints,
    /// [`MaskDinoError::WrongModel`] when the checkpoint is another published model.
    pub fn load(path: impl AsRef<Path>, model: MaskDinoModel) -> Result<Self, MaskDinoError> {
        Self::load_with_config(path, model.config())
    }

    /// Loads a released checkpoint and recognises which published model it is from its
    /// backbone and class head (see [`MaskDinoModel::detect`]).
    ///
    /// # Errors
    /// As [`MaskDino::load`]; [`MaskDinoError::NotMaskDino`] when the checkpoint is no
    /// published model.
    pub fn load_detect(path: impl AsRef<Path>) -> Result<(Self, MaskDinoModel), MaskDinoError> {
        let weights = Weights::from_file(path)?;
        let model = detect_model(&weights)?;
        Ok((Self::from_weights(&weights, model.config())?, model))
    }

    /// Loads a checkpoint onto `device`: as [`MaskDino::load`] with `Some(model)`, as
    /// [`MaskDino::load_detect`] with `None`. GPU runs are untested (the machines this port
    /// is tested on have none); `Device::Auto` falls back to the CPU.
    ///
    /// ```no_run
    /// use som_segment::{maskdino::MaskDino, Device};
    /// let model = MaskDino::load_on("maskdino_r50.pth", None, Device::Auto)?;
    /// println!("{} on {:?}", model.config().name, model.device());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As those, and [`MaskDinoError::Device`] for a device this LibTorch cannot use.
    pub fn load_on(
        path: impl AsRef<Path>,
        model: Option<MaskDinoModel>,
        device: crate::Device,
    ) -> Result<Self, MaskDinoError> {
        let weights = Weights::from_file_on(path, device.resolve()?)?;
        let model = match model {
            Some(model) => model,
            None => detect_model(&weights)?,
        };
        Self::from_weights(&weights, model.config())
    }

    /// Loads a checkpoint with any configuration (e.g. a reduced-width one).
    ///
    /// # Errors
    /// As [`MaskDino::load`], plus [`MaskDinoError::Config`] for an inconsistent config.
    pub fn load_with_config(path: impl AsRef<Path>, config: MaskDinoConfig) -> Result<Self, MaskDinoError> {
        config.validate()?;
        let weights = Weights::from_file(path)?;
        Self::from_weights(&weights, config)
    }

    /// Builds the model from loaded weights, checking every parameter's shape and that
    /// every parameter is used (like `load_state_dict(strict=True)`). The model runs where
    /// the weights are (see [`crate::torch::Weights::to_device`]).
    ///
    /// # Errors
    /// As [`MaskDino::load_with_config`].
    pub fn from_weights(weights: &Weights, config: MaskDinoConfig) -> Result<Self, MaskDinoError> {
        config.validate()?;
        check_is_maskdino(weights)?;
        if let Some(found) = MaskDinoModel::detect(weights) {
            let expected = MaskDinoModel::ALL.into_iter().find(|m| m.name() == config.name);
            if let Some(expected) = expected.filter(|&e| e != found) {
                return Err(MaskDinoError::WrongModel {
                    expected: expected.name().to_owned(),
                    found: found.name().to_owned(),
                });
            }
        }
        let vb = weights.root(&config.name);
        let backbone = match &config.backbone {
            BackboneConfig::ResNet(c) => Backbone::ResNet(ResNet::load(&vb.pp("backbone"), c)?),
            BackboneConfig::Swin(c) => Backbone::Swin(Swin::load(&vb.pp("backbone"), c)?),
        };
        let head = vb.pp("sem_seg_head");
        let p = &config.pixel_decoder;
        let pixel_decoder = PixelDecoder::load(&head.pp("pixel_decoder"), p, config.backbone_channels())?;
        let decoder = MaskDinoDecoder::load(
            &head.pp("predictor"),
            &config.decoder,
            p.conv_dim,
            p.mask_dim,
            p.total_num_feature_levels,
        )?;
        // The training criterion's class weights (`empty_weight`) are in the state dict.
        if weights.get("criterion.empty_weight").is_some() {
            let _ = vb
                .pp("criterion")
                .get("empty_weight", &[config.decoder.num_classes + 1])?;
        }
        weights.check_all_used(&config.name)?;
        let mean: Vec<f32> = config.input.pixel_mean.iter().map(|&v| v as f32).collect();
        let std: Vec<f32> = config.input.pixel_std.iter().map(|&v| v as f32).collect();
        let device = weights
            .names()
            .next()
            .and_then(|name| weights.get(name))
            .map_or(Device::Cpu, Tensor::device);
        Ok(MaskDino {
            backbone,
            pixel_decoder,
            decoder,
            pixel_mean: Tensor::from_slice(&mean).view([-1, 1, 1]).to_device(device),
            pixel_std: Tensor::from_slice(&std).view([-1, 1, 1]).to_device(device),
            config,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &MaskDinoConfig {
        &self.config
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.pixel_mean.device()
    }

    /// Test-time preprocessing: `ResizeShortestEdge` (Pillow bilinear on the 8-bit image),
    /// normalisation, padding (bottom and right, with zeros) to the size divisibility.
    ///
    /// # Errors
    /// [`MaskDinoError::Image`] for images with a side under [`MIN_IMAGE_SIDE`] or that
    /// resize to nothing.
    pub fn prepare(&self, image: &RgbImage) -> Result<PreparedImage, MaskDinoError> {
        let (w, h) = image.dimensions();
        check_size(w, h)?;
        let input = &self.config.input;
        let resized = if input.min_size_test == 0 {
            image.clone()
        } else {
            let (nh, nw) = resize_shortest_edge(h, w, input.min_size_test, input.max_size_test);
            resize_bilinear(image, nw, nh).ok_or_else(|| {
                MaskDinoError::Image(format!("{w}x{h} image resizes to {nw}x{nh} pixels (too thin)"))
            })?
        };
        let (rw, rh) = (i64::from(resized.width()), i64::from(resized.height()));
        let x = Tensor::from_slice(resized.as_raw())
            .view([rh, rw, 3])
            .permute([2, 0, 1])
            .to_kind(Kind::Float)
            .to_device(self.device());
        let x = (x - &self.pixel_mean) / &self.pixel_std;
        let d = input.size_divisibility;
        let (ph, pw) = if d > 1 {
            ((rh + d - 1) / d * d, (rw + d - 1) / d * d)
        } else {
            (rh, rw)
        };
        let tensor = x.constant_pad_nd([0, pw - rw, 0, ph - rh]).unsqueeze(0);
        Ok(PreparedImage {
            tensor,
            sizes: ImageSizes {
                original: (i64::from(h), i64::from(w)),
                resized: (rh, rw),
                padded: (ph, pw),
            },
        })
    }

    /// The backbone's `res2`…`res5` feature maps of a prepared batch.
    pub fn backbone(&self, x: &Tensor) -> Vec<Tensor> {
        match &self.backbone {
            Backbone::ResNet(r) => r.forward(x),
            Backbone::Swin(s) => s.forward(x),
        }
    }

    /// The pixel decoder on the backbone features.
    ///
    /// # Errors
    /// [`MaskDinoError::Torch`] when LibTorch fails (a bug or an exhausted resource).
    pub fn encode(&self, features: &[Tensor]) -> Result<EncoderOutput, MaskDinoError> {
        if features.len() != 4 {
            return Err(MaskDinoError::Config(format!(
                "the pixel decoder needs res2..res5, got {} feature maps",
                features.len()
            )));
        }
        Ok(self.pixel_decoder.forward(features)?)
    }

    /// The decoder on the pixel decoder's output.
    ///
    /// # Errors
    /// [`MaskDinoError::Torch`] when LibTorch fails.
    pub fn decode(&self, encoded: &EncoderOutput) -> Result<DecoderOutput, MaskDinoError> {
        Ok(self
            .decoder
            .forward(&encoded.multi_scale_features, &encoded.mask_features)?)
    }

    /// The configured outputs (instance, panoptic, semantic) of the first image of a batch.
    pub fn postprocess(&self, decoded: &DecoderOutput, sizes: &ImageSizes) -> Prediction {
        self.postprocess_outputs(decoded, sizes, Outputs::from(&self.config.test))
    }

    /// Some of the outputs of the first image of a batch. Instances of a config with
    /// `panoptic_on` keep "thing" classes only, as upstream's do, whether or not the panoptic
    /// output is computed.
    pub fn postprocess_outputs(
        &self,
        decoded: &DecoderOutput,
        sizes: &ImageSizes,
        outputs: Outputs,
    ) -> Prediction {
        let test = &self.config.test;
        let dataset = self.config.dataset;
        let logits = decoded.pred_logits.get(0);
        let masks = decoded.pred_masks.get(0);
        let boxes = decoded.pred_boxes.get(0);
        Prediction {
            semantic: outputs
                .semantic
                .then(|| semantic_inference(&logits, &masks, sizes, test)),
            panoptic: outputs
                .panoptic
                .then(|| panoptic_inference(&logits, &masks, sizes, test, dataset)),
            instances: outputs
                .instance
                .then(|| instance_inference(&logits, &masks, &boxes, sizes, test, dataset)),
        }
    }

    /// Runs every stage on an RGB image.
    ///
    /// # Errors
    /// [`MaskDinoError::Image`] for images that cannot be segmented, [`MaskDinoError::Torch`]
    /// when LibTorch fails.
    pub fn predict(&self, image: &RgbImage) -> Result<Prediction, MaskDinoError> {
        self.predict_timed(image).map(|(p, _)| p)
    }

    /// [`MaskDino::predict`], also timing the stages.
    ///
    /// # Errors
    /// As [`MaskDino::predict`].
    pub fn predict_timed(&self, image: &RgbImage) -> Result<(Prediction, StageTimes), MaskDinoError> {
        self.predict_outputs_timed(image, Outputs::from(&self.config.test))
    }

    /// [`MaskDino::predict_timed`] computing only some outputs.
    ///
    /// # Errors
    /// As [`MaskDino::predict`].
    pub fn predict_outputs_timed(
        &self,
        image: &RgbImage,
        outputs: Outputs,
    ) -> Result<(Prediction, StageTimes), MaskDinoError> {
        let _guard = tch::no_grad_guard();
        let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let prepared = self.prepare(image)?;
        let features = self.backbone(&prepared.tensor);
        let backbone_ms = ms(t);
        let t = Instant::now();
        let encoded = self.encode(&features)?;
        drop(features);
        let encoder_ms = ms(t);
        let t = Instant::now();
        let decoded = self.decode(&encoded)?;
        drop(encoded);
        let decoder_ms = ms(t);
        let t = Instant::now();
        let prediction = self.postprocess_outputs(&decoded, &prepared.sizes, outputs);
        let postprocess_ms = ms(t);
        Ok((
            prediction,
            StageTimes {
                backbone_ms,
                encoder_ms,
                decoder_ms,
                postprocess_ms,
            },
        ))
    }
}

impl MaskDinoModel {
    /// The published model a state dict holds, from its backbone's keys and the width of
    /// the class head (80 instance, 133 panoptic classes); `None` when it is none of them.
    pub fn detect(weights: &Weights) -> Option<MaskDinoModel> {
        let classes = weights
            .get("sem_seg_head.predictor.class_embed.weight")
            .and_then(|t| t.size().first().copied())?;
        let swin = weights.get("backbone.patch_embed.proj.weight").is_some();
        let resnet = weights.get("backbone.stem.conv1.weight").is_some();
        match (swin, resnet, classes) {
            (true, false, 80) => Some(MaskDinoModel::SwinlInstance),
            (true, false, 133) => Some(MaskDinoModel::SwinlPanoptic),
            (false, true, 80) => Some(MaskDinoModel::R50Instance),
            (false, true, 133) => Some(MaskDinoModel::R50Panoptic),
            _ => None,
        }
    }
}

/// The published model a MaskDINO checkpoint holds.
fn detect_model(weights: &Weights) -> Result<MaskDinoModel, MaskDinoError> {
    check_is_maskdino(weights)?;
    MaskDinoModel::detect(weights).ok_or_else(|| {
        MaskDinoError::NotMaskDino(
            "no published model has this backbone and class head (name the config to load another)".into(),
        )
    })
}

/// A MaskDINO state dict has a backbone and a `sem_seg_head`.
fn check_is_maskdino(weights: &Weights) -> Result<(), MaskDinoError> {
    let has = |p: &str| weights.names().any(|n| n.starts_with(p));
    if has("backbone.") && has("sem_seg_head.") {
        return Ok(());
    }
    let first = weights.names().next().unwrap_or("<none>");
    Err(MaskDinoError::NotMaskDino(format!(
        "no `backbone.` and `sem_seg_head.` parameters ({} tensors, first `{first}`)",
        weights.len()
    )))
}

pub(crate) fn check_size(w: u32, h: u32) -> Result<(), MaskDinoError> {
    if w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE {
        return Err(MaskDinoError::Image(format!(
            "{w}x{h} image is too small (each side needs at least {MIN_IMAGE_SIDE} pixels)"
        )));
    }
    Ok(())
}
