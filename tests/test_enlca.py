"""The ENLCA / ENLA modules: Eq. 3 embeddings, output, weights, redraw policies, variants."""

from __future__ import annotations

import math

import pytest
import torch

from enlcn.attention import build_attention, contrastive_loss, enla
from enlcn.attention.base import tokens
from enlcn.variants import DEVIATIONS, attention_variant, deviations_table


@pytest.fixture
def x():
    return torch.randn(2, 16, 9, 11, generator=torch.Generator().manual_seed(0))


def test_embeddings_are_amplified_unit_vectors(x):
    mod = build_attention("enlca", 16, m=8)
    q, k, v = mod.embed(x)
    assert q.shape == (2, 99, 4) and k.shape == (2, 99, 4) and v.shape == (2, 99, 16)
    assert torch.allclose(q.norm(dim=-1), torch.full((2, 99), math.sqrt(6)), atol=1e-5)
    assert torch.allclose(k.norm(dim=-1), torch.full((2, 99), math.sqrt(6)), atol=1e-5)
    cos = torch.nn.functional.cosine_similarity(q[:, :, None], k[:, None], dim=-1)
    assert torch.allclose(q @ k.transpose(1, 2), 6 * cos, atol=1e-4)  # T = k·cos (Eq. 8)


def _literal_embed(mod, x):
    """Eqs. 2–3 as written: three convolutions and ``F.normalize`` over the channels."""
    o, scale = mod.options, math.sqrt(mod.options.k)
    theta, delta, psi = mod.theta(x), mod.delta(x), mod.psi(x)
    q = torch.nn.functional.normalize(theta, dim=1, eps=o.norm_eps) * scale
    k = torch.nn.functional.normalize(delta, dim=1, eps=o.norm_eps) * scale
    return tokens(q), tokens(k), tokens(psi)


@pytest.mark.parametrize("embed_kernel", [1, 3])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_embed_equals_the_literal_convolutions_and_normalize(x, embed_kernel, layout):
    torch.manual_seed(1)
    mod = build_attention("enlca", 16, m=8, embed_kernel=embed_kernel)
    with torch.no_grad():  # one position with θ = 0: the clamp of ‖θ‖ at eps is taken there
        mod.theta.bias.zero_()
    x = x.clone()
    x[0, :, 4, 5] = 0.0
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weights = [torch.randn(2, 99, n, generator=torch.Generator().manual_seed(n)) for n in (4, 4, 16)]
    grads = []
    for embed in (mod.embed, lambda t: _literal_embed(mod, t)):
        outs = embed(x)
        loss = sum((o * w).sum() for o, w in zip(outs, weights, strict=True))
        grads.append((outs, torch.autograd.grad(loss, [x, *mod.parameters()])))
    (ours, g_ours), (ref, g_ref) = grads
    for a, b in zip(ours, ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_ours, g_ref, strict=True):  # finite, and equal to 1e-5 of the gradient's norm
        assert torch.isfinite(a).all() and (a - b).norm() <= 1e-5 * b.norm()
    if embed_kernel == 1:  # θ = 0 at the zeroed pixel: the clamped row is 0, not a unit vector
        assert ours[0][0, 4 * 11 + 5].abs().max() == 0


def test_literal_eq3_key_norm_divides_by_theta(x):
    mod = build_attention("enlca", 16, m=8, key_norm="query")
    _, k, _ = mod.embed(x)
    theta, delta = mod.theta(x), mod.delta(x)
    expected = tokens(delta / theta.norm(dim=1, keepdim=True) * math.sqrt(6))
    assert torch.allclose(k, expected, atol=1e-5)


def test_forward_is_res_scale_times_enla_plus_input(x):
    mod = build_attention("enlca", 16, m=8).eval()
    q, k, v = mod.embed(x)
    y = enla(q, k, v, mod.projection, 1e-4)  # [B, N, C]
    expected = y.transpose(1, 2).reshape_as(x) * 0.1 + x
    assert torch.allclose(mod(x), expected, atol=1e-6)


def test_attention_weights_reproduce_the_output(x):
    mod = build_attention("enlca", 16, m=8).eval()
    out = mod(x)
    _, _, v = mod.embed(x)
    for index in (0, 37, 98):
        w = mod.attention_weights(x, index)  # [B, N]
        assert torch.allclose(w.sum(-1), torch.ones(2), atol=1e-5) and (w >= 0).all()
        agg = torch.einsum("bn,bnc->bc", w, v)
        assert torch.allclose(out.flatten(2)[:, :, index], x.flatten(2)[:, :, index] + 0.1 * agg, atol=1e-5)


def test_estimated_weights_approach_exact_softmax_as_m_grows(x):
    errs = []
    for m in (4, 64, 1024):
        torch.manual_seed(0)
        mod = build_attention("enlca", 16, m=m, k=2.0, orthogonal=False, feature_eps=0.0)
        errs.append((mod.attention_weights(x, 40) - mod.exact_weights(x, 40)).abs().sum(-1).mean().item())
    assert errs[2] < errs[1] < errs[0]


def test_contrastive_loss_only_in_training_and_when_enabled(x):
    x = torch.randn(1, 16, 10, 10)
    mod = build_attention("enlca", 16, m=8, loss_form="paper", hinge=False)
    mod.train()
    mod(x)
    q, k, _ = mod.embed(x)
    assert mod.aux_loss is not None
    assert mod.aux_loss.item() == pytest.approx(contrastive_loss(q, k, "paper").item(), rel=1e-5)
    mod.contrastive_enabled = False  # warm-up
    mod(x)
    assert mod.aux_loss is None
    mod.contrastive_enabled = True
    mod.eval()
    mod(x)
    assert mod.aux_loss is None
    assert build_attention("enla", 16, m=8).train()(x) is not None
    assert build_attention("enla", 16, m=8).contrastive_enabled is False


def test_interval_redraw_matches_the_official_schedule():
    mod = build_attention("enlca", 8, m=4, reduction=2, redraw_interval=3, contrastive=False)
    x = torch.randn(1, 8, 4, 4)
    seen = [mod.projection.clone()]
    mod.train()
    for _ in range(8):
        mod(x)
        seen.append(mod.projection.clone())
    changed = [not torch.equal(a, b) for a, b in zip(seen, seen[1:], strict=False)]
    # calls 1-3 count up, call 4 redraws (official: 641 with interval 640), then calls 5-7, call 8
    assert changed == [False, False, False, True, False, False, False, True]
    mod.eval()
    before = mod.projection.clone()
    for _ in range(5):
        mod(x)
    assert torch.equal(before, mod.projection)  # no redraw, no counting in eval


@pytest.mark.parametrize(("policy", "redraws"), [("epoch", True), ("never", False), ("interval", False)])
def test_epoch_start_redraws_only_under_the_epoch_policy(policy, redraws):
    mod = build_attention("enlca", 8, m=4, reduction=2, redraw=policy)
    before = mod.projection.clone()
    mod.on_epoch_start()
    assert (not torch.equal(before, mod.projection)) is redraws


def test_variants_set_the_documented_defaults():
    paper = build_attention("enlca", 16, variant="paper").options
    official = build_attention("enlca", 16).options
    assert (paper.orthogonal, paper.feature_eps, paper.redraw, paper.loss_form, paper.hinge) == (
        False,
        0.0,
        "epoch",
        "paper",
        False,
    )
    o = official
    expected = (True, 1e-4, "interval", "official", True)
    assert (o.orthogonal, o.feature_eps, o.redraw, o.loss_form, o.hinge) == expected
    # explicit options win over the variant; ENLA keeps k = 1 and no loss under both variants
    assert build_attention("enlca", 16, variant="paper", orthogonal=True).options.orthogonal is True
    enla_paper = build_attention("enla", 16, variant="paper").options
    assert (enla_paper.k, enla_paper.contrastive, enla_paper.orthogonal) == (1.0, False, False)


def test_every_attention_option_in_the_deviation_list_exists():
    fields = set(build_attention("enlca", 16).options.__dataclass_fields__)
    for variant in ("paper", "official"):
        assert set(attention_variant(variant)) <= fields
    assert {"topic", "paper", "official", "ours", "source"} <= set(deviations_table().columns)
    assert len(deviations_table()) == len(DEVIATIONS)


def test_bad_options_are_named():
    with pytest.raises(TypeError, match="'mm'"):
        build_attention("enlca", 16, mm=3)
    with pytest.raises(ValueError, match="redraw"):
        build_attention("enlca", 16, redraw="sometimes")
    with pytest.raises(ValueError, match="variant"):
        build_attention("enlca", 16, variant="github")
    with pytest.raises(ValueError, match="divisible"):
        build_attention("enlca", 18)
    with pytest.raises(ValueError, match="unknown attention kind"):
        build_attention("swin", 16)


def test_bad_input_is_named():
    mod = build_attention("enlca", 16, m=8)
    with pytest.raises(ValueError, match="16 channels"):
        mod(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="B×C×H×W"):
        mod(torch.randn(16, 4, 4))
    with pytest.raises(IndexError, match="outside"):
        mod.attention_weights(torch.randn(1, 16, 4, 4), 16)
