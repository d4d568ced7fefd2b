#!/usr/bin/env python3
"""Side by side: rendering 200 masks + labels at 1024x768, supervision vs som-marks.

The reference is timed exactly as ../shared/ref/bench_ref.py does it:
`sv.MaskAnnotator(opacity=0.4, color_lookup=INDEX)` then
`sv.LabelAnnotator(text_position=CENTER, text_scale=0.5, text_thickness=1,
text_padding=3, color_lookup=INDEX)` on a copy of the background, with the
detections built beforehand (not timed). Ours is the criterion bench
`render/synth_1024x768_n200/mask+mark` (benches/benches/render.rs): the same
masks, the same anchors (the centre of each region's box, numbered largest
region first), mask tint 0.4 + labels, on coffee.png resized to the canvas.
For information it also times our default look, which adds anti-aliased
contours (`render/synth_1024x768_n200/mask+contour+mark`).

The reference runs before and after our bench and the median of all its runs
is used, so drift on this shared machine hits both sides alike. Prints both
medians and the ratio (reference / ours); the goal (DESIGN §6) is >= 10x.

Usage (the reference venv has supervision, cv2 and pycocotools):
    /root/.cache/som/refvenv/bin/python tools/bench/compare_render.py [--reps 10] [--save DIR]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[2]
SET = "synth_1024x768_n200"
GROUP_DIR = "render_" + SET  # criterion's folder for the group render/<SET>


def load_scene():
    doc = json.loads((ROOT / "fixtures" / "masks" / f"{SET}.json").read_text())
    regions = doc["regions"]
    rles = [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()} for r in regions]
    masks = np.ascontiguousarray(mask_utils.decode(rles).transpose(2, 0, 1)).astype(bool)
    n, h, w = masks.shape
    areas = masks.reshape(n, -1).sum(1)
    order = sorted(range(n), key=lambda i: -int(areas[i]))  # stable: ties keep input order, as Segmentation::order_by_area
    # anchors: centre pixel of each region's box, BBox::center() = (x + w / 2, y + h / 2) rounded down
    anchors = []
    for i in order:
        x, y, bw, bh = (int(v) for v in regions[i]["bbox"])
        anchors.append((x + bw // 2, y + bh // 2))
    bg = cv2.resize(cv2.imread(str(ROOT / "fixtures" / "images" / "coffee.png"), cv2.IMREAD_COLOR), (w, h),
                    interpolation=cv2.INTER_LINEAR)
    return masks[order], anchors, bg


def reference_times(masks, anchors, bg, reps: int, save: Path | None) -> list[float]:
    det_masks = sv.Detections(xyxy=sv.mask_to_xyxy(masks).astype(np.float32), mask=masks)
    det_pts = sv.Detections(xyxy=np.array([[x, y, x, y] for x, y in anchors], np.float32))
    labels = [str(i + 1) for i in range(len(anchors))]
    mask_ann = sv.MaskAnnotator(opacity=0.4, color_lookup=sv.ColorLookup.INDEX)
    label_ann = sv.LabelAnnotator(color_lookup=sv.ColorLookup.INDEX, text_position=sv.Position.CENTER,
                                  text_scale=0.5, text_thickness=1, text_padding=3)

    def render():
        scene = bg.copy()
        scene = mask_ann.annotate(scene, det_masks)
        return label_ann.annotate(scene, det_pts, labels=labels)

    warm = bg.copy()
    mask_ann.annotate(warm, det_masks[:2])
    label_ann.annotate(warm, det_pts[:2], labels=labels[:2])
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        img = render()
        out.append((time.perf_counter() - t) * 1000.0)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(save / f"supervision_{SET}.png"), img)
    return out


def target_dir() -> Path:
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    return Path(json.loads(meta)["target_directory"])


def ours_ms(bench: str, measurement_s: int) -> float:
    """Median ms of the criterion bench render/<SET>/<bench> (e.g. "mask+mark")."""
    pattern = f"^render/{SET}/" + bench.replace("+", "\\+") + "$"
    subprocess.run(["cargo", "bench", "-q", "-p", "som-benches", "--bench", "render", "--",
                    "--warm-up-time", "2", "--measurement-time", str(measurement_s), "--noplot", pattern],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    est = target_dir() / "criterion" / GROUP_DIR / bench / "new" / "estimates.json"
    return json.loads(est.read_text())["median"]["point_estimate"] / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=10, help="reference runs before and after our bench (each)")
    ap.add_argument("--measurement-time", type=int, default=5, help="criterion measurement seconds")
    ap.add_argument("--save", type=Path, help="write the reference's rendered image to this folder")
    a = ap.parse_args()
    # build first, so compilation does not run next to the reference timing
    subprocess.run(["cargo", "bench", "-q", "-p", "som-benches", "--bench", "render", "--no-run"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    masks, anchors, bg = load_scene()
    ref = reference_times(masks, anchors, bg, a.reps, a.save)
    ours = ours_ms("mask+mark", a.measurement_time)
    ours_contour = ours_ms("mask+contour+mark", a.measurement_time)
    ref += reference_times(masks, anchors, bg, a.reps, None)
    ref_med = statistics.median(ref)
    print(f"render {SET} ({len(masks)} masks + labels, {bg.shape[1]}x{bg.shape[0]})")
    print(f"  supervision Mask+Label annotators  median {ref_med:8.2f} ms  (min {min(ref):.2f}, {len(ref)} runs)")
    print(f"  som-marks Renderer (mask,mark)     median {ours:8.2f} ms  (criterion)")
    print(f"  ratio {ref_med / ours:.1f}x  (goal >= 10x)")
    print(f"  with anti-aliased contours too (mask,contour,mark, our default look): median {ours_contour:.2f} ms,"
          f" ratio {ref_med / ours_contour:.1f}x")


if __name__ == "__main__":
    main()
