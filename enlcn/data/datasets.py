"""Paired LR/HR image folders: any HR folder, EDSR's ``benchmark/<set>`` and DIV2K layouts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .images import ImageError, image_files, load_rgb
from .resize import bicubic_downscale, modcrop

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


class PairedImages:
    """``(name, lr, hr)`` uint8 triples from an HR folder, with LR from ``lr_dir`` or made by MATLAB bicubic.

    EDSR's LR naming (``<name>x<s>.png``) is used when ``lr_dir`` is given; HR images are modcropped.
    """

    def __init__(
        self, hr_dir: str | os.PathLike, scale: int, lr_dir: str | os.PathLike | None = None
    ) -> None:
        self.hr_files = image_files(hr_dir)
        self.scale, self.lr_dir = scale, Path(lr_dir) if lr_dir is not None else None

    def __len__(self) -> int:
        return len(self.hr_files)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, np.ndarray]:
        path = self.hr_files[i]
        hr = modcrop(load_rgb(path), self.scale)
        if self.lr_dir is None:
            return path.stem, bicubic_downscale(hr, self.scale), hr
        lr_path = self.lr_dir / f"{path.stem}x{self.scale}{path.suffix}"
        lr = load_rgb(lr_path)
        if lr.shape[0] * self.scale != hr.shape[0] or lr.shape[1] * self.scale != hr.shape[1]:
            raise ImageError(f"{lr_path}: LR size {lr.shape[:2]} is not HR {hr.shape[:2]} / {self.scale}")
        return path.stem, lr, hr

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        return (self[i] for i in range(len(self)))


def benchmark_dataset(root: str | os.PathLike, name: str, scale: int) -> PairedImages:
    """EDSR's layout ``root/benchmark/<name>/{HR, LR_bicubic/X<s>}`` (the official ``--dir_data``)."""
    base = Path(root) / "benchmark" / name
    lr_dir = base / "LR_bicubic" / f"X{scale}"
    return PairedImages(base / "HR", scale, lr_dir if lr_dir.is_dir() else None)


def div2k(root: str | os.PathLike, split: str, scale: int) -> PairedImages:
    """DIV2K: ``root/DIV2K/DIV2K_{train,valid}_HR`` with ``DIV2K_{split}_LR_bicubic/X<s>`` when present."""
    base = Path(root) / "DIV2K"
    lr_dir = base / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
    return PairedImages(base / f"DIV2K_{split}_HR", scale, lr_dir if lr_dir.is_dir() else None)
