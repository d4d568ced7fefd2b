#!/usr/bin/env python3
"""Side by side: som-eval's heavy metrics against the implementations they equal.

* DAVIS boundary F of 50 (ground truth, prediction) pairs of 854x480 masks (masks i of
  synth_1024x768_n200 / _n200_b, cropped to the top-left 854x480): the DAVIS 2017 toolkit's
  metrics.f_measure (pass a checkout with --davis-toolkit, commit in tools/fixtures/README.md);
* mIoU of 8 ADE20K-style 512x512 label-map pairs (150 classes, reduce-zero-label):
  mmsegmentation's intersect_and_union written out in numpy;
* the 200 x 200 COCO mask IoU matrix: pycocotools.mask.iou.

Both sides build the same inputs (benches/src/eval.rs) and print a check value (sum of F, mIoU,
sum of IoUs) that must agree. Best of --rounds medians of --reps runs each, one process each side,
in the same run; prints reference / ours.

Usage (the reference venv from tools/fixtures/README.md):
    python tools/bench/compare_eval.py --davis-toolkit /path/to/davis2017-evaluation [--reps 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from compare_rle import time_ms  # the same timing loop as the other comparisons

ROOT = Path(__file__).resolve().parents[2]


def rles(name: str) -> list[dict]:
    doc = json.loads((ROOT / "fixtures" / "masks" / f"{name}.json").read_text())
    return [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()} for r in doc["regions"]]


def label_maps(images: int):
    y, x = np.mgrid[0:512, 0:512].astype(np.int64)
    out = []
    for k in range(images):
        g = (x // 37 + (y // 29) * 3 + k * 7) % 151
        p = np.where(g == 0, 255, g - 1)
        p = np.where((x * y + k) % 11 == 0, (g + 3) % 150, p)
        out.append((g, p))
    return out


def miou(maps) -> float:
    n = 150
    ti = tu = 0
    for g, p in maps:
        label = g.copy()
        label[label == 0] = 255
        label = label - 1
        label[label == 254] = 255
        keep = label != 255
        pr, la = p[keep], label[keep]
        inter = pr[pr == la]
        hist = lambda v: np.histogram(v, bins=n, range=(0, n - 1))[0]
        a_i, a_p, a_l = hist(inter), hist(pr), hist(la)
        ti, tu = ti + a_i, tu + (a_p + a_l - a_i)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmean(ti / tu))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--davis-toolkit", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    sys.path.insert(0, str(a.davis_toolkit))
    from davis2017.metrics import f_measure  # noqa: E402  (run from the checkout, never copied)

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "som-benches", "--bin", "som-bench"], cwd=ROOT, check=True)
    gt = mask_utils.decode(rles("synth_1024x768_n200")[:50])[:480, :854].transpose(2, 0, 1).astype(bool)
    pr = mask_utils.decode(rles("synth_1024x768_n200_b")[:50])[:480, :854].transpose(2, 0, 1).astype(bool)
    maps = label_maps(8)
    dt_all, gt_all = rles("synth_1024x768_n200_b"), rles("synth_1024x768_n200")
    ref_fns = {
        "davis_f_50_pairs_854x480": lambda: sum(f_measure(pr[i], gt[i]) for i in range(50)),
        "miou_ade20k_8x512x512": lambda: miou(maps),
        "coco_iou_200x200": lambda: float(mask_utils.iou(dt_all, gt_all, [0] * 200).sum()),
    }
    ref_check = {k: fn() for k, fn in ref_fns.items()}
    best_ref = {k: float("inf") for k in ref_fns}
    best_ours = {k: float("inf") for k in ref_fns}
    ours_check = {}
    for _ in range(a.rounds):
        for k, fn in ref_fns.items():
            best_ref[k] = min(best_ref[k], time_ms(fn, a.reps))
        out = subprocess.run([str(ROOT / "target" / "release" / "som-bench"), "eval", "-", str(a.reps)],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        for j in map(json.loads, out.splitlines()):
            best_ours[j["what"]] = min(best_ours[j["what"]], j["median_ms"])
            ours_check[j["what"]] = j["check"]
    print(f"{'what':<26} {'reference ms':>13} {'som ms':>9} {'ratio':>8}   check (reference / ours)")
    for k in ref_fns:
        same = abs(ref_check[k] - ours_check[k]) <= 1e-9 * max(1.0, abs(ref_check[k]))
        print(f"{k:<26} {best_ref[k]:>13.2f} {best_ours[k]:>9.2f} {best_ref[k] / best_ours[k]:>7.1f}x   "
              f"{ref_check[k]:.12g} / {ours_check[k]:.12g}{'' if same else '  DIFFERENT'}")


if __name__ == "__main__":
    main()
