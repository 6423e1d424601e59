"""The shared interface, for every attention kind: shapes, gradients, determinism, weights."""

from __future__ import annotations

import pytest
import torch

from enlcn.attention import KINDS, build_attention

#: small but non-trivial options per kind (criss-cross: gamma ≠ 0 so its Q/K/V get gradients)
OPTIONS = {
    "none": {},
    "nla": {},
    "nlsa": {"chunk_size": 16},
    "crisscross": {"gamma_init": 0.5},
    "enla": {"m": 16},
    "enlca": {"m": 16, "loss_form": "paper", "hinge": False},
}


def make(kind, seed=0):
    torch.manual_seed(seed)
    return build_attention(kind, 16, **OPTIONS[kind])


def test_every_kind_has_options():
    assert set(OPTIONS) == set(KINDS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_shape_and_gradients(kind):
    mod = make(kind).train()
    x = torch.randn(2, 16, 10, 12, requires_grad=True)
    out = mod(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    loss = out.square().mean() + (mod.aux_loss if mod.aux_loss is not None else 0)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in mod.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{kind}: no gradient reaches {name}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_deterministic_under_a_seed(kind):
    x = torch.randn(1, 16, 8, 8)
    outs = []
    for _ in range(2):
        mod = make(kind, seed=3).eval()
        torch.manual_seed(7)  # NLSA draws its hash rotations from the global RNG
        outs.append(mod(x))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("kind", list(KINDS))
def test_attention_weights_are_a_distribution(kind):
    mod = make(kind).eval()
    x = torch.randn(2, 16, 9, 7)
    for index in (0, 31, 62, -1):
        w = mod.attention_weights(x, index)
        assert w.shape == (2, 63)
        assert (w >= 0).all()
        assert torch.allclose(w.sum(-1), torch.ones(2, dtype=w.dtype), atol=1e-5)


def test_none_attends_to_itself_only():
    w = make("none").attention_weights(torch.randn(1, 16, 3, 3), 4)
    assert torch.equal(w, torch.nn.functional.one_hot(torch.tensor([4]), 9).float())
