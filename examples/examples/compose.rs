//! Compose a Set-of-Mark pipeline from the library API alone: a segmenter of
//! your own, the default allocator and renderer, and the marks JSON.
//!
//! ```sh
//! cargo run -p som-examples --example compose -- fixtures/images/chelsea.png out/
//! ```
//!
//! The segmenter here is deliberately tiny (a grid of boxes): any type that
//! implements `som_core::Segmenter` plugs in the same way, including the ones
//! in `som-segment`.

use std::path::PathBuf;

use anyhow::Context;
use image::DynamicImage;
use som_core::json::{write_marks, ImageInfo};
use som_core::{BBox, ImageSize, LabelScheme, Region, Segmentation, Segmenter, SomError, SomPipeline};
use som_marks::{AllocationMode, Allocator, AllocatorConfig, Draw, RenderConfig, Renderer};

/// Splits the image into `cols` × `rows` box regions.
struct Grid {
    cols: u32,
    rows: u32,
}

impl Segmenter for Grid {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        let size = ImageSize::new(image.width(), image.height());
        let mut regions = Vec::new();
        for r in 0..self.rows {
            for c in 0..self.cols {
                let (x0, x1) = (size.width * c / self.cols, size.width * (c + 1) / self.cols);
                let (y0, y1) = (size.height * r / self.rows, size.height * (r + 1) / self.rows);
                let id = (r * self.cols + c) as u64;
                regions.push(Region::from_box(id, BBox::from_xyxy(x0, y0, x1, y1)));
            }
        }
        Segmentation::new(size, regions)
    }

    fn name(&self) -> &str {
        "grid"
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let input = PathBuf::from(args.next().context("usage: compose IMAGE [OUT_DIR]")?);
    let out_dir = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out_dir)?;

    let pipeline = SomPipeline::new(
        Grid { cols: 4, rows: 3 },
        Allocator::new(AllocatorConfig {
            mode: AllocationMode::Paper,
            labels: LabelScheme::Letter,
            ..AllocatorConfig::default()
        }),
        Renderer::new(RenderConfig {
            draw: "mark,box".parse::<Draw>().map_err(|e| anyhow::anyhow!("{e}"))?,
            ..RenderConfig::default()
        }),
    );

    let image = som_core::io::load_image(&input)?;
    let (marked, timings) = pipeline.mark_timed(&image)?;
    for t in &timings {
        eprintln!("{}", t.to_json_line());
    }

    let png = out_dir.join("compose.marked.png");
    marked.image().save(&png)?;
    let info = ImageInfo::new(image.width(), image.height());
    std::fs::write(
        out_dir.join("compose.marks.json"),
        write_marks(&info, marked.segmentation(), marked.marks()),
    )?;

    // Resolve a mark the way a model's answer would name it.
    let region = marked.region_by_text("c").context("mark c exists")?;
    println!(
        "{} marks -> {}; mark c is region {} at {:?}",
        marked.marks().len(),
        png.display(),
        region.id,
        region.bbox
    );
    Ok(())
}
