"""Eq. 7 (variance of the random-feature kernel estimate) against Monte Carlo, and its closed forms.

Statistical bounds: with a fixed seed every test is deterministic. Bounds are ``5`` standard deviations
of the tested statistic, computed from the sampling distribution (not fitted): by Chebyshev's inequality a
statistic lands outside them with probability at most 1/25 for ANY seed, whatever its distribution —
which matters here, because the lognormal terms make the sample variance strongly skewed, so a normal
approximation would not be justified.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from enlcn.theory import (
    kernel_variance,
    kernel_variance_for_k,
    log_kernel_variance,
    monte_carlo_kernel,
    relative_std_for_k,
    sample_variance_std,
    vectors_for_k,
)

SIGMAS = 5.0  # Chebyshev: P(|X − EX| ≥ 5 sd) ≤ 1/25


def embed(u: np.ndarray, c: int) -> np.ndarray:
    """``u`` padded with zeros to ``c`` dimensions (Eq. 7 and the feature laws are rotation invariant)."""
    out = np.zeros(c)
    out[: u.size] = u
    return out


def pair(k: float, cos: float, c: int) -> tuple[np.ndarray, np.ndarray]:
    q, key = vectors_for_k(k, cos)
    return embed(q, c), embed(key, c)


# -- closed forms ------------------------------------------------------------------------------------
def test_kernel_variance_hand_computed() -> None:
    # q ⟂ k, ‖q + k‖² = 2: (1/2)·exp(0)²·(e² − 1)
    assert kernel_variance([1.0, 0.0], [0.0, 1.0], 2) == pytest.approx(0.5 * (math.e**2 - 1), rel=1e-14)
    # qᵀk = 1, ‖q + k‖² = 4, m = 4: (1/4)·e²·(e⁴ − 1)
    assert kernel_variance([1.0, 0.0], [1.0, 0.0], 4) == pytest.approx(
        0.25 * math.e**2 * (math.e**4 - 1), rel=1e-14
    )


def test_kernel_variance_accepts_tensors_and_arrays() -> None:
    q, k = [0.3, -0.2, 0.5], [0.1, 0.4, -0.3]
    expected = kernel_variance(q, k, 8)
    assert kernel_variance(torch.tensor(q), torch.tensor(k, dtype=torch.float64), 8) == pytest.approx(
        expected,
        rel=1e-6,  # float32 input rounds q
    )
    assert kernel_variance(np.array(q), np.array(k), 8) == expected
    with pytest.raises(ValueError, match="same length"):
        kernel_variance([1.0, 0.0], [1.0], 2)
    with pytest.raises(ValueError, match="positive int"):
        kernel_variance(q, k, 0)


def test_kernel_variance_large_inputs_stay_finite_in_log_space() -> None:
    q, k = pair(100.0, 0.5, 4)  # ‖q + k‖² = 300: exp would overflow float64 only past 709
    assert log_kernel_variance(q, k, 128) == pytest.approx(2 * 50.0 + 300.0 - math.log(128), rel=1e-12)
    assert kernel_variance(q, k, 128) == pytest.approx(math.exp(100.0 + 300.0) / 128, rel=1e-12)
    assert kernel_variance(*pair(400.0, 0.5, 4), 128) == math.inf
    assert kernel_variance([1.0, 2.0], [-1.0, -2.0], 3) == 0.0  # q + k = 0: exact estimate


def test_for_k_matches_general_formula_for_any_vectors_with_those_norms() -> None:
    rng = np.random.default_rng(0)
    k, cos, c = 3.0, 0.3, 64
    basis, _ = np.linalg.qr(rng.standard_normal((c, 2)))  # two orthonormal directions in R^64
    q = math.sqrt(k) * basis[:, 0]
    key = math.sqrt(k) * (cos * basis[:, 0] + math.sqrt(1 - cos**2) * basis[:, 1])
    expected = math.exp(2 * k * cos) * math.expm1(2 * k * (1 + cos)) / 16
    assert kernel_variance_for_k(k, cos, 16) == pytest.approx(expected, rel=1e-12)
    assert kernel_variance(q, key, 16) == pytest.approx(expected, rel=1e-12)
    assert relative_std_for_k(k, cos, 16) == pytest.approx(math.sqrt(math.expm1(2 * k * (1 + cos)) / 16))


def test_variance_grows_monotonically_with_amplification() -> None:
    # Figure 6's claim: at fixed cosine, the variance explodes with k (here cos = 0.5, k = 0.1 … 20).
    ks = np.linspace(0.1, 20.0, 200)
    variances = np.array([kernel_variance_for_k(float(k), 0.5, 128) for k in ks])
    assert np.all(np.diff(variances) > 0)
    assert variances[-1] / variances[0] > 1e20  # exponential, not polynomial: e^{4k} growth
    rel = np.array([relative_std_for_k(float(k), 0.5, 128) for k in ks])
    assert np.all(np.diff(rel) > 0)  # the error grows faster than the kernel value itself


def test_sample_variance_std_reduces_to_gaussian_case_for_tiny_norms() -> None:
    # ‖q + k‖² → 0: the terms become Gaussian (kurtosis 3), so sd(S²) → σ²·√(2/(D − 1)).
    q, k = [1e-4, 0.0], [0.0, 1e-4]
    draws = 1000
    expected = kernel_variance(q, k, 4) * math.sqrt(2 / (draws - 1))
    assert sample_variance_std(q, k, 4, draws) == pytest.approx(expected, rel=1e-3)


# -- Monte Carlo ---------------------------------------------------------------------------------------
def test_monte_carlo_is_reproducible_and_shaped() -> None:
    q, k = pair(1.0, 0.2, 8)
    a = monte_carlo_kernel(q, k, 4, 10, generator=torch.Generator().manual_seed(3))
    b = monte_carlo_kernel(q, k, 4, 10, generator=torch.Generator().manual_seed(3))
    assert a.shape == (10,) and a.dtype == torch.float64
    assert torch.equal(a, b)
    o = monte_carlo_kernel(q, k, 4, 3, orthogonal=True, generator=torch.Generator().manual_seed(3))
    assert o.shape == (3,) and bool((o > 0).all())


def test_iid_estimate_is_unbiased() -> None:
    # Eq. 4: E[φ(q)ᵀφ(k)] = exp(qᵀk); standard error from Eq. 7.
    c, m, draws = 16, 8, 100_000
    rng = np.random.default_rng(1)
    q, k = 0.15 * rng.standard_normal(c), 0.15 * rng.standard_normal(c)  # ‖q‖², ‖k‖² ≈ 0.36
    est = monte_carlo_kernel(q, k, m, draws, generator=torch.Generator().manual_seed(11))
    se = math.sqrt(kernel_variance(q, k, m) / draws)
    assert abs(est.mean().item() - math.exp(q @ k)) < SIGMAS * se


# (k, cos) pairs at k = 1, 2, 4 (and two smaller ‖q + k‖²). ‖q + k‖² = 2k(1 + cos) ≤ 2 keeps the
# sample variance informative: its relative sd is about √((κ_X − 1)/D), with the estimate's kurtosis
# κ_X = (κ_Y + 3(m − 1))/m and κ_Y ≈ e^{6‖q+k‖²} (see sample_variance_std). At ‖q + k‖² = 2, m = 8 and
# D = 4·10⁵ that is 3.5 % (a 5-sd bound of 18 %); at ‖q + k‖² = 3 it is 24 % and at 4 it is 170 %,
# where a sample variance can no longer test anything.
VARIANCE_CASES = [(1.0, 0.0), (2.0, -0.5), (4.0, -0.75), (1.0, -0.25), (0.25, 0.0)]


@pytest.mark.parametrize(("k", "cos"), VARIANCE_CASES)
def test_iid_variance_matches_eq7(k: float, cos: float) -> None:
    c, m, draws = 16, 8, 400_000
    q, key = pair(k, cos, c)
    expected = kernel_variance(q, key, m)
    bound = SIGMAS * sample_variance_std(q, key, m, draws)  # from the closed-form 4th moment
    assert bound < 0.2 * expected  # the check can tell Eq. 7 from e.g. a wrong 1/m or missing "−1"
    est = monte_carlo_kernel(q, key, m, draws, generator=torch.Generator().manual_seed(int(100 * k)))
    assert abs(est.var().item() - expected) < bound


def test_orthogonal_features_have_lower_variance() -> None:
    # m = c orthogonal rows (one Haar block with χ_c lengths) vs Eq. 7's i.i.d. variance, q ⟂ k.
    # At ‖q + k‖² = 0.5 the orthogonal variance is about 15 % lower, while 5 sd of the sample variance
    # at D = 10⁴ is about 6 % — the margin is real, not a lucky seed.
    c = m = 16
    draws = 10_000
    q, key = pair(0.25, 0.0, c)  # ‖q‖² = ‖k‖² = 0.25, ‖q + k‖² = 0.5
    est = monte_carlo_kernel(q, key, m, draws, orthogonal=True, generator=torch.Generator().manual_seed(5))
    # Unbiased too: each orthogonal row is marginally N(0, I_c). Standard error from the sample.
    assert abs(est.mean().item() - 1.0) < SIGMAS * est.std().item() / math.sqrt(draws)
    # sd of the sample variance by the delta method with the sample 4th central moment (no closed form
    # for orthogonal features): Var(S²) ≈ (μ₄ − σ⁴)/D.
    centered = est - est.mean()
    s2 = centered.pow(2).mean().item()
    sd_s2 = math.sqrt((centered.pow(4).mean().item() - s2**2) / draws)
    iid = kernel_variance(q, key, m)
    assert est.var().item() + SIGMAS * sd_s2 < iid


def test_variance_vs_k_table_matches_eq7_where_the_sample_is_reliable():
    from enlcn.theory import relative_std_for_k, variance_vs_k

    df = variance_vs_k([0.5, 1.0], [0.0], m=16, c=8, draws=4000, seed=0)
    assert list(df["method"].unique()) == [
        "Eq. 7 (i.i.d.)",
        "Monte Carlo, i.i.d. (paper)",
        "Monte Carlo, orthogonal (official)",
    ]
    for k in (0.5, 1.0):
        rows = df[df.k == k].set_index("method")
        theory = rows.loc["Eq. 7 (i.i.d.)", "rel_std"]
        assert theory == pytest.approx(relative_std_for_k(k, 0.0, 16))
        mc = rows.loc["Monte Carlo, i.i.d. (paper)"]
        assert abs(mc.rel_std - theory) < 5 * mc.rel_std_se
