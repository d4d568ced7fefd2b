//! Flickr30K Entities: `Annotations/<image>.xml` (boxes per entity id),
//! `Sentences/<image>.txt` (five captions with `[/EN#<id>/<type> phrase]`
//! markup), `<split>.txt` (image ids), images in `flickr30k-images/`.
//!
//! Read as the dataset's own `flickr30k_entities_utils.py` reads it (which
//! MDETR's evaluator imports): sentence `k` is the `k`-th non-empty line; a
//! phrase is scored when its entity has at least one box; an `<object>` with
//! several `<name>`s gives its box to each of those entities.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Dataset, EvalItem, ItemRef, OpenOptions, Query, Task, Truth};
use crate::error::{EvalError, Result};
use crate::metrics::refer::BoxXywh;

/// A phrase of a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// The entity id (`EN#<id>`).
    pub id: String,
    /// The phrase's words.
    pub text: String,
    /// The entity types (`people`, `clothing`…).
    pub types: Vec<String>,
    /// Index of its first word in the sentence.
    pub first_word: usize,
}

/// A caption with its phrases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The caption without markup.
    pub text: String,
    /// Its phrases in order.
    pub phrases: Vec<Phrase>,
}

/// Parses a `Sentences/<image>.txt` file.
///
/// # Errors
/// A message naming the line for unbalanced phrase markup.
///
/// ```
/// let s = som_eval::data::flickr30k::parse_sentences("[/EN#18/people A man] with [/EN#21/clothing pierced ears] .\n")?;
/// assert_eq!(s[0].text, "A man with pierced ears .");
/// assert_eq!((s[0].phrases[1].id.as_str(), s[0].phrases[1].text.as_str()), ("21", "pierced ears"));
/// # Ok::<(), String>(())
/// ```
pub fn parse_sentences(text: &str) -> std::result::Result<Vec<Sentence>, String> {
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut words: Vec<&str> = Vec::new();
        let mut phrases = Vec::new();
        let mut current: Option<(Phrase, Vec<&str>)> = None;
        for token in line.split_whitespace() {
            if let Some((p, mut ws)) = current.take() {
                if let Some(last) = token.strip_suffix(']') {
                    ws.push(last);
                    words.push(last);
                    phrases.push(Phrase {
                        text: ws.join(" "),
                        ..p
                    });
                } else {
                    ws.push(token);
                    words.push(token);
                    current = Some((p, ws));
                }
            } else if let Some(markup) = token.strip_prefix('[') {
                let parts: Vec<&str> = markup.split('/').collect();
                let id = parts.get(1).and_then(|p| p.strip_prefix("EN#")).ok_or_else(|| {
                    format!("line {}: phrase markup {token:?} is not [/EN#<id>/<type>", n + 1)
                })?;
                current = Some((
                    Phrase {
                        id: id.to_string(),
                        text: String::new(),
                        types: parts[2..].iter().map(|s| s.to_string()).collect(),
                        first_word: words.len(),
                    },
                    Vec::new(),
                ));
            } else {
                words.push(token);
            }
        }
        if current.is_some() {
            return Err(format!("line {}: a phrase is not closed with ']'", n + 1));
        }
        out.push(Sentence {
            text: words.join(" "),
            phrases,
        });
    }
    Ok(out)
}

/// What an `Annotations/<image>.xml` file says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotation {
    /// Image width and height.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Boxes per entity id, `[x, y, w, h]` from `xmin, ymin, xmax, ymax` (`w = xmax - xmin`).
    pub boxes: BTreeMap<String, Vec<BoxXywh>>,
    /// Entities marked as not visible.
    pub nobox: Vec<String>,
    /// Entities marked as the whole scene.
    pub scene: Vec<String>,
}

/// Parses an `Annotations/<image>.xml` file.
///
/// # Errors
/// A message for malformed XML or a missing `size`, `name`, or box coordinate.
///
/// ```
/// let xml = "<annotation><size><width>10</width><height>8</height><depth>3</depth></size>
///   <object><name>5</name><name>6</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>4</xmax><ymax>8</ymax></bndbox></object>
///   <object><name>7</name><nobndbox>1</nobndbox><scene>1</scene></object></annotation>";
/// let a = som_eval::data::flickr30k::parse_annotation(xml)?;
/// assert_eq!(a.boxes["6"], vec![[1.0, 2.0, 3.0, 6.0]]);
/// assert_eq!((a.nobox.clone(), a.scene.clone()), (vec!["7".to_string()], vec!["7".to_string()]));
/// # Ok::<(), String>(())
/// ```
pub fn parse_annotation(xml: &str) -> std::result::Result<Annotation, String> {
    let root = xml::parse(xml)?;
    let size = root.child("size").ok_or("no <size> element")?;
    let num = |e: &xml::Element, tag: &str| -> std::result::Result<i64, String> {
        let t = e
            .child(tag)
            .ok_or_else(|| format!("<{}> has no <{tag}>", e.name))?
            .text
            .trim()
            .to_string();
        t.parse().map_err(|_| format!("<{tag}> {t:?} is not an integer"))
    };
    let mut a = Annotation {
        width: u32::try_from(num(size, "width")?).map_err(|_| "negative width")?,
        height: u32::try_from(num(size, "height")?).map_err(|_| "negative height")?,
        ..Annotation::default()
    };
    for (k, obj) in root.children.iter().filter(|c| c.name == "object").enumerate() {
        let names: Vec<String> = obj
            .children
            .iter()
            .filter(|c| c.name == "name")
            .map(|c| c.text.trim().to_string())
            .collect();
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(format!("object {k} has no <name>"));
        }
        if let Some(b) = obj.child("bndbox") {
            let (x0, y0, x1, y1) = (num(b, "xmin")?, num(b, "ymin")?, num(b, "xmax")?, num(b, "ymax")?);
            if x1 < x0 || y1 < y0 {
                return Err(format!(
                    "object {k} (entity {}): box corners are swapped",
                    names[0]
                ));
            }
            for n in &names {
                a.boxes.entry(n.clone()).or_default().push([
                    x0 as f64,
                    y0 as f64,
                    (x1 - x0) as f64,
                    (y1 - y0) as f64,
                ]);
            }
        } else {
            if obj
                .child("nobndbox")
                .is_some_and(|e| e.text.trim().parse::<i64>().is_ok_and(|v| v > 0))
            {
                a.nobox.extend(names.iter().cloned());
            }
            if obj
                .child("scene")
                .is_some_and(|e| e.text.trim().parse::<i64>().is_ok_and(|v| v > 0))
            {
                a.scene.extend(names.iter().cloned());
            }
        }
    }
    Ok(a)
}

/// A sentence to ground: its image, index and boxed phrases.
#[derive(Debug, Clone)]
struct Entry {
    image: String,
    sentence: usize,
    text: String,
    phrases: Vec<Phrase>,
    boxes: Vec<Vec<BoxXywh>>,
}

/// Flickr30K Entities phrase grounding: each item is a caption whose boxed
/// phrases the model grounds.
#[derive(Debug)]
pub struct Flickr30k {
    root: PathBuf,
    images_dir: PathBuf,
    items: Vec<ItemRef>,
    entries: Vec<Entry>,
}

impl Flickr30k {
    /// Opens `root` for `options.split` (default `test`).
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file (and line or object) for a
    /// missing split list, annotation or sentence file, malformed XML or markup.
    pub fn open(root: &Path, options: &OpenOptions) -> Result<Self> {
        let split = options.split.as_deref().unwrap_or("test");
        let list = root.join(format!("{split}.txt"));
        let text = std::fs::read_to_string(&list).map_err(|e| EvalError::io("read", &list, e))?;
        let mut items = Vec::new();
        let mut entries = Vec::new();
        for id in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let xml_path = root.join("Annotations").join(format!("{id}.xml"));
            let txt_path = root.join("Sentences").join(format!("{id}.txt"));
            let xml = std::fs::read_to_string(&xml_path).map_err(|e| EvalError::io("read", &xml_path, e))?;
            let ann = parse_annotation(&xml)
                .map_err(|m| EvalError::dataset(xml_path.display().to_string(), "", m))?;
            let sentences_text =
                std::fs::read_to_string(&txt_path).map_err(|e| EvalError::io("read", &txt_path, e))?;
            let sentences = parse_sentences(&sentences_text)
                .map_err(|m| EvalError::dataset(txt_path.display().to_string(), "", m))?;
            for (k, s) in sentences.into_iter().enumerate() {
                let phrases: Vec<Phrase> = s
                    .phrases
                    .into_iter()
                    .filter(|p| ann.boxes.contains_key(&p.id))
                    .collect();
                if phrases.is_empty() {
                    continue;
                }
                items.push(ItemRef {
                    id: format!("flickr30k/{id}/{k}"),
                    group: id.to_string(),
                });
                entries.push(Entry {
                    image: id.to_string(),
                    sentence: k,
                    text: s.text,
                    boxes: phrases.iter().map(|p| ann.boxes[&p.id].clone()).collect(),
                    phrases,
                });
            }
        }
        let images_dir = options.images.clone().unwrap_or_else(|| {
            let a = root.join("flickr30k-images");
            if a.is_dir() {
                a
            } else {
                root.join("images")
            }
        });
        Ok(Self {
            root: root.to_path_buf(),
            images_dir,
            items,
            entries,
        })
    }

    /// The ground truth of every scored phrase: `(image id, sentence index,
    /// phrase id) → boxes`, one entry per phrase occurrence.
    pub fn phrase_truth(&self) -> Vec<((String, usize, String), Vec<BoxXywh>)> {
        self.entries
            .iter()
            .flat_map(|e| {
                e.phrases
                    .iter()
                    .zip(&e.boxes)
                    .map(|(p, b)| ((e.image.clone(), e.sentence, p.id.clone()), b.clone()))
            })
            .collect()
    }
}

impl Dataset for Flickr30k {
    fn task(&self) -> Task {
        Task::Flickr30k
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn load(&self, index: usize) -> Result<EvalItem> {
        let e = &self.entries[index];
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: e.image.clone(),
            image: self.images_dir.join(format!("{}.jpg", e.image)),
            premarked: false,
            prompt: None,
            query: Query::Ground {
                caption: e.text.clone(),
                phrases: e.phrases.iter().map(|p| p.text.clone()).collect(),
            },
            targets: e
                .phrases
                .iter()
                .zip(&e.boxes)
                .map(|(p, b)| (format!("phrase {}", p.id), Truth::Boxes { boxes: b.clone() }))
                .collect(),
            regions: None,
            semantic: None,
            reference: None,
            output_name: None,
        })
    }
}

/// The little XML the annotation files use: elements, text, attributes
/// (ignored), comments, declarations and the five entities.
mod xml {
    #[derive(Debug, Default)]
    pub struct Element {
        pub name: String,
        pub text: String,
        pub children: Vec<Element>,
    }

    impl Element {
        pub fn child(&self, name: &str) -> Option<&Element> {
            self.children.iter().find(|c| c.name == name)
        }
    }

    pub fn parse(src: &str) -> Result<Element, String> {
        let b = src.as_bytes();
        let mut stack: Vec<Element> = vec![Element::default()];
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'<' {
                let end = src[i..].find('<').map_or(b.len(), |k| i + k);
                let text = unescape(&src[i..end]).map_err(|e| format!("byte {i}: {e}"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
                i = end;
                continue;
            }
            let rest = &src[i..];
            if rest.starts_with("<!--") {
                i += rest
                    .find("-->")
                    .ok_or_else(|| format!("byte {i}: unterminated comment"))?
                    + 3;
            } else if rest.starts_with("<?") || rest.starts_with("<!") {
                i += rest
                    .find('>')
                    .ok_or_else(|| format!("byte {i}: unterminated declaration"))?
                    + 1;
            } else if let Some(close) = rest.strip_prefix("</") {
                let end = close
                    .find('>')
                    .ok_or_else(|| format!("byte {i}: unterminated closing tag"))?;
                let name = close[..end].trim();
                let done = stack
                    .pop()
                    .filter(|_| !stack.is_empty())
                    .ok_or_else(|| format!("byte {i}: </{name}> closes nothing"))?;
                if done.name != name {
                    return Err(format!("byte {i}: </{name}> closes <{}>", done.name));
                }
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(done);
                }
                i += 2 + end + 1;
            } else {
                let end = rest
                    .find('>')
                    .ok_or_else(|| format!("byte {i}: unterminated tag"))?;
                let inner = &rest[1..end];
                let self_closing = inner.ends_with('/');
                let inner = inner.trim_end_matches('/');
                let name = inner.split_whitespace().next().unwrap_or("").to_string();
                if name.is_empty() {
                    return Err(format!("byte {i}: a tag without a name"));
                }
                let el = Element {
                    name,
                    ..Element::default()
                };
                if self_closing {
                    if let Some(top) = stack.last_mut() {
                        top.children.push(el);
                    }
                } else {
                    stack.push(el);
                }
                i += end + 1;
            }
        }
        if stack.len() != 1 {
            let open = stack.last().map(|e| e.name.clone()).unwrap_or_default();
            return Err(format!("<{open}> is never closed"));
        }
        let doc = stack.pop().unwrap_or_default();
        doc.children
            .into_iter()
            .next()
            .ok_or_else(|| "no root element".to_string())
    }

    fn unescape(s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(p) = rest.find('&') {
            out.push_str(&rest[..p]);
            let after = &rest[p..];
            let end = after.find(';').ok_or("an '&' without ';'")?;
            let ent = &after[1..end];
            let ch = match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let code = if let Some(h) = ent.strip_prefix("#x") {
                        u32::from_str_radix(h, 16).ok()
                    } else {
                        ent.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                        .ok_or_else(|| format!("unknown entity &{ent};"))?
                }
            };
            out.push(ch);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn malformed_xml_is_an_error() {
            for bad in [
                "<a><b></a>",
                "<a>",
                "</a>",
                "<a>&bogus;</a>",
                "<a",
                "<!-- x",
                "",
                "<a></a></a>",
            ] {
                assert!(super::parse(bad).is_err(), "{bad:?}");
            }
            let ok =
                super::parse("<?xml version=\"1.0\"?><!-- c --><a x=\"1\"><b>1 &amp; 2</b><c/></a>").unwrap();
            assert_eq!(ok.child("b").unwrap().text, "1 & 2");
            assert!(ok.child("c").is_some());
        }
    }
}
