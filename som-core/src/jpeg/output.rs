//! From coefficients to pixels: the inverse DCT of every block into one
//! sample plane per component, then row by row upsampling and colour
//! conversion into the output image.

use image::{DynamicImage, GrayImage, RgbImage};

use super::color;
use super::error::{JpegError, Result};
use super::frame::{Coefficients, Frame};
use super::idct::idct_block;
use super::scan::Progress;
use super::smooth;
use super::upsample::{Plane, Upsampler};

/// The colour space of the coded components (libjpeg's `jpeg_color_space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColorSpace {
    Gray,
    YCbCr,
    Rgb,
    Cmyk,
    Ycck,
}

impl ColorSpace {
    /// libjpeg's guess (`default_decompress_parms`) from the component count,
    /// the JFIF and Adobe markers seen and the component ids.
    pub(crate) fn guess(frame: &Frame, jfif: bool, adobe: Option<u8>) -> Self {
        let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
        match ids.len() {
            1 => ColorSpace::Gray,
            3 => {
                if jfif {
                    ColorSpace::YCbCr
                } else if let Some(transform) = adobe {
                    if transform == 0 {
                        ColorSpace::Rgb
                    } else {
                        ColorSpace::YCbCr
                    }
                } else if ids == b"RGB" {
                    ColorSpace::Rgb
                } else {
                    ColorSpace::YCbCr
                }
            }
            _ => match adobe {
                Some(0) | None => ColorSpace::Cmyk,
                Some(_) => ColorSpace::Ycck,
            },
        }
    }
}

/// One zeroed sample plane per component.
pub(crate) fn planes(frame: &Frame) -> Vec<Plane> {
    frame
        .components
        .iter()
        .map(|c| {
            let stride = c.width_in_blocks * 8;
            Plane {
                data: vec![0u8; stride * c.height_in_blocks * 8],
                stride,
                width: c.sample_w,
                height: c.sample_h,
            }
        })
        .collect()
}

/// Inverse-transforms the blocks of one MCU row (a store from
/// [`Coefficients::band`]) into the planes, and zeroes the store again.
pub(crate) fn idct_band(
    frame: &Frame,
    planes: &mut [Plane],
    band: &mut Coefficients,
    quant: &[Option<[u16; 64]>],
    mcu_row: usize,
) {
    let rows_per_band = |v: usize| if frame.components.len() == 1 { 1 } else { v };
    for (ci, ((c, plane), blocks)) in frame
        .components
        .iter()
        .zip(planes)
        .zip(&mut band.blocks)
        .enumerate()
    {
        let q = quant[ci].unwrap_or([0; 64]);
        let n = rows_per_band(c.v);
        for r in 0..n {
            let by = mcu_row * n + r;
            if by < c.height_in_blocks {
                for bx in 0..c.width_in_blocks {
                    let offset = by * 8 * plane.stride + bx * 8;
                    idct_block(
                        &blocks[r * c.blocks_w + bx],
                        &q,
                        &mut plane.data[offset..],
                        plane.stride,
                    );
                }
            }
        }
        blocks.fill([0; 64]);
    }
}

/// Inverse-transforms every block of a buffered image into the planes, with
/// libjpeg's block smoothing where it applies. `quant` holds each
/// component's table, `None` for a component no scan reached (its
/// coefficients are all zero).
pub(crate) fn idct_image(
    frame: &Frame,
    planes: &mut [Plane],
    coefficients: &Coefficients,
    quant: &[Option<[u16; 64]>],
    progress: &Progress,
) {
    let smoothing = smooth::wanted(frame.progressive, &progress.bits, quant);
    for (ci, (c, plane)) in frame.components.iter().zip(planes).enumerate() {
        let q = quant[ci].unwrap_or([0; 64]);
        let blocks = &coefficients.blocks[ci];
        let stride = plane.stride;
        let mut put = |bx: usize, by: usize, block: &[i16; 64]| {
            idct_block(block, &q, &mut plane.data[by * 8 * stride + bx * 8..], stride);
        };
        if smoothing {
            let none = [-1i32; 64];
            let previous = if progress.scans > 1 {
                &progress.previous[ci]
            } else {
                &none
            };
            let ctx = smooth::Context {
                component: c,
                blocks,
                quant: &q,
                bits: &progress.bits[ci][..10],
                previous: &previous[..10],
                last_good_imcu_row: progress.last_good_imcu_row,
                imcu_rows: frame.mcus_y,
            };
            smooth::smooth(&ctx, put);
        } else {
            for by in 0..c.height_in_blocks {
                for bx in 0..c.width_in_blocks {
                    put(bx, by, &blocks[by * c.blocks_w + bx]);
                }
            }
        }
    }
}

/// Upsamples and colour-converts the planes into the output image: `Luma8`
/// for grayscale, `Rgb8` otherwise (CMYK as PIL converts it).
pub(crate) fn pixels(frame: &Frame, planes: &[Plane], space: ColorSpace) -> Result<DynamicImage> {
    let upsamplers = frame
        .components
        .iter()
        .map(|c| Upsampler::choose(c.h, c.v, frame.hmax, frame.vmax, c.sample_w))
        .collect::<Result<Vec<_>>>()?;
    let (w, h) = (frame.width, frame.height);
    let size_error = || JpegError::corrupt("image buffer size mismatch");
    let mut rows: Vec<Vec<u8>> = upsamplers
        .iter()
        .zip(planes)
        .map(|(up, plane)| vec![0u8; up.row_len(plane).max(w)])
        .collect();
    if space == ColorSpace::Gray {
        let mut out = vec![0u8; w * h];
        for (y, line) in out.chunks_exact_mut(w).enumerate() {
            upsamplers[0].row(&planes[0], y, &mut rows[0]);
            line.copy_from_slice(&rows[0][..w]);
        }
        let image = GrayImage::from_raw(w as u32, h as u32, out).ok_or_else(size_error)?;
        return Ok(DynamicImage::ImageLuma8(image));
    }
    let mut out = vec![0u8; w * h * 3];
    for (y, line) in out.chunks_exact_mut(w * 3).enumerate() {
        for ((up, plane), row) in upsamplers.iter().zip(planes).zip(rows.iter_mut()) {
            up.row(plane, y, row);
        }
        match space {
            ColorSpace::YCbCr => color::ycc_to_rgb(&rows[0], &rows[1], &rows[2], line),
            ColorSpace::Rgb => color::interleave(&rows[0], &rows[1], &rows[2], line),
            _ => color::cmyk_to_rgb(
                [&rows[0], &rows[1], &rows[2], &rows[3]],
                space == ColorSpace::Ycck,
                line,
            ),
        }
    }
    let image = RgbImage::from_raw(w as u32, h as u32, out).ok_or_else(size_error)?;
    Ok(DynamicImage::ImageRgb8(image))
}
