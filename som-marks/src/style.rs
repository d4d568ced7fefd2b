//! The mark-style options every front end shares: `som mark`, `som ask` and
//! `som serve` read the same names with the same parsing, and build the
//! allocator and renderer from them in one place.

use std::fmt;
use std::str::FromStr;

use som_core::LabelScheme;

use crate::allocate::{AllocationMode, Allocator, AllocatorConfig};
use crate::error::{MarksError, Result};
use crate::render::{Draw, RenderConfig, Renderer};

/// Numbers or letters (the `labels` option).
///
/// ```
/// use som_marks::LabelKind;
/// assert_eq!("letter".parse::<LabelKind>()?, LabelKind::Letter);
/// assert_eq!(LabelKind::Number.to_string(), "number");
/// assert!("roman".parse::<LabelKind>().is_err());
/// # Ok::<(), som_marks::MarksError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LabelKind {
    /// `1, 2, 3…` (`0, 1, 2…` with `zero_based`).
    #[default]
    Number,
    /// `a, b, … z, aa, ab…`.
    Letter,
}

impl FromStr for LabelKind {
    type Err = MarksError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "number" | "numbers" => Ok(LabelKind::Number),
            "letter" | "letters" => Ok(LabelKind::Letter),
            other => Err(MarksError::option(
                "labels",
                format!("unknown kind {other:?} (expected number or letter)"),
            )),
        }
    }
}

impl fmt::Display for LabelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LabelKind::Number => "number",
            LabelKind::Letter => "letter",
        })
    }
}

/// How marks look and where they go.
///
/// Field names are the option names of `som mark` and `som ask`
/// (`--labels`, `--zero-based`, `--draw`, `--alpha`, `--font-size`,
/// `--allocation`) and the form fields of `som serve` (`labels`,
/// `zero_based`, `draw`, `alpha`, `font_size`, `allocation`); [`MarkStyle::set`]
/// reads any of them from text, with the checks the command line applies.
///
/// # Example
/// ```
/// use som_marks::{AllocationMode, MarkStyle};
/// let mut style = MarkStyle::default();
/// style.set("alpha", "0.2")?;
/// style.set("labels", "letter")?;
/// style.set("allocation", "independent")?;
/// assert_eq!(style.allocation, AllocationMode::Independent);
/// assert!(style.set("alpha", "1.5").is_err());
/// assert!(style.set("colour", "red").is_err());
/// let (allocator, renderer) = (style.allocator(), style.renderer());
/// assert_eq!(renderer.config().alpha, 0.2);
/// assert_eq!(allocator.config().labels, som_core::LabelScheme::Letter);
/// # Ok::<(), som_marks::MarksError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkStyle {
    /// Numbers or letters.
    pub labels: LabelKind,
    /// Number marks from 0 instead of 1 (numbers only).
    pub zero_based: bool,
    /// Which layers to draw.
    pub draw: Draw,
    /// Opacity of the mask tint, 0 to 1.
    pub alpha: f32,
    /// Label font size in pixels; `None` scales it with the image.
    pub font_size: Option<f32>,
    /// Where marks go.
    pub allocation: AllocationMode,
}

impl Default for MarkStyle {
    fn default() -> Self {
        let render = RenderConfig::default();
        Self {
            labels: LabelKind::Number,
            zero_based: false,
            draw: render.draw,
            alpha: render.alpha,
            font_size: render.font_px,
            allocation: AllocatorConfig::default().mode,
        }
    }
}

/// The smallest `font_size` accepted, in pixels.
pub const MIN_FONT_SIZE: f32 = 4.0;
/// The largest `font_size` accepted, in pixels.
pub const MAX_FONT_SIZE: f32 = 512.0;

impl MarkStyle {
    /// The option names [`MarkStyle::set`] knows, as `som serve` spells them.
    pub const FIELDS: [&'static str; 6] =
        ["labels", "zero_based", "draw", "alpha", "font_size", "allocation"];

    /// Sets the option `name` (a form-field name of [`MarkStyle::FIELDS`];
    /// dashes are read as underscores) from its text value.
    ///
    /// # Errors
    /// [`MarksError::Option`] for an unknown name or a value out of range.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        match name.replace('-', "_").as_str() {
            "labels" => self.labels = value.parse()?,
            "zero_based" => self.zero_based = parse_bool("zero_based", value)?,
            "draw" => self.draw = value.parse()?,
            "alpha" => self.alpha = parse_alpha(value)?,
            "font_size" => {
                self.font_size = match value.trim() {
                    "" | "auto" => None,
                    v => Some(parse_font_size(v)?),
                }
            }
            "allocation" => self.allocation = value.parse()?,
            _ => {
                return Err(MarksError::Option {
                    name: "mark style",
                    message: format!(
                        "unknown option {name:?} (expected one of {})",
                        Self::FIELDS.join(", ")
                    ),
                })
            }
        }
        Ok(())
    }

    /// Checks the values a caller may have set directly.
    ///
    /// # Errors
    /// [`MarksError::Option`] naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        check_alpha(self.alpha)?;
        if let Some(px) = self.font_size {
            check_font_size(px)?;
        }
        Ok(())
    }

    /// The label scheme `labels` and `zero_based` describe.
    pub fn label_scheme(&self) -> LabelScheme {
        match self.labels {
            LabelKind::Number => LabelScheme::Number {
                zero_based: self.zero_based,
            },
            LabelKind::Letter => LabelScheme::Letter,
        }
    }

    /// The allocator configuration of this style.
    pub fn allocator_config(&self) -> AllocatorConfig {
        AllocatorConfig {
            mode: self.allocation,
            labels: self.label_scheme(),
            ..AllocatorConfig::default()
        }
    }

    /// The renderer configuration of this style.
    pub fn render_config(&self) -> RenderConfig {
        RenderConfig {
            draw: self.draw,
            alpha: self.alpha,
            font_px: self.font_size,
            ..RenderConfig::default()
        }
    }

    /// An allocator for this style.
    pub fn allocator(&self) -> Allocator {
        Allocator::new(self.allocator_config())
    }

    /// A renderer for this style.
    pub fn renderer(&self) -> Renderer {
        Renderer::new(self.render_config())
    }
}

/// Reads a mask-tint opacity: a number from 0 to 1.
///
/// # Errors
/// [`MarksError::Option`] for text that is not such a number.
///
/// ```
/// assert_eq!(som_marks::style::parse_alpha("0.25")?, 0.25);
/// assert!(som_marks::style::parse_alpha("NaN").is_err());
/// # Ok::<(), som_marks::MarksError>(())
/// ```
pub fn parse_alpha(value: &str) -> Result<f32> {
    let a: f32 = value
        .trim()
        .parse()
        .map_err(|_| MarksError::option("alpha", format!("{value:?} is not a number")))?;
    check_alpha(a)?;
    Ok(a)
}

/// Reads a label font size in pixels, from [`MIN_FONT_SIZE`] to [`MAX_FONT_SIZE`].
///
/// # Errors
/// [`MarksError::Option`] for text that is not such a number.
pub fn parse_font_size(value: &str) -> Result<f32> {
    let px: f32 = value
        .trim()
        .parse()
        .map_err(|_| MarksError::option("font_size", format!("{value:?} is not a number")))?;
    check_font_size(px)?;
    Ok(px)
}

fn check_alpha(a: f32) -> Result<()> {
    if a.is_finite() && (0.0..=1.0).contains(&a) {
        Ok(())
    } else {
        Err(MarksError::option(
            "alpha",
            format!("must be between 0 and 1, got {a}"),
        ))
    }
}

fn check_font_size(px: f32) -> Result<()> {
    if px.is_finite() && (MIN_FONT_SIZE..=MAX_FONT_SIZE).contains(&px) {
        Ok(())
    } else {
        Err(MarksError::option(
            "font_size",
            format!("must be between {MIN_FONT_SIZE} and {MAX_FONT_SIZE} pixels, got {px}"),
        ))
    }
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(MarksError::option(
            name,
            format!("{other:?} is not true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_name_is_settable() {
        let values = ["letter", "true", "mark,box", "0.3", "20", "independent"];
        let mut style = MarkStyle::default();
        for (name, value) in MarkStyle::FIELDS.iter().zip(values) {
            style.set(name, value).unwrap();
        }
        assert_eq!(style.labels, LabelKind::Letter);
        assert!(style.zero_based);
        assert_eq!(style.draw.to_string(), "mark,box");
        assert_eq!(style.alpha, 0.3);
        assert_eq!(style.font_size, Some(20.0));
        assert_eq!(style.allocation, AllocationMode::Independent);
        style.set("font-size", "auto").unwrap();
        assert_eq!(style.font_size, None);
    }

    #[test]
    fn out_of_range_values_name_their_option() {
        let mut style = MarkStyle::default();
        let e = style.set("font_size", "2").unwrap_err().to_string();
        assert!(e.starts_with("invalid font_size: must be between 4"), "{e}");
        let e = style.set("zero_based", "maybe").unwrap_err().to_string();
        assert_eq!(e, "invalid zero_based: \"maybe\" is not true or false");
        style.alpha = f32::NAN;
        assert!(style.validate().is_err());
    }

    #[test]
    fn zero_based_numbers_and_letters() {
        let style = MarkStyle {
            zero_based: true,
            ..MarkStyle::default()
        };
        assert_eq!(style.label_scheme(), LabelScheme::Number { zero_based: true });
        let letters = MarkStyle {
            labels: LabelKind::Letter,
            zero_based: true,
            ..MarkStyle::default()
        };
        assert_eq!(letters.label_scheme(), LabelScheme::Letter);
    }
}
