//! Asking a multimodal model about a marked image.
//!
//! The trait lives here so that evaluation code can drive any model through a
//! trait object; the HTTP clients live in `som-lmm`. The method returns a boxed
//! future so the trait stays object safe and `som-core` needs no async runtime.

use std::future::Future;
use std::pin::Pin;

use image::RgbImage;

use crate::error::SomError;
use crate::geometry::{ImageSize, Point};
use crate::marked::MarkedImage;

/// A boxed, sendable future (what [`GroundingModel::ground`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One piece of extra content shown to the model before the marked image:
/// text, or another image (the unmarked original, a reference crop, an
/// earlier video frame…). Used for interleaved prompts.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart<'a> {
    /// A piece of text (it may cite marks as `[3]`).
    Text(String),
    /// An extra image, sent as it is (resized to the provider's limits).
    Image(&'a RgbImage),
}

/// A question about a marked image.
///
/// The model sees, in order: the [`system`](Self::system) instructions (if
/// any), the [`context`](Self::context) parts, the marked image, then the
/// [`prompt`](Self::prompt).
///
/// # Example
/// ```
/// use image::RgbImage;
/// use som_core::{BBox, ContentPart, GroundingRequest, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};
/// let seg = Segmentation::new(ImageSize::new(8, 8), vec![Region::from_box(1, BBox::new(0, 0, 4, 4))])?;
/// let marks = vec![Mark::new(1, "1", Point::new(2, 2), 0, BBox::new(0, 0, 4, 4))];
/// let marked = MarkedImage::new(RgbImage::new(8, 8), marks, seg)?;
/// let original = RgbImage::new(8, 8);
/// let req = GroundingRequest::new(&marked, "Which mark is the cup?")
///     .with_system("Answer with mark numbers in brackets.")
///     .with_context(vec![ContentPart::Text("The unmarked photo:".into()), ContentPart::Image(&original)]);
/// assert_eq!(req.context.len(), 2);
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GroundingRequest<'a> {
    /// The marked image to show the model.
    pub marked: &'a MarkedImage,
    /// The question or instruction (it may cite marks as `[3]`).
    pub prompt: String,
    /// Instructions sent as the system message, when the provider has one.
    pub system: Option<String>,
    /// Text and extra images shown before the marked image, in order.
    pub context: Vec<ContentPart<'a>>,
}

impl<'a> GroundingRequest<'a> {
    /// A request with only the marked image and a prompt.
    pub fn new(marked: &'a MarkedImage, prompt: impl Into<String>) -> Self {
        Self {
            marked,
            prompt: prompt.into(),
            system: None,
            context: Vec::new(),
        }
    }

    /// Sets the system instructions.
    #[must_use]
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets the parts shown before the marked image.
    #[must_use]
    pub fn with_context(mut self, context: Vec<ContentPart<'a>>) -> Self {
        self.context = context;
        self
    }
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

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// How the marked image was scaled before upload: the model sees `sent`
/// pixels, the regions live in `original` pixels.
///
/// # Example
/// ```
/// use som_core::{ImageScale, ImageSize, Point};
/// let s = ImageScale { original: ImageSize::new(4000, 3000), sent: ImageSize::new(2000, 1500) };
/// assert_eq!(s.to_original(Point::new(100, 50)), Point::new(200, 100));
/// assert_eq!(s.to_sent(Point::new(200, 100)), Point::new(100, 50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageScale {
    /// The size of the marked image (the regions' coordinate system).
    pub original: ImageSize,
    /// The size of the image the model saw.
    pub sent: ImageSize,
}

impl ImageScale {
    /// Maps a pixel of the sent image to the original image: `x · original /
    /// sent`, rounded down and clamped into the original image.
    pub fn to_original(&self, p: Point) -> Point {
        Point::new(
            map_axis(p.x, self.sent.width, self.original.width),
            map_axis(p.y, self.sent.height, self.original.height),
        )
    }

    /// Maps a pixel of the original image to the sent image.
    pub fn to_sent(&self, p: Point) -> Point {
        Point::new(
            map_axis(p.x, self.original.width, self.sent.width),
            map_axis(p.y, self.original.height, self.sent.height),
        )
    }
}

fn map_axis(v: u32, from: u32, to: u32) -> u32 {
    if from == 0 || to == 0 {
        return 0;
    }
    let scaled = (v as u64 * to as u64 / from as u64).min(to as u64 - 1);
    scaled as u32
}

/// A model's answer.
///
/// # Example
/// ```
/// use som_core::GroundingAnswer;
/// let a = GroundingAnswer::new("the cup is [3]");
/// assert!(a.marks.is_empty() && a.unknown.is_empty() && a.usage.is_none());
/// ```
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
    /// Why the model stopped, as the provider said it (`"stop"`, `"length"`,
    /// `"end_turn"`, `"MAX_TOKENS"`…).
    pub finish_reason: Option<String>,
    /// The model's refusal message, when it declined to answer.
    pub refusal: Option<String>,
    /// The model that answered, as the provider reported it.
    pub model: Option<String>,
    /// How the marked image was scaled before upload.
    pub image_scale: Option<ImageScale>,
    /// The provider's raw response body, for debugging.
    pub raw: Option<serde_json::Value>,
}

impl GroundingAnswer {
    /// An answer with only its text.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            marks: Vec::new(),
            unknown: Vec::new(),
            usage: None,
            finish_reason: None,
            refusal: None,
            model: None,
            image_scale: None,
            raw: None,
        }
    }
}

/// A multimodal model that can answer questions about a marked image.
///
/// # Example
/// ```
/// use som_core::{BoxFuture, GroundingAnswer, GroundingModel, GroundingRequest, SomError};
/// struct Silent;
/// impl GroundingModel for Silent {
///     fn ground<'a>(&'a self, _req: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
///         Box::pin(async { Ok(GroundingAnswer::new("")) })
///     }
/// }
/// let model: Box<dyn GroundingModel> = Box::new(Silent);
/// assert_eq!(model.name(), "model");
/// ```
pub trait GroundingModel: Send + Sync {
    /// Sends the request and returns the parsed answer.
    ///
    /// # Errors
    /// [`SomError::Grounding`] for transport, provider and parsing failures.
    fn ground<'a>(
        &'a self,
        request: &'a GroundingRequest<'a>,
    ) -> BoxFuture<'a, Result<GroundingAnswer, SomError>>;

    /// A short name for logs and reports (e.g. `"openai:gpt-4o"`).
    fn name(&self) -> &str {
        "model"
    }
}

/// Forwards the trait through smart pointers and references, as `traits.rs` does
/// for the other stages.
macro_rules! forward_grounding {
    ($($wrapper:ty),*) => {$(
        impl<T: GroundingModel + ?Sized> GroundingModel for $wrapper {
            fn ground<'a>(
                &'a self,
                request: &'a GroundingRequest<'a>,
            ) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
                (**self).ground(request)
            }
            fn name(&self) -> &str {
                (**self).name()
            }
        }
    )*};
}

forward_grounding!(&T, Box<T>, std::sync::Arc<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_identity_and_clamps() {
        let same = ImageScale {
            original: ImageSize::new(10, 10),
            sent: ImageSize::new(10, 10),
        };
        for v in 0..10 {
            assert_eq!(same.to_original(Point::new(v, v)), Point::new(v, v));
        }
        let half = ImageScale {
            original: ImageSize::new(10, 10),
            sent: ImageSize::new(5, 5),
        };
        assert_eq!(half.to_original(Point::new(100, 100)), Point::new(9, 9));
        let empty = ImageScale {
            original: ImageSize::new(0, 0),
            sent: ImageSize::new(5, 5),
        };
        assert_eq!(empty.to_original(Point::new(3, 3)), Point::new(0, 0));
    }

    #[test]
    fn arc_and_box_forward_name() {
        struct Named;
        impl GroundingModel for Named {
            fn ground<'a>(
                &'a self,
                _r: &'a GroundingRequest<'a>,
            ) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
                Box::pin(async { Ok(GroundingAnswer::new("x")) })
            }
            fn name(&self) -> &str {
                "named"
            }
        }
        let arc: std::sync::Arc<dyn GroundingModel> = std::sync::Arc::new(Named);
        assert_eq!(arc.name(), "named");
        let boxed: Box<dyn GroundingModel> = Box::new(Named);
        // Through the blanket impl for `&T`.
        fn name_of<M: GroundingModel>(m: M) -> String {
            m.name().to_string()
        }
        assert_eq!(name_of(&boxed), "named");
    }
}
