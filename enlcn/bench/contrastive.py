"""The contrastive loss with a partial selection (``topk``, what
:func:`~enlcn.attention.contrastive.contrastive_loss` does) vs a full sort of every row at ``N = 48²``
(:data:`CONTRASTIVE_SIDE`): the time of both forms each way, and whether the two give identical values.
``python -m enlcn.bench`` prints and writes these rows under the operator table, with their ratios.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from .operators import _row

CONTRASTIVE_SIDE = 48


def _sorted_row_terms(q_rows, k, form, rel, start, stop, b, hinge):
    """``contrastive._row_terms`` with a full descending sort of every row instead of ``topk``."""
    t = q_rows @ k.transpose(1, 2)
    top = torch.sort(t, dim=-1, descending=True).values[..., :stop]
    if form == "official":
        pos = top[..., :rel].exp().mean(-1)
        neg = top[..., start:stop].exp().mean(-1)
        return torch.relu(-torch.log(pos / (neg + 1e-6)) + b)
    term = -(torch.logsumexp(top[..., :rel], dim=-1) - torch.logsumexp(top[..., start:stop], dim=-1)) + b
    return torch.relu(term) if hinge else term


def contrastive_sorted(q, k, form="paper", n1=0.02, n2=0.08, b=1.0, hinge=False):
    """The loss of :func:`contrastive_loss` computed with full row sorts (same row chunks)."""
    from ..attention import contrastive as cl

    bsz, n, _ = q.shape
    rel, start, stop = cl.contrastive_bands(n, form, n1, n2)
    rows = max(1, cl.CHUNK_ELEMENTS // n)
    terms = [
        _sorted_row_terms(q[:, i : i + rows], k, form, rel, start, stop, b, hinge) for i in range(0, n, rows)
    ]
    return torch.cat(terms, dim=1).mean()


def bench_contrastive(
    side: int = CONTRASTIVE_SIDE, repeats: int = 5, threads: int | None = None
) -> list[dict]:
    """Time the contrastive loss (both forms) with ``topk`` and with a full sort, ``N = side²``.

    ``topk`` is the reference path (:func:`~enlcn.attention.contrastive.contrastive_loss_reference`): its
    selected values must equal the full sort's exactly. The native row kernel is timed against it by
    ``--pipeline`` (same values to float rounding, tested in tests/test_contrastive.py).
    """
    import torch.nn.functional as F

    from ..attention.contrastive import contrastive_loss_reference as contrastive_loss

    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    n = side * side
    q = F.normalize(torch.randn(1, n, 16, generator=gen), dim=-1) * math.sqrt(6)
    k = F.normalize(torch.randn(1, n, 16, generator=gen), dim=-1) * math.sqrt(6)
    rows = []
    with torch.inference_mode():
        for form in ("paper", "official"):
            values = {}
            for method, fn in (("topk", contrastive_loss), ("sort", contrastive_sorted)):
                fn(q, k, form)  # warm-up
                times = []
                for _ in range(max(1, repeats)):
                    start = time.perf_counter()
                    values[method] = fn(q, k, form)
                    times.append(time.perf_counter() - start)
                row = _row(f"contrastive-{form}-{method}", side, threads, "cpu", "ok")
                row.update(time_ms=statistics.median(times) * 1e3, time_ms_min=min(times) * 1e3)
                row.update(repeats=len(times), loss=float(values[method]))
                rows.append(row)
            same = bool(torch.equal(values["topk"], values["sort"]))
            for row in rows[-2:]:
                row["identical"] = same
    return rows
