//! The dataset loaders on format-exact fixtures (tools/fixtures/gen_eval_data.py),
//! good and malformed.

use std::path::{Path, PathBuf};

use som_eval::data::pickle::unpickle;
use som_eval::data::refcocog::read_refs;
use som_eval::data::{open, Dataset, OpenOptions, Query, Task, Truth};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/eval/data")
        .join(rel)
}

fn open_ok(task: Task, root: &Path) -> Box<dyn Dataset> {
    open(task, root, &OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

fn ids(ds: &dyn Dataset) -> Vec<String> {
    ds.items().iter().map(|i| i.id.clone()).collect()
}

#[test]
fn coco_instances_give_regions_and_a_semantic_map() {
    let ds = open_ok(Task::Coco, &data("coco"));
    assert_eq!(ids(&*ds), ["coco/1", "coco/2"]);
    assert_eq!(ds.vocabulary().unwrap().len(), 3);
    let item = ds.load(0).unwrap();
    assert!(item.image.ends_with("val2017/000000000001.jpg") && item.image.is_file());
    let regions = item.regions.unwrap();
    // The crowd annotation is not a region to mark; the polygon and the RLE are.
    let labels: Vec<_> = regions
        .regions()
        .iter()
        .map(|r| (r.id, r.label.clone().unwrap()))
        .collect();
    assert_eq!(labels, [(100, "person".to_string()), (101, "dog".into())]);
    assert!(regions.regions().iter().all(|r| r.area() > 20));
    let sem = item.semantic.unwrap();
    // Crowd pixels (bottom-left) are ignored; the polygon's pixels are "person" (index 0).
    assert_eq!(sem.map.get(0, 47), Some(sem.ignore));
    let person = regions.regions()[0].mask.as_ref().unwrap();
    let p = person.bbox().center();
    assert_eq!(sem.map.get(p.x, p.y), Some(0));
    assert!(matches!(item.query, Query::Label { ref vocabulary } if vocabulary == &["person", "dog", "cup"]));
}

#[test]
fn coco_panoptic_pngs_decode_to_segments() {
    let ds = open_ok(Task::Coco, &data("coco_panoptic"));
    assert_eq!(ds.items().len(), 2);
    assert_eq!(ds.vocabulary().unwrap().len(), 4);
    let item = ds.load(1).unwrap();
    let regions = item.regions.unwrap();
    assert_eq!(regions.regions().len(), 3);
    assert_eq!(regions.regions()[0].label.as_deref(), Some("tree-merged"));
    // Ids use all three channels: 1000 * (k + 1) + 7 * image + 65536 * k.
    assert_eq!(regions.regions()[2].id, 3000 + 14 + 131072);
    let sem = item.semantic.unwrap();
    assert_eq!(sem.map.get(0, 0), Some(3)); // tree-merged is category index 3
}

#[test]
fn refcocog_refs_read_the_same_from_every_pickle_protocol() {
    let dir = data("refcocog/refcocog");
    let p2 = read_refs(&dir.join("refs(umd).p")).unwrap();
    let p0 = read_refs(&dir.join("refs_protocol0.p")).unwrap();
    let p4 = read_refs(&dir.join("refs_protocol4.p")).unwrap();
    assert_eq!(p2, p0);
    assert_eq!(p2, p4);
    assert_eq!(p2.len(), 4);
    assert_eq!(p2[2].sentences[0].text, "a cat lying on a café chair");
    // The Python 2 protocol-2 file fetches repeated keys from the memo (BINGET).
    let raw = std::fs::read(dir.join("refs(umd).p")).unwrap();
    assert_eq!(&raw[..2], b"\x80\x02");
    assert!(raw.windows(2).any(|w| w[0] == b'h'));
    assert!(unpickle(&raw).is_ok());
}

#[test]
fn refcocog_items_are_expressions_of_the_split() {
    let ds = open_ok(Task::Refcocog, &data("refcocog"));
    assert_eq!(
        ids(&*ds),
        [
            "refcocog/ref-0/sent-0",
            "refcocog/ref-0/sent-1",
            "refcocog/ref-1/sent-2"
        ]
    );
    let item = ds.load(1).unwrap();
    assert!(item.image.is_file(), "{}", item.image.display());
    assert!(matches!(&item.query, Query::Refer { expression } if expression == "astronaut in a white suit"));
    let (key, truth) = &item.targets[0];
    assert_eq!(key, "ref 0");
    let Truth::Object { bbox, mask } = truth else {
        panic!("{truth:?}")
    };
    assert!(bbox[2] > 5.0 && mask.as_ref().unwrap().area() > 20);
    assert_eq!(item.regions.unwrap().len(), 2);
    let test = open(
        Task::Refcocog,
        &data("refcocog"),
        &OpenOptions {
            split: Some("test".into()),
            images: None,
        },
    )
    .unwrap();
    assert_eq!(ids(&*test), ["refcocog/ref-2/sent-3"]);
}

#[test]
fn ade20k_items_have_one_region_per_class_present() {
    let ds = open_ok(Task::Ade20k, &data("ade20k"));
    assert_eq!(ids(&*ds), ["ade20k/ADE_val_00000001", "ade20k/ADE_val_00000002"]);
    let voc = ds.vocabulary().unwrap();
    assert_eq!(voc.len(), 150);
    assert_eq!(voc[1].names, ["building", "edifice"]);
    let item = ds.load(0).unwrap();
    let labels: Vec<_> = item
        .regions
        .unwrap()
        .regions()
        .iter()
        .map(|r| r.label.clone().unwrap())
        .collect();
    assert_eq!(labels, ["wall", "sky", "person", "class150"]);
    let sem = item.semantic.unwrap();
    assert_eq!(sem.map.get(0, 0), Some(sem.ignore)); // stored 0 = other
    assert_eq!(sem.map.get(1, 0), Some(2)); // stored 3 (sky) = class index 2
}

#[test]
fn flickr30k_items_are_sentences_with_boxed_phrases() {
    let ds = open_ok(Task::Flickr30k, &data("flickr30k"));
    // The third sentence's only phrase has no box: not an item.
    assert_eq!(ids(&*ds), ["flickr30k/1000092795/0", "flickr30k/1000092795/1"]);
    let item = ds.load(1).unwrap();
    let Query::Ground { caption, phrases } = &item.query else {
        panic!()
    };
    assert_eq!(caption, "The cat looks at the street .");
    assert_eq!(phrases, &["The cat"]); // "the street" is a scene entity without a box
    assert_eq!(
        item.targets[0].1,
        Truth::Boxes {
            boxes: vec![[25.0, 10.0, 20.0, 28.0], [30.0, 5.0, 18.0, 15.0]]
        }
    );
    assert!(item.image.is_file());
}

#[test]
fn davis_items_are_the_scored_frames() {
    let ds = open_ok(
        Task::Davis,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/eval/davis"),
    );
    // 8 + 7 + 6 frames, minus the first and last of each sequence.
    assert_eq!(ds.items().len(), 6 + 5 + 4);
    assert_eq!(ds.items()[0].id, "davis/bear-walk/00001");
    let item = ds.load(6).unwrap();
    assert_eq!(item.group, "rocket-pair");
    assert_eq!(item.targets.len(), 3);
    let reference = item.reference.unwrap();
    assert_eq!(reference.objects.len(), 3);
    assert!(reference.image.ends_with("rocket-pair/00000.jpg"));
    assert_eq!(item.output_name.as_deref(), Some("rocket-pair/00001.png"));
}

#[test]
fn sombench_items_carry_the_published_prompts() {
    let ds = open_ok(Task::SombenchRefcocog, &data("sombench/refcocog_refseg"));
    assert_eq!(ds.items().len(), 2);
    let item = ds.load(0).unwrap();
    assert!(item.premarked);
    assert_eq!(
        item.prompt.as_deref(),
        Some("I have labeled a bright numeric ID at the center for each visual object in the image. Please tell me the IDs for: The laptop behind the beer bottle; Laptop turned on.")
    );
    assert_eq!(item.targets[0].1, Truth::Marks { ids: vec![3] });
    let ds = open_ok(Task::SombenchFlickr30k, &data("sombench/flickr30k_grounding"));
    assert_eq!(ds.items().len(), 1, "the _wbox image is not an item");
    let item = ds.load(0).unwrap();
    assert_eq!(item.targets.len(), 2);
    assert_eq!(
        item.targets[1],
        ("a piece of paper".to_string(), Truth::Marks { ids: vec![5] })
    );
}

#[test]
fn every_malformed_fixture_gives_one_clear_error() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("bad/cases.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let folder = data("bad").join(case["folder"].as_str().unwrap());
        let task: Task = case["task"].as_str().unwrap().parse().unwrap();
        let want = case["error"].as_str().unwrap();
        // Open, then load every item: the defect must surface as an error, not a panic.
        let result = open(task, &folder, &OpenOptions::default()).and_then(|ds| {
            for i in 0..ds.items().len() {
                ds.load(i)?;
            }
            Ok(())
        });
        let err = match result {
            Err(e) => e,
            Ok(()) => panic!("{}: loaded without error", folder.display()),
        };
        let text = som_core::ErrorChain(&err).to_string();
        assert!(
            text.contains(want),
            "{}:\n  got  {text}\n  want {want}",
            folder.display()
        );
        assert!(!text.contains('\n'), "{text:?}");
    }
}

#[test]
fn a_missing_root_names_the_folder() {
    let Err(e) = open(Task::Davis, Path::new("/no/such/davis"), &OpenOptions::default()) else {
        panic!("opened a missing folder")
    };
    assert_eq!(
        e.to_string(),
        "/no/such/davis: not a folder (the davis data root)"
    );
}
