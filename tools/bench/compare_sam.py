#!/usr/bin/env python3
"""Side-by-side speed of the Rust SAM port and segment_anything 1.0 on the same LibTorch.

    /root/.cache/som/refvenv/bin/python tools/bench/compare_sam.py [--reps 3] [--skip-encode]

1. ViT-B image encoding (`SamPredictor.set_image` vs `Sam::embed_image`: resize,
   normalise, pad, encoder) with random ViT-B weights saved once by `torch.save` to
   ${SOM_CACHE:-~/.cache/som}/bench/sam_vit_b_random.pth (the Rust side loads that .pth).
2. Automatic mask generator post-processing (everything after the model calls:
   thresholds, stability, boxes, RLE, NMS) with the tiny fixture model on a 600x400 photo
   and 32x32 points, thresholds lowered so random weights keep masks. Python's model time is
   measured by wrapping `set_image` and `predict_torch`; the Rust generator reports the same
   split. The records of both sides are compared too.

Both sides use the machine's default LibTorch thread count, warm up once, and alternate
round by round so load from other processes hits both alike. Prints medians and ratios
(Rust / Python; below 1 means Rust is faster).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
import gen_sam  # noqa: E402  (the tiny model definition)

from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry  # noqa: E402

CACHE = os.environ.get("SOM_CACHE", os.path.expanduser("~/.cache/som"))
# A PNG: JPEG decoders differ between Pillow and the image crate, PNG pixels do not.
IMAGE = os.path.join(ROOT, "fixtures", "images", "coffee.png")
AMG_OPTIONS = {
    "points_per_side": 32,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.05,
    "stability_score_thresh": 0.6,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 0.95,
    "crop_n_layers": 0,
    "crop_nms_thresh": 0.7,
    "crop_overlap_ratio": 512 / 1500,
    "crop_n_points_downscale_factor": 1,
    "min_mask_region_area": 0,
}


def rust(*args):
    env = dict(os.environ)
    if "LIBTORCH" not in env:
        exports = subprocess.run(
            [os.path.join(ROOT, "tools", "setup-libtorch.sh"), "--env"], capture_output=True, text=True, check=True
        ).stdout
        for line in exports.splitlines():
            k, v = line.removeprefix("export ").split("=", 1)
            env[k] = v.strip("'").split("${")[0]
    cmd = ["cargo", "run", "--quiet", "--release", "-p", "som-segment", "--features", "torch", "--example", "sam_bench", "--", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"rust side failed:\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def bench_encode(reps):
    path = os.path.join(CACHE, "bench", "sam_vit_b_random.pth")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.manual_seed(0)
        torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    sam = sam_model_registry["vit_b"](checkpoint=path)
    predictor = SamPredictor(sam)
    image = np.array(Image.open(IMAGE).convert("RGB"))
    py, rs, py_cpu, rs_cpu = [], [], [], []
    predictor.set_image(image)  # warm-up, as the Rust side's first run in each process
    # Alternate the two sides so load from other processes hits both alike.
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        predictor.set_image(image)
        py.append((time.perf_counter() - t) * 1e3)
        py_cpu.append((time.process_time() - c) * 1e3)
        rs_lines = rust("encode", path, IMAGE, "2")
        rs.append([l["ms"] for l in rs_lines if l["stage"] == "encode"][-1])
        rs_cpu.append([l["cpu_ms"] for l in rs_lines if l["stage"] == "encode"][-1])
    py_sum = predictor.features.double().abs().sum().item()
    rs_sum = rs_lines[-1]["checksum"]
    med = statistics.median
    return med(py), med(rs), med(py_cpu), med(rs_cpu), abs(py_sum - rs_sum) / py_sum


def bench_amg(reps):
    torch.manual_seed(0)
    sam = gen_sam.build_tiny()
    fixtures = os.path.join(ROOT, "fixtures", "sam")
    image = np.array(Image.open(IMAGE).convert("RGB"))
    gen = SamAutomaticMaskGenerator(sam, output_mode="coco_rle", **AMG_OPTIONS)
    model_ms = [0.0]

    def timed(f):
        def wrapper(*a, **k):
            t = time.perf_counter()
            r = f(*a, **k)
            model_ms[0] += (time.perf_counter() - t) * 1e3
            return r

        return wrapper

    gen.predictor.set_image = timed(gen.predictor.set_image)
    gen.predictor.predict_torch = timed(gen.predictor.predict_torch)
    options_path = os.path.join(CACHE, "bench", "amg_options.json")
    records_path = os.path.join(CACHE, "bench", "amg_records_rust.json")
    os.makedirs(os.path.dirname(options_path), exist_ok=True)
    with open(options_path, "w") as f:
        json.dump(AMG_OPTIONS, f)
    py_post, py_model, rs_post, rs_model = [], [], [], []
    gen.generate(image)  # warm-up, as the Rust side's first run in each process
    for _ in range(reps):
        model_ms[0] = 0.0
        t = time.perf_counter()
        anns = gen.generate(image)
        total = (time.perf_counter() - t) * 1e3
        py_post.append(total - model_ms[0])
        py_model.append(model_ms[0])
        rs_lines = rust(
            "amg",
            os.path.join(fixtures, "tiny_config.json"),
            os.path.join(fixtures, "tiny.pth"),
            IMAGE,
            options_path,
            "2",
            records_path,
        )
        rs_post.append(rs_lines[-1]["post_ms"])
        rs_model.append(rs_lines[-1]["encode_ms"] + rs_lines[-1]["decode_ms"])
    with open(records_path) as f:
        rs_records = json.load(f)
    same = len(rs_records) == len(anns) and all(
        r["segmentation"]["counts"] == a["segmentation"]["counts"] and r["bbox"] == a["bbox"] for r, a in zip(rs_records, anns)
    )
    return (
        statistics.median(py_post),
        statistics.median(rs_post),
        statistics.median(py_model),
        statistics.median(rs_model),
        len(anns),
        same,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-encode", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {IMAGE}")
    if not args.skip_encode:
        py, rs, py_cpu, rs_cpu, rel = bench_encode(args.reps)
        print(f"ViT-B encode (set_image):  python {py:8.1f} ms   rust {rs:8.1f} ms   ratio {rs / py:.3f}   (embedding checksum rel. diff {rel:.1e})")
        print(f"ViT-B encode, CPU time:    python {py_cpu:8.1f} ms   rust {rs_cpu:8.1f} ms   ratio {rs_cpu / py_cpu:.3f}   (less sensitive to other load)")
    py_post, rs_post, py_model, rs_model, n, same = bench_amg(args.reps)
    print(f"AMG model calls (tiny):    python {py_model:8.1f} ms   rust {rs_model:8.1f} ms   ratio {rs_model / py_model:.3f}")
    print(f"AMG post-processing:       python {py_post:8.1f} ms   rust {rs_post:8.1f} ms   ratio {rs_post / py_post:.3f}   ({n} records, identical: {same})")


if __name__ == "__main__":
    main()
