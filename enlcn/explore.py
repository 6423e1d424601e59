"""Exploring one query's attention: state in, maps and numbers out (the explorer notebook and ``enlcn maps``
call this; the book's live explorer page computes the same maps in the browser and is tested against it).

For a model, an LR image, a query position and one attention module, :func:`explore` returns the exact
``softmax(QᵢᵀK)`` map (the paper's correlation map, Figs. 1, 7, 8), ENLA's random-feature estimate of it
(Eqs. 4–6: what the module aggregates with) and their difference, with the numbers a reader wants beside
them (:func:`map_numbers`). The estimate can be recomputed *live* on the model's own embeddings with
another amplification ``k`` (Eq. 3: ``Q = √k·θ/‖θ‖``), another number of random features ``m``, another
draw of them (``seed``) or i.i.d. instead of orthogonal features — how the paper's knobs change what one
trained module sees, without retraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .attention.enla import enla_weights
from .attention.kernels import gaussian_projection
from .correlation import attention_inputs

TOP_SHARE = 0.02  # "mass on the top 2 % of positions"


@dataclass(frozen=True)
class Knobs:
    """What :func:`explore` may change about the estimate; ``None`` keeps the module's own value."""

    k: float | None = None  # amplification (Eq. 3)
    m: int | None = None  # random features (Eq. 4)
    seed: int | None = None  # a fresh draw of the features (None: the module's trained projection)
    orthogonal: bool | None = None  # orthogonal blocks (official) or i.i.d. rows (paper)


@dataclass
class Exploration:
    """One query in one module: ``h×w`` maps (float64, each sums to 1) and their numbers."""

    query: tuple[int, int]
    module: int
    exact: np.ndarray
    estimate: np.ndarray | None  # None for modules with no random-feature estimate (NLA)
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def difference(self) -> np.ndarray | None:
        return None if self.estimate is None else self.estimate - self.exact


def entropy(w: np.ndarray) -> float:
    """Shannon entropy ``−Σ w log w`` (nats) of a distribution."""
    p = w[w > 0]
    return float(-(p * np.log(p)).sum())


def top_mass(w: np.ndarray, share: float = TOP_SHARE) -> float:
    """Weight on the ``share`` highest-weighted positions (at least one)."""
    n = max(1, int(round(share * w.size)))
    return float(np.sort(w.ravel())[::-1][:n].sum())


def map_numbers(exact: np.ndarray, estimate: np.ndarray | None, repeats: np.ndarray | None = None) -> dict:
    """Entropy, effective positions ``1/Σw²`` and top-2 % mass of each map; total-variation distance of
    the estimate to the exact map; with ``repeats`` (boolean mask of the query's true repeats), the mass
    each map puts on them, uniform attention's, and the precision of its ``|repeats|`` top positions."""
    out: dict[str, float] = {}
    maps = {"exact": exact} if estimate is None else {"exact": exact, "estimate": estimate}
    for name, w in maps.items():
        w = np.asarray(w, dtype=np.float64).ravel()
        out[f"{name} entropy"] = entropy(w)
        out[f"{name} effective positions"] = float(1.0 / (w**2).sum())
        out[f"{name} top {TOP_SHARE:.0%} mass"] = top_mass(w)
    if estimate is not None:
        out["TV(estimate, exact)"] = float(0.5 * np.abs(np.asarray(estimate) - np.asarray(exact)).sum())
    if repeats is not None and repeats.any():
        mask = np.asarray(repeats, bool).ravel()
        out["uniform mass on repeats"] = float(mask.sum() / mask.size)
        for name, w in maps.items():
            w = np.asarray(w, dtype=np.float64).ravel()
            top = np.argsort(-w, kind="stable")[: int(mask.sum())]
            out[f"{name} mass on repeats"] = float(w[mask].sum())
            out[f"{name} precision on repeats"] = float(mask[top].mean())
    return out


def _amplified(module: nn.Module, x: Tensor, k: float | None) -> tuple[Tensor, Tensor]:
    """The module's ``Q, K`` tokens (``[N, c]``) of input ``x``, re-amplified to ``k`` when given (Eq. 3)."""
    q, key, _ = module.embed(x)
    q, key = q[0], key[0]
    if k is not None:
        old = float(module.options.k) ** 0.5
        q, key = q / old * k**0.5, key / old * k**0.5
    return q, key


def projection(module: nn.Module, knobs: Knobs) -> Tensor:
    """The ``m×c`` random features the estimate uses: the module's own, or a fresh draw per ``knobs``."""
    own = module.projection
    if knobs.m is None and knobs.seed is None and knobs.orthogonal is None:
        return own
    m = own.shape[0] if knobs.m is None else int(knobs.m)
    orthogonal = bool(module.options.orthogonal) if knobs.orthogonal is None else bool(knobs.orthogonal)
    g = torch.Generator().manual_seed(0 if knobs.seed is None else int(knobs.seed))
    return gaussian_projection(m, own.shape[1], orthogonal, g)


@torch.no_grad()
def explore(
    model: nn.Module,
    lr: np.ndarray,
    query: tuple[int, int],
    module: int = 0,
    knobs: Knobs = Knobs(),
    repeats: np.ndarray | None = None,
    inputs: list[Tensor] | None = None,
) -> Exploration:
    """Maps and numbers of LR position ``query = (row, col)`` in attention module ``module`` of ``model``.

    ``inputs`` (from :func:`enlcn.correlation.attention_inputs`) saves the forward pass when exploring
    many queries of one image; ``repeats`` (the query's true-repeat mask, ``h×w``) adds the repeat scores.
    """
    h, w = lr.shape[:2]
    row, col = query
    if not (0 <= row < h and 0 <= col < w):
        raise IndexError(f"query {query} is outside the {h}×{w} LR image")
    inputs = attention_inputs(model, lr) if inputs is None else inputs
    modules = model.attention_modules()
    if not 0 <= module < len(modules):
        n = len(modules)
        have = f"{n} attention modules (0…{n - 1})" if modules else "no attention modules"
        raise IndexError(f"module {module}: the model has {have}")
    mod, x = modules[module], inputs[module]
    i = row * w + col
    if hasattr(mod, "projection"):  # ENLA / ENLCA
        q, key = _amplified(mod, x, knobs.k)
        exact = torch.softmax(key.double() @ q[i].double(), dim=0)
        est = enla_weights(q[i][None], key[None], projection(mod, knobs), mod.options.feature_eps)[0].double()
        estimate = est.reshape(h, w).numpy()
    elif hasattr(mod, "attention_weights"):  # exact attention (NLA): no estimate
        if any(v is not None for v in (knobs.k, knobs.m, knobs.seed, knobs.orthogonal)):
            raise ValueError(f"{type(mod).__name__} has no random-feature estimate: k, m, seed do not apply")
        exact, estimate = mod.attention_weights(x, i)[0].double(), None
    else:
        raise ValueError(f"{type(mod).__name__} exposes no attention map")
    exact = exact.reshape(h, w).numpy()
    mask = None if repeats is None else np.asarray(repeats, bool)
    return Exploration((row, col), module, exact, estimate, map_numbers(exact, estimate, mask))


def parse_query(text: str) -> tuple[int, int]:
    """``"12,40"`` → ``(12, 40)`` (row, column), or a ValueError naming the text."""
    parts = text.replace(" ", "").split(",")
    try:
        row, col = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--query expects ROW,COL (two integers), got {text!r}") from None
    return row, col
