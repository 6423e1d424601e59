"""The first (cpu) study's tables: mean scores per run, gains over a baseline, seed spread, and its
noise-bound verdict rule (Δ against z·√2·σ). The powered study's paired statistics are :mod:`.stats`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .registry import CLAIMS, PAPER_PSNR, SEED_GROUPS, paper_gain


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean Y-PSNR / SSIM per run (rows, in experiment order) and test set (columns)."""
    order = list(dict.fromkeys(scores["run"]))
    table = scores.pivot_table(index=["run", "label"], columns="test_set", values=["psnr", "ssim"])
    table = table.reindex(order, level=0)
    return table.round(4)


def compare(scores: pd.DataFrame, experiment: str, baseline: str = "base") -> pd.DataFrame:
    """Mean Y-PSNR per run and test set, its gain over ``baseline``, and the paper's number and gain.

    The gain is the mean over images of the per-image difference (paired), with its standard error.
    Paper columns are NaN where the paper has no number for the run (e.g. the k sweep is only a plot).
    """
    if scores.empty:
        return pd.DataFrame()
    paper = PAPER_PSNR.get(experiment, {"values": {}, "dataset": ""})
    wide = scores.pivot_table(index=["test_set", "image"], columns="run", values="psnr")
    rows = []
    for run in dict.fromkeys(scores["run"]):
        row = {"run": run, "label": scores.loc[scores.run == run, "label"].iloc[0]}
        for test_set, sub in wide.groupby(level="test_set"):
            row[f"{test_set} PSNR"] = sub[run].mean()
            if baseline in sub:
                delta = sub[run] - sub[baseline]
                row[f"{test_set} Δ"] = delta.mean()
                row[f"{test_set} Δ s.e."] = (
                    delta.std(ddof=1) / np.sqrt(len(delta)) if len(delta) > 1 else np.nan
                )
        value = paper["values"].get(run, np.nan)
        row[f"paper {paper['dataset']} PSNR".replace("  ", " ")] = value
        row["paper Δ"] = value - paper["values"].get(baseline, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def seed_spread(scores: pd.DataFrame) -> pd.DataFrame:
    """Run-to-run spread of the mean PSNR over the seeds of :data:`SEED_GROUPS` (per test set)."""
    rows = []
    for group, names in SEED_GROUPS.items():
        sub = scores[scores.run.isin(names)]
        if sub.empty:
            continue
        means = sub.groupby(["test_set", "run"])["psnr"].mean()
        for test_set, m in means.groupby(level="test_set"):
            rows.append(
                {
                    "setting": group,
                    "test_set": test_set,
                    "seeds": len(m),
                    "mean PSNR": m.mean(),
                    "std over seeds": m.std(ddof=1) if len(m) > 1 else np.nan,
                    "range": m.max() - m.min(),
                }
            )
    return pd.DataFrame(rows)


def verdicts(scores: pd.DataFrame, z: float = 2.0) -> pd.DataFrame:
    """Each claim of :data:`CLAIMS` judged against the run-to-run noise, per test set.

    ``Δ`` is the difference of the two runs' mean PSNR. The noise of one run's mean PSNR is taken as the
    largest standard deviation over seeds in :func:`seed_spread` (needs ≥ 2 seeds of a setting); the
    difference of two runs then has standard deviation ``√2·σ``. A claim is *supported* when
    ``Δ > z·√2·σ``, *contradicted* when ``Δ < −z·√2·σ``, and *not resolved* otherwise; with no noise
    estimate, or a run missing, it says so.
    """
    spread = seed_spread(scores)
    means = scores.groupby(["run", "test_set"])["psnr"].mean() if not scores.empty else pd.Series()
    test_sets = sorted(scores["test_set"].unique()) if not scores.empty else []
    rows = []
    for claim, run, ref, table in CLAIMS:
        gain, where = paper_gain(table, run, ref)
        for test_set in test_sets:
            sigmas = spread.loc[spread.test_set == test_set, "std over seeds"].dropna() if len(spread) else []
            sigma = float(np.max(sigmas)) if len(sigmas) else np.nan
            row = {"claim": claim, "paper": where, "paper Δ": gain, "test set": test_set}
            if (run, test_set) not in means or (ref, test_set) not in means:
                rows.append({**row, "verdict": "not run yet"})
                continue
            delta = float(means[(run, test_set)] - means[(ref, test_set)])
            bound = z * np.sqrt(2) * sigma
            if np.isnan(sigma):
                verdict = "no noise estimate yet (needs ≥ 2 seeds)"
            elif delta > bound:
                verdict = "supported"
            elif delta < -bound:
                verdict = "contradicted"
            else:
                verdict = "not resolved (within noise)"
            rows.append({**row, "our Δ": delta, f"noise ({z:g}·√2·σ)": bound, "verdict": verdict})
    # no test set scored yet: the columns still exist, so tables built from it are empty, not errors
    return pd.DataFrame(rows, columns=None if rows else ["claim", "paper", "paper Δ", "test set", "verdict"])
