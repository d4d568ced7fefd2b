//! The bit reader over entropy-coded data, with libjpeg-turbo's behaviour at
//! its edges (`jdhuff.c`, `jpeg_fill_bit_buffer`): FF 00 is a data byte FF,
//! any other FF xx stops the data and is kept as the unread marker; a decoder
//! that needs bits past that marker gets zeros and the segment is flagged as
//! short of data (libjpeg then skips the following MCUs of the segment).

use super::error::{JpegError, Result};
use super::huffman::{HuffmanTable, LOOKAHEAD};

/// The most bits the buffer is filled to (libjpeg's `MIN_GET_BITS` for a
/// 64-bit buffer).
const FILL_BITS: u32 = 57;

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Valid bits are the low `count` bits, oldest first.
    buffer: u64,
    count: u32,
    /// A marker met in the data (the byte after FF), not yet consumed.
    pub marker: Option<u8>,
    /// Bits past a marker were asked for (libjpeg's `insufficient_data`).
    pub insufficient: bool,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            buffer: 0,
            count: 0,
            marker: None,
            insufficient: false,
        }
    }

    /// Position of the next unread byte (after the unread marker, if any).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Loads bytes until the buffer holds [`FILL_BITS`] or a marker stops it.
    #[inline(never)]
    fn fill(&mut self) -> Result<()> {
        const WHERE: &str = "inside entropy-coded data";
        while self.count <= FILL_BITS - 8 && self.marker.is_none() {
            // Fast path: the next 8 bytes hold no FF, so the bytes that fit
            // are plain data.
            if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
                let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0xFF; 8]));
                let inverted = !word;
                let has_ff = inverted.wrapping_sub(0x0101_0101_0101_0101) & word & 0x8080_8080_8080_8080;
                if has_ff == 0 {
                    let n = (FILL_BITS - self.count) / 8;
                    self.buffer = self.buffer << (8 * n) | word >> (64 - 8 * n);
                    self.count += 8 * n;
                    self.pos += n as usize;
                    continue;
                }
            }
            let mut byte = *self.data.get(self.pos).ok_or(JpegError::Truncated(WHERE))?;
            self.pos += 1;
            if byte == 0xFF {
                loop {
                    byte = *self.data.get(self.pos).ok_or(JpegError::Truncated(WHERE))?;
                    self.pos += 1;
                    if byte != 0xFF {
                        break;
                    }
                }
                if byte == 0 {
                    byte = 0xFF;
                } else {
                    self.marker = Some(byte);
                    break;
                }
            }
            self.buffer = self.buffer << 8 | u64::from(byte);
            self.count += 8;
        }
        Ok(())
    }

    /// Makes at least `n` (at most 25) bits available, with zeros past a marker.
    #[inline(always)]
    fn ensure(&mut self, n: u32) -> Result<()> {
        if self.count < n {
            self.fill()?;
            if self.count < n {
                self.insufficient = true;
                self.buffer <<= FILL_BITS - self.count;
                self.count = FILL_BITS;
            }
        }
        Ok(())
    }

    /// Reads `n` bits (0..=16) as an unsigned number.
    #[inline(always)]
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32> {
        if n == 0 {
            return Ok(0);
        }
        self.ensure(n)?;
        self.count -= n;
        Ok((self.buffer >> self.count) as u32 & ((1 << n) - 1))
    }

    /// Reads one bit.
    #[inline(always)]
    pub(crate) fn bit(&mut self) -> Result<bool> {
        Ok(self.bits(1)? != 0)
    }

    /// Reads an `s`-bit magnitude and sign-extends it (JPEG's EXTEND, F.2.2.1).
    #[inline(always)]
    pub(crate) fn receive_extend(&mut self, s: u32) -> Result<i32> {
        if s == 0 {
            return Ok(0);
        }
        let v = self.bits(s)? as i32;
        Ok(if v < 1 << (s - 1) { v - (1 << s) + 1 } else { v })
    }

    /// Decodes one Huffman symbol. A code longer than 16 bits (garbage data)
    /// gives symbol 0, as libjpeg does.
    #[inline(always)]
    pub(crate) fn decode(&mut self, table: &HuffmanTable) -> Result<u8> {
        if self.count < LOOKAHEAD {
            self.fill()?;
        }
        if self.count >= LOOKAHEAD {
            let look = (self.buffer >> (self.count - LOOKAHEAD)) as usize & ((1 << LOOKAHEAD) - 1);
            let entry = table.lookup[look];
            if entry != 0 {
                self.count -= u32::from(entry >> 8);
                return Ok(entry as u8);
            }
        }
        self.decode_slow(table)
    }

    /// An AC symbol and its value in one step, when both lie in the next
    /// [`LOOKAHEAD`] real bits (the usual case): `(run, value)`. `None` leaves
    /// the reader untouched for [`decode`](Self::decode).
    #[inline(always)]
    pub(crate) fn fast_ac(&mut self, table: &HuffmanTable) -> Result<Option<(usize, i32)>> {
        if self.count < LOOKAHEAD {
            self.fill()?;
            if self.count < LOOKAHEAD {
                return Ok(None);
            }
        }
        let look = (self.buffer >> (self.count - LOOKAHEAD)) as usize & ((1 << LOOKAHEAD) - 1);
        let entry = table.fast_ac[look];
        if entry == 0 {
            return Ok(None);
        }
        self.count -= (entry & 0xFF) as u32;
        Ok(Some((((entry >> 8) & 0xFF) as usize, entry >> 16)))
    }

    /// Bit-by-bit decoding (Annex F.2.2.3), for long codes and near markers.
    #[inline(never)]
    fn decode_slow(&mut self, table: &HuffmanTable) -> Result<u8> {
        let mut code = self.bits(1)? as i32;
        let mut l = 1;
        while l < 17 && code > table.maxcode[l] {
            code = code << 1 | self.bits(1)? as i32;
            l += 1;
        }
        if l > 16 {
            return Ok(0);
        }
        let index = (code + table.valoffset[l]) as usize;
        Ok(table.values.get(index).copied().unwrap_or(0))
    }

    /// Drops the buffered bits and consumes the next marker if it is the
    /// expected restart marker `RSTn`, resynchronising as libjpeg's
    /// `jpeg_resync_to_restart` does otherwise (when it stops in front of
    /// another marker, the next segment reads as empty).
    pub(crate) fn restart(&mut self, expected: u8) -> Result<()> {
        self.buffer = 0;
        self.count = 0;
        let mut marker = match self.marker {
            Some(m) => m,
            None => self.next_marker()?,
        };
        loop {
            // What libjpeg does: 1 = take it as the restart, 2 = skip to the
            // next marker and decide again, 3 = leave it for later.
            let action = if marker < 0xC0 {
                2
            } else if !(0xD0..=0xD7).contains(&marker) {
                3
            } else {
                let n = marker - 0xD0;
                let ahead = |d: u8| n == (expected + d) & 7;
                let behind = |d: u8| n == expected.wrapping_sub(d) & 7;
                if ahead(1) || ahead(2) {
                    3
                } else if behind(1) || behind(2) {
                    2
                } else {
                    1
                }
            };
            match action {
                1 => {
                    self.marker = None;
                    self.insufficient = false;
                    return Ok(());
                }
                2 => marker = self.next_marker()?,
                _ => {
                    self.marker = Some(marker);
                    return Ok(());
                }
            }
        }
    }

    /// The next marker in the data, skipping whatever is not one.
    fn next_marker(&mut self) -> Result<u8> {
        let mut input = super::markers::Input::new(self.data);
        input.set_pos(self.pos);
        let marker = input.next_marker()?;
        self.pos = input.pos();
        Ok(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffed_bytes_and_markers() {
        // FF 00 is a data byte FF; FF D9 stops the data.
        let data = [0xA5, 0xFF, 0x00, 0x0F, 0xFF, 0xD9];
        let mut r = BitReader::new(&data, 0);
        assert_eq!(r.bits(8).unwrap(), 0xA5);
        assert_eq!(r.bits(8).unwrap(), 0xFF);
        assert_eq!(r.bits(4).unwrap(), 0x0);
        assert_eq!(r.bits(4).unwrap(), 0xF);
        assert!(!r.insufficient);
        assert_eq!(r.marker, Some(0xD9));
        // Past the marker: zeros, and the segment is flagged.
        assert_eq!(r.bits(16).unwrap(), 0);
        assert!(r.insufficient);
    }

    #[test]
    fn running_off_the_end_is_truncation() {
        let mut r = BitReader::new(&[0x12], 0);
        assert!(matches!(r.bits(8), Err(JpegError::Truncated(_))));
    }

    #[test]
    fn extend_gives_negative_values_below_half_range() {
        // 3 bits: 000 -> -7, 011 -> -4, 100 -> 4, 111 -> 7.
        let data = [0b0000_1110, 0b0111_1110, 0xFF, 0xD9];
        let mut r = BitReader::new(&data, 0);
        assert_eq!(r.receive_extend(3).unwrap(), -7);
        assert_eq!(r.receive_extend(3).unwrap(), -4);
        assert_eq!(r.receive_extend(3).unwrap(), 4);
        assert_eq!(r.receive_extend(3).unwrap(), 7);
    }
}
