"""Offline data: scikit-image's bundled photographs (disjoint train/test) and a self-similarity benchmark.

DIV2K and the benchmark sets cannot be downloaded on the project's machines; these images (all load
without network) are the default data of the ``quick`` and ``cpu`` profiles. ``cat`` is not used: it is
the same photograph as ``chelsea``.

The procedural benchmark (:func:`self_similar_image`) has *known* repeats, which non-local attention
(ENLCA) is meant to exploit: a few random motifs, each pasted several times at sub-pixel offsets with
mild brightness/contrast changes, on a smooth background. :class:`RepeatMap` says which pixels are the
same point of the same motif.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .resize import bicubic_downscale

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


@dataclass(frozen=True)
class Copy:
    """One pasted motif: ``motif`` id and the continuous HR position (row, col) of its top-left pixel."""

    motif: int
    top: float
    left: float


@dataclass(frozen=True)
class RepeatMap:
    """Where the motif copies of a :func:`self_similar_image` are, and which pixels repeat each other.

    Copy ``c`` of motif ``m`` covers HR pixel centres ``top + r``, ``left + q`` for motif coordinates
    ``0 <= r, q <= motif_size - 1``.
    """

    shape: tuple[int, int]  # HR H, W
    motif_size: int  # HR side of every motif
    copies: tuple[Copy, ...]

    def labels(self, scale: int = 1) -> np.ndarray:
        """``(H//scale)×(W//scale)`` int64 labels at LR resolution; equal labels = true repeats, −1 = none.

        LR pixel ``(i, j)`` is the average of HR pixels ``[s·i, s·i+s) × [s·j, s·j+s)``, whose centre is
        at HR ``c = s·i + (s−1)/2``. Inside copy ``(m, top, left)`` its motif coordinate is
        ``r = c − top``; it is labelled only if its whole footprint lies in the copy
        (``(s−1)/2 <= r <= motif_size − 1 − (s−1)/2``, same for columns), with
        ``label = m·P + round(r/s)·Q + round(q/s)``, ``Q = ceil(motif_size/s) + 1``, ``P = Q²``. So two LR
        pixels share a label iff they sample the same motif within half an LR pixel of the same point.
        """
        s = int(scale)
        if s < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        h, w = self.shape[0] // s, self.shape[1] // s
        q_side = -(-self.motif_size // s) + 1
        out = np.full((h, w), -1, dtype=np.int64)
        half, last = (s - 1) / 2, self.motif_size - 1 - (s - 1) / 2
        centres_y = s * np.arange(h) + half  # HR coordinate of each LR pixel centre
        centres_x = s * np.arange(w) + half
        for c in self.copies:
            r, q = centres_y - c.top, centres_x - c.left  # motif coordinates, [h], [w]
            rows, cols = np.flatnonzero((r >= half) & (r <= last)), np.flatnonzero((q >= half) & (q <= last))
            ry, qx = np.round(r[rows] / s).astype(np.int64), np.round(q[cols] / s).astype(np.int64)
            out[np.ix_(rows, cols)] = c.motif * q_side**2 + ry[:, None] * q_side + qx[None, :]
        return out


def _motif(rng: np.random.Generator, n: int) -> np.ndarray:
    """An ``n×n×3`` float motif in [0, 1]: smooth colour field + a sharp-edged shape + a line pattern."""
    smooth = ndimage.gaussian_filter(rng.random((n, n, 3)), sigma=(n / 6, n / 6, 0))
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)
    yy, xx = np.mgrid[0:n, 0:n] / n
    cy, cx, radius = *rng.uniform(0.25, 0.75, 2), rng.uniform(0.15, 0.35)
    disk = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2)[..., None]
    theta, freq = rng.uniform(0, np.pi), rng.uniform(2.5, 5.0)
    stripes = (np.sin(2 * np.pi * freq * (yy * np.cos(theta) + xx * np.sin(theta))) > 0)[..., None]
    colours = rng.random((2, 3))
    img = 0.5 * smooth + 0.5 * np.where(disk, colours[0], 0.3 * smooth)
    return np.clip(np.where(stripes & ~disk, 0.6 * img + 0.4 * colours[1], img), 0, 1)


def _place(rng: np.random.Generator, shape: tuple[int, int], n: int, count: int) -> list[tuple[float, float]]:
    """``count`` non-overlapping top-left corners: distinct random grid cells, random sub-pixel offsets."""
    cell = n + 3  # motif + a margin for the sub-pixel shift and a 1-px gap
    gh, gw = shape[0] // cell, shape[1] // cell
    if gh * gw < count:
        raise ValueError(f"{count} copies of a {n}px motif do not fit in {shape[0]}×{shape[1]}")
    cells = rng.choice(gh * gw, size=count, replace=False)
    oy, ox = rng.integers(0, shape[0] - gh * cell + 1), rng.integers(0, shape[1] - gw * cell + 1)
    # the pasted region [top−1, top+n+2) of a corner at cell start + 1 + [0, 1) stays inside its cell
    return [
        (oy + (k // gw) * cell + 1 + rng.random(), ox + (k % gw) * cell + 1 + rng.random()) for k in cells
    ]


def self_similar_image(
    size: int | tuple[int, int],
    seed: int | Sequence[int],
    motifs: int = 3,
    repeats: int = 4,
    motif_size: int | None = None,
    jitter: float = 0.1,
) -> tuple[np.ndarray, RepeatMap]:
    """A uint8 ``H×W×3`` image of ``motifs`` random motifs, each pasted ``repeats`` times, and its map.

    Each copy is shifted by a fractional offset (cubic spline ``ndimage.shift`` of the motif, bilinear
    shift of its opacity mask, alpha-composited), then its contrast and brightness are jittered by up to
    ``±jitter`` and ``±jitter/2``. Deterministic given ``seed``.
    """
    h, w = (size, size) if isinstance(size, int) else size
    n = motif_size or max(8, min(h, w) // 6)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0.2, 0.8, (3, 3))  # background: a smooth colour gradient + faint noise
    canvas = base[0] + yy[..., None] * (base[1] - 0.5) + xx[..., None] * (base[2] - 0.5)
    canvas = np.clip(canvas + 0.02 * rng.standard_normal((h, w, 3)), 0, 1)
    shapes = [_motif(rng, n) for _ in range(motifs)]
    ids = np.repeat(np.arange(motifs), repeats)
    copies = []
    for m, (top, left) in zip(ids, _place(rng, (h, w), n, len(ids)), strict=True):
        y0, x0 = int(np.floor(top)), int(np.floor(left))
        fy, fx = top - y0, left - x0
        pad = np.pad(shapes[m], ((1, 2), (1, 2), (0, 0)), mode="edge")  # (n+3)×(n+3)×3
        alpha = np.pad(np.ones((n, n)), ((1, 2), (1, 2)))
        moved = ndimage.shift(pad, (fy, fx, 0), order=3, mode="nearest")
        alpha = np.clip(ndimage.shift(alpha, (fy, fx), order=1), 0, 1)[..., None]
        contrast, bright = 1 + rng.uniform(-jitter, jitter), rng.uniform(-jitter / 2, jitter / 2)
        moved = np.clip((moved - 0.5) * contrast + 0.5 + bright, 0, 1)
        region = canvas[y0 - 1 : y0 + n + 2, x0 - 1 : x0 + n + 2]
        region[:] = region * (1 - alpha) + moved * alpha
        copies.append(Copy(int(m), float(top), float(left)))
    image = np.round(canvas * 255).astype(np.uint8)
    return image, RepeatMap((h, w), n, tuple(copies))


class SelfSimilarSet:
    """``n_images`` procedural HR images (``(name, hr)``); image ``i`` uses the seed ``[seed, i]``."""

    def __init__(self, n_images: int, size: int | tuple[int, int] = 96, seed: int = 0, **kwargs) -> None:
        self.n_images, self.size, self.seed, self.kwargs = n_images, size, seed, kwargs

    def __len__(self) -> int:
        return self.n_images

    def item(self, i: int) -> tuple[np.ndarray, RepeatMap]:
        if not 0 <= i < self.n_images:
            raise IndexError(i)
        return self_similar_image(self.size, [self.seed, i], **self.kwargs)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        return f"selfsim{i:03d}", self.item(i)[0]

    def pairs(self, scale: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, lr, hr)`` with modcropped HR and MATLAB-bicubic LR, for evaluation."""
        out = []
        for name, hr in (self[i] for i in range(len(self))):
            hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
            out.append((name, bicubic_downscale(hr, scale), hr))
        return out
