"""Paired LR/HR image folders (EDSR benchmark and DIV2K layouts) and EDSR-style training patches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .images import ImageError, image_files, load_rgb, to_tensor
from .resize import bicubic_downscale, modcrop

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


class PairedImages(Dataset):
    """``(name, lr, hr)`` uint8 triples from an HR folder, with LR from ``lr_dir`` or made by MATLAB bicubic.

    EDSR's LR naming (``<name>x<s>.png``) is used when ``lr_dir`` is given; HR images are modcropped.
    An empty or missing ``hr_dir`` raises FileNotFoundError naming it; a missing/unreadable LR file or
    an LR size that is not HR/scale raises :class:`~enlcn.data.images.ImageError` naming the LR file.
    LR images made here are cached in memory (they are deterministic), HR images are read each time.
    """

    def __init__(
        self, hr_dir: str | os.PathLike, scale: int, lr_dir: str | os.PathLike | None = None
    ) -> None:
        self.hr_files = image_files(hr_dir)
        self.scale, self.lr_dir = scale, Path(lr_dir) if lr_dir is not None else None
        self._lr_cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.hr_files)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, np.ndarray]:
        path = self.hr_files[i]
        hr = load_rgb(path)
        if min(hr.shape[:2]) < self.scale:
            size = f"{hr.shape[0]}×{hr.shape[1]}"
            raise ImageError(f"{path}: {size} pixels, smaller than the scale {self.scale}")
        hr = modcrop(hr, self.scale)
        if self.lr_dir is None:
            if i not in self._lr_cache:
                self._lr_cache[i] = bicubic_downscale(hr, self.scale)
            return path.stem, self._lr_cache[i], hr
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


def _as_pair(item: tuple) -> tuple[str, np.ndarray, np.ndarray]:
    """``(name, lr, hr)`` from a ``(name, lr, hr)`` or ``(lr, hr)`` item."""
    return item if len(item) == 3 else ("", *item)


def _hr_only(item: object) -> tuple[str, np.ndarray] | None:
    """``(name, hr)`` if ``item`` is an HR array or a ``(name, hr)`` pair, else None (an LR/HR pair)."""
    if isinstance(item, np.ndarray):
        return "", item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return item
    return None


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of the 8 dihedral transforms of an ``H×W×C`` image: ``k % 4`` quarter turns, then a
    horizontal flip when ``k >= 4`` (EDSR's hflip/vflip/rot90 augmentation)."""
    out = np.rot90(img, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def random_patch(
    lr: np.ndarray, hr: np.ndarray, scale: int, patch: int, rng: np.random.Generator, augment: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``patch``² LR crop, the aligned ``(scale·patch)``² HR crop, and (with ``augment``) one of
    the 8 dihedral transforms applied to both; draws from ``rng`` only."""
    s, p = scale, patch
    y, x = int(rng.integers(lr.shape[0] - p + 1)), int(rng.integers(lr.shape[1] - p + 1))
    lr_patch = lr[y : y + p, x : x + p]  # p×p×3
    hr_patch = hr[s * y : s * (y + p), s * x : s * (x + p)]  # sp×sp×3
    if augment:
        k = int(rng.integers(8))
        lr_patch, hr_patch = dihedral(lr_patch, k), dihedral(hr_patch, k)
    return lr_patch, hr_patch


def hwc_to_chw(img: np.ndarray) -> torch.Tensor:
    """``H×W×3`` uint8 → ``3×H×W`` float32 in [0, 1] (``rgb_range`` 1)."""
    return to_tensor(img[None])[0]


class TrainPatches(Dataset):
    """EDSR-style training samples: a random ``patch``² LR crop, the aligned ``(scale·patch)``² HR crop
    and one of the 8 dihedral transforms, as ``3×p×p`` / ``3×sp×sp`` float tensors in [0, 1].

    ``images`` holds uint8 HR arrays or ``(name, hr)`` pairs (HR modcropped, LR made once here by
    :func:`~enlcn.data.resize.bicubic_downscale`), or ``(name, lr, hr)`` / ``(lr, hr)`` items
    (e.g. :class:`PairedImages`, read lazily). One epoch is ``repeat`` passes over the images (EDSR's
    ``test_every·batch_size / n_images``). Item ``i`` of epoch ``e`` draws from
    ``numpy.random.default_rng([seed, e, i])``, so samples do not depend on worker count or order; call
    :meth:`set_epoch` before each epoch (with non-persistent workers). An image smaller than the patch is
    an error naming it and both sizes (at construction for in-memory HR images, else when drawn).
    """

    def __init__(
        self,
        images: Sequence,
        scale: int,
        patch: int,
        repeat: int = 1,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        if len(images) == 0:
            raise ValueError("TrainPatches: no training images")
        if scale < 1 or patch < 1 or repeat < 1:
            raise ValueError(f"scale, patch and repeat must be positive, got {scale}, {patch}, {repeat}")
        self.scale, self.patch = scale, patch
        self.seed, self.repeat, self.augment, self.epoch = seed, repeat, augment, 0
        hr_only = [_hr_only(item) for item in images] if isinstance(images, list | tuple) else [None]
        if all(h is not None for h in hr_only):  # in-memory HR images: make the LR now, check sizes now
            self.pairs: Sequence = []
            for j, (name, hr) in enumerate(hr_only):
                hr = modcrop(hr, scale)
                lr_size = (hr.shape[0] // scale, hr.shape[1] // scale)
                self._check(name or f"training image {j}", hr.shape[:2], lr_size)
                self.pairs.append((name, bicubic_downscale(hr, scale), hr))
        elif any(h is not None for h in hr_only):
            raise ValueError("TrainPatches: give either HR images or (lr, hr) pairs, not a mix")
        else:
            self.pairs = images

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def _check(self, label: str, hr_size: tuple[int, ...], lr_size: tuple[int, ...]) -> None:
        s, p = self.scale, self.patch
        if lr_size[0] < p or lr_size[1] < p:
            raise ValueError(
                f"{label}: LR size {tuple(lr_size)} (HR {tuple(hr_size)}) is smaller than the patch {p}×{p}"
            )
        if hr_size[0] < lr_size[0] * s or hr_size[1] < lr_size[1] * s:
            raise ValueError(f"{label}: HR size {tuple(hr_size)} is not LR {tuple(lr_size)} × {s}")

    def _image(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        name, lr, hr = _as_pair(self.pairs[j])
        files = getattr(self.pairs, "hr_files", None)
        label = str(files[j]) if files is not None else (name or f"training image {j}")
        self._check(label, hr.shape[:2], lr.shape[:2])
        return lr, hr

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        lr, hr = self._image(i % len(self.pairs))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        lr_patch, hr_patch = random_patch(lr, hr, self.scale, self.patch, rng, self.augment)
        return hwc_to_chw(lr_patch), hwc_to_chw(hr_patch)


def make_loader(
    dataset: Dataset, batch_size: int, seed: int, workers: int = 0, shuffle: bool = True
) -> DataLoader:
    """A DataLoader whose order comes from a generator seeded with ``seed`` (full batches only, as EDSR).

    Sample content is fixed per item by :class:`TrainPatches`, so the batches are the same for any
    ``workers``; the shuffle order of the n-th iteration over the loader is fixed by ``seed`` and n.
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        drop_last=True,
        persistent_workers=False,
    )
