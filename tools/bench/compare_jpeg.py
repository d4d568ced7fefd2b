#!/usr/bin/env python3
"""Side by side: PIL's JPEG decoding vs som_core::jpeg (and the image crate's).

Decodes each JPEG from memory, best of --reps runs after a warm-up:
  PIL   np.asarray(Image.open(BytesIO(data)).convert("RGB"))   (libjpeg-turbo, SIMD)
  cv2   cv2.imdecode(data, IMREAD_COLOR)                        (libjpeg-turbo, SIMD)
  som   som_core::jpeg::decode                                 (pure Rust, pixel-identical to PIL)
  image image::load_from_memory (zune-jpeg)                    (pure Rust, a level or two off)
and checks that our pixels equal PIL's. Files: the bundled rocket.jpg, the
progressive fixture, and two 2048x1536 photos written here with PIL
(astronaut.png scaled up; baseline 4:2:0 and progressive, quality 90).
Ratios above 1 mean ours is faster. Machine speed drifts with other load:
compare ratios from one run, not times across runs.

Usage (venv from tools/fixtures/requirements.txt):
    python tools/bench/compare_jpeg.py [--reps 15] [FILE.jpg ...]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def best_ms(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t) * 1000)
    return best


def pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("files", nargs="*", type=Path)
    a = ap.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "som-benches", "--bin", "jpeg-bench"],
                   cwd=ROOT, check=True)
    exe = target / "release" / "jpeg-bench"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = a.files or [ROOT / "fixtures/images/rocket.jpg", ROOT / "fixtures/jpeg/progressive_420.jpg"]
        if not a.files:
            big = Image.open(ROOT / "fixtures/images/astronaut.png").convert("RGB").resize((2048, 1536), Image.BICUBIC)
            for name, opts in [("2048x1536_420.jpg", {}), ("2048x1536_progressive.jpg", {"progressive": True})]:
                big.save(tmp / name, quality=90, **opts)
                files.append(tmp / name)
        out = subprocess.run([str(exe), "--reps", str(a.reps), "--dump", str(tmp)] + [str(f) for f in files],
                             check=True, capture_output=True, text=True).stdout
        ours = [json.loads(line) for line in out.splitlines()]
        print(f"{'file':<28} {'size':>10} {'PIL ms':>8} {'cv2 ms':>8} {'som ms':>8} {'image ms':>9} "
              f"{'PIL/som':>8} {'image/som':>10} {'= PIL':>6}")
        for f, o in zip(files, ours):
            data = f.read_bytes()
            ref = pil_decode(data)
            mine = np.fromfile(tmp / f"{f.name}.rgb", np.uint8).reshape(ref.shape)
            same = "yes" if np.array_equal(mine, ref) else "NO"
            pil = best_ms(lambda: pil_decode(data), a.reps)
            buf = np.frombuffer(data, np.uint8)
            cv = best_ms(lambda: cv2.imdecode(buf, cv2.IMREAD_COLOR), a.reps)
            size = f"{o['width']}x{o['height']}"
            print(f"{f.name:<28} {size:>10} {pil:>8.2f} {cv:>8.2f} {o['som_ms']:>8.2f} {o['image_ms']:>9.2f} "
                  f"{pil / o['som_ms']:>7.2f}x {o['image_ms'] / o['som_ms']:>9.2f}x {same:>6}")
    print(f"best of {a.reps} runs each; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
