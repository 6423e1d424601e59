"""Shared test inputs and the reference forward of ENLCA (``from conftest import reference_forward``)."""

from __future__ import annotations

import pytest
import torch

from enlcn.attention import build_attention


@pytest.fixture
def small_norm_case():
    """An ENLCA module (16 ch, m = 32, zero embedding biases) and an input with θ = δ = 0 on three rows and
    0 < ‖θ‖ < ε_n on a fourth: ‖Q‖² there is below k and must be computed per token, never assumed."""
    torch.manual_seed(3)
    mod = build_attention("enlca", 16, m=32).eval()
    with torch.no_grad():
        mod.theta.bias.zero_()
        mod.delta.bias.zero_()
    x = torch.randn(1, 16, 8, 8)
    x[..., :3, :] = 0.0
    x[..., 3, :] = 1e-6
    return mod, x


def reference_forward(mod, x):
    """``mod``'s reference path (Eqs. 3–6 as written, no fused or native path), without autograd."""
    mod.use_fast_path = False
    try:
        with torch.no_grad():
            return mod(x)
    finally:
        mod.use_fast_path = True
