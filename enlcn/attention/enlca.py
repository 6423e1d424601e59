"""ENLCA: Efficient Non-Local Contrastive Attention (paper §3), and ENLA, its ablation without sparsity.

``x → θ, δ, ψ`` (1×1 convs; Eq. 2) → ``Q = √k·θ/‖θ‖, K = √k·δ/‖δ‖`` (Eq. 3 as the official code reads
it) → ``Y = ENLA(Q, K, V)`` (Eqs. 4–6) → ``res_scale·Y + x``. In training mode, and when switched on,
the contrastive loss of ``Q, K`` (Eqs. 8–10) is left in ``aux_loss``.

``variant="official"`` (default) and ``variant="paper"`` choose the defaults listed in
:mod:`enlcn.variants`; any option can still be set explicitly.
"""

from __future__ import annotations

from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Attention, feature_map, tokens
from .contrastive import contrastive_loss
from .enla import enla, enla_weights
from .enla_autograd import enla_fused, enla_native, fused_enabled
from .fast import enlca_fast, fast_supported
from .kernels import gaussian_projection
from .options import ENLAOptions, ENLCAOptions  # re-exported: the options' public home is here too


def row_norm(u: Tensor, eps: float) -> Tensor:
    """``max(‖u‖, eps)`` over the last dimension (``[..., c] → [..., 1]``): the denominator of Eq. 3.

    ``F.normalize``'s value and gradient (``u / max(‖u‖, eps)``), computed as ``√max(Σu², eps²)``:
    ``linalg.vector_norm`` was several times slower on the CPU at these shapes (1.7 ms vs 0.1 ms for
    8×1024×12, measured in a training step's profile). The clamp sits under the root so that a zero row
    gets a zero gradient, as with ``F.normalize``, not ``0·∞``.
    """
    return u.square().sum(-1, keepdim=True).clamp_min(eps * eps).sqrt()


class ENLCA(Attention):
    """ENLCA module (paper §3, Fig. 2 and 4); ``B×C×H×W → B×C×H×W``."""

    Options = ENLCAOptions

    def __init__(self, channels: int, options: ENLCAOptions | None = None) -> None:
        options = options or self.Options.create()
        super().__init__(channels, options)
        if channels % options.reduction:
            raise ValueError(f"channels={channels} is not divisible by reduction={options.reduction}")
        c, pad = channels // options.reduction, options.embed_kernel // 2
        self.theta = nn.Conv2d(channels, c, options.embed_kernel, padding=pad)  # Q embedding
        self.delta = nn.Conv2d(channels, c, options.embed_kernel, padding=pad)  # K embedding
        self.psi = nn.Conv2d(channels, channels, options.embed_kernel, padding=pad)  # V embedding
        self.register_buffer("projection", gaussian_projection(options.m, c, options.orthogonal))
        self.register_buffer("calls_since_redraw", torch.zeros((), dtype=torch.long))
        self.contrastive_enabled = options.contrastive  # the trainer switches it on after warm-up
        self.use_fast_path = True  # eval + no-grad forwards take the fused path of .fast (same output)
        self.use_native = True  # …and on the CPU its native kernel (.native) when that is available

    # -- Eq. 3 ----------------------------------------------------------------------------------
    def embedding_maps(self, x: Tensor) -> Tensor:
        """θ, δ, ψ (Eq. 2) side by side as tokens, ``[B, N, 2c + C]``: one product with the three kernels
        stacked (one pass over ``X`` each way).

        With 1×1 kernels it is a linear map of the tokens, computed as such (``F.linear`` on the
        ``[B, N, C]`` view): token-major output, so the norms of Eq. 3 reduce over contiguous rows, and no
        ``_slow_conv2d`` on the CPU.
        """
        weight, bias = self.embedding_weights()  # [2c + C, C, h, h] (flattened when h = 1), [2c + C]
        if self.options.embed_kernel == 1:
            return F.linear(tokens(x), weight, bias)
        return tokens(F.conv2d(x, weight, bias, padding=self.theta.padding))

    def embedding_weights(self) -> tuple[Tensor, Tensor]:
        """θ, δ, ψ's kernels stacked, ``[2c + C, C]`` for 1×1 kernels (else ``[2c + C, C, h, h]``), and
        their biases ``[2c + C]``."""
        weight = torch.cat([self.theta.weight, self.delta.weight, self.psi.weight])  # [2c + C, C, h, h]
        bias = torch.cat([self.theta.bias, self.delta.bias, self.psi.bias])
        return (weight.flatten(1) if self.options.embed_kernel == 1 else weight), bias

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``Q, K, V`` tokens (``[B, N, c]``, ``[B, N, c]``, ``[B, N, C]``) of Eq. 3 (tests/test_enlca.py
        checks them against the literal convolutions + ``F.normalize``)."""
        o = self.options
        maps = self.embedding_maps(x)
        c = self.theta.out_channels
        theta, delta, psi = maps.split([c, c, maps.shape[-1] - 2 * c], dim=-1)  # [B, N, c | c | C]
        scale = o.k**0.5
        theta_norm = row_norm(theta, o.norm_eps)
        q = theta * (scale / theta_norm)
        # "own": K = √k·δ/‖δ‖; "query": Eq. 3 literally, K = √k·δ(X)/‖θ(X)‖
        key_norm = row_norm(delta, o.norm_eps) if o.key_norm == "own" else theta_norm
        return q, delta * (scale / key_norm), psi

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        inference = not self.training and not torch.is_grad_enabled()
        if self.use_fast_path and inference and fast_supported(self, x):
            # inference only (eval mode AND no autograd): the fused path of enlcn.attention.fast; training
            # and any forward that may be differentiated keep the reference path below
            self.aux_loss = None
            return enlca_fast(self, x)
        if self.training:
            self._count_call()
        o = self.options
        self.aux_loss = None
        contrastive = self.training and self.contrastive_enabled
        ext = self.native_training_kernel(x)
        if ext is not None:  # Eqs. 2–6 and the residual in one native op
            consts = (o.k, o.norm_eps, o.feature_eps, o.res_scale)
            out, q, k = enla_native(ext, x, *self.embedding_weights(), self.projection, *consts, contrastive)
        else:
            q, k, v = self.embed(x)
            attend = enla_fused if self.fused_path(x) else enla  # same function and gradients
            y = attend(q, k, v, self.projection, o.feature_eps)  # [B, N, C]
            out = feature_map(y, x.shape[-2], x.shape[-1]) * o.res_scale + x
        if contrastive:
            self.aux_loss = contrastive_loss(q, k, o.loss_form, o.n1, o.n2, o.b, o.hinge)
        return out

    def fused_path(self, x: Tensor) -> bool:
        """True when a differentiated forward takes :func:`~enlcn.attention.enla_autograd.enla_fused`:
        float32 input outside autocast, ``ENLCN_FUSED_ENLA`` not ``0`` (else autograd on :func:`enla`)."""
        return (
            torch.is_grad_enabled()
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled(x.device.type)
            and fused_enabled()
        )

    def native_training_kernel(self, x: Tensor) -> ModuleType | None:
        """The native training kernel (:func:`~enlcn.attention.enla_autograd.enla_native`) when a
        differentiated forward takes it: the fused path on a float32 CPU input, Eq. 3's own key norm
        (``key_norm="own"``), 1×1 embeddings (the kernel computes them), the kernel available
        (:func:`enlcn.attention.native.load_enla_train`)."""
        o = self.options
        if not (
            self.fused_path(x) and x.device.type == "cpu" and o.key_norm == "own" and o.embed_kernel == 1
        ):
            return None
        from .native import load_enla_train

        return load_enla_train()

    def training_path(self, x: Tensor) -> str:
        with torch.enable_grad():
            if self.native_training_kernel(x) is not None:
                from .native import enla_train_status

                path = f"ENLA training kernel: {enla_train_status()}"
            else:
                path = "fused ENLA backward" if self.fused_path(x) else "autograd"
        if not self.options.contrastive:
            return path
        from .native import contrastive_status

        on_cpu = x.device.type == "cpu" and x.dtype == torch.float32
        return f"{path}; contrastive loss: {contrastive_status() if on_cpu else 'python'}"

    def attention_weights(self, x: Tensor, index: int) -> Tensor:
        """The random-feature estimate of ``softmax(Q_iᵀK)`` that ENLA aggregates with (rows sum to 1)."""
        self.check_input(x)
        i = self.check_index(x, index)
        q, k, _ = self.embed(x)
        return enla_weights(q[:, i], k, self.projection, self.options.feature_eps)

    def exact_weights(self, x: Tensor, index: int) -> Tensor:
        """``softmax(Q_iᵀK)``: what the random features estimate (the paper's correlation maps)."""
        self.check_input(x)
        i = self.check_index(x, index)
        q, k, _ = self.embed(x)
        return torch.softmax((k @ q[:, i].unsqueeze(-1)).squeeze(-1), dim=-1)

    # -- redraw policy ---------------------------------------------------------------------------
    @torch.no_grad()
    def redraw_projection(self, generator: torch.Generator | None = None) -> None:
        """Draw a fresh ``F`` (Eq. 4) in place."""
        m, c = self.projection.shape
        new = gaussian_projection(m, c, self.options.orthogonal, generator)
        self.projection.copy_(new)
        self.calls_since_redraw.zero_()

    def on_epoch_start(self) -> None:
        """Called by the trainer at every epoch start: the paper's policy redraws ``F`` here."""
        if self.options.redraw == "epoch":
            self.redraw_projection()

    def _count_call(self) -> None:
        """The official policy: redraw when ``redraw_interval`` training calls have passed (calls 641, …)."""
        if self.options.redraw != "interval":
            return
        if int(self.calls_since_redraw) >= self.options.redraw_interval:
            self.redraw_projection()
        else:
            self.calls_since_redraw += 1


class ENLA(ENLCA):
    """ENLA alone (the ablation rows of Table 2): ENLCA's module with k = 1 and no contrastive loss."""

    Options = ENLAOptions
