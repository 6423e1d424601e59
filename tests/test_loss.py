"""The training objective (Eqs. 11–12, enlcn.loss.objective) shared by the trainer, GPU study and bench."""

from __future__ import annotations

import pytest
import torch

from enlcn.loss import objective
from enlcn.models import build_model, set_contrastive


def _tiny(name: str):
    torch.manual_seed(0)
    return build_model(name, 2, "quick", n_resblocks=4, attention_every=2).train()


def test_without_a_contrastive_term_the_loss_is_the_mean_absolute_error():
    model = _tiny("edsr")
    sr = torch.zeros(2, 3, 8, 8)
    hr = torch.full((2, 3, 8, 8), 0.25)
    hr[0, 0, 0, 0] = 1.25  # one pixel off by 1.25: the mean over 384 values moves by 1/384
    loss, rec, cl = objective(model, sr, hr, 1e-3)
    assert cl is None and loss is rec
    assert rec.item() == pytest.approx(0.25 + 1 / 384, abs=1e-7)


def test_the_contrastive_term_is_the_mean_of_the_modules_weighted_by_lambda():
    model = _tiny("enlcn")
    assert set_contrastive(model, True) == 3  # three ENLCA modules (EDSR's layout: 4 blocks, every 2nd)
    lr = torch.rand(1, 3, 12, 12)
    sr = model(lr)
    terms = [t.item() for t in model.aux_losses()]
    assert len(terms) == 3 and max(terms) - min(terms) > 1e-6  # the mean is none of them, nor their sum
    loss, rec, cl = objective(model, sr, torch.zeros_like(sr), 0.5)
    assert rec.item() == pytest.approx(sr.abs().mean().item(), rel=1e-6)
    assert cl.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    assert loss.item() == pytest.approx(rec.item() + 0.5 * cl.item(), rel=1e-6)
    set_contrastive(model, False)  # the warm-up: the term is off, the loss is L_rec alone
    loss, rec, cl = objective(model, model(lr), torch.zeros_like(sr), 0.5)
    assert cl is None and loss is rec


def test_a_bf16_output_is_scored_in_float32():
    model = _tiny("edsr")
    sr = torch.full((1, 3, 4, 4), 0.1, dtype=torch.bfloat16)  # bf16(0.1) = 0.10009765625
    loss, rec, _ = objective(model, sr, torch.zeros(1, 3, 4, 4), 1e-3)
    assert rec.dtype == torch.float32
    assert rec.item() == pytest.approx(0.10009765625, abs=1e-9)
