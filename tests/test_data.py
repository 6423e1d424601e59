"""Image IO, paired folders and the offline default images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from enlcn.data import ImageError, PairedImages, benchmark_dataset, bicubic_downscale, load_rgb, save_rgb
from enlcn.data.synthetic import SKIMAGE_TEST, SKIMAGE_TRAIN, skimage_images


def test_load_handles_grey_rgba_palette_and_16_bit(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.array_equal(load_rgb(tmp_path / "g.png"), np.dstack([grey] * 3))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert load_rgb(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]  # alpha dropped, not blended
    Image.fromarray(np.array([[0, 65535, 32896]], np.uint16)).save(tmp_path / "w.png")
    assert load_rgb(tmp_path / "w.png")[0, :, 0].tolist() == [0, 255, 128]
    Image.fromarray(np.full((2, 2, 3), 9, np.uint8)).convert("P").save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png").shape == (2, 2, 3)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageError, match="bad.png"):
        load_rgb(tmp_path / "bad.png")
    with pytest.raises(ImageError, match="no such file"):
        load_rgb(tmp_path / "missing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        PairedImages(tmp_path / "empty", 2)


def test_save_is_atomic_and_round_trips(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    save_rgb(tmp_path / "out" / "x.png", img)
    assert np.array_equal(load_rgb(tmp_path / "out" / "x.png"), img)
    with pytest.raises(ValueError):
        save_rgb(tmp_path / "out" / "y.png", img.astype(np.float32))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.png"]


def test_benchmark_layout_and_lr_size_check(tmp_path):
    hr = np.random.default_rng(1).integers(0, 256, (18, 17, 3), dtype=np.uint8)  # not divisible by 4
    base = tmp_path / "benchmark" / "Set5"
    save_rgb(base / "HR" / "baby.png", hr)
    name, lr, hr_c = next(iter(benchmark_dataset(tmp_path, "Set5", 4)))  # no LR folder: made here
    assert name == "baby" and hr_c.shape == (16, 16, 3) and np.array_equal(lr, bicubic_downscale(hr, 4))
    save_rgb(base / "LR_bicubic" / "X4" / "babyx4.png", lr[:3])
    with pytest.raises(ImageError, match="babyx4.png"):
        benchmark_dataset(tmp_path, "Set5", 4)[0]


def test_offline_images_are_split_without_overlap():
    assert not set(SKIMAGE_TRAIN) & set(SKIMAGE_TEST)
    test = skimage_images("test")
    assert [n for n, _ in test] == list(SKIMAGE_TEST)
    assert all(img.dtype == np.uint8 and img.shape[2] == 3 for _, img in test)
    with pytest.raises(ValueError, match="split"):
        skimage_images("val")
