"""Exact softmax attention ``softmax(Q Kᵀ) V`` computed by blocks of query rows (paper Eq. 1, NLA).

The same function as ``torch.softmax(q @ k.transpose(1, 2), -1) @ v``, with the same gradients, but the
``N×N`` score matrix never exists whole: each block of ``block`` query rows of one image makes its
``block×N`` scores, softmax and output while they sit in the CPU's L2 cache, and the backward pass
recomputes them block by block (as FlashAttention does; here every block holds whole rows, so no online
softmax is needed). Written out, a training step of EDSR + NLA at N = 32² reads and writes the 4 MB
score matrix of every image about ten times per module; blocked, it stays in cache.

Measured on one core of an AMD EPYC (B = 8, N = 32², d = 24, d_v = 48; ``python -m enlcn.bench --nla``):
see the bench's results. Used by :class:`~enlcn.attention.nla.NonLocalAttention` on CPU tensors; CUDA
inputs keep ``scaled_dot_product_attention`` (its fused kernels are the fast path there).

Backward, per query block ``i`` (rows) with ``P_i = softmax(Q_i Kᵀ)`` recomputed::

    dV  += P_iᵀ dO_i                       # [N, d_v]
    dP_i = dO_i Vᵀ                         # [b, N]
    dS_i = P_i ⊙ (dP_i − rowsum(dO_i ⊙ O_i))
    dQ_i = dS_i K                          # [b, d]
    dK  += dS_iᵀ Q_i                       # [N, d]
"""

from __future__ import annotations

import torch
from torch import Tensor

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
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k_t.transpose(1, 2)), torch.zeros_like(v)
        k = k_t.transpose(1, 2)
        delta = (grad_out * out).sum(-1, keepdim=True)  # [B, N, 1] = rowsum(dO ⊙ O)
        for i in range(q.shape[0]):
            for r in range(0, q.shape[1], block):
                rows = slice(r, r + block)
                p = _scores_softmax(q[i, rows], k_t[i])  # [b, N], recomputed
                go = grad_out[i, rows]  # [b, d_v]
                dv[i].addmm_(p.transpose(0, 1), go)
                ds = torch.matmul(go, v[i].transpose(0, 1)).sub_(delta[i, rows]).mul_(p)  # [b, N]
                torch.matmul(ds, k[i], out=dq[i, rows])
                dk[i].addmm_(ds.transpose(0, 1), q[i, rows])
        return dq, dk, dv, None


def blocked_attention(q: Tensor, k: Tensor, v: Tensor, block: int = BLOCK) -> Tensor:
    """``softmax(q kᵀ) v`` for ``q, k: [B, N, d]``, ``v: [B, N, d_v]`` (no ``1/√d``, as NLSN), by blocks."""
    if q.dim() != 3 or k.shape != q.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"blocked_attention expects q, k [B, N, d] and v [B, N, d_v]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if block < 1:
        raise ValueError(f"block must be ≥ 1, got {block}")
    return _BlockedAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), block)


CHUNK_BLOCK = 4  # chunks per block in chunked_attention: 4 × 144 × 432 floats ≈ 1 MB of scores


class _ChunkedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, block: int):  # type: ignore[override]
        n, s, _ = q.shape
        out, lse = q.new_empty(n, s, v.shape[-1]), q.new_empty(n, s)
        for i in range(0, n, block):
            rows = slice(i, i + block)
            scores = torch.bmm(q[rows], k[rows].transpose(1, 2))  # [b, S, T]
            lse_b = torch.logsumexp(scores, dim=-1, keepdim=True)  # [b, S, 1]
            torch.bmm(scores.sub_(lse_b).exp_(), v[rows], out=out[rows])
            lse[rows] = lse_b[..., 0]
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.block = block
        return out, lse

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_lse: Tensor):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        block = ctx.block
        grad_out = grad_out.contiguous()
        # d lse_i / d score_ij = P_ij, so the lse's gradient joins the softmax's: dS = P ⊙ (dP − δ + g_lse)
        shift = (grad_out * out).sum(-1) - grad_lse  # [N, S]
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for i in range(0, q.shape[0], block):
            rows = slice(i, i + block)
            p = torch.bmm(q[rows], k[rows].transpose(1, 2)).sub_(lse[rows, :, None]).exp_()  # recomputed
            go = grad_out[rows]
            torch.bmm(p.transpose(1, 2), go, out=dv[rows])
            ds = torch.bmm(go, v[rows].transpose(1, 2)).sub_(shift[rows, :, None]).mul_(p)  # [b, S, T]
            torch.bmm(ds, k[rows], out=dq[rows])
            torch.bmm(ds.transpose(1, 2), q[rows], out=dk[rows])
        return dq, dk, dv, None


def chunked_attention(q: Tensor, k: Tensor, v: Tensor, block: int = CHUNK_BLOCK) -> tuple[Tensor, Tensor]:
    """Per chunk ``n``: ``softmax(q_n k_nᵀ) v_n`` and ``logsumexp(q_n k_nᵀ)`` for ``q: [N, S, c]``,
    ``k: [N, T, c]``, ``v: [N, T, C]`` (NLSA's chunked attention, NLSN's unscaled logits), ``block`` chunks
    at a time in cache; backward recomputes the scores. Same values and gradients as
    ``logsumexp`` / ``exp(s − lse) @ v`` written out."""
    if q.dim() != 3 or k.dim() != 3 or q.shape[0] != k.shape[0] or v.shape[:2] != k.shape[:2]:
        raise ValueError(f"chunked_attention expects q [N, S, c], k [N, T, c], v [N, T, C]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    return _ChunkedAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), block)
