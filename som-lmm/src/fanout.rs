//! Many questions at once: bounded fan-out and summed usage.

use futures_util::StreamExt as _;
use som_core::{GroundingAnswer, GroundingModel, GroundingRequest, SomError, Usage};

/// Grounds every request with at most `concurrency` in flight at once;
/// results come back in the order of `requests`.
///
/// ```
/// use som_core::{BoxFuture, GroundingAnswer, GroundingModel, GroundingRequest, SomError};
/// struct Echo;
/// impl GroundingModel for Echo {
///     fn ground<'a>(&'a self, r: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
///         Box::pin(async move { Ok(GroundingAnswer::new(r.prompt.clone())) })
///     }
/// }
/// # let seg = som_core::Segmentation::new(som_core::ImageSize::new(2, 2), vec![])?;
/// # let marked = som_core::MarkedImage::new(image::RgbImage::new(2, 2), vec![], seg)?;
/// let reqs: Vec<_> = ["a", "b", "c"].iter().map(|p| GroundingRequest::new(&marked, *p)).collect();
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let answers = rt.block_on(som_lmm::ground_all(&Echo, &reqs, 2));
/// let texts: Vec<String> = answers.into_iter().map(|a| a.map(|a| a.text)).collect::<Result<_, _>>()?;
/// assert_eq!(texts, ["a", "b", "c"]);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub async fn ground_all<'a, M: GroundingModel + ?Sized>(
    model: &'a M,
    requests: &'a [GroundingRequest<'a>],
    concurrency: usize,
) -> Vec<Result<GroundingAnswer, SomError>> {
    futures_util::stream::iter(requests.iter().map(|r| model.ground(r)))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Sums token usage over answers (answers without usage count as zero).
pub fn total_usage<'a>(answers: impl IntoIterator<Item = &'a GroundingAnswer>) -> Usage {
    answers
        .into_iter()
        .filter_map(|a| a.usage)
        .fold(Usage::default(), |acc, u| Usage {
            input_tokens: acc.input_tokens.saturating_add(u.input_tokens),
            output_tokens: acc.output_tokens.saturating_add(u.output_tokens),
        })
}
