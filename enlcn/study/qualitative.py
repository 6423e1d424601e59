"""The paper's Figure 5 from the committed models: the same HR crop super-resolved by each method.

Figure 5 of the paper shows ×4 crops of Urban100 images "rich in repeated textures and structures", one
per method. Here: one held-out self-similar image and one held-out photograph of a profile's test sets,
cropped as HR, MATLAB-bicubic, EDSR, EDSR + NLA and ENLCN, each crop with its Y-PSNR.

**Crop rule** (fixed before any super-resolved crop was looked at). A crop is a ``size × size`` HR square
on the LR grid (top and left multiples of the scale), one LR pixel away from every border:

* self-similar image: the window with the most *repeated* pixels — LR positions whose true repeat
  (same motif point, :attr:`~enlcn.data.synthetic.SelfSimilar.labels`) lies in the same window;
* photograph: the window of highest variance of the HR luma (the most detailed region).

Ties go to the topmost, then leftmost window. The zoomed detail of each crop is the ``detail × detail``
sub-window of highest HR-luma variance inside the crop's upper-left part (:data:`DETAIL_REACH`), so that
the inset drawn in the lower-right corner never hides it.

**Crop PSNR** is :func:`enlcn.metrics.psnr_y` of the cropped SR and HR arrays with the study's
``scale``-pixel border shave applied to the crop — the tables' whole-image rule, applied to the crop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..provenance import REPO
from .files import load_model, result_dir
from .registry import BASE, ENLCA, NLA, Run

Upscaler = Callable[[np.ndarray], np.ndarray]

#: the methods of Figure 5 that this study trained: panel label → registry run
METHODS: tuple[tuple[str, Run], ...] = (("EDSR", BASE), ("EDSR + NLA", NLA), ("ENLCN", ENLCA))
#: where a run's weights are looked for when ``profile`` did not keep them: the cpu study kept no
#: weights for EDSR and EDSR + NLA; the ×4 pilot trained both with the same 8-block, 48-feature preset
SUBSTITUTE_PROFILES: dict[str, tuple[str, ...]] = {"cpu": ("pilot-x4",)}
#: the detail window lies in this fraction of the crop, from its top-left corner
DETAIL_REACH = 0.55


@dataclass(frozen=True)
class Box:
    """A square of an HR image: top-left ``(top, left)`` and side ``size``, in HR pixels."""

    top: int
    left: int
    size: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The part of ``image`` (``H×W[×C]``) inside the box; ValueError when the box leaves it."""
        h, w = image.shape[:2]
        if self.top < 0 or self.left < 0 or self.top + self.size > h or self.left + self.size > w:
            raise ValueError(f"box {self} does not fit in a {h}×{w} image")
        return image[self.top : self.top + self.size, self.left : self.left + self.size]

    def within(self, outer: Box) -> Box:
        """This box given relative to ``outer``, moved to the coordinates of ``outer``'s image."""
        return Box(outer.top + self.top, outer.left + self.left, self.size)


def _best(scores: np.ndarray) -> tuple[int, int]:
    """Row and column of the largest score; ties to the topmost, then leftmost."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(scores)), scores.shape))


def repeated_pixels(labels: np.ndarray) -> int:
    """How many positions of ``labels`` (−1: background) share their label with another position."""
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    return int(counts[counts >= 2].sum())


def repeat_window(labels: np.ndarray, side: int, margin: int = 1) -> tuple[int, int]:
    """LR top-left of the ``side × side`` window of ``labels`` with the most :func:`repeated_pixels`,
    at least ``margin`` positions from every border."""
    h, w = labels.shape
    if side + 2 * margin > min(h, w):
        raise ValueError(f"a {side}-pixel window with a {margin}-pixel margin does not fit in labels {h}×{w}")
    scores = np.array(
        [
            [
                repeated_pixels(labels[r : r + side, c : c + side])
                for c in range(margin, w - side - margin + 1)
            ]
            for r in range(margin, h - side - margin + 1)
        ]
    )
    r, c = _best(scores)
    return r + margin, c + margin


def variance_window(y: np.ndarray, side: int, step: int = 1, margin: int = 0) -> tuple[int, int]:
    """Top-left of the ``side × side`` window of highest variance of ``y`` (2-D), among windows whose
    top and left are multiples of ``step`` and at least ``margin`` from every border."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"variance_window needs a 2-D image, got shape {y.shape}")
    h, w = y.shape
    if side + 2 * margin > min(h, w):
        raise ValueError(f"a {side}-pixel window with a {margin}-pixel margin does not fit in {h}×{w}")

    def window_sums(a: np.ndarray) -> np.ndarray:
        s = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return s[side:, side:] - s[:-side, side:] - s[side:, :-side] + s[:-side, :-side]

    n = side * side
    var = window_sums(y * y) / n - (window_sums(y) / n) ** 2
    start = -(-margin // step) * step  # first multiple of step at or after margin
    rows = np.arange(start, h - side - margin + 1, step)
    cols = np.arange(start, w - side - margin + 1, step)
    if not len(rows) or not len(cols):
        raise ValueError(
            f"no {side}-pixel window on a {step}-pixel grid fits in {h}×{w} with margin {margin}"
        )
    r, c = _best(var[np.ix_(rows, cols)])
    return int(rows[r]), int(cols[c])


def selfsim_crop(labels: np.ndarray, scale: int, size: int) -> Box:
    """The crop of a self-similar image: the window with the most repeated pixels (module doc)."""
    _check_size(size, scale)
    r, c = repeat_window(labels, size // scale, margin=1)
    return Box(scale * r, scale * c, size)


def photo_crop(hr: np.ndarray, scale: int, size: int) -> Box:
    """The crop of a photograph: the LR-grid window of highest HR-luma variance (module doc)."""
    from ..metrics import rgb_to_y

    _check_size(size, scale)
    r, c = variance_window(rgb_to_y(hr), size, step=scale, margin=scale)
    return Box(r, c, size)


def detail_box(hr: np.ndarray, crop: Box, side: int) -> Box:
    """The zoomed detail of ``crop``: its ``side × side`` sub-window of highest HR-luma variance inside its
    upper-left :data:`DETAIL_REACH` part, in the image's coordinates."""
    from ..metrics import rgb_to_y

    reach = int(DETAIL_REACH * crop.size)
    if side > reach:
        raise ValueError(
            f"a {side}-pixel detail does not fit in the upper-left {reach} pixels of a {crop.size} crop"
        )
    r, c = variance_window(rgb_to_y(crop.crop(hr))[:reach, :reach], side)
    return Box(r, c, side).within(crop)


def _check_size(size: int, scale: int) -> None:
    if size <= 2 * scale or size % scale:
        raise ValueError(
            f"crop size {size} must be a multiple of the scale {scale} and larger than {2 * scale}"
        )


# -- the crops and their PSNR ------------------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    """One method's crop: ``image`` (uint8) and its Y-PSNR on the crop and on the whole image (dB);
    the HR panel has no PSNR (None)."""

    method: str
    image: np.ndarray
    crop_psnr: float | None = None
    whole_psnr: float | None = None


@dataclass(frozen=True)
class CropRow:
    """One image of the figure: the whole HR image, its crop and detail boxes, one :class:`Panel` per
    method (HR first)."""

    image: str
    test_set: str
    hr: np.ndarray
    crop: Box
    detail: Box
    scale: int
    panels: tuple[Panel, ...]


def crop_psnr(sr: np.ndarray, hr: np.ndarray, box: Box, scale: int) -> float:
    """Y-PSNR of ``box`` of ``sr`` against ``hr``, the crop's border shaved by ``scale`` as the tables'
    whole images are (:func:`enlcn.metrics.psnr_y`)."""
    from ..metrics import psnr_y

    return psnr_y(box.crop(sr), box.crop(hr), scale)


def sr_crops(
    image: str,
    test_set: str,
    lr: np.ndarray,
    hr: np.ndarray,
    scale: int,
    crop: Box,
    detail: Box,
    upscalers: Mapping[str, Upscaler],
) -> CropRow:
    """Super-resolve ``lr`` with every upscaler (uint8 LR → uint8 SR of ``hr``'s shape) and cut ``crop``."""
    from ..metrics import psnr_y

    panels = [Panel("HR", crop.crop(hr))]
    for method, upscale in upscalers.items():
        sr = upscale(lr)
        if sr.shape != hr.shape or sr.dtype != np.uint8:
            raise ValueError(f"{method} on {image}: SR is {sr.dtype} {sr.shape}, HR is uint8 {hr.shape}")
        panels.append(Panel(method, crop.crop(sr), crop_psnr(sr, hr, crop, scale), psnr_y(sr, hr, scale)))
    return CropRow(image, test_set, hr, crop, detail, scale, tuple(panels))


def crops_table(rows: Sequence[CropRow]) -> pd.DataFrame:
    """One row per image and method (HR left out): crop and detail boxes (HR pixels), crop and whole-image
    Y-PSNR (dB), and the crop minus the bicubic crop."""
    records = []
    for row in rows:
        bicubic = next((p.crop_psnr for p in row.panels if p.method == "bicubic"), np.nan)
        for p in row.panels[1:]:
            records.append(
                {
                    "image": row.image,
                    "test_set": row.test_set,
                    "top": row.crop.top,
                    "left": row.crop.left,
                    "size": row.crop.size,
                    "detail_top": row.detail.top,
                    "detail_left": row.detail.left,
                    "detail_size": row.detail.size,
                    "method": p.method,
                    "crop_psnr": p.crop_psnr,
                    "whole_psnr": p.whole_psnr,
                    "crop_minus_bicubic": p.crop_psnr - bicubic,
                }
            )
    return pd.DataFrame(records)


# -- upscalers and the models of the figure ----------------------------------------------------------
def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB-bicubic ×``scale``, the study's no-learning floor (as :func:`~enlcn.study.bicubic_scores`)."""
    from ..data.resize import imresize_matlab

    return lambda lr: imresize_matlab(lr, scale)


def model_upscaler(model: torch.nn.Module, scale: int) -> Upscaler:
    """Whole-image inference, quantized to uint8, as the study scores its runs (:func:`enlcn.study.score`)."""
    from ..evaluate import upscale
    from ..metrics import quantize

    return lambda lr: quantize(upscale(model, lr, scale, "whole"))


@dataclass(frozen=True)
class ModelSource:
    """Where a method's committed weights come from: ``run`` of ``profile``."""

    method: str
    run: Run
    profile: str

    def path(self, root: Path = REPO) -> Path:
        return result_dir(self.profile, self.run, root) / "weights.pt"


def figure_models(profile: str, root: Path = REPO) -> tuple[list[ModelSource], list[str]]:
    """The :data:`METHODS` with committed weights — ``profile``'s own, else the first of its
    :data:`SUBSTITUTE_PROFILES` that kept them — and the methods with none anywhere."""
    found, missing = [], []
    for method, run in METHODS:
        for candidate in (profile, *SUBSTITUTE_PROFILES.get(profile, ())):
            source = ModelSource(method, run, candidate)
            if source.path(root).exists():
                found.append(source)
                break
        else:
            missing.append(method)
    return found, missing


def load_upscalers(sources: Sequence[ModelSource], scale: int, root: Path = REPO) -> dict[str, Upscaler]:
    """``bicubic`` and each source's model (ValueError when a model's scale is not ``scale``)."""
    out = {"bicubic": bicubic_upscaler(scale)}
    for s in sources:
        model = load_model(s.profile, s.run, root)
        if model.config.scale != scale:
            raise ValueError(
                f"{s.method} ({s.run.name}, {s.profile}) is a ×{model.config.scale} model, "
                f"the figure is ×{scale}"
            )
        out[s.method] = model_upscaler(model, scale)
    return out


def unavailable(profile: str) -> str:
    """Why the figure cannot be drawn under ``profile`` (``""``: it can): it needs the offline test sets
    (a held-out self-similar image with its true repeats, and the photographs); a profile on the standard
    benchmarks (``paper``) has neither."""
    from ..profiles import get_profile

    data = get_profile(profile).study_data
    if data.source != "offline":
        return (f"profile {profile!r} tests on the standard benchmarks, not on the offline self-similar "
                "images and photographs this figure crops (profiles quick and cpu have them)")
    return ""


def figure5_rows(
    profile: str,
    upscalers: Mapping[str, Upscaler],
    photo: str = "coins",
    selfsim_index: int = 0,
    size: int = 96,
    detail: int = 24,
) -> list[CropRow]:
    """The figure's two rows for ``profile``'s test sets: self-similar image ``selfsim_index`` and the
    photograph ``photo``, cropped by the module's rule."""
    from ..profiles import get_profile
    from .data import study_data

    why = unavailable(profile)
    if why:
        raise ValueError(why)
    scale = BASE.config(profile).scale
    tests = study_data(profile, scale)[2]
    name, lr, hr = tests["selfsim"][selfsim_index]
    labels = get_profile(profile).study_data.selfsim_set("test", scale).item(selfsim_index).labels
    labels = labels[: lr.shape[0], : lr.shape[1]]
    box = selfsim_crop(labels, scale, size)
    rows = [sr_crops(name, "selfsim", lr, hr, scale, box, detail_box(hr, box, detail), upscalers)]
    photos = {n: (lr_, hr_) for n, lr_, hr_ in tests["photos"]}
    if photo not in photos:
        raise ValueError(
            f"no photograph {photo!r} in the test set of profile {profile!r}: {', '.join(photos)}"
        )
    lr, hr = photos[photo]
    box = photo_crop(hr, scale, size)
    rows.append(sr_crops(photo, "photos", lr, hr, scale, box, detail_box(hr, box, detail), upscalers))
    return rows


def sources_table(sources: Sequence[ModelSource], root: Path = REPO) -> pd.DataFrame:
    """Where each method's weights come from and how that run was trained (its committed config and
    summary): profile, run, scale, steps, learning rate, number of self-similar training images."""
    import json

    from ..profiles import get_profile

    rows = []
    for s in sources:
        folder = result_dir(s.profile, s.run, root)
        config = json.loads((folder / "config.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        rows.append(
            {
                "method": s.method,
                "weights": f"results/{s.profile}/study/{s.run.name}/weights.pt",
                "profile": s.profile,
                "scale": config["scale"],
                "steps": summary["steps"],
                "lr": config["lr"],
                "selfsim_train_images": get_profile(s.profile).study_data.selfsim_train,
            }
        )
    return pd.DataFrame(rows)


def whole_image_check(
    table: pd.DataFrame, sources: Sequence[ModelSource], profile: str, root: Path = REPO
) -> pd.DataFrame:
    """``whole_psnr`` of :func:`crops_table` beside the same image's PSNR in the run's committed
    ``scores.csv``, where that run scored the same image: the photographs are one test set in every offline
    profile; a self-similar image only in ``profile`` itself (other profiles draw other ones)."""
    from .files import load_scores

    rows = []
    for s in sources:
        scores = load_scores(s.profile, s.run, root).set_index(["test_set", "image"])["psnr"]
        mine = table[table.method == s.method]
        for _, r in mine.iterrows():
            if r.test_set != "photos" and s.profile != profile:
                continue
            committed = scores.get((r.test_set, r.image))
            if committed is None:
                continue
            rows.append(
                {
                    "method": s.method,
                    "image": r.image,
                    "whole_psnr": r.whole_psnr,
                    "scores_csv": float(committed),
                    "difference": r.whole_psnr - float(committed),
                }
            )
    return pd.DataFrame(rows, columns=["method", "image", "whole_psnr", "scores_csv", "difference"])
