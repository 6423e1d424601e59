"""Offline data: photographs bundled with scikit-image, split into disjoint train and test sets.

DIV2K and the benchmark sets cannot be downloaded on the project's machines; these images (all load
without network) are the default data of the ``quick`` and ``cpu`` profiles. ``cat`` is not used: it is
the same photograph as ``chelsea``.
"""

from __future__ import annotations

import numpy as np

SKIMAGE_TRAIN = (
    "astronaut",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "moon",
    "brick",
    "grass",
    "gravel",
)
SKIMAGE_TEST = ("chelsea", "coins", "clock", "page", "text")


def skimage_image(name: str) -> np.ndarray:
    """One bundled photograph as ``H×W×3`` uint8 (grey copied to three channels)."""
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name} is {img.dtype}, not a uint8 photograph")
    return np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]


def skimage_images(split: str) -> list[tuple[str, np.ndarray]]:
    """``(name, image)`` of the ``train`` or ``test`` split (never overlapping)."""
    names = {"train": SKIMAGE_TRAIN, "test": SKIMAGE_TEST}.get(split)
    if names is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return [(n, skimage_image(n)) for n in names]
