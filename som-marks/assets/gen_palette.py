#!/usr/bin/env python3
"""Generate the mark palette in som-marks/src/render/palette.rs.

Greedy max-min (farthest point) selection in CIEDE2000 over an sRGB grid:
candidates are the sRGB colours on a 15-step grid whose CIELAB lightness is in
[50, 82] and chroma is at least 40 (vivid enough to read as a tint at alpha 0.4,
light or dark enough to carry black or white label text). The first colour is
the candidate nearest to a strong red; each next one is the candidate farthest
(in CIEDE2000) from every colour already chosen. Ties go to the first candidate
in grid order, so the output is deterministic.

Run with the reference venv: /root/.cache/som/refvenv/bin/python gen_palette.py [N]
"""
import sys

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

N = int(sys.argv[1]) if len(sys.argv) > 1 else 64
levels = np.arange(0, 256, 15)
grid = np.array(np.meshgrid(levels, levels, levels, indexing="ij")).reshape(3, -1).T
lab = rgb2lab((grid / 255.0).reshape(-1, 1, 3)).reshape(-1, 3)
chroma = np.hypot(lab[:, 1], lab[:, 2])
keep = (lab[:, 0] >= 50) & (lab[:, 0] <= 82) & (chroma >= 40)
cand, cand_lab = grid[keep], lab[keep]
first = int(np.argmin(np.abs(cand - np.array([230, 25, 45])).sum(1)))
chosen = [first]
dmin = deltaE_ciede2000(cand_lab, np.broadcast_to(cand_lab[first], cand_lab.shape))
sep = float("inf")
for _ in range(N - 1):
    nxt = int(np.argmax(dmin))
    sep = min(sep, float(dmin[nxt]))
    chosen.append(nxt)
    dmin = np.minimum(dmin, deltaE_ciede2000(cand_lab, np.broadcast_to(cand_lab[nxt], cand_lab.shape)))
print(f"// {N} colours, smallest pairwise CIEDE2000: {sep:.2f}")
for i in chosen:
    r, g, b = (int(v) for v in cand[i])
    print(f"    [{r}, {g}, {b}],")
