//! The image side of the generator's decoder between two of its token steps, one block of
//! image rows at a time.
//!
//! Between two steps on the prompt tokens, SAM's two-way transformer takes every image
//! token through a chain of operations on its own row: a block's image → token attention,
//! its output projection with the residual and `norm4`, then the next token → image
//! attention's key and value projections of the new row and its scores against the
//! prompt tokens' queries. As separate passes over a group of prompts (16 MB per
//! `(4, 4096, 256)` tensor) each pass reads what the one before wrote from memory: the
//! linear kernel ran at two thirds of its in-cache speed in the generator. [`Chain::run`]
//! takes each block of [`BLOCK_ROWS`] rows of one prompt through the whole chain while
//! its values are in the CPU's cache. Every value is computed by the same kernel, in the
//! same order, as by the separate passes (each kernel computes every row alone), so the
//! outputs are those passes' bits; the caller takes this path only where the probes accepted
//! every kernel for the group's shapes.

use tch::{Device, Kind, Tensor};

use super::products::{attention_rows, score_rows, Scores, TokenHeads};
use crate::torch::floats::{cpu_f32, floats, SharedOutput};
use crate::torch::gemm::{PackedLinear, SPLIT_STEP};
use crate::torch::layer_norm::RowNorm;
use crate::torch::parallel::for_each_index;

/// Image rows per piece of work: a multiple of the linear kernel's tile height, small
/// enough that a block's intermediate rows (about 3.5 KB per row) stay in a core's 2 MB
/// second-level cache. In whole generator runs (MobileSAM, alternating) 256 rows took
/// 2–3% less time than 128, 64 rows 5–8% more; 512 was no better than 256.
const BLOCK_ROWS: usize = 256;

/// A packed linear layer and the block of inputs in which its probe found LibTorch's sums.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layer<'a> {
    /// The layer.
    pub(crate) packed: &'a PackedLinear,
    /// Inputs per partial sum ([`PackedLinear::forward`]).
    pub(crate) block: usize,
}

/// One block's image → token attention and the next token → image attention's image
/// side, for a group of `B` prompts on `HW` image tokens of width `C` (attention width
/// `H·c`, `N` prompt tokens).
#[derive(Debug)]
pub(crate) struct Chain<'a> {
    /// `(B, H, HW, c)` image queries of the attention, at any non-negative strides with
    /// the last one 1 (one image's queries expanded over the group, a head view of a
    /// stacked projection).
    pub(crate) queries: &'a Tensor,
    /// `(B, N, H·c)` token keys of the attention.
    pub(crate) token_keys: &'a Tensor,
    /// `(B, N, H·c)` token values of the attention.
    pub(crate) token_values: &'a Tensor,
    /// The attention's softmax factor (`products::image_token_attention_scale`).
    pub(crate) attention_scale: f32,
    /// The attention's output projection, `H·c` → `C`.
    pub(crate) out: Layer<'a>,
    /// `norm4` of `residual + out(attention)`.
    pub(crate) norm: &'a RowNorm,
    /// `(1 or B, HW, C)` contiguous: the block's image keys.
    pub(crate) residual: &'a Tensor,
    /// The next attention's key projection of `keys + key_pe`, whose first `H·c` outputs
    /// are the keys (more may follow: a stacked projection's).
    pub(crate) keys: Layer<'a>,
    /// `(1, HW, C)` contiguous position encodings of the image tokens.
    pub(crate) key_pe: &'a Tensor,
    /// The next attention's value projection of the keys, `C` → `H·c`.
    pub(crate) values: Layer<'a>,
    /// `(B, N, H·c)` the next attention's token queries.
    pub(crate) token_queries: &'a Tensor,
    /// The factor of the next attention's scores (the inverse of its divisor, a power of
    /// two).
    pub(crate) score_scale: f32,
}

/// What [`Chain::run`] computes.
#[derive(Debug)]
pub(crate) struct ChainOutput {
    /// `(B, HW, C)`: the block's new image keys, `norm4(residual + out(attention))`.
    pub(crate) keys: Tensor,
    /// `(B, HW, width − H·c)`: the key projection's outputs after the keys (a stacked
    /// projection's second layer), `None` where it has none.
    pub(crate) queries: Option<Tensor>,
    /// `(B, H, HW, c)`: the value projection of `keys`, per head.
    pub(crate) values: Tensor,
    /// `(B, H, N, HW)`: the next attention's scores, scaled.
    pub(crate) scores: Tensor,
}

impl Chain<'_> {
    /// The chain on every image row, blocks of rows spread over LibTorch's threads; `None`
    /// when the operands' shapes, layouts or kinds are not the documented ones.
    pub(crate) fn run(&self) -> Option<ChainOutput> {
        let (b, heads, hw, c) = self.queries.size4().ok()?;
        let (_, n, inner) = self.token_keys.size3().ok()?;
        let (res_batches, _, width) = self.residual.size3().ok()?;
        let projected_width = self.keys.packed.out_dim();
        let strides = self.queries.stride();
        let fits = inner == heads * c
            && [self.token_keys, self.token_values, self.token_queries]
                .iter()
                .all(|t| t.size() == [b, n, inner] && cpu_f32(t))
            && cpu_f32(self.queries)
            && strides.last() == Some(&1)
            && strides.iter().all(|&s| s >= 0)
            && (res_batches == 1 || res_batches == b)
            && self.residual.size()[1] == hw
            && self.key_pe.size() == [1, hw, width]
            && [self.residual, self.key_pe]
                .iter()
                .all(|t| cpu_f32(t) && t.is_contiguous())
            && (self.out.packed.in_dim(), self.out.packed.out_dim()) == (inner, width)
            && self.norm.width() == width as usize
            && (self.values.packed.in_dim(), self.values.packed.out_dim()) == (width, inner)
            && self.keys.packed.in_dim() == width
            && (projected_width == inner || (projected_width > inner && inner % SPLIT_STEP as i64 == 0));
        if !fits || [b, n, hw, heads, c].contains(&0) {
            return None;
        }
        let [sb, sh, sr, _] = strides[..] else {
            return None;
        };
        let (token_keys, token_values, token_queries) = (
            self.token_keys.contiguous(),
            self.token_values.contiguous(),
            self.token_queries.contiguous(),
        );
        let shape = TokenHeads {
            tokens: n as usize,
            heads: heads as usize,
            c: c as usize,
        };
        let (b, hw, width, inner) = (b as usize, hw as usize, width as usize, inner as usize);
        let projected_width = projected_width as usize;
        let (sb, sh, sr) = (sb as usize, sh as usize, sr as usize);
        let extra = projected_width - inner;
        let empty = |shape: &[usize]| {
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            Tensor::empty(shape.as_slice(), (Kind::Float, Device::Cpu))
        };
        let keys = empty(&[b, hw, width]);
        let queries = empty(&[b, hw, extra]);
        let values = empty(&[b, shape.heads, hw, shape.c]);
        let scores = empty(&[b, shape.heads, shape.tokens, hw]);
        // SAFETY: the inputs outlive the slices and are only read here; the queries (a view
        // read in place), residual and positional encodings are the caller's and the token
        // tensors contiguous copies, none written by anyone while the run lasts.
        let (q, tk, tv, tq, residual, key_pe) = unsafe {
            (
                floats(self.queries),
                floats(&token_keys),
                floats(&token_values),
                floats(&token_queries),
                floats(self.residual),
                floats(self.key_pe),
            )
        };
        let outputs = [&keys, &queries, &values, &scores].map(|t| {
            // SAFETY: the tensors were just allocated here; only this run's pieces of work
            // write them (at rows no two share, below) and nothing reads them meanwhile.
            unsafe { SharedOutput::new(t) }
        });
        let [keys_out, queries_out, values_out, scores_out] = &outputs;
        let per_prompt = shape.tokens * inner;
        let (out, norm, key_layer, value_layer) = (self.out, self.norm, self.keys, self.values);
        let (attention_scale, score_scale) = (self.attention_scale, self.score_scale);
        let blocks = hw.div_ceil(BLOCK_ROWS);
        for_each_index(b * blocks, &|job| {
            let (p, r0) = (job / blocks, job % blocks * BLOCK_ROWS);
            let rows = BLOCK_ROWS.min(hw - r0);
            let (tk, tv, tq) = [tk, tv, tq]
                .map(|data| &data[p * per_prompt..][..per_prompt])
                .into();
            let row = p * hw + r0;
            SCRATCH.with_borrow_mut(|scratch| {
                let sizes = [
                    rows * inner,
                    rows * inner,
                    rows * inner,
                    shape.heads * shape.tokens * rows,
                ];
                scratch.resize(scratch.len().max(sizes.iter().sum()), 0.0);
                let (mixed, rest) = scratch.split_at_mut(sizes[0]);
                let (block_keys, rest) = rest.split_at_mut(sizes[1]);
                let (block_values, rest) = rest.split_at_mut(sizes[2]);
                let block_scores = &mut rest[..sizes[3]];
                let source = Scores::Queries {
                    q: &q[p * sb + r0 * sr..],
                    head_stride: sh,
                    row_stride: sr,
                    keys: tk,
                };
                attention_rows(&source, tv, shape, attention_scale, mixed);
                let first = if res_batches == 1 { r0 } else { row };
                // SAFETY (every output slice below): this piece of work writes rows
                // r0..r0 + rows of prompt p, and no other piece writes any of them (each
                // (p, r0) is one job), so no two live slices overlap; each lies within its
                // tensor (offsets from the sizes it was allocated with).
                let new_keys = unsafe { keys_out.slice(row * width, rows * width) };
                out.packed.rows_into(
                    mixed,
                    None,
                    Some(&residual[first * width..][..rows * width]),
                    Some(norm),
                    out.block,
                    new_keys,
                );
                // The next attention's keys (into the scratch rows, for the scores below)
                // and, where the projection is stacked, its query half straight into
                // its tensor.
                let key_pe = &key_pe[r0 * width..][..rows * width];
                if extra > 0 {
                    let queries = unsafe { queries_out.slice(row * extra, rows * extra) };
                    key_layer.packed.rows_into_split(
                        new_keys,
                        Some(key_pe),
                        key_layer.block,
                        inner,
                        block_keys,
                        queries,
                    );
                } else {
                    key_layer.packed.rows_into(
                        new_keys,
                        Some(key_pe),
                        None,
                        None,
                        key_layer.block,
                        block_keys,
                    );
                }
                value_layer
                    .packed
                    .rows_into(new_keys, None, None, None, value_layer.block, block_values);
                score_rows(tq, block_keys, inner, shape, score_scale, block_scores);
                // Values per head, `(H, HW, c)` for each prompt: the layout of the
                // attention's product, which would otherwise copy them there.
                for h in 0..shape.heads {
                    let at = ((p * shape.heads + h) * hw + r0) * shape.c;
                    let to = unsafe { values_out.slice(at, rows * shape.c) };
                    for (to, from) in to.chunks_exact_mut(shape.c).zip(block_values.chunks_exact(inner)) {
                        copy_head(to, &from[h * shape.c..][..shape.c]);
                    }
                }
                for (plane, part) in block_scores.chunks(rows).enumerate() {
                    let at = (p * shape.heads * shape.tokens + plane) * hw + r0;
                    unsafe { scores_out.slice(at, rows) }.copy_from_slice(part);
                }
            });
        });
        Some(ChainOutput {
            keys,
            queries: (extra > 0).then_some(queries),
            values,
            scores,
        })
    }
}

thread_local! {
    /// Each thread's scratch rows for [`Chain::run`]'s blocks (kept between blocks and
    /// runs, so that a block does not allocate and clear its own).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `from` into `to` (one head's values of a row): SAM's heads of 16 by fixed-length moves
/// (a copy of a length known only at run time is a call to `memcpy`, which cost more than
/// the 64 bytes it moves).
fn copy_head(to: &mut [f32], from: &[f32]) {
    match (<&mut [f32; 16]>::try_from(&mut *to), <&[f32; 16]>::try_from(from)) {
        (Ok(to), Ok(from)) => *to = *from,
        _ => to.copy_from_slice(from),
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{Chain, Layer, BLOCK_ROWS};
    use crate::sam::products::{
        attention_rows, probe_tensor, score_rows, separate_heads, Scores, TokenHeads,
    };
    use crate::torch::gemm::tests::values;
    use crate::torch::gemm::PackedLinear;
    use crate::torch::layer_norm::RowNorm;

    /// A random layer of `(out, in)` weights, packed.
    fn layer(out: i64, inp: i64, seed: u64) -> PackedLinear {
        let w = probe_tensor(&[out, inp], seed) / (inp as f64).sqrt();
        let b = probe_tensor(&[out], seed + 1);
        PackedLinear::new(&w, Some(&b)).expect("a float32 layer of 16-wide outputs")
    }

    /// The chain's outputs are those of its kernels run on whole tensors one after
    /// another, for queries shared by the group or per prompt, a residual shared or per
    /// prompt, a stacked key projection or a plain one, and image rows that end in a
    /// partial block (and a partial tile of the linear kernel).
    #[test]
    fn blocks_of_rows_give_the_whole_tensor_values() {
        let _guard = tch::no_grad_guard();
        if !crate::torch::gemm::has_avx2_fma() {
            return;
        }
        let (b, hw, n, heads, c, width) = (3i64, 2 * BLOCK_ROWS as i64 + 44, 7i64, 8i64, 16i64, 256i64);
        let inner = heads * c;
        let shape = TokenHeads {
            tokens: n as usize,
            heads: heads as usize,
            c: c as usize,
        };
        let norm = RowNorm::new(
            &(Tensor::ones([width], (Kind::Float, Device::Cpu)) + probe_tensor(&[width], 3) * 0.1),
            &probe_tensor(&[width], 4),
            1e-5,
        )
        .expect("a float32 norm");
        let out_layer = layer(width, inner, 10);
        let value_layer = layer(inner, width, 20);
        let token_keys = probe_tensor(&[b, n, inner], 5) * 4.0;
        let token_values = probe_tensor(&[b, n, inner], 6);
        let token_queries = probe_tensor(&[b, n, inner], 7) * 4.0;
        let key_pe = probe_tensor(&[1, hw, width], 8);
        for (shared, stacked) in [(true, true), (false, false)] {
            let queries = if shared {
                separate_heads(&probe_tensor(&[1, hw, inner], 9), heads).expand([b, -1, -1, -1], false)
            } else {
                separate_heads(
                    &probe_tensor(&[b, hw, 2 * inner], 9).narrow(2, inner, inner),
                    heads,
                )
            };
            let residual = probe_tensor(&[if shared { 1 } else { b }, hw, width], 11);
            let key_layer = layer(if stacked { 2 * inner } else { inner }, width, 30);
            let chain = Chain {
                queries: &queries,
                token_keys: &token_keys,
                token_values: &token_values,
                attention_scale: 0.25,
                out: Layer {
                    packed: &out_layer,
                    block: 128,
                },
                norm: &norm,
                residual: &residual,
                keys: Layer {
                    packed: &key_layer,
                    block: 256,
                },
                key_pe: &key_pe,
                values: Layer {
                    packed: &value_layer,
                    block: 128,
                },
                token_queries: &token_queries,
                score_scale: 0.25,
            };
            let got = chain.run().expect("the documented operands");

            // The same kernels on whole tensors.
            let q = queries.contiguous();
            let (qv, kv, vv, tq) = (
                values(&q),
                values(&token_keys),
                values(&token_values),
                values(&token_queries),
            );
            let (hw_, inner_) = (hw as usize, inner as usize);
            let per_q = hw_ * inner_;
            let per_token = shape.tokens * inner_;
            let mut mixed = vec![0.0f32; b as usize * per_q];
            for (p, out) in mixed.chunks_mut(per_q).enumerate() {
                let source = Scores::Queries {
                    q: &qv[p * per_q..],
                    head_stride: hw_ * c as usize,
                    row_stride: c as usize,
                    keys: &kv[p * per_token..][..per_token],
                };
                attention_rows(&source, &vv[p * per_token..][..per_token], shape, 0.25, out);
            }
            let mixed = Tensor::from_slice(&mixed).view([b, hw, inner]);
            let keys = out_layer
                .forward(&mixed, None, Some(&residual), 128, Some(&norm))
                .expect("whole-tensor out projection");
            let projected = key_layer
                .forward(&keys, Some(&key_pe), None, 256, None)
                .expect("whole-tensor key projection");
            let want_values = value_layer
                .forward(&keys, None, None, 128, None)
                .expect("whole-tensor value projection");
            let pv = values(&projected);
            let pw = key_layer.out_dim() as usize;
            let per_scores = shape.heads * shape.tokens * hw_;
            let mut scores = vec![0.0f32; b as usize * per_scores];
            for (p, out) in scores.chunks_mut(per_scores).enumerate() {
                let q = &tq[p * per_token..][..per_token];
                score_rows(q, &pv[p * hw_ * pw..][..hw_ * pw], pw, shape, 0.25, out);
            }
            let scores = Tensor::from_slice(&scores).view([b, heads, n, hw]);

            assert!(got.keys.equal(&keys), "shared {shared}: keys differ");
            assert!(
                got.values
                    .equal(&separate_heads(&want_values, heads).contiguous()),
                "shared {shared}: values differ"
            );
            assert!(got.scores.equal(&scores), "shared {shared}: scores differ");
            match got.queries {
                Some(q) => {
                    assert!(stacked);
                    assert!(q.equal(&projected.narrow(2, inner, inner)), "queries differ");
                }
                None => assert!(!stacked, "a stacked projection's queries are kept"),
            }
        }
    }
}
