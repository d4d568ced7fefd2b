//! Prints median timings of our implementation as JSON lines, for the
//! side-by-side comparison scripts in `tools/bench/`.
//!
//! Usage: `som-bench rle [SET] [REPS]`

use anyhow::bail;
use som_benches::{load_rle_strings, load_set, time_median};
use som_core::{Mask, Rle};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("rle");
    let set = args.get(1).map(String::as_str).unwrap_or("synth_1024x768_n200");
    let reps: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(10);
    match what {
        "rle" => {
            let seg = load_set(set)?;
            let masks: Vec<Mask> = seg.regions().iter().filter_map(|r| r.mask.clone()).collect();
            let strings = load_rle_strings(set)?;
            let enc = time_median(reps, || {
                let out: Vec<String> = masks.iter().map(|m| m.to_rle().to_compressed()).collect();
                assert_eq!(out, strings, "encoded strings differ from pycocotools");
            });
            let dec = time_median(reps, || {
                let out: Vec<Mask> = strings
                    .iter()
                    .map(|s| Rle::from_compressed(seg.size(), s).map(|r| r.to_mask()))
                    .collect::<Result<_, _>>()
                    .expect("valid fixture");
                assert_eq!(out.len(), masks.len());
            });
            println!(
                "{}",
                serde_json::json!({"set": set, "what": "rle_encode", "median_ms": enc})
            );
            println!(
                "{}",
                serde_json::json!({"set": set, "what": "rle_decode", "median_ms": dec})
            );
        }
        other => bail!("unknown benchmark {other:?} (known: rle)"),
    }
    Ok(())
}
