"""The powered study's paired statistics (enlcn.study.stats), checked on simulated seeds of known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from enlcn.study import stats


def test_arm_of_strips_only_a_seed_suffix():
    assert [stats.arm_of(n) for n in ("nla_s2", "nla", "base_s10", "enlca_k2", "enlca_k2_s1")] == [
        "nla", "nla", "base", "enlca_k2", "enlca_k2"
    ]


def test_interval_by_hand():
    iv = stats.paired_interval([0.1, 0.3, 0.2])
    assert iv.delta == pytest.approx(0.2) and iv.df == 2 and iv.n == 3
    assert iv.se == pytest.approx(0.1 / np.sqrt(3))
    assert iv.high - iv.delta == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-6)  # t_{0.975, 2}
    assert iv.t == pytest.approx(0.2 / (0.1 / np.sqrt(3)))
    assert stats.verdict(iv) == "not resolved"  # t = 3.46 < t_{0.975, 2} = 4.30
    assert stats.verdict(stats.paired_interval([0.19, 0.21, 0.2])) == "supported"
    assert stats.verdict(stats.paired_interval([-0.19, -0.21, -0.2])) == "contradicted"
    assert stats.verdict(stats.paired_interval([-0.1, 0.3, 0.2])) == "not resolved"
    assert stats.verdict(stats.paired_interval([0.4])).startswith("no noise estimate")
    assert stats.verdict(stats.paired_interval([])) == "not run yet"


def test_mde_is_the_effect_found_with_80_percent_power():
    # simulate: true effect = MDE computed from the true se; the test (interval excludes 0) must find it
    # about 80 % of the time (the t-quantile formula is approximate: within a few percent)
    rng = np.random.default_rng(0)
    n, sigma = 5, 0.1
    mde = stats.minimal_detectable_effect(sigma / np.sqrt(n), n - 1)
    hits = [stats.paired_interval(rng.normal(mde, sigma, n)).low > 0 for _ in range(4000)]
    assert 0.72 < np.mean(hits) < 0.86


@pytest.mark.parametrize("n", [3, 5])
def test_interval_covers_the_true_effect_95_percent_of_the_time(n):
    rng = np.random.default_rng(n)
    effect, sigma = 0.07, 0.04
    covered = []
    for _ in range(4000):
        iv = stats.paired_interval(rng.normal(effect, sigma, n))
        covered.append(iv.low <= effect <= iv.high)
    assert abs(np.mean(covered) - 0.95) < 0.012  # 4000 draws: binomial sd 0.0034


def test_pooled_interval_covers_and_is_narrower_on_average():
    rng = np.random.default_rng(7)
    effects, sigma, covered, widths, own = [0.0, 0.05, 0.1, -0.02, 0.2], 0.05, [], [], []
    for _ in range(2000):
        groups = [rng.normal(e, sigma, 2) for e in effects]  # two seeds per arm, as the sweeps
        sd, df = stats.pooled_sd(groups)
        assert df == 5
        for e, g in zip(effects, groups, strict=True):
            iv = stats.paired_interval(g, sd=sd, df=df)
            covered.append(iv.low <= e <= iv.high)
            widths.append(iv.high - iv.low)
            alone = stats.paired_interval(g)
            own.append(alone.high - alone.low)
    assert abs(np.mean(covered) - 0.95) < 0.012
    assert np.median(widths) < 0.5 * np.median(own)  # df 5 instead of 1


def test_pooled_sd_by_hand_and_errors():
    sd, df = stats.pooled_sd([np.array([1.0, 3.0]), np.array([0.0, 0.0, 3.0]), np.array([5.0])])
    assert df == 1 + 2
    assert sd == pytest.approx(np.sqrt((2.0 + 6.0) / 3))
    with pytest.raises(ValueError, match="at least one arm with two"):
        stats.pooled_sd([np.array([1.0])])
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.paired_interval([0.1, 0.2], sd=0.1)


def _scores(effects: dict[str, float], seeds: int, sigma_seed: float, rng) -> pd.DataFrame:
    rows = []
    for s in range(seeds):
        shared = rng.normal(0, 0.3)  # a seed's luck, common to every arm (what pairing removes)
        for arm, e in effects.items():
            run = arm if s == 0 else f"{arm}_s{s}"
            for test_set, offset in (("a", 30.0), ("b", 25.0)):
                noise = rng.normal(0, sigma_seed)
                for i in range(4):
                    rows.append((run, test_set, f"im{i}", offset + i + e + shared + noise))
    return pd.DataFrame(rows, columns=["run", "test_set", "image", "psnr"])


def test_claim_rows_from_per_image_scores():
    rng = np.random.default_rng(3)
    scores = _scores({"base": 0.0, "nla": 0.5, "enla": 0.0}, seeds=3, sigma_seed=0.02, rng=rng)
    seeds = {r: int(r.rsplit("_s", 1)[1]) if "_s" in r else 0 for r in scores.run.unique()}
    means = stats.seed_means(scores, seeds)
    assert set(means.columns) == {"arm", "seed", "run", "test_set", "psnr"} and len(means) == 18
    d = stats.paired_differences(means, "nla", "base", "a")
    assert list(d.index) == [0, 1, 2]
    row = stats.claim_row(means, "nla", "base", "a")
    # the shared per-seed luck (sd 0.3) cancels in the pairs: the interval is tight around 0.5
    assert row["verdict"] == "supported" and abs(row["Δ"] - 0.5) < 0.1 and row["SE"] < 0.05
    assert stats.claim_row(means, "enla", "base", "b")["verdict"] == "not resolved"
    with pytest.raises(KeyError, match="no seed given for run"):
        stats.seed_means(scores, {"base": 0})


def test_t_quantile_matches_scipy():
    iv = stats.paired_interval(np.array([1.0, 2.0, 4.0, 3.0]), level=0.9)
    half = sps.t.ppf(0.95, 3) * np.std([1, 2, 4, 3], ddof=1) / 2
    assert iv.high - iv.delta == pytest.approx(half)
