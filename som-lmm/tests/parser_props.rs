//! Property tests for the answer parser.

mod common;

use std::collections::BTreeSet;

use proptest::prelude::*;
use som_core::LabelScheme;
use som_lmm::parse_marks;

const N: usize = 30;

fn numbered() -> som_core::MarkedImage {
    common::marked_with(N, LabelScheme::Number { zero_based: false }, 64, 8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any string: no panic; every mark returned exists and names its own
    /// region; no unknown label names an existing mark; no repeats.
    #[test]
    fn never_panics_and_only_returns_existing_marks(s in any::<String>()) {
        for marked in [numbered(), common::marked_with(N, LabelScheme::Letter, 64, 8),
                       common::marked_with(N, LabelScheme::Number { zero_based: true }, 64, 8)] {
            let parsed = parse_marks(&s, &marked);
            let mut seen = BTreeSet::new();
            for m in &parsed.marks {
                let mark = marked.mark_by_id(m.id).expect("returned marks exist");
                prop_assert_eq!(&mark.text, &m.text);
                prop_assert_eq!(mark.region, m.region);
                prop_assert!(seen.insert(m.id));
            }
            for u in &parsed.unknown {
                prop_assert!(marked.mark_by_text(&u.label).is_none());
                prop_assert!(u.span.end <= s.len());
            }
        }
    }

    /// Line-by-line reading never panics and only returns existing marks.
    #[test]
    fn lines_never_panic(s in any::<String>(), t in "[\\[\\]\\(\\)0-9a-z \n:#\\-]{0,60}") {
        let marked = numbered();
        for text in [&s, &t] {
            for line in som_lmm::parse_lines(text, &marked) {
                for m in &line.marks.marks {
                    prop_assert!(marked.mark_by_id(m.id).is_some());
                }
                prop_assert!(!line.text.contains('\n'));
            }
        }
    }

    /// Strings made of the characters answers are made of.
    #[test]
    fn never_panics_on_answer_like_text(s in "[\\[\\]\\(\\)0-9a-z ,;#:{}\"\\-–]{0,40}") {
        let marked = numbered();
        let parsed = parse_marks(&s, &marked);
        for m in &parsed.marks {
            prop_assert!(marked.mark_by_id(m.id).is_some());
        }
    }

    /// `[a, b]`, `[a,b]`, `[a][b]`, `marks a and b`, JSON: always the set {a, b}.
    #[test]
    fn pairs_are_two_marks_whatever_the_shape(a in 1..=N as u32, b in 1..=N as u32, shape in 0..6usize) {
        let text = match shape {
            0 => format!("It is [{a}, {b}]."),
            1 => format!("It is [{a},{b}]."),
            2 => format!("It is [{a}][{b}]."),
            3 => format!("These are marks {a} and {b}."),
            4 => format!("```json\n{{\"marks\": [{a}, {b}]}}\n```"),
            _ => format!("{a}, {b}"),
        };
        let parsed = parse_marks(&text, &numbered());
        let got: BTreeSet<u32> = parsed.marks.iter().map(|m| m.id).collect();
        let want: BTreeSet<u32> = [a, b].into_iter().collect();
        prop_assert_eq!(got, want, "text {:?}", text);
        prop_assert!(parsed.unknown.is_empty());
    }

    /// Any list of existing marks, cited in brackets with any separators,
    /// comes back as exactly that set, in order of first mention.
    #[test]
    fn bracketed_lists_round_trip(ids in proptest::collection::vec(1..=N as u32, 1..8), seps in proptest::collection::vec(0..4usize, 8)) {
        let mut inner = String::new();
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                inner.push_str([", ", ",", " and ", "; "][seps[i % seps.len()]]);
            }
            inner.push_str(&id.to_string());
        }
        let text = format!("The answer is [{inner}].");
        let parsed = parse_marks(&text, &numbered());
        let mut want = Vec::new();
        for id in &ids {
            if !want.contains(id) {
                want.push(*id);
            }
        }
        let got: Vec<u32> = parsed.marks.iter().map(|m| m.id).collect();
        prop_assert_eq!(got, want, "text {:?}", text);
    }

    /// Labels beyond the marks are reported, never dropped.
    #[test]
    fn unknown_labels_are_reported(known in 1..=N as u32, unknown in (N as u32 + 1)..100_000u32) {
        let text = format!("[{known}] and [{unknown}]");
        let parsed = parse_marks(&text, &numbered());
        prop_assert_eq!(parsed.marks.iter().map(|m| m.id).collect::<Vec<_>>(), vec![known]);
        prop_assert_eq!(parsed.unknown_labels(), vec![unknown.to_string()]);
        let err = parsed.into_result().unwrap_err();
        prop_assert!(err.to_string().contains(&unknown.to_string()));
    }
}

#[test]
fn the_released_som_bug_is_not_reproduced() {
    // The released SoM parser concatenates digits: "[1,2]" → 12.
    let parsed = parse_marks("[1,2]", &numbered());
    assert_eq!(parsed.marks.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
    assert!(parsed.marks.iter().all(|m| m.id != 12));
}

#[test]
fn zero_based_and_letter_marks_resolve_as_printed() {
    let zero = common::marked_with(5, LabelScheme::Number { zero_based: true }, 16, 8);
    let parsed = parse_marks("[0] and [4], not [5]", &zero);
    assert_eq!(
        parsed.marks.iter().map(|m| (m.id, m.region)).collect::<Vec<_>>(),
        [(0, 0), (4, 4)]
    );
    assert_eq!(parsed.unknown_labels(), ["5"]);

    let letters = common::marked_with(30, LabelScheme::Letter, 64, 8);
    let parsed = parse_marks("(c), [AA] and marks b-d", &letters);
    assert_eq!(
        parsed.marks.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["c", "aa", "b", "d"]
    );
}

#[test]
fn long_hostile_answers_are_read_with_bounded_work() {
    let marked = numbered();
    let n = 200_000;
    let cases = [
        "[".repeat(n),
        "{".repeat(n),
        "(".repeat(n),
        "mark ".repeat(n / 5),
        "labeled as the ".repeat(n / 15),
        "[1-999]".repeat(n / 7),
        format!("marks {}", "1-999, ".repeat(n / 7)),
        format!("{{\"marks\": [{}1]}}", "\"1-999\", ".repeat(n / 10)),
        "[100001][".repeat(n / 9),
        "ǅ[é]".repeat(n / 6),
    ];
    for (i, answer) in cases.iter().enumerate() {
        let started = std::time::Instant::now();
        let parsed = parse_marks(answer, &marked);
        assert!(parsed.marks.len() <= N, "case {i}");
        assert!(parsed.unknown.len() <= som_lmm::MAX_LABELS, "case {i}");
        let lines = som_lmm::parse_lines(answer, &marked);
        assert!(lines.len() <= 1, "case {i}");
        eprintln!("case {i}: {} bytes in {:?}", answer.len(), started.elapsed());
    }
}
