//! The last few marked images, so the page's `mark` → `mark.png` → `ask`
//! sequence on one image segments it once.
//!
//! An entry matches on the exact upload bytes, the segmenter and the style —
//! compared, not hashed, so two different images can never share an entry.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use som_core::MarkedImage;
use som_marks::MarkStyle;

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    segmenter: String,
    style: MarkStyle,
    marked: Arc<MarkedImage>,
}

/// A small least-recently-used cache of marked images.
#[derive(Debug)]
pub(crate) struct MarkCache {
    capacity: usize,
    entries: Mutex<VecDeque<Entry>>,
}

impl MarkCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// The marked image for these inputs, if it is kept (and now the most
    /// recently used).
    pub fn get(&self, bytes: &[u8], segmenter: &str, style: &MarkStyle) -> Option<Arc<MarkedImage>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let i = entries.iter().position(|e| {
            e.segmenter == segmenter && e.style == *style && e.bytes.len() == bytes.len() && e.bytes == bytes
        })?;
        let entry = entries.remove(i)?;
        let marked = entry.marked.clone();
        entries.push_front(entry);
        Some(marked)
    }

    /// Keeps a marked image, dropping the least recently used beyond capacity.
    pub fn put(&self, bytes: Bytes, segmenter: &str, style: MarkStyle, marked: Arc<MarkedImage>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| !(e.segmenter == segmenter && e.style == style && e.bytes == bytes));
        entries.push_front(Entry {
            bytes,
            segmenter: segmenter.to_string(),
            style,
            marked,
        });
        entries.truncate(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use som_core::{ImageSize, Segmentation};

    fn marked() -> Arc<MarkedImage> {
        let seg = Segmentation::new(ImageSize::new(2, 2), Vec::new()).unwrap();
        Arc::new(MarkedImage::new(RgbImage::new(2, 2), Vec::new(), seg).unwrap())
    }

    #[test]
    fn hits_need_the_same_bytes_segmenter_and_style() {
        let cache = MarkCache::new(2);
        let style = MarkStyle::default();
        let m = marked();
        cache.put(Bytes::from_static(b"image-a"), "classic", style, m.clone());
        assert!(Arc::ptr_eq(
            &cache.get(b"image-a", "classic", &style).unwrap(),
            &m
        ));
        assert!(cache.get(b"image-b", "classic", &style).is_none());
        assert!(cache.get(b"image-a", "felzenszwalb", &style).is_none());
        let letters = MarkStyle {
            labels: som_marks::LabelKind::Letter,
            ..style
        };
        assert!(cache.get(b"image-a", "classic", &letters).is_none());
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let cache = MarkCache::new(2);
        let style = MarkStyle::default();
        cache.put(Bytes::from_static(b"a"), "s", style, marked());
        cache.put(Bytes::from_static(b"b"), "s", style, marked());
        assert!(cache.get(b"a", "s", &style).is_some()); // a is now the most recent
        cache.put(Bytes::from_static(b"c"), "s", style, marked());
        assert!(cache.get(b"b", "s", &style).is_none());
        assert!(cache.get(b"a", "s", &style).is_some());
        assert!(cache.get(b"c", "s", &style).is_some());
        let none = MarkCache::new(0);
        none.put(Bytes::from_static(b"a"), "s", style, marked());
        assert!(none.get(b"a", "s", &style).is_none());
    }
}
