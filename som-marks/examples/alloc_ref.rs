//! Mark allocation on the reference mask sets, for side-by-side checks with
//! `../shared/ref/som_ref.py` (see `tools/bench/compare_alloc.sh`).
//!
//! ```text
//! cargo run --release -p som-marks --example alloc_ref -- marks SET MODE OUT.json
//!     writes our marks in som_ref.py's format ([{id, x, y, dist, mask_index, area}])
//!     so `som_ref.py verify --masks SET.npz --marks OUT.json` can check them
//! cargo run --release -p som-marks --example alloc_ref -- time SET REPS [MODE...]
//!     prints {"set", "mode", "median_ms", "min_ms"} per mode (default: both),
//!     one JSON object a line
//! ```
//! cargo run --release -p som-marks --example alloc_ref -- stats SET...
//!     prints per mode how many marks carry overlaps, how many are outside
//!     their region, the label heights and how much of the image labels cover
//! SET names a file in `fixtures/masks/`; MODE is `paper` or `independent`.
//! Labels are measured with the real renderer (`Renderer::default()`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use som_core::{MarkAllocator, Segmentation};
use som_marks::{AllocationMode, Allocator, AllocatorConfig, Renderer};

fn load(set: &str) -> anyhow::Result<Segmentation> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/masks")
        .join(format!("{set}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(som_core::json::read_regions(&text)?.1)
}

fn allocator(mode: AllocationMode) -> Allocator {
    Allocator::new(AllocatorConfig {
        mode,
        ..Default::default()
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measure = Renderer::default();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["marks", set, mode, out] => {
            let seg = load(set)?;
            let marks = allocator(mode.parse()?).allocate(&seg, &measure)?;
            let rows: Vec<serde_json::Value> = marks
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "id": m.id, "x": m.anchor.x, "y": m.anchor.y, "dist": m.distance,
                        "mask_index": m.region, "area": seg.regions()[m.region].area(),
                    })
                })
                .collect();
            std::fs::write(out, serde_json::to_string(&rows)?).with_context(|| out.to_string())?;
        }
        ["time", set, reps, modes @ ..] => {
            let seg = load(set)?;
            let reps: usize = reps.parse().context("REPS must be a number")?;
            let modes: Vec<AllocationMode> = if modes.is_empty() {
                vec![AllocationMode::Paper, AllocationMode::Independent]
            } else {
                modes.iter().map(|m| m.parse()).collect::<Result<_, _>>()?
            };
            for mode in modes {
                let alloc = allocator(mode);
                alloc.allocate(&seg, &measure)?; // warm-up
                let mut ms: Vec<f64> = (0..reps.max(1))
                    .map(|_| {
                        let t = Instant::now();
                        let marks = alloc.allocate(&seg, &measure).map(|m| m.len());
                        let e = t.elapsed().as_secs_f64() * 1000.0;
                        assert_eq!(marks.ok(), Some(seg.len()));
                        e
                    })
                    .collect();
                ms.sort_by(f64::total_cmp);
                let median = ms[ms.len() / 2];
                println!(
                    "{}",
                    serde_json::json!({"set": set, "mode": mode.to_string(), "median_ms": median, "min_ms": ms[0]})
                );
            }
        }
        ["stats", sets @ ..] => {
            for set in sets {
                let seg = load(set)?;
                for mode in [AllocationMode::Paper, AllocationMode::Independent] {
                    let marks = allocator(mode).allocate(&seg, &measure)?;
                    let flagged = marks.iter().filter(|m| !m.overlaps.is_empty()).count();
                    let outside = marks.iter().filter(|m| m.placement == som_core::Placement::Outside).count();
                    let heights: Vec<u32> = marks.iter().map(|m| m.label_box.height).collect();
                    println!(
                        "{}",
                        serde_json::json!({
                            "set": set, "mode": mode.to_string(), "marks": marks.len(),
                            "flagged": flagged, "outside": outside,
                            "label_height": [heights.iter().min(), heights.iter().max()],
                            "density": marks.iter().map(|m| m.label_box.area()).sum::<u64>() as f64 / seg.size().pixels() as f64,
                        })
                    );
                }
            }
        }
        _ => bail!("usage: alloc_ref marks SET MODE OUT.json | alloc_ref time SET REPS [MODE...] | alloc_ref stats SET..."),
    }
    Ok(())
}
