"""MATLAB ``imresize(img, 1/s, 'bicubic')``: how every SR benchmark's LR images are made ("BI").

torch, PIL and OpenCV bicubic are not equivalent (different kernel, no antialiasing or other border
rules; 0.5 dB+ PSNR errors are reported in the field). This is a numpy port of MATLAB's definition:
Keys cubic with ``a = −0.5``; when shrinking, the kernel is stretched by the scale (antialiasing) and
its weights scaled to keep unit sum; output pixel ``x`` (1-based) samples the input at
``u = x/scale + ½(1 − 1/scale)``; borders are mirrored (symmetric padding); dimensions are resized one
after the other, rows first; a uint8 image is rounded (half away from zero) and saturated to uint8
after each 1-D pass, because MATLAB's ``imresizemex`` returns the class of its input (``imresize.m``,
``resizeAlongDim``: "'out' datatype will be same as 'in' datatype"). Float emulations that round
once at the end (BasicSR ``matlab_functions.imresize``, resize-right) can differ from this by 1 level.
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = −0.5`` (MATLAB ``imresize``'s ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``[out, P]`` and 0-based input indices ``[out, P]`` of MATLAB's ``contributions``."""
    width = 4.0 / scale if scale < 1 else 4.0  # antialiasing widens the kernel when shrinking
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based candidate indices
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if scale < 1 else cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])  # symmetric padding
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx[:, keep]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    weights, idx = contributions(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img.astype(np.float64), axis, 0)  # [in, ...]
    out = np.einsum("op,op...->o...", weights, moved[idx])
    return np.moveaxis(out, 0, axis)


def _round_uint8(img: np.ndarray) -> np.ndarray:
    """MATLAB's double → uint8 conversion: round half away from zero, saturate."""
    return np.clip(np.sign(img) * np.floor(np.abs(img) + 0.5), 0, 255).astype(np.uint8)


def imresize_matlab(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of an ``H×W[×C]`` image; uint8 in → uint8 out."""
    is_u8 = img.dtype == np.uint8
    out = img
    for axis in (0, 1):  # equal factors: MATLAB resizes dimension 1 (rows) first
        out = _resize_axis(out, axis, math.ceil(img.shape[axis] * scale), scale)
        if is_u8:
            out = _round_uint8(out)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``scale`` (MATLAB ``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark LR image of a uint8 HR image: modcrop, then ``imresize(·, 1/scale, 'bicubic')``."""
    if not isinstance(hr, np.ndarray) or hr.dtype != np.uint8:
        raise TypeError(f"bicubic_downscale expects a uint8 image, got {getattr(hr, 'dtype', type(hr))}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    hr = modcrop(hr, scale)
    if min(hr.shape[:2]) < scale:
        raise ValueError(f"image of size {hr.shape[:2]} is smaller than the scale {scale}")
    return imresize_matlab(hr, 1.0 / scale)
