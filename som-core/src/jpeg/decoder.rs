//! The decoder's main loop: markers in file order (`jdmarker.c`'s
//! `read_markers`), tables kept as they are defined, each scan decoded into
//! the coefficient store, pixels produced at the end-of-image marker.

use image::DynamicImage;

use super::error::{JpegError, Result};
use super::frame::{Coefficients, Frame};
use super::markers::{self as m, HuffmanSlots, Input, QuantSlots, ScanHeader};
use super::output::{self, ColorSpace};
use super::scan::{self, Progress, ScanEnd, Target};
use super::upsample::Plane;
use super::Limits;

/// The most scans a file may have. Encoders write about ten for a
/// progressive JPEG; every scan may visit every block, so the limit bounds
/// the work a small crafted file can ask for (libjpeg has none; its `djpeg`
/// offers `-maxscans` for this).
pub(crate) const MAX_SCANS: usize = 256;

/// How the coefficients are kept, decided at the first scan as libjpeg
/// decides it.
enum Store {
    /// Before the first scan.
    Undecided,
    /// A sequential file whose first scan holds every component: each MCU
    /// row is transformed as soon as it is decoded. Later scans change
    /// nothing (libjpeg has already produced its output by then).
    SinglePass { done: bool },
    /// Progressive files and sequential ones with several scans: every
    /// coefficient is kept until the end of the image.
    Buffered(Coefficients),
}

/// Everything known about the image once its frame header is read.
struct Image {
    frame: Frame,
    store: Store,
    planes: Vec<Plane>,
    progress: Progress,
    /// Each component's quantisation table, fixed at its first scan.
    quant: Vec<Option<[u16; 64]>>,
    space: Option<ColorSpace>,
}

pub(crate) fn decode(data: &[u8], limits: &Limits) -> Result<DynamicImage> {
    let mut input = Input::new(data);
    input.first_marker()?;
    let mut huffman: HuffmanSlots = Default::default();
    let mut quant: QuantSlots = [None; 4];
    let mut restart_interval = 0u16;
    let mut jfif = false;
    let mut adobe = None;
    let mut image: Option<Image> = None;
    let mut pending = None;
    loop {
        let marker = match pending.take() {
            Some(marker) => marker,
            None => input.next_marker()?,
        };
        match marker {
            m::SOF0 | m::SOF1 | m::SOF2 => {
                if image.is_some() {
                    return Err(JpegError::corrupt("a second frame header"));
                }
                let header = m::parse_sof(input.segment("frame header")?, marker == m::SOF2)?;
                image = Some(start_image(&header, limits)?);
            }
            0xC3 | 0xC5..=0xCB | 0xCD..=0xCF => return Err(unsupported_frame(marker)),
            m::DHT => m::parse_dht(input.segment("Huffman table")?, &mut huffman)?,
            m::DQT => m::parse_dqt(input.segment("quantisation table")?, &mut quant)?,
            m::DRI => restart_interval = m::parse_dri(input.segment("restart interval")?)?,
            m::SOS => {
                let img = image
                    .as_mut()
                    .ok_or_else(|| JpegError::corrupt("a scan before the frame header"))?;
                let ids: Vec<u8> = img.frame.components.iter().map(|c| c.id).collect();
                let header = m::parse_sos(input.segment("scan header")?, &ids)?;
                if img.progress.scans >= MAX_SCANS {
                    return Err(JpegError::unsupported(format!("more than {MAX_SCANS} scans")));
                }
                for sc in &header.components {
                    if img.quant[sc.index].is_none() {
                        let slot = img.frame.components[sc.index].quant_table;
                        img.quant[sc.index] = Some(quant[slot].ok_or_else(|| {
                            JpegError::corrupt(format!("quantisation table {slot} is used but not defined"))
                        })?);
                    }
                }
                img.space
                    .get_or_insert_with(|| ColorSpace::guess(&img.frame, jfif, adobe));
                let pos = input.pos();
                let end = decode_scan(img, data, pos, &header, &huffman, restart_interval, limits)?;
                input.set_pos(end.pos);
                pending = end.marker;
            }
            m::EOI => break,
            m::APP0 => jfif |= m::is_jfif(input.segment("APP0")?),
            m::APP14 => adobe = m::adobe_transform(input.segment("APP14")?).or(adobe),
            0xE1..=m::APP15 | m::COM | m::DNL | m::DAC => {
                input.segment("marker")?;
            }
            m::RST0..=m::RST7 | m::TEM => {}
            m::SOI => return Err(JpegError::corrupt("a second start-of-image marker")),
            other => return Err(JpegError::corrupt(format!("unknown marker {other:#04x}"))),
        }
    }
    let img = image.ok_or_else(|| JpegError::corrupt("no frame header before the end-of-image marker"))?;
    let space = img
        .space
        .ok_or_else(|| JpegError::corrupt("no scan before the end-of-image marker"))?;
    let mut img = img;
    if let Store::Buffered(coefficients) = &img.store {
        output::idct_image(
            &img.frame,
            &mut img.planes,
            coefficients,
            &img.quant,
            &img.progress,
        );
    }
    output::pixels(&img.frame, &img.planes, space)
}

/// The error for a frame type this decoder does not read (lossless, arithmetic-coded,
/// hierarchical or reserved SOF markers).
fn unsupported_frame(marker: u8) -> JpegError {
    match marker {
        0xC3 | 0xCB => JpegError::unsupported("lossless JPEG"),
        0xC9 | 0xCA => JpegError::unsupported("arithmetic coding"),
        _ => JpegError::unsupported(format!("frame type {marker:#04x} (hierarchical or reserved)")),
    }
}

/// The width and height of the frame header, read as [`decode`] reads it, without
/// decoding anything.
pub(crate) fn dimensions(data: &[u8]) -> Result<(u32, u32)> {
    let mut input = Input::new(data);
    input.first_marker()?;
    loop {
        match input.next_marker()? {
            marker @ (m::SOF0 | m::SOF1 | m::SOF2) => {
                let header = m::parse_sof(input.segment("frame header")?, marker == m::SOF2)?;
                return Ok((header.width, header.height));
            }
            marker @ (0xC3 | 0xC5..=0xCB | 0xCD..=0xCF) => return Err(unsupported_frame(marker)),
            m::SOS => return Err(JpegError::corrupt("a scan before the frame header")),
            m::EOI => {
                return Err(JpegError::corrupt(
                    "no frame header before the end-of-image marker",
                ))
            }
            m::SOI => return Err(JpegError::corrupt("a second start-of-image marker")),
            m::RST0..=m::RST7 | m::TEM => {}
            m::DHT | m::DQT | m::DRI | m::APP0..=m::APP15 | m::COM | m::DNL | m::DAC => {
                input.segment("marker")?;
            }
            other => return Err(JpegError::corrupt(format!("unknown marker {other:#04x}"))),
        }
    }
}

/// Checks the limits and allocates the coefficient store.
fn start_image(header: &m::FrameHeader, limits: &Limits) -> Result<Image> {
    if header.width > limits.max_side || header.height > limits.max_side {
        return Err(JpegError::TooLarge {
            width: header.width,
            height: header.height,
            limit: limits.max_side,
        });
    }
    let frame = Frame::new(header);
    let channels = if frame.components.len() == 1 { 1 } else { 3 };
    let needed = frame.decode_bytes(channels);
    if needed > limits.max_bytes {
        return Err(JpegError::TooMuchMemory {
            needed,
            limit: limits.max_bytes,
        });
    }
    let n = frame.components.len();
    Ok(Image {
        planes: output::planes(&frame),
        frame,
        store: Store::Undecided,
        progress: Progress::new(n),
        quant: vec![None; n],
        space: None,
    })
}

/// Decodes one scan into the image's store, choosing the store at the
/// first scan.
fn decode_scan(
    img: &mut Image,
    data: &[u8],
    pos: usize,
    header: &ScanHeader,
    huffman: &HuffmanSlots,
    restart_interval: u16,
    limits: &Limits,
) -> Result<ScanEnd> {
    if matches!(img.store, Store::Undecided) {
        img.store = if !img.frame.progressive && header.components.len() == img.frame.components.len() {
            Store::SinglePass { done: false }
        } else {
            Store::Buffered(Coefficients::image(&img.frame, limits.max_bytes)?)
        };
    }
    let Image {
        frame,
        store,
        planes,
        progress,
        quant,
        ..
    } = img;
    if matches!(store, Store::SinglePass { done: true }) {
        return skip_scan(data, pos);
    }
    let mut band;
    let mut emit;
    let target = match store {
        Store::Buffered(coefficients) => Target::Image(coefficients),
        _ => {
            band = Coefficients::band(frame, limits.max_bytes)?;
            emit = |row: usize, band: &mut Coefficients| output::idct_band(frame, planes, band, quant, row);
            Target::Band(&mut band, &mut emit)
        }
    };
    let end = scan::decode_scan(
        data,
        pos,
        frame,
        header,
        huffman,
        restart_interval,
        target,
        progress,
    )?;
    if let Store::SinglePass { done } = store {
        *done = true;
    }
    Ok(end)
}

/// Skips the entropy-coded data of a scan that changes nothing (a later
/// scan of a single-pass file: libjpeg has produced its output by then).
fn skip_scan(data: &[u8], pos: usize) -> Result<ScanEnd> {
    let mut input = Input::new(data);
    input.set_pos(pos);
    loop {
        let marker = input.next_marker()?;
        if !(m::RST0..=m::RST7).contains(&marker) {
            return Ok(ScanEnd {
                pos: input.pos(),
                marker: Some(marker),
            });
        }
    }
}
