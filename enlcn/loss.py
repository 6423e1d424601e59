"""ENLCN's training objective (paper Eqs. 11–12), the one place every training loop takes it from.

The trainer (:meth:`enlcn.train.Trainer.train_step`), the GPU study's step
(:func:`enlcn.study.gpu.training.train_step`) and the benchmark's step
(:func:`enlcn.bench.pipeline.build_train_step`) differ in what surrounds the loss — DDP, host
synchronisation, timing — and share the loss itself, here. The official trainer (``trainer.py``) computes
the same: ``L1(sr, hr) + 1e-3 · mean(per-module contrastive losses)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .models import SRModel, contrastive_loss


def objective(
    model: SRModel, sr: Tensor, hr: Tensor, lambda_cl: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(L, L_rec, L_cl)`` after a training forward ``sr = model(lr)``.

    Eq. 11: ``L_rec = ‖I_HR − I_SR‖₁``, the mean absolute error over pixels, channels and batch.
    Eq. 12: ``L = L_rec + λ_cl · L_cl`` (the paper's λ_cl is 1e-3), ``L_cl`` the mean of the attention
    modules' contrastive terms of this forward (:func:`enlcn.models.contrastive_loss`); a model with none
    switched on (no ENLCA, or the warm-up) has ``L_cl = None`` and ``L = L_rec``.
    ``sr`` is taken to float32 first: under bf16 autocast the model's output is bf16.
    """
    # sr, hr: (B, 3, s·h, s·w)
    rec = F.l1_loss(sr.float(), hr)
    cl = contrastive_loss(model)
    return (rec if cl is None else rec + lambda_cl * cl), rec, cl
