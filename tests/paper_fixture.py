"""A tiny dataset in exactly the layout `enlcn data fetch` writes (DIV2K + the five benchmarks).

As small as the paper profile's code paths allow, since every image the smoke scores or validates on
goes through the 41 M-parameter model: training images keep an LR side above the smoke's 16² training
patch (``ENLCN_SMOKE_STEPS``: random crops, not one fixed crop); validation and benchmark images are
32×40 HR (8×10 LR at ×4, non-square like the real benchmarks): what PSNR and SSIM need after the
``scale``-pixel border crop (:func:`enlcn.evaluate.check_scorable`), a ninth of the pixels of 96² images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enlcn.data import bicubic_downscale
from enlcn.data.datasets import BENCHMARKS
from enlcn.data.images import save_rgb
from enlcn.data.synthetic import skimage_image

#: HR (height, width) of the training images and of the images that are only scored
TRAIN_HR, SCORED_HR = (96, 96), (32, 40)


def _crops(n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = [skimage_image(name) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        y, x = rng.integers(0, img.shape[0] - size[0]), rng.integers(0, img.shape[1] - size[1])
        out.append(np.ascontiguousarray(img[y : y + size[0], x : x + size[1]]))
    return out


def make_paper_data(root: Path, scales: tuple[int, ...] = (2, 4)) -> Path:
    """``root/DIV2K/DIV2K_{train,valid}_HR`` (+ ``_LR_bicubic/X<s>``) and ``root/benchmark/<set>/{HR,
    LR_bicubic/X<s>}`` with a few images each (:data:`TRAIN_HR`, :data:`SCORED_HR`), LR by MATLAB
    bicubic, EDSR's names."""
    sets = {("DIV2K", "train"): 4, ("DIV2K", "valid"): 2, **{("benchmark", b): 2 for b in BENCHMARKS}}
    for seed, ((kind, name), count) in enumerate(sets.items()):
        if kind == "DIV2K":
            hr_dir, lr_base = root / "DIV2K" / f"DIV2K_{name}_HR", root / "DIV2K" / f"DIV2K_{name}_LR_bicubic"
        else:
            hr_dir, lr_base = root / "benchmark" / name / "HR", root / "benchmark" / name / "LR_bicubic"
        size = TRAIN_HR if name == "train" else SCORED_HR
        for i, hr in enumerate(_crops(count, size, seed)):
            stem = f"{i + 1:04d}"
            save_rgb(hr_dir / f"{stem}.png", hr)
            for s in scales:
                save_rgb(lr_base / f"X{s}" / f"{stem}x{s}.png", bicubic_downscale(hr, s))
    return root
