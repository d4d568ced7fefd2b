//! Writing the regions JSON, the marks JSON and the answer JSON: exact in
//! what they write, deterministic (keys in a fixed order).

use serde_json::{json, Map, Value};

use super::{ImageInfo, KNOWN_KEYS};
use crate::geometry::ImageSize;
use crate::grounding::GroundingAnswer;
use crate::mark::{Mark, Placement};
use crate::marked::MarkedImage;
use crate::region::{Region, Segmentation};

/// The JSON object of one region (the form written in regions and marks JSON).
pub fn region_to_value(region: &Region, size: ImageSize) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(region.id));
    m.insert("bbox".into(), json!(region.bbox.to_xywh()));
    m.insert("area".into(), json!(region.area()));
    if let Some(mask) = &region.mask {
        let rle = mask.to_rle();
        m.insert(
            "segmentation".into(),
            json!({"size": [size.height, size.width], "counts": rle.to_compressed()}),
        );
    }
    if let Some(s) = region.score {
        m.insert("score".into(), json!(s));
    }
    if let Some(l) = &region.label {
        m.insert("label".into(), json!(l));
    }
    for (k, v) in &region.source {
        if !KNOWN_KEYS.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// Writes the canonical regions JSON (compressed RLE masks).
pub fn write_regions(info: &ImageInfo, segmentation: &Segmentation) -> String {
    let regions: Vec<Value> = segmentation
        .regions()
        .iter()
        .map(|r| region_to_value(r, segmentation.size()))
        .collect();
    let doc = json!({"image": info.to_value(), "regions": regions});
    serde_json::to_string(&doc).unwrap_or_default()
}

/// Writes the marks JSON of `som mark --json`: each mark with its anchor,
/// label box, placement and its region (with the region's original mask).
///
/// ```
/// use som_core::{json::{write_marks, ImageInfo}, BBox, ImageSize, Mark, Point, Region, Segmentation};
/// let size = ImageSize::new(8, 8);
/// let seg = Segmentation::new(size, vec![Region::from_box(9, BBox::new(0, 0, 4, 4))])?;
/// let marks = [Mark::new(1, "1", Point::new(2, 2), 0, BBox::new(0, 0, 4, 4))];
/// let text = write_marks(&ImageInfo::new(8, 8), &seg, &marks);
/// assert!(text.contains(r#""x":2"#));
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn write_marks(info: &ImageInfo, segmentation: &Segmentation, marks: &[Mark]) -> String {
    let marks: Vec<Value> = marks.iter().map(|m| mark_to_value(m, segmentation)).collect();
    let doc = json!({"image": info.to_value(), "marks": marks});
    serde_json::to_string(&doc).unwrap_or_default()
}

/// The JSON object of one mark, as written in the marks JSON: id, text,
/// anchor `x`/`y`, `label_box`, `placement`, `distance`, `overlaps` (when
/// any) and its `region` (see [`region_to_value`]).
///
/// ```
/// use som_core::{json::mark_to_value, BBox, ImageSize, Mark, Point, Region, Segmentation};
/// let seg = Segmentation::new(ImageSize::new(8, 8), vec![Region::from_box(9, BBox::new(0, 0, 4, 4))])?;
/// let v = mark_to_value(&Mark::new(1, "1", Point::new(2, 2), 0, BBox::new(0, 0, 4, 4)), &seg);
/// assert_eq!(v["region"]["id"], 9);
/// assert_eq!(v["label_box"], serde_json::json!([0, 0, 4, 4]));
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn mark_to_value(mark: &Mark, segmentation: &Segmentation) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(mark.id));
    o.insert("text".into(), json!(mark.text));
    o.insert("x".into(), json!(mark.anchor.x));
    o.insert("y".into(), json!(mark.anchor.y));
    o.insert("label_box".into(), json!(mark.label_box.to_xywh()));
    o.insert(
        "placement".into(),
        json!(match mark.placement {
            Placement::Inside => "inside",
            Placement::Outside => "outside",
        }),
    );
    o.insert("distance".into(), json!((mark.distance * 1e4).round() / 1e4));
    if !mark.overlaps.is_empty() {
        o.insert("overlaps".into(), json!(mark.overlaps));
    }
    if let Some(r) = segmentation.regions().get(mark.region) {
        o.insert("region".into(), region_to_value(r, segmentation.size()));
    }
    Value::Object(o)
}

/// What `som ask` records about a question besides the answer itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerMeta {
    /// The provider's name (`openai`, `anthropic`, `gemini`, `ollama`…).
    pub provider: String,
    /// The model asked for.
    pub model: String,
    /// The task that chose the prompt template (`question`, `refer`, `raw`…).
    pub task: String,
    /// The prompt as sent (after the template).
    pub prompt: String,
}

/// Writes the answer JSON of `som ask --json`: the request's provider, model,
/// task and prompt; the answer's text, finish reason and refusal; the image;
/// the size the model saw; the marks the answer names (as in the marks JSON);
/// unknown labels; token usage. Pretty-printed, ending in a newline.
///
/// ```
/// use image::RgbImage;
/// use som_core::json::{write_answer, AnswerMeta, ImageInfo};
/// use som_core::{BBox, GroundingAnswer, ImageSize, Mark, MarkRef, MarkedImage, Point, Region, Segmentation};
/// let size = ImageSize::new(8, 8);
/// let seg = Segmentation::new(size, vec![Region::from_box(9, BBox::new(0, 0, 4, 4))])?;
/// let marks = vec![Mark::new(1, "1", Point::new(2, 2), 0, BBox::new(0, 0, 4, 4))];
/// let marked = MarkedImage::new(RgbImage::new(8, 8), marks, seg)?;
/// let mut answer = GroundingAnswer::new("It is [1].");
/// answer.marks.push(MarkRef { id: 1, text: "1".into(), region: 0 });
/// answer.unknown.push("7".into());
/// let meta = AnswerMeta { provider: "openai".into(), model: "gpt-4.1".into(), task: "question".into(), prompt: "Where?".into() };
/// let v: serde_json::Value = serde_json::from_str(&write_answer(&meta, &ImageInfo::new(8, 8), &answer, &marked))?;
/// assert_eq!(v["marks"][0]["region"]["id"], 9);
/// assert_eq!(v["unknown"][0], "7");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_answer(
    meta: &AnswerMeta,
    info: &ImageInfo,
    answer: &GroundingAnswer,
    marked: &MarkedImage,
) -> String {
    let marks: Vec<Value> = answer
        .marks
        .iter()
        .filter_map(|r| marked.mark_by_id(r.id))
        .map(|m| mark_to_value(m, marked.segmentation()))
        .collect();
    let doc = json!({
        "provider": meta.provider,
        "model": meta.model,
        "answered_by": answer.model,
        "task": meta.task,
        "prompt": meta.prompt,
        "text": answer.text,
        "finish_reason": answer.finish_reason,
        "refusal": answer.refusal,
        "image": info.to_value(),
        "sent_size": answer.image_scale.map(|s| [s.sent.width, s.sent.height]),
        "marks": marks,
        "unknown": answer.unknown,
        "usage": answer.usage.map(|u| json!({
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "total_tokens": u.total(),
        })),
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
