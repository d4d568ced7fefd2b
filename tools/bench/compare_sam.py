#!/usr/bin/env python3
"""Side-by-side speed of the Rust SAM port and the Python references on the same LibTorch.

    /root/.cache/som/refvenv/bin/python tools/bench/compare_sam.py [--reps 2] [--models vit_t,vit_b]
        [--skip-encode] [--skip-amg] [--settings default,zero] [--floor]

For each model (MobileSAM `vit_t` through `mobile_sam`, SAM `vit_b` through
`segment_anything` 1.0), with random full-size weights generated here once and kept outside
the repository in ${SOM_CACHE:-~/.cache/som}/bench:

1. image encoding: `SamPredictor.set_image` vs `Sam::embed_image` (resize, normalise, pad,
   encoder);
2. the whole automatic mask generator (`SamAutomaticMaskGenerator.generate` vs
   `AutomaticMaskGenerator::generate`, image encoding included) on a 1280x720 photo, at the
   default settings (32x32 points, thresholds 0.88 / 0.95) and with both thresholds at 0
   (every candidate kept until NMS); the records of both sides are compared.

Random decoders give logits of about +-0.1 and IoU predictions near 0, so nothing would pass
the default filters and the generator would have nothing to do after the decoder; the
weights are shaped like trained ones instead, as in tools/fixtures/gen_sam.py: the
hypernetwork outputs scaled to logits of about 10 (x300), the IoU head's bias raised by 0.9
(a third of the masks pass the default filters), the transposed convolutions' taps equal
(no 4x4 checker pattern). The photo is fixtures/images/coffee.png cut to 16:9 and resized
to 1280x720 (a PNG, so both sides decode the same pixels).

--floor also times what no generator with the reference's records can skip: the mask
decoder's two-way transformer for 32x32 = 1024 prompts (the reference's module, in its
64-prompt batches and in groups of four as the Rust side runs it), and the seven
(4096 x 256) x (256 x 128) matrix products per prompt inside it, alone. Every record's
mask depends on the bits of its prompt's transformer output (the upscaled logits are
thresholded), and another order of the same arithmetic gives other bits, so the matrix
products are a lower bound on the decoder's time for any exact generator.

Both sides use the machine's default LibTorch thread count and alternate round by round, so
load from other processes hits both alike; the table shows the best of --reps rounds
(and each side's CPU time, less sensitive to other load). Ratio = Rust / Python.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from PIL import Image

warnings.filterwarnings("ignore")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(os.environ.get("SOM_CACHE", os.path.expanduser("~/.cache/som")), "bench")
PHOTO = os.path.join(CACHE, "photo_1280x720.png")
DEFAULTS = {
    "points_per_side": 32,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.88,
    "stability_score_thresh": 0.95,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 0.7,
    "crop_n_layers": 0,
    "crop_nms_thresh": 0.7,
    "crop_overlap_ratio": 512 / 1500,
    "crop_n_points_downscale_factor": 1,
    "min_mask_region_area": 0,
}
SETTINGS = {
    "default": DEFAULTS,
    "zero": dict(DEFAULTS, pred_iou_thresh=0.0, stability_score_thresh=0.0),
}


def reference(model):
    if model == "vit_t":
        import mobile_sam as m
    else:
        import segment_anything as m
    return m.sam_model_registry, m.SamPredictor, m.SamAutomaticMaskGenerator


def prepare(model):
    """Random weights shaped like trained ones, and the photo (both cached)."""
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(PHOTO):
        img = Image.open(os.path.join(ROOT, "fixtures", "images", "coffee.png")).convert("RGB")
        w, h = img.size
        top = (h - w * 9 // 16) // 2
        img.crop((0, top, w, top + w * 9 // 16)).resize((1280, 720), Image.BICUBIC).save(PHOTO)
    path = os.path.join(CACHE, f"sam_{model}_shaped_random.pth")
    registry, _, _ = reference(model)
    if not os.path.exists(path):
        torch.manual_seed(0)
        sam = registry[model]()
        with torch.no_grad():
            for mlp in sam.mask_decoder.output_hypernetworks_mlps:
                mlp.layers[2].weight.mul_(300.0)
            sam.mask_decoder.iou_prediction_head.layers[2].bias.add_(0.9)
            for k in (0, 3):
                w = sam.mask_decoder.output_upscaling[k].weight
                w.copy_(w[:, :, :1, :1].expand_as(w))
        torch.save(sam.state_dict(), path)
    sam = registry[model]()
    sam.load_state_dict(torch.load(path))
    sam.eval()  # after loading: TinyViT reads its attention biases through a buffer eval() fills
    return sam, path


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


def timed(f):
    t, c = time.perf_counter(), time.process_time()
    r = f()
    return r, (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3


def bench_encode(model, sam, path, image, reps):
    _, predictor_cls, _ = reference(model)
    predictor = predictor_cls(sam)
    predictor.set_image(image)  # warm-up, as the Rust side's first rep
    py, pyc, rs, rsc = [], [], [], []
    for _ in range(reps):
        _, ms, cpu = timed(lambda: predictor.set_image(image))
        py.append(ms)
        pyc.append(cpu)
        lines = [l for l in rust("encode", path, PHOTO, "2") if l["stage"] == "encode"]
        rs.append(lines[-1]["ms"])
        rsc.append(lines[-1]["cpu_ms"])
        checksum = lines[-1]["checksum"]
    rel = abs(predictor.features.double().abs().sum().item() - checksum) / checksum
    return min(py), min(rs), min(pyc), min(rsc), rel


def same_score(ours, theirs):
    """Bit-equal float32 scores; an empty mask's 0/0 is NaN upstream (any NaN bits) and null in our JSON."""
    if ours is None or np.isnan(theirs):
        return ours is None and np.isnan(theirs)
    return np.float32(ours).tobytes() == np.float32(theirs).tobytes()


def bench_amg(model, sam, path, image, setting, reps):
    _, _, generator_cls = reference(model)
    options = SETTINGS[setting]
    generator = generator_cls(sam, output_mode="coco_rle", **options)
    options_path = os.path.join(CACHE, f"amg_{setting}.json")
    records_path = os.path.join(CACHE, f"amg_{model}_{setting}_rust.json")
    with open(options_path, "w") as f:
        json.dump(options, f)
    py, pyc, rs, rsc = [], [], [], []
    for _ in range(reps):
        anns, ms, cpu = timed(lambda: generator.generate(image))
        py.append(ms)
        pyc.append(cpu)
        line = rust("amg", path, PHOTO, options_path, "1", records_path)[-1]
        rs.append(line["ms"])
        rsc.append(line["cpu_ms"])
        if line["exact_crops"] != line["crops"] or line["shared_crops"] != line["crops"]:
            print(f"  note: rust took the slow path on some crops: {line}")
    with open(records_path) as f:
        got = json.load(f)
    same = len(got) == len(anns) and all(
        g["segmentation"]["counts"] == a["segmentation"]["counts"]
        and g["bbox"] == [int(v) for v in a["bbox"]]
        and same_score(g["stability_score"], a["stability_score"])
        and g["point_coords"] == [[float(v) for v in p] for p in a["point_coords"]]
        and same_score(g["predicted_iou"], a["predicted_iou"])
        for g, a in zip(got, anns)
    )
    return min(py), min(rs), min(pyc), min(rsc), len(anns), same


def floor(model, sam, reps):
    """The decoder transformer of 1024 prompts, and its matrix products alone (best of reps)."""
    dec = sam.mask_decoder
    emb = torch.randn(1, 256, 64, 64)
    pe = sam.prompt_encoder.get_dense_pe()
    pts = torch.rand(64, 1, 2) * 1024
    labels = torch.ones(64, 1, dtype=torch.int)
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=(pts, labels), boxes=None, masks=None)

        def transformer(group):
            for i in range(0, 64, group):
                s, d = sparse[i : i + group], dense[i : i + group]
                tokens = torch.cat(
                    [torch.cat([dec.iou_token.weight, dec.mask_tokens.weight]).unsqueeze(0).expand(len(s), -1, -1), s],
                    dim=1,
                )
                dec.transformer(torch.repeat_interleave(emb, len(s), dim=0) + d, torch.repeat_interleave(pe, len(s), dim=0), tokens)

        x = torch.randn(4 * 4096, 256)
        w, b = torch.randn(128, 256), torch.randn(128)

        def products():
            for _ in range(16 * 7):
                torch.nn.functional.linear(x, w, b)

        rows = []
        for what, f in [("transformer, 64-prompt batches", lambda: transformer(64)),
                        ("transformer, groups of 4", lambda: transformer(4)),
                        ("its 7 matrix products per prompt alone", products)]:
            best = min(timed(f)[1] for _ in range(reps)) * 16  # 16 batches of 64 prompts
            rows.append((f"{model} decoder floor: {what}, 1024 prompts", best))
            print(rows[-1])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--models", default="vit_t,vit_b")
    ap.add_argument("--settings", default="default,zero")
    ap.add_argument("--skip-encode", action="store_true")
    ap.add_argument("--skip-amg", action="store_true")
    ap.add_argument("--floor", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {PHOTO}, best of {args.reps}")
    rows, floors = [], []
    for model in args.models.split(","):
        sam, path = prepare(model)
        if args.floor:
            floors += floor(model, sam, args.reps)
        image = np.array(Image.open(PHOTO).convert("RGB"))
        if not args.skip_encode:
            py, rs, pyc, rsc, rel = bench_encode(model, sam, path, image, args.reps)
            rows.append((f"{model} image encoding", py, rs, pyc, rsc, f"embedding checksum rel. diff {rel:.1e}"))
            print(rows[-1])
        if not args.skip_amg:
            for setting in args.settings.split(","):
                py, rs, pyc, rsc, n, same = bench_amg(model, sam, path, image, setting, args.reps)
                rows.append((f"{model} generator, {setting} thresholds", py, rs, pyc, rsc, f"{n} records, identical: {same}"))
                print(rows[-1])
    print()
    print("| what | python ms | rust ms | ratio | python CPU ms | rust CPU ms | CPU ratio | check |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for what, py, rs, pyc, rsc, note in rows:
        print(f"| {what} | {py:.0f} | {rs:.0f} | {rs / py:.3f} | {pyc:.0f} | {rsc:.0f} | {rsc / pyc:.3f} | {note} |")
    if floors:
        print()
        print("| what (reference LibTorch, python) | ms |")
        print("|---|---:|")
        for what, ms in floors:
            print(f"| {what} | {ms:.0f} |")


if __name__ == "__main__":
    main()
