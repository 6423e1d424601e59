"""MATLAB bicubic downscaling against an independent, slow transcription of imresize's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from enlcn.data import bicubic_downscale
from enlcn.data.resize import contributions


def keys(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def slow_resize_1d(signal, s):
    """One output sample at a time: u = x·s − (s − 1)/2 (1-based), kernel stretched by s, mirrored."""
    n = len(signal)
    out = []
    for x in range(1, n // s + 1):
        u = x * s - (s - 1) / 2
        total = norm = 0.0
        for j in range(math.floor(u - 2 * s), math.ceil(u + 2 * s) + 1):
            w = keys((u - j) / s) / s
            jj = j
            while jj < 1 or jj > n:  # symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
                jj = 1 - jj if jj < 1 else 2 * n + 1 - jj
            total += w * signal[jj - 1]
            norm += w
        out.append(total / norm)
    return np.array(out)


def matlab_round(v):
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), 0, 255).astype(np.uint8)


def test_known_x2_weights():
    w, idx = contributions(8, 4, 0.5)
    expected = np.array([-0.01171875, -0.03515625, 0.11328125, 0.43359375] * 2)
    expected[4:] = expected[3::-1]
    assert np.allclose(w, expected[None].repeat(4, 0), atol=1e-12)
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]  # mirrored left border (0-based)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_equals_slow_transcription(scale):
    rng = np.random.default_rng(scale)
    img = rng.integers(0, 256, (8 * scale + scale - 1, 6 * scale + 1, 3), dtype=np.uint8)  # needs modcrop
    got = bicubic_downscale(img, scale)
    crop = img[: img.shape[0] - img.shape[0] % scale, : img.shape[1] - img.shape[1] % scale].astype(float)
    rows = np.stack([[slow_resize_1d(crop[:, x, c], scale) for x in range(crop.shape[1])] for c in range(3)])
    rows = matlab_round(rows.transpose(2, 1, 0)).astype(float)  # uint8 after the first pass, as MATLAB
    cols = np.stack([[slow_resize_1d(rows[y, :, c], scale) for y in range(rows.shape[0])] for c in range(3)])
    expected = matlab_round(cols.transpose(1, 2, 0))
    assert got.shape == (8, 6, 3)
    assert np.array_equal(got, expected)


def test_constant_stays_constant_and_errors():
    assert np.all(bicubic_downscale(np.full((12, 12, 3), 200, np.uint8), 4) == 200)
    with pytest.raises(TypeError, match="uint8"):
        bicubic_downscale(np.zeros((8, 8, 3)), 2)


def test_pil_bicubic_is_not_the_benchmark_lr():
    """Why we do not use PIL: same kernel family, different borders and fixed-point passes."""
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(img).resize((16, 16), Image.BICUBIC))
    assert np.abs(pil.astype(int) - bicubic_downscale(img, 4).astype(int)).max() > 0
