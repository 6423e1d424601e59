"""Image IO, paired folders and the offline default images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from enlcn.data import ImageError, PairedImages, benchmark_dataset, bicubic_downscale, load_rgb, save_rgb
from enlcn.data.datasets import TrainPatches, dihedral, div2k, make_loader
from enlcn.data.synthetic import (
    SKIMAGE_TEST,
    SKIMAGE_TRAIN,
    SelfSimilarSet,
    self_similar_image,
    skimage_images,
)


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
    made = benchmark_dataset(tmp_path, "Set5", 4)
    assert made[0][1] is made[0][1]  # the generated LR is cached
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


def block_pairs(scale=2, n=2, size=(20, 24)):
    """LR images and HR = each LR pixel repeated scale×scale: an aligned HR crop is its LR crop, blown up."""
    rng = np.random.default_rng(7)
    lrs = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]
    return [(f"im{i}", lr, np.kron(lr, np.ones((scale, scale, 1), np.uint8))) for i, lr in enumerate(lrs)]


def test_train_patches_are_aligned_augmented_and_in_unit_range():
    ds = TrainPatches(block_pairs(), scale=2, patch=6, seed=3, repeat=5)
    assert len(ds) == 10
    seen = set()
    for i in range(len(ds)):
        lr, hr = ds[i]
        assert lr.shape == (3, 6, 6) and hr.shape == (3, 12, 12) and lr.dtype == torch.float32
        assert 0 <= lr.min() and lr.max() <= 1
        assert torch.equal(hr[:, ::2, ::2], lr)  # the HR crop is the one under the LR crop
        seen.add(lr.numpy().tobytes())
    assert len(seen) == 10
    k_lr = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    variants = {dihedral(k_lr, k).tobytes() for k in range(8)}
    assert len(variants) == 8  # the 8 dihedral transforms are distinct


def test_train_patches_depend_only_on_seed_epoch_and_index():
    a, b = (TrainPatches(block_pairs(), 2, 6, seed=1) for _ in range(2))
    assert torch.equal(a[1][0], b[1][0])
    b.set_epoch(1)
    assert not torch.equal(a[1][0], b[1][0])
    assert not torch.equal(a[1][0], TrainPatches(block_pairs(), 2, 6, seed=2)[1][0])


def test_seeded_loader_is_reproducible_with_workers():
    ds = TrainPatches(block_pairs(n=3), 2, 6, seed=0, repeat=4)
    serial = [lr for lr, _ in make_loader(ds, 4, seed=5, workers=0)]
    parallel = [lr for lr, _ in make_loader(ds, 4, seed=5, workers=2)]
    assert len(serial) == 3 and all(torch.equal(x, y) for x, y in zip(serial, parallel, strict=True))
    other = [lr for lr, _ in make_loader(ds, 4, seed=6, workers=0)]
    assert not all(torch.equal(x, y) for x, y in zip(serial, other, strict=True))


def test_small_image_is_named(tmp_path):
    save_rgb(tmp_path / "hr" / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    ds = TrainPatches(PairedImages(tmp_path / "hr", 2), 2, patch=6)
    with pytest.raises(ValueError, match=r"tiny.png.*\(4, 4\).*6×6"):
        ds[0]


def test_div2k_layout(tmp_path):
    hr = np.random.default_rng(2).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    save_rgb(tmp_path / "DIV2K" / "DIV2K_train_HR" / "0001.png", hr)
    save_rgb(tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4" / "0001x4.png", bicubic_downscale(hr, 4))
    name, lr, hr2 = div2k(tmp_path, "train", 4)[0]
    assert name == "0001" and lr.shape == (4, 3, 3) and np.array_equal(hr2, hr)


def test_self_similar_image_is_deterministic_and_labelled():
    img, rmap = self_similar_image(64, seed=4, motifs=2, repeats=3)
    again, _ = self_similar_image(64, seed=4, motifs=2, repeats=3)
    assert img.dtype == np.uint8 and img.shape == (64, 64, 3) and np.array_equal(img, again)
    assert not np.array_equal(img, self_similar_image(64, seed=5, motifs=2, repeats=3)[0])
    assert [c.motif for c in rmap.copies] == [0, 0, 0, 1, 1, 1]
    assert any(c.top % 1 > 0.01 for c in rmap.copies)  # sub-pixel placement
    labels = rmap.labels(2)
    assert labels.shape == (32, 32) and (labels == -1).any()
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    assert counts.max() <= 3 and (counts >= 2).mean() > 0.5  # most labelled points recur in other copies
    p = (-(-rmap.motif_size // 2) + 1) ** 2
    assert set(values // p) == {0, 1}  # label // P is the motif id


def test_repeats_look_alike_and_background_does_not():
    img, rmap = self_similar_image(96, seed=0)
    y = img.astype(float).mean(axis=2)
    labels = rmap.labels(1)
    same, diff = [], []
    for lab in np.unique(labels[labels >= 0])[::7]:
        ys, xs = np.nonzero(labels == lab)
        same.append(np.abs(y[ys[0], xs[0]] - y[ys[1:], xs[1:]]).mean() if len(ys) > 1 else 0)
    rng = np.random.default_rng(0)
    ys, xs = np.nonzero(labels >= 0)
    pick = rng.integers(len(ys), size=(200, 2))
    diff = np.abs(y[ys[pick[:, 0]], xs[pick[:, 0]]] - y[ys[pick[:, 1]], xs[pick[:, 1]]])
    assert np.mean(same) < 0.5 * diff.mean()


def test_self_similar_set():
    ds = SelfSimilarSet(3, size=48, seed=1)
    assert len(ds) == 3 and ds[2][0] == "selfsim002" and np.array_equal(ds[1][1], ds.item(1)[0])
    name, lr, hr = ds.pairs(4)[0]
    assert lr.shape == (12, 12, 3) and hr.shape == (48, 48, 3)
    with pytest.raises(ValueError, match="do not fit"):
        self_similar_image(32, 0, motifs=3, repeats=4, motif_size=12)
