#!/usr/bin/env python3
"""Side by side: COCO RLE encode/decode of a reference mask set, pycocotools vs som-core.

Runs both in one go on the same machine and prints the ratio (reference / ours).
pycocotools is timed as ../shared/ref/bench_ref.py does it: `mask.encode` of the (H,W,N)
Fortran array, `mask.decode` of the list of RLEs. Ours: Mask -> compressed string and
compressed string -> Mask for every mask (the strings are checked equal to pycocotools').

Usage (venv from tools/fixtures/requirements.txt):
    python tools/bench/compare_rle.py [--set synth_1024x768_n200] [--reps 10]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[2]


def masks_from_fixture(name: str) -> np.ndarray:
    doc = json.loads((ROOT / "fixtures" / "masks" / f"{name}.json").read_text())
    rles = [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()} for r in doc["regions"]]
    return np.ascontiguousarray(mask_utils.decode(rles).transpose(2, 0, 1))


def time_ms(fn, reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="synth_1024x768_n200")
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "som-benches", "--bin", "som-bench"], cwd=ROOT, check=True)
    masks = masks_from_fixture(a.set)
    fortran = np.asfortranarray(masks.transpose(1, 2, 0))
    rles = mask_utils.encode(fortran)
    ref = {"rle_encode": time_ms(lambda: mask_utils.encode(fortran), a.reps),
           "rle_decode": time_ms(lambda: mask_utils.decode(rles), a.reps)}
    out = subprocess.run([str(ROOT / "target" / "release" / "som-bench"), "rle", a.set, str(a.reps)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ours = {j["what"]: j["median_ms"] for j in map(json.loads, out.splitlines())}
    print(f"{'what':<12} {'pycocotools ms':>15} {'som ms':>10} {'ratio':>8}   ({a.set}, {len(masks)} masks)")
    for k in ("rle_encode", "rle_decode"):
        print(f"{k:<12} {ref[k]:>15.2f} {ours[k]:>10.2f} {ref[k] / ours[k]:>7.1f}x")


if __name__ == "__main__":
    main()
