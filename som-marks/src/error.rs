//! The error type of the allocator and renderer in this crate.

/// Everything that can go wrong allocating or rendering marks, or reading
/// mark-style options.
///
/// Messages are lowercase, one line, and name the offending value. Through the
/// [`som_core::MarkAllocator`] and [`som_core::MarkRenderer`] traits a
/// `MarksError` arrives as the source of [`som_core::SomError::Allocate`] or
/// [`som_core::SomError::Render`].
///
/// ```
/// use som_marks::MarksError;
/// let e: MarksError = "nonsense".parse::<som_marks::AllocationMode>().unwrap_err();
/// assert_eq!(e.to_string(), "invalid allocation: unknown mode \"nonsense\" (expected paper or independent)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarksError {
    /// A mark-style option with a value outside its range or vocabulary.
    #[error("invalid {name}: {message}")]
    Option {
        /// The option's name as the command line and `som serve` spell it
        /// (`alpha`, `draw`, `labels`, `font_size`, `allocation`).
        name: &'static str,
        /// What is wrong with the value.
        message: String,
    },
    /// A distance-transform crop that does not fit its buffer or a side limit.
    #[error("{0}")]
    Crop(String),
    /// No layout could be found for the labels (should not happen for valid input).
    #[error("{0}")]
    Layout(String),
    /// A mark that names a region the segmentation does not have.
    #[error("mark {id} names region index {region} but the segmentation has {regions} regions")]
    NoSuchRegion {
        /// The mark's id.
        id: u32,
        /// The region index it names.
        region: usize,
        /// How many regions there are.
        regions: usize,
    },
}

impl MarksError {
    pub(crate) fn option(name: &'static str, message: impl Into<String>) -> Self {
        MarksError::Option {
            name,
            message: message.into(),
        }
    }
}

/// `Result` with [`MarksError`] as the default error.
pub type Result<T, E = MarksError> = std::result::Result<T, E>;
