//! The `classic` segmenter on the bundled photos: a partition of the image
//! into 8–80 regions, deterministic, and coarser than Felzenszwalb's.

use std::path::PathBuf;

use som_core::Segmenter;
use som_segment::{felzenszwalb, Classic, ClassicParams, FelzenszwalbParams};

fn photo(name: &str) -> anyhow::Result<image::DynamicImage> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images")
        .join(name);
    Ok(som_core::io::load_image(&path)?)
}

fn check(name: &str) -> anyhow::Result<()> {
    let image = photo(name)?;
    let classic = Classic::default();
    let map = classic.label_map(&image)?;
    let n = map.count() as usize;
    let raw = felzenszwalb(&image, &FelzenszwalbParams::REFERENCE)?.count() as usize;
    println!("{name}: {n} classic regions (felzenszwalb {raw})");
    assert!((8..=80).contains(&n), "{name}: {n} regions");
    assert!(n <= ClassicParams::default().max_regions);
    // Every label is used and the regions tile the image.
    let areas = map.areas();
    assert!(areas.iter().all(|&a| a > 0));
    assert_eq!(
        areas.iter().sum::<u64>(),
        image.width() as u64 * image.height() as u64
    );
    // Tiny regions are gone.
    let min = (ClassicParams::default().min_area * (image.width() * image.height()) as f64) as u64;
    assert!(areas.iter().all(|&a| a >= min), "{name}: a region below {min} px");
    // The same as a segmentation: masks cover every pixel exactly once.
    let seg = classic.segment(&image)?;
    assert_eq!(seg.len(), n);
    let mut cover = vec![0u8; (image.width() * image.height()) as usize];
    for r in seg.regions() {
        let mask = r.mask.as_ref().expect("classic regions have masks");
        for (i, &v) in mask.to_bytes().iter().enumerate() {
            cover[i] += v;
        }
    }
    assert!(
        cover.iter().all(|&c| c == 1),
        "{name}: pixels not covered exactly once"
    );
    // Deterministic.
    assert_eq!(classic.label_map(&image)?, map);
    Ok(())
}

#[test]
fn astronaut() -> anyhow::Result<()> {
    check("astronaut.png")
}

#[test]
fn camera() -> anyhow::Result<()> {
    check("camera.png")
}

#[test]
fn chelsea() -> anyhow::Result<()> {
    check("chelsea.png")
}

#[test]
fn coffee() -> anyhow::Result<()> {
    check("coffee.png")
}

#[test]
fn rocket() -> anyhow::Result<()> {
    check("rocket.jpg")
}

#[test]
fn max_regions_is_respected() -> anyhow::Result<()> {
    let image = photo("chelsea.png")?;
    for max in [1, 5, 12, 30] {
        let params = ClassicParams {
            max_regions: max,
            min_regions: max.min(10),
            ..ClassicParams::default()
        };
        let n = Classic::new(params).label_map(&image)?.count() as usize;
        assert!(n <= max && n >= 1, "max {max}: {n}");
    }
    Ok(())
}

#[test]
fn split_disconnected_keeps_a_partition() -> anyhow::Result<()> {
    let image = photo("coffee.png")?;
    let params = ClassicParams {
        split_disconnected: true,
        ..ClassicParams::default()
    };
    let map = Classic::new(params).label_map(&image)?;
    assert!(map.areas().iter().all(|&a| a > 0));
    assert_eq!(map.areas().iter().sum::<u64>(), 600 * 400);
    Ok(())
}
