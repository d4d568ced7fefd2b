//! Marker segments: the byte cursor over the file and the parsers of the
//! headers and tables (frame, scan, Huffman, quantisation, restart interval,
//! JFIF and Adobe application markers), with libjpeg-turbo's validation rules
//! (`jdmarker.c`).

use super::error::{JpegError, Result};
use super::huffman::HuffmanSpec;
use super::NATURAL_ORDER;

pub(crate) const SOF0: u8 = 0xC0;
pub(crate) const SOF1: u8 = 0xC1;
pub(crate) const SOF2: u8 = 0xC2;
pub(crate) const DHT: u8 = 0xC4;
pub(crate) const DAC: u8 = 0xCC;
pub(crate) const RST0: u8 = 0xD0;
pub(crate) const RST7: u8 = 0xD7;
pub(crate) const SOI: u8 = 0xD8;
pub(crate) const EOI: u8 = 0xD9;
pub(crate) const SOS: u8 = 0xDA;
pub(crate) const DQT: u8 = 0xDB;
pub(crate) const DNL: u8 = 0xDC;
pub(crate) const DRI: u8 = 0xDD;
pub(crate) const APP0: u8 = 0xE0;
pub(crate) const APP14: u8 = 0xEE;
pub(crate) const APP15: u8 = 0xEF;
pub(crate) const COM: u8 = 0xFE;
pub(crate) const TEM: u8 = 0x01;

/// A read position in the file.
pub(crate) struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.data.len());
    }

    fn byte(&mut self, context: &'static str) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or(JpegError::Truncated(context))?;
        self.pos += 1;
        Ok(b)
    }

    /// The body of the marker segment that starts here (its length field
    /// counts itself).
    pub(crate) fn segment(&mut self, name: &str) -> Result<&'a [u8]> {
        let hi = self.byte("inside a marker segment")?;
        let lo = self.byte("inside a marker segment")?;
        let length = usize::from(u16::from_be_bytes([hi, lo]));
        if length < 2 {
            return Err(JpegError::corrupt(format!(
                "{name} segment length {length} is below 2"
            )));
        }
        let body = self
            .data
            .get(self.pos..self.pos + length - 2)
            .ok_or(JpegError::Truncated("inside a marker segment"))?;
        self.pos += length - 2;
        Ok(body)
    }

    /// The file must start with the SOI marker and another marker right
    /// after it (what PIL checks before it hands a file to libjpeg).
    pub(crate) fn first_marker(&mut self) -> Result<()> {
        if !self.data.starts_with(&[0xFF, SOI, 0xFF]) {
            return Err(JpegError::NotJpeg);
        }
        self.pos = 2;
        Ok(())
    }

    /// The next marker code, skipping anything that is not a marker (as
    /// libjpeg's `next_marker`: garbage bytes, fill bytes, stuffed FF 00).
    pub(crate) fn next_marker(&mut self) -> Result<u8> {
        const WHERE: &str = "before the end-of-image marker";
        loop {
            let mut c = self.byte(WHERE)?;
            while c != 0xFF {
                c = self.byte(WHERE)?;
            }
            loop {
                c = self.byte(WHERE)?;
                if c != 0xFF {
                    break;
                }
            }
            if c != 0 {
                return Ok(c);
            }
        }
    }
}

/// One component as the frame header declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameComponent {
    pub id: u8,
    pub h: usize,
    pub v: usize,
    pub quant_table: usize,
}

/// The frame header (SOF0, SOF1 or SOF2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub progressive: bool,
    pub width: u32,
    pub height: u32,
    pub components: Vec<FrameComponent>,
}

/// Parses a Huffman-coded DCT frame header.
pub(crate) fn parse_sof(body: &[u8], progressive: bool) -> Result<FrameHeader> {
    if body.len() < 6 {
        return Err(JpegError::corrupt("frame header is shorter than 6 bytes"));
    }
    let precision = body[0];
    let height = u32::from(u16::from_be_bytes([body[1], body[2]]));
    let width = u32::from(u16::from_be_bytes([body[3], body[4]]));
    let count = usize::from(body[5]);
    if height == 0 || width == 0 || count == 0 {
        return Err(JpegError::corrupt(format!(
            "empty image: {width}x{height} pixels, {count} components (a height defined later by DNL is not supported)"
        )));
    }
    if body.len() != 6 + 3 * count {
        return Err(JpegError::corrupt(format!(
            "frame header of {} bytes for {count} components",
            body.len() + 2
        )));
    }
    if precision != 8 {
        return Err(JpegError::unsupported(format!(
            "{precision}-bit samples (only 8-bit JPEGs are decoded, as by PIL)"
        )));
    }
    if count != 1 && count != 3 && count != 4 {
        return Err(JpegError::unsupported(format!(
            "{count} components (PIL decodes 1, 3 or 4)"
        )));
    }
    let mut components = Vec::with_capacity(count);
    for spec in body[6..].chunks_exact(3) {
        let (h, v) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 15));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return Err(JpegError::corrupt(format!(
                "sampling factors {h}x{v} of component {} (must be 1 to 4)",
                spec[0]
            )));
        }
        if spec[2] >= 4 {
            return Err(JpegError::corrupt(format!(
                "component {} uses quantisation table {} (must be 0 to 3)",
                spec[0], spec[2]
            )));
        }
        components.push(FrameComponent {
            id: spec[0],
            h,
            v,
            quant_table: usize::from(spec[2]),
        });
    }
    Ok(FrameHeader {
        progressive,
        width,
        height,
        components,
    })
}

/// One component of a scan: its index in the frame and its Huffman tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanComponent {
    pub index: usize,
    pub dc_table: usize,
    pub ac_table: usize,
}

/// A scan header (SOS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanHeader {
    pub components: Vec<ScanComponent>,
    /// First and last coefficient of the spectral band (zig-zag order).
    pub ss: usize,
    pub se: usize,
    /// Successive approximation: previous and current point transform.
    pub ah: u8,
    pub al: u8,
}

/// Parses a scan header against the ids of the frame's components.
pub(crate) fn parse_sos(body: &[u8], ids: &[u8]) -> Result<ScanHeader> {
    let count = usize::from(*body.first().unwrap_or(&0));
    if body.len() != 4 + 2 * count || !(1..=4).contains(&count) {
        return Err(JpegError::corrupt(format!(
            "scan header of {} bytes for {count} components",
            body.len() + 2
        )));
    }
    // libjpeg matches a selector to the first unclaimed frame component with
    // that id among the first four, and refuses a selector used twice.
    let mut claimed = [false; 4];
    let mut components: Vec<ScanComponent> = Vec::with_capacity(count);
    for spec in body[1..1 + 2 * count].chunks_exact(2) {
        let index = (0..ids.len().min(4))
            .find(|&ci| ids[ci] == spec[0] && !claimed[ci])
            .ok_or_else(|| {
                JpegError::corrupt(format!("scan names component {} that the frame lacks", spec[0]))
            })?;
        if components.iter().any(|c| c.index == index) {
            return Err(JpegError::corrupt(format!(
                "scan names component {} twice",
                spec[0]
            )));
        }
        claimed[index] = true;
        components.push(ScanComponent {
            index,
            dc_table: usize::from(spec[1] >> 4),
            ac_table: usize::from(spec[1] & 15),
        });
    }
    let tail = &body[1 + 2 * count..];
    Ok(ScanHeader {
        components,
        ss: usize::from(tail[0]),
        se: usize::from(tail[1]),
        ah: tail[2] >> 4,
        al: tail[2] & 15,
    })
}

/// Huffman tables by class (0 = DC, 1 = AC) and slot.
pub(crate) type HuffmanSlots = [[Option<HuffmanSpec>; 4]; 2];

/// Parses a DHT segment into the table slots.
pub(crate) fn parse_dht(mut body: &[u8], slots: &mut HuffmanSlots) -> Result<()> {
    while body.len() > 16 {
        let index = body[0];
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&body[1..17]);
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        body = &body[17..];
        if total > 256 || total > body.len() {
            return Err(JpegError::corrupt(
                "Huffman table with more codes than bytes or 256 symbols",
            ));
        }
        let (class, slot) = (usize::from(index >> 4), usize::from(index & 15));
        if class > 1 || slot > 3 {
            return Err(JpegError::corrupt(format!("Huffman table index {index:#04x}")));
        }
        slots[class][slot] = Some(HuffmanSpec {
            counts,
            values: body[..total].to_vec(),
        });
        body = &body[total..];
    }
    if !body.is_empty() {
        return Err(JpegError::corrupt("Huffman table segment has a bad length"));
    }
    Ok(())
}

/// Quantisation tables in natural (row-major) order.
pub(crate) type QuantSlots = [Option<[u16; 64]>; 4];

/// Parses a DQT segment into the table slots.
pub(crate) fn parse_dqt(mut body: &[u8], slots: &mut QuantSlots) -> Result<()> {
    while let Some((&head, rest)) = body.split_first() {
        let (wide, slot) = (head >> 4 != 0, usize::from(head & 15));
        if slot >= 4 {
            return Err(JpegError::corrupt(format!("quantisation table index {slot}")));
        }
        let size = if wide { 128 } else { 64 };
        let values = rest
            .get(..size)
            .ok_or_else(|| JpegError::corrupt("quantisation table segment has a bad length"))?;
        let mut table = [0u16; 64];
        for (i, &pos) in NATURAL_ORDER[..64].iter().enumerate() {
            table[pos] = if wide {
                u16::from_be_bytes([values[2 * i], values[2 * i + 1]])
            } else {
                u16::from(values[i])
            };
        }
        slots[slot] = Some(table);
        body = &rest[size..];
    }
    Ok(())
}

/// Parses a DRI segment: the restart interval in MCUs (0 = none).
pub(crate) fn parse_dri(body: &[u8]) -> Result<u16> {
    match body {
        [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(JpegError::corrupt("restart interval segment has a bad length")),
    }
}

/// Whether an APP0 body is a JFIF header (libjpeg reads the first 14 bytes).
pub(crate) fn is_jfif(body: &[u8]) -> bool {
    body.len() >= 14 && body.starts_with(b"JFIF\0")
}

/// The colour transform flag of an APP14 Adobe header (libjpeg reads the
/// first 12 bytes), if this is one.
pub(crate) fn adobe_transform(body: &[u8]) -> Option<u8> {
    (body.len() >= 12 && body.starts_with(b"Adobe")).then(|| body[11])
}
