#!/usr/bin/env python3
"""Side by side: mark allocation, ../shared/ref/som_ref.py (cv2) vs som-marks.

In one run, on the same machine, for each set:
  * the reference's crop variant  (`som_ref.py allocate --crop --time --repeat R`),
  * the reference's full-frame variant, as the released SoM code does it
    (`som_ref.py allocate --time --repeat R`),
  * ours: `cargo run --release -p som-marks --example alloc_ref -- time SET REPS`
    (paper mode with label collision avoidance, and independent mode; labels
    measured with the real renderer),
and prints the ratios: paper vs the crop variant (goal >= 20x) and independent vs
the full-frame variant (goal >= 100x), DESIGN.md section 6.

With --verify it also writes our independent-mode marks for every set and runs
`som_ref.py verify` on them (exit status 1 if any set fails).

Usage (venv from tools/fixtures/requirements.txt; a writable copy of ../shared/ref
with out/masks/*.npz from its gen_masks.py):
    python tools/bench/compare_alloc.py --ref /work/refwork/ref [--sets synth_1024x768_n200 ...]
        [--repeat 5] [--reps 21] [--verify]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALL_SETS = [
    "synth_1024x768_n50", "synth_1024x768_n200", "synth_1024x768_n200_b", "synth_2048x1536_n200",
    "felz_astronaut", "felz_camera", "felz_chelsea", "felz_coffee", "felz_rocket",
]


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def ref_ms(ref: Path, npz: Path, repeat: int, crop: bool) -> float:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, str(ref / "som_ref.py"), "allocate", "--masks", str(npz),
               "--out", str(Path(d) / "marks.json"), "--time", "--repeat", str(repeat)]
        if crop:
            cmd.append("--crop")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"alloc_ms=([0-9.]+)", out).group(1))


def ours_ms(name: str, reps: int) -> dict[str, float]:
    exe = target_dir() / "release" / "examples" / "alloc_ref"
    out = subprocess.run([str(exe), "time", name, str(reps)], check=True, capture_output=True, text=True).stdout
    return {j["mode"]: j["median_ms"] for j in map(json.loads, out.splitlines())}


def verify(ref: Path, npz: Path, name: str) -> tuple[bool, str]:
    exe = target_dir() / "release" / "examples" / "alloc_ref"
    with tempfile.TemporaryDirectory() as d:
        marks = Path(d) / "ours.json"
        subprocess.run([str(exe), "marks", name, "independent", str(marks)], check=True)
        p = subprocess.run([sys.executable, str(ref / "som_ref.py"), "verify", "--masks", str(npz),
                            "--marks", str(marks)], capture_output=True, text=True)
    return p.returncode == 0, p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr.strip()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="writable copy of ../shared/ref with out/masks/*.npz")
    ap.add_argument("--sets", nargs="*", default=["synth_1024x768_n200"])
    ap.add_argument("--repeat", type=int, default=5, help="som_ref.py --repeat")
    ap.add_argument("--reps", type=int, default=21, help="our timed runs per mode")
    ap.add_argument("--verify", action="store_true", help="also run som_ref.py verify on all sets")
    a = ap.parse_args()
    ref = Path(a.ref)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "som-marks", "--example", "alloc_ref"],
                   cwd=ROOT, check=True)
    print(f"{'set':<22} {'ref crop':>9} {'ref full':>9} {'paper':>8} {'indep':>8} "
          f"{'paper/crop':>11} {'indep/full':>11}   (median ms; ratios = reference / ours)")
    for name in a.sets:
        npz = ref / "out" / "masks" / f"{name}.npz"
        crop = ref_ms(ref, npz, a.repeat, crop=True)
        full = ref_ms(ref, npz, a.repeat, crop=False)
        ours = ours_ms(name, a.reps)
        print(f"{name:<22} {crop:>9.1f} {full:>9.1f} {ours['paper']:>8.2f} {ours['independent']:>8.2f} "
              f"{crop / ours['paper']:>10.1f}x {full / ours['independent']:>10.1f}x", flush=True)
    failed = 0
    if a.verify:
        for name in ALL_SETS:
            ok, line = verify(ref, ref / "out" / "masks" / f"{name}.npz", name)
            failed += not ok
            print(f"verify {name}: {'ok' if ok else 'FAILED'} ({line})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
