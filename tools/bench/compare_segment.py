#!/usr/bin/env python3
"""Side by side: skimage felzenszwalb vs som-segment on the bundled photos.

Runs both in one go on the same machine, photo by photo (skimage, then ours),
and prints the ratio skimage / ours. Parameters are the reference harness's:
scale=100, sigma=0.5, min_size=50, each photo at native size, loaded as
../shared/ref/gen_masks.py loads it (skimage.io.imread, alpha dropped).

skimage is timed as ../shared/ref/bench_ref.py does it: time.perf_counter
around the felzenszwalb call, one warm-up call, median of --reps runs. Ours is
the `time_segment` example of som-segment (decoding happens before timing;
median of --reps runs of `felzenszwalb` to a label map, and of the `classic`
segmenter to regions). The ratio column is wall time (the goal); the CPU
ratio compares CPU time summed over all threads, which stays meaningful when
other jobs load the machine (wall-time ratios then swing by 2x).

Usage (venv from tools/fixtures/requirements.txt):
    python tools/bench/compare_segment.py [--reps 7] [--threads N] [PHOTO ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
from skimage import io
from skimage.segmentation import felzenszwalb

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"scale": 100, "sigma": 0.5, "min_size": 50}
PHOTOS = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg"]


def load_photo(path: Path) -> np.ndarray:
    img = io.imread(str(path))
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def time_ms(fn, reps: int) -> tuple[float, float]:
    """Median wall time and mean CPU time (all threads) per call, in ms."""
    fn()
    out = []
    c0 = time.process_time()
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    cpu = (time.process_time() - c0) * 1000 / reps
    return statistics.median(out), cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="rayon threads for ours (0: all cores)")
    ap.add_argument("photos", nargs="*", default=PHOTOS)
    a = ap.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "som-segment", "--example", "time_segment"],
                   cwd=ROOT, check=True)
    exe = target / "release" / "examples" / "time_segment"
    print(f"{'photo':<14} {'HxW':>9} {'skimage ms':>11} {'som ms':>8} {'ratio':>7} "
          f"{'cpu ratio':>10} {'segments (sk/som)':>18} {'classic ms':>11} {'regions':>8}")
    ratios = []
    cpu_ratios = []
    for name in a.photos:
        path = ROOT / "fixtures" / "images" / name
        img = load_photo(path)
        ca = -1 if img.ndim == 3 else None
        labels = felzenszwalb(img, channel_axis=ca, **PARAMS)
        ref_ms, ref_cpu = time_ms(lambda: felzenszwalb(img, channel_axis=ca, **PARAMS), a.reps)
        cmd = [str(exe), "--reps", str(a.reps)]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        out = subprocess.run(cmd + [str(path)], check=True, capture_output=True, text=True).stdout
        ours = {j["segmenter"]: j for j in map(json.loads, out.splitlines())}
        felz, classic = ours["felzenszwalb"], ours["classic"]
        ratio = ref_ms / felz["median_ms"]
        ratios.append(ratio)
        h, w = img.shape[:2]
        hw = f"{h}x{w}"
        segs = "{}/{}".format(int(labels.max()) + 1, felz["regions"])
        cpu = f"{ref_cpu / felz['cpu_ms']:.1f}x" if felz.get("cpu_ms") else "-"
        if felz.get("cpu_ms"):
            cpu_ratios.append(ref_cpu / felz["cpu_ms"])
        print(f"{name:<14} {hw:>9} {ref_ms:>11.1f} {felz['median_ms']:>8.1f} {ratio:>6.1f}x "
              f"{cpu:>10} {segs:>18} {classic['median_ms']:>11.1f} {classic['regions']:>8}")
    print(f"min ratio {min(ratios):.1f}x, geometric mean {float(np.exp(np.mean(np.log(ratios)))):.1f}x "
          f"(goal: >= 4x on every photo)")
    if cpu_ratios:
        print(f"CPU-time ratio (all threads; less sensitive to other load): min {min(cpu_ratios):.1f}x")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
