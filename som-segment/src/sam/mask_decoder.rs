//! The mask decoder (`segment_anything/modeling/mask_decoder.py`): output tokens through
//! the two-way transformer, a transposed-convolution upscaler, per-mask hypernetwork MLPs
//! and the IoU prediction head.

use tch::Tensor;

use super::common::LayerNorm2d;
use super::config::MaskDecoderConfig;
use super::mask_product::MaskProduct;
use super::norm_gelu::{gelu, layer_norm2d_gelu};
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

/// Upstream's masks of `(B, K, C')` hypernetwork outputs and the `(B, C', H, W)` upscaled
/// embedding: `(hyper_in @ upscaled.view(B, C', H·W)).view(B, -1, H, W)`.
pub(super) fn mask_logits(hyper_in: &Tensor, upscaled: &Tensor) -> Tensor {
    let (b, c, h, w) = upscaled.size4().expect("upscaled is BCHW");
    hyper_in.matmul(&upscaled.view([b, c, h * w])).view([b, -1, h, w])
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
    /// `upscale2`, its GELU and the mask product fused, where the kernel applies.
    mask_product: Option<MaskProduct>,
    hypernetworks: Vec<Mlp>,
    iou_head: Mlp,
    num_mask_tokens: i64,
}

impl MaskDecoder {
    pub(crate) fn load(vb: &Vb, c: &MaskDecoderConfig) -> Result<Self, SamError> {
        let d = c.transformer.embedding_dim;
        let n = c.num_multimask_outputs + 1;
        let up = vb.pp("output_upscaling");
        let upscale2 = ConvTranspose2d::load(&up.pp(3), d / 4, d / 8)?;
        Ok(MaskDecoder {
            mask_product: MaskProduct::new(&upscale2),
            transformer: TwoWayTransformer::load(&vb.pp("transformer"), &c.transformer)?,
            iou_token: vb.pp("iou_token").get("weight", &[1, d])?,
            mask_tokens: vb.pp("mask_tokens").get("weight", &[n, d])?,
            upscale1: ConvTranspose2d::load(&up.pp(0), d, d / 4)?,
            upscale_ln: LayerNorm2d::load(&up.pp(1), d / 4)?,
            upscale2,
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
    /// The prompts go through the transformer in groups of [`DECODE_GROUP`]: the values are
    /// the same as in one batch (every row is computed the same way whatever the batch
    /// size, which `shared_decoder_matches` in the generator checks on each crop), but a
    /// group's tensors between the transformer's row chains (`super::image_rows`) stay
    /// small where a whole batch's (256 MB per image-token tensor at 64 prompts) went
    /// through memory at every step; groups of 8 and 16 took 8–9% and 19–20% longer than groups
    /// of 4 in whole generator runs. The IoU head and the hypernetworks then run on the
    /// whole batch, as in the reference.
    pub(crate) fn decode_shared(&self, shared: &SharedImage, sparse: &Tensor) -> DecodedTokens {
        let _guard = tch::no_grad_guard();
        let b = sparse.size()[0];
        let output_tokens = Tensor::cat(&[&self.iou_token, &self.mask_tokens], 0).unsqueeze(0);
        let (tokens, keys): (Vec<Tensor>, Vec<Tensor>) = groups(b)
            .map(|(start, len)| {
                let sparse = sparse.narrow(0, start, len);
                let tokens = Tensor::cat(&[&output_tokens.expand([len, -1, -1], false), &sparse], 1);
                self.transformer.forward_shared(shared, &tokens)
            })
            .unzip();
        // The heads on the whole batch at once, as the reference runs them: their matrix
        // products have one row per prompt, and LibTorch sums rows in another order when
        // there are only a few of them (a group's IoU predictions came out a few ulp off
        // those of a batch of 64).
        let (iou, hyper_in) = self.heads(&Tensor::cat(&tokens, 0));
        DecodedTokens { keys, hyper_in, iou }
    }

    /// The IoU predictions `(B, K_all)` and hypernetwork outputs `(B, K_all, C / 8)` of the
    /// transformer's `(B, N, C)` output tokens.
    fn heads(&self, hs: &Tensor) -> (Tensor, Tensor) {
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
        (iou, hyper_in)
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
        // The same values as predict_masks's LibTorch operations, by the kernels where they
        // apply (the convolutions' outputs are channels-last, as upstream's are).
        let up = self.upscale1.forward(&src);
        let up = layer_norm2d_gelu(&self.upscale_ln, &up)
            .unwrap_or_else(|| self.upscale_ln.forward(&up).gelu("none"));
        let fused = self.mask_product.as_ref().and_then(|fused| {
            // The channels-last map's memory as (S, h, w, C) pixels.
            fused.masks(&up.permute([0, 2, 3, 1]), &hyper_in)
        });
        if let Some(masks) = fused {
            return masks;
        }
        let mut up = self.upscale2.forward(&up);
        gelu(&mut up);
        mask_logits(&hyper_in, &up)
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
        let src = src.transpose(1, 2).view([b, c, h, w]);
        let up = self.upscale_ln.forward(&self.upscale1.forward(&src)).gelu("none");
        let up = self.upscale2.forward(&up).gelu("none");
        let (iou_pred, hyper_in) = self.heads(&hs);
        let masks = mask_logits(&hyper_in, &up);
        (masks, iou_pred)
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{groups, MaskDecoder};
    use crate::sam::config::MaskDecoderConfig;
    use crate::sam::transformer::tests::{full_size_weights, random_weight, FULL_SIZE};
    use crate::torch::Weights;

    /// SAM's mask decoder at the released models' sizes, random weights.
    fn full_size_decoder() -> MaskDecoder {
        let mut seed = 100;
        let mut tensors = full_size_weights("transformer.", &mut seed);
        let mut add = |name: String, shape: &[i64]| {
            let t = random_weight(&name, shape, &mut seed);
            tensors.push((name, t));
        };
        add("iou_token.weight".into(), &[1, 256]);
        add("mask_tokens.weight".into(), &[4, 256]);
        add("output_upscaling.0.weight".into(), &[256, 64, 2, 2]);
        add("output_upscaling.0.bias".into(), &[64]);
        add("output_upscaling.1.weight".into(), &[64]);
        add("output_upscaling.1.bias".into(), &[64]);
        add("output_upscaling.3.weight".into(), &[64, 32, 2, 2]);
        add("output_upscaling.3.bias".into(), &[32]);
        let mlp = |add: &mut dyn FnMut(String, &[i64]), prefix: String, out: i64| {
            for (i, o) in [256, 256, out].into_iter().enumerate() {
                add(format!("{prefix}.layers.{i}.weight"), &[o, 256]);
                add(format!("{prefix}.layers.{i}.bias"), &[o]);
            }
        };
        for i in 0..4 {
            mlp(&mut add, format!("output_hypernetworks_mlps.{i}"), 32);
        }
        mlp(&mut add, "iou_prediction_head".into(), 4);
        let weights = Weights::from_tensors(tensors).expect("float tensors");
        let config = MaskDecoderConfig {
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            transformer: FULL_SIZE,
        };
        let decoder = MaskDecoder::load(&weights.root("sam"), &config).expect("all weights present");
        weights.check_all_used("sam").expect("every weight taken");
        decoder
    }

    /// The generator's decoder (transformer in groups, heads on the batch) gives the IoU
    /// predictions of the reference's decoder on the same batch bit for bit, also for
    /// batches of many groups: LibTorch sums the heads' rows of a batch of 16 in another
    /// order than a group's 4 (on the Intel Xeon here the predictions of heads run per group
    /// differed in the last bits).
    #[test]
    fn the_shared_decoder_predicts_the_references_iou_for_whole_batches() {
        let _guard = tch::no_grad_guard();
        let decoder = full_size_decoder();
        tch::manual_seed(7);
        let opts = (Kind::Float, Device::Cpu);
        let image = Tensor::randn([1, 256, 64, 64], opts);
        let pe = Tensor::randn([1, 256, 64, 64], opts);
        let dense = Tensor::randn([1, 256, 1, 1], opts).expand([1, 256, 64, 64], false);
        let shared = decoder.share_image(&image, &pe, &dense).expect("two blocks");
        for b in [5i64, 16] {
            let sparse = Tensor::randn([b, 2, 256], opts);
            let dense_b = dense.expand([b, -1, -1, -1], false);
            let (_, want) = decoder.forward(&image, &pe, &sparse, &dense_b, true);
            let got = decoder.decode_shared(&shared, &sparse).iou.narrow(1, 1, 3);
            let differ = got.ne_tensor(&want).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(differ, 0, "batch of {b}: {differ} IoU predictions differ");
        }
    }

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
