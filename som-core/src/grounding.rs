//! Asking a multimodal model about a marked image.
//!
//! The trait lives here so that evaluation code can drive any model through a
//! trait object; the HTTP clients live in `som-lmm`. The method returns a boxed
//! future so the trait stays object safe and `som-core` needs no async runtime.

use std::future::Future;
use std::pin::Pin;

use crate::error::SomError;
use crate::marked::MarkedImage;

/// A boxed, sendable future (what [`GroundingModel::ground`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A question about a marked image.
#[derive(Debug, Clone)]
pub struct GroundingRequest<'a> {
    /// The marked image to show the model.
    pub marked: &'a MarkedImage,
    /// The question or instruction (it may cite marks as `[3]`).
    pub prompt: String,
}

/// A mark the model's answer named, resolved against the marked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRef {
    /// The mark's id.
    pub id: u32,
    /// The mark's text as printed on the image.
    pub text: String,
    /// Index of the region in the marked image's segmentation.
    pub region: usize,
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the request.
    pub input_tokens: u64,
    /// Tokens in the answer.
    pub output_tokens: u64,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundingAnswer {
    /// The answer text.
    pub text: String,
    /// The marks the answer names that exist on the image, in order of first mention.
    pub marks: Vec<MarkRef>,
    /// Labels the answer names that do not exist on the image.
    pub unknown: Vec<String>,
    /// Token usage, when reported.
    pub usage: Option<Usage>,
}

/// A multimodal model that can answer questions about a marked image.
///
/// # Example
/// ```
/// use som_core::{BoxFuture, GroundingAnswer, GroundingModel, GroundingRequest, SomError};
/// struct Silent;
/// impl GroundingModel for Silent {
///     fn ground<'a>(&'a self, _req: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
///         Box::pin(async { Ok(GroundingAnswer { text: String::new(), marks: vec![], unknown: vec![], usage: None }) })
///     }
/// }
/// let _model: Box<dyn GroundingModel> = Box::new(Silent);
/// ```
pub trait GroundingModel: Send + Sync {
    /// Sends the request and returns the parsed answer.
    ///
    /// # Errors
    /// [`SomError::Grounding`] for transport, provider and parsing failures.
    fn ground<'a>(&'a self, request: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>>;
}

impl<T: GroundingModel + ?Sized> GroundingModel for Box<T> {
    fn ground<'a>(&'a self, request: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
        (**self).ground(request)
    }
}

impl<T: GroundingModel + ?Sized> GroundingModel for &T {
    fn ground<'a>(&'a self, request: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
        (**self).ground(request)
    }
}
