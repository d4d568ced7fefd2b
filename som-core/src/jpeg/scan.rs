//! Entropy decoding of one scan into the coefficient store: sequential
//! (`jdhuff.c`) and the four progressive kinds (`jdphuff.c`: DC first, DC
//! refinement, AC first, AC refinement with end-of-band runs), restart
//! intervals, and libjpeg-turbo's recovery from damaged data.

use super::bits::BitReader;
use super::error::{JpegError, Result};
use super::frame::{Coefficients, Frame};
use super::huffman::{self, HuffmanTable};
use super::markers::{HuffmanSlots, ScanHeader};
use super::NATURAL_ORDER;

/// What a scan codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

/// Where decoding stopped: the next byte and the marker already met.
pub(crate) struct ScanEnd {
    pub pos: usize,
    pub marker: Option<u8>,
}

/// How far each coefficient of each component has been decoded in a
/// progressive frame (libjpeg's `coef_bits`): -1 = nothing yet, else the
/// point transform `Al` of its latest scan; plus the same before the
/// latest scan, which block smoothing reads.
pub(crate) struct Progress {
    pub bits: Vec<[i32; 64]>,
    pub previous: Vec<[i32; 64]>,
    pub scans: usize,
    /// The iMCU row of the last MCU of the latest scan that was reached
    /// before the data ran short (libjpeg's `last_good_iMCU_row`).
    pub last_good_imcu_row: usize,
}

impl Progress {
    pub(crate) fn new(components: usize) -> Self {
        Progress {
            bits: vec![[-1; 64]; components],
            previous: vec![[-1; 64]; components],
            scans: 0,
            last_good_imcu_row: 0,
        }
    }
}

/// Where a scan's coefficients go.
pub(crate) enum Target<'a> {
    /// The whole image's store (progressive and multi-scan files).
    Image(&'a mut Coefficients),
    /// A store of one MCU row, handed to the callback with the MCU row's
    /// index once decoded; the callback must leave it zeroed.
    Band(&'a mut Coefficients, &'a mut dyn FnMut(usize, &mut Coefficients)),
}

/// Decodes the scan whose entropy-coded data starts at `pos`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_scan(
    data: &[u8],
    pos: usize,
    frame: &Frame,
    header: &ScanHeader,
    huffman: &HuffmanSlots,
    restart_interval: u16,
    mut target: Target,
    progress: &mut Progress,
) -> Result<ScanEnd> {
    let kind = kind(frame, header)?;
    progress.scans += 1;
    if frame.progressive {
        record_progress(header, progress);
    }
    let single = header.components.len() == 1;
    if !single {
        let blocks: usize = header
            .components
            .iter()
            .map(|sc| frame.components[sc.index].h * frame.components[sc.index].v)
            .sum();
        if blocks > 10 {
            return Err(JpegError::corrupt(format!(
                "an MCU of {blocks} blocks (at most 10)"
            )));
        }
    }
    // libjpeg-turbo's sequential decoder (not the progressive one) falls back
    // to the standard tables in slots 0 and 1 (Motion-JPEG frames have none).
    let table = |class: usize, slot: usize| -> Result<HuffmanTable> {
        let defined = huffman
            .get(class)
            .and_then(|s| s.get(slot))
            .and_then(Option::as_ref);
        let spec = match defined {
            Some(spec) => spec.clone(),
            None if !frame.progressive && slot < 2 => huffman::standard(class, slot),
            None => {
                return Err(JpegError::corrupt(format!(
                    "scan uses {} Huffman table {slot}, which is not defined",
                    if class == 0 { "DC" } else { "AC" }
                )))
            }
        };
        HuffmanTable::new(&spec, class == 0)
    };
    // Tables a kind does not use stay empty (they are never read).
    let mut dc = Vec::new();
    let mut ac = Vec::new();
    for sc in &header.components {
        dc.push(match kind {
            Kind::Sequential | Kind::DcFirst => table(0, sc.dc_table)?,
            _ => HuffmanTable::empty(),
        });
        ac.push(match kind {
            Kind::Sequential | Kind::AcFirst | Kind::AcRefine => table(1, sc.ac_table)?,
            _ => HuffmanTable::empty(),
        });
    }

    // MCUs per row, MCU rows, and MCU rows per iMCU row.
    let (per_row, rows, imcu_height) = if single {
        let c = &frame.components[header.components[0].index];
        (c.width_in_blocks, c.height_in_blocks, c.v)
    } else {
        (frame.mcus_x, frame.mcus_y, 1)
    };
    let mut state = State {
        reader: BitReader::new(data, pos),
        preds: [0; 4],
        eobrun: 0,
        ss: header.ss,
        se: header.se.min(63),
        al: u32::from(header.al),
    };
    let interval = usize::from(restart_interval);
    let mut to_go = interval;
    let mut next_restart = 0u8;
    for my in 0..rows {
        for mx in 0..per_row {
            if !state.reader.insufficient {
                progress.last_good_imcu_row = my / imcu_height;
            }
            if interval > 0 {
                if to_go == 0 {
                    state.reader.restart(next_restart)?;
                    next_restart = (next_restart + 1) & 7;
                    state.preds = [0; 4];
                    state.eobrun = 0;
                    to_go = interval;
                }
                to_go -= 1;
            }
            // libjpeg skips the MCUs of a segment that ran out of data, except
            // in DC refinement scans (their bits then read as zeros).
            if state.reader.insufficient && kind != Kind::DcRefine {
                continue;
            }
            let (store, band_row) = match &mut target {
                Target::Image(c) => (&mut **c, my),
                Target::Band(c, _) => (&mut **c, 0),
            };
            for (si, sc) in header.components.iter().enumerate() {
                let c = &frame.components[sc.index];
                let blocks = &mut store.blocks[sc.index];
                let (bw, bh) = if single { (1, 1) } else { (c.h, c.v) };
                for v in 0..bh {
                    for h in 0..bw {
                        let block = &mut blocks[(band_row * bh + v) * c.blocks_w + mx * bw + h];
                        match kind {
                            Kind::Sequential => state.sequential(block, si, &dc[si], &ac[si])?,
                            Kind::DcFirst => state.dc_first(block, si, &dc[si])?,
                            Kind::DcRefine => state.dc_refine(block)?,
                            Kind::AcFirst => state.ac_first(block, &ac[si])?,
                            Kind::AcRefine => state.ac_refine(block, &ac[si])?,
                        }
                    }
                }
            }
        }
        if let Target::Band(store, row) = &mut target {
            row(my, store);
        }
    }
    Ok(ScanEnd {
        pos: state.reader.pos(),
        marker: state.reader.marker,
    })
}

/// The scan's kind, refusing progression parameters libjpeg refuses.
fn kind(frame: &Frame, header: &ScanHeader) -> Result<Kind> {
    if !frame.progressive {
        // libjpeg only warns about Ss/Se/Ah/Al here and decodes a full scan.
        return Ok(Kind::Sequential);
    }
    let is_dc = header.ss == 0;
    let mut bad = if is_dc {
        header.se != 0
    } else {
        header.ss > header.se || header.se > 63 || header.components.len() != 1
    };
    if header.ah != 0 && header.al != header.ah - 1 {
        bad = true;
    }
    if header.al > 13 {
        bad = true;
    }
    if bad {
        return Err(JpegError::corrupt(format!(
            "invalid progressive scan: Ss={} Se={} Ah={} Al={}",
            header.ss, header.se, header.ah, header.al
        )));
    }
    Ok(match (is_dc, header.ah == 0) {
        (true, true) => Kind::DcFirst,
        (true, false) => Kind::DcRefine,
        (false, true) => Kind::AcFirst,
        (false, false) => Kind::AcRefine,
    })
}

fn record_progress(header: &ScanHeader, progress: &mut Progress) {
    let first_scan = progress.scans == 1;
    for sc in &header.components {
        let bits = &mut progress.bits[sc.index];
        let previous = &mut progress.previous[sc.index];
        for k in header.ss.min(1)..=header.se.clamp(9, 63) {
            previous[k] = if first_scan { 0 } else { bits[k] };
        }
        bits[header.ss..=header.se.min(63)].fill(i32::from(header.al));
    }
}

struct State<'a> {
    reader: BitReader<'a>,
    preds: [i32; 4],
    eobrun: u32,
    ss: usize,
    se: usize,
    al: u32,
}

impl State<'_> {
    fn sequential(
        &mut self,
        block: &mut [i16; 64],
        si: usize,
        dc: &HuffmanTable,
        ac: &HuffmanTable,
    ) -> Result<()> {
        let s = self.reader.decode(dc)?;
        let diff = self.reader.receive_extend(u32::from(s))?;
        self.preds[si] = self.preds[si].wrapping_add(diff);
        block[0] = self.preds[si] as i16;
        let mut k = 1;
        while k < 64 {
            if let Some((run, value)) = self.reader.fast_ac(ac)? {
                k += run;
                block[NATURAL_ORDER[k]] = value as i16;
                k += 1;
                continue;
            }
            let rs = self.reader.decode(ac)?;
            let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
            if s != 0 {
                k += r;
                let value = self.reader.receive_extend(s)?;
                block[NATURAL_ORDER[k]] = value as i16;
                k += 1;
            } else if r == 15 {
                k += 16;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn dc_first(&mut self, block: &mut [i16; 64], si: usize, dc: &HuffmanTable) -> Result<()> {
        let s = self.reader.decode(dc)?;
        let diff = self.reader.receive_extend(u32::from(s))?;
        self.preds[si] = self.preds[si]
            .checked_add(diff)
            .ok_or_else(|| JpegError::corrupt("DC coefficient out of range"))?;
        block[0] = self.preds[si].wrapping_shl(self.al) as i16;
        Ok(())
    }

    fn dc_refine(&mut self, block: &mut [i16; 64]) -> Result<()> {
        if self.reader.bit()? {
            block[0] |= (1i32 << self.al) as i16;
        }
        Ok(())
    }

    fn ac_first(&mut self, block: &mut [i16; 64], ac: &HuffmanTable) -> Result<()> {
        if self.eobrun > 0 {
            self.eobrun -= 1;
            return Ok(());
        }
        let mut k = self.ss;
        while k <= self.se {
            let rs = self.reader.decode(ac)?;
            let (r, s) = (u32::from(rs >> 4), u32::from(rs & 15));
            if s != 0 {
                k += r as usize;
                let value = self.reader.receive_extend(s)?;
                block[NATURAL_ORDER[k]] = value.wrapping_shl(self.al) as i16;
            } else if r == 15 {
                k += 15;
            } else {
                self.eobrun = (1 << r) + self.reader.bits(r)? - 1;
                break;
            }
            k += 1;
        }
        Ok(())
    }

    fn ac_refine(&mut self, block: &mut [i16; 64], ac: &HuffmanTable) -> Result<()> {
        let p1 = (1i32 << self.al) as i16;
        let m1 = (-1i32 << self.al) as i16;
        let mut k = self.ss;
        if self.eobrun == 0 {
            while k <= self.se {
                let rs = self.reader.decode(ac)?;
                let mut r = i32::from(rs >> 4);
                let s = rs & 15;
                let mut value = 0i16;
                if s != 0 {
                    // A newly nonzero coefficient has magnitude 1 (libjpeg
                    // warns about other sizes and reads one bit anyway).
                    value = if self.reader.bit()? { p1 } else { m1 };
                } else if r != 15 {
                    self.eobrun = (1 << r) + self.reader.bits(r as u32)?;
                    break;
                }
                // Skip r zero coefficients, refining the nonzero ones passed.
                while k <= self.se {
                    let coef = &mut block[NATURAL_ORDER[k]];
                    if *coef != 0 {
                        self.refine(coef, p1, m1)?;
                    } else {
                        r -= 1;
                        if r < 0 {
                            break;
                        }
                    }
                    k += 1;
                }
                if value != 0 {
                    block[NATURAL_ORDER[k]] = value;
                }
                k += 1;
            }
        }
        if self.eobrun > 0 {
            while k <= self.se {
                let coef = &mut block[NATURAL_ORDER[k]];
                if *coef != 0 {
                    self.refine(coef, p1, m1)?;
                }
                k += 1;
            }
            self.eobrun -= 1;
        }
        Ok(())
    }

    /// One correction bit of an already nonzero coefficient.
    #[inline]
    fn refine(&mut self, coef: &mut i16, p1: i16, m1: i16) -> Result<()> {
        if self.reader.bit()? && *coef & p1 == 0 {
            *coef = coef.wrapping_add(if *coef >= 0 { p1 } else { m1 });
        }
        Ok(())
    }
}
