//! Golden-image tests for the renderer: small deterministic scenes rendered
//! and compared pixel for pixel with the PNGs committed under
//! `fixtures/render/`.
//!
//! After an intended change to the look, regenerate them with
//! `SOM_BLESS=1 cargo test -p som-marks --test render_golden` and look at the
//! new images before committing them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use image::{Rgb, RgbImage};
use som_core::io::encode_png;
use som_core::{BBox, ImageSize, LabelMeasure, Mark, MarkRenderer, Mask, Point, Region, Segmentation};
use som_marks::render::{Draw, RenderConfig, Renderer};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/render")
        .join(format!("{name}.png"))
}

/// Compares `image` with the committed golden `name`, or rewrites the golden
/// when `SOM_BLESS` is set.
fn check(name: &str, image: &RgbImage) -> Result<()> {
    let path = fixture(name);
    if std::env::var_os("SOM_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().context("fixture folder")?)?;
        std::fs::write(&path, encode_png(image)?)?;
        return Ok(());
    }
    let golden = image::open(&path)
        .with_context(|| format!("{} (run with SOM_BLESS=1 to create it)", path.display()))?
        .to_rgb8();
    if golden.dimensions() != image.dimensions() {
        bail!(
            "{name}: size {:?}, golden {:?}",
            image.dimensions(),
            golden.dimensions()
        );
    }
    let diff: Vec<(u32, u32)> = image
        .enumerate_pixels()
        .filter(|(x, y, p)| golden.get_pixel(*x, *y) != *p)
        .map(|(x, y, _)| (x, y))
        .collect();
    if !diff.is_empty() {
        bail!(
            "{name}: {} pixels differ from {} (first at {:?}); if the change is intended, run with SOM_BLESS=1",
            diff.len(),
            path.display(),
            &diff[..diff.len().min(5)]
        );
    }
    Ok(())
}

/// A smooth two-colour gradient, so tints and anti-aliasing show against a
/// background that is not flat.
fn background(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (40 + 160 * x / w.max(1)) as u8,
            (60 + 120 * y / h.max(1)) as u8,
            (200 - 100 * x / w.max(1)) as u8,
        ])
    })
}

fn ellipse(size: ImageSize, cx: f32, cy: f32, rx: f32, ry: f32) -> Mask {
    Mask::from_fn(size, |x, y| {
        let dx = (x as f32 + 0.5 - cx) / rx;
        let dy = (y as f32 + 0.5 - cy) / ry;
        dx * dx + dy * dy <= 1.0
    })
}

/// (region index, mark text, anchor x, anchor y).
type Anchor = (usize, &'static str, u32, u32);

/// Marks with labels of `scale` centred on the anchors, moved inside the image.
fn marks(r: &Renderer, seg: &Segmentation, anchors: &[Anchor], scale: f32) -> Vec<Mark> {
    anchors
        .iter()
        .enumerate()
        .map(|(i, &(region, text, x, y))| {
            let (w, h) = r.label_size(text, seg.size(), scale);
            let lx = x.saturating_sub(w / 2).min(seg.size().width.saturating_sub(w));
            let ly = y.saturating_sub(h / 2).min(seg.size().height.saturating_sub(h));
            Mark::new(
                i as u32 + 1,
                text,
                Point::new(x, y),
                region,
                BBox::new(lx, ly, w, h),
            )
        })
        .collect()
}

/// Overlapping masks (a large ellipse, a square inside it, a ring crossing
/// both), a one-pixel diagonal line, and a box-only region.
fn overlap_scene() -> Result<(RgbImage, Segmentation, Vec<Anchor>)> {
    let size = ImageSize::new(120, 90);
    let regions = vec![
        Region::from_mask(10, ellipse(size, 45.0, 45.0, 40.0, 30.0)),
        Region::from_mask(11, Mask::from_box(size, BBox::new(30, 30, 24, 20))),
        Region::from_mask(
            12,
            Mask::from_fn(size, |x, y| {
                let d = ((x as f32 - 85.0).powi(2) + (y as f32 - 50.0).powi(2)).sqrt();
                (12.0..20.0).contains(&d)
            }),
        ),
        Region::from_mask(13, Mask::from_fn(size, |x, y| x == y + 30 && x < 115)),
        Region::from_box(14, BBox::new(92, 4, 24, 16)),
    ];
    let seg = Segmentation::new(size, regions)?;
    let anchors = vec![
        (0, "1", 20, 45),
        (1, "2", 42, 40),
        (2, "3", 85, 34),
        (3, "4", 100, 72),
        (4, "5", 104, 12),
    ];
    Ok((background(120, 90), seg, anchors))
}

#[test]
fn overlap_scene_in_every_layer_combination() -> Result<()> {
    let (bg, seg, anchors) = overlap_scene()?;
    for (name, draw) in [
        ("overlap_default", Draw::default()),
        ("overlap_all", Draw::ALL),
        ("overlap_mask", "mask".parse()?),
        ("overlap_contour", "contour".parse()?),
        ("overlap_box", "box".parse()?),
        ("overlap_mark", "mark".parse()?),
    ] {
        let r = Renderer::new(RenderConfig {
            draw,
            ..RenderConfig::default()
        });
        let m = marks(&r, &seg, &anchors, 1.0);
        check(name, &r.render(&bg, &seg, &m)?)?;
    }
    Ok(())
}

#[test]
fn thick_lines_opaque_tint_and_letter_labels() -> Result<()> {
    let (bg, seg, anchors) = overlap_scene()?;
    let letters: Vec<_> = anchors
        .iter()
        .zip(["a", "b", "c", "aa", "zz"])
        .map(|(&(r, _, x, y), t)| (r, t, x, y))
        .collect();
    let r = Renderer::new(RenderConfig {
        draw: Draw::ALL,
        alpha: 0.8,
        font_px: Some(16.0),
        line_width: Some(3.0),
    });
    check(
        "overlap_letters_thick",
        &r.render(&bg, &seg, &marks(&r, &seg, &letters, 1.0))?,
    )
}

#[test]
fn shrunk_and_clipped_labels() -> Result<()> {
    // labels at 0.6 of the default size, some pushed against or past the border
    let size = ImageSize::new(80, 60);
    let seg = Segmentation::new(
        size,
        vec![
            Region::from_mask(1, Mask::from_box(size, BBox::new(0, 0, 30, 60))),
            Region::from_mask(2, ellipse(size, 60.0, 30.0, 18.0, 25.0)),
            Region::from_mask(3, Mask::from_box(size, BBox::new(70, 50, 10, 10))),
        ],
    )?;
    let r = Renderer::new(RenderConfig {
        font_px: Some(20.0),
        ..RenderConfig::default()
    });
    let mut m = marks(
        &r,
        &seg,
        &[(0, "1", 10, 30), (1, "2", 60, 30), (2, "137", 76, 56)],
        0.6,
    );
    // a label hanging off the right border and one with no box (drawn at its anchor)
    m[2].label_box = BBox::new(72, 48, 20, 14);
    m.push(Mark::new(4, "4", Point::new(4, 4), 0, BBox::default()));
    check("shrunk_clipped", &r.render(&background(80, 60), &seg, &m)?)
}

#[test]
fn golden_renders_are_deterministic_across_thread_counts() -> Result<()> {
    let (bg, seg, anchors) = overlap_scene()?;
    let r = Renderer::new(RenderConfig {
        draw: Draw::ALL,
        ..RenderConfig::default()
    });
    let m = marks(&r, &seg, &anchors, 1.0);
    let a = r.render(&bg, &seg, &m)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let b = pool.install(|| r.render(&bg, &seg, &m))?;
    assert_eq!(a, b);
    assert_eq!(encode_png(&a)?, encode_png(&b)?);
    Ok(())
}

/// A real photo: a 160×120 window of `chelsea.png` with the reference
/// felzenszwalb regions that reach into it (cut to the window), marks at the
/// centres of the boxes of the 12 largest, in the default look.
#[test]
fn photo_window_default_look() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let text = std::fs::read_to_string(root.join("masks/felz_chelsea.json"))?;
    let (_, full) = som_core::json::read_regions(&text)?;
    let photo = image::open(root.join("images/chelsea.png"))?.to_rgb8();
    let (wx, wy, ww, wh) = (150u32, 60u32, 160u32, 120u32);
    let size = ImageSize::new(ww, wh);
    let window = BBox::new(wx, wy, ww, wh);
    let regions: Vec<Region> = full
        .regions()
        .iter()
        .filter(|r| r.bbox.intersects(&window))
        .filter_map(|r| {
            let m = r.mask.as_ref()?;
            let cut = Mask::from_fn(size, |x, y| m.contains(Point::new(x + wx, y + wy)));
            (!cut.is_empty()).then(|| Region::from_mask(r.id, cut))
        })
        .collect();
    assert!(regions.len() > 10, "{} regions in the window", regions.len());
    let seg = Segmentation::new(size, regions)?;
    let image = image::imageops::crop_imm(&photo, wx, wy, ww, wh).to_image();
    let r = Renderer::default();
    let anchors: Vec<(usize, String, u32, u32)> = seg
        .order_by_area()
        .into_iter()
        .take(12)
        .enumerate()
        .map(|(rank, i)| {
            let c = seg.regions()[i].bbox.center();
            (i, (rank + 1).to_string(), c.x, c.y)
        })
        .collect();
    let marks: Vec<Mark> = anchors
        .iter()
        .enumerate()
        .map(|(k, (region, text, x, y))| {
            let (w, h) = r.label_size(text, size, 1.0);
            let lx = x.saturating_sub(w / 2).min(ww.saturating_sub(w));
            let ly = y.saturating_sub(h / 2).min(wh.saturating_sub(h));
            Mark::new(
                k as u32 + 1,
                text.clone(),
                Point::new(*x, *y),
                *region,
                BBox::new(lx, ly, w, h),
            )
        })
        .collect();
    check("chelsea_window_default", &r.render(&image, &seg, &marks)?)
}
