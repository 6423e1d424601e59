"""Gaussian random features for the exponential kernel (paper Eq. 4).

``exp(qᵀk) = E_f[exp(fᵀq − ‖q‖²/2) · exp(fᵀk − ‖k‖²/2)]`` with ``f ~ N(0, I_c)``, so with ``m`` draws
stacked as the rows of ``F`` (``m×c``), ``φ(u) = m^-½ · exp(F u − ‖u‖²/2)`` gives the unbiased estimate
``φ(q)ᵀφ(k) ≈ exp(qᵀk)``.

Two choices differ between the paper and the official code (see :mod:`enlcn.variants`):

* ``F``: the paper's text draws i.i.d. Gaussian rows; the official code draws orthogonal blocks
  (QR of a square Gaussian matrix) whose rows are rescaled by the norms of fresh Gaussian vectors, so
  each row keeps the χ_c-distributed length of a Gaussian vector (Choromanski et al. 2017/2020).
* ``φ``: the official code adds ``eps = 1e-4`` inside the feature map, ``m^-½ (exp(F u − ‖u‖²/2) + eps)``
  (official ``src/model/ENLA.py:47-72``); the paper has no ``eps``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_projection(m: int, c: int, orthogonal: bool, generator: torch.Generator | None = None) -> Tensor:
    """Random projection ``F`` (``m×c``, float32, on the generator's device or the CPU) of Eq. 4.

    ``orthogonal=False`` — the paper's text: ``m`` i.i.d. ``N(0, I_c)`` rows.

    ``orthogonal=True`` — the official code: ``ceil(m/c)`` blocks of ``c`` mutually orthogonal unit rows
    (QR of a ``c×c`` Gaussian matrix; the last block is truncated), each row then multiplied by the norm of
    a fresh ``N(0, I_c)`` vector, so row lengths follow χ_c like i.i.d. Gaussian rows. Unlike the official
    code we fix QR's sign ambiguity (``Q·sign(diag R)``), which makes each block exactly Haar-distributed.
    """
    if not (isinstance(m, int) and isinstance(c, int)) or m <= 0 or c <= 0:
        raise ValueError(f"gaussian_projection needs positive int m and c, got m={m!r}, c={c!r}")
    device = generator.device if generator is not None else torch.device("cpu")
    kw = dict(generator=generator, device=device, dtype=torch.float32)
    if not orthogonal:
        return torch.randn(m, c, **kw)  # [m, c]
    blocks = []
    for _ in range(math.ceil(m / c)):
        q, r = torch.linalg.qr(torch.randn(c, c, **kw))  # q: [c, c], orthonormal columns
        q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)  # Haar: fix the sign of each column
        blocks.append(q.T)  # rows are orthonormal
    unit_rows = torch.cat(blocks)[:m]  # [m, c]
    lengths = torch.randn(m, c, **kw).norm(dim=1, keepdim=True)  # [m, 1] ~ χ_c
    return unit_rows * lengths


def feature_exponent(u: Tensor, projection: Tensor) -> Tensor:
    """The exponent of Eq. 4's feature map, ``F u − ‖u‖²/2``: ``[..., c] → [..., m]``."""
    proj = torch.matmul(u, projection.to(u.dtype).T)  # [..., m]
    return proj - 0.5 * u.pow(2).sum(-1, keepdim=True)


def random_features(u: Tensor, projection: Tensor, eps: float = 0.0) -> Tensor:
    """φ(u) of Eq. 4 over the last dimension: ``m^-½ · (exp(F u − ‖u‖²/2) + eps)``.

    ``eps = 0`` is the paper's unbiased estimator, ``eps = 1e-4`` the official code's feature map (which
    official checkpoints were trained with). This is the exact, unstabilized estimator; :func:`enla`
    uses a shifted form whose shift cancels in the ratio of Eq. 5.
    """
    m = projection.shape[0]
    return (feature_exponent(u, projection).exp() + eps) * m**-0.5


def shifted_features(u: Tensor, projection: Tensor, eps: float, dims: tuple[int, ...]) -> Tensor:
    """φ(u) up to a positive factor that is constant over ``dims``: ``exp(a − s) + eps·exp(−s)``.

    ``a = F u − ‖u‖²/2`` and ``s = max a`` over ``dims`` (detached). Because the factor ``m^-½·exp(−s)``
    multiplies every term of both numerator and normalizer of Eq. 5 alike (per query row for queries,
    per image for keys), the ENLA output is unchanged in exact arithmetic, while no ``exp`` can overflow:
    with ``‖u‖² = k = 20`` and ``c = 64`` the raw exponent reaches ~40 and products of two features
    would exceed float32's range.
    """
    a = feature_exponent(u, projection)
    s = a.detach().amax(dim=dims, keepdim=True)
    return (a - s).exp() + eps * (-s).exp()
