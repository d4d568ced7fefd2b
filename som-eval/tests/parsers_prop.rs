//! The dataset parsers on arbitrary input: an error or a value, never a panic.

use proptest::prelude::*;
use som_eval::data::flickr30k::{parse_annotation, parse_sentences};
use som_eval::data::pickle::unpickle;
use som_eval::LabelMap;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn unpickle_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = unpickle(&bytes);
    }

    #[test]
    fn unpickle_survives_mutated_real_pickles(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..420) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/eval/data/refcocog/refcocog/refs(umd).p");
        let mut bytes = std::fs::read(path).unwrap();
        if pos < bytes.len() {
            bytes[pos] = byte;
        }
        bytes.truncate(cut.max(1));
        let _ = unpickle(&bytes);
    }

    #[test]
    fn sentence_and_xml_parsers_never_panic(text in "[\\[\\]/#A-Za-z0-9 <>&;!?=\"\n-]{0,120}") {
        let _ = parse_sentences(&text);
        let _ = parse_annotation(&text);
    }

    #[test]
    fn png_label_maps_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(bytes);
        let _ = LabelMap::decode_png(&png);
    }
}
