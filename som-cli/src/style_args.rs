//! The mark-style options `som mark` and `som ask` share (and `som serve`
//! reads as form fields): one flattened set, parsed by `som_marks::MarkStyle`'s
//! own parsers so every front end accepts exactly the same values.

use clap::Args;
use som_marks::style::{parse_alpha, parse_font_size};
use som_marks::{AllocationMode, Draw, LabelKind, MarkStyle, MarksError};

/// How marks look and where they go.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mark style")]
pub struct MarkStyleArgs {
    /// Mark texts: number (1, 2, 3…) or letter (a, b, … z, aa…).
    #[arg(long, value_name = "KIND", default_value_t = LabelKind::Number, value_parser = value::<LabelKind>)]
    pub labels: LabelKind,
    /// Number marks from 0 instead of 1.
    #[arg(long)]
    pub zero_based: bool,
    /// What to draw: any of mark, mask, contour, box (or all, none), comma-separated.
    #[arg(long, value_name = "LIST", default_value_t = MarkStyle::default().draw, value_parser = value::<Draw>)]
    pub draw: Draw,
    /// Opacity of the mask tint, 0 to 1 (light, so the model still sees the photo).
    #[arg(long, value_name = "A", default_value_t = MarkStyle::default().alpha, value_parser = message_of(parse_alpha))]
    pub alpha: f32,
    /// Label font size in pixels (default: scaled with the image).
    #[arg(long, value_name = "PX", value_parser = message_of(parse_font_size))]
    pub font_size: Option<f32>,
    /// Where marks go: paper (collision-free labels) or independent (as the released SoM code).
    #[arg(long, value_name = "MODE", default_value_t = AllocationMode::Paper, value_parser = value::<AllocationMode>)]
    pub allocation: AllocationMode,
}

impl MarkStyleArgs {
    /// The style these options describe.
    pub fn style(&self) -> MarkStyle {
        MarkStyle {
            labels: self.labels,
            zero_based: self.zero_based,
            draw: self.draw,
            alpha: self.alpha,
            font_size: self.font_size,
            allocation: self.allocation,
        }
    }
}

/// A clap value parser from a `FromStr` whose error is a [`MarksError`],
/// reporting only what is wrong (clap already names the flag and the value).
fn value<T: std::str::FromStr<Err = MarksError>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(only_message)
}

fn message_of<T>(parse: fn(&str) -> Result<T, MarksError>) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |s| parse(s).map_err(only_message)
}

fn only_message(e: MarksError) -> String {
    match e {
        MarksError::Option { message, .. } => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        style: MarkStyleArgs,
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let probe = Probe::try_parse_from(["probe"]).unwrap();
        assert_eq!(probe.style.style(), MarkStyle::default());
    }

    #[test]
    fn every_option_reaches_the_style() {
        let probe = Probe::try_parse_from([
            "probe",
            "--labels",
            "letter",
            "--zero-based",
            "--draw",
            "box,mark",
            "--alpha",
            "0.25",
            "--font-size",
            "21",
            "--allocation",
            "independent",
        ])
        .unwrap();
        let mut expected = MarkStyle::default();
        for (name, value) in
            MarkStyle::FIELDS
                .iter()
                .zip(["letter", "true", "box,mark", "0.25", "21", "independent"])
        {
            expected.set(name, value).unwrap();
        }
        assert_eq!(probe.style.style(), expected);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = Probe::try_parse_from(["probe", "--alpha", "3"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--alpha") && e.contains("must be between 0 and 1, got 3"),
            "{e}"
        );
        let e = Probe::try_parse_from(["probe", "--draw", "mark,sparkles"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown item \"sparkles\""), "{e}");
    }
}
