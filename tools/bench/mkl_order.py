#!/usr/bin/env python3
"""Which summation order LibTorch's float32 linear layer (MKL's sgemm) uses on this CPU.

    ~/.cache/som/refvenv/bin/python tools/bench/mkl_order.py [ROWS IN OUT ...]

`som_segment::torch::gemm::PackedLinear` reproduces LibTorch's linear layer bit for bit by
summing each output as MKL does: per block of `block` inputs a chain of fused multiply-adds
in order from zero, then the bias plus the first block's sum, plus each next block's. The
block is MKL's choice per CPU (128 on an AMD Zen 4 with MKL's AVX2 code, 256 on an Intel
Xeon with its AVX-512 code), and the kernel only runs with a block from `gemm::BLOCKS` that
a probe finds identical to LibTorch's. Where `gemm.rs`'s test packed_layers_give_libtorchs_bits
fails on a new CPU, run this there: it emulates each candidate order in float64 (exact
products, one rounding to float32 per step, as a fused multiply-add) and prints the blocks
that give `torch.nn.functional.linear`'s values on the SAM decoder's shapes (default) or the
shapes given; a block that matches everywhere belongs in `BLOCKS`.

Uses the reference venv's torch (tools/fixtures/README.md), which bundles the same MKL as
the LibTorch the tests run on.
"""

import sys

import numpy as np
import torch

ROWS = 384  # outputs compared per shape: rows of the first tile rows, every column


def emulate(x, w, b, block):
    """The outputs for `block`-input chains (float64 products, float32 rounding per step)."""
    f32 = lambda a: a.astype(np.float32).astype(np.float64)
    total = None
    for k0 in range(0, x.shape[1], block):
        acc = np.zeros((x.shape[0], w.shape[0]))
        for k in range(k0, min(x.shape[1], k0 + block)):
            acc = f32(acc + np.outer(x[:, k], w[:, k]))
        total = f32(b + acc) if total is None else f32(total + acc)
    return total.astype(np.float32)


def main():
    args = [int(a) for a in sys.argv[1:]]
    shapes = [tuple(args[i : i + 3]) for i in range(0, len(args), 3)] or [
        (16384, 256, 128),
        (16384, 256, 256),
        (16384, 128, 256),
        (20480, 256, 128),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(7)
    for m, k, n in shapes:
        x, w, b = torch.randn(m, k), torch.randn(n, k) * 0.06, torch.randn(n) * 0.1
        want = torch.nn.functional.linear(x, w, b)[:ROWS].numpy()
        xs, ws, bs = (t.numpy().astype(np.float64) for t in (x[:ROWS], w, b))
        blocks = [blk for blk in (16, 32, 64, 96, 128, 192, 256, 384, 512, 768) if blk <= k]
        found = [blk for blk in blocks if (emulate(xs, ws, bs, blk) == want).all()]
        print(f"({m}, {k}) x ({k}, {n}): matching blocks {found or 'none (another order)'}")


if __name__ == "__main__":
    main()
