"""Contrastive loss (Eqs. 8–10): both forms against a brute-force full sort."""

from __future__ import annotations

import math

import pytest
import torch

from enlcn.attention import contrastive, contrastive_loss
from enlcn.attention.contrastive import contrastive_bands


def amplified(b, n, c, k=6.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(b, n, c, generator=g), dim=-1) * math.sqrt(k)
    kk = torch.nn.functional.normalize(torch.randn(b, n, c, generator=g), dim=-1) * math.sqrt(k)
    return q, kk


def brute_force(q, k, form, n1=0.02, n2=0.08, b=1.0, hinge=False):
    """Straight from the formulas: the full N×N matrix, fully sorted rows, plain means of exp."""
    t = (q.double() @ k.double().transpose(1, 2)).exp()
    s = torch.sort(t, dim=-1, descending=True).values
    n = q.shape[1]
    if form == "official":
        pos, neg = s[..., :15].mean(-1), s[..., 50:65].mean(-1)
        return torch.relu(-torch.log(pos / (neg + 1e-6)) + b).mean()
    r, start = max(1, int(n1 * n)), int(n2 * n)
    term = -torch.log(s[..., :r].mean(-1) / s[..., start : start + r].mean(-1)) + b
    return (torch.relu(term) if hinge else term).mean()


@pytest.mark.parametrize("n", [100, 237])
@pytest.mark.parametrize("hinge", [False, True])
def test_paper_form_equals_full_sort(n, hinge):
    q, k = amplified(2, n, 8)
    got = contrastive_loss(q, k, "paper", hinge=hinge)
    assert got.item() == pytest.approx(brute_force(q, k, "paper", hinge=hinge).item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("n", [65, 300])
def test_official_form_equals_full_sort(n):
    q, k = amplified(3, n, 8, seed=1)
    got = contrastive_loss(q, k, "official")
    assert got.item() == pytest.approx(brute_force(q, k, "official").item(), rel=1e-5, abs=1e-6)


def test_paper_form_with_other_n1_n2_and_margin():
    q, k = amplified(1, 400, 16, seed=2)
    got = contrastive_loss(q, k, "paper", n1=0.03, n2=0.13, b=0.5)
    want = brute_force(q, k, "paper", n1=0.03, n2=0.13, b=0.5)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_row_chunking_does_not_change_the_value(monkeypatch):
    q, k = amplified(2, 150, 8, seed=3)
    whole = contrastive_loss(q, k, "paper")
    monkeypatch.setattr(contrastive, "CHUNK_ELEMENTS", 150 * 7)  # 7 rows per chunk, ragged last
    assert contrastive_loss(q, k, "paper").item() == pytest.approx(whole.item(), rel=1e-6)


def test_paper_form_is_bounded_by_margin_and_2k():
    k_amp = 6.0
    q, k = amplified(2, 200, 4, k=k_amp, seed=4)
    terms = []
    for i in range(200):
        terms.append(contrastive_loss(q[:, i : i + 1].expand(-1, 200, -1).contiguous(), k, "paper").item())
    assert max(terms) <= 1.0 + 1e-6 and min(terms) >= 1.0 - 2 * k_amp - 1e-6


def test_loss_falls_when_relevant_keys_align():
    q, k = amplified(1, 200, 8, seed=5)
    aligned = k.clone()
    aligned[:, :4] = q[:, :4]  # make some keys identical to queries: larger top-band relevance
    assert contrastive_loss(q, aligned, "paper") < contrastive_loss(q, k, "paper")


@pytest.mark.parametrize("form", ["paper", "official"])
def test_gradients_equal_the_full_sort_gradients(form):
    q, k = amplified(1, 120, 8, seed=6)
    b = 10.0  # large margin: the official hinge is active, so gradients are non-zero
    grads = []
    for fn in (contrastive_loss, brute_force):
        qq, kk = q.clone().requires_grad_(), k.clone().requires_grad_()
        fn(qq, kk, form, b=b).backward()
        grads.append((qq.grad.double(), kk.grad.double()))
    (gq, gk), (rq, rk) = grads
    assert rq.abs().sum() > 0 and rk.abs().sum() > 0
    assert torch.allclose(gq, rq, rtol=1e-4, atol=1e-7) and torch.allclose(gk, rk, rtol=1e-4, atol=1e-7)


def test_bands():
    assert contrastive_bands(784, "paper") == (15, 62, 77)  # floor(0.02·784), floor(0.08·784)
    assert contrastive_bands(2304, "official") == (15, 50, 65)
    with pytest.raises(ValueError, match="only 60 positions"):
        contrastive_bands(60, "official")
    with pytest.raises(ValueError, match="form must be"):
        contrastive_bands(100, "simclr")
    with pytest.raises(ValueError, match="n1"):
        contrastive_bands(100, "paper", n1=0.0)
