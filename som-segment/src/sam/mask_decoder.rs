//! The mask decoder (`segment_anything/modeling/mask_decoder.py`): output tokens through
//! the two-way transformer, a transposed-convolution upscaler, per-mask hypernetwork MLPs
//! and the IoU prediction head.

use tch::Tensor;

use super::common::LayerNorm2d;
use super::config::MaskDecoderConfig;
use super::transformer::{SharedImage, TwoWayTransformer};
use super::SamError;
use crate::torch::nn::{ConvTranspose2d, Linear};
use crate::torch::Vb;

/// `MLP`: linear layers with ReLU between them.
#[derive(Debug)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn load(vb: &Vb, input: i64, hidden: i64, output: i64, num_layers: usize) -> Result<Self, SamError> {
        let layers = (0..num_layers)
            .map(|i| {
                let n = if i == 0 { input } else { hidden };
                let k = if i + 1 == num_layers { output } else { hidden };
                Linear::load(&vb.pp("layers").pp(i), n, k, true)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mlp { layers })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i + 1 < self.layers.len() {
                x = x.relu();
            }
        }
        x
    }
}

/// What [`MaskDecoder::decode_shared`] computes for a batch of prompts.
#[derive(Debug)]
pub(crate) struct DecodedTokens {
    /// The image keys after the transformer, `(len, hw, C)` per group of [`groups`] (kept
    /// apart: the upscaling takes only the survivors' cells from them).
    keys: Vec<Tensor>,
    /// `(B, K_all, C / 8)` hypernetwork outputs, one per mask token.
    hyper_in: Tensor,
    /// `(B, K_all)` IoU predictions.
    pub(crate) iou: Tensor,
}

/// Prompts decoded together by the automatic generator's decoder (see
/// [`MaskDecoder::decode_shared`]).
pub(crate) const DECODE_GROUP: i64 = 4;

/// `(start, len)` of the groups that cover `n` prompts: [`DECODE_GROUP`] each, the last one
/// taking the remainder (up to `2·DECODE_GROUP - 1`), one group when `n` is smaller. No group
/// is smaller than the group size unless the batch is: LibTorch computes small batches on
/// other paths, whose values may differ in the last bits (groups of two did).
fn groups(n: i64) -> impl Iterator<Item = (i64, i64)> {
    let count = (n / DECODE_GROUP).max(i64::from(n > 0));
    (0..count).map(move |i| {
        let start = i * DECODE_GROUP;
        let len = if i + 1 == count { n - start } else { DECODE_GROUP };
        (start, len)
    })
}

/// Where prompt `p` of a batch sits among the `count` groups [`groups`] made of it: the
/// group's index and `p`'s position in it (the last group takes the remainder).
fn group_of(p: i64, count: usize) -> (usize, i64) {
    let g = (p / DECODE_GROUP).min(count as i64 - 1);
    (g as usize, p - g * DECODE_GROUP)
}

/// The mask decoder (`MaskDecoder`).
#[derive(Debug)]
pub struct MaskDecoder {
    transformer: TwoWayTransformer,
    iou_token: Tensor,
    mask_tokens: Tensor,
    upscale1: ConvTranspose2d,
    upscale_ln: LayerNorm2d,
    upscale2: ConvTranspose2d,
    hypernetworks: Vec<Mlp>,
    iou_head: Mlp,
    num_mask_tokens: i64,
}

impl MaskDecoder {
    pub(crate) fn load(vb: &Vb, c: &MaskDecoderConfig) -> Result<Self, SamError> {
        let d = c.transformer.embedding_dim;
        let n = c.num_multimask_outputs + 1;
        let up = vb.pp("output_upscaling");
        Ok(MaskDecoder {
            transformer: TwoWayTransformer::load(&vb.pp("transformer"), &c.transformer)?,
            iou_token: vb.pp("iou_token").get("weight", &[1, d])?,
            mask_tokens: vb.pp("mask_tokens").get("weight", &[n, d])?,
            upscale1: ConvTranspose2d::load(&up.pp(0), d, d / 4)?,
            upscale_ln: LayerNorm2d::load(&up.pp(1), d / 4)?,
            upscale2: ConvTranspose2d::load(&up.pp(3), d / 4, d / 8)?,
            hypernetworks: (0..n)
                .map(|i| Mlp::load(&vb.pp("output_hypernetworks_mlps").pp(i), d, d, d / 8, 3))
                .collect::<Result<Vec<_>, _>>()?,
            iou_head: Mlp::load(
                &vb.pp("iou_prediction_head"),
                d,
                c.iou_head_hidden_dim,
                n,
                c.iou_head_depth,
            )?,
            num_mask_tokens: n,
        })
    }

    /// Predicts masks from `(1, C, h, w)` image embeddings, their `(1, C, h, w)` position
    /// encodings and `(B, N, C)` / `(B, C, h, w)` prompt embeddings. Returns `(B, K, 4h, 4w)`
    /// mask logits and `(B, K)` IoU predictions, with `K` = 3 in multimask mode, else 1.
    pub fn forward(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        dense: &Tensor,
        multimask_output: bool,
    ) -> (Tensor, Tensor) {
        let (masks, iou) = self.predict_masks(image_embeddings, image_pe, sparse, dense);
        if multimask_output {
            (
                masks.narrow(1, 1, self.num_mask_tokens - 1),
                iou.narrow(1, 1, self.num_mask_tokens - 1),
            )
        } else {
            (masks.narrow(1, 0, 1), iou.narrow(1, 0, 1))
        }
    }

    /// The image-only parts of decoding prompts on `(1, C, h, w)` image embeddings with
    /// position encodings `image_pe` and the dense "no mask" embedding `dense` (`(1, C, h, w)`
    /// or broadcastable); `None` for a decoder whose transformer has no block.
    pub(crate) fn share_image(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        dense: &Tensor,
    ) -> Option<SharedImage> {
        let _guard = tch::no_grad_guard();
        let src = image_embeddings + dense;
        self.transformer.share_image(&src, image_pe)
    }

    /// Runs the transformer for `(B, N, C)` sparse prompts (no mask prompt) on a shared image
    /// and predicts the IoU of every mask token: `(tokens, image keys, iou (B, K_all))`,
    /// before any mask is upscaled.
    ///
    /// The prompts go through in groups of [`DECODE_GROUP`]: the values are the same as in
    /// one batch (every row is computed the same way whatever the batch size, which
    /// `shared_decoder_matches` in the generator checks on each crop), but a group's
    /// `(group, hw, C)` image tokens stay in the CPU cache between operations where a whole
    /// batch's (256 MB at 64 prompts) went through memory at every step.
    pub(crate) fn decode_shared(&self, shared: &SharedImage, sparse: &Tensor) -> DecodedTokens {
        let _guard = tch::no_grad_guard();
        let parts: Vec<DecodedTokens> = groups(sparse.size()[0])
            .map(|(start, len)| self.decode_group(shared, &sparse.narrow(0, start, len)))
            .collect();
        if parts.len() == 1 {
            return parts.into_iter().next().expect("one part");
        }
        let cat = |f: fn(&DecodedTokens) -> &Tensor| Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0);
        let (hyper_in, iou) = (cat(|d| &d.hyper_in), cat(|d| &d.iou));
        DecodedTokens {
            keys: parts.into_iter().flat_map(|d| d.keys).collect(),
            hyper_in,
            iou,
        }
    }

    /// [`Self::decode_shared`] for one group of prompts.
    fn decode_group(&self, shared: &SharedImage, sparse: &Tensor) -> DecodedTokens {
        let b = sparse.size()[0];
        let output_tokens = Tensor::cat(&[&self.iou_token, &self.mask_tokens], 0)
            .unsqueeze(0)
            .expand([b, -1, -1], false);
        let tokens = Tensor::cat(&[&output_tokens, sparse], 1);
        let (hs, keys) = self.transformer.forward_shared(shared, &tokens);
        let iou = self.iou_head.forward(&hs.select(1, 0));
        let mask_tokens_out = hs.narrow(1, 1, self.num_mask_tokens);
        let hyper_in = Tensor::stack(
            &self
                .hypernetworks
                .iter()
                .enumerate()
                .map(|(i, mlp)| mlp.forward(&mask_tokens_out.select(1, i as i64)))
                .collect::<Vec<_>>(),
            1,
        );
        DecodedTokens {
            keys: vec![keys],
            hyper_in,
            iou,
        }
    }

    /// Low-res logits `(S, K_all, 4·rows, 4·cols)` of the prompts `which` (indices into the
    /// batch of `decoded`, at least two of them) for the top-left `rows × cols` cells of the
    /// `h × w` embedding grid; every value equals the decoder's full-batch, full-size output.
    pub(crate) fn upscale_selected(
        &self,
        decoded: &DecodedTokens,
        which: &[i64],
        grid: (i64, i64),
        cells: (i64, i64),
    ) -> Tensor {
        let _guard = tch::no_grad_guard();
        let parts: Vec<Tensor> = groups(which.len() as i64)
            .map(|(start, len)| {
                let which = &which[start as usize..(start + len) as usize];
                self.upscale_group(decoded, which, grid, cells)
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// [`Self::upscale_selected`] for one group of prompts (at least two).
    fn upscale_group(
        &self,
        decoded: &DecodedTokens,
        which: &[i64],
        grid: (i64, i64),
        cells: (i64, i64),
    ) -> Tensor {
        let (h, w) = grid;
        let (rows, cols) = cells;
        // The prompts' image keys for the used cells only, `(S, rows, cols, C)` contiguous
        // (as upstream's keys after `.contiguous()` of that window), read from the groups.
        let cells: Vec<Tensor> = which
            .iter()
            .map(|&p| {
                let (g, i) = group_of(p, decoded.keys.len());
                let keys = decoded.keys[g].get(i);
                let c = keys.size()[1];
                keys.view([h, w, c]).narrow(0, 0, rows).narrow(1, 0, cols)
            })
            .collect();
        let src = Tensor::stack(&cells, 0).permute([0, 3, 1, 2]);
        let index = Tensor::from_slice(which).to_device(decoded.hyper_in.device());
        let hyper_in = decoded.hyper_in.index_select(0, &index);
        let up = self.upscale_ln.forward(&self.upscale1.forward(&src)).gelu("none");
        let up = self.upscale2.forward(&up).gelu("none");
        let (b, c, h, w) = up.size4().expect("upscaled is BCHW");
        hyper_in.matmul(&up.view([b, c, h * w])).view([b, -1, h, w])
    }

    /// Masks predicted per prompt (`K_all`, including the single-mask token).
    pub(crate) fn num_mask_tokens(&self) -> i64 {
        self.num_mask_tokens
    }

    fn predict_masks(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        dense: &Tensor,
    ) -> (Tensor, Tensor) {
        let b = sparse.size()[0];
        let output_tokens = Tensor::cat(&[&self.iou_token, &self.mask_tokens], 0)
            .unsqueeze(0)
            .expand([b, -1, -1], false);
        let tokens = Tensor::cat(&[&output_tokens, sparse], 1);
        let src = image_embeddings.repeat_interleave_self_int(b, 0, None) + dense;
        let pos_src = image_pe.repeat_interleave_self_int(b, 0, None);
        let (b, c, h, w) = src.size4().expect("src is BCHW");
        let (hs, src) = self.transformer.forward(&src, &pos_src, &tokens);
        let iou_token_out = hs.select(1, 0);
        let mask_tokens_out = hs.narrow(1, 1, self.num_mask_tokens);
        let src = src.transpose(1, 2).view([b, c, h, w]);
        let up = self.upscale_ln.forward(&self.upscale1.forward(&src)).gelu("none");
        let up = self.upscale2.forward(&up).gelu("none");
        let hyper_in = Tensor::stack(
            &self
                .hypernetworks
                .iter()
                .enumerate()
                .map(|(i, mlp)| mlp.forward(&mask_tokens_out.select(1, i as i64)))
                .collect::<Vec<_>>(),
            1,
        );
        let (b, c, h, w) = up.size4().expect("upscaled is BCHW");
        let masks = hyper_in.matmul(&up.view([b, c, h * w])).view([b, -1, h, w]);
        let iou_pred = self.iou_head.forward(&iou_token_out);
        (masks, iou_pred)
    }
}

#[cfg(test)]
mod tests {
    use super::groups;

    #[test]
    fn groups_cover_the_batch_without_a_small_group() {
        let all = |n| groups(n).collect::<Vec<_>>();
        assert_eq!(all(0), vec![]);
        assert_eq!(all(1), vec![(0, 1)]);
        assert_eq!(all(3), vec![(0, 3)]);
        assert_eq!(all(4), vec![(0, 4)]);
        assert_eq!(all(6), vec![(0, 6)]);
        assert_eq!(all(9), vec![(0, 4), (4, 5)]);
        assert_eq!(all(11), vec![(0, 4), (4, 7)]);
        assert_eq!(all(64).len(), 16);
        for n in 4..200 {
            let g = all(n);
            assert_eq!(g.iter().map(|&(_, len)| len).sum::<i64>(), n);
            assert!(g.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
            assert!(g
                .iter()
                .all(|&(_, len)| (super::DECODE_GROUP..2 * super::DECODE_GROUP).contains(&len)));
        }
    }

    #[test]
    fn group_of_finds_each_prompt_in_the_group_that_holds_it() {
        for n in 1..200 {
            let g = groups(n).collect::<Vec<_>>();
            for (index, &(start, len)) in g.iter().enumerate() {
                for p in start..start + len {
                    assert_eq!(
                        super::group_of(p, g.len()),
                        (index, p - start),
                        "prompt {p} of {n}"
                    );
                }
            }
        }
    }
}
