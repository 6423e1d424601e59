"""Exact softmax attention ``softmax(Q Kᵀ) V`` computed by blocks of query rows (paper Eq. 1, NLA).

The same function as ``torch.softmax(q @ k.transpose(1, 2), -1) @ v``, with the same gradients, but the
``N×N`` score matrix never exists whole: each block of ``block`` query rows of one image makes its
``block×N`` scores, softmax and output while they sit in the CPU's L2 cache, and the backward pass
recomputes them block by block (as FlashAttention does; here every block holds whole rows, so no online
softmax is needed). Written out, a training step of EDSR + NLA at N = 32² reads and writes the 4 MB
score matrix of every image about ten times per module; blocked, it stays in cache.

Measured on one core of an AMD EPYC (B = 8, N = 32², d = 24, d_v = 48; forward + backward 55 ms against
115 ms for ``scaled_dot_product_attention``, commit 3568cb7); in a training step, ``python -m enlcn.bench
--pipeline`` times it (the EDSR + NLA rows). Used by :class:`~enlcn.attention.nla.NonLocalAttention` on CPU
tensors; CUDA inputs keep ``scaled_dot_product_attention`` (its fused kernels are the fast path there).

Backward, per query block ``i`` (rows) with ``P_i = softmax(Q_i Kᵀ)`` recomputed::

    dVᵀ += dO_iᵀ P_i                       # [d_v, N]
    dP_i = dO_i Vᵀ                         # [b, N]
    dS_i = P_i ⊙ (dP_i − rowsum(dO_i ⊙ O_i))
    dQ_i = dS_i K                          # [b, d]
    dKᵀ += Q_iᵀ dS_i                       # [d, N]

On x86 CPUs both functions run on a native kernel (``csrc/attention_cpu.cpp``, built on first use like the
inference kernel, :func:`enlcn.attention.native.load_attention`): the same blocks and products in one
parallel region, with its own exp, so that a block's scores, softmax and products stay in cache without
the dispatch of a dozen small ops per block. Without it (``ENLCN_NATIVE=0``, no compiler) the Python blocks
below compute the same values and gradients (tests/test_blocked.py).

NLSA's chunked attention (:func:`window_attention`) is blocked the same way: each chunk attends to itself
and its two neighbouring chunks, and those windows are cut from the sorted keys a few chunks at a time
rather than written out as a 3× copy of the sequence (whose backward NLSN pays in ``cat`` and ``roll``).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import torch
from torch import Tensor

from . import native

BLOCK = 256  # query rows per block: a 256×1024 float32 block of scores is 1 MB (one Zen 4 core's L2)


def _scores_softmax(q_block: Tensor, k_t: Tensor) -> Tensor:
    """``softmax(q_block · k_t)`` over the last axis: ``[b, d] × [d, N] → [b, N]`` (Eq. 1's weights)."""
    return torch.softmax(q_block @ k_t, dim=-1)


class _BlockedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, block: int) -> Tensor:  # type: ignore[override]
        b, n, _ = q.shape
        out = q.new_empty(b, n, v.shape[-1])
        k_t = k.transpose(1, 2).contiguous()  # [B, d, N]
        for i in range(b):
            for r in range(0, n, block):
                torch.matmul(_scores_softmax(q[i, r : r + block], k_t[i]), v[i], out=out[i, r : r + block])
        ctx.save_for_backward(q, k_t, v, out)
        ctx.block = block
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        q, k_t, v, out = ctx.saved_tensors
        block = ctx.block
        grad_out = grad_out.contiguous()
        # dK and dV are accumulated transposed, [B, d, N]: ``dKᵀ += Q_iᵀ dS_i`` runs at the GEMM's full rate
        # where ``dK += dS_iᵀ Q_i`` (a transposed [b, N] operand) measured 40 % slower on one core
        dq, dk_t, dv_t = torch.empty_like(q), torch.zeros_like(k_t), torch.zeros_like(v.transpose(1, 2))
        k = k_t.transpose(1, 2)
        delta = (grad_out * out).sum(-1, keepdim=True)  # [B, N, 1] = rowsum(dO ⊙ O)
        for i in range(q.shape[0]):
            for r in range(0, q.shape[1], block):
                rows = slice(r, r + block)
                p = _scores_softmax(q[i, rows], k_t[i])  # [b, N], recomputed
                go = grad_out[i, rows]  # [b, d_v]
                dv_t[i].addmm_(go.transpose(0, 1), p)  # [d_v, N]
                ds = torch.matmul(go, v[i].transpose(0, 1)).sub_(delta[i, rows]).mul_(p)  # [b, N]
                torch.matmul(ds, k[i], out=dq[i, rows])
                dk_t[i].addmm_(q[i, rows].transpose(0, 1), ds)  # [d, N]
        return dq, dk_t.transpose(1, 2), dv_t.transpose(1, 2), None


def _native_kernel(*tensors: Tensor) -> ModuleType | None:
    """The native window kernel when it applies to ``tensors`` (float32 on the CPU) and is available."""
    if all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors):
        return native.load_attention()
    return None


class _NativeWindows(torch.autograd.Function):
    """``softmax(q kᵀ) v`` and its logsumexp over windows of chunks by ``csrc/attention_cpu.cpp``: chunk ``i``
    of each group attends to chunks ``(i + o) mod K`` for ``o`` in ``offsets`` (``q, k [G, K, S, d]``,
    ``v [G, K, S, d_v]``), ``rows`` query rows per block. Same blocks and backward as the Python classes."""

    @staticmethod
    def forward(ctx, ext: ModuleType, q: Tensor, k: Tensor, v: Tensor, offsets: Sequence[int], rows: int):  # type: ignore[override]
        out, lse = ext.window_forward(q, k, v, list(offsets), rows)
        ctx.save_for_backward(q, k, v, out)
        ctx.ext, ctx.offsets, ctx.rows = ext, list(offsets), rows
        return out, lse

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_lse: Tensor):  # type: ignore[override]
        q, k, v, out = ctx.saved_tensors
        grads = ctx.ext.window_backward(
            q, k, v, out, grad_out.contiguous(), grad_lse.contiguous(), ctx.offsets, ctx.rows
        )
        return None, *grads, None, None


def blocked_attention(q: Tensor, k: Tensor, v: Tensor, block: int = BLOCK) -> Tensor:
    """``softmax(q kᵀ) v`` for ``q, k: [B, N, d]``, ``v: [B, N, d_v]`` (no ``1/√d``, as NLSN), by blocks."""
    if q.dim() != 3 or k.shape != q.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"blocked_attention expects q, k [B, N, d] and v [B, N, d_v]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if block < 1:
        raise ValueError(f"block must be ≥ 1, got {block}")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    ext = _native_kernel(q, k, v)
    if ext is not None:  # one chunk of all N tokens attending to itself
        out, _ = _NativeWindows.apply(ext, q[:, None], k[:, None], v[:, None], (0,), block)
        return out[:, 0]
    return _BlockedAttention.apply(q, k, v, block)


#: the chunks a chunk attends to, relative to itself, in the order of NLSN's ``add_adjacent_buckets``
WINDOW_OFFSETS = (0, -1, 1)
CHUNK_BLOCK = 4  # chunks per block in window_attention: 4 × 144 × 432 floats ≈ 1 MB of scores


def chunk_windows(groups: int, chunks: int, device: torch.device | None = None) -> Tensor:
    """``[groups·chunks, 3]``: the flat indices of the chunks each chunk attends to — itself, then the
    previous, then the next chunk of its group, wrapping (the order of NLSN's ``add_adjacent_buckets``)."""
    i = torch.arange(chunks, device=device)
    window = torch.stack([i, (i - 1) % chunks, (i + 1) % chunks], dim=1)  # [K, 3]
    return (torch.arange(groups, device=device)[:, None, None] * chunks + window).flatten(0, 1)  # [G·K, 3]


def _softmax_lse(scores: Tensor) -> tuple[Tensor, Tensor]:
    """``softmax`` over the last axis of ``scores [b, S, T]`` and its ``logsumexp [b, S]``.

    One fused softmax pass; the logsumexp follows from its largest weight, ``lse = max s − log max p``
    (``p`` at the arg-max is ``1 / Σ exp(s − max s)`` and lies in ``[1/T, 1]``, so its log is exact to
    float32 rounding).
    """
    p = torch.softmax(scores, dim=-1)
    return p, scores.amax(-1).sub_(p.amax(-1).log_())


def _window(t: Tensor, windows: Tensor) -> Tensor:
    """The keys (or values) seen by a block of chunks, ``t [G·K, S, ·]`` at ``windows [b, 3]``: ``[b, 3S, ·]``
    (one small copy, in cache)."""
    return t.index_select(0, windows.flatten()).view(windows.shape[0], -1, t.shape[-1])


class _WindowAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, block: int):  # type: ignore[override]
        groups, chunks, s = q.shape[:3]
        win = chunk_windows(groups, chunks, q.device)  # [G·K, 3]
        qf, kf, vf = q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)  # [G·K, S, ·]
        out, lse = qf.new_empty(*qf.shape[:2], vf.shape[-1]), qf.new_empty(qf.shape[:2])
        for r in range(0, qf.shape[0], block):
            rows, w = slice(r, r + block), win[r : r + block]
            k_w, v_w = _window(kf, w), _window(vf, w)  # [b, 3S, c], [b, 3S, C]
            p, lse[rows] = _softmax_lse(torch.bmm(qf[rows], k_w.transpose(1, 2)))  # [b, S, 3S]
            torch.bmm(p, v_w, out=out[rows])
        ctx.save_for_backward(qf, kf, vf, out, lse, win)
        ctx.block = block
        return out.view(groups, chunks, s, -1), lse.view(groups, chunks, s)

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_lse: Tensor):  # type: ignore[override]
        qf, kf, vf, out, lse, win = ctx.saved_tensors
        block, s = ctx.block, qf.shape[1]
        lead = grad_out.shape[:2]  # [G, K] of the inputs
        grad_out = grad_out.reshape(out.shape)
        # d lse_i / d score_ij = P_ij, so the lse's gradient joins the softmax's: dS = P ⊙ (dP − δ + g_lse)
        shift = (grad_out * out).sum(-1) - grad_lse.reshape(lse.shape)  # [G·K, S]
        dq, dk, dv = torch.empty_like(qf), torch.zeros_like(kf), torch.zeros_like(vf)
        for r in range(0, qf.shape[0], block):
            rows, w = slice(r, r + block), win[r : r + block]
            b = w.shape[0]
            k_w, v_w = _window(kf, w), _window(vf, w)
            p = torch.softmax(torch.bmm(qf[rows], k_w.transpose(1, 2)), dim=-1)  # recomputed, as in forward
            go = grad_out[rows]
            dv.index_add_(0, w.flatten(), torch.bmm(p.transpose(1, 2), go).view(3 * b, s, -1))
            ds = torch.bmm(go, v_w.transpose(1, 2)).sub_(shift[rows, :, None]).mul_(p)  # [b, S, 3S]
            torch.bmm(ds, k_w, out=dq[rows])
            dk.index_add_(0, w.flatten(), torch.bmm(ds.transpose(1, 2), qf[rows]).view(3 * b, s, -1))
        return dq.view(*lead, s, -1), dk.view(*lead, s, -1), dv.view(*lead, s, -1), None


def window_attention(q: Tensor, k: Tensor, v: Tensor, block: int = CHUNK_BLOCK) -> tuple[Tensor, Tensor]:
    """NLSA's chunked attention: chunk ``i`` of each group attends to the keys of chunks ``i``, ``i − 1``
    and ``i + 1`` (wrapping; :func:`chunk_windows`), with NLSN's unscaled logits.

    ``q, k: [G, K, S, c]``, ``v: [G, K, S, C]`` → ``softmax(q kᵀ) v`` ``[G, K, S, C]`` and
    ``logsumexp(q kᵀ)`` ``[G, K, S]``. The windows are cut from ``k`` and ``v`` a block of ``block``
    chunks at a time, in cache, never as a 3× copy of the whole sequence; backward recomputes the scores
    and adds each window's key and value gradients back onto its three chunks. Same values and
    gradients as ``logsumexp`` / ``exp(s − lse) @ v`` on the concatenated windows written out.
    """
    if q.dim() != 4 or k.shape != q.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"window_attention expects q, k [G, K, S, c] and v [G, K, S, C]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if block < 1:
        raise ValueError(f"block must be ≥ 1, got {block}")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    ext = _native_kernel(q, k, v)
    if ext is not None:  # a block is one chunk's rows; windows: itself, the previous, the next chunk
        return _NativeWindows.apply(ext, q, k, v, WINDOW_OFFSETS, q.shape[2])
    return _WindowAttention.apply(q, k, v, block)
