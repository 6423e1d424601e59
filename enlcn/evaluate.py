"""Inference and evaluation: whole-image (global attention), EDSR's chop, overlapping tiles, ×8 ensemble.

``upscale(model, lr, mode="whole")`` is the default because ENLCA's attention is global: the official
code evaluates with ``--chop`` (EDSR ``forward_chop``), which splits the image into 4 overlapping
quadrants (recursively, until each is below ``min_size`` pixels) so that attention is global only inside
a quadrant. ``mode="chop"`` reproduces it; ``mode="tile"`` is overlapping tiles with averaged overlaps
for memory-bound inference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .data.images import to_tensor

Forward = Callable[[Tensor], Tensor]


def whole_pass_bytes(model: nn.Module, height: int, width: int, scale: int) -> int:
    """A conservative estimate of the peak memory (bytes) of one whole-image float32 inference pass.

    Calibrated on the paper's ENLCN: a 512² ×4 global pass peaked at 9.83 GB (``enlcn bench --models``),
    against 10.7 GB from ``4·H·W·F·(8 + 2·s²)`` (F features: a few body tensors and the sub-pixel
    upsampler's ``4F`` channels at every ×2 stage), plus ENLCA's random features ``(m + 1)`` per token.
    """
    config = getattr(model, "config", None)
    feats = getattr(config, "n_feats", 64)
    tokens = height * width
    total = 4 * tokens * feats * (8 + 2 * scale * scale)
    m = (getattr(config, "attention_options", None) or {}).get("m")
    if m:
        total += 4 * 4 * tokens * (m + 1)
    return int(total)


def check_whole_pass_fits(model: nn.Module, height: int, width: int, scale: int, what: str) -> None:
    """ValueError naming ``what`` when a whole-image pass would need more memory than is available."""
    import psutil

    need, free = whole_pass_bytes(model, height, width, scale), psutil.virtual_memory().available
    if need > 0.8 * free:
        raise ValueError(
            f"{what}: a whole-image pass at {height}×{width} (×{scale}) needs about {need / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB are available; use --mode tile (or --mode chop)"
        )


def forward_chop(forward: Forward, x: Tensor, scale: int, shave: int = 10, min_size: int = 120_000) -> Tensor:
    """EDSR/ENLCA ``forward_chop``: 4 quadrants overlapping by ``shave`` LR pixels, recursive, no blending.

    ``x`` is ``B×C×H×W`` LR; each quadrant is ``(H/2 + shave)×(W/2 + shave)``; quadrants with
    ``h·w < min_size`` are run, larger ones are split again (ENLCA's ``min_size`` is 120000).
    """
    _, _, h, w = x.shape
    hh, wh = h // 2, w // 2
    hs, ws = min(h, hh + shave), min(w, wh + shave)
    quads = [x[..., :hs, :ws], x[..., :hs, w - ws :], x[..., h - hs :, :ws], x[..., h - hs :, w - ws :]]
    if hs * ws < min_size:
        outs = [forward(q) for q in quads]
    else:
        outs = [forward_chop(forward, q, scale, shave, min_size) for q in quads]
    s = scale
    out = x.new_empty(x.shape[0], outs[0].shape[1], h * s, w * s)
    out[..., : hh * s, : wh * s] = outs[0][..., : hh * s, : wh * s]
    out[..., : hh * s, wh * s :] = outs[1][..., : hh * s, (ws - w + wh) * s :]
    out[..., hh * s :, : wh * s] = outs[2][..., (hs - h + hh) * s :, : wh * s]
    out[..., hh * s :, wh * s :] = outs[3][..., (hs - h + hh) * s :, (ws - w + wh) * s :]
    return out


def forward_tiles(forward: Forward, x: Tensor, scale: int, tile: int = 128, overlap: int = 16) -> Tensor:
    """Overlapping ``tile×tile`` LR tiles with stride ``tile − overlap``; overlaps are averaged."""
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    _, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ys = _starts(h, th, tile - overlap)
    xs = _starts(w, tw, tile - overlap)
    out = weight = None
    for y in ys:
        for x0 in xs:
            sr = forward(x[..., y : y + th, x0 : x0 + tw])
            if out is None:
                out = x.new_zeros(x.shape[0], sr.shape[1], h * scale, w * scale)
                weight = x.new_zeros(1, 1, h * scale, w * scale)
            region = (..., slice(y * scale, (y + th) * scale), slice(x0 * scale, (x0 + tw) * scale))
            out[region] += sr
            weight[region] += 1
    return out / weight


def _starts(length: int, size: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - size, 0) + 1, max(stride, 1)))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def self_ensemble(forward: Forward, x: Tensor) -> Tensor:
    """EDSR's ×8 self-ensemble ("EDSR+"): all flips/transposes of the input, inverted and averaged."""
    outs = []
    for t in range(8):
        hflip, vflip, transpose = t & 1, (t >> 1) & 1, (t >> 2) & 1
        y = _dihedral(x, hflip, vflip, transpose)
        y = forward(y)
        outs.append(_dihedral_inverse(y, hflip, vflip, transpose))
    return torch.stack(outs).mean(0)


def _dihedral(x: Tensor, hflip: int, vflip: int, transpose: int) -> Tensor:
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if transpose:
        x = x.transpose(-1, -2)
    return x


def _dihedral_inverse(x: Tensor, hflip: int, vflip: int, transpose: int) -> Tensor:
    if transpose:
        x = x.transpose(-1, -2)
    if vflip:
        x = x.flip(-2)
    if hflip:
        x = x.flip(-1)
    return x


@torch.inference_mode()
def upscale(
    model: nn.Module,
    lr: np.ndarray,
    scale: int,
    mode: str = "whole",
    ensemble: bool = False,
    tile: int = 128,
    overlap: int = 16,
) -> Tensor:
    """Super-resolve one ``H×W×3`` uint8 LR image; returns the ``3×sH×sW`` float output (not quantized).

    ``mode``: ``whole`` (one global pass), ``chop`` (official ``--chop``) or ``tile``.
    """
    if mode not in ("whole", "chop", "tile"):
        raise ValueError(f"inference mode must be 'whole', 'chop' or 'tile', got {mode!r}")
    model.eval()
    device = next(model.parameters()).device
    x = to_tensor(lr[None]).to(device)

    def single(t: Tensor) -> Tensor:
        if mode == "chop":
            return forward_chop(model, t, scale)
        if mode == "tile":
            return forward_tiles(model, t, scale, tile, overlap)
        return model(t)

    out = self_ensemble(single, x) if ensemble else single(x)
    return out[0].cpu()


def check_scorable(
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], scale: int, where: object = ""
) -> None:
    """Before any work: every HR image keeps at least an SSIM window after the ``scale``-pixel border crop
    (a ``ValueError`` naming the image and ``where`` it came from otherwise)."""
    from .metrics import SSIM_WINDOW

    for name, _, hr in pairs:
        height, width = hr.shape[:2]
        if min(height, width) - 2 * scale < SSIM_WINDOW:
            prefix = f"{where}: " if where else ""
            raise ValueError(
                f"{prefix}image {name!r} is {height}×{width}: too small to score at ×{scale} (PSNR and SSIM "
                f"crop {scale} px on each side and SSIM needs {SSIM_WINDOW}×{SSIM_WINDOW} pixels)"
            )


def evaluate(
    model: nn.Module,
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray]],
    scale: int,
    mode: str = "whole",
    ensemble: bool = False,
    save_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Per-image Y-PSNR/SSIM (and a ``mean`` row) of ``model`` on ``(name, lr, hr)`` uint8 pairs."""
    from .metrics import dataset_scores, quantize

    results = []
    for name, lr, hr in pairs:
        sr = quantize(upscale(model, lr, scale, mode, ensemble))
        if save_dir is not None:
            from .data.images import save_rgb

            save_rgb(Path(save_dir) / f"{name}_x{scale}_SR.png", sr)
        results.append((name, sr, hr))
    return dataset_scores(results, scale)
