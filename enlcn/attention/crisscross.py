"""Recurrent criss-cross attention (CCNet).

Definition followed: ``CrissCrossAttention`` of CCNet (Huang et al., ICCV 2019),
``cc_attention/functions.py`` (github speedinghzl/CCNet), applied ``recurrence`` times as its RCCA module
does (recurrence 2 in CCNet's README). Each pass: ``Q``, ``K`` 1×1 convs ``C → C/reduction`` and ``V`` a
1×1 conv ``C → C`` (all with bias); query ``(h, w)`` scores the keys of its column ``(·, w)`` — without
itself, masked with ``−inf`` — and of its row ``(h, ·)``, i.e. ``H + W − 1`` positions, with ONE softmax
over the concatenation; output ``γ · (out_H + out_W) + x`` with a learnable scalar ``γ`` (initialised to
``gamma_init``; CCNet: 0). The same module (shared weights) runs every pass. Cost: ``O(N·(H+W))`` per pass.

The ENLCA appendix compares against criss-cross attention without giving ``reduction`` or ``recurrence``;
the defaults here are CCNet's (8 and 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Attention, one_hot_weights
from .nla import check_finite, check_positive_int, embedding_channels


@dataclass(frozen=True)
class CrissCrossOptions:
    """Options of kind ``crisscross``: embedding reduction of ``Q``/``K``, passes, initial ``γ``."""

    reduction: int = 8
    recurrence: int = 2
    gamma_init: float = 0.0


class CrissCrossAttention(Attention):
    """CCNet's criss-cross attention, the same module applied ``recurrence`` times."""

    Options = CrissCrossOptions

    def __init__(self, channels: int, options: CrissCrossOptions) -> None:
        super().__init__(channels, options)
        inner = embedding_channels(channels, options.reduction)
        check_positive_int("recurrence", options.recurrence)
        gamma = check_finite("gamma_init", options.gamma_init)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), gamma))

    def cross_weights(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Softmax weights of one pass on ``x`` (``B×C×H×W``), split into column and row parts.

        Returns ``a_col [B, H, W, H]`` (query ``(h, w)`` → key ``(g, w)``, zero at ``g = h``) and
        ``a_row [B, H, W, W]`` (query ``(h, w)`` → key ``(h, v)``); together each query's weights sum to 1.
        """
        q, k = self.query(x), self.key(x)  # [B, c, H, W]
        height = x.shape[-2]
        e_col = torch.einsum("bchw,bcgw->bhwg", q, k)  # [B, H, W, H]
        e_row = torch.einsum("bchw,bchv->bhwv", q, k)  # [B, H, W, W]
        self_in_column = torch.eye(height, dtype=torch.bool, device=x.device)[:, None, :]  # [H, 1, H]
        e_col = e_col.masked_fill(self_in_column, float("-inf"))  # the query itself is counted in its row
        a = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)  # [B, H, W, H + W]
        return a[..., :height], a[..., height:]

    def aggregate(self, x: Tensor, a_col: Tensor, a_row: Tensor) -> Tensor:
        """One pass's output ``γ · (out_H + out_W) + x`` for the weights of :meth:`cross_weights`."""
        v = self.value(x)  # [B, C, H, W]
        out_col = torch.einsum("bhwg,bcgw->bchw", a_col, v)  # column part
        out_row = torch.einsum("bhwv,bchv->bchw", a_row, v)  # row part
        return self.gamma * (out_col + out_row) + x

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        for _ in range(self.options.recurrence):
            x = self.aggregate(x, *self.cross_weights(x))
        return x

    def attention_weights(self, x: Tensor, index: int) -> Tensor:
        """Composed weights ``[B, N]``: row ``index`` of ``A_R ⋯ A_1`` (``A_r``: pass ``r``'s ``N×N`` matrix).

        ``A_r`` is computed on the input of pass ``r`` (for ``r > 1`` that is ``x + γ·(…)``), so the result
        is the share of each position in the value-aggregation paths through all passes (attention paths
        only: the residual ``+ x`` and the re-embedding by ``V`` are not weights). Rows sum to 1; for
        ``recurrence ≥ 2`` every position is reached. Computed by pushing a ``[B, H, W]`` vector through
        the cross structure of each pass, ``O(N·(H+W))``, never an ``N×N`` matrix.
        """
        self.check_input(x)
        index = self.check_index(x, index)
        passes = [self.cross_weights(x)]  # [(a_col, a_row)] of every pass
        for _ in range(self.options.recurrence - 1):
            x = self.aggregate(x, *passes[-1])
            passes.append(self.cross_weights(x))
        b, _, height, width = x.shape
        w = one_hot_weights(x, index).view(b, height, width)  # [B, H, W]: e_indexᵀ
        for a_col, a_row in reversed(passes):  # wᵀ ← wᵀ A_r, for r = R … 1
            w = torch.einsum("bhw,bhwg->bgw", w, a_col) + torch.einsum("bhw,bhwv->bhv", w, a_row)
        return w.flatten(1)
