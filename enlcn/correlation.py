"""Looking inside a trained model's attention: correlation maps (paper Figures 1, 7, 8) and their precision.

The paper's correlation map of a query position is ``softmax(Q_iᵀK)`` over all positions, with ``Q, K``
the module's (amplified) embeddings: what ENLA *estimates*. :func:`correlation_maps` returns it next to
ENLA's estimate, the weights it really aggregates with (``D⁻¹φ(Q_i)ᵀφ(K)``, Eqs. 4–6).

On the procedural self-similarity images (:mod:`enlcn.data.synthetic`) the true repeats of every position
are known, so the maps can be scored (:func:`repeat_precision`): the attention mass that falls on the true
repeats of the query and the precision of its top positions, against uniform attention.

Whether a trained network *uses* its attention at all: :func:`branch_share` (how much each module changes
its input) and :func:`attention_removed` (the model with every attention module made the identity, to
score what the attention contributes to PSNR).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .attention.enla import enla_weights
from .data.images import to_tensor
from .data.synthetic import true_repeats
from .experiments import effective_positions


class _Captured(Exception):
    """Raised by the last attention module's hook: the rest of the forward pass is not needed."""


@torch.no_grad()
def attention_io(model: nn.Module, lr: np.ndarray) -> list[tuple[Tensor, Tensor]]:
    """``(input, output)`` (``[1, C, h, w]`` each) of every attention module of ``model`` for the uint8 LR
    image ``lr``, from one eval-mode forward pass that stops after the last attention module (the layers
    after it, the upsampler above all, cannot change what is captured)."""
    modules = model.attention_modules()
    captured: list[tuple[Tensor, Tensor]] = []

    def capture(_m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        captured.append((args[0].detach(), out.detach()))
        if len(captured) == len(modules):
            raise _Captured

    hooks = [m.register_forward_hook(capture) for m in modules]
    try:
        model.eval()
        model(to_tensor(lr[None]))
    except _Captured:
        pass
    finally:
        for h in hooks:
            h.remove()
    return captured


def attention_inputs(model: nn.Module, lr: np.ndarray) -> list[Tensor]:
    """The input ``[1, C, h, w]`` of every attention module of ``model`` for the uint8 LR image ``lr``."""
    return [x for x, _ in attention_io(model, lr)]


@contextmanager
def attention_removed(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with every attention module replaced by the identity until the block exits.

    Every attention module holds its own residual (``x + …``), so the identity is "no attention": the
    backbone exactly as trained, without the attention branch. Forward hooks, removed on exit.
    """
    hooks = [m.register_forward_hook(lambda _m, args, _out: args[0]) for m in model.attention_modules()]
    try:
        yield model
    finally:
        for h in hooks:
            h.remove()


def branch_share(
    model: nn.Module, lr: np.ndarray, io: list[tuple[Tensor, Tensor]] | None = None
) -> np.ndarray:
    """``‖A(x) − x‖ / ‖x‖`` of every attention module ``A`` of ``model`` on its input for the uint8 LR
    image ``lr``: how much each module changes the features it is given (0 = an unused module).
    ``io`` (:func:`attention_io` of ``model`` and ``lr``) saves the forward pass when it is at hand."""
    io = attention_io(model, lr) if io is None else io
    return np.array([float((y.double() - x.double()).norm() / x.double().norm()) for x, y in io])


@dataclass
class Maps:
    """Correlation maps of one query in every attention module: ``[modules, h, w]`` arrays."""

    exact: np.ndarray  # softmax(Q_iᵀK): the paper's correlation map
    estimate: np.ndarray  # ENLA's random-feature weights: what the module aggregates with
    query: tuple[int, int]


@torch.no_grad()
def embeddings(model: nn.Module, lr: np.ndarray) -> list[tuple[nn.Module, Tensor, Tensor]]:
    """``(module, Q, K)`` (``[N, c]`` each, Eq. 3) of every ENLA/ENLCA module of ``model`` for ``lr``."""
    out = []
    for module, x in zip(model.attention_modules(), attention_inputs(model, lr), strict=True):
        if not hasattr(module, "embed") or not hasattr(module, "projection"):
            name = type(module).__name__
            raise TypeError(f"{name} has no Q/K embeddings; correlation maps need ENLA/ENLCA modules")
        q, k, _ = module.embed(x)
        out.append((module, q[0], k[0]))
    return out


@torch.no_grad()
def correlation_maps(
    model: nn.Module,
    lr: np.ndarray,
    query: tuple[int, int],
    embedded: list[tuple[nn.Module, Tensor, Tensor]] | None = None,
) -> Maps:
    """Correlation maps of LR position ``query = (row, col)`` in each of ``model``'s attention modules.

    Exact: ``softmax(QᵢᵀK)`` (what ``module.exact_weights`` gives); estimate: ENLA's weights
    (``module.attention_weights``). ``embedded`` (from :func:`embeddings`) saves recomputing the
    embeddings when mapping many queries of one image.
    """
    embedded = embeddings(model, lr) if embedded is None else embedded
    h, w = lr.shape[:2]
    row, col = query
    if not (0 <= row < h and 0 <= col < w):
        raise IndexError(f"query {query} is outside the {h}×{w} LR feature map")
    i = row * w + col
    exact, estimate = [], []
    for module, q, k in embedded:
        exact.append(torch.softmax(k @ q[i], dim=0).reshape(h, w))  # [N] → h×w
        est = enla_weights(q[i][None], k[None], module.projection, module.options.feature_eps)  # [1, N]
        estimate.append(est[0].reshape(h, w))
    return Maps(torch.stack(exact).numpy(), torch.stack(estimate).numpy(), (row, col))


def repeat_precision(weights: np.ndarray, repeats: np.ndarray) -> dict[str, float]:
    """Scores of one attention map against the true repeats of its query (boolean mask, same shape).

    ``mass``: total weight on the repeats; ``uniform_mass``: what uniform attention would put there
    (``|repeats| / N``); ``top_precision``: the fraction of the ``|repeats|`` highest-weighted positions
    that are repeats; ``effective_positions``: ``1/Σw²``. Remove the query's own weight first (it is
    not a repeat of itself; :func:`precision_table` does).
    """
    w = np.asarray(weights, dtype=np.float64).ravel()
    mask = np.asarray(repeats, dtype=bool).ravel()
    if w.shape != mask.shape:
        raise ValueError(f"weights {w.shape} and repeats {mask.shape} differ in size")
    n_rep = int(mask.sum())
    if n_rep == 0:
        raise ValueError("the query has no true repeats (a background position)")
    top = np.argsort(-w, kind="stable")[:n_rep]
    return {
        "mass": float(w[mask].sum()),
        "uniform_mass": n_rep / w.size,
        "top_precision": float(mask[top].mean()),
        "effective_positions": float(effective_positions(torch.from_numpy(w))),
    }


def motif_queries(labels: np.ndarray, queries: int, seed: int) -> np.ndarray:
    """Up to ``queries`` flat LR positions (drawn without replacement, ``seed``) whose repeat label occurs
    at least twice: motif points that have a true repeat."""
    flat = labels.ravel()
    counts = np.bincount(flat[flat >= 0])
    candidates = np.flatnonzero((flat >= 0) & (counts[np.maximum(flat, 0)] >= 2))
    rng = np.random.default_rng(seed)
    return rng.choice(candidates, size=min(queries, len(candidates)), replace=False)


def precision_table(
    model: nn.Module, lr: np.ndarray, labels: np.ndarray, queries: int = 32, seed: int = 0
) -> pd.DataFrame:
    """:func:`repeat_precision` of ``queries`` random motif positions, per module and map kind.

    ``labels`` are the LR repeat labels of a :class:`~enlcn.data.synthetic.SelfSimilar` image. Columns:
    ``query, module, map (exact | estimate), mass, uniform_mass, top_precision, effective_positions``.
    """
    picked = motif_queries(labels, queries, seed)
    embedded = embeddings(model, lr)
    rows = []
    for i in picked:
        query = divmod(int(i), labels.shape[1])
        maps = correlation_maps(model, lr, query, embedded)
        mask = true_repeats(labels, int(i))
        for kind, stack in (("exact", maps.exact), ("estimate", maps.estimate)):
            for module, weights in enumerate(stack):
                # the query's own weight is removed and the rest renormalised: it is not a repeat
                w = weights.ravel().astype(np.float64).copy()
                w[int(i)] = 0.0
                w /= w.sum()
                rows.append({"query": int(i), "module": module, "map": kind, **repeat_precision(w, mask)})
    return pd.DataFrame(rows)
