"""The variance of ENLA's random-feature kernel estimate (paper Eq. 7, proof in Appendix A.2).

With ``m`` i.i.d. rows ``f ~ N(0, I_c)`` and ``φ(u) = m^-½·exp(F u − ‖u‖²/2)`` (Eq. 4), the estimate
``φ(q)ᵀφ(k)`` of ``exp(qᵀk)`` is unbiased and (Eq. 7)

    Var(φ(q)ᵀφ(k)) = (1/m) · exp(qᵀk)² · (exp(‖q + k‖²) − 1).

With the paper's normalised, amplified inputs (Eq. 3: ``‖q‖² = ‖k‖² = k``, cosine ``cos``) this is
``(1/m)·exp(2k·cos)·(exp(2k(1 + cos)) − 1)``: it grows exponentially in the amplification ``k``, the
trade-off of the paper's Figure 6. Orthogonal features (the official code) have no closed form in the
paper; :func:`monte_carlo_kernel` measures them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .attention.kernels import gaussian_projection, random_features

ArrayLike = Tensor | np.ndarray | list[float] | tuple[float, ...]


def as_vector(u: ArrayLike) -> np.ndarray:
    """``u`` (torch tensor, numpy array or sequence) as a 1-D float64 numpy array."""
    if isinstance(u, Tensor):
        u = u.detach().cpu().double().numpy()
    arr = np.asarray(u, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a non-empty 1-D vector, got shape {arr.shape}")
    return arr


def log_expm1(x: float) -> float:
    """``log(exp(x) − 1)`` for ``x > 0``, without overflow for large ``x``."""
    if x <= 0:
        raise ValueError(f"log_expm1 needs x > 0, got {x}")
    return x + math.log1p(-math.exp(-x)) if x > 1.0 else math.log(math.expm1(x))


def log_kernel_variance(q: ArrayLike, k: ArrayLike, m: int) -> float:
    """``log Var(φ(q)ᵀφ(k))`` of Eq. 7 (i.i.d. Gaussian features); ``-inf`` when ``q + k = 0``."""
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    qv, kv = as_vector(q), as_vector(k)
    if qv.shape != kv.shape:
        raise ValueError(f"q and k must have the same length, got {qv.size} and {kv.size}")
    z2 = float(np.sum((qv + kv) ** 2))
    if z2 == 0.0:
        return -math.inf  # f·0 is constant: the estimate is exact
    return 2.0 * float(qv @ kv) + log_expm1(z2) - math.log(m)


def kernel_variance(q: ArrayLike, k: ArrayLike, m: int) -> float:
    """Eq. 7 (App. A.2): ``Var(φ(q)ᵀφ(k)) = (1/m)·exp(qᵀk)²·(exp(‖q+k‖²) − 1)`` for i.i.d. features.

    ``q``, ``k``: 1-D torch tensors, numpy arrays or sequences of equal length; computed in float64 in
    log space, so the result is ``inf`` only when it exceeds float64's range.
    """
    log_var = log_kernel_variance(q, k, m)
    return math.exp(log_var) if log_var < 709.0 else math.inf


def kernel_variance_for_k(k: float, cos: float, m: int) -> float:
    """Eq. 7 for the paper's inputs (Eq. 3): ``‖q‖² = ‖k‖² = k`` at cosine ``cos`` (Figure 6's curve).

    Then ``qᵀk = k·cos`` and ``‖q + k‖² = 2k(1 + cos)``, so ``Var = (1/m)·e^{2k·cos}·(e^{2k(1+cos)} − 1)``.
    """
    q, key = vectors_for_k(k, cos)
    return kernel_variance(q, key, m)


def relative_std_for_k(k: float, cos: float, m: int) -> float:
    """``std / mean`` of the estimate at :func:`kernel_variance_for_k`'s inputs: ``√((e^{2k(1+cos)} − 1)/m)``.

    The mean is ``exp(qᵀk) = e^{k·cos}`` (Eq. 4 is unbiased), so the ``K²`` factor of Eq. 7 cancels.
    """
    q, key = vectors_for_k(k, cos)
    return math.exp(0.5 * log_kernel_variance(q, key, m) - k * cos)


def vectors_for_k(k: float, cos: float) -> tuple[np.ndarray, np.ndarray]:
    """Two 2-D vectors with squared norms ``k`` and cosine ``cos`` (all Eq. 7 depends on)."""
    if k < 0 or not -1.0 <= cos <= 1.0:
        raise ValueError(f"need k >= 0 and -1 <= cos <= 1, got k={k}, cos={cos}")
    r = math.sqrt(k)
    q = np.array([r, 0.0])
    key = np.array([r * cos, r * math.sqrt(max(0.0, 1.0 - cos * cos))])
    return q, key


def sample_variance_std(q: ArrayLike, k: ArrayLike, m: int, draws: int) -> float:
    """Standard deviation of the unbiased sample variance of ``draws`` i.i.d. estimates ``φ(q)ᵀφ(k)``.

    Error bars for a Monte-Carlo check of Eq. 7. One term of the estimate is the lognormal
    ``Y = exp(fᵀz − (‖q‖² + ‖k‖²)/2)`` with ``z = q + k``; with ``ε = exp(‖z‖²) − 1`` its standardised
    moments are ``E[(Y/μ)ⁿ] = (1 + ε)^{n(n−1)/2}``, so ``Var Y = μ²ε`` and its kurtosis is
    ``κ_Y = 3 + 16ε + 15ε² + 6ε³ + ε⁴`` (expanded in ``ε`` to avoid cancellation at small ``‖z‖``). The
    estimate ``X`` is the mean of ``m`` terms: ``κ_X = (κ_Y + 3(m − 1))/m``, and for ``D = draws``
    ``Var(S²) = σ⁴_X·(κ_X/D − (D − 3)/(D(D − 1)))``.
    """
    if not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int >= 2, got {draws!r}")
    qv, kv = as_vector(q), as_vector(k)
    var_x = kernel_variance(qv, kv, m)
    z2 = float(np.sum((qv + kv) ** 2))
    if var_x == 0.0:
        return 0.0  # q + k = 0: every estimate is exact
    if z2 > 150.0:
        return math.inf  # ε⁴ would overflow float64
    eps = math.expm1(z2)
    kurt_y = 3.0 + eps * (16.0 + eps * (15.0 + eps * (6.0 + eps)))
    kurt_x = (kurt_y + 3.0 * (m - 1)) / m
    return var_x * math.sqrt(kurt_x / draws - (draws - 3) / (draws * (draws - 1)))


def monte_carlo_kernel(
    q: ArrayLike,
    k: ArrayLike,
    m: int,
    draws: int,
    orthogonal: bool = False,
    generator: torch.Generator | None = None,
    eps: float = 0.0,
) -> Tensor:
    """``draws`` independent estimates ``φ(q)ᵀφ(k)`` (float64 ``[draws]``), each with a fresh ``F`` (Eq. 4).

    Uses :func:`~enlcn.attention.kernels.gaussian_projection` and
    :func:`~enlcn.attention.kernels.random_features`. i.i.d. features (the paper) are drawn for all draws
    at once as one ``(draws·m)×c`` projection, in chunks of about a million rows to bound memory; the
    features of a chunk of ``n`` draws carry ``(n·m)^-½`` instead of ``m^-½``, which the factor ``n``
    undoes. Orthogonal features (the official code) are drawn one projection per draw.
    """
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    qv = torch.from_numpy(as_vector(q))
    kv = torch.from_numpy(as_vector(k))
    if qv.shape != kv.shape:
        raise ValueError(f"q and k must have the same length, got {qv.numel()} and {kv.numel()}")
    c = qv.numel()
    if orthogonal:
        out = torch.empty(draws, dtype=torch.float64)
        for i in range(draws):
            proj = gaussian_projection(m, c, True, generator)
            out[i] = random_features(qv, proj, eps) @ random_features(kv, proj, eps)
        return out
    per_chunk = max(1, 2**20 // m)
    chunks = []
    for start in range(0, draws, per_chunk):
        n = min(per_chunk, draws - start)
        proj = gaussian_projection(n * m, c, False, generator)  # rows of n independent F's
        prod = random_features(qv, proj, eps) * random_features(kv, proj, eps)  # [n·m], scale 1/(n·m)
        chunks.append(prod.view(n, m).sum(dim=1) * n)
    return torch.cat(chunks)


def variance_vs_k(
    ks: list[float],
    coses: list[float],
    m: int,
    c: int,
    draws: int,
    seed: int = 0,
) -> pd.DataFrame:
    """The data of Figure 6's variance curve: relative std of ``φ(q)ᵀφ(k)`` against the amplification ``k``.

    For every ``k`` and cosine, the Eq. 7 value (i.i.d. features) and Monte-Carlo measurements with
    ``draws`` fresh projections, i.i.d. (paper) and orthogonal (official code), of two ``c``-dimensional
    vectors with ``‖q‖² = ‖k‖² = k`` (Eq. 3). Columns: ``k, cos, method, rel_std, rel_std_se`` where
    ``rel_std = std/exp(qᵀk)`` and ``rel_std_se`` is the Monte-Carlo standard error of ``rel_std`` from the
    sample's fourth moment (NaN for the closed form). When ``exp(‖q+k‖²)`` is large the estimate is
    heavy-tailed and a finite sample *underestimates* the variance: compare with the closed form.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for k in ks:
        for cos in coses:
            q2, k2 = vectors_for_k(k, cos)
            q, kk = np.zeros(c), np.zeros(c)
            q[:2], kk[:2] = q2, k2
            exact = math.exp(float(q @ kk))
            rows.append(
                dict(
                    k=k,
                    cos=cos,
                    method="Eq. 7 (i.i.d.)",
                    rel_std=relative_std_for_k(k, cos, m),
                    rel_std_se=float("nan"),
                )
            )
            for orthogonal in (False, True):
                est = monte_carlo_kernel(q, kk, m, draws, orthogonal, gen) / exact
                var = est.var().item()
                m4 = ((est - est.mean()) ** 4).mean().item()
                se_var = math.sqrt(max(m4 - var**2, 0.0) / draws)
                rel = math.sqrt(var)
                rows.append(
                    dict(
                        k=k,
                        cos=cos,
                        rel_std=rel,
                        rel_std_se=se_var / (2 * rel) if rel else 0.0,
                        method="Monte Carlo, orthogonal (official)"
                        if orthogonal
                        else "Monte Carlo, i.i.d. (paper)",
                    )
                )
    return pd.DataFrame(rows, columns=["k", "cos", "method", "rel_std", "rel_std_se"])
