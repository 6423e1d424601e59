"""A fused inference path for ENLCA / ENLA: the same output as the reference (Eqs. 3–6), fewer passes.

The reference path (:meth:`ENLCA.embed` + :func:`~enlcn.attention.enla.enla`) is written for clarity and
autograd: three separate 1×1 convs, ``NCHW → NHWC`` token copies, ``feature_exponent`` with its own
``‖u‖²`` pass, shift/exp passes that allocate, separate numerator and normalizer products and a final
``NHWC → NCHW`` copy. This module computes the same quantity, up to float rounding, for inference only
(no autograd: buffers are modified in place), on every image ``X`` (``C×N``, the free view
``x[b].reshape(C, N)`` of ``NCHW``) as follows (``c = C/reduction``, ``s`` the stabilising shifts):

1. ``[θ; δ] = [W_θ; W_δ] X + b`` — ONE matmul for both embeddings, directly in the ``C×N`` layout.
2. ``Q = √k·θ / max(‖θ‖, ε_n)`` and ``K`` likewise, on the small ``c×N`` tensors (not on ``m×N``).
3. Keys: ``A_K = [F, −½, −s_k] · [K; ‖K‖²; 1]`` — the ``−‖K‖²/2`` term of Eq. 4 and the stabilising
   shift are folded into the projection matmul as extra columns/rows, so no ``m×N`` pass but ONE in-place
   ``exp_``. ``s_k`` is a data-independent bound (:func:`constant_shifts`); any per-image shift cancels
   in Eq. 5, so only float rounding differs from the reference's data maximum.
4. ``ψ`` is never computed over ``N``: ``φ(K) Vᵀ = (φ(K) Xᵀ) W_ψᵀ + (φ(K) 1) b_ψᵀ`` (linearity), which
   drops the ``C×C×N`` product of the value embedding; the official ``eps`` inside ``φ`` adds a rank-one
   term ``eps'·1 (X1)ᵀ`` to the small ``m×C`` result instead of a pass over ``m×N``.
5. Queries: with a per-query shift ``t``, ``exp(F Q − ‖Q‖²/2 − s) ∝ exp(F Q − t)`` per query, so the
   ``‖Q‖²`` term cancels exactly and is never computed over ``m×N``; ``t = s_q`` (a bound, folded into
   the matmul as ``[F, −s_q]·[Q; 1]``) or, when no safe bound exists, ``t = max_m F Q`` like the
   reference. ``‖Q‖²`` only enters the ``eps`` term ``eps·exp(‖Q‖²/2 − t)``, a ``1×N`` row, and is
   computed per token — never assumed to be ``k`` — so tokens with ``‖θ‖ < ε_n`` (``‖Q‖² < k``) are exact.
6. ``[res_scale·φ(K)Vᵀ | φ(K)1]ᵀ · [φ(Q); eps-row]`` — ONE matmul yields numerator (already scaled by
   ``res_scale``) and normalizer of Eqs. 5–6 in ``C×N`` layout; the ``eps`` term of ``φ(Q)`` is an extra
   row of the feature buffer with a matching column (the column sums of the context), so it costs no pass.
7. ``Y = X + numerator / normalizer`` — one ``addcdiv`` straight into the ``NCHW`` output.

Both sides run over column blocks of ``chunk`` tokens (the constant shifts of :func:`constant_shifts`
make the key side blockable too), which bounds the feature buffer at ``(m+1)×chunk`` floats, so memory
grows only with the ``c×N``/``C×N`` tensors. Measured on a 2-core AVX-512 Xeon at 150×150, C = 64,
m = 128 (``inference_mode``): reference 30–40 ms; fused path as above with blocks of 2048 tokens and
``linalg.vector_norm`` 16 ms; with ``square().sum()`` norms 7.1 ms; with the constant shifts (no max /
subtract passes) 6.6 ms; whole-image blocks 6.0–6.3 ms; ``torch.compile`` of the same computation
(inductor, 17 s to compile) was slower (7.9–10 ms) and is not used.

Whole images with both constant shifts take :func:`_enlca_whole` (same algebra, fewer calls: the
``‖Q‖²`` eps row folded into the query matmul, ``X φ(K)ᵀ`` instead of ``φ(K) Xᵀ``, a contiguous context,
a plain ``mm`` + ``add_`` for the embeddings instead of ``addmm``'s broadcast bias). Per-step medians at
150×150 (same machine, fresh process, warm allocator): embeddings 0.42 ms, norms/Q/K 0.42, two feature
matmuls 1.03, two ``exp_`` 0.65, ``X φ(K)ᵀ`` 1.2–1.4, ``φ(K)1`` 0.24, context 0.25, output matmul
1.2, ``addcdiv`` 0.4–0.5: 6.1–6.3 ms end to end against 6.3–6.5 ms for the blocked loop. A batched
``bmm`` for both feature maps (2.4 ms vs 1.0) and a ``[Q | K]`` side-by-side layout (strided output
product 2.7 ms vs 1.4) were slower and are not used. The three ``m``-sized products alone (~3.5 ms at the
~270–380 GFLOP/s MKL reaches for these shapes on 2 cores) plus the ``exp`` passes already take about as
long as a 3×3 64→64 convolution (4.5–5 ms with oneDNN), which is why ENLCA stays above that conv here.
On a 2-core AMD EPYC (Zen 4, AVX-512; same torch wheel, MKL 2024.2) the gap is wider: fused path
17.5 ms, conv 8.1 ms, the products alone 1.59× the conv (``enlcn bench``, interleaved rounds). Running
the feature and output products through oneDNN as 1×1 convolutions instead was slower there too
(4.8 vs 3.0 ms for ``P Z``, 6.4 vs 4.6 ms for the output product). numpy's OpenBLAS 0.3.31 on the same
shapes there (an ad-hoc check, not part of ``enlcn bench``): ``P Z`` 1.1 vs 2.6 ms with MKL, the output
product 2.6 vs 4.8 ms, but ``X φ(K)ᵀ`` 4.6 vs 3.7 ms; even the faster library per product leaves the
products alone at about one conv on that CPU.

What did reach the conv there is :mod:`enlcn.attention.native`: the same products per block of 256
tokens inside one OpenMP region (each thread owns whole blocks, so no BLAS call is threaded and each
block's feature map stays in L2), an AVX-512 polynomial ``exp`` with the ``eps`` and row sums folded in,
and oneDNN's brgemm for every block product. Per thread and image at 150×150 (2 threads, each half the
tokens; timers inside the kernel, sgemm for ``X φ(K)ᵀ``): embeddings 0.6 ms, norms 0.15, the two feature
products 0.5 each, the two ``exp`` passes 0.3 each, ``X φ(K)ᵀ`` 2.0, output product 1.7, final division
0.4 — 7.3 ms end to end against the conv's 8.0–8.5 in interleaved rounds; producing the key features
token-major (``φ(K)ᵀ``, ``w×m``) so that ``X φ(K)ᵀ`` is an untransposed brgemm too brought it to 6.9–7.0
ms (0.86× the conv). Going there from the Python path's 17.5 ms: block-local products with one parallel
region 10.3 ms, own ``exp`` with eps and sums folded in 8.2, brgemm for the block products 7.3. Steps
that did not help, measured there: ``at::`` tensor ops inside the region instead of raw BLAS calls
(dispatcher and ``InferenceMode`` overhead), a hand-written AVX-512 feature product with fused ``exp``
(1.19 ms vs 1.16 for sgemm + ``exp``: with ``c + 2 = 18`` the product is FMA-bound either way), blocks
of 512 or 1024 tokens (slower) and dynamic scheduling (no faster, and not reproducible: the per-thread
sums then vary from call to call).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn

from . import native
from .options import ENLCAOptions


class ENLCA(Protocol):
    """What the fused path reads of an ENLCA/ENLA module (:class:`enlcn.attention.enlca.ENLCA` is one):
    its options, the embeddings θ, δ, ψ and the feature matrix F. A protocol, so that this module needs
    nothing from the module that calls it."""

    options: ENLCAOptions
    theta: nn.Conv2d
    delta: nn.Conv2d
    psi: nn.Conv2d
    projection: Tensor  # F, [m, c]

#: tokens per column block: whole images up to 181×181 (smaller blocks were not faster on the CPU)
DEFAULT_CHUNK = 32768


def fast_supported(module: ENLCA, x: Tensor | None = None) -> bool:
    """Whether :func:`enlca_fast` implements ``module``'s options (1×1 embeddings only) and input ``x``.

    ``meta`` tensors are not supported (the constant shifts need the projection's values); FLOP counting
    on the meta device (:mod:`enlcn.flops`) therefore counts the reference path, i.e. the paper's operation.
    """
    if x is not None and (x.device.type == "meta" or module.projection.device.type == "meta"):
        return False
    return module.options.embed_kernel == 1


def fused_embedding_weights(module: ENLCA, dt: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """θ|δ stacked as one ``[2c, C]`` matrix with ``[2c, 1]`` bias, and ψ as ``[C, C]`` with ``[C]`` bias."""
    c, ch = module.theta.out_channels, module.theta.in_channels
    w_qk = torch.cat([module.theta.weight.reshape(c, ch), module.delta.weight.reshape(c, ch)]).to(dt)
    b_qk = torch.cat([module.theta.bias, module.delta.bias]).to(dt).unsqueeze(1)  # [2c, 1]
    return w_qk, b_qk, module.psi.weight.reshape(ch, ch).to(dt), module.psi.bias.to(dt)


@torch.no_grad()
def enlca_fast(module: ENLCA, x: Tensor, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """ENLCA/ENLA forward of ``module`` on ``x`` (``B×C×H×W``) for inference; equals the reference path.

    No autograd (runs under ``no_grad``) and no contrastive loss; the caller handles ``aux_loss``. Float32
    CPU inputs with both constant shifts go to the native kernel (:mod:`enlcn.attention.native`, any size:
    it works in blocks of its own) when it is available and ``module.use_native`` is true; else whole
    images up to ``chunk`` tokens to :func:`_enlca_whole`, larger ones to the blocked loop below.
    """
    if not fast_supported(module):
        raise ValueError("enlca_fast supports embed_kernel = 1 only")
    o = module.options
    q_shift, k_shift = constant_shifts(module.projection, o.k, o.key_norm)
    if getattr(module, "use_native", True) and native.supported(x, q_shift, k_shift) and native.load():
        return enlca_native(module, x, q_shift, k_shift)  # any size: it works in blocks itself
    if chunk >= x.shape[-2] * x.shape[-1] and q_shift is not None and k_shift is not None:
        return _enlca_whole(module, x, q_shift, k_shift)
    bsz, ch, height, width = x.shape
    n = height * width
    c = module.theta.out_channels
    dt = x.dtype
    w_qk, b_qk, w_v, b_v = fused_embedding_weights(module, dt)
    proj = module.projection.to(dt)  # [m, c]
    m = proj.shape[0]
    scale = math.sqrt(o.k)
    eps = float(o.feature_eps)
    chunk = max(1, min(int(chunk), n))
    # [F, −s_q] · [Q; 1] = F Q − s_q  and  [F, −½, −s_k] · [K; ‖K‖²; 1] = F K − ‖K‖²/2 − s_k
    proj_q = torch.cat([proj, proj.new_full((m, 1), -(q_shift or 0.0))], dim=1)  # [m, c+1]
    proj_k = torch.cat([proj, proj.new_full((m, 1), -0.5), proj.new_zeros(m, 1)], dim=1)  # [m, c+2]

    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    q_aug = x.new_empty(c + 1, n)  # [Q; 1]
    k_aug = x.new_empty(c + 2, n)  # [K; ‖K‖²; 1]
    q_aug[c].fill_(1.0)
    k_aug[c + 1].fill_(1.0)
    feats = x.new_empty((m + 1) * chunk)  # flat buffer: [φ(Q) block; eps row] or a φ(K) block
    kx = x.new_empty(m, ch)
    ksum = x.new_empty(m)
    ctx = x.new_empty(m + 1, ch + 1)  # [[res·φ(K)Vᵀ, φ(K)1]; [column sums]]
    rows = m + 1 if eps else m
    for i in range(bsz):
        xi = x[i].reshape(ch, n)  # [C, N], a view for contiguous NCHW
        emb = torch.addmm(b_qk, w_qk, xi)  # [2c, N] = [θ; δ]
        norms = emb.square().view(2, c, n).sum(dim=1).sqrt_()  # [2, N] = ‖θ‖, ‖δ‖
        inv = norms.clamp_min(o.norm_eps).reciprocal_().mul_(scale)  # √k / max(‖·‖, ε_n)
        inv_t = inv[0:1]
        inv_d = inv[1:2] if o.key_norm == "own" else inv_t  # "query": Eq. 3 literally, K = √k·δ/‖θ‖
        torch.mul(emb[:c], inv_t, out=q_aug[:c])  # Q
        torch.mul(emb[c:], inv_d, out=k_aug[:c])  # K
        torch.mul(norms[1:2], inv_d, out=k_aug[c : c + 1]).square_()  # ‖K‖² without another c×N pass
        qn2_half = (norms[0:1] * inv_t).square_().mul_(0.5)  # ‖Q‖²/2, [1, N]

        # -- keys: φ(K) Xᵀ and φ(K) 1 up to the image-wide factor exp(−s_k), in column blocks -------------
        if k_shift is None:  # no usable bound (key_norm="query" or large k): a pre-pass for the max
            s_k = max(float((proj_k @ k_aug[:, j : j + chunk]).max()) for j in range(0, n, chunk))
        else:
            s_k = k_shift
        proj_k[:, c + 1] = -s_k
        kx.zero_()
        ksum.zero_()
        for j in range(0, n, chunk):
            w = min(chunk, n - j)
            a_k = torch.matmul(proj_k, k_aug[:, j : j + w], out=feats[: m * w].view(m, w))
            a_k.exp_()  # exp(F K − ‖K‖²/2 − s_k)
            kx.addmm_(a_k, xi[:, j : j + w].T)  # += exp(…) Xᵀ
            ksum.add_(a_k.sum(dim=1))
        if eps:  # φ(K) = exp(…) + eps·exp(−s_k): a rank-one term on the small results
            eps_k = eps * math.exp(-s_k)
            kx.add_(torch.outer(ksum.new_full((m,), eps_k), xi.sum(dim=1)))
            ksum.add_(eps_k * n)
        # φ(K) Vᵀ = (φ(K) Xᵀ) W_ψᵀ + (φ(K) 1) b_ψᵀ, scaled by res_scale
        ctx[:m, :ch] = torch.addmm(torch.outer(ksum, b_v), kx, w_v.T).mul_(o.res_scale)
        ctx[:m, ch] = ksum
        torch.sum(ctx[:m], dim=0, out=ctx[m])  # multiplies the eps row of φ(Q)
        ctx_t = ctx.T[:, :rows]  # [C+1, rows]

        # -- queries, in column blocks ------------------------------------------------------------
        oi = out[i].reshape(ch, n)
        for j in range(0, n, chunk):
            w = min(chunk, n - j)
            fb = feats[: (m + 1) * w].view(m + 1, w)  # contiguous [m+1, w]
            a_q = torch.matmul(proj_q, q_aug[:, j : j + w], out=fb[:m])  # F Q − s_q
            if q_shift is None:
                shift = a_q.amax(dim=0, keepdim=True)  # [1, w] = max_m F Q
                a_q.sub_(shift)
            a_q.exp_()  # exp(F Q − t): the ‖Q‖²/2 terms of Eq. 4 and the shift cancel per query
            if eps:  # eps·exp(‖Q‖²/2 − t)
                t = q_shift if q_shift is not None else shift
                torch.sub(qn2_half[:, j : j + w], t, out=fb[m:]).exp_().mul_(eps)
            res = ctx_t @ fb[:rows]  # [C+1, w]: numerator (×res_scale) and normalizer
            torch.addcdiv(xi[:, j : j + w], res[:ch], res[ch:], out=oi[:, j : j + w])
    return out


#: largest exponent range ``2·R·√k`` for which the constant shifts are used (exp(−40) ≈ 4e-18, far from
#: float32's smallest normal number ~1e-38 even after products of two features)
MAX_CONSTANT_RANGE = 40.0


def constant_shifts(projection: Tensor, k: float, key_norm: str) -> tuple[float | None, float | None]:
    """Data-independent stabilising shifts ``(s_q, s_k)`` of the query / key features, or ``None``.

    Any per-query shift cancels between numerator and normalizer of Eq. 5 (any per-image shift for the
    keys), so the reference's data-dependent maxima can be replaced by upper bounds, which saves a max
    and a subtraction pass over ``m×N`` and lets the key side run in cache-sized blocks. With
    ``R = max_r ‖F_r‖``: ``‖Q‖ ≤ √k`` always (``Q = √k·θ/max(‖θ‖, ε)``), so ``F_r Q ≤ R√k = s_q``; with
    ``key_norm="own"`` also ``‖K‖ ≤ √k`` and ``F_r K − ‖K‖²/2 ≤ max_{0≤t≤√k}(R t − t²/2) = s_k``. The
    exponents then lie in ``[−2R√k, 0]``; the bounds are only used while ``2R√k ≤ MAX_CONSTANT_RANGE``
    so that no feature can underflow, else ``None`` (use the data's maxima like the reference).
    """
    big_r = float(projection.norm(dim=1).max())
    root_k = math.sqrt(k)
    if 2 * big_r * root_k > MAX_CONSTANT_RANGE:
        return None, None
    s_q = big_r * root_k
    if key_norm != "own":
        return s_q, None
    s_k = big_r * root_k - k / 2 if big_r >= root_k else big_r**2 / 2
    return s_q, s_k


def _inverse_norm(u: Tensor, eps: float, scale: float) -> Tensor:
    """``scale / max(‖u‖, eps)`` over dim 0 of ``u`` (``c×N``) as ``[1, N]``.

    ``square().sum(0)`` rather than ``linalg.vector_norm(dim=0)``: the latter reduces over the strided
    dimension ~60× slower on the CPU (5.6 ms vs 0.08 ms for 16×22500).
    """
    return u.square().sum(dim=0, keepdim=True).sqrt_().clamp_min_(eps).reciprocal_().mul_(scale)


def augmented_projections(proj: Tensor, s_q: float, s_k: float, eps: float) -> tuple[Tensor, Tensor]:
    """``P_q = [[F, 0, −s_q]; [0, ½, ln eps − s_q]]`` (``(m+1)×(c+2)``; the eps row only when ``eps > 0``)
    and ``P_k = [F, −½, −s_k]`` (``m×(c+2)``), contiguous, for ``F = proj`` (``m×c``).

    Acting on ``[Q; ‖Q‖²; 1]`` / ``[K; ‖K‖²; 1]`` they give the exponents of ``φ(Q)`` (with the eps row
    ``‖Q‖²/2 + ln eps − s_q``, see :func:`enlca_fast` step 5) and ``φ(K)`` (Eq. 4 with the shift ``s_k``).
    Shared by :func:`_enlca_whole` and the native kernel (:mod:`enlcn.attention.native`).
    """
    m, c = proj.shape
    p_q = proj.new_zeros(m + 1 if eps else m, c + 2)
    p_q[:m, :c] = proj
    p_q[:m, c + 1] = -s_q
    if eps:
        p_q[m, c] = 0.5
        p_q[m, c + 1] = math.log(eps) - s_q
    p_k = torch.cat([proj, proj.new_full((m, 1), -0.5), proj.new_full((m, 1), -s_k)], dim=1)
    return p_q, p_k


def _enlca_whole(module: ENLCA, x: Tensor, s_q: float, s_k: float) -> Tensor:
    """:func:`enlca_fast` for a whole image at once with both constant shifts (fewer, larger calls).

    ``Z[0] = [Q; ‖Q‖²; 1]``, ``Z[1] = [K; ‖K‖²; 1]`` (``(c+2)×N`` each) and
    ``P[0], P[1]`` of :func:`augmented_projections` give, after one in-place
    ``exp_`` each, ``φ_Q = exp(P[0] Z[0])`` with rows ``exp(F Q − s_q)`` and the eps row
    ``eps·exp(‖Q‖²/2 − s_q)`` (see :func:`enlca_fast` step 5), and ``φ_K = exp(F K − ‖K‖²/2 − s_k)``.
    The rest is steps 4, 6 and 7 of the module docstring with the context built directly in the
    ``(C+1)×(m+1)`` layout of the output product.
    """
    o = module.options
    bsz, ch, height, width = x.shape
    n = height * width
    c = module.theta.out_channels
    dt = x.dtype
    w_qk, b_qk, w_v, b_v = fused_embedding_weights(module, dt)
    proj = module.projection.to(dt)  # [m, c]
    m = proj.shape[0]
    scale = math.sqrt(o.k)
    eps = float(o.feature_eps)
    rows = m + 1 if eps else m
    p_q, p_k = augmented_projections(proj, s_q, s_k, eps)
    z = x.new_empty(2, c + 2, n)
    z[:, c + 1] = 1.0
    ctx_t = x.new_empty(ch + 1, rows)  # contiguous: the final product is ~4% faster than with a view
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    eps_k = eps * math.exp(-s_k)
    for i in range(bsz):
        xi = x[i].reshape(ch, n)  # [C, N], a view for contiguous NCHW
        emb = torch.mm(w_qk, xi).add_(b_qk).view(2, c, n)  # [θ; δ] (faster than addmm's broadcast bias)
        norms = emb.square().sum(dim=1, keepdim=True).sqrt_()  # [2, 1, N] = ‖θ‖, ‖δ‖
        inv = norms.clamp_min(o.norm_eps).reciprocal_().mul_(scale)  # √k / max(‖·‖, ε_n)
        torch.mul(emb, inv, out=z[:, :c])  # Q, K
        torch.mul(norms, inv, out=z[:, c : c + 1]).square_()  # ‖Q‖², ‖K‖²
        # two plain matmuls: bmm and out= variants were slower on the CPU
        phi_q = torch.mm(p_q, z[0]).exp_()  # [rows, N]
        phi_k = torch.mm(p_k, z[1]).exp_()  # [m, N]
        xk = xi @ phi_k.T  # [C, m] = X exp(…)ᵀ (this order is ~15% faster than exp(…) Xᵀ)
        ksum = phi_k.sum(dim=1)
        if eps:  # φ(K) = exp(…) + eps·exp(−s_k): a rank-one term on the small results
            xk.add_(torch.outer(xi.sum(dim=1), ksum.new_full((m,), eps_k)))
            ksum.add_(eps_k * n)
        # ctx_t = [[res·V φ(K)ᵀ, eps col]; [φ(K)1, eps col]] with V φ(K)ᵀ = W_ψ (X φ(K)ᵀ) + b_ψ (φ(K)1)ᵀ
        torch.addmm(torch.outer(b_v, ksum), w_v, xk, out=ctx_t[:ch, :m]).mul_(o.res_scale)
        ctx_t[ch, :m] = ksum
        if eps:
            torch.sum(ctx_t[:, :m], dim=1, out=ctx_t[:, m])  # multiplies the eps row of φ(Q)
        res = ctx_t @ phi_q  # [C+1, N]: numerator (×res_scale) and normalizer
        torch.addcdiv(xi, res[:ch], res[ch:], out=out[i].reshape(ch, n))
    return out


def kernel_operands(module: ENLCA, s_q: float, s_k: float) -> tuple[Tensor, ...]:
    """``w_qk, b_qk, p_q, p_k, w_v, b_v`` of the native kernel (float32, contiguous) for ``module``: the fused
    embedding weights and the projections of :func:`augmented_projections`, exactly as :func:`_enlca_whole`
    uses them."""
    w_qk, b_qk, w_v, b_v = fused_embedding_weights(module, torch.float32)
    p_q, p_k = augmented_projections(module.projection.float(), s_q, s_k, float(module.options.feature_eps))
    return tuple(t.contiguous() for t in (w_qk, b_qk.reshape(-1), p_q, p_k, w_v, b_v))


@torch.no_grad()
def enlca_native(module: ENLCA, x: Tensor, s_q: float, s_k: float, block: int = native.BLOCK) -> Tensor:
    """ENLCA/ENLA inference forward of ``module`` on ``x`` by the native kernel (:mod:`.native`, whose
    ``enlca_forward`` computes :func:`_enlca_whole` in blocks of ``block`` tokens); a ``RuntimeError`` when
    the kernel is unavailable."""
    ext = native.load()
    if ext is None:
        raise RuntimeError(f"the native ENLCA kernel is not available ({native.status()})")
    o = module.options
    eps_k = float(o.feature_eps) * math.exp(-s_k)  # φ(K) = exp(F K − ‖K‖²/2 − s_k) + eps·exp(−s_k)
    ops = kernel_operands(module, s_q, s_k)
    return ext.enlca_forward(
        x.contiguous(), *ops, math.sqrt(o.k), float(o.norm_eps), eps_k, float(o.res_scale), int(block)
    )
