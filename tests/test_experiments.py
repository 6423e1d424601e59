"""Training-free experiments behind the notebooks."""

from __future__ import annotations

import pytest
import torch

from enlcn.experiments import attention_error_vs_k, effective_positions, photo_patches


def test_photo_patches_are_unit_mean_free_vectors():
    p = photo_patches(12)
    assert p.shape == (144, 27)
    assert torch.allclose(p.norm(dim=1), torch.ones(144), atol=1e-4)
    assert torch.allclose(p.sum(dim=1), torch.zeros(144), atol=1e-4)


def test_effective_positions():
    assert effective_positions(torch.full((1, 50), 1 / 50)).item() == pytest.approx(50)
    assert effective_positions(torch.tensor([[1.0, 0, 0]])).item() == pytest.approx(1)


def test_attention_error_falls_with_m_and_sparsity_rises_with_k():
    df = attention_error_vs_k([1.0, 6.0], [8, 512], image_size=12, queries=16, repeats=3, seed=0)
    assert len(df) == 2 * 2 * 2
    iid = df[df.features == "i.i.d. (paper)"].set_index(["k", "m"]).tv_distance
    assert iid[(1.0, 512)] < iid[(1.0, 8)] / 3  # ~1/√m: 8× fewer would be exact
    eff = df.groupby("k").effective_positions.first()
    assert eff[6.0] < eff[1.0] < 144
