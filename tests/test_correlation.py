"""Correlation maps and their precision against known repeats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enlcn.correlation import (
    attention_inputs,
    attention_removed,
    branch_share,
    correlation_maps,
    precision_table,
    repeat_precision,
)
from enlcn.data import bicubic_downscale
from enlcn.data.synthetic import SelfSimilarSet
from enlcn.models import build_model


def test_repeat_precision_on_a_hand_made_map():
    w = np.array([0.5, 0.2, 0.2, 0.1])
    repeats = np.array([True, False, True, False])
    got = repeat_precision(w, repeats)
    assert got["mass"] == pytest.approx(0.7)
    assert got["uniform_mass"] == pytest.approx(0.5)
    # the top-2 positions are 0 (a repeat) and 1 or 2 (tie, stable order → 1, not a repeat)
    assert got["top_precision"] == pytest.approx(0.5)
    assert got["effective_positions"] == pytest.approx(1 / (0.25 + 0.04 + 0.04 + 0.01))


def test_repeat_precision_rejects_a_query_without_repeats():
    with pytest.raises(ValueError, match="no true repeats"):
        repeat_precision(np.ones(4) / 4, np.zeros(4, bool))


@pytest.fixture(scope="module")
def scene():
    torch.manual_seed(0)
    model = build_model("enlcn", 2, "quick").eval()
    item = SelfSimilarSet(1, 96, seed=5, scale=2, motifs=2, copies=3).item(0)
    return model, bicubic_downscale(item.image, 2), item.labels


def test_maps_are_distributions_and_the_estimate_is_what_the_module_aggregates(scene):
    model, lr, _ = scene
    maps = correlation_maps(model, lr, (7, 9))
    n_modules = len(list(model.attention_modules()))
    assert maps.exact.shape == maps.estimate.shape == (n_modules, *lr.shape[:2])
    np.testing.assert_allclose(maps.exact.sum((1, 2)), 1, atol=1e-5)
    np.testing.assert_allclose(maps.estimate.sum((1, 2)), 1, atol=1e-5)
    # module 0's output at the query = res_scale · Σ_j ŵ_j V_j + x: the estimate is what ENLA really uses
    module = next(iter(model.attention_modules()))
    x = attention_inputs(model, lr)[0]
    with torch.no_grad():
        _, _, v = module.embed(x)  # [1, N, C]
    w = torch.from_numpy(maps.estimate[0]).reshape(1, -1)
    i = 7 * lr.shape[1] + 9
    expected = module.options.res_scale * (w @ v[0]) + x.flatten(2)[0, :, i]
    with torch.no_grad():
        got = module(x).flatten(2)[0, :, i]
    torch.testing.assert_close(got, expected[0], atol=1e-5, rtol=1e-4)


def test_exact_map_is_the_softmax_of_the_amplified_embeddings(scene):
    model, lr, _ = scene
    module = next(iter(model.attention_modules()))
    x = attention_inputs(model, lr)[0]
    with torch.no_grad():
        q, k, _ = module.embed(x)
    i = 3 * lr.shape[1] + 4
    by_hand = torch.softmax(k[0] @ q[0, i], dim=0).reshape(lr.shape[:2])
    maps = correlation_maps(model, lr, (3, 4))
    np.testing.assert_allclose(maps.exact[0], by_hand.numpy(), atol=1e-6)


def test_precision_table_scores_every_module_and_both_maps(scene):
    model, lr, labels = scene
    table = precision_table(model, lr, labels, queries=3)
    n_modules = len(list(model.attention_modules()))
    assert len(table) == 3 * n_modules * 2
    assert set(table["map"]) == {"exact", "estimate"}
    assert ((table.mass >= 0) & (table.mass <= 1)).all()
    assert ((table.top_precision >= 0) & (table.top_precision <= 1)).all()


def test_query_outside_the_image_is_named(scene):
    model, lr, _ = scene
    with pytest.raises(IndexError, match="outside"):
        correlation_maps(model, lr, (lr.shape[0], 0))


def test_attention_removed_is_the_backbone_with_identities_and_is_undone(scene):
    model, lr, _ = scene
    x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        before = model(x)
        with attention_removed(model):
            removed = model(x)
        after = model(x)
        # the same network with its attention modules swapped for nn.Identity
        saved = {i: model.body[i] for i in model.config.attention_positions()}
        try:
            for i in saved:
                model.body[i] = torch.nn.Identity()
            reference = model(x)
        finally:
            for i, m in saved.items():
                model.body[i] = m
    torch.testing.assert_close(removed, reference, rtol=0, atol=0)
    torch.testing.assert_close(after, before, rtol=0, atol=0)  # hooks gone
    assert (removed - before).abs().max() > 1e-4  # the attention did change the output


def test_branch_share_is_the_relative_change_each_module_makes(scene):
    model, lr, _ = scene
    shares = branch_share(model, lr)
    inputs = attention_inputs(model, lr)
    assert shares.shape == (len(inputs),) == (len(list(model.attention_modules())),)
    with torch.no_grad():
        for share, module, x in zip(shares, model.attention_modules(), inputs, strict=True):
            expected = float((module(x) - x).norm() / x.norm())
            assert share == pytest.approx(expected, rel=1e-5)
    assert (shares > 0).all()


def test_attention_io_stops_after_the_last_attention_module_with_a_full_pass_s_values(scene):
    from enlcn.correlation import attention_io
    from enlcn.data.images import to_tensor

    model, lr, _ = scene
    full: list = []
    modules = model.attention_modules()
    hooks = [m.register_forward_hook(lambda _m, a, o: full.append((a[0], o))) for m in modules]
    tail_calls: list = []
    with torch.no_grad():
        model(to_tensor(lr[None]))
    for h in hooks:
        h.remove()
    hook = model.tail.register_forward_hook(lambda *_: tail_calls.append(1))
    try:
        io = attention_io(model, lr)
    finally:
        hook.remove()
    assert tail_calls == [] and len(io) == len(full) == len(model.attention_modules()) > 1
    for (x, y), (x0, y0) in zip(io, full, strict=True):
        assert torch.equal(x, x0) and torch.equal(y, y0)
    assert len(model.attention_modules()[0]._forward_hooks) == 0  # its hooks are removed
