//! Label maps: one integer per pixel, read from and written to PNG files
//! exactly as the benchmarks store them.
//!
//! - Indexed (palette) and grayscale PNGs give their stored values, not
//!   colours: a DAVIS annotation pixel of palette index 2 is label 2 (what
//!   `numpy.array(PIL.Image.open(path))` gives, which is how the DAVIS and
//!   ADE20K toolkits read them).
//! - COCO panoptic PNGs store a segment id as RGB: `id = R + 256·G + 256²·B`
//!   ([`LabelMap::read_png_rgb_ids`]).

use std::io::{BufWriter, Cursor};
use std::path::Path;

use som_core::{ImageSize, Mask};

use crate::error::{EvalError, Result};

/// The most pixels a label map may have (larger PNGs are refused before decoding).
pub const MAX_PIXELS: u64 = 1 << 28;

/// One label per pixel, row-major.
///
/// ```
/// use som_core::ImageSize;
/// use som_eval::LabelMap;
/// let map = LabelMap::new(ImageSize::new(3, 2), vec![0, 1, 1, 2, 0, 1])?;
/// assert_eq!(map.max(), Some(2));
/// assert_eq!(map.mask(1).area(), 3);
/// assert_eq!(map.get(0, 1), Some(2));
/// # Ok::<(), som_eval::EvalError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    size: ImageSize,
    labels: Vec<u32>,
}

impl LabelMap {
    /// A label map of `size` from row-major labels.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when `labels` does not have one value per pixel.
    pub fn new(size: ImageSize, labels: Vec<u32>) -> Result<Self> {
        if labels.len() as u64 != size.pixels() {
            return Err(EvalError::invalid(
                "label map",
                format!("{} labels for a {size} image", labels.len()),
            ));
        }
        Ok(Self { size, labels })
    }

    /// A map of `size` filled with `label`.
    pub fn filled(size: ImageSize, label: u32) -> Self {
        Self {
            size,
            labels: vec![label; size.pixels() as usize],
        }
    }

    /// The image size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The labels, row-major.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The label at `(x, y)`, `None` outside the image.
    pub fn get(&self, x: u32, y: u32) -> Option<u32> {
        (x < self.size.width && y < self.size.height)
            .then(|| self.labels[y as usize * self.size.width as usize + x as usize])
    }

    /// The largest label (`None` for an image with no pixels).
    pub fn max(&self) -> Option<u32> {
        self.labels.iter().copied().max()
    }

    /// The pixels whose label is `label`.
    pub fn mask(&self, label: u32) -> Mask {
        Mask::from_fn(self.size, |x, y| {
            self.labels[y as usize * self.size.width as usize + x as usize] == label
        })
    }

    /// The label covering most pixels of `mask` (ties: the smaller label);
    /// `None` for an empty mask or one of another size.
    ///
    /// ```
    /// use som_core::{BBox, ImageSize, Mask};
    /// use som_eval::LabelMap;
    /// let map = LabelMap::new(ImageSize::new(4, 1), vec![5, 5, 7, 7])?;
    /// assert_eq!(map.majority(&Mask::from_box(map.size(), BBox::new(1, 0, 3, 1))), Some(7));
    /// # Ok::<(), som_eval::EvalError>(())
    /// ```
    pub fn majority(&self, mask: &Mask) -> Option<u32> {
        if mask.size() != self.size {
            return None;
        }
        let mut counts: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        for i in pixels(mask) {
            *counts.entry(self.labels[i]).or_insert(0) += 1;
        }
        counts
            .iter()
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
            .map(|(c, _)| *c)
    }

    /// A map of `size` holding `classes` painted largest mask first, so smaller
    /// regions on top of larger ones stay visible; other pixels are `background`.
    ///
    /// # Errors
    /// [`EvalError::Size`] for a mask of another size.
    pub fn painted(size: ImageSize, mut classes: Vec<(Mask, u32)>, background: u32) -> Result<Self> {
        classes.sort_by_key(|(m, _)| std::cmp::Reverse(m.area()));
        let mut map = Self::filled(size, background);
        for (m, c) in &classes {
            map.paint(m, *c)?;
        }
        Ok(map)
    }

    /// Replaces every `from` by `to`.
    pub fn replace(&mut self, from: u32, to: u32) {
        for v in &mut self.labels {
            if *v == from {
                *v = to;
            }
        }
    }

    /// Sets the pixels of `mask` to `label`.
    ///
    /// # Errors
    /// [`EvalError::Size`] when the mask covers another image size.
    pub fn paint(&mut self, mask: &Mask, label: u32) -> Result<()> {
        if mask.size() != self.size {
            return Err(EvalError::Size {
                what: "a mask painted into a label map".into(),
                expected: self.size,
                found: mask.size(),
            });
        }
        for i in pixels(mask) {
            self.labels[i] = label;
        }
        Ok(())
    }

    /// Reads an indexed, grayscale (8 or 16 bit) PNG as its stored values.
    ///
    /// # Errors
    /// [`EvalError::Io`] when the file cannot be read; [`EvalError::Dataset`]
    /// naming the file for a corrupt PNG, an RGB or alpha PNG (a colour image is
    /// not a label map), or more than [`MAX_PIXELS`] pixels.
    pub fn read_png(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EvalError::io("read", path, e))?;
        Self::decode_png(&bytes).map_err(|m| EvalError::dataset(path.display().to_string(), "", m))
    }

    /// [`LabelMap::read_png`] from memory; the error is the message only.
    ///
    /// # Errors
    /// The reason the bytes are not a label-map PNG.
    pub fn decode_png(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (info, data) = decode_raw(bytes)?;
        let (w, h) = (info.width as usize, info.height as usize);
        let depth = info.depth;
        let labels: Vec<u32> = match (info.color, depth) {
            (png::ColorType::Indexed | png::ColorType::Grayscale, 1 | 2 | 4 | 8) => {
                let stride = (w * depth as usize).div_ceil(8);
                let per_byte = 8 / depth as usize;
                let mask = (1u16 << depth) - 1;
                // PIL reads 2- and 4-bit grayscale scaled to 8 bits (L;2, L;4); 1-bit as 0/1.
                let scale = if info.color == png::ColorType::Grayscale && (depth == 2 || depth == 4) {
                    255 / mask as u32
                } else {
                    1
                };
                let mut out = Vec::with_capacity(w * h);
                for row in data.chunks_exact(stride).take(h) {
                    for x in 0..w {
                        let byte = row[x / per_byte] as u16;
                        let shift = 8 - depth as usize * (x % per_byte + 1);
                        out.push(((byte >> shift) & mask) as u32 * scale);
                    }
                }
                out
            }
            (png::ColorType::Grayscale, 16) => data
                .chunks_exact(2)
                .take(w * h)
                .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                .collect(),
            (color, depth) => {
                return Err(format!(
                    "a {color:?} PNG of {depth} bits is not a label map (expected indexed or grayscale)"
                ))
            }
        };
        if labels.len() != w * h {
            return Err("truncated PNG image data".into());
        }
        Ok(Self {
            size: ImageSize::new(info.width, info.height),
            labels,
        })
    }

    /// Reads an 8-bit RGB PNG whose pixels encode ids as `R + 256·G + 256²·B`
    /// (COCO panoptic segmentation).
    ///
    /// # Errors
    /// As [`LabelMap::read_png`]; any format other than 8-bit RGB is refused.
    pub fn read_png_rgb_ids(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EvalError::io("read", path, e))?;
        let err = |m: String| EvalError::dataset(path.display().to_string(), "", m);
        let (info, data) = decode_raw(&bytes).map_err(err)?;
        if info.color != png::ColorType::Rgb || info.depth != 8 {
            return Err(err(format!(
                "a {:?} PNG of {} bits is not a panoptic id map (expected 8-bit RGB)",
                info.color, info.depth
            )));
        }
        let n = info.width as usize * info.height as usize;
        let labels: Vec<u32> = data
            .chunks_exact(3)
            .take(n)
            .map(|p| p[0] as u32 + 256 * p[1] as u32 + 65536 * p[2] as u32)
            .collect();
        if labels.len() != n {
            return Err(err("truncated PNG image data".into()));
        }
        Ok(Self {
            size: ImageSize::new(info.width, info.height),
            labels,
        })
    }

    /// Writes an 8-bit indexed PNG with `palette` (RGB triples), as the DAVIS
    /// toolkit reads and writes results.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] for a label above 255; [`EvalError::Io`] when the
    /// file cannot be written.
    pub fn write_indexed_png(&self, path: &Path, palette: &[u8]) -> Result<()> {
        if let Some(v) = self.labels.iter().find(|&&v| v > 255) {
            return Err(EvalError::invalid(
                "label map",
                format!("label {v} does not fit an indexed PNG (at most 255)"),
            ));
        }
        let bytes: Vec<u8> = self.labels.iter().map(|&v| v as u8).collect();
        let file = std::fs::File::create(path).map_err(|e| EvalError::io("create", path, e))?;
        let mut enc = png::Encoder::new(BufWriter::new(file), self.size.width, self.size.height);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette.to_vec());
        let io = |e: png::EncodingError| EvalError::io("write", path, std::io::Error::other(e.to_string()));
        let mut writer = enc.write_header().map_err(io)?;
        writer.write_image_data(&bytes).map_err(io)?;
        writer.finish().map_err(io)?;
        Ok(())
    }
}

/// Row-major indices of the pixels inside `mask`, in its image.
fn pixels(mask: &Mask) -> impl Iterator<Item = usize> + '_ {
    let b = mask.bbox();
    let w = mask.size().width as usize;
    mask.crop_rows().enumerate().flat_map(move |(dy, row)| {
        let start = (b.y as usize + dy) * w + b.x as usize;
        row.iter()
            .enumerate()
            .filter(|(_, &v)| v != 0)
            .map(move |(dx, _)| start + dx)
    })
}

/// The PASCAL VOC colour map that DAVIS annotations and results use
/// (256 RGB triples).
///
/// ```
/// let p = som_eval::labelmap::davis_palette();
/// assert_eq!((&p[3..6], &p[6..9]), (&[128u8, 0, 0][..], &[0u8, 128, 0][..]));
/// ```
pub fn davis_palette() -> Vec<u8> {
    let mut out = Vec::with_capacity(768);
    for i in 0..256u32 {
        let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
        let mut c = i;
        for j in 0..8 {
            r |= ((c & 1) as u8) << (7 - j);
            g |= (((c >> 1) & 1) as u8) << (7 - j);
            b |= (((c >> 2) & 1) as u8) << (7 - j);
            c >>= 3;
        }
        out.extend([r, g, b]);
    }
    out
}

struct RawInfo {
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: u8,
}

fn decode_raw(bytes: &[u8]) -> std::result::Result<(RawInfo, Vec<u8>), String> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG ({e})"))?;
    let info = reader.info();
    let raw = RawInfo {
        width: info.width,
        height: info.height,
        color: info.color_type,
        depth: info.bit_depth as u8,
    };
    if raw.width as u64 * raw.height as u64 > MAX_PIXELS {
        return Err(format!(
            "a {}x{} PNG is larger than the {MAX_PIXELS}-pixel limit",
            raw.width, raw.height
        ));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "PNG too large to decode".to_string())?;
    let mut buf = vec![0u8; size];
    reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt PNG image data ({e})"))?;
    Ok((raw, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_png_round_trips_with_its_indices() {
        let dir = std::env::temp_dir().join(format!("som-eval-labelmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.png");
        let map = LabelMap::new(ImageSize::new(5, 3), (0..15).map(|v| v % 4).collect()).unwrap();
        map.write_indexed_png(&path, &davis_palette()).unwrap();
        assert_eq!(LabelMap::read_png(&path).unwrap(), map);
        let big = LabelMap::new(ImageSize::new(1, 1), vec![300]).unwrap();
        assert!(big.write_indexed_png(&path, &davis_palette()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_and_colour_pngs_are_refused() {
        assert!(LabelMap::decode_png(b"not a png")
            .unwrap_err()
            .contains("not a readable PNG"));
        let mut png = Vec::new();
        image::RgbImage::new(2, 2)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(LabelMap::decode_png(&png)
            .unwrap_err()
            .contains("not a label map"));
        assert!(LabelMap::decode_png(&png[..png.len() - 20]).is_err());
    }

    #[test]
    fn low_bit_depth_palettes_unpack() {
        // A 3x1 2-bit indexed PNG holding 1, 2, 3.
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 3, 1);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(png::BitDepth::Two);
            enc.set_palette(vec![0u8; 12]);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[0b0110_1100]).unwrap();
        }
        assert_eq!(LabelMap::decode_png(&out).unwrap().labels(), &[1, 2, 3]);
    }
}
