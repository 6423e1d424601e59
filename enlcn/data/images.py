"""Reading and writing images as uint8 RGB arrays, with clear errors and atomic writes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..atomic import replacing

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` from the file's header, without decoding its pixels (:class:`ImageError` if the
    file is missing, not an image, or claims more pixels than Pillow's decompression-bomb limit)."""
    path = Path(path)
    with _named_errors(path), Image.open(path) as im:
        width, height = im.size
    return height, width


@contextmanager
def _named_errors(path: Path) -> Iterator[None]:
    """Turn Pillow's and the file system's errors on ``path`` into :class:`ImageError` naming the file."""
    try:
        yield
    except FileNotFoundError as err:
        raise ImageError(f"{path}: no such file") from err
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: claims more pixels than can be decoded safely ({err})") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: cannot read image ({err})") from err



def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """``H×W×3`` uint8 RGB: grey → 3 channels, alpha dropped, palette → RGB, 16-bit → round(v·255/65535).

    A missing, truncated or undecodable file raises :class:`ImageError` naming the file and the reason.
    16-bit grey (Pillow modes ``I;16*`` / ``I``) is clipped to [0, 65535] before rescaling.

    Alpha is dropped, not composited (SR datasets are opaque; EDSR's imageio loader keeps the RGB planes).
    16-bit grey is rescaled exactly; 16-bit *colour* PNGs are decoded by Pillow as their high byte
    (``v >> 8``), which can be 1 below ``round(v·255/65535)`` — no SR benchmark ships such files.
    """
    path = Path(path)
    with _named_errors(path), Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            return np.repeat(np.round(np.clip(arr, 0, 65535) * 255 / 65535).astype(np.uint8)[..., None], 3, 2)
        if im.mode in ("P", "PA", "RGBA", "LA", "La", "RGBa"):
            # palette (possibly with a transparent entry) and alpha modes: RGBA first, alpha dropped
            arr = np.asarray(im.convert("RGBA"))[..., :3]
        else:
            arr = np.asarray(im.convert("RGB"))  # L, 1, CMYK, YCbCr, …
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) == 0:
        raise ImageError(f"{path}: unexpected image shape {arr.shape}")
    return arr


def save_rgb(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 ``H×W×3`` image (format from the suffix, PNG by default) via a temp file + rename."""
    path = Path(path)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"save_rgb expects a uint8 H×W×3 image, got {image.dtype} {image.shape}")
    fmt = _pil_format(path)
    with replacing(path) as tmp:
        Image.fromarray(image).save(tmp, format=fmt)
    return path


def _pil_format(path: Path) -> str:
    """Pillow's format name for ``path``'s suffix (PNG when it has none); the temporary has no suffix."""
    ext = path.suffix.lower() or ".png"
    Image.init()
    if ext not in Image.EXTENSION:
        known = ", ".join(IMAGE_SUFFIXES)
        raise ValueError(f"{path}: unknown image type {path.suffix!r}; use one of {known}")
    return Image.EXTENSION[ext]


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder``, sorted; an error naming the folder if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """``B×H×W×3`` uint8 → ``B×3×H×W`` float32 in [0, 1] (``rgb_range`` 1, as the official README)."""
    return torch.from_numpy(np.array(batch, dtype=np.uint8)).permute(0, 3, 1, 2).float().div_(255)
