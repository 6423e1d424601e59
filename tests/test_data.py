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
    true_repeats,
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


def test_load_drops_alpha_of_la_and_transparent_palette(tmp_path):
    la = np.zeros((2, 3, 2), np.uint8)
    la[..., 0], la[..., 1] = 77, 0  # fully transparent grey 77
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert np.all(load_rgb(tmp_path / "la.png") == 77)
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.info["transparency"] = b"\x00\x80"
    pal.save(tmp_path / "pt.png")
    assert load_rgb(tmp_path / "pt.png")[0].tolist() == [[10, 20, 30], [200, 100, 50]]


def test_truncated_file_is_named(tmp_path):
    save_rgb(tmp_path / "ok.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: cannot read"):
        load_rgb(tmp_path / "cut.png")
    assert issubclass(ImageError, ValueError)


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


def test_train_patches_from_hr_images_crop_the_bicubic_lr_in_register():
    """With LR = bicubic_downscale(HR), downscaling the HR crop gives the LR crop exactly, except within
    2 LR pixels of the crop's edges (where the crop's mirror padding replaces the real neighbours)."""
    rng = np.random.default_rng(5)
    hrs = [
        rng.integers(0, 256, (45, 50, 3), dtype=np.uint8),
        ("named", rng.integers(0, 256, (40, 41, 3), np.uint8)),
    ]
    ds = TrainPatches(hrs, scale=2, patch=10, repeat=3, seed=0, augment=False)
    assert len(ds) == 6 and ds.pairs[1][2].shape == (40, 40, 3)  # HR modcropped
    for i in range(len(ds)):
        lr, hr = ds[i]
        hr_u8 = np.round(hr.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        lr_u8 = np.round(lr.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        assert np.array_equal(bicubic_downscale(hr_u8, 2)[2:-2, 2:-2], lr_u8[2:-2, 2:-2])
    with pytest.raises(ValueError, match=r"named.*\(20, 20\).*\(40, 40\).*24×24"):
        TrainPatches(hrs[1:], scale=2, patch=24)
    with pytest.raises(ValueError, match="not a mix"):
        TrainPatches([hrs[0], block_pairs()[0]], scale=2, patch=4)


def test_all_eight_transforms_are_drawn():
    lr = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    hr = np.kron(lr, np.ones((2, 2, 1), np.uint8))
    ds = TrainPatches([(lr, hr)], scale=2, patch=4, repeat=64, seed=0)  # the crop is the whole image
    drawn = {ds[i][0].numpy().tobytes() for i in range(len(ds))}
    as_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div(255)  # noqa: E731
    expected = {as_chw(dihedral(lr, k)).numpy().tobytes() for k in range(8)}
    assert drawn == expected


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
    a = self_similar_image(96, seed=4, motifs=2, copies=3, motif_size=8, scale=2)
    b = self_similar_image(96, seed=4, motifs=2, copies=3, motif_size=8, scale=2)
    assert a.image.dtype == np.uint8 and a.image.shape == (96, 96, 3) and np.array_equal(a.image, b.image)
    assert np.array_equal(a.labels, b.labels) and a.placements == b.placements
    assert not np.array_equal(a.image, self_similar_image(96, 5, 2, 3, 8, 2).image)
    assert a.labels.shape == (48, 48) and a.labels.dtype == np.int32
    assert sorted(p.motif for p in a.placements) == [0, 0, 0, 1, 1, 1]
    q = 4  # motif side in LR pixels
    for p in a.placements:  # labels follow the placement: motif·q² + dy·q + dx
        expected = p.motif * q * q + np.arange(q)[:, None] * q + np.arange(q)
        assert np.array_equal(a.labels[p.lr_top : p.lr_top + q, p.lr_left : p.lr_left + q], expected)
        assert (p.top, p.left) == (2 * p.lr_top + p.phase[0], 2 * p.lr_left + p.phase[1])
    assert (a.labels >= 0).sum() == 6 * q * q  # no overlaps
    phases = [p.phase for p in a.placements if p.motif == 0]
    assert len(set(phases)) == 3  # copies of one motif use different LR sampling phases
    values, counts = np.unique(a.labels[a.labels >= 0], return_counts=True)
    assert np.all(counts == 3) and len(values) == 2 * q * q
    mask = a.motif_mask()  # HR pixels of the copies: 6 non-overlapping 8×8 squares
    assert mask.shape == (96, 96) and mask.sum() == 6 * 8 * 8
    for p in a.placements:
        assert mask[p.top : p.top + 8, p.left : p.left + 8].all()
        assert not mask[p.top - 1, p.left] and not mask[p.top, p.left + 8]  # a gap of background


def test_true_repeats():
    r = self_similar_image(64, seed=1, motifs=2, copies=3, motif_size=8, scale=2)
    p = r.placements[0]
    pos = (p.lr_top + 1, p.lr_left + 2)
    mask = true_repeats(r.labels, pos)
    assert mask.sum() == 2 and not mask[pos]
    others = [(o.lr_top + 1, o.lr_left + 2) for o in r.placements if o.motif == p.motif and o != p]
    assert sorted(zip(*np.nonzero(mask), strict=True)) == sorted(others)
    assert np.array_equal(true_repeats(r.labels, int(np.ravel_multi_index(pos, r.labels.shape))), mask)
    background = tuple(np.argwhere(r.labels < 0)[0])
    assert not true_repeats(r.labels, background).any()


def test_same_phase_copies_give_equal_lr_and_other_phases_differ():
    """Two copies with equal LR phase downscale to the same LR pixels wherever the bicubic support
    (±2 LR pixels) stays inside the motif; copies with other phases see different sub-pixel detail."""
    r = self_similar_image(128, seed=3, motifs=1, copies=6, motif_size=16, scale=2, jitter=0.0)
    lr = bicubic_downscale(r.image, 2).astype(int)
    q, by_phase = 8, {}
    for p in r.placements:
        by_phase.setdefault(p.phase, []).append(p)
    same = next(v for v in by_phase.values() if len(v) > 1)  # 6 copies, 4 phases: some phase repeats
    patch = lambda p, a=0: lr[p.lr_top + a : p.lr_top + q - a, p.lr_left + a : p.lr_left + q - a]  # noqa: E731
    assert np.array_equal(patch(same[0], 2), patch(same[1], 2))  # interior: identical
    assert np.abs(patch(same[0]) - patch(same[1])).mean() < 3  # whole copy: only the edges differ
    other = next(v[0] for k, v in by_phase.items() if k != same[0].phase)
    assert np.abs(patch(same[0], 2) - patch(other, 2)).mean() > 5  # complementary sampling


def test_self_similar_errors():
    with pytest.raises(ValueError, match="do not fit"):
        self_similar_image(32, 0, motifs=3, copies=4, motif_size=12, scale=4)
    with pytest.raises(ValueError, match="multiple of scale"):
        self_similar_image(64, 0, motif_size=10, scale=4)


def test_self_similar_set():
    ds = SelfSimilarSet(3, size=96, seed=1, scale=4, copies=2)
    assert len(ds) == 3 and ds[2][0] == "selfsim002" and np.array_equal(ds[1][1], ds.item(1).image)
    name, lr, hr = ds.pairs()[0]
    masks = ds.motif_masks()
    assert list(masks) == ["selfsim000", "selfsim001", "selfsim002"]
    assert masks[name].shape == hr.shape[:2] and masks[name].sum() == 3 * 2 * 16 * 16
    assert (
        lr.shape == (24, 24, 3) and hr.shape == (96, 96, 3) and np.array_equal(lr, bicubic_downscale(hr, 4))
    )
