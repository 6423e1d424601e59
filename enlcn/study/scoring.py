"""Scoring: per-image Y-PSNR / SSIM of a model (or any upscaler) on the study's test sets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .data import Masks, Pairs, study_data, study_masks
from .registry import BASE


def score(model: torch.nn.Module, scale: int, tests: dict[str, Pairs], masks: Masks | None = None):
    """Per-image Y-PSNR/SSIM of ``model`` (whole-image inference); see :func:`score_upscaled`."""
    from ..evaluate import upscale
    from ..metrics import quantize

    return score_upscaled(lambda lr: quantize(upscale(model, lr, scale, "whole")), scale, tests, masks)


def score_upscaled(
    upscaler: Callable[[np.ndarray], np.ndarray],
    scale: int,
    tests: dict[str, Pairs],
    masks: Masks | None = None,
) -> pd.DataFrame:
    """Per-image Y-PSNR/SSIM (no ``mean`` rows) of ``upscaler`` (uint8 LR → uint8 SR) on every test set.

    A test set with ``masks`` (:func:`study_masks`) is also scored on the masked pixels only, as the
    extra test set ``<name>_motifs`` (same SR images).
    """
    from ..metrics import dataset_scores

    masks = masks or {}
    frames = []
    for test_set, pairs in tests.items():
        triples = [(name, upscaler(lr), hr) for name, lr, hr in pairs]
        regions = [(test_set, None)]
        if test_set in masks:
            regions.append((f"{test_set}_motifs", masks[test_set]))
        for label, region in regions:
            table = dataset_scores(triples, scale, region)
            frames.append(table[table["image"] != "mean"].assign(test_set=label))
    return pd.concat(frames, ignore_index=True)


def bicubic_scores(profile: str) -> pd.DataFrame:
    """Per-image scores of MATLAB-bicubic upscaling on the profile's test sets: the no-learning floor."""
    from ..data.resize import imresize_matlab

    scale = BASE.config(profile).scale
    tests = study_data(profile, scale)[2]
    scores = score_upscaled(lambda lr: imresize_matlab(lr, scale), scale, tests, study_masks(profile, scale))
    return scores.assign(run="bicubic", label="bicubic (no learning)")
