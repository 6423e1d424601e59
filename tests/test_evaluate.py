"""Inference modes: chop and tiles against a whole-image pass, and the ×8 self-ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enlcn.evaluate import forward_chop, forward_tiles, self_ensemble, upscale
from enlcn.models import build_model


def local_model(scale=2):
    """A purely local network (EDSR): tiles with enough overlap must equal one pass."""
    torch.manual_seed(0)
    return build_model("edsr", scale, "quick").eval()


def nearest(x, scale=2):
    return torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")


@pytest.mark.parametrize("shape", [(20, 30), (33, 17)])
def test_chop_of_a_pointwise_map_is_exact(shape):
    x = torch.rand(1, 3, *shape)
    out = forward_chop(nearest, x, 2, shave=4, min_size=100)  # recursion exercised
    assert torch.equal(out, nearest(x))


def test_tiles_of_a_pointwise_map_are_exact_and_cover_everything():
    x = torch.rand(2, 3, 37, 23)
    assert torch.allclose(forward_tiles(nearest, x, 2, tile=16, overlap=4), nearest(x))


def test_tiles_and_chop_match_a_local_network_away_from_seams():
    model = local_model()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        whole = model(x)
        chop = forward_chop(model, x, 2, shave=12, min_size=10_000)
    # receptive field of the quick EDSR (4 blocks: 2 + 2·4 + 1 + tail) is < 12 LR px on each side
    assert (chop - whole).abs().max() < 1e-5


def test_chop_changes_a_global_attention_model():
    torch.manual_seed(0)
    model = build_model("enlcn", 2, "quick").eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        diff = (forward_chop(model, x, 2, shave=4, min_size=10_000) - model(x)).abs().max()
    assert diff > 1e-6  # attention is global only inside a quadrant


def test_self_ensemble_of_an_equivariant_map_is_identity():
    x = torch.rand(1, 3, 9, 13)
    assert torch.allclose(self_ensemble(nearest, x), nearest(x))
    flipped_only = self_ensemble(lambda t: t * 2, x)
    assert torch.allclose(flipped_only, x * 2)


def test_upscale_modes_and_errors():
    model = local_model()
    lr = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    out = upscale(model, lr, 2)
    assert out.shape == (3, 48, 40)
    with pytest.raises(ValueError, match="inference mode"):
        upscale(model, lr, 2, mode="quadrants")
    with pytest.raises(ValueError, match="overlap"):
        forward_tiles(nearest, torch.rand(1, 3, 8, 8), 2, tile=8, overlap=8)
