"""A tiny dataset in exactly the layout `enlcn data fetch` writes (DIV2K + the five benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enlcn.data import bicubic_downscale
from enlcn.data.datasets import BENCHMARKS
from enlcn.data.images import save_rgb
from enlcn.data.synthetic import skimage_image


def _crops(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = [skimage_image(name) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        out.append(np.ascontiguousarray(img[y : y + size, x : x + size]))
    return out


def make_paper_data(root: Path, scales: tuple[int, ...] = (2, 4), hr_size: int = 96) -> Path:
    """``root/DIV2K/DIV2K_{train,valid}_HR`` (+ ``_LR_bicubic/X<s>``) and ``root/benchmark/<set>/{HR,
    LR_bicubic/X<s>}`` with a few ``hr_size``² images each, LR by MATLAB bicubic, EDSR's names."""
    sets = {("DIV2K", "train"): 4, ("DIV2K", "valid"): 2, **{("benchmark", b): 2 for b in BENCHMARKS}}
    for seed, ((kind, name), count) in enumerate(sets.items()):
        if kind == "DIV2K":
            hr_dir, lr_base = root / "DIV2K" / f"DIV2K_{name}_HR", root / "DIV2K" / f"DIV2K_{name}_LR_bicubic"
        else:
            hr_dir, lr_base = root / "benchmark" / name / "HR", root / "benchmark" / name / "LR_bicubic"
        for i, hr in enumerate(_crops(count, hr_size, seed)):
            stem = f"{i + 1:04d}"
            save_rgb(hr_dir / f"{stem}.png", hr)
            for s in scales:
                save_rgb(lr_base / f"X{s}" / f"{stem}x{s}.png", bicubic_downscale(hr, s))
    return root
