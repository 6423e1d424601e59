"""ENLA (paper Eqs. 4–6) as one autograd Function with a hand-derived backward: the training path.

:func:`~enlcn.attention.enla.enla` written with torch operations is differentiated by autograd op by op:
about twenty small kernels forward and more backward, each a pass over ``[B, N, m]`` or ``[B, N, C]``
tensors. :func:`enla_fused` computes the same function and the same gradients with a handful of matrix
products. With the shifted features of :func:`~enlcn.attention.kernels.shifted_features` (shifts ``s``
constant in the backward pass, as there, where they are detached)::

    a_Q = Q Fᵀ − ‖Q‖²/2,  φ_Q = exp(a_Q − s_Q) + ε·exp(−s_Q)      (Eq. 4, per query row)
    a_K = K Fᵀ − ‖K‖²/2,  φ_K = exp(a_K − s_K) + ε·exp(−s_K)      (per image)
    C = φ_Kᵀ V,  z = φ_Kᵀ 1,  Y = (φ_Q C) / (φ_Q z)               (Eqs. 5–6)

Backward, with ``d = φ_Q z`` (``[N, 1]``) and ``Ȳ`` the incoming gradient::

    N̄ = Ȳ / d,   d̄ = −rowsum(Ȳ ⊙ Y) / d
    φ̄_Q = N̄ Cᵀ + d̄ zᵀ,   C̄ = φ_Qᵀ N̄,   z̄ = φ_Qᵀ d̄
    φ̄_K = V C̄ᵀ + 1 z̄ᵀ,   V̄ = φ_K C̄
    ā = φ̄ ⊙ exp(a − s),   Ū = ā F − rowsum(ā) ⊙ U      (U = Q or K)

Same values and gradients as the autograd path to float rounding (tests/test_enla_autograd.py);
``ENLCN_FUSED_ENLA=0`` keeps the autograd path.

On x86 CPUs a module with 1×1 embeddings trains on a native kernel instead (:func:`enla_native`,
``csrc/enla_train_cpu.cpp``, built on first use like the others): the same algebra plus the embedding
(Eq. 2), Eq. 3's normalisation and the module's residual, from ``x`` to ``x + res_scale·Y``, one parallel
region per direction with its products on oneDNN's brgemm (or sgemm), none of the embedding's product,
bias, layout copies and residual passes around it. ``ENLCN_NATIVE=0`` (or no compiler) leaves
:func:`enla_fused`. Measured on a 2-core AVX-512 Xeon, 2 threads, at the ``cpu`` profile (5 modules,
B = 8, C = 48, 32×32, m = 32, forward + backward, channels_last input as inside the model; interleaved
rounds in one process, medians): with the embedding, its bias and the residual around the kernel in
PyTorch 56 ms at the AVX2 level (43 ms at AVX-512), inside it 48 ms (34 ms), of which the kernel is
~94 % (sampled at one thread: ~45 % of the time in oneDNN's products, ~35 % in the kernel's own loops
and transposes).
"""

from __future__ import annotations

import math
import os
from types import ModuleType

import torch
from torch import Tensor

#: ``ENLCN_FUSED_ENLA=0`` makes ENLA/ENLCA modules train through autograd on :func:`enla` instead
ENV = "ENLCN_FUSED_ENLA"


def fused_enabled() -> bool:
    """Whether :func:`enla_fused` is the training path (``ENLCN_FUSED_ENLA`` is not ``0``)."""
    return os.environ.get(ENV, "1") != "0"


def _features(u: Tensor, f_t: Tensor, eps: float, per_row: bool) -> tuple[Tensor, Tensor]:
    """``(φ, exp(a − s))`` of Eq. 4 in the shifted form; ``s`` per row (queries) or per image (keys)."""
    a = torch.baddbmm(-0.5 * u.pow(2).sum(-1, keepdim=True), u, f_t.expand(u.shape[0], -1, -1))  # [B, N, m]
    s = a.amax(dim=-1, keepdim=True) if per_row else a.amax(dim=(-2, -1), keepdim=True)
    e = (a - s).exp_()
    phi = e + eps * (-s).exp() if eps else e
    return phi, e


def _input_grad(grad_phi: Tensor, e: Tensor, u: Tensor, f: Tensor) -> Tensor:
    """``Ū = ā F − rowsum(ā) ⊙ U``, ``ā = φ̄ ⊙ exp(a − s)``: the gradient through ``a = U Fᵀ − ‖U‖²/2``."""
    ga = grad_phi.mul_(e)  # [B, N, m]
    return torch.baddbmm(u * -ga.sum(-1, keepdim=True), ga, f.expand(u.shape[0], -1, -1))


class _FusedENLA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, projection: Tensor, eps: float):  # type: ignore[override]
        f_t = projection.to(q.dtype).T  # [c, m]
        phi_q, e_q = _features(q, f_t, eps, per_row=True)  # [B, N, m]
        phi_k, e_k = _features(k, f_t, eps, per_row=False)
        context = torch.bmm(phi_k.transpose(1, 2), v)  # [B, m, C] = φ_Kᵀ V
        k_sum = phi_k.sum(dim=1).unsqueeze(-1)  # [B, m, 1] = φ_Kᵀ 1
        den = torch.bmm(phi_q, k_sum)  # [B, N, 1]
        y = torch.bmm(phi_q, context).div_(den)  # [B, N, C]
        ctx.save_for_backward(q, k, v, projection, phi_q, e_q, phi_k, e_k, context, k_sum, den, y)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):  # type: ignore[override]
        q, k, v, projection, phi_q, e_q, phi_k, e_k, context, k_sum, den, y = ctx.saved_tensors
        f = projection.to(q.dtype)  # [m, c]
        g_num = grad_y / den  # [B, N, C]
        g_den = (grad_y * y).sum(-1, keepdim=True).div_(den).neg_()  # [B, N, 1]
        g_phi_q = torch.baddbmm(torch.bmm(g_den, k_sum.transpose(1, 2)), g_num, context.transpose(1, 2))
        g_context = torch.bmm(phi_q.transpose(1, 2), g_num)  # [B, m, C]
        g_k_sum = torch.bmm(phi_q.transpose(1, 2), g_den)  # [B, m, 1]
        g_phi_k = torch.baddbmm(g_k_sum.transpose(1, 2), v, g_context.transpose(1, 2))  # [B, N, m]
        g_v = torch.bmm(phi_k, g_context)  # [B, N, C]
        g_q = _input_grad(g_phi_q, e_q, q, f)
        g_k = _input_grad(g_phi_k, e_k, k, f)
        return g_q, g_k, g_v, None, None


def enla_fused(q: Tensor, k: Tensor, v: Tensor, projection: Tensor, eps: float = 0.0) -> Tensor:
    """:func:`~enlcn.attention.enla.enla` (``[B, N, c]``, ``[B, N, c]``, ``[B, N, C]`` → ``[B, N, C]``) with
    the hand-derived backward of the module docstring; ``projection`` (``F``, ``m×c``) gets no gradient
    (it is a redrawn buffer, never trained)."""
    return _FusedENLA.apply(q.contiguous(), k.contiguous(), v.contiguous(), projection, float(eps))


def token_major(x: Tensor) -> bool:
    """Whether the 4-d ``x`` is channels_last (token-major per image) rather than contiguous NCHW (a tensor
    that is both, e.g. ``C = 1``, counts as NCHW: the two layouts are then the same memory)."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class _NativeENLA(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        ext: ModuleType,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        projection: Tensor,
        consts: tuple,
        tokens: bool,
    ):
        layout = token_major(x)
        out, *saved = ext.forward(x, weight, bias, projection, *consts, layout)  # out: channels_last
        ctx.ext, ctx.consts, ctx.layout = ext, consts, layout
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight, bias, projection, *saved)
        q, k = saved[2:4]  # [B, c, N]
        if not tokens:
            return out, None, None
        return out, q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous()  # token-major [B, N, c]

    @staticmethod
    def backward(ctx, grad_out: Tensor | None, grad_q: Tensor | None, grad_k: Tensor | None):  # type: ignore[override]
        x, weight, bias, projection, *saved = ctx.saved_tensors
        fmt = torch.channels_last  # out's layout, which the kernel reads its gradient in
        grad_out = (
            torch.zeros_like(x, memory_format=fmt)
            if grad_out is None
            else grad_out.contiguous(memory_format=fmt)
        )
        grad_q, grad_k = (None if g is None else g.contiguous() for g in (grad_q, grad_k))
        args = (x, weight, bias, projection, *ctx.consts, ctx.layout, saved, grad_out, grad_q, grad_k)
        grad_x, grad_w, grad_b = ctx.ext.backward(*args)  # per image: W̄ [B, L, C], b̄ [B, L]
        return None, grad_x, grad_w.sum(0), grad_b.sum(0), None, None, None


def enla_native(
    ext: ModuleType,
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    projection: Tensor,
    k: float,
    norm_eps: float,
    feature_eps: float,
    res_scale: float,
    tokens: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The ENLCA/ENLA module with 1×1 embeddings by the native kernel ``ext``
    (:func:`enlcn.attention.native.load_enla_train`): ``x [B, C, H, W]`` (NCHW or channels_last) and the
    stacked embedding ``weight [2c + C, C]``, ``bias [2c + C]`` (θ, δ, ψ; Eq. 2) → ``out = x + res_scale·Y``
    (Eqs. 2–6 and the residual; channels_last, as the Python path's sum with its token-major ``Y`` is, so
    the convolutions after the module run channels_last either way) and, when ``tokens``, the normalized
    ``Q, K [B, N, c]`` the contrastive loss takes (their gradients flow back through the same
    normalisation). Same values and gradients as :meth:`ENLCA.embed`, :func:`enla_fused` and the residual."""
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    consts = (math.sqrt(k), float(norm_eps), float(feature_eps), float(res_scale))
    w, b, f = (t.float().contiguous() for t in (weight, bias, projection))
    return _NativeENLA.apply(ext, x, w, b, f, consts, tokens)
