//! The prompt encoder (`segment_anything/modeling/prompt_encoder.py`): random-Fourier
//! position encodings of points and box corners plus learned type embeddings (sparse
//! prompts), and a small convolutional downscaler for mask inputs (dense prompt).

use std::f64::consts::PI;

use tch::{Kind, Tensor};

use super::common::LayerNorm2d;
use super::SamError;
use crate::torch::nn::Conv2d;
use crate::torch::Vb;

/// `PositionEmbeddingRandom`: `[sin, cos](2π · (2x − 1) · G)` for a fixed Gaussian `G`.
#[derive(Debug)]
pub(crate) struct PositionEmbeddingRandom {
    gaussian: Tensor,
}

impl PositionEmbeddingRandom {
    fn encode(&self, coords: &Tensor) -> Tensor {
        let coords = coords * 2 - 1;
        let coords = coords.matmul(&self.gaussian);
        let coords = coords * (2.0 * PI);
        Tensor::cat(&[coords.sin(), coords.cos()], -1)
    }

    /// Encodings of the centres of an `h × w` grid, `(C, h, w)`.
    fn grid(&self, h: i64, w: i64) -> Tensor {
        let grid = Tensor::ones([h, w], (Kind::Float, self.gaussian.device()));
        let y = grid.cumsum(0, None::<Kind>) - 0.5;
        let x = grid.cumsum(1, None::<Kind>) - 0.5;
        let y = y / h;
        let x = x / w;
        self.encode(&Tensor::stack(&[x, y], -1)).permute([2, 0, 1])
    }

    /// Encodings of `(B, N, 2)` pixel coordinates in an `image_size` (h, w) frame.
    fn with_coords(&self, coords: &Tensor, image_size: (i64, i64)) -> Tensor {
        let x = coords.select(2, 0) / image_size.1;
        let y = coords.select(2, 1) / image_size.0;
        let coords = Tensor::stack(&[x, y], 2).to_kind(Kind::Float);
        self.encode(&coords)
    }
}

/// The prompt encoder (`PromptEncoder`).
#[derive(Debug)]
pub struct PromptEncoder {
    pe_layer: PositionEmbeddingRandom,
    point_embeddings: Vec<Tensor>,
    not_a_point_embed: Tensor,
    no_mask_embed: Tensor,
    mask_downscaling: (Conv2d, LayerNorm2d, Conv2d, LayerNorm2d, Conv2d),
    embed_dim: i64,
    image_embedding_size: (i64, i64),
    input_image_size: (i64, i64),
}

impl PromptEncoder {
    pub(crate) fn load(
        vb: &Vb,
        embed_dim: i64,
        image_embedding_size: (i64, i64),
        input_image_size: (i64, i64),
        mask_in_chans: i64,
    ) -> Result<Self, SamError> {
        let gaussian = vb
            .pp("pe_layer")
            .get("positional_encoding_gaussian_matrix", &[2, embed_dim / 2])?;
        let point_embeddings = (0..4)
            .map(|i| vb.pp("point_embeddings").pp(i).get("weight", &[1, embed_dim]))
            .collect::<Result<Vec<_>, _>>()?;
        let md = vb.pp("mask_downscaling");
        let c4 = mask_in_chans / 4;
        Ok(PromptEncoder {
            pe_layer: PositionEmbeddingRandom { gaussian },
            point_embeddings,
            not_a_point_embed: vb.pp("not_a_point_embed").get("weight", &[1, embed_dim])?,
            no_mask_embed: vb.pp("no_mask_embed").get("weight", &[1, embed_dim])?,
            mask_downscaling: (
                Conv2d::load(&md.pp(0), 1, c4, 2, 2, 0, true)?,
                LayerNorm2d::load(&md.pp(1), c4)?,
                Conv2d::load(&md.pp(3), c4, mask_in_chans, 2, 2, 0, true)?,
                LayerNorm2d::load(&md.pp(4), mask_in_chans)?,
                Conv2d::load(&md.pp(6), mask_in_chans, embed_dim, 1, 1, 0, true)?,
            ),
            embed_dim,
            image_embedding_size,
            input_image_size,
        })
    }

    /// The size `(h, w)` of mask inputs: four times the embedding grid.
    pub fn mask_input_size(&self) -> (i64, i64) {
        (4 * self.image_embedding_size.0, 4 * self.image_embedding_size.1)
    }

    /// `get_dense_pe`: position encodings of the image-embedding grid, `(1, C, h, w)`.
    pub fn dense_pe(&self) -> Tensor {
        self.pe_layer
            .grid(self.image_embedding_size.0, self.image_embedding_size.1)
            .unsqueeze(0)
    }

    /// The dense embedding of "no mask prompt" for one prompt, `(1, C, h, w)`.
    pub(crate) fn no_mask_dense(&self) -> Tensor {
        self.no_mask_embed.reshape([1, -1, 1, 1]).expand(
            [1, -1, self.image_embedding_size.0, self.image_embedding_size.1],
            false,
        )
    }

    fn embed_points(&self, points: &Tensor, labels: &Tensor, pad: bool) -> Tensor {
        let mut points = points + 0.5;
        let mut labels = labels.shallow_clone();
        if pad {
            let b = points.size()[0];
            let device = points.device();
            let padding_point = Tensor::zeros([b, 1, 2], (Kind::Float, device));
            let padding_label = -Tensor::ones([b, 1], (Kind::Float, device));
            points = Tensor::cat(&[points, padding_point], 1);
            labels = Tensor::cat(&[labels, padding_label], 1);
        }
        let pe = self.pe_layer.with_coords(&points, self.input_image_size);
        let is = |v: f64| labels.eq(v).unsqueeze(-1);
        let not_a_point = is(-1.0);
        let pe = pe.where_self(&not_a_point.logical_not(), &Tensor::zeros_like(&pe));
        let pe = (&pe + &self.not_a_point_embed).where_self(&not_a_point, &pe);
        let bg = is(0.0);
        let pe = (&pe + &self.point_embeddings[0]).where_self(&bg, &pe);
        let fg = is(1.0);
        (&pe + &self.point_embeddings[1]).where_self(&fg, &pe)
    }

    fn embed_boxes(&self, boxes: &Tensor) -> Tensor {
        let boxes = boxes + 0.5;
        let coords = boxes.reshape([-1, 2, 2]);
        let corners = self.pe_layer.with_coords(&coords, self.input_image_size);
        let c0 = corners.select(1, 0) + &self.point_embeddings[2];
        let c1 = corners.select(1, 1) + &self.point_embeddings[3];
        Tensor::stack(&[c0, c1], 1)
    }

    fn embed_masks(&self, masks: &Tensor) -> Tensor {
        let (c0, l1, c3, l4, c6) = &self.mask_downscaling;
        let x = l1.forward(&c0.forward(masks)).gelu("none");
        let x = l4.forward(&c3.forward(&x)).gelu("none");
        c6.forward(&x)
    }

    /// Embeds prompts: `points` as `(B, N, 2)` coordinates in the resized-input frame with
    /// `(B, N)` labels (1 foreground, 0 background, -1 padding), `boxes` as `(B, 4)`, and
    /// `masks` as `(B, 1, 4h, 4w)` logits. Returns the sparse `(B, M, C)` and dense
    /// `(B, C, h, w)` embeddings.
    pub fn forward(
        &self,
        points: Option<(&Tensor, &Tensor)>,
        boxes: Option<&Tensor>,
        masks: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let bs = if let Some((p, _)) = points {
            p.size()[0]
        } else if let Some(b) = boxes {
            b.size()[0]
        } else if let Some(m) = masks {
            m.size()[0]
        } else {
            1
        };
        let device = self.no_mask_embed.device();
        let mut sparse = Tensor::empty([bs, 0, self.embed_dim], (Kind::Float, device));
        if let Some((coords, labels)) = points {
            let pe = self.embed_points(coords, labels, boxes.is_none());
            sparse = Tensor::cat(&[sparse, pe], 1);
        }
        if let Some(b) = boxes {
            sparse = Tensor::cat(&[sparse, self.embed_boxes(b)], 1);
        }
        let dense = match masks {
            Some(m) => self.embed_masks(m),
            None => self.no_mask_embed.reshape([1, -1, 1, 1]).expand(
                [bs, -1, self.image_embedding_size.0, self.image_embedding_size.1],
                false,
            ),
        };
        (sparse, dense)
    }
}
