"""What the Findings chapter reads of the imported GPU study: its manifest (:func:`gpu_manifest`), the seed
means of its runs (:func:`gpu_means`) and the pilot's decision rule on them (:func:`gpu_decision`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ...provenance import REPO
from .importer import STUDY_FILE, setting_of
from .setting import PROFILE, run_by_name


def gpu_manifest(root: Path = REPO) -> dict[str, Any] | None:
    """The imported bundle's manifest and import report (``results/gpu-x2/study/gpu-study.json``), or None."""
    path = root / "results" / PROFILE / "study" / STUDY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def gpu_means(root: Path = REPO) -> pd.DataFrame:
    """:func:`enlcn.study.stats.seed_means` (PSNR and SSIM) of the imported GPU runs (empty without any)."""
    from .. import stats
    from ..files import load_scores

    manifest = gpu_manifest(root)
    cols = ["arm", "seed", "run", "test_set", "psnr", "ssim"]
    if manifest is None:
        return pd.DataFrame(columns=cols)
    runs = [run_by_name(r["run"]) for r in manifest["runs"] if r["error"] is None]
    if not runs:
        return pd.DataFrame(columns=cols)
    scores = pd.concat([load_scores(PROFILE, r, root) for r in runs], ignore_index=True)
    seeds = {r.name: r.seed for r in runs}
    psnr = stats.seed_means(scores, seeds, "psnr")
    return psnr.merge(stats.seed_means(scores, seeds, "ssim"), on=["arm", "seed", "run", "test_set"])


def gpu_decision(root: Path = REPO) -> dict[str, Any] | None:
    """The pilot's decision rule on the imported GPU runs (:func:`enlcn.study.pilot.decision_row`), with
    ``counts``: the rule is met and S reached ``S_min`` (not the tier-1 fallback). None without a bundle."""
    from ..pilot import bicubic_means, decision_row

    manifest = gpu_manifest(root)
    means = gpu_means(root)
    if manifest is None or means.empty:
        return None
    row = decision_row(PROFILE, means, bicubic_means(setting_of(manifest).data_profile))
    row["steps"] = manifest["steps"]
    row["counts"] = bool(row["meets the rule"] and not manifest["fallback_exploratory"])
    return row
