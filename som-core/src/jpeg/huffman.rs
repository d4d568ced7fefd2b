//! Huffman tables: the DHT specification, the decoding table derived from it
//! (a lookahead table plus the canonical-code limits of JPEG Annex F.2.2.3,
//! with libjpeg-turbo's validation, `jpeg_make_d_derived_tbl`), and the
//! standard tables of Annex K.3 that libjpeg-turbo installs when a file
//! (e.g. a Motion-JPEG frame) defines none.

use super::error::{JpegError, Result};

/// Bits decoded at once through the lookahead table.
pub(crate) const LOOKAHEAD: u32 = 9;

/// A Huffman table as a DHT segment gives it: the number of codes of each
/// length 1..=16 and the symbols in code order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HuffmanSpec {
    pub counts: [u8; 16],
    pub values: Vec<u8>,
}

/// A table ready for decoding.
#[derive(Clone)]
pub(crate) struct HuffmanTable {
    /// Indexed by the next [`LOOKAHEAD`] bits: `length << 8 | symbol`, or 0
    /// when the code is longer than the lookahead.
    pub lookup: [u16; 1 << LOOKAHEAD],
    /// Largest code of each length (index 1..=16; -1 when there is none,
    /// index 17 is a sentinel that ends the search).
    pub maxcode: [i32; 18],
    /// Symbol index minus code, per length.
    pub valoffset: [i32; 18],
    pub values: [u8; 256],
    /// For AC tables, indexed like `lookup`: when a code and the value bits
    /// it announces both fit in the lookahead, `value << 16 | run << 8 |
    /// bits used`; else 0.
    pub fast_ac: [i32; 1 << LOOKAHEAD],
}

impl HuffmanTable {
    /// A table with no codes (every lookup fails, decoding gives symbol 0).
    pub(crate) fn empty() -> Self {
        let mut maxcode = [-1; 18];
        maxcode[17] = i32::MAX;
        HuffmanTable {
            lookup: [0; 1 << LOOKAHEAD],
            maxcode,
            valoffset: [0; 18],
            values: [0; 256],
            fast_ac: [0; 1 << LOOKAHEAD],
        }
    }

    /// Derives the decoding table; a DC table's symbols must be at most 15.
    pub(crate) fn new(spec: &HuffmanSpec, is_dc: bool) -> Result<Self> {
        let bad = || JpegError::corrupt("invalid Huffman table");
        let total: usize = spec.counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || total > spec.values.len() {
            return Err(bad());
        }
        // Canonical codes, lengths ascending (Annex C).
        let mut sizes = Vec::with_capacity(total);
        for (l, &count) in spec.counts.iter().enumerate() {
            sizes.extend(std::iter::repeat_n(l as u32 + 1, usize::from(count)));
        }
        let mut codes = Vec::with_capacity(total);
        let mut code: u32 = 0;
        let mut p = 0;
        let mut si = sizes.first().copied().unwrap_or(0);
        while p < total {
            while p < total && sizes[p] == si {
                codes.push(code);
                code += 1;
                p += 1;
            }
            if code >= 1 << si {
                return Err(bad());
            }
            code <<= 1;
            si += 1;
        }
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 18];
        let mut p = 0usize;
        for l in 1..=16 {
            let count = usize::from(spec.counts[l - 1]);
            if count > 0 {
                valoffset[l] = p as i32 - codes[p] as i32;
                p += count;
                maxcode[l] = codes[p - 1] as i32;
            }
        }
        maxcode[17] = i32::MAX;
        let mut lookup = [0u16; 1 << LOOKAHEAD];
        for (p, (&size, &code)) in sizes.iter().zip(&codes).enumerate() {
            if size > LOOKAHEAD {
                break;
            }
            let shift = LOOKAHEAD - size;
            let first = (code << shift) as usize;
            let entry = (size as u16) << 8 | u16::from(spec.values[p]);
            lookup[first..first + (1 << shift)].fill(entry);
        }
        let mut values = [0u8; 256];
        values[..total].copy_from_slice(&spec.values[..total]);
        if is_dc && values[..total].iter().any(|&s| s > 15) {
            return Err(bad());
        }
        let mut fast_ac = [0i32; 1 << LOOKAHEAD];
        if !is_dc {
            for (look, fast) in fast_ac.iter_mut().enumerate() {
                let entry = lookup[look];
                let (length, rs) = (u32::from(entry >> 8), entry & 0xFF);
                let (run, size) = (i32::from(rs >> 4), u32::from(rs & 15));
                if entry != 0 && size != 0 && length + size <= LOOKAHEAD {
                    let bits = (look as i32 >> (LOOKAHEAD - length - size)) & ((1 << size) - 1);
                    let value = if bits < 1 << (size - 1) {
                        bits - (1 << size) + 1
                    } else {
                        bits
                    };
                    *fast = value << 16 | run << 8 | (length + size) as i32;
                }
            }
        }
        Ok(HuffmanTable {
            lookup,
            maxcode,
            valoffset,
            values,
            fast_ac,
        })
    }
}

/// The standard tables of Annex K.3 by class (0 = DC, 1 = AC) and slot
/// (0 = luminance, 1 = chrominance).
pub(crate) fn standard(class: usize, slot: usize) -> HuffmanSpec {
    let (counts, values): (&[u8; 16], &[u8]) = match (class, slot) {
        (0, 0) => (&DC_LUMA_COUNTS, &DC_VALUES),
        (0, _) => (&DC_CHROMA_COUNTS, &DC_VALUES),
        (_, 0) => (&AC_LUMA_COUNTS, &AC_LUMA_VALUES),
        _ => (&AC_CHROMA_COUNTS, &AC_CHROMA_VALUES),
    };
    HuffmanSpec {
        counts: *counts,
        values: values.to_vec(),
    }
}

const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];

#[rustfmt::skip]
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

#[rustfmt::skip]
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tables_derive_and_decode_their_shortest_codes() {
        for class in 0..2 {
            for slot in 0..2 {
                let spec = standard(class, slot);
                let total: usize = spec.counts.iter().map(|&c| usize::from(c)).sum();
                assert_eq!(total, spec.values.len());
                let table = HuffmanTable::new(&spec, class == 0).unwrap();
                // The first code is all zeros, of the shortest length.
                let shortest = spec.counts.iter().position(|&c| c > 0).unwrap() as u16 + 1;
                assert_eq!(table.lookup[0], shortest << 8 | u16::from(spec.values[0]));
            }
        }
    }

    #[test]
    fn oversubscribed_and_bad_dc_tables_are_refused() {
        let mut counts = [0u8; 16];
        counts[0] = 3; // three 1-bit codes cannot exist
        let spec = HuffmanSpec {
            counts,
            values: vec![0, 1, 2],
        };
        assert!(HuffmanTable::new(&spec, false).is_err());
        let mut counts = [0u8; 16];
        counts[1] = 1;
        let spec = HuffmanSpec {
            counts,
            values: vec![16],
        };
        assert!(HuffmanTable::new(&spec, true).is_err());
        assert!(HuffmanTable::new(&spec, false).is_ok());
    }
}
