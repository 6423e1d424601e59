"""The contrastive loss of ENLCA (paper Eqs. 8–10), in the paper's and the official code's form.

Both forms rank, for every query ``i``, the relevances ``T_ij = Q_iᵀK_j`` (Eq. 8: ``k·cos(Q_i, K_j)``
because ``Q`` and ``K`` arrive already normalized and amplified by ``√k``), and contrast the most relevant
keys with a band of less relevant ones (Eq. 9–10):

* ``form="paper"`` — Eq. 10: relevant = the top ``n1·N`` ranks, irrelevant = ``n1·N`` ranks starting at
  rank ``n2·N`` (``n1 = 2 %``, ``n2 = 8 %``), ``L = mean_i[−log(mean exp T'_rel / mean exp T'_irr) + b]``,
  no hinge. Counts are ``floor(n·N)`` (at least 1). Computed in log space (``logsumexp``). Because the
  relevant band outranks the irrelevant one, each term lies in ``[b − (max T − min T), b]``; with
  normalized inputs ``T ∈ [−k, k]``, so the loss is bounded in ``[b − 2k, b]`` without a hinge. Set
  ``hinge=True`` to clamp each term at 0 as the official code does.
* ``form="official"`` — ``src/model/attention.py:31-39`` of the official code: fixed ranks, positives =
  the top 15, negatives = sorted ranks 50…64, ``relu(−log(mean exp(pos) / (mean exp(neg) + 1e-6)) + 1)``.

Both use a partial selection (``torch.topk`` of the first ``n2·N + n1·N`` ranks) instead of sorting whole
rows — the selected values are identical — and process query rows in chunks, so memory stays
``O(chunk·N)`` instead of ``O(N²)``.

On the CPU (float32) the loss runs on a native row kernel (``csrc/contrastive_cpu.cpp``, built on first use
like the inference kernel, :func:`enlcn.attention.native.load_contrastive`): per query it computes the
relevance row in cache, selects the first ``stop`` ranks without a full top-k, and returns the term with
its derivative with respect to each relevance it used; the backward pass (:class:`_RowKernelLoss`, native
too) spreads those few derivatives onto Q and K — the dense ``N×N`` gradient of the reference path never
exists. Same
values and gradients as the reference (:func:`contrastive_loss_reference`, tests/test_contrastive.py);
``ENLCN_NATIVE=0`` keeps the reference path.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: the official code's fixed ranks (attention.py:36-37, commit 90451d1)
OFFICIAL_POSITIVES = 15
OFFICIAL_NEGATIVES = (50, 65)
#: elements of the ``rows × N`` relevance block processed at once (per image)
CHUNK_ELEMENTS = 1 << 22
#: the native kernel ranks a row's candidates by counting (O(count²)) up to this many, else by bisection
COUNTING_MAX = 512


def contrastive_bands(n: int, form: str, n1: float = 0.02, n2: float = 0.08) -> tuple[int, int, int]:
    """``(n_relevant, irrelevant_start, irrelevant_stop)`` ranks for ``n`` keys (Eq. 10 or official)."""
    if form == "official":
        rel, (start, stop) = OFFICIAL_POSITIVES, OFFICIAL_NEGATIVES
    elif form == "paper":
        if not (0 < n1 < 1 and 0 <= n2 < 1):
            raise ValueError(f"contrastive loss: need 0 < n1 < 1 and 0 <= n2 < 1, got n1={n1}, n2={n2}")
        rel = max(1, math.floor(n1 * n))
        start = math.floor(n2 * n)
        stop = start + rel
    else:
        raise ValueError(f"contrastive loss form must be 'paper' or 'official', got {form!r}")
    if stop > n:
        raise ValueError(
            f"contrastive loss ({form}): the irrelevant band ends at rank {stop} but there are only {n} "
            f"positions (H·W); use a larger input or smaller n1/n2"
        )
    return rel, start, stop


def contrastive_loss(
    q: Tensor,
    k: Tensor,
    form: str = "paper",
    n1: float = 0.02,
    n2: float = 0.08,
    b: float = 1.0,
    hinge: bool = False,
) -> Tensor:
    """Contrastive loss (Eqs. 8–10) of amplified embeddings ``q, k`` (``[B, N, c]``), a scalar.

    ``form``: ``"paper"`` (Eq. 10 with ``n1``, ``n2``, ``b``; optional ``hinge``) or ``"official"``
    (fixed ranks 15 / 50–64, hinge, margin ``b``; ``n1``, ``n2`` unused). Mean over queries and batch.
    """
    if q.dim() != 3 or q.shape != k.shape:
        shapes = f"{tuple(q.shape)}, {tuple(k.shape)}"
        raise ValueError(f"contrastive_loss: q and k must both be B×N×c, got {shapes}")
    rel, start, stop = contrastive_bands(q.shape[1], form, n1, n2)
    if q.device.type == "cpu" and q.dtype == torch.float32 and k.dtype == torch.float32:
        from .native import load_contrastive

        ext = load_contrastive()
        if ext is not None:
            official = form == "official"
            return _RowKernelLoss.apply(
                q, k, ext, rel, start, stop, official, float(b), bool(hinge), COUNTING_MAX
            )
    return contrastive_loss_reference(q, k, form, n1, n2, b, hinge)


def contrastive_loss_reference(
    q: Tensor,
    k: Tensor,
    form: str = "paper",
    n1: float = 0.02,
    n2: float = 0.08,
    b: float = 1.0,
    hinge: bool = False,
) -> Tensor:
    """:func:`contrastive_loss` by ``torch.topk`` on chunks of relevance rows, differentiated by autograd."""
    bsz, n, _ = q.shape
    rel, start, stop = contrastive_bands(n, form, n1, n2)
    rows = max(1, CHUNK_ELEMENTS // n)
    terms = [_row_terms(q[:, i : i + rows], k, form, rel, start, stop, b, hinge) for i in range(0, n, rows)]
    return torch.cat(terms, dim=1).mean()


def _row_terms(
    q_rows: Tensor, k: Tensor, form: str, rel: int, start: int, stop: int, b: float, hinge: bool
) -> Tensor:
    """Per-query loss terms ``[B, rows]`` for a block of query rows."""
    t = q_rows @ k.transpose(1, 2)  # [B, rows, N] relevance T (Eq. 8)
    top = torch.topk(t, stop, dim=-1, sorted=True).values  # [B, rows, stop] = T' (Eq. 9), first ranks
    if form == "official":
        pos = top[..., :rel].exp().mean(-1)
        neg = top[..., start:stop].exp().mean(-1)
        return torch.relu(-torch.log(pos / (neg + 1e-6)) + b)
    log_pos = torch.logsumexp(top[..., :rel], dim=-1)  # the 1/(n1·N) of both means cancels
    log_neg = torch.logsumexp(top[..., start:stop], dim=-1)
    term = -(log_pos - log_neg) + b
    return torch.relu(term) if hinge else term


class _RowKernelLoss(torch.autograd.Function):
    """The mean of the native kernel's per-query terms; backward from its sparse derivatives.

    With ``w_ij = ∂term_i/∂T_ij`` for the ``n_sel`` relevances each term used and ``g`` the incoming
    gradient over ``B·N`` terms: ``∂L/∂Q_i = (g/BN)·Σ_j w_ij K_j`` and ``∂L/∂K_j = (g/BN)·Σ_i w_ij Q_i``
    (the kernel's ``contrastive_grads``, one image per thread).
    """

    @staticmethod
    def forward(ctx, q, k, ext, rel, start, stop, official, b, hinge, counting_max):  # type: ignore[override]
        q, k = q.detach().contiguous(), k.detach().contiguous()
        terms, index, weight = ext.contrastive_rows(q, k, rel, start, stop, official, b, hinge, counting_max)
        ctx.ext = ext
        ctx.save_for_backward(q, k, index, weight)
        return terms.mean()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        q, k, index, weight = ctx.saved_tensors
        bsz, n, _ = q.shape
        dq, dk = ctx.ext.contrastive_grads(q, k, index, weight, float(grad) / (bsz * n))
        return dq, dk, None, None, None, None, None, None, None, None
