//! The frame's geometry (MCU grid, each component's block grid and sample
//! size, `jdinput.c`'s `initial_setup`) and the store of its DCT
//! coefficients.

use super::error::{JpegError, Result};
use super::markers::FrameHeader;

/// One component's sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Component {
    pub id: u8,
    pub h: usize,
    pub v: usize,
    pub quant_table: usize,
    /// Blocks that hold image data (`width_in_blocks`, `height_in_blocks`).
    pub width_in_blocks: usize,
    pub height_in_blocks: usize,
    /// Blocks stored: the MCU grid's, so dummy blocks of interleaved scans
    /// have a place.
    pub blocks_w: usize,
    pub blocks_h: usize,
    /// Samples that hold image data (`downsampled_width`, `_height`).
    pub sample_w: usize,
    pub sample_h: usize,
}

/// The frame header with everything derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub progressive: bool,
    pub width: usize,
    pub height: usize,
    pub hmax: usize,
    pub vmax: usize,
    /// MCUs per row and MCU rows of an interleaved scan.
    pub mcus_x: usize,
    pub mcus_y: usize,
    pub components: Vec<Component>,
}

impl Frame {
    pub(crate) fn new(header: &FrameHeader) -> Self {
        let (width, height) = (header.width as usize, header.height as usize);
        let hmax = header.components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = header.components.iter().map(|c| c.v).max().unwrap_or(1);
        let mcus_x = width.div_ceil(8 * hmax);
        let mcus_y = height.div_ceil(8 * vmax);
        let components = header
            .components
            .iter()
            .map(|c| Component {
                id: c.id,
                h: c.h,
                v: c.v,
                quant_table: c.quant_table,
                width_in_blocks: (width * c.h).div_ceil(8 * hmax),
                height_in_blocks: (height * c.v).div_ceil(8 * vmax),
                blocks_w: mcus_x * c.h,
                blocks_h: mcus_y * c.v,
                sample_w: (width * c.h).div_ceil(hmax),
                sample_h: (height * c.v).div_ceil(vmax),
            })
            .collect();
        Frame {
            progressive: header.progressive,
            width,
            height,
            hmax,
            vmax,
            mcus_x,
            mcus_y,
            components,
        }
    }

    /// Bytes the decoder allocates for this frame: coefficients, sample
    /// planes and the output image (`channels` bytes a pixel).
    pub(crate) fn decode_bytes(&self, channels: usize) -> u64 {
        let blocks: u64 = self
            .components
            .iter()
            .map(|c| (c.blocks_w * c.blocks_h) as u64)
            .sum();
        let planes: u64 = self
            .components
            .iter()
            .map(|c| (c.width_in_blocks * c.height_in_blocks * 64) as u64)
            .sum();
        blocks * 128 + planes + (self.width * self.height * channels) as u64
    }
}

/// DCT coefficients of every block, per component, in natural order.
pub(crate) struct Coefficients {
    pub blocks: Vec<Vec<[i16; 64]>>,
}

impl Coefficients {
    /// Zeroed coefficients of the whole image; `limit` is only for the
    /// error when the allocation fails.
    pub(crate) fn image(frame: &Frame, limit: u64) -> Result<Self> {
        Self::zeroed(frame, limit, |c| c.blocks_h)
    }

    /// Zeroed coefficients of one MCU row of a scan with every component
    /// (one block row when the frame has a single component).
    pub(crate) fn band(frame: &Frame, limit: u64) -> Result<Self> {
        let single = frame.components.len() == 1;
        Self::zeroed(frame, limit, |c| if single { 1 } else { c.v })
    }

    fn zeroed(frame: &Frame, limit: u64, block_rows: impl Fn(&Component) -> usize) -> Result<Self> {
        let mut blocks = Vec::with_capacity(frame.components.len());
        for c in &frame.components {
            let n = c.blocks_w * block_rows(c);
            let mut v = Vec::new();
            v.try_reserve_exact(n).map_err(|_| JpegError::TooMuchMemory {
                needed: frame.decode_bytes(frame.components.len()),
                limit,
            })?;
            v.resize(n, [0i16; 64]);
            blocks.push(v);
        }
        Ok(Coefficients { blocks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::markers::FrameComponent;

    #[test]
    fn geometry_of_an_odd_sized_420_frame() {
        let comp = |id, h, v| FrameComponent {
            id,
            h,
            v,
            quant_table: 0,
        };
        let header = FrameHeader {
            progressive: false,
            width: 131,
            height: 77,
            components: vec![comp(1, 2, 2), comp(2, 1, 1), comp(3, 1, 1)],
        };
        let f = Frame::new(&header);
        assert_eq!((f.mcus_x, f.mcus_y), (9, 5));
        let y = &f.components[0];
        assert_eq!((y.width_in_blocks, y.height_in_blocks), (17, 10));
        assert_eq!((y.blocks_w, y.blocks_h), (18, 10));
        assert_eq!((y.sample_w, y.sample_h), (131, 77));
        let cb = &f.components[1];
        assert_eq!((cb.width_in_blocks, cb.height_in_blocks), (9, 5));
        assert_eq!((cb.sample_w, cb.sample_h), (66, 39));
    }
}
