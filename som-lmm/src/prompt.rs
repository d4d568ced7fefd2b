//! Prompt templates for the Set-of-Mark tasks.
//!
//! Templates are data: load your own from JSON (missing fields keep the
//! defaults) and render them with [`PromptTemplates::render`]. Placeholders
//! are `{name}`; unknown ones are left as they are, and substituted values
//! are never expanded again.
//!
//! | placeholder | value |
//! |---|---|
//! | `{marks}` | the mark texts, comma separated (`1, 2, 3`) |
//! | `{count}` | the number of marks |
//! | `{example}` | the first mark's text (`1`, or `a` for letters) |
//! | `{vocabulary}` | the vocabulary, comma separated ([`Task::Label`]) |
//! | `{expression}` | the referring expression ([`Task::Refer`]) |
//! | `{caption}`, `{phrases}` | caption and one `- phrase` line each ([`Task::Ground`]) |
//! | `{question}` | the question ([`Task::Question`]) |
//! | `{instruction}` | the UI instruction ([`Task::Action`]) |
//! | `{text}` | the interleaved text ([`Task::Interleaved`]) |

use serde::{Deserialize, Serialize};
use som_core::{GroundingRequest, MarkedImage};

/// A Set-of-Mark task: what to ask about the marked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Open-vocabulary labelling: name every mark from a vocabulary.
    Label {
        /// The category names to choose from.
        vocabulary: Vec<String>,
    },
    /// Referring expression comprehension: which marks denote the expression.
    Refer {
        /// The expression (`"the man in the red shirt"`).
        expression: String,
    },
    /// Phrase grounding: which marks each phrase of a caption denotes.
    Ground {
        /// The caption.
        caption: String,
        /// The phrases of the caption to ground.
        phrases: Vec<String>,
    },
    /// A free question; the answer cites marks in brackets.
    Question {
        /// The question.
        question: String,
    },
    /// UI grounding on a screenshot: the next action, as `click [N]`.
    Action {
        /// What the user wants done.
        instruction: String,
    },
    /// Text that itself refers to marks (`"is [3] the same cup as [5]?"`).
    Interleaved {
        /// The text.
        text: String,
    },
}

/// The prompt texts, one per task, plus the system message.
///
/// ```
/// use som_lmm::PromptTemplates;
/// let t = PromptTemplates::from_json(r#"{"refer": "Where is {expression}? Reply [N]."}"#)?;
/// assert_eq!(t.refer, "Where is {expression}? Reply [N].");
/// assert_eq!(t.question, PromptTemplates::default().question);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptTemplates {
    /// The system message sent with every task.
    pub system: String,
    /// [`Task::Label`].
    pub label: String,
    /// [`Task::Refer`].
    pub refer: String,
    /// [`Task::Ground`].
    pub ground: String,
    /// [`Task::Question`].
    pub question: String,
    /// [`Task::Action`].
    pub action: String,
    /// [`Task::Interleaved`].
    pub interleaved: String,
}

impl Default for PromptTemplates {
    fn default() -> Self {
        Self {
            system: "You are shown an image on which marks have been drawn: each mark is a short label \
                     ({marks}) placed on the region it names. Whenever you refer to a region, cite its mark \
                     in square brackets, like [{example}]; cite several marks as [{example}][...]. Cite only \
                     marks that appear in the image."
                .into(),
            label: "For every mark in the image ({marks}), name what is under it, choosing from this \
                    vocabulary: {vocabulary}. Answer with one line per mark in the form `[N] name`; write \
                    `[N] none` when nothing in the vocabulary fits."
                .into(),
            refer:
                "Which mark denotes \"{expression}\"? Answer with its mark in square brackets, for example \
                    [{example}]. If the object spans several marks, cite them all."
                    .into(),
            ground:
                "Caption: \"{caption}\"\nFor each of these phrases from the caption, give the marks of the \
                     regions it denotes:\n{phrases}\nAnswer with one line per phrase in the form \
                     `phrase: [N][M]`."
                    .into(),
            question: "{question}\nCite the marks you refer to in square brackets, like [{example}].".into(),
            action:
                "This is a screenshot; its marks label the interface elements. Task: {instruction}\nAnswer \
                     with the single next action in the form `click [N]`, where N is the mark of the element \
                     to click."
                    .into(),
            interleaved:
                "{text}\nIn this text, [N] means the region with mark N in the image. Cite marks in \
                          square brackets in your answer too."
                    .into(),
        }
    }
}

impl PromptTemplates {
    /// Templates from JSON; fields left out keep their defaults.
    ///
    /// # Errors
    /// Malformed JSON or an unknown field.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The user prompt for `task` on `marked`.
    ///
    /// ```
    /// use image::RgbImage;
    /// use som_core::{BBox, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};
    /// use som_lmm::{PromptTemplates, Task};
    /// let seg = Segmentation::new(ImageSize::new(8, 8), vec![Region::from_box(1, BBox::new(0, 0, 4, 4))])?;
    /// let marked = MarkedImage::new(RgbImage::new(8, 8), vec![Mark::new(1, "1", Point::new(2, 2), 0, BBox::new(0, 0, 4, 4))], seg)?;
    /// let p = PromptTemplates::default().render(&Task::Refer { expression: "the red cup".into() }, &marked);
    /// assert!(p.contains("\"the red cup\"") && p.contains("[1]"));
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn render(&self, task: &Task, marked: &MarkedImage) -> String {
        let (template, vars): (&str, Vec<(&str, String)>) = match task {
            Task::Label { vocabulary } => (&self.label, vec![("vocabulary", vocabulary.join(", "))]),
            Task::Refer { expression } => (&self.refer, vec![("expression", expression.clone())]),
            Task::Ground { caption, phrases } => (
                &self.ground,
                vec![
                    ("caption", caption.clone()),
                    (
                        "phrases",
                        phrases
                            .iter()
                            .map(|p| format!("- {p}"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                ],
            ),
            Task::Question { question } => (&self.question, vec![("question", question.clone())]),
            Task::Action { instruction } => (&self.action, vec![("instruction", instruction.clone())]),
            Task::Interleaved { text } => (&self.interleaved, vec![("text", text.clone())]),
        };
        let mut all = mark_vars(marked);
        all.extend(vars);
        fill_template(template, &all)
    }

    /// The system message for `marked`.
    pub fn render_system(&self, marked: &MarkedImage) -> String {
        fill_template(&self.system, &mark_vars(marked))
    }

    /// A request for `task` on `marked`: rendered prompt plus system message.
    pub fn request<'a>(&self, task: &Task, marked: &'a MarkedImage) -> GroundingRequest<'a> {
        GroundingRequest::new(marked, self.render(task, marked)).with_system(self.render_system(marked))
    }
}

fn mark_vars(marked: &MarkedImage) -> Vec<(&'static str, String)> {
    let texts: Vec<&str> = marked.marks().iter().map(|m| m.text.as_str()).collect();
    vec![
        ("marks", texts.join(", ")),
        ("count", texts.len().to_string()),
        (
            "example",
            texts.first().map_or_else(|| "1".to_string(), |t| t.to_string()),
        ),
    ]
}

/// Replaces `{name}` placeholders in one pass.
///
/// ```
/// # use som_lmm::fill_template;
/// assert_eq!(fill_template("{a} and {b} {c}", &[("a", "{b}".into()), ("b", "2".into())]), "{b} and 2 {c}");
/// ```
pub fn fill_template(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let var = after.find('}').and_then(|close| {
            vars.iter()
                .find(|(k, _)| *k == &after[..close])
                .map(|(_, v)| (close, v))
        });
        match var {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::marked;

    #[test]
    fn every_task_fills_its_placeholders() {
        let m = marked(&["a", "b", "c"]);
        let t = PromptTemplates::default();
        let tasks = [
            Task::Label {
                vocabulary: vec!["cup".into(), "table".into()],
            },
            Task::Refer {
                expression: "the cup".into(),
            },
            Task::Ground {
                caption: "A cup on a table".into(),
                phrases: vec!["A cup".into(), "a table".into()],
            },
            Task::Question {
                question: "What is on the table?".into(),
            },
            Task::Action {
                instruction: "open settings".into(),
            },
            Task::Interleaved {
                text: "Is [a] the same as [b]?".into(),
            },
        ];
        for task in &tasks {
            let p = t.render(task, &m);
            for name in [
                "{marks}",
                "{count}",
                "{example}",
                "{vocabulary}",
                "{expression}",
                "{caption}",
                "{phrases}",
                "{question}",
                "{instruction}",
                "{text}",
            ] {
                assert!(!p.contains(name), "{name} left in {p:?}");
            }
        }
        assert!(
            t.render(&tasks[0], &m).contains("a, b, c") && t.render(&tasks[0], &m).contains("cup, table")
        );
        assert!(t.render(&tasks[2], &m).contains("- A cup\n- a table"));
        assert!(t.render_system(&m).contains("[a]"));
        let req = t.request(&tasks[4], &m);
        assert!(req.prompt.contains("click [N]") && req.system.is_some());
    }

    #[test]
    fn values_are_not_expanded_again_and_unknown_placeholders_stay() {
        let m = marked(&["1"]);
        let t = PromptTemplates {
            question: "{question} {nope} {".into(),
            ..PromptTemplates::default()
        };
        let p = t.render(
            &Task::Question {
                question: "what is {marks}?".into(),
            },
            &m,
        );
        assert_eq!(p, "what is {marks}? {nope} {");
    }

    #[test]
    fn unknown_template_fields_are_rejected() {
        assert!(PromptTemplates::from_json(r#"{"refers": "x"}"#).is_err());
    }
}
