"""Y-PSNR / SSIM as the SR literature computes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage.color import rgb2ycbcr

from enlcn.metrics import dataset_scores, psnr_y, quantize, rgb_to_y, ssim_y


def images(seed=0, shape=(40, 36, 3)):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.integers(-12, 13, shape)
    return np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8), hr


def matlab_ssim_map(a, b):
    """Wang et al. 2004 ssim_index.m's map, written out: 11×11 Gaussian σ=1.5, 'valid', population stats."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda x: correlate2d(x, w, mode="valid")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))


def matlab_ssim(a, b):
    return matlab_ssim_map(a, b).mean()


def test_y_equals_matlab_rgb2ycbcr():
    _, hr = images()
    assert np.allclose(rgb_to_y(hr), rgb2ycbcr(hr)[..., 0], atol=1e-10)
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0)


def test_psnr_by_hand():
    hr = np.zeros((6, 6, 3), np.uint8)
    sr = hr.copy()
    sr[2, 2] = [255, 0, 0]  # inside the 1-px crop: ΔY = 65.481, one of 16 pixels
    assert psnr_y(sr, hr, 1) == pytest.approx(10 * np.log10(255**2 / (65.481**2 / 16)), abs=1e-10)
    assert psnr_y(hr, hr, 1) == float("inf")


def test_psnr_equals_skimage():
    from skimage.metrics import peak_signal_noise_ratio

    sr, hr = images(4)
    y_sr, y_hr = rgb_to_y(sr)[3:-3, 3:-3], rgb_to_y(hr)[3:-3, 3:-3]
    assert psnr_y(sr, hr, 3) == pytest.approx(peak_signal_noise_ratio(y_hr, y_sr, data_range=255), abs=1e-12)


def test_ssim_equals_wang_2004():
    sr, hr = images(1)
    y_sr, y_hr = rgb_to_y(sr)[4:-4, 4:-4], rgb_to_y(hr)[4:-4, 4:-4]
    assert ssim_y(sr, hr, 4) == pytest.approx(matlab_ssim(y_hr, y_sr), abs=1e-9)


def test_region_scores_use_only_the_masked_pixels():
    sr, hr = images(2)
    everything = np.ones(hr.shape[:2], bool)
    assert psnr_y(sr, hr, 2, everything) == psnr_y(sr, hr, 2)
    assert ssim_y(sr, hr, 2, everything) == pytest.approx(ssim_y(sr, hr, 2), abs=1e-12)
    # a mask over the top half: the MSE and the SSIM map of those pixels (after the 2-px crop) only
    top = np.zeros(hr.shape[:2], bool)
    top[:20] = True
    y_sr, y_hr = rgb_to_y(sr)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2]
    mse = np.mean((y_sr[:18] - y_hr[:18]) ** 2)
    assert psnr_y(sr, hr, 2, top) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)
    smap = matlab_ssim_map(y_hr, y_sr)
    # valid map row r is image row r + 5 of the cropped image: rows 5..17 are in the mask
    assert ssim_y(sr, hr, 2, top) == pytest.approx(smap[:13].mean(), abs=1e-9)
    with pytest.raises(ValueError, match="boolean array of the image's shape"):
        psnr_y(sr, hr, 2, top[:10])
    with pytest.raises(ValueError, match="selects no pixel"):
        psnr_y(sr, hr, 2, np.zeros_like(top))
    border = np.zeros_like(top)
    border[:7] = True  # inside the crop, but no whole 11×11 window
    with pytest.raises(ValueError, match="whole 11×11"):
        ssim_y(sr, hr, 2, border)
    table = dataset_scores([("a", sr, hr)], 2, {"a": top})
    assert table.psnr[0] == psnr_y(sr, hr, 2, top)
    with pytest.raises(KeyError, match="no mask for image 'b'"):
        dataset_scores([("b", sr, hr)], 2, {"a": top})


def test_ssim_on_a_photograph_and_its_bicubic_round_trip():
    """A realistic pair (astronaut crop vs its ×2 bicubic down/up), where SSIM is far from 0 and 1."""
    from PIL import Image
    from skimage.data import astronaut

    hr = astronaut()[100:196, 180:276]
    sr = np.asarray(Image.fromarray(hr).resize((48, 48), Image.BICUBIC).resize((96, 96), Image.BICUBIC))
    got = ssim_y(sr, hr, 2)
    y_sr, y_hr = rgb_to_y(sr)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2]
    assert 0.5 < got < 0.99 and got == pytest.approx(matlab_ssim(y_hr, y_sr), abs=1e-9)
    assert got != pytest.approx(matlab_ssim(y_hr - 16, y_sr - 16), abs=1e-6)  # the +16 offset matters


def test_border_is_cropped():
    sr, hr = images(2)
    changed = sr.copy()
    changed[:2] = 0
    changed[:, -2:] = 255
    assert psnr_y(changed, hr, 2) == psnr_y(sr, hr, 2) and ssim_y(changed, hr, 2) == ssim_y(sr, hr, 2)
    changed[10, 10] = 255 - changed[10, 10]
    assert psnr_y(changed, hr, 2) != psnr_y(sr, hr, 2)


def test_grey_images_count_as_three_equal_channels():
    sr, hr = images(3, (30, 30))
    assert psnr_y(sr, hr, 2) == psnr_y(np.dstack([sr] * 3), np.dstack([hr] * 3), 2)
    assert ssim_y(sr[..., None], hr[..., None], 2) == ssim_y(np.dstack([sr] * 3), np.dstack([hr] * 3), 2)


def test_quantize_rounds_like_edsr():
    x = torch.tensor([0.0, 0.2 / 255, 1.7 / 255, 1.2, -0.1]).reshape(1, 1, 5).expand(3, 1, 5)
    out = quantize(x)
    assert out.shape == (1, 5, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 0, 2, 255, 0]
    assert np.array_equal(quantize(x.permute(1, 2, 0).numpy()), out)  # H×W×C array
    assert np.array_equal(quantize(x.numpy()), out)  # C×H×W array (last dim not 1 or 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_half_boundaries_round_half_to_even_as_edsr(dtype):
    """(k + ½)/255 · 255 is exactly k + ½ in float32 and float64; EDSR's ``mul(255).clamp.round`` (torch,
    round half to even) gives 0, 2, 2, 4, 4, 6, … — not MATLAB's half-away-from-zero 1, 2, 3, …"""
    x = torch.tensor([(k + 0.5) / 255 for k in range(255)], dtype=dtype)
    edsr = x.mul(255).clamp(0, 255).round().to(torch.uint8)  # EDSR utility.quantize, rgb_range 1
    got_t = quantize(x.reshape(1, 1, -1))[0, :, 0]
    got_np = quantize(x.numpy().reshape(1, -1, 1))[0, :, 0]
    assert got_t.tolist() == got_np.tolist() == edsr.tolist()
    assert got_t[:6].tolist() == [0, 2, 2, 4, 4, 6]
    assert quantize(torch.full((3, 2, 2), 254.5 / 255, dtype=dtype)).max() == 254  # half to even at the top


def test_errors_name_the_problem():
    sr, hr = images()
    with pytest.raises(ValueError, match="shape"):
        psnr_y(sr[:-1], hr, 2)
    with pytest.raises(TypeError, match="quantize"):
        psnr_y(sr.astype(np.float32), hr, 2)
    with pytest.raises(ValueError, match=r"\(39, 36, 3\).*\(40, 36, 3\)"):
        ssim_y(sr[:-1], hr, 2)  # both shapes named
    with pytest.raises(ValueError, match="11"):
        ssim_y(sr[:14, :14], hr[:14, :14], 2)  # 10×10 after the crop: no 11×11 window fits


def test_dataset_score_is_the_mean_of_images():
    pairs = [(f"im{i}", *images(i)) for i in range(3)]
    table = dataset_scores(pairs, 2)
    assert list(table.image) == ["im0", "im1", "im2", "mean"]
    assert table.psnr.iloc[-1] == pytest.approx(table.psnr.iloc[:3].mean())
