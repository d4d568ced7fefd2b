//! The assembled model (`segment_anything/modeling/sam.py`) and the predictor on top of it
//! (`segment_anything/predictor.py`): embed an image once, prompt it many times.

use std::path::Path;

use image::RgbImage;
use som_core::{ImageSize, Mask};
use tch::{Device, Kind, Tensor};

use super::config::{EncoderConfig, SamConfig, SamModel};
use super::image_encoder::ImageEncoderViT;
use super::mask_decoder::{DecodedTokens, MaskDecoder};
use super::prompt_encoder::PromptEncoder;
use super::resize::{apply_coords, resize_longest_side};
use super::tiny_vit::TinyViT;
use super::transformer::SharedImage;
use super::SamError;
use crate::torch::Weights;

/// Logit threshold that turns mask logits into masks (`Sam.mask_threshold`).
pub const MASK_THRESHOLD: f64 = 0.0;

/// The smallest image side SAM accepts, in pixels: a 1-pixel side leaves nothing to segment.
pub const MIN_IMAGE_SIDE: u32 = 2;

/// The image encoder of a [`Sam`]: SAM's ViT or MobileSAM's TinyViT.
#[derive(Debug)]
pub enum ImageEncoder {
    /// `ImageEncoderViT` (ViT-B/L/H).
    Vit(ImageEncoderViT),
    /// `TinyViT` (MobileSAM).
    TinyVit(TinyViT),
}

impl ImageEncoder {
    /// Encodes a normalised, padded `(B, 3, img_size, img_size)` batch into
    /// `(B, out_chans, grid, grid)` embeddings.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            ImageEncoder::Vit(e) => e.forward(x),
            ImageEncoder::TinyVit(e) => e.forward(x),
        }
    }
}

/// Segment Anything: image encoder, prompt encoder and mask decoder.
///
/// Tensors are `Send` but not `Sync`, so a `Sam` moves between threads but is not shared;
/// wrap it in a `Mutex` to share it (as [`super::SamSegmenter`] does).
#[derive(Debug)]
pub struct Sam {
    config: SamConfig,
    image_encoder: ImageEncoder,
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    pixel_mean: Tensor,
    pixel_std: Tensor,
}

/// The image embedding of one image, with the sizes needed to map prompts and masks
/// (what `SamPredictor.set_image` keeps).
#[derive(Debug)]
pub struct ImageEmbedding {
    /// `(1, C, h, w)` image embeddings.
    pub features: Tensor,
    /// Size of the image that was embedded, `(height, width)`.
    pub original_size: (u32, u32),
    /// Size after `ResizeLongestSide`, before padding, `(height, width)`.
    pub input_size: (u32, u32),
}

impl ImageEmbedding {
    /// The embedded image's size.
    pub fn image_size(&self) -> ImageSize {
        ImageSize::new(self.original_size.1, self.original_size.0)
    }
}

/// One prompt point, in pixel coordinates of the original image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointPrompt {
    /// Column, in pixels (may be fractional).
    pub x: f64,
    /// Row, in pixels (may be fractional).
    pub y: f64,
    /// `true` for a point on the object, `false` for a point on the background.
    pub foreground: bool,
}

/// A prompt for [`Sam::predict`]: points, a box, a previous low-res mask, or any mix.
#[derive(Debug, Default)]
pub struct Prompt {
    /// Points with foreground/background labels.
    pub points: Vec<PointPrompt>,
    /// A box `[x0, y0, x1, y1]` in pixels of the original image.
    pub bbox: Option<[f64; 4]>,
    /// Low-res mask logits from a previous prediction, `(4h, 4w)` (e.g. 256 × 256), usually
    /// [`Prediction::low_res_logits`] of the best mask.
    pub mask_input: Option<Tensor>,
    /// Three masks for ambiguous prompts (the default upstream), or one.
    pub multimask_output: bool,
}

/// What [`Sam::predict`] returns.
#[derive(Debug)]
pub struct Prediction {
    /// Masks at the original image size (logits > [`MASK_THRESHOLD`]).
    pub masks: Vec<Mask>,
    /// The model's IoU estimate for each mask.
    pub iou_predictions: Vec<f32>,
    /// `(K, 4h, 4w)` low-resolution logits, to feed back as [`Prompt::mask_input`].
    pub low_res_logits: Tensor,
}

impl Prediction {
    /// Low-res logits of mask `i`, `(4h, 4w)`.
    pub fn low_res_mask(&self, i: usize) -> Option<Tensor> {
        (i < self.masks.len()).then(|| self.low_res_logits.get(i as i64))
    }
}

/// Checks an image can be embedded and returns it as RGB.
pub(crate) fn check_image(image: &image::DynamicImage) -> Result<RgbImage, SamError> {
    use image::ColorType;
    let color = image.color();
    if matches!(
        color,
        ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
    ) {
        return Err(SamError::Image(format!(
            "grayscale image ({color:?}): SAM needs RGB, convert it first"
        )));
    }
    check_size(image.width(), image.height())?;
    Ok(image.to_rgb8())
}

pub(crate) fn check_size(w: u32, h: u32) -> Result<(), SamError> {
    if w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE {
        return Err(SamError::Image(format!(
            "{w}x{h} image is too small (each side needs at least {MIN_IMAGE_SIDE} pixels)"
        )));
    }
    Ok(())
}

impl Sam {
    /// Loads an official checkpoint (`.pth` or safetensors) of `model` size.
    ///
    /// # Errors
    /// See [`Weights::from_file`] and [`Sam::from_weights`]; a checkpoint of another model
    /// size is a [`SamError::WeightShape`] or [`SamError::UnexpectedWeights`].
    pub fn load(path: impl AsRef<Path>, model: SamModel) -> Result<Self, SamError> {
        Self::from_weights_of(&Weights::from_file(path)?, model)
    }

    /// [`Sam::from_weights`] with an official configuration; a state dict of another
    /// official model is a [`SamError::ModelMismatch`] naming both.
    ///
    /// # Errors
    /// As [`Sam::from_weights`], and [`SamError::ModelMismatch`].
    pub fn from_weights_of(weights: &Weights, model: SamModel) -> Result<Self, SamError> {
        Self::from_weights(weights, model.config()).map_err(|e| match e {
            SamError::MissingWeight { .. }
            | SamError::WeightShape { .. }
            | SamError::UnexpectedWeights { .. } => match SamModel::detect(weights) {
                Ok(found) if found != model => SamError::ModelMismatch {
                    requested: model.name(),
                    found: found.name(),
                },
                _ => e,
            },
            other => other,
        })
    }

    /// Loads a checkpoint with the configuration its parameter shapes determine
    /// ([`SamConfig::infer`]): an official model (`vit_b`, `vit_l`, `vit_h`, `vit_t`) or a
    /// custom one.
    ///
    /// # Errors
    /// As [`Sam::load`]; [`SamError::Config`] when the shapes describe no model this port
    /// can build.
    pub fn load_detect(path: impl AsRef<Path>) -> Result<Self, SamError> {
        let weights = Weights::from_file(path)?;
        let config = SamConfig::infer(&weights)?;
        Self::from_weights(&weights, config)
    }

    /// The official model this is, if its configuration is one.
    pub fn model(&self) -> Option<SamModel> {
        SamModel::ALL.into_iter().find(|m| m.config() == self.config)
    }

    /// Loads a checkpoint for a custom configuration.
    ///
    /// # Errors
    /// As [`Sam::load`].
    pub fn load_with_config(path: impl AsRef<Path>, config: SamConfig) -> Result<Self, SamError> {
        let weights = Weights::from_file(path)?;
        Self::from_weights(&weights, config)
    }

    /// Loads a checkpoint onto `device`: as [`Sam::load`] with `Some(model)`, as
    /// [`Sam::load_detect`] with `None`.
    ///
    /// ```no_run
    /// use som_segment::{sam::Sam, Device};
    /// let sam = Sam::load_on("mobile_sam.pt", None, Device::Auto)?;
    /// println!("{:?} on {:?}", sam.model(), sam.device());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As those, and [`SamError::Device`] for a device this LibTorch cannot use.
    pub fn load_on(
        path: impl AsRef<Path>,
        model: Option<SamModel>,
        device: crate::Device,
    ) -> Result<Self, SamError> {
        let weights = Weights::from_file_on(path, device.resolve()?)?;
        match model {
            Some(model) => Self::from_weights_of(&weights, model),
            None => {
                let config = SamConfig::infer(&weights)?;
                Self::from_weights(&weights, config)
            }
        }
    }

    /// The device the model's parameters are on.
    pub fn device(&self) -> Device {
        self.pixel_mean.device()
    }

    /// Builds the model from a state dict, checking every parameter's shape and that no
    /// parameter is left over. The model runs where the state dict's tensors are.
    ///
    /// # Errors
    /// [`SamError::Config`], [`SamError::MissingWeight`], [`SamError::WeightShape`],
    /// [`SamError::UnexpectedWeights`].
    pub fn from_weights(weights: &Weights, config: SamConfig) -> Result<Self, SamError> {
        config.validate()?;
        let _guard = tch::no_grad_guard();
        let vb = weights.root(&config.name);
        let emb = config.image_embedding_size();
        let img = config.image_encoder.img_size();
        let image_encoder = match &config.image_encoder {
            EncoderConfig::Vit(c) => ImageEncoder::Vit(ImageEncoderViT::load(&vb.pp("image_encoder"), c)?),
            EncoderConfig::TinyVit(c) => ImageEncoder::TinyVit(TinyViT::load(&vb.pp("image_encoder"), c)?),
        };
        let prompt_encoder = PromptEncoder::load(
            &vb.pp("prompt_encoder"),
            config.prompt_encoder.embed_dim,
            (emb, emb),
            (img, img),
            config.prompt_encoder.mask_in_chans,
        )?;
        let mask_decoder = MaskDecoder::load(&vb.pp("mask_decoder"), &config.mask_decoder)?;
        weights.check_all_used(&config.name)?;
        let mean: Vec<f32> = config.pixel_mean.iter().map(|&v| v as f32).collect();
        let std: Vec<f32> = config.pixel_std.iter().map(|&v| v as f32).collect();
        let device = prompt_encoder.dense_pe().device();
        Ok(Sam {
            image_encoder,
            prompt_encoder,
            mask_decoder,
            pixel_mean: Tensor::from_slice(&mean).view([-1, 1, 1]).to_device(device),
            pixel_std: Tensor::from_slice(&std).view([-1, 1, 1]).to_device(device),
            config,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &SamConfig {
        &self.config
    }

    /// Side of the square model input (1024 for the official models).
    pub fn img_size(&self) -> u32 {
        self.config.image_encoder.img_size() as u32
    }

    /// Size `(height, width)` of the low-res mask logits the decoder predicts (four times
    /// the image-embedding grid, 256 × 256 for the official models).
    pub fn low_res_size(&self) -> (i64, i64) {
        self.prompt_encoder.mask_input_size()
    }

    /// The image encoder.
    pub fn image_encoder(&self) -> &ImageEncoder {
        &self.image_encoder
    }

    /// The prompt encoder.
    pub fn prompt_encoder(&self) -> &PromptEncoder {
        &self.prompt_encoder
    }

    /// The mask decoder.
    pub fn mask_decoder(&self) -> &MaskDecoder {
        &self.mask_decoder
    }

    /// `Sam.preprocess`: normalises a `(1, 3, h, w)` `u8` image and pads it bottom/right to
    /// the square input.
    pub fn preprocess(&self, x: &Tensor) -> Tensor {
        let x = (x - &self.pixel_mean) / &self.pixel_std;
        let size = x.size();
        let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
        let img = self.config.image_encoder.img_size();
        x.constant_pad_nd([0, img - w, 0, img - h])
    }

    /// `Sam.postprocess_masks`: upscales `(B, K, 4h, 4w)` low-res logits to the padded input,
    /// drops the padding and resizes to the original image (bilinear, as upstream).
    pub fn postprocess_masks(
        &self,
        masks: &Tensor,
        input_size: (u32, u32),
        original_size: (u32, u32),
    ) -> Tensor {
        let img = self.config.image_encoder.img_size();
        let m = masks.upsample_bilinear2d([img, img], false, None, None);
        let m = m
            .narrow(-2, 0, i64::from(input_size.0))
            .narrow(-1, 0, i64::from(input_size.1));
        m.upsample_bilinear2d(
            [i64::from(original_size.0), i64::from(original_size.1)],
            false,
            None,
            None,
        )
    }

    /// `SamPredictor.set_image`: resizes, normalises and encodes an RGB image.
    ///
    /// # Errors
    /// [`SamError::Image`] for an image with a side under [`MIN_IMAGE_SIDE`] pixels or one
    /// that would resize to nothing.
    pub fn embed_image(&self, image: &RgbImage) -> Result<ImageEmbedding, SamError> {
        check_size(image.width(), image.height())?;
        let resized = resize_longest_side(image, self.img_size()).ok_or_else(|| {
            SamError::Image(format!(
                "{}x{} image is too elongated to resize to a {} px long side",
                image.width(),
                image.height(),
                self.img_size()
            ))
        })?;
        let _guard = tch::no_grad_guard();
        let (w, h) = (resized.width() as i64, resized.height() as i64);
        let t = Tensor::f_from_data_size(resized.as_raw(), &[h, w, 3], Kind::Uint8)?
            .f_to_device(self.device())?
            .permute([2, 0, 1])
            .contiguous()
            .unsqueeze(0);
        let input = self.preprocess(&t);
        let features = self.image_encoder.forward(&input);
        Ok(ImageEmbedding {
            features,
            original_size: (image.height(), image.width()),
            input_size: (h as u32, w as u32),
        })
    }

    /// `SamPredictor.predict_torch`: prompts in the resized-input frame, returns upscaled
    /// logits `(B, K, H, W)`, IoU predictions `(B, K)` and low-res logits `(B, K, 4h, 4w)`.
    pub fn predict_torch(
        &self,
        embedding: &ImageEmbedding,
        points: Option<(&Tensor, &Tensor)>,
        boxes: Option<&Tensor>,
        mask_input: Option<&Tensor>,
        multimask_output: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let (low_res, iou) = self.predict_low_res(embedding, points, boxes, mask_input, multimask_output);
        let _guard = tch::no_grad_guard();
        let masks = self.postprocess_masks(&low_res, embedding.input_size, embedding.original_size);
        (masks, iou, low_res)
    }

    /// [`Sam::predict_torch`] without the upscaling: low-res logits `(B, K, 4h, 4w)` and IoU
    /// predictions `(B, K)`.
    pub fn predict_low_res(
        &self,
        embedding: &ImageEmbedding,
        points: Option<(&Tensor, &Tensor)>,
        boxes: Option<&Tensor>,
        mask_input: Option<&Tensor>,
        multimask_output: bool,
    ) -> (Tensor, Tensor) {
        let _guard = tch::no_grad_guard();
        let (sparse, dense) = self.prompt_encoder.forward(points, boxes, mask_input);
        self.mask_decoder.forward(
            &embedding.features,
            &self.prompt_encoder.dense_pe(),
            &sparse,
            &dense,
            multimask_output,
        )
    }

    /// The image-only part of decoding point prompts on `embedding` (see
    /// [`MaskDecoder`]'s fast path); `None` when the decoder cannot share it.
    pub(crate) fn share_image(&self, embedding: &ImageEmbedding) -> Option<SharedImage> {
        self.mask_decoder.share_image(
            &embedding.features,
            &self.prompt_encoder.dense_pe(),
            &self.prompt_encoder.no_mask_dense(),
        )
    }

    /// Decodes `(B, N, 2)` point prompts (resized-input frame) with `(B, N)` labels on a
    /// shared image up to the IoU predictions, before any mask is upscaled.
    pub(crate) fn decode_points_shared(
        &self,
        shared: &SharedImage,
        points: &Tensor,
        labels: &Tensor,
    ) -> DecodedTokens {
        let _guard = tch::no_grad_guard();
        let (sparse, _) = self.prompt_encoder.forward(Some((points, labels)), None, None);
        self.mask_decoder.decode_shared(shared, &sparse)
    }

    /// `SamPredictor.predict`: prompts in original-image pixels.
    ///
    /// # Errors
    /// [`SamError::Prompt`] for points or a box outside the image (or not finite), a
    /// reversed box, or a mask input of the wrong size.
    pub fn predict(&self, embedding: &ImageEmbedding, prompt: &Prompt) -> Result<Prediction, SamError> {
        let (oh, ow) = embedding.original_size;
        let long = self.img_size();
        let inside = |x: f64, y: f64| {
            x.is_finite()
                && y.is_finite()
                && (0.0..=f64::from(ow)).contains(&x)
                && (0.0..=f64::from(oh)).contains(&y)
        };
        let mut points = None;
        if !prompt.points.is_empty() {
            let mut coords = Vec::with_capacity(prompt.points.len() * 2);
            let mut labels = Vec::with_capacity(prompt.points.len());
            for p in &prompt.points {
                if !inside(p.x, p.y) {
                    return Err(SamError::Prompt(format!(
                        "point ({}, {}) is outside the {ow}x{oh} image",
                        p.x, p.y
                    )));
                }
                let (x, y) = apply_coords(p.x, p.y, embedding.original_size, long);
                coords.extend([x as f32, y as f32]);
                labels.push(i32::from(p.foreground));
            }
            let n = labels.len() as i64;
            points = Some((
                Tensor::from_slice(&coords)
                    .view([1, n, 2])
                    .to_device(self.device()),
                Tensor::from_slice(&labels).view([1, n]).to_device(self.device()),
            ));
        }
        let mut boxes = None;
        if let Some([x0, y0, x1, y1]) = prompt.bbox {
            if !inside(x0, y0) || !inside(x1, y1) || x0 > x1 || y0 > y1 {
                return Err(SamError::Prompt(format!(
                    "box [{x0}, {y0}, {x1}, {y1}] is reversed or outside the {ow}x{oh} image"
                )));
            }
            let (ax, ay) = apply_coords(x0, y0, embedding.original_size, long);
            let (bx, by) = apply_coords(x1, y1, embedding.original_size, long);
            boxes = Some(
                Tensor::from_slice(&[ax as f32, ay as f32, bx as f32, by as f32])
                    .view([1, 4])
                    .to_device(self.device()),
            );
        }
        let mut mask = None;
        if let Some(m) = &prompt.mask_input {
            let (mh, mw) = self.prompt_encoder.mask_input_size();
            let size = m.size();
            let ok = size.len() >= 2
                && size[size.len() - 2..] == [mh, mw]
                && size[..size.len() - 2].iter().all(|&d| d == 1)
                && size.len() <= 4;
            if !ok {
                return Err(SamError::Prompt(format!(
                    "mask input has shape {size:?}, expected [{mh}, {mw}] low-res logits"
                )));
            }
            mask = Some(
                m.to_kind(Kind::Float)
                    .to_device(self.device())
                    .view([1, 1, mh, mw]),
            );
        }
        let (masks, iou, low_res) = self.predict_torch(
            embedding,
            points.as_ref().map(|(c, l)| (c, l)),
            boxes.as_ref(),
            mask.as_ref(),
            prompt.multimask_output,
        );
        let masks = masks.get(0).gt(MASK_THRESHOLD);
        let iou = iou.get(0);
        let k = masks.size()[0];
        let size = embedding.image_size();
        let mut out = Vec::with_capacity(k as usize);
        for i in 0..k {
            out.push(mask_from_tensor(&masks.get(i), size)?);
        }
        let iou_predictions = Vec::<f32>::try_from(&iou.f_to_device(Device::Cpu)?)?;
        Ok(Prediction {
            masks: out,
            iou_predictions,
            low_res_logits: low_res.get(0),
        })
    }
}

/// A `(H, W)` bool tensor as a [`Mask`].
pub(crate) fn mask_from_tensor(t: &Tensor, size: ImageSize) -> Result<Mask, SamError> {
    let bytes = Vec::<u8>::try_from(&t.to_kind(Kind::Uint8).flatten(0, -1).f_to_device(Device::Cpu)?)?;
    Mask::from_bytes(size, &bytes).map_err(|e| SamError::Image(e.to_string()))
}
