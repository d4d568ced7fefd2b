//! Property tests of the regions reader on well-formed documents with
//! adversarial values.
//!
//! Random strings are almost never JSON, let alone a regions document, so they
//! never reach the code that decodes masks. These strategies build documents
//! of every shape the reader accepts (the canonical form, bare COCO/SAM lists,
//! COCO files) and fill them with hostile values: image sides from 0 to past
//! `u32::MAX`, RLE counts that do and do not cover the image, runs of billions,
//! compressed strings valid and not, polygons with null (NaN in JSON) and huge
//! coordinates, boxes negative, huge and outside, repeated and non-integer ids,
//! and nested junk. The reader must never panic, must refuse what breaks its
//! limits, and everything it accepts must keep `Segmentation`'s invariants and
//! survive the canonical writer unchanged.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use som_core::io::MAX_IMAGE_SIDE;
use som_core::json::{read_regions_with, write_regions, ImageInfo, ImageSelector, ReadOptions};
use som_core::{ImageSize, Rle, Segmentation, SomError};

/// The mask budget the properties read with: small, so that a document whose
/// masks would fill a 16384 x 16384 image is refused without being decoded.
const BUDGET: u64 = 1 << 20;

fn options(image_size: Option<ImageSize>, image: Option<ImageSelector>) -> ReadOptions {
    ReadOptions {
        image_size,
        image,
        max_mask_pixels: BUDGET,
    }
}

/// The compressed string of `counts`, when it has one: the crate's encoder
/// does not check the sum against an image here (it encodes for an image of
/// one column as tall as the counts), so wrong counts get a string too.
fn compress(counts: &[u64]) -> Option<String> {
    let narrow: Vec<u32> = counts
        .iter()
        .map(|&c| u32::try_from(c).ok())
        .collect::<Option<_>>()?;
    let total = u32::try_from(counts.iter().sum::<u64>()).ok()?;
    Some(
        Rle::from_counts(ImageSize::new(1, total), narrow)
            .ok()?
            .to_compressed(),
    )
}

/// An image side: mostly small, often exactly at or past the limits.
fn side() -> BoxedStrategy<u64> {
    let max = u64::from(MAX_IMAGE_SIDE);
    prop_oneof![
        32 => 1u64..=12,
        12 => 13u64..=200,
        4 => 201..=max,
        1 => Just(0u64),
        3 => Just(max),
        1 => Just(max + 1),
        1 => Just(50_000u64),
        1 => Just(100_000u64),
        1 => Just(u64::from(u32::MAX)),
        1 => Just(u64::from(u32::MAX) + 1),
        1 => any::<u32>().prop_map(u64::from),
    ]
    .boxed()
}

/// A JSON number `n`, or now and then something that is not a side.
fn side_value(n: u64) -> BoxedStrategy<Value> {
    prop_oneof![
        60 => Just(json!(n)),
        1 => Just(json!(-(n as i64) - 1)),
        1 => Just(json!(n as f64 + 0.5)),
        1 => Just(json!(n.to_string())),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// Nested junk: any JSON value, a few levels deep.
fn junk() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// Run lengths over `n` pixels: mostly those of a real mask (a random
/// partition of `n`, a short run somewhere, everything), sometimes ones that
/// miss by a pixel or that no image has.
fn counts(n: u64) -> BoxedStrategy<Vec<u64>> {
    let partition = proptest::collection::vec(0..=n, 0..10).prop_map(move |mut cuts| {
        cuts.push(0);
        cuts.push(n);
        cuts.sort_unstable();
        cuts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<u64>>()
    });
    let short_run = (0..=n, 0u64..40).prop_map(move |(start, len)| {
        let len = len.min(n - start);
        vec![start, len, n - start - len]
    });
    let wrong = prop_oneof![
        partition.clone().prop_map(|mut c| {
            c.push(1);
            c
        }),
        partition.clone().prop_map(|mut c| {
            if let Some(l) = c.last_mut() {
                *l = l.saturating_sub(1)
            }
            c
        }),
        Just(vec![u64::from(u32::MAX), u64::from(u32::MAX)]),
        Just(vec![u64::MAX]),
        Just(vec![]),
    ];
    prop_oneof![
        10 => partition,
        8 => short_run,
        1 => Just(vec![0, n]),
        1 => Just(vec![n.saturating_sub(1), n.min(1)]),
        2 => wrong,
    ]
    .boxed()
}

/// An RLE object for an image of `w` x `h`: list or compressed counts, with
/// its size right or (now and then) wrong.
fn rle(w: u64, h: u64) -> BoxedStrategy<Value> {
    let wrong = prop_oneof![
        Just(json!([w, h])),
        (0u64..20, 0u64..20).prop_map(|(a, b)| json!([a, b])),
        junk(),
    ];
    let size = prop_oneof![30 => Just(json!([h, w])), 1 => wrong];
    let counts_value = counts(w.saturating_mul(h)).prop_flat_map(|c| {
        let list = json!(c);
        let compressed = compress(&c).map_or_else(|| list.clone(), Value::String);
        let wrong = prop_oneof![
            // A damaged string: a byte dropped.
            any::<prop::sample::Index>().prop_map({
                let compressed = compressed.clone();
                move |i| match &compressed {
                    Value::String(s) if !s.is_empty() => {
                        let mut s = s.clone();
                        s.remove(i.index(s.len()));
                        Value::String(s)
                    }
                    other => other.clone(),
                }
            }),
            "[0-o]{0,24}".prop_map(Value::String),
            Just(json!([-1, 3])),
            Just(json!([1.5, 2])),
            junk(),
        ];
        prop_oneof![
            10 => Just(list),
            10 => Just(compressed),
            1 => wrong,
        ]
    });
    (size, counts_value)
        .prop_map(|(size, counts)| json!({"size": size, "counts": counts}))
        .boxed()
}

/// One polygon on an image of `w` x `h`: mostly 3 to 8 points in and around
/// the image; sometimes too few coordinates, an odd number, null (what
/// serde_json writes for NaN), huge or non-numeric ones.
fn polygon(w: u64, h: u64) -> BoxedStrategy<Value> {
    let (w, h) = (w.min(1 << 20) as f64, h.min(1 << 20) as f64);
    let point = (-3.0..w + 3.0, -3.0..h + 3.0)
        .prop_map(|(x, y): (f64, f64)| [(x * 8.0).round() / 8.0, (y * 8.0).round() / 8.0]);
    let good = proptest::collection::vec(point, 3..9)
        .prop_map(|pts| json!(pts.into_iter().flatten().collect::<Vec<f64>>()));
    let bad_number = prop_oneof![
        Just(json!(-1e9)),
        Just(json!(1e9)),
        Just(json!(2e7)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!(f64::NAN)),
        Just(json!("1")),
    ];
    let bad = (good.clone(), any::<prop::sample::Index>(), bad_number).prop_map(|(mut p, i, v)| {
        if let Value::Array(a) = &mut p {
            let i = i.index(a.len());
            a[i] = v;
        }
        p
    });
    let short = proptest::collection::vec(-3.0..w + 3.0, 0..6).prop_map(|c| json!(c));
    prop_oneof![30 => good, 2 => bad, 1 => short].boxed()
}

/// A segmentation value: RLE, polygons, a binary array, or junk.
fn segmentation(w: u64, h: u64) -> BoxedStrategy<Value> {
    let polygons = proptest::collection::vec(polygon(w, h), 0..4).prop_map(Value::Array);
    let mut choices: Vec<(u32, BoxedStrategy<Value>)> =
        vec![(24, rle(w, h)), (12, polygons.boxed()), (1, junk())];
    if (1..=16).contains(&w) && h <= 16 {
        let pixel = prop_oneof![
            16 => Just(json!(0)),
            8 => Just(json!(1)),
            1 => Just(json!(true)),
            1 => Just(json!(false)),
            1 => Just(json!(2))
        ];
        let rows = prop_oneof![30 => Just(h as usize), 1 => Just(h as usize + 1)];
        let cols = prop_oneof![30 => Just(w as usize), 1 => Just(w as usize - 1)];
        let binary = (rows, cols)
            .prop_flat_map(move |(r, c)| {
                proptest::collection::vec(
                    proptest::collection::vec(pixel.clone(), c).prop_map(Value::Array),
                    r,
                )
            })
            .prop_map(Value::Array);
        choices.push((8, binary.boxed()));
    }
    proptest::strategy::Union::new_weighted(choices).boxed()
}

/// A COCO `[x, y, w, h]` box, usually inside the image, sometimes not.
fn bbox(w: u64, h: u64) -> BoxedStrategy<Value> {
    let inside = (0..w.max(1), 0..h.max(1))
        .prop_flat_map(move |(x, y)| (Just(x), Just(y), 1..=(w - x).max(1), 1..=(h - y).max(1)))
        .prop_map(|(x, y, bw, bh)| json!([x, y, bw, bh]));
    let fractional = (
        0.0..(w as f64).max(1.0),
        0.0..(h as f64).max(1.0),
        0.0..4.0,
        0.0..4.0,
    )
        .prop_map(|(x, y, bw, bh)| json!([x, y, bw, bh]));
    let number = prop_oneof![
        4 => (-5.0..w as f64 + 5.0).prop_map(|v| json!((v * 4.0).round() / 4.0)),
        1 => Just(json!(-1)),
        1 => Just(json!(1e20)),
        1 => Just(json!(u64::MAX)),
        1 => Just(Value::Null),
    ];
    prop_oneof![
        24 => inside,
        4 => fractional,
        2 => proptest::collection::vec(number.clone(), 4).prop_map(Value::Array),
        1 => proptest::collection::vec(number, 0..7).prop_map(Value::Array),
        1 => junk(),
    ]
    .boxed()
}

/// One region object for an image of `w` x `h`.
fn region(w: u64, h: u64) -> BoxedStrategy<Value> {
    let wrong_id = prop_oneof![
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(2.0)),
        Just(json!("3"))
    ];
    let id = prop_oneof![
        12 => Just(None),
        8 => any::<u64>().prop_map(|n| Some(json!(n))),
        3 => (0u64..6).prop_map(|n| Some(json!(n))),
        1 => Just(Some(json!(u64::MAX))),
        1 => Just(Some(Value::Null)),
        1 => wrong_id.prop_map(Some),
    ];
    let seg = prop_oneof![7 => segmentation(w, h).prop_map(Some), 3 => Just(None)];
    let bb = prop_oneof![6 => bbox(w, h).prop_map(Some), 2 => Just(None)];
    let score = prop_oneof![
        12 => Just(None),
        12 => (0.0f64..1.0).prop_map(|s| Some(json!(s))),
        8 => any::<f64>().prop_map(|s| Some(json!(s))),
        1 => Just(Some(Value::Null)),
        1 => Just(Some(json!("high"))),
    ];
    let label = prop_oneof![
        16 => Just(None),
        16 => "[a-z ]{0,6}".prop_map(|s| Some(json!(s))),
        1 => Just(Some(Value::Null)),
        1 => Just(Some(json!(7))),
    ];
    let key = prop_oneof![
        Just("predicted_iou"),
        Just("stability_score"),
        Just("category_id"),
        Just("iscrowd"),
        Just("area"),
        Just("image_id"),
        Just("extra"),
    ];
    let extras = proptest::collection::vec((key, junk()), 0..3);
    (id, seg, bb, score, label, extras)
        .prop_map(|(id, seg, bb, score, label, extras)| {
            let mut o = Map::new();
            for (k, v) in extras {
                o.insert(k.to_string(), v);
            }
            let fields = [
                ("id", id),
                ("segmentation", seg),
                ("bbox", bb),
                ("score", score),
                ("label", label),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    o.insert(k.to_string(), v);
                }
            }
            Value::Object(o)
        })
        .boxed()
}

/// A whole document, and the options it is read with.
fn document() -> impl Strategy<Value = (Value, ReadOptions)> {
    (side(), side()).prop_flat_map(|(w, h)| {
        let regions = proptest::collection::vec(region(w, h), 0..5);
        let size = |w: u64, h: u64| {
            let clamp = |v: u64| v.min(u64::from(u32::MAX)) as u32;
            ImageSize::new(clamp(w), clamp(h))
        };
        // The size given with documents that say theirs: mostly none, at times
        // the same, at times another.
        let size_option = prop_oneof![
            8 => Just(None),
            2 => Just(Some(size(w, h))),
            1 => (0u64..20, 0u64..20).prop_map(move |(a, b)| Some(size(a, b))),
        ];
        let canonical = (side_value(w), side_value(h), regions.clone(), 0u8..16, size_option.clone()).prop_map(
            |(wv, hv, regions, shape, size)| {
                let doc = match shape {
                    0 => json!({"regions": regions}),
                    1 => json!({"image": {"width": wv, "height": hv}}),
                    2 => json!({"image": {"width": wv, "height": hv}, "regions": {"0": regions}}),
                    3..=6 => json!({"image": {"width": wv, "height": hv, "file_name": "a.png"}, "regions": regions}),
                    _ => json!({"image": {"width": wv, "height": hv}, "regions": regions}),
                };
                (doc, options(size, None))
            },
        );
        // A bare list says its size only through its first RLE: more often given.
        let bare_size = prop_oneof![1 => Just(None), 1 => Just(Some(size(w, h)))];
        let bare = (regions, prop_oneof![4 => bare_size, 1 => size_option.clone()])
            .prop_map(|(regions, size)| (Value::Array(regions), options(size, None)));
        let annotation = (region(w, h), 0u64..3, 0u64..3).prop_map(|(mut r, image, category)| {
            if let Value::Object(o) = &mut r {
                o.insert("image_id".into(), json!(image));
                o.insert("category_id".into(), json!(category));
            }
            r
        });
        let coco = (1usize..4, side_value(w), side_value(h)).prop_flat_map(move |(n, wv, hv)| {
            // Images 0..n; the others have another size.
            let images: Vec<Value> = (0..n)
                .map(|id| {
                    let (wv, hv) = if id == 0 { (wv.clone(), hv.clone()) } else { (json!(3), json!(2)) };
                    json!({"id": id, "width": wv, "height": hv, "file_name": format!("dir/{id}.jpg")})
                })
                .collect();
            let selector = prop_oneof![
                2 => Just(None),
                4 => Just(Some(ImageSelector::Id(0))),
                2 => Just(Some(ImageSelector::FileName("0.jpg".into()))),
                1 => (0u64..5).prop_map(|id| Some(ImageSelector::Id(id))),
                1 => (0u64..5).prop_map(|id| Some(ImageSelector::FileName(format!("{id}.jpg")))),
            ];
            (
                Just(images),
                proptest::collection::vec(annotation.clone(), 0..6),
                prop_oneof![4 => Just(json!([{"id": 1, "name": "cup"}, {"id": 2, "name": 5}])), 1 => junk()],
                selector,
                size_option.clone(),
            )
        })
        .prop_map(|(images, annotations, categories, selector, size)| {
            let doc = json!({"images": images, "annotations": annotations, "categories": categories});
            (doc, options(size, selector))
        });
        let junk_doc = junk().prop_map(|doc| (doc, options(None, None)));
        prop_oneof![8 => canonical, 4 => bare, 4 => coco, 1 => junk_doc]
    })
}

/// Everything `Segmentation` promises, checked from the outside, plus the
/// budget and the size limit of the reader.
fn check_invariants(info: &ImageInfo, seg: &Segmentation, opts: &ReadOptions) -> Result<(), TestCaseError> {
    let size = seg.size();
    prop_assert_eq!(info.size(), size);
    prop_assert!(
        size.width <= MAX_IMAGE_SIDE && size.height <= MAX_IMAGE_SIDE,
        "{}",
        size
    );
    if let Some(s) = opts.image_size {
        prop_assert_eq!(s, size);
    }
    let mut ids = BTreeSet::new();
    let mut decoded = 0u64;
    for r in seg.regions() {
        prop_assert!(ids.insert(r.id), "id {} twice", r.id);
        prop_assert!(
            r.bbox.is_empty() || size.full_box().contains_box(&r.bbox),
            "{:?} in {}",
            r.bbox,
            size
        );
        let Some(m) = &r.mask else { continue };
        prop_assert_eq!(m.size(), size);
        prop_assert_eq!(m.bbox(), r.bbox);
        let b = m.bbox();
        decoded += b.area();
        let crop = m.crop_data();
        prop_assert_eq!(crop.len() as u64, b.area());
        let ones = crop.iter().filter(|&&v| v != 0).count() as u64;
        prop_assert_eq!(ones, m.area());
        prop_assert_eq!(m.to_rle().area(), m.area());
        if m.area() > 0 {
            // The box is tight: its first and last row and column each hold a pixel.
            let (bw, bh) = (b.width as usize, b.height as usize);
            prop_assert!(crop[..bw].contains(&1) && crop[(bh - 1) * bw..].contains(&1));
            prop_assert!((0..bh).any(|y| crop[y * bw] == 1) && (0..bh).any(|y| crop[y * bw + bw - 1] == 1));
        } else {
            prop_assert!(b.is_empty());
        }
    }
    prop_assert!(decoded <= opts.max_mask_pixels, "{} pixels decoded", decoded);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Never a panic; errors are one line; what is accepted is valid and reads
    /// back unchanged from the canonical writer.
    #[test]
    fn regions_documents_are_read_or_refused(case in document()) {
        let (doc, opts) = case;
        let text = doc.to_string();
        match read_regions_with(&text, &opts) {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty() && !msg.contains('\n'), "{:?}", msg);
            }
            Ok((info, seg)) => {
                check_invariants(&info, &seg, &opts)?;
                let written = write_regions(&info, &seg);
                let back = read_regions_with(&written, &options(None, None));
                prop_assert!(back.is_ok(), "{:?} on {}", back.as_ref().err().map(ToString::to_string), written);
                let (info2, seg2) = back.unwrap();
                prop_assert_eq!(&info2, &info);
                prop_assert_eq!(&seg2, &seg);
                prop_assert_eq!(write_regions(&info2, &seg2), written);
            }
        }
    }
}

/// A document whose image is too large is refused by its size, however it is
/// built, before any mask is decoded.
fn oversized() -> impl Strategy<Value = (u64, u64, Value)> {
    let big = prop_oneof![
        Just(u64::from(MAX_IMAGE_SIDE) + 1),
        Just(50_000u64),
        Just(100_000u64),
        Just(u64::from(u32::MAX)),
    ];
    (big, 1u64..=u64::from(MAX_IMAGE_SIDE), any::<bool>(), 0u8..3).prop_map(|(big, other, flip, shape)| {
        let (w, h) = if flip { (big, other) } else { (other, big) };
        let all_ones = json!({"size": [h, w], "counts": [0, w * h]});
        let doc = match shape {
            0 => json!({"image": {"width": w, "height": h}, "regions": [{"segmentation": all_ones}]}),
            1 => json!([{"segmentation": all_ones}]),
            _ => json!({"images": [{"id": 1, "width": w, "height": h}],
                        "annotations": [{"id": 1, "image_id": 1, "segmentation": all_ones}]}),
        };
        (w, h, doc)
    })
}

proptest! {
    #[test]
    fn oversized_images_are_refused_by_size((w, h, doc) in oversized()) {
        let e = read_regions_with(&doc.to_string(), &ReadOptions::default()).unwrap_err();
        let SomError::Format { message, .. } = &e else {
            return Err(TestCaseError::fail(format!("{e}")));
        };
        prop_assert!(message.contains(&format!("is {w}x{h}, more than the {MAX_IMAGE_SIDE} px a side")), "{}", message);
    }
}

/// The mask a list of runs describes, decoded the plain way: pixel by pixel in
/// column-major order, returned row-major.
fn decode_runs(w: u32, h: u32, counts: &[u64]) -> Vec<u8> {
    let mut column_major = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        column_major.extend(std::iter::repeat_n((i % 2) as u8, c as usize));
    }
    let (w, h) = (w as usize, h as usize);
    (0..w * h).map(|i| column_major[(i % w) * h + i / w]).collect()
}

/// A region every reader must accept, with the pixels it stands for
/// (row-major), or `None` for a box-only region.
fn valid_region(w: u32, h: u32) -> impl Strategy<Value = (Value, Option<Vec<u8>>)> {
    let n = u64::from(w) * u64::from(h);
    let rle = (
        counts(n).prop_filter("a partition", move |c| {
            c.iter().sum::<u64>() == n && c.iter().all(|&x| x <= u64::from(u32::MAX))
        }),
        any::<bool>(),
    )
        .prop_map(move |(c, compressed)| {
            let counts = match compress(&c) {
                Some(s) if compressed => json!(s),
                _ => json!(c),
            };
            (
                json!({"segmentation": {"size": [h, w], "counts": counts}}),
                Some(decode_runs(w, h, &c)),
            )
        });
    let binary = proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => Just(1u8)], (w * h) as usize)
        .prop_map(move |px| {
            let rows: Vec<Vec<u8>> = px.chunks(w as usize).map(<[u8]>::to_vec).collect();
            (json!({"segmentation": rows}), Some(px))
        });
    let boxed = (0..w, 0..h)
        .prop_flat_map(move |(x, y)| (Just(x), Just(y), 1..=w - x, 1..=h - y))
        .prop_map(|(x, y, bw, bh)| (json!({"bbox": [x, y, bw, bh]}), None));
    prop_oneof![3 => rle, 2 => binary, 1 => boxed]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Well-formed canonical documents are accepted, and every mask holds
    /// exactly the pixels its runs (or its array) say.
    #[test]
    fn valid_documents_decode_to_their_pixels(
        case in (1u32..24, 1u32..24).prop_flat_map(|(w, h)| {
            (Just(w), Just(h), proptest::collection::vec(valid_region(w, h), 0..6))
        })
    ) {
        let (w, h, regions) = case;
        let objects: Vec<Value> = regions.iter().map(|(v, _)| v.clone()).collect();
        let doc = json!({"image": {"width": w, "height": h}, "regions": objects}).to_string();
        let (info, seg) = read_regions_with(&doc, &ReadOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e} on {doc}")))?;
        prop_assert_eq!(info, ImageInfo::new(w, h));
        prop_assert_eq!(seg.len(), regions.len());
        for (i, (r, (v, pixels))) in seg.regions().iter().zip(&regions).enumerate() {
            prop_assert_eq!(r.id, i as u64);
            match pixels {
                Some(px) => {
                    let mask = r.mask.as_ref().unwrap();
                    prop_assert_eq!(&mask.to_bytes(), px);
                    prop_assert_eq!(mask.area(), px.iter().map(|&p| u64::from(p)).sum::<u64>());
                }
                None => {
                    prop_assert!(r.mask.is_none());
                    prop_assert_eq!(json!(r.bbox.to_xywh()), v["bbox"].clone());
                }
            }
        }
    }
}
