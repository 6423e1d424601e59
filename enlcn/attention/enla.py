"""Efficient Non-Local Attention, the aggregation of paper Eqs. 5–6.

``Ŷ = D⁻¹ (φ(Q)ᵀ (φ(K) Vᵀ))`` with ``D = diag[φ(Q)ᵀ (φ(K) 1_N)]``: the brackets give the order of the
products, so time and memory are ``O(N·m·(c + c_out))`` and no ``N×N`` tensor ever exists.
"""

from __future__ import annotations

from torch import Tensor

from .kernels import shifted_features


def enla(q: Tensor, k: Tensor, v: Tensor, projection: Tensor, eps: float = 0.0) -> Tensor:
    """ENLA output ``[B, N, c_out]`` for queries/keys ``[B, N, c]`` and values ``[B, N, c_out]`` (Eqs. 5–6).

    ``projection`` is ``F`` (``m×c``) of Eq. 4 and ``eps`` the constant inside φ (0: paper, 1e-4: official
    code). The features are used in the shifted form of :func:`~enlcn.attention.kernels.shifted_features`
    (per query row for ``φ(Q)``, per image for ``φ(K)``): the shifts and ``m^-½`` cancel between the
    numerator of Eq. 5 and the normalizer ``D`` of Eq. 6, so the result equals the unstabilized formula.
    """
    _check_qkv(q, k, v, projection)
    phi_q = shifted_features(q, projection, eps, dims=(-1,))  # [B, N, m], shift per query
    phi_k = shifted_features(k, projection, eps, dims=(-2, -1))  # [B, N, m], shift per image
    context = phi_k.transpose(1, 2) @ v  # [B, m, c_out] = φ(K) Vᵀ
    k_sum = phi_k.sum(dim=1)  # [B, m]       = φ(K) 1_N
    numerator = phi_q @ context  # [B, N, c_out]
    normalizer = phi_q @ k_sum.unsqueeze(-1)  # [B, N, 1]   = diag of D
    return numerator / normalizer


def enla_weights(q_i: Tensor, k: Tensor, projection: Tensor, eps: float = 0.0) -> Tensor:
    """Estimated attention weights ``[B, N]`` of one query ``q_i`` (``[B, c]``) over keys ``[B, N, c]``.

    Row ``i`` of ``D⁻¹ φ(Q)ᵀ φ(K)``: the weights ENLA implicitly gives every position (Eqs. 4–6). It sums
    to 1 exactly; it approximates ``softmax(q_iᵀ K)`` with the variance of Eq. 7.
    """
    phi_q = shifted_features(q_i.unsqueeze(1), projection, eps, dims=(-1,))  # [B, 1, m]
    phi_k = shifted_features(k, projection, eps, dims=(-2, -1))  # [B, N, m]
    scores = (phi_k @ phi_q.transpose(1, 2)).squeeze(-1)  # [B, N]
    return scores / scores.sum(dim=-1, keepdim=True)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, projection: Tensor) -> None:
    if q.dim() != 3 or k.shape != q.shape:
        raise ValueError(f"enla: q and k must both be B×N×c, got {tuple(q.shape)} and {tuple(k.shape)}")
    if v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"enla: v must be B×N×c_out matching q's B×N, got {tuple(v.shape)}")
    if projection.dim() != 2 or projection.shape[1] != q.shape[-1]:
        raise ValueError(
            f"enla: projection must be m×c with c = {q.shape[-1]}, got {tuple(projection.shape)}"
        )
