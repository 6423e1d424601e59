"""MATLAB bicubic downscaling against an independent, slow transcription of imresize's definition.

MATLAB (``imresize.m``): output pixel x (1-based) samples u = x/scale + (1 − 1/scale)/2; when shrinking the
Keys kernel (a = −0.5) is stretched by 1/scale and its weights multiplied by scale, then normalised to sum
1; out-of-range taps are mirrored (``aux = [1:n, n:-1:1]``); rows are resized first for equal factors,
and a uint8 image comes back as uint8 from each 1-D pass (``imresizemex`` keeps the class).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from enlcn.data import bicubic_downscale
from enlcn.data.resize import contributions, imresize_matlab


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


def test_known_x4_weights():
    """Output 1 of 16 → 4: u = 4·1 − 1.5 = 2.5; taps j = −5…10 at distance 2.5 − j; w ∝ keys(d/4)/4."""
    w, idx = contributions(16, 4, 0.25)
    raw = np.array([keys((2.5 - j) / 4) / 4 for j in range(-5, 11)])
    assert w.shape == (4, 16)
    assert np.allclose(w[0], raw / raw.sum(), atol=1e-14)
    assert raw[7] == raw[8] == pytest.approx(0.240966796875, abs=1e-15)  # keys(1/8)/4, by hand
    assert idx[0].tolist() == [5, 4, 3, 2, 1, 0] + list(range(10))  # j = −5…0 mirror to 6…1 (1-based)
    assert idx[-1].tolist() == list(range(6, 16)) + [15, 14, 13, 12, 11, 10]  # right border mirrored
    assert np.allclose(w.sum(axis=1), 1.0)


def slow_weight_matrix(n, s):
    """Dense ``[n // s, n]`` matrix of the ×1/s resize, one output pixel at a time, mirror written out."""
    m = np.zeros((n // s, n))
    for x in range(1, n // s + 1):
        u = x * s - (s - 1) / 2
        taps = range(math.floor(u - 2 * s), math.ceil(u + 2 * s) + 1)
        raw = {j: keys((u - j) / s) / s for j in taps}
        norm = sum(raw.values())
        for j, w in raw.items():
            jj = j
            while jj < 1 or jj > n:
                jj = 1 - jj if jj < 1 else 2 * n + 1 - jj
            m[x - 1, jj - 1] += w / norm
    return m


@pytest.mark.parametrize(("n", "scale"), [(8, 2), (13, 2), (16, 4), (19, 4), (12, 3)])
def test_weights_equal_slow_direct_formula(n, scale):
    w, idx = contributions(n, n // scale, 1 / scale)
    dense = np.zeros((n // scale, n))
    np.add.at(dense, (np.arange(n // scale)[:, None].repeat(w.shape[1], 1), idx), w)
    assert np.abs(dense - slow_weight_matrix(n, scale)).max() < 1e-14
    assert np.all(w.any(axis=0))  # all-zero tap columns were dropped, as MATLAB's ``contributions``


@pytest.mark.parametrize(
    ("shape", "scale"),
    [((8, 12), 2), ((8, 12), 4), ((8, 8), 4), ((8 * 3 + 2, 6 * 3 + 1), 3), ((8 * 4 + 3, 6 * 4 + 1), 4)],
)
def test_equals_slow_transcription(shape, scale):
    rng = np.random.default_rng(scale)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    got = bicubic_downscale(img, scale)
    crop = img[: img.shape[0] - img.shape[0] % scale, : img.shape[1] - img.shape[1] % scale].astype(float)
    rows = np.stack([[slow_resize_1d(crop[:, x, c], scale) for x in range(crop.shape[1])] for c in range(3)])
    rows = matlab_round(rows.transpose(2, 1, 0)).astype(float)  # uint8 after the first pass, as MATLAB
    cols = np.stack([[slow_resize_1d(rows[y, :, c], scale) for y in range(rows.shape[0])] for c in range(3)])
    expected = matlab_round(cols.transpose(1, 2, 0))
    assert got.shape == (shape[0] // scale, shape[1] // scale, 3)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_constant_stays_constant_and_size_is_modcropped(scale):
    out = bicubic_downscale(np.full((37, 50, 3), 200, np.uint8), scale)
    assert out.shape == (37 // scale, 50 // scale, 3) and out.dtype == np.uint8 and np.all(out == 200)


def test_errors():
    with pytest.raises(TypeError, match="uint8"):
        bicubic_downscale(np.zeros((8, 8, 3)), 2)


def test_pil_bicubic_is_not_the_benchmark_lr():
    """Why we do not use PIL: same kernel family, different borders and fixed-point passes."""
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(img).resize((16, 16), Image.BICUBIC))
    assert np.abs(pil.astype(int) - bicubic_downscale(img, 4).astype(int)).max() > 0


def test_torch_antialiased_bicubic_differs_only_at_the_borders():
    """torch renormalises the truncated kernel at borders instead of mirroring: same interior, wrong edges."""
    img = np.random.default_rng(1).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    ours = imresize_matlab(img.astype(np.float64), 0.25)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double()
    theirs = F.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - theirs)[2:-2, 2:-2].max() < 1e-9
    assert np.abs(ours - theirs).max() > 1
    plain = F.interpolate(x, scale_factor=0.25, mode="bicubic")[0].permute(1, 2, 0).numpy()  # a=−0.75, no AA
    assert np.abs(ours - plain)[2:-2, 2:-2].max() > 10


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cross_check_with_resize_right(scale):
    """resize-right (pad_mode='symmetric') is MATLAB-exact in float; optional, never a dependency."""
    rr = pytest.importorskip("resize_right")
    img = np.random.default_rng(scale).integers(0, 256, (12 * scale, 9 * scale, 3), dtype=np.uint8)
    theirs = rr.resize(
        img.astype(np.float64),
        scale_factors=1 / scale,
        interp_method=rr.interp_methods.cubic,
        antialiasing=True,
        pad_mode="symmetric",
    )
    assert np.abs(imresize_matlab(img.astype(np.float64), 1 / scale) - theirs).max() < 1e-9
    # uint8: MATLAB rounds after each 1-D pass, resize-right only once, so they may differ by 1
    assert np.abs(bicubic_downscale(img, scale).astype(int) - matlab_round(theirs)).max() <= 1
