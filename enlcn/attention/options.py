"""The options of ENLCA and ENLA (paper §3; defaults: the official code, see :mod:`enlcn.variants`).

Their own module so that the code reading them (the module in :mod:`.enlca`, its fused path in :mod:`.fast`)
imports them from below instead of from each other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..variants import attention_variant

REDRAW_POLICIES = ("never", "epoch", "interval")


@dataclass(frozen=True)
class ENLCAOptions:
    """Options of ``enlca`` (defaults: the official code). Symbols as in the paper where it has them."""

    variant: str = "official"  # "paper" | "official": which defaults the variant-dependent fields take
    m: int = 128  # random features (Eq. 4)
    k: float = 6.0  # amplification: Q·K = k·cos (Eq. 3)
    reduction: int = 4  # θ, δ: C → C/reduction
    orthogonal: bool = True  # F: orthogonal blocks (official) or i.i.d. rows (paper)
    feature_eps: float = 1e-4  # constant inside φ (official 1e-4, paper 0)
    norm_eps: float = 5e-5  # eps of the L2 normalisation of Q and K
    key_norm: str = "own"  # "own": K = √k·δ/‖δ‖; "query": Eq. 3 literally, K = √k·δ/‖θ‖
    embed_kernel: int = 1  # kernel size of θ, δ, ψ
    res_scale: float = 0.1
    contrastive: bool = True  # compute the contrastive loss in training mode
    loss_form: str = "official"  # "paper" (Eq. 10) | "official"
    n1: float = 0.02
    n2: float = 0.08
    b: float = 1.0
    hinge: bool = True
    redraw: str = "interval"  # "never" | "epoch" | "interval"
    redraw_interval: int = 640  # training forward calls between redraws (policy "interval")

    @classmethod
    def create(cls, variant: str = "official", **overrides: Any) -> ENLCAOptions:
        """Options with ``variant``'s defaults (from :mod:`enlcn.variants`), then ``overrides``."""
        return replace(cls(), variant=variant, **{**attention_variant(variant), **overrides})

    def __post_init__(self) -> None:
        checks = {
            "m": self.m >= 1,
            "k": self.k > 0,
            "reduction": self.reduction >= 1,
            "embed_kernel": self.embed_kernel >= 1 and self.embed_kernel % 2 == 1,
            "key_norm": self.key_norm in ("own", "query"),
            "loss_form": self.loss_form in ("paper", "official"),
            "redraw": self.redraw in REDRAW_POLICIES,
            "redraw_interval": self.redraw_interval >= 1,
            "feature_eps": self.feature_eps >= 0,
            "n1": 0 < self.n1 < 1,
            "n2": 0 <= self.n2 < 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid ENLCA option {name}={getattr(self, name)!r}")


@dataclass(frozen=True)
class ENLAOptions(ENLCAOptions):
    """Options of ``enla``: ENLCA without Sparse Aggregation — no amplification (k = 1), no loss."""

    k: float = 1.0
    contrastive: bool = False

    @classmethod
    def create(cls, variant: str = "official", **overrides: Any) -> ENLAOptions:
        return super().create(variant, **{"k": 1.0, "contrastive": False, **overrides})
