"""Offline data: scikit-image's bundled photographs (disjoint train/test) and a self-similarity benchmark.

DIV2K and the benchmark sets cannot be downloaded on the project's machines; the photographs below all
load without network (checked with scikit-image 0.26: ``eagle``, ``kidney``, ``lily`` and ``skin``
need a download and are not used; ``cat`` is the same photograph as ``chelsea``; ``logo`` is RGBA and
``horse`` boolean). They are the default data of the ``quick`` and ``cpu`` profiles.

The procedural benchmark (:func:`self_similar_image`) has *known* repeats, the situation non-local
attention (NLSN, ENLCA) exists for: a few motifs, each pasted several times at HR positions whose offset
modulo ``scale`` (the LR sampling phase) differs between copies. After bicubic downscaling each LR copy
sees the motif through a different phase, so the copies carry complementary sub-pixel detail, and a
model can only recover it by attending to the other copies. ``labels`` says which LR pixels are the
same point of the same motif; :func:`true_repeats` turns one query position into its ground-truth mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .resize import bicubic_downscale, modcrop

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


# -- self-similar procedural images ------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """One pasted copy: ``motif`` id and the HR row/column of its top-left pixel.

    ``top = scale·lr_top + phase_y`` with ``0 <= phase_y < scale`` (same for columns): the copy's labels
    start at LR ``(lr_top, lr_left)`` and its LR sampling phase is ``(phase_y, phase_x)``.
    """

    motif: int
    top: int
    left: int
    scale: int

    @property
    def lr_top(self) -> int:
        return self.top // self.scale

    @property
    def lr_left(self) -> int:
        return self.left // self.scale

    @property
    def phase(self) -> tuple[int, int]:
        return self.top % self.scale, self.left % self.scale


@dataclass(frozen=True)
class SelfSimilar:
    """A procedural HR image and its LR-resolution repeat labels.

    ``labels[i, j]`` (int32, ``(H//scale)×(W//scale)``) is ``m·q² + dy·q + dx`` for the LR position at
    relative offset ``(dy, dx)`` inside a copy of motif ``m`` (``q = motif_size // scale``), −1 on the
    background: equal labels ⇔ the same point of the same motif, to within one LR pixel.
    """

    image: np.ndarray  # H×W×3 uint8 (HR)
    labels: np.ndarray  # (H//s)×(W//s) int32
    scale: int
    motif_size: int  # HR side of every motif (a multiple of scale)
    placements: tuple[Placement, ...]

    def motif_mask(self) -> np.ndarray:
        """Boolean ``H×W`` mask of the HR pixels covered by motif copies (the rest is smooth background)."""
        mask = np.zeros(self.image.shape[:2], dtype=bool)
        n = self.motif_size
        for p in self.placements:
            mask[p.top : p.top + n, p.left : p.left + n] = True
        return mask


def true_repeats(labels: np.ndarray, index: int | tuple[int, int]) -> np.ndarray:
    """Boolean mask (shape of ``labels``) of the positions sharing the label of ``index``, itself excluded.

    ``index`` is a flat (row-major) position or a ``(row, col)`` pair; a background position (label −1)
    has no repeats (all False).
    """
    flat = labels.reshape(-1)
    i = int(np.ravel_multi_index(index, labels.shape)) if isinstance(index, tuple) else int(index)
    if not 0 <= i < flat.size:
        raise IndexError(f"position {index} is outside labels of shape {labels.shape}")
    mask = (flat == flat[i]) & (flat[i] >= 0)
    mask[i] = False
    return mask.reshape(labels.shape)


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random RGB colours in [0, 1] of clearly different brightness (sharp, visible edges)."""
    a = rng.uniform(0.0, 1.0, 3)
    b = np.clip(1.0 - a + rng.uniform(-0.15, 0.15, 3), 0, 1)
    return a, b


def _motif(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """An ``n×n×3`` float motif in [0, 1] with sharp (unantialiased) edges: stripes, checks or blobs,
    plus one disk of a third colour so that the motif is not periodic inside itself."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    a, b = _colours(rng)
    if kind == "stripes":
        theta, period = rng.uniform(0, np.pi), rng.uniform(2.5, 6.0)
        mask = ((yy * np.cos(theta) + xx * np.sin(theta)) / period + rng.random()) % 1.0 < 0.5
    elif kind == "checks":
        cy, cx = rng.integers(2, 6, size=2)
        mask = ((yy // cy + xx // cx) % 2).astype(bool)
    elif kind == "blobs":
        mask = np.zeros((n, n), bool)
        for _ in range(int(rng.integers(3, 7))):
            y0, x0, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(1.5, max(2.0, n / 4))
            mask |= (yy - y0) ** 2 + (xx - x0) ** 2 < r**2
    else:
        raise ValueError(f"unknown motif kind {kind!r}")
    img = np.where(mask[..., None], a, b)  # n×n×3
    y0, x0, r = rng.uniform(0.2 * n, 0.8 * n), rng.uniform(0.2 * n, 0.8 * n), rng.uniform(0.1 * n, 0.25 * n)
    disk = (yy - y0) ** 2 + (xx - x0) ** 2 < r**2
    return np.where(disk[..., None], rng.uniform(0, 1, 3), img)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth ``h×w×3`` colour field in [0.15, 0.85]: a linear gradient plus heavily blurred noise."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0.3, 0.7, 3) + (yy[..., None] * rng.uniform(-0.3, 0.3, 3))
    base = base + xx[..., None] * rng.uniform(-0.3, 0.3, 3)
    blur = ndimage.gaussian_filter(rng.standard_normal((h, w, 3)), sigma=(max(h, w) / 10,) * 2 + (0,))
    blur *= 0.1 / (np.abs(blur).max() + 1e-12)
    return np.clip(base + blur, 0.15, 0.85)


def self_similar_image(
    size: int | tuple[int, int],
    seed: int | Sequence[int],
    motifs: int = 3,
    copies: int = 6,
    motif_size: int = 16,
    scale: int = 4,
    jitter: float = 0.1,
    max_tries: int = 2000,
) -> SelfSimilar:
    """``motifs`` random motifs, each pasted ``copies`` times, on a smooth background; deterministic.

    Motifs are ``motif_size``² HR patches of random colours with sharp edges (stripes, checks, blobs in
    turn, starting at a random kind). Each copy lies at HR ``scale·(lr_top, lr_left) + phase``; the
    copies of one motif take the phases of a random permutation of the ``scale²`` possible ``(py, px)``
    in turn, so they sample the motif at different LR phases (all of them once ``copies >= scale²``).
    Copies never overlap and keep at least one whole LR pixel of background between them (placement
    is retried up to ``max_tries`` times per copy, then ValueError). Each copy gets a contrast factor in
    ``1 ± jitter`` and a brightness offset in ``±jitter/2`` (about its mid-grey), as real repeats differ.
    """
    h, w = (size, size) if isinstance(size, int) else size
    s, n = int(scale), int(motif_size)
    if s < 1 or n < s or n % s:
        raise ValueError(f"motif_size ({motif_size}) must be a positive multiple of scale ({scale})")
    q = n // s  # motif side in LR pixels
    hl, wl = h // s, w // s
    if hl < q + 1 or wl < q + 1:
        raise ValueError(f"a {n}px motif does not fit in {h}×{w} at scale {s}")
    rng = np.random.default_rng(seed)
    canvas = _background(rng, h, w)  # h×w×3
    start = int(rng.integers(3))
    kinds = ("stripes", "checks", "blobs")
    shapes = [_motif(rng, n, kinds[(start + j) % 3]) for j in range(motifs)]
    phases = [rng.permutation(s * s) for _ in range(motifs)]
    labels = np.full((hl, wl), -1, dtype=np.int32)
    taken = np.zeros((hl, wl), dtype=bool)  # LR cells covered by a copy or its 1-px gap
    offsets = np.arange(q)[:, None] * q + np.arange(q)[None, :]  # q×q: dy·q + dx
    placements = []
    for k in range(copies):
        for j in range(motifs):
            for _ in range(max_tries):
                ty, tx = int(rng.integers(0, hl - q)), int(rng.integers(0, wl - q))
                if not taken[ty : ty + q + 1, tx : tx + q + 1].any():  # the copy spans q or q+1 LR cells
                    break
            else:
                raise ValueError(
                    f"{motifs}×{copies} copies of a {n}px motif do not fit in {h}×{w} at scale {s}"
                )
            taken[max(ty - 1, 0) : ty + q + 2, max(tx - 1, 0) : tx + q + 2] = True
            py, px = divmod(int(phases[j][k % (s * s)]), s)
            top, left = s * ty + py, s * tx + px
            contrast, bright = 1 + rng.uniform(-jitter, jitter), rng.uniform(-jitter / 2, jitter / 2)
            canvas[top : top + n, left : left + n] = np.clip(
                (shapes[j] - 0.5) * contrast + 0.5 + bright, 0, 1
            )
            labels[ty : ty + q, tx : tx + q] = j * q * q + offsets
            placements.append(Placement(j, top, left, s))
    image = np.round(canvas * 255).astype(np.uint8)
    return SelfSimilar(image, labels, s, n, tuple(placements))


class SelfSimilarSet:
    """``n_images`` procedural HR images (``(name, hr)``); image ``i`` uses the seed ``[seed, i]``."""

    def __init__(
        self, n_images: int, size: int | tuple[int, int] = 192, seed: int = 0, scale: int = 4, **kwargs
    ) -> None:
        self.n_images, self.size, self.seed, self.scale, self.kwargs = n_images, size, seed, scale, kwargs

    def __len__(self) -> int:
        return self.n_images

    def item(self, i: int) -> SelfSimilar:
        if not 0 <= i < self.n_images:
            raise IndexError(i)
        return self_similar_image(self.size, [self.seed, i], scale=self.scale, **self.kwargs)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        return f"selfsim{i:03d}", self.item(i).image

    def motif_masks(self) -> dict[str, np.ndarray]:
        """Image name → :meth:`SelfSimilar.motif_mask`, modcropped like :meth:`pairs`' HR images."""
        return {f"selfsim{i:03d}": modcrop(self.item(i).motif_mask(), self.scale) for i in range(len(self))}

    def pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, lr, hr)`` with modcropped HR and MATLAB-bicubic LR at the set's scale, for evaluation."""
        out = []
        for name, hr in (self[i] for i in range(len(self))):
            hr = modcrop(hr, self.scale)
            out.append((name, bicubic_downscale(hr, self.scale), hr))
        return out
