"""The powered study's statistics: paired differences over seeds, t-intervals, MDE and verdicts.

The rule (book/protocol.md, fixed before the pilot): a seed fixes every arm's initial backbone and every
batch (:func:`enlcn.train.paired_backbone_init`, :class:`enlcn.train.PatchBatches`), so an arm and its
baseline trained with the same seed form a pair. For a claim "arm beats baseline" on a test set:

* ``d_s`` = (arm's mean Y-PSNR over the test images) − (baseline's), for each seed ``s`` both have;
* Δ = mean of ``d_s``; SE = sd(``d_s``)/√n; a 95 % t-interval with n − 1 degrees of freedom
  (:func:`paired_interval`), or with the *pooled* sd of several arms' differences and their summed
  degrees of freedom (:func:`pooled_sd`), for sweeps with two seeds per arm;
* verdict *supported* if the interval lies above 0, *contradicted* if below, else *not resolved*
  (:func:`verdict`);
* MDE = (t₁₋α/₂ + t_power) · SE, the true effect the test would detect with probability ``power``
  (:func:`minimal_detectable_effect`): what a "not resolved" could have missed.

Every function here is pure: DataFrames and numbers in, DataFrames and numbers out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

_SEED_SUFFIX = re.compile(r"_s(\d+)$")


def arm_of(run: str) -> str:
    """The arm a run name belongs to: ``nla_s2`` → ``nla``; a name with no ``_s<n>`` suffix is its own arm."""
    return _SEED_SUFFIX.sub("", run)


def seed_means(scores: pd.DataFrame, seeds: dict[str, int], metric: str = "psnr") -> pd.DataFrame:
    """Test-set means per run: columns ``arm, seed, run, test_set, <metric>``.

    ``scores`` are per-image rows (``run, test_set, image, <metric>``, as :func:`enlcn.study.load_scores`
    gives); ``seeds`` maps each run name to its seed (``Run.seed``).
    """
    missing = sorted(set(scores["run"]) - set(seeds))
    if missing:
        raise KeyError(f"no seed given for run(s) {', '.join(missing)}")
    means = scores.groupby(["run", "test_set"], sort=False)[metric].mean().reset_index()
    means.insert(0, "seed", means["run"].map(seeds).astype(int))
    means.insert(0, "arm", means["run"].map(arm_of))
    return means


def paired_differences(
    means: pd.DataFrame, arm: str, baseline: str, test_set: str, metric: str = "psnr"
) -> pd.Series:
    """Per-seed ``arm − baseline`` of :func:`seed_means` on ``test_set``, seeds both have (index: seed)."""
    sub = means[means["test_set"] == test_set]
    a = sub[sub["arm"] == arm].set_index("seed")[metric]
    b = sub[sub["arm"] == baseline].set_index("seed")[metric]
    for name, s in ((arm, a), (baseline, b)):
        if s.index.duplicated().any():
            raise ValueError(f"arm {name!r} has two runs with the same seed on {test_set!r}")
    common = a.index.intersection(b.index).sort_values()
    return (a[common] - b[common]).rename(f"{arm} − {baseline}")


@dataclass(frozen=True)
class Interval:
    """A paired estimate: mean difference, its standard error, the t-interval and its degrees of freedom."""

    delta: float
    se: float
    low: float
    high: float
    df: int
    n: int
    level: float = 0.95

    @property
    def t(self) -> float:
        """Δ / SE (NaN without an SE)."""
        return self.delta / self.se if self.se > 0 else float("nan")


def paired_interval(diffs: pd.Series | np.ndarray, level: float = 0.95, sd: float | None = None,
                    df: int | None = None) -> Interval:
    """Mean of ``diffs`` with a ``level`` t-interval.

    By default the sd and degrees of freedom are the sample's own (``n − 1``); give ``sd`` and ``df``
    to use a pooled estimate (:func:`pooled_sd`). With fewer than two differences and no pooled sd the
    interval is NaN (no noise estimate).
    """
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, nan, 0, 0, level)
    if sd is None:
        sd, df = (float(np.std(d, ddof=1)), n - 1) if n > 1 else (float("nan"), 0)
    elif df is None or df < 1:
        raise ValueError("a pooled sd needs its degrees of freedom (df ≥ 1)")
    mean = float(d.mean())
    se = sd / np.sqrt(n)
    if not df or not np.isfinite(se):
        return Interval(mean, float("nan"), float("nan"), float("nan"), int(df or 0), n, level)
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return Interval(mean, float(se), mean - half, mean + half, int(df), n, level)


def pooled_sd(groups: list[pd.Series | np.ndarray]) -> tuple[float, int]:
    """Pooled sd of several arms' paired differences, ``(sd, df)`` with ``df = Σ (nᵢ − 1)``.

    ``s² = Σᵢ Σₛ (dᵢₛ − d̄ᵢ)² / Σᵢ (nᵢ − 1)``: each arm keeps its own mean, the noise is shared.
    """
    ss, df = 0.0, 0
    for g in groups:
        d = np.asarray(g, dtype=float)
        if d.size > 1:
            ss += float(((d - d.mean()) ** 2).sum())
            df += d.size - 1
    if df == 0:
        raise ValueError("pooling needs at least one arm with two or more seeds")
    return float(np.sqrt(ss / df)), df


def minimal_detectable_effect(se: float, df: int, level: float = 0.95, power: float = 0.8) -> float:
    """``(t_{(1+level)/2, df} + t_{power, df}) · SE``: the effect a two-sided test at ``1 − level`` finds with
    probability ``power`` (the usual normal-approximation formula with t quantiles)."""
    if not df or not np.isfinite(se):
        return float("nan")
    return float((sps.t.ppf(0.5 + level / 2, df) + sps.t.ppf(power, df)) * se)


def verdict(interval: Interval) -> str:
    """*supported* (interval above 0), *contradicted* (below 0), *not resolved*, or why there is none."""
    if interval.n == 0:
        return "not run yet"
    if not np.isfinite(interval.low):
        return "no noise estimate (needs ≥ 2 seeds)"
    if interval.low > 0:
        return "supported"
    if interval.high < 0:
        return "contradicted"
    return "not resolved"


def claim_row(
    means: pd.DataFrame,
    arm: str,
    baseline: str,
    test_set: str,
    metric: str = "psnr",
    level: float = 0.95,
    pooled: tuple[float, int] | None = None,
) -> dict[str, object]:
    """One claim on one test set: seeds, Δ, SE, interval, t, MDE and verdict (``pooled``: ``(sd, df)``)."""
    diffs = paired_differences(means, arm, baseline, test_set, metric)
    sd, df = pooled if pooled is not None else (None, None)
    iv = paired_interval(diffs, level, sd, df)
    return {
        "arm": arm,
        "baseline": baseline,
        "test set": test_set,
        "seeds": iv.n,
        "Δ": iv.delta,
        "SE": iv.se,
        "low": iv.low,
        "high": iv.high,
        "t": iv.t,
        "df": iv.df,
        "MDE": minimal_detectable_effect(iv.se, iv.df, level),
        "pooled": pooled is not None,
        "verdict": verdict(iv),
    }
