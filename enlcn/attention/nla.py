"""Exact non-local attention (paper Eq. 1), as defined by NLSN.

Definition followed: ``NonLocalAttention`` of NLSN (Mei et al., CVPR 2021), ``src/model/attention.py``
(github HarukiYqM/Non-Local-Sparse-Attention): three 1×1 convolutions with bias, each followed by its
own PReLU (``θ``, ``φ``: ``C → C/reduction``; assembly ``g``: ``C → C``), ``softmax(θᵀφ)`` with no
``1/√d`` scaling, and the output ``attention + res_scale · input``. Note where ``res_scale`` sits: NLSN
multiplies the *input* (the residual branch), not the attention output as NLSA and most blocks do; we
keep that. Time and memory are ``O(N²)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Attention, feature_map, tokens
from .blocked import blocked_attention

#: ``ENLCN_BLOCKED=0`` makes every NLA module use ``scaled_dot_product_attention`` on the CPU too
BLOCKED_ENV = "ENLCN_BLOCKED"


@dataclass(frozen=True)
class NLAOptions:
    """Options of kind ``nla``: the embedding reduction of ``θ``/``φ`` and the input's residual scale."""

    reduction: int = 2
    res_scale: float = 1.0


class NonLocalAttention(Attention):
    """NLSN's exact non-local attention: ``softmax(θ(x)ᵀ φ(x)) g(x) + res_scale · x``."""

    Options = NLAOptions

    def __init__(self, channels: int, options: NLAOptions) -> None:
        super().__init__(channels, options)
        inner = embedding_channels(channels, options.reduction)
        check_finite("res_scale", options.res_scale)
        self.match1 = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.PReLU())  # θ
        self.match2 = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.PReLU())  # φ
        self.assembly = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.PReLU())  # g
        self.use_blocked = True  # CPU: the query-blocked path of .blocked (same values and gradients)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``[B, N, C/r]``, keys ``[B, N, C/r]`` and values ``[B, N, C]`` of ``x`` (``B×C×H×W``)."""
        return tokens(self.match1(x)), tokens(self.match2(x)), tokens(self.assembly(x))

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        q, k, v = self.embed(x)
        if self.blocked_path(x):
            out = blocked_attention(q, k, v)  # [B, N, C] = softmax(q kᵀ) v, unscaled; N×N never whole
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return feature_map(out, x.shape[-2], x.shape[-1]) + self.options.res_scale * x

    def training_path(self, x: Tensor) -> str:
        if not self.blocked_path(x):
            return "scaled_dot_product_attention"
        from .native import attention_status

        return f"blocked (enlcn.attention.blocked): {attention_status()}"

    def blocked_path(self, x: Tensor) -> bool:
        """True when ``forward`` takes :func:`~enlcn.attention.blocked.blocked_attention`: float32 CPU input,
        ``use_blocked`` set and ``ENLCN_BLOCKED`` not ``0`` (CUDA keeps SDPA's fused kernels)."""
        return (
            self.use_blocked
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and os.environ.get(BLOCKED_ENV, "1") != "0"
        )

    def _reference_forward(self, x: Tensor) -> Tensor:
        """The same output with the ``N×N`` score matrix written out (NLSN's matmul + softmax; for tests)."""
        self.check_input(x)
        q, k, v = self.embed(x)
        score = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # [B, N, N]
        return feature_map(score @ v, x.shape[-2], x.shape[-1]) + self.options.res_scale * x

    def attention_weights(self, x: Tensor, index: int) -> Tensor:
        """Exact softmax row ``[B, N]`` of query ``index``: one ``[B, N]`` score vector, no ``N×N`` matrix."""
        self.check_input(x)
        index = self.check_index(x, index)
        q, k, _ = self.embed(x)
        logits = (k @ q[:, index, :, None]).squeeze(-1)  # [B, N] = θ_iᵀ φ_j
        return torch.softmax(logits, dim=-1)


# -- option checks shared by the peer modules (nla, nlsa, crisscross) ------------------------------
def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an int ``>= 1``, else a ValueError naming the option and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
    return value


def check_finite(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number, else a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite float, got {name}={value!r}")
    return float(value)


def embedding_channels(channels: int, reduction: int) -> int:
    """``channels // reduction``, after checking that ``reduction`` is a positive divisor of ``channels``."""
    check_positive_int("reduction", reduction)
    if channels % reduction:
        raise ValueError(f"reduction={reduction} does not divide channels={channels}")
    return channels // reduction
