"""The paper's Figure 5 (enlcn.study.qualitative, enlcn.viz.plot_sr_crops): crop rule, crop PSNR, figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from enlcn.metrics import psnr_y
from enlcn.study import qualitative as q


def test_repeat_window_finds_the_only_window_holding_both_copies():
    labels = np.full((20, 20), -1, dtype=np.int32)
    labels[12:14, 3:5] = [[0, 1], [2, 3]]  # two copies of a 2×2 motif, 3 columns apart
    labels[12:14, 8:10] = [[0, 1], [2, 3]]
    labels[2:4, 14:16] = [[4, 5], [6, 7]]  # a motif with no repeat: not counted
    assert q.repeated_pixels(labels) == 8
    # a 7-pixel window holds both copies only with rows 7..12 and columns 3..3; ties: topmost, leftmost
    assert q.repeat_window(labels, 7) == (7, 3)
    assert q.selfsim_crop(labels, scale=4, size=28) == q.Box(28, 12, 28)


def test_repeat_window_keeps_its_margin_and_says_when_it_does_not_fit():
    labels = np.zeros((8, 8), dtype=np.int32)  # every window is a tie: the first one inside the margin
    assert q.repeat_window(labels, 4, margin=1) == (1, 1)
    with pytest.raises(ValueError, match="does not fit in labels 8×8"):
        q.repeat_window(labels, 7, margin=1)


def test_photo_crop_is_the_textured_square_on_the_lr_grid():
    rng = np.random.default_rng(0)
    hr = np.full((64, 64, 3), 120, dtype=np.uint8)
    hr[20:36, 40:56] = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    box = q.photo_crop(hr, scale=4, size=16)
    assert box == q.Box(20, 40, 16)
    with pytest.raises(ValueError, match="multiple of the scale 4"):
        q.photo_crop(hr, scale=4, size=18)


def test_detail_box_lies_in_the_crops_upper_left_part():
    hr = np.full((48, 48, 3), 90, dtype=np.uint8)
    hr[30:34, 30:34] = 255  # the most detailed spot is in the lower right: out of the detail's reach
    hr[10:14, 12:16] = 0
    crop = q.Box(8, 8, 32)
    detail = q.detail_box(hr, crop, side=8)
    reach = int(q.DETAIL_REACH * crop.size)
    assert crop.top <= detail.top and detail.top + 8 <= crop.top + reach
    assert crop.left <= detail.left and detail.left + 8 <= crop.left + reach
    assert detail.crop(hr).min() == 0  # it holds the dark square


def _row(seed: int = 1) -> q.CropRow:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    lr = hr[::2, ::2]

    def noisy(lr_: np.ndarray) -> np.ndarray:
        return np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)

    crop = q.Box(8, 12, 20)
    upscalers = {"bicubic": q.bicubic_upscaler(2), "noisy": noisy}
    return q.sr_crops("img", "photos", lr, hr, 2, crop, q.Box(10, 14, 6), upscalers)


def test_crop_psnr_is_psnr_y_of_the_cropped_arrays_and_not_the_whole_images():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:20] = np.clip(sr[:20].astype(int) + 30, 0, 255)  # errors only in the top half
    box = q.Box(20, 8, 16)
    expected = psnr_y(sr[20:36, 8:24], hr[20:36, 8:24], 2)
    assert q.crop_psnr(sr, hr, box, 2) == expected == float("inf")
    box = q.Box(10, 8, 16)
    assert q.crop_psnr(sr, hr, box, 2) == psnr_y(sr[10:26, 8:24], hr[10:26, 8:24], 2)
    assert q.crop_psnr(sr, hr, box, 2) != pytest.approx(psnr_y(sr, hr, 2), abs=0.1)
    with pytest.raises(ValueError, match="does not fit in a 40×48 image"):
        q.crop_psnr(sr, hr, q.Box(30, 0, 16), 2)


def test_sr_crops_scores_every_method_and_the_table_has_one_row_each():
    row = _row()
    assert [p.method for p in row.panels] == ["HR", "bicubic", "noisy"]
    assert row.panels[0].crop_psnr is None and row.panels[0].image.shape == (20, 20, 3)
    table = q.crops_table([row])
    assert list(table.method) == ["bicubic", "noisy"]
    assert table.loc[0, "crop_minus_bicubic"] == 0
    assert (table.crop_psnr != table.whole_psnr).all()
    sr = q.bicubic_upscaler(2)(row.hr[::2, ::2])
    assert table.loc[0, "crop_psnr"] == q.crop_psnr(sr, row.hr, row.crop, 2)


def test_sr_crops_rejects_an_upscaler_of_the_wrong_size():
    hr = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="half on img: SR is uint8 \\(8, 8, 3\\)"):
        q.sr_crops(
            "img", "photos", hr[::2, ::2], hr, 2, q.Box(0, 0, 8), q.Box(0, 0, 4), {"half": lambda x: x}
        )


def test_figure_has_one_panel_per_method_titled_with_its_crop_psnr():
    from enlcn.viz import plot_sr_crops

    rows = [_row(1), _row(2)]
    fig = plot_sr_crops(rows, notes={"noisy": "other weights"})
    try:
        titles = [
            [ax.get_title() for ax in fig.axes if ax.get_subplotspec().rowspan.start == r] for r in range(2)
        ]
        for row, row_titles in zip(rows, titles, strict=True):
            assert row_titles[0] == "img: HR, crop outlined"
            assert row_titles[1] == "HR"
            assert row_titles[2] == f"bicubic — {row.panels[1].crop_psnr:.2f} dB"
            assert row_titles[3] == f"noisy — {row.panels[2].crop_psnr:.2f} dB\nother weights"
        insets = [inset for ax in fig.axes for inset in ax.child_axes]
        assert len(insets) == 2 * 3  # one zoomed inset per crop panel
        assert insets[0].get_xlim() == (1.5, 7.5) and insets[0].get_ylim() == (7.5, 1.5)  # the detail box
    finally:
        plt.close(fig)


def test_figure_models_falls_back_to_the_substitute_profile(tmp_path):
    def keep(profile: str, run: str) -> None:
        path = tmp_path / "results" / profile / "study" / run / "weights.pt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")

    keep("cpu", "enlca")
    keep("pilot-x4", "base")
    keep("pilot-x4", "enlca")  # the profile's own weights come first
    found, missing = q.figure_models("cpu", tmp_path)
    assert [(s.method, s.profile) for s in found] == [("EDSR", "pilot-x4"), ("ENLCN", "cpu")]
    assert missing == ["EDSR + NLA"]
    assert q.figure_models("quick", tmp_path) == ([], ["EDSR", "EDSR + NLA", "ENLCN"])


def test_model_upscaler_returns_uint8_of_the_hr_size():
    import torch

    from enlcn.models import build_model

    torch.manual_seed(0)
    model = build_model("edsr", 2, "quick")
    lr = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    sr = q.model_upscaler(model, 2)(lr)
    assert sr.dtype == np.uint8 and sr.shape == (24, 20, 3)


def test_whole_image_check_compares_only_images_the_run_scored(tmp_path):
    import pandas as pd

    def scores(profile: str, run: str, rows: list[tuple[str, str, float]]) -> None:
        folder = tmp_path / "results" / profile / "study" / run
        folder.mkdir(parents=True)
        pd.DataFrame(rows, columns=["test_set", "image", "psnr"]).assign(ssim=0.5).to_csv(
            folder / "scores.csv"
        )

    scores("pilot-x4", "base", [("photos", "coins", 25.0), ("selfsim", "selfsim000", 20.0)])
    scores("cpu", "enlca", [("photos", "coins", 25.5), ("selfsim", "selfsim000", 21.0)])
    sources = [q.ModelSource("EDSR", q.BASE, "pilot-x4"), q.ModelSource("ENLCN", q.ENLCA, "cpu")]
    table = pd.DataFrame(
        {
            "method": ["EDSR", "EDSR", "ENLCN", "ENLCN"],
            "image": ["selfsim000", "coins"] * 2,
            "test_set": ["selfsim", "photos"] * 2,
            "whole_psnr": [19.0, 25.25, 21.0, 25.5],
        }
    )
    check = q.whole_image_check(table, sources, "cpu", tmp_path)
    # the pilot's selfsim000 is another image than the cpu profile's: not compared
    assert list(zip(check.method, check.image, strict=True)) == [
        ("EDSR", "coins"),
        ("ENLCN", "selfsim000"),
        ("ENLCN", "coins"),
    ]
    assert list(check.difference) == [0.25, 0.0, 0.0]


def test_the_figure_says_why_a_profile_on_the_standard_benchmarks_has_none():
    from enlcn.study import qualitative

    assert qualitative.unavailable("cpu") == "" and qualitative.unavailable("quick") == ""
    why = qualitative.unavailable("paper")
    assert "standard benchmarks" in why and "quick and cpu" in why
    with pytest.raises(ValueError, match="standard benchmarks"):
        qualitative.figure5_rows("paper", {})
