"""The study's data per profile: training, validation and test images, and the motif-pixel masks."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ..profiles import StudyData, get_profile
from ..provenance import REPO

Pairs = list[tuple[str, np.ndarray, np.ndarray]]
Masks = dict[str, dict[str, np.ndarray]]  # test set → image name → boolean HR mask


@functools.lru_cache(maxsize=4)
def study_data(profile: str, scale: int) -> tuple[Pairs, Pairs, dict[str, Pairs]]:
    """``(train, val, {test set: pairs})`` of ``profile``'s :class:`~enlcn.profiles.StudyData`.

    Cached (the MATLAB-bicubic LR images take seconds to make); treat the arrays as read-only.
    """
    from ..data import bicubic_downscale, modcrop
    from ..data.synthetic import skimage_images

    d: StudyData = get_profile(profile).study_data
    if d.source == "standard":
        return standard_data(scale, d.standard_val)
    if d.source != "offline":
        raise ValueError(f"profile {profile!r}: unknown study data source {d.source!r} (offline | standard)")

    def photos(split: str) -> Pairs:
        return [(n, bicubic_downscale(hr, scale), modcrop(hr, scale)) for n, hr in skimage_images(split)]

    train = (photos("train") if d.photos_in_train else []) + d.selfsim_set("train", scale).pairs()
    val = d.selfsim_set("val", scale).pairs()
    tests = {"photos": photos("test"), "selfsim": d.selfsim_set("test", scale).pairs()}
    return train, val, tests


@functools.lru_cache(maxsize=4)
def study_masks(profile: str, scale: int) -> Masks:
    """Region masks of ``profile``'s test sets: ``{"selfsim": {image: motif-copy pixels}}`` (offline data).

    Non-local attention can only help where a patch has repeats elsewhere in the image; on the smooth
    background of the self-similar images every model does about as well as bicubic, which dilutes a
    whole-image PSNR. Scoring the motif pixels alone (``selfsim_motifs``) measures where it matters.
    The standard benchmarks have no such ground truth: ``{}``.
    """
    d: StudyData = get_profile(profile).study_data
    if d.source != "offline":
        return {}
    return {"selfsim": d.selfsim_set("test", scale).motif_masks()}


def standard_data(scale: int, n_val: int, root: str | os.PathLike | None = None):
    """DIV2K train / first ``n_val`` DIV2K valid / the five benchmark sets, from ``root``.

    ``root`` defaults to ``$ENLCN_DATA`` or ``data/``; a missing folder is a FileNotFoundError that says
    how to get it (``enlcn data fetch``; needs internet).
    """
    from ..data.datasets import BENCHMARKS, benchmark_dataset, div2k

    root = Path(root or os.environ.get("ENLCN_DATA", REPO / "data"))
    try:
        train = list(div2k(root, "train", scale))
        val = list(div2k(root, "valid", scale))[:n_val]
        tests = {name: list(benchmark_dataset(root, name, scale)) for name in BENCHMARKS}
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err}. The paper profile trains on DIV2K and tests on {', '.join(BENCHMARKS)} under {root}: "
            f"`enlcn data fetch DIV2K_train_HR --root {root}/DIV2K` (and DIV2K_valid_HR the same way) and "
            f"`enlcn data fetch benchmark --root {root}` (needs internet)"
        ) from err
    return train, val, tests


def test_sets(profile: str, seed: int | None = None) -> dict[str, Pairs]:
    """``{test set: [(name, lr, hr), …]}`` of ``profile`` (uint8). ``seed`` draws a *fresh* sample of the
    procedural self-similar images — same generator and settings, another seed — to check that nothing
    was tuned to the committed test images (the photographs / benchmarks are fixed)."""
    scale = get_profile(profile).train_dict().get("scale", 4)
    tests = dict(study_data(profile, scale)[2])
    if seed is not None:
        import dataclasses

        d: StudyData = get_profile(profile).study_data
        fresh = dataclasses.replace(d, seeds=(d.seeds[0], d.seeds[1], int(seed)))
        tests["selfsim"] = fresh.selfsim_set("test", scale).pairs()
    return tests


def explore_images(profile: str, scale: int) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The explorer's images of ``profile``: name → ``(LR uint8, LR repeat labels or None)`` — four held-out
    self-similar images (with their true repeats), then the held-out photographs (offline data) or the
    first image of each benchmark set (standard data)."""
    from ..data import bicubic_downscale

    d: StudyData = get_profile(profile).study_data
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    test = d.selfsim_set("test", scale)
    for i in range(min(len(test), 4)):
        item = test.item(i)
        out[f"selfsim{i:03d}"] = (bicubic_downscale(item.image, scale), item.labels)
    if d.source == "offline":
        from ..data.synthetic import skimage_images

        for name, hr in skimage_images("test"):
            out[name] = (bicubic_downscale(hr, scale), None)
    else:
        for set_name, pairs in study_data(profile, scale)[2].items():
            name, lr, _ = pairs[0]
            out[f"{set_name}/{name}"] = (lr, None)
    return out
