#!/usr/bin/env python3
"""Side-by-side speed and peak memory of the Rust MaskDINO port and upstream MaskDINO.

    ~/.cache/som/maskdino-venv/bin/python tools/bench/compare_maskdino.py --maskdino DIR [--rounds 3] [--threads 2]

The reference is upstream MaskDINO + detectron2 on the CPU, set up as for
`tools/fixtures/gen_maskdino.py` (`--maskdino` is the MaskDINO checkout; its pure-PyTorch
deformable attention path, as there). Both sides run the full-size ResNet-50 instance
model (`r50_instance`: 300 queries, 9 decoder layers, 6 encoder layers) with the same
random weights, generated once outside the repository into
${SOM_CACHE:-~/.cache/som}/bench/maskdino_r50_random.pth (detectron2's checkpoint format,
the weight recipe of gen_maskdino.py), on a 1333x750 photo (a fixture photo resized, saved
as PNG so both sides decode the same pixels), with the same LibTorch and thread count.

What is timed is one image through the model: test-time resize, normalisation, backbone,
pixel decoder, decoder and instance post-processing (upstream: `model([{"image", "height",
"width"}])` after `ResizeShortestEdge`; Rust: `MaskDino::predict`). Each side runs in its
own process, loads the model, warms up once, then runs once; rounds alternate the sides
so load from other processes hits both alike. Prints the best round of each side, the
ratio (Rust / Python; below 1 means Rust is faster), CPU time, and each process's peak
resident memory (the larger of its rounds), and checks both sides return the same
instance scores.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("SOM_CACHE", os.path.expanduser("~/.cache/som"))
BENCH = os.path.join(CACHE, "bench")
CHECKPOINT = os.path.join(BENCH, "maskdino_r50_random.pth")
IMAGE = os.path.join(BENCH, "maskdino_1333x750.png")
CONFIG = "configs/coco/instance-segmentation/maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml"


def reference(maskdino_dir):
    """Imports upstream with the harness patches of gen_maskdino.py; returns helpers."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
    import gen_maskdino

    gen_maskdino.install_stand_in()
    sys.path.insert(0, maskdino_dir)
    import torch
    from detectron2.config import get_cfg
    from detectron2.data import transforms as T
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config
    from maskdino import add_maskdino_config

    def cfg():
        c = get_cfg()
        add_deeplab_config(c)
        add_maskdino_config(c)
        c.merge_from_file(os.path.join(maskdino_dir, CONFIG))
        c.MODEL.DEVICE = "cpu"
        c.freeze()
        return c

    return gen_maskdino, torch, T, build_model, cfg


def prepare(maskdino_dir):
    """Writes the random checkpoint and the 1333x750 image once."""
    os.makedirs(BENCH, exist_ok=True)
    if not os.path.exists(IMAGE):
        from PIL import Image

        photo = Image.open(os.path.join(ROOT, "fixtures", "images", "coffee.png")).convert("RGB")
        photo.resize((1333, 750), Image.BILINEAR).save(IMAGE)
    if not os.path.exists(CHECKPOINT):
        gen_maskdino, torch, _, build_model, cfg = reference(maskdino_dir)
        torch.manual_seed(gen_maskdino.SEED)
        model = build_model(cfg()).eval()
        gen_maskdino.perturb(torch, model)
        torch.save({"model": model.state_dict(), "iteration": 0}, CHECKPOINT)


def python_worker(maskdino_dir, threads):
    """One process of the reference: load, warm up, time one image; prints JSON lines."""
    import numpy as np
    from PIL import Image

    gen_maskdino, torch, T, build_model, cfg = reference(maskdino_dir)
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    c = cfg()
    model = build_model(c).eval()
    model.load_state_dict(torch.load(CHECKPOINT, map_location="cpu")["model"])
    image = np.asarray(Image.open(IMAGE).convert("RGB"))
    aug = T.ResizeShortestEdge([c.INPUT.MIN_SIZE_TEST, c.INPUT.MIN_SIZE_TEST], c.INPUT.MAX_SIZE_TEST)

    def run():
        # DefaultPredictor.__call__ for an RGB image (no channel flip needed).
        height, width = image.shape[:2]
        resized = aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        return model([{"image": tensor, "height": height, "width": width}])[0]

    run()
    t, cpu = time.perf_counter(), time.process_time()
    out = run()
    ms = (time.perf_counter() - t) * 1e3
    cpu_ms = (time.process_time() - cpu) * 1e3
    scores = out["instances"].scores
    print(json.dumps({"stage": "predict", "ms": ms, "cpu_ms": cpu_ms, "instances": len(scores), "checksum": float(scores.double().sum())}))
    print(json.dumps({"stage": "peak", "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def rust_env():
    env = dict(os.environ)
    if "LIBTORCH" not in env:
        exports = subprocess.run(
            [os.path.join(ROOT, "tools", "setup-libtorch.sh"), "--env"], capture_output=True, text=True, check=True
        ).stdout
        for line in exports.splitlines():
            k, v = line.removeprefix("export ").split("=", 1)
            env[k] = v.strip("'").split("${")[0]
    return env


def lines(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{out.stderr[-3000:]}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maskdino", required=True, help="a checkout of IDEA-Research/MaskDINO (see gen_maskdino.py)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.python_worker:
        python_worker(args.maskdino, args.threads)
        return
    prepare(args.maskdino)
    env = rust_env()
    build = ["cargo", "build", "--quiet", "--release", "-p", "som-segment", "--features", "torch", "--example", "maskdino_bench"]
    subprocess.run(build, cwd=ROOT, env=env, check=True)
    rust_bin = os.path.join(ROOT, "target", "release", "examples", "maskdino_bench")
    py_cmd = [sys.executable, os.path.abspath(__file__), "--maskdino", args.maskdino, "--threads", str(args.threads), "--python-worker"]
    rs_cmd = [rust_bin, CHECKPOINT, "r50_instance", IMAGE, str(args.threads), "2"]
    py, rs = [], []
    for _ in range(args.rounds):
        py.append(lines(py_cmd))
        # The Rust side's first repetition is its warm-up.
        rs.append(lines(rs_cmd, env))

    def best(runs):
        times = [[l for l in r if l["stage"] == "predict"][-1] for r in runs]
        peak = max([l for l in r if l["stage"] == "peak"][-1]["rss_mb"] for r in runs)
        return min(times, key=lambda t: t["ms"]), peak

    (p, p_peak), (r, r_peak) = best(py), best(rs)
    print(f"MaskDINO R50 instance, 1333x750, {args.threads} threads, best of {args.rounds} rounds each")
    print(f"  wall time:   python {p['ms']:9.1f} ms   rust {r['ms']:9.1f} ms   ratio {r['ms'] / p['ms']:.3f}")
    print(f"  CPU time:    python {p['cpu_ms']:9.1f} ms   rust {r['cpu_ms']:9.1f} ms   ratio {r['cpu_ms'] / p['cpu_ms']:.3f}")
    print(f"  peak memory: python {p_peak:9.1f} MB   rust {r_peak:9.1f} MB   ratio {r_peak / p_peak:.3f}")
    print(
        f"  rust stages: backbone {r['backbone_ms']:.0f} ms, encoder {r['encoder_ms']:.0f} ms, "
        f"decoder {r['decoder_ms']:.0f} ms, post-processing {r['postprocess_ms']:.0f} ms"
    )
    same = p["instances"] == r["instances"] and abs(p["checksum"] - r["checksum"]) <= 1e-3 * max(1.0, abs(p["checksum"]))
    print(f"  instances: python {p['instances']}, rust {r['instances']}; score sums {p['checksum']:.5f} / {r['checksum']:.5f} (same: {same})")


if __name__ == "__main__":
    main()
