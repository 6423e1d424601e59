"""PSNR and SSIM on the Y channel, exactly as the SR literature's tables (EDSR, RCAN, NLSN, ENLCA).

Protocol (``../shared``'s sr-conventions §1): SR quantized to uint8 first; grey images copied to three
channels; ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255`` as a float (MATLAB
``rgb2ycbcr(im2double(x))·255``, not rounded); ``scale`` pixels cropped from every border; PSNR in
float64 per image; SSIM as Wang et al.'s ``ssim_index.m`` (11×11 Gaussian window, σ = 1.5, K1 = 0.01,
K2 = 0.03, L = 255, 'valid' windows), computed by scikit-image with the arguments that match it; a
dataset's score is the mean of its per-image scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from skimage.metrics import structural_similarity


def _layout_is_chw(shape: tuple[int, ...], tensor: bool) -> bool:
    """Whether a 3-D image is channels-first: tensors default to CHW, arrays to HWC (EDSR / numpy habits)."""
    first, last = shape[0] in (1, 3), shape[-1] in (1, 3)
    return first and (tensor or not last)


def quantize(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A float image in [0, 1] → uint8 ``H×W×C`` (``H×W`` stays 2-D), as EDSR's ``utility.quantize``.

    EDSR computes ``x.mul(255).clamp(0, 255).round()`` in the tensor's own precision (float32 there), with
    round-half-to-even; both paths here do exactly that in the input's precision (float32 stays float32,
    float64 stays float64, other dtypes become float32), so a value sitting on a ``(k + ½)/255``
    boundary rounds as it would in EDSR. ``3×H×W`` / ``1×H×W`` layouts are moved to channels-last:
    a 3-D tensor is read as CHW when its first dimension is 1 or 3, an array only when its last is not.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        t = t.mul(255).clamp(0, 255).round().to(torch.uint8)
        if t.dim() == 3 and _layout_is_chw(tuple(t.shape), tensor=True):
            t = t.permute(1, 2, 0)
        return np.ascontiguousarray(t.numpy())
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    if a.ndim == 3 and _layout_is_chw(a.shape, tensor=False):
        a = a.transpose(1, 2, 0)
    return np.ascontiguousarray(np.round(np.clip(a * a.dtype.type(255), 0, 255)).astype(np.uint8))


def as_rgb(img: np.ndarray, what: str) -> np.ndarray:
    """A uint8 ``H×W``, ``H×W×1`` or ``H×W×3`` image as ``H×W×3`` (grey copied to three channels)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        kind = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
        raise TypeError(f"{what} must be a uint8 image (quantize float outputs first), got {kind}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"{what} must be H×W, H×W×1 or H×W×3, got shape {img.shape}")
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image, float64 in [16, 235], not rounded (MATLAB ``rgb2ycbcr``)."""
    rgb = as_rgb(img, "image").astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _crop(scale: int) -> slice:
    return slice(scale, -scale) if scale else slice(None)


def _cropped_y(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    sr, hr = as_rgb(sr, "sr"), as_rgb(hr, "hr")
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr differ in shape: {sr.shape} vs {hr.shape}")
    if scale < 0 or 2 * scale >= min(hr.shape[:2]):
        raise ValueError(f"cannot crop {scale} px from each border of a {hr.shape[0]}×{hr.shape[1]} image")
    c = _crop(scale)
    return rgb_to_y(sr)[c, c], rgb_to_y(hr)[c, c]


def _cropped_mask(mask: np.ndarray | None, shape: tuple[int, ...], scale: int) -> np.ndarray | None:
    """``mask`` (boolean, the HR image's ``H×W``) with the same border crop as the images; None stays None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != tuple(shape[:2]):
        raise ValueError(
            f"mask must be a boolean array of the image's shape {shape[:2]}, got {mask.dtype} {mask.shape}"
        )
    c = _crop(scale)
    mask = mask[c, c]
    if not mask.any():
        raise ValueError(f"mask selects no pixel inside the {scale}-px border crop")
    return mask


def psnr_y(sr: np.ndarray, hr: np.ndarray, scale: int, mask: np.ndarray | None = None) -> float:
    """``10·log10(255² / MSE)`` on Y with a ``scale``-pixel border cropped; ``inf`` for identical images.

    ``mask`` (boolean ``H×W`` of the HR image) restricts the MSE to the selected pixels: a region PSNR
    (not a literature metric; the study uses it for the motif copies of the self-similar images).
    """
    y_sr, y_hr = _cropped_y(sr, hr, scale)
    sel = _cropped_mask(mask, np.shape(hr), scale)
    err = (y_hr - y_sr) ** 2
    mse = np.mean(err if sel is None else err[sel])
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


#: the side of ``ssim_index.m``'s Gaussian window (σ = 1.5)
SSIM_WINDOW = 11


def ssim_y(sr: np.ndarray, hr: np.ndarray, scale: int, mask: np.ndarray | None = None) -> float:
    """SSIM on Y with a ``scale``-pixel border cropped, equal to the MATLAB ``ssim_index.m`` of the tables.

    With ``mask`` (boolean ``H×W`` of the HR image): the mean of the SSIM map over the selected pixels
    that have a whole 11×11 window inside the cropped image (the 'valid' region of ``ssim_index.m``).
    """
    y_sr, y_hr = _cropped_y(sr, hr, scale)
    if min(y_hr.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least 11×11 pixels after the {scale}-px crop, got {y_hr.shape}")
    sel = _cropped_mask(mask, np.shape(hr), scale)
    kwargs = dict(data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    if sel is None:
        return float(structural_similarity(y_hr, y_sr, **kwargs))
    _, smap = structural_similarity(y_hr, y_sr, full=True, **kwargs)
    valid = (slice(5, -5),) * 2  # skimage pads (win_size − 1)/2 = 5 px and averages the rest
    inside = sel[valid]
    if not inside.any():
        raise ValueError("mask selects no pixel with a whole 11×11 SSIM window")
    return float(smap[valid][inside].mean())


def dataset_scores(
    results: Iterable[tuple[str, np.ndarray, np.ndarray]],
    scale: int,
    masks: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Per-image ``psnr``/``ssim`` of ``(name, sr, hr)`` triples, plus a ``mean`` row (mean of images).

    ``masks`` (image name → boolean HR mask) scores only those pixels (:func:`psnr_y`); every image must
    have one.
    """
    masks = {} if masks is None else masks
    rows = []
    for name, sr, hr in results:
        if masks and name not in masks:
            raise KeyError(f"dataset_scores: no mask for image {name!r}")
        mask = masks.get(name)
        rows.append({"image": name, "psnr": psnr_y(sr, hr, scale, mask), "ssim": ssim_y(sr, hr, scale, mask)})
    if not rows:
        raise ValueError("dataset_scores: no images")
    table = pd.DataFrame(rows)
    mean = {"image": "mean", "psnr": table.psnr.mean(), "ssim": table.ssim.mean()}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
