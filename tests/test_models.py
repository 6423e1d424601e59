"""EDSR / ENLCN / EDSR+attention models: parameter counts, placement, shapes, aux losses, presets."""

from __future__ import annotations

import time

import pytest
import torch

from enlcn.attention import KINDS
from enlcn.models import (
    ModelConfig,
    build_model,
    contrastive_loss,
    count_parameters,
    model_config,
    set_contrastive,
)
from enlcn.models.edsr import MeanShift, ResBlock
from enlcn.profiles import MODEL_PRESETS, PROFILES, Profile, get_model_preset, get_profile

# official model definitions instantiated with torch 2.13 (shared/reference/paper-vs-official-code.md §2)
OFFICIAL_COUNTS = {
    ("enlcn", 2): 41_223_067,
    ("enlcn", 4): 43_583_387,
    ("edsr", 2): 40_729_627,
    ("edsr", 4): 43_089_947,
    ("edsr+nlsa", 2): 41_796_187,
    ("edsr+nlsa", 4): 44_156_507,
}


def quick(name="enlcn", scale=2, **kw):
    torch.manual_seed(0)
    return build_model(name, scale, "quick", **kw)


@pytest.mark.parametrize(("name", "scale"), list(OFFICIAL_COUNTS))
def test_paper_preset_has_the_official_parameter_count(name, scale):
    with torch.device("meta"):  # counting needs no memory or init
        model = build_model(name, scale)
    assert count_parameters(model) == OFFICIAL_COUNTS[name, scale]
    assert count_parameters(model) - count_parameters(model, trainable_only=True) == 24  # MeanShift ×2


def test_attention_module_sizes_match_the_reference():
    with torch.device("meta"):
        enlcn = build_model("enlcn", 2)
        nlsn = build_model("edsr+nlsa", 2)
    assert [count_parameters(m) for m in enlcn.attention_modules()] == [98_688] * 5
    assert [count_parameters(m) for m in nlsn.attention_modules()] == [213_312] * 5
    assert [tuple(m.projection.shape) for m in enlcn.attention_modules()] == [(128, 64)] * 5
    opts = enlcn.attention_modules()[0].options
    assert (opts.m, opts.k, opts.res_scale, opts.reduction) == (128, 6.0, 0.1, 4)
    assert nlsn.attention_modules()[0].options.res_scale == 0.1  # NLSN passes the model's res_scale


@pytest.mark.parametrize(
    ("n_resblocks", "every", "positions", "final_conv"),
    [(32, None, [0, 9, 18, 27, 36], 37), (8, None, [0, 3, 6, 9, 12], 13), (8, 4, [0, 5, 10], 11)],
)
def test_placement(n_resblocks, every, positions, final_conv):
    model = build_model("enlcn", 2, "quick", n_resblocks=n_resblocks, attention_every=every)
    kinds = [type(b).__name__ for b in model.body]
    assert [i for i, k in enumerate(kinds) if k == "ENLCA"] == positions == model.config.attention_positions()
    assert kinds.count("ResBlock") == n_resblocks and len(kinds) == final_conv + 1
    assert isinstance(model.body[final_conv], torch.nn.Conv2d)
    # between consecutive attention modules: exactly `every` ResBlocks
    assert all(
        positions[j + 1] - positions[j] - 1 == n_resblocks // (len(positions) - 1)
        for j in range(len(positions) - 1)
    )


def test_edsr_body_is_resblocks_then_conv_as_officially():
    model = quick("edsr")
    assert model.attention_modules() == [] and len(model.body) == 5
    assert all(isinstance(b, ResBlock) for b in model.body[:4])


def test_indivisible_blocks_are_a_clear_error():
    with pytest.raises(ValueError, match="n_resblocks=6 is not divisible by 4"):
        build_model("enlcn", 2, "quick", n_resblocks=6)
    with pytest.raises(ValueError, match="attention_every=4 must be a positive int dividing n_resblocks=6"):
        build_model("enlcn", 2, "quick", n_resblocks=6, attention_every=4)
    assert len(build_model("enlcn", 2, "quick", n_resblocks=6, attention_every=3).attention_modules()) == 3
    assert len(build_model("edsr", 2, "quick", n_resblocks=6).body) == 7  # no attention: no constraint


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["enlcn", "edsr"])
def test_output_shapes(name, scale):
    model = quick(name, scale).eval()
    x = torch.rand(2, 3, 10, 13)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 10 * scale, 13 * scale)
    upsampler = model.tail[0]
    convs = [m for m in upsampler if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == ([9 * 16] if scale == 3 else [4 * 16] * (scale // 2))


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_builds_and_runs(kind):
    model = quick(f"edsr+{kind}").eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 8, 9))
    assert y.shape == (1, 3, 16, 18) and torch.isfinite(y).all()
    assert len(model.attention_modules()) == 5
    assert model.config.attention_kind == kind


def test_meanshift_is_frozen_and_shifts_by_rgb_range_times_mean():
    m = MeanShift(255, sign=-1)
    x = torch.zeros(1, 3, 1, 1)
    assert torch.allclose(m(x).flatten(), -255 * torch.tensor([0.4488, 0.4371, 0.4040]))
    assert not any(p.requires_grad for p in m.parameters())
    model = quick("edsr", rgb_range=255)
    assert model.add_mean.bias[2].item() == pytest.approx(255 * 0.4040)


def test_edsr_with_zero_body_and_tail_adds_back_the_mean():
    """Backbone wiring: with the last tail conv zeroed the output is exactly the mean image."""
    model = quick("edsr").eval()
    torch.nn.init.zeros_(model.tail[1].weight)
    torch.nn.init.zeros_(model.tail[1].bias)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 4, 4))
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.4488, 0.4371, 0.4040]))


def test_aux_losses_in_train_and_eval():
    model = quick("enlcn")
    x = torch.rand(2, 3, 12, 12)  # N = 144 ≥ the official negatives' ranks 50–64
    model.train()
    model(x)
    losses = model.aux_losses()
    assert len(losses) == 5 and all(loss.dim() == 0 for loss in losses)
    expected = sum(losses) / 5  # official trainer.py:51
    assert contrastive_loss(model).item() == pytest.approx(expected.item(), rel=1e-6)
    assert contrastive_loss(model).item() > 0

    assert set_contrastive(model, False) == 0
    model(x)
    assert model.aux_losses() == [] and contrastive_loss(model) is None
    assert set_contrastive(model, True) == 5

    model.eval()
    with torch.no_grad():
        model(x)
    assert model.aux_losses() == [] and contrastive_loss(model) is None


def test_set_contrastive_leaves_enla_and_peers_off():
    for name in ("edsr+enla", "edsr+nlsa", "edsr"):
        model = quick(name).train()
        assert set_contrastive(model, True) == 0
        model(torch.rand(1, 3, 12, 12))
        assert model.aux_losses() == []


def test_on_epoch_start_redraws_projection_under_the_epoch_policy():
    model = quick("enlcn", attention={"redraw": "epoch"})
    before = [m.projection.clone() for m in model.attention_modules()]
    model.on_epoch_start()
    after = [m.projection for m in model.attention_modules()]
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    official = quick("enlcn")  # "interval" policy: the epoch hook leaves F alone
    before = official.attention_modules()[0].projection.clone()
    official.on_epoch_start()
    assert torch.equal(before, official.attention_modules()[0].projection)


def test_overrides_and_attention_options_pass_through():
    cfg = model_config("enlcn", 3, "cpu", n_feats=32, res_scale=0.5, attention={"m": 8, "variant": "paper"})
    assert (cfg.n_resblocks, cfg.n_feats, cfg.res_scale, cfg.attention_every) == (8, 32, 0.5, 2)
    assert cfg.attention_options == {"m": 8, "k": 6.0, "res_scale": 0.5, "variant": "paper"}
    model = build_model("enlcn", 3, "cpu", n_feats=32, res_scale=0.5, attention={"m": 8, "variant": "paper"})
    opts = model.attention_modules()[0].options
    assert (opts.m, opts.res_scale, opts.orthogonal, opts.feature_eps) == (8, 0.5, False, 0.0)
    assert model.body[1].res_scale == 0.5
    assert isinstance(model.config, ModelConfig)


def test_errors_name_the_unknown():
    with pytest.raises(ValueError, match=r"unknown model 'esrgan'.*edsr\+enlca"):
        build_model("esrgan", 2, "quick")
    with pytest.raises(ValueError, match="unknown model 'edsr\\+foo'"):
        build_model("edsr+foo", 2, "quick")
    with pytest.raises(TypeError, match="unknown override.*'blocks'.*'depth'"):
        build_model("enlcn", 2, "quick", depth=3, blocks=4)
    with pytest.raises(TypeError, match="has no option.*'mm'"):
        build_model("enlcn", 2, "quick", attention={"mm": 3})
    with pytest.raises(ValueError, match="unknown model preset 'huge'; known: cpu, edsr-baseline, paper, qu"):
        build_model("enlcn", 2, "huge")
    with pytest.raises(ValueError, match="scale must be"):
        build_model("enlcn", 5, "quick")
    with pytest.raises(ValueError, match="no attention modules"):
        build_model("edsr", 2, "quick", attention={"m": 4})


def test_profiles():
    assert set(MODEL_PRESETS) == {"paper", "cpu", "quick", "edsr-baseline"}
    assert {p.model_preset for p in PROFILES.values()} == set(MODEL_PRESETS)
    assert {n for n in PROFILES if n.startswith("pilot-")} == {
        "pilot-x2", "pilot-x4", "pilot-x2-long", "pilot-x4-long"
    }
    assert get_profile("cpu").model_preset == "cpu"
    paper = get_model_preset("paper")
    assert (paper.n_resblocks, paper.n_feats, paper.res_scale, paper.m, paper.k) == (32, 256, 0.1, 128, 6.0)
    with pytest.raises(ValueError, match="unknown profile 'gpu'; known: cpu, gpu-x2, paper, pilot-x2, "):
        get_profile("gpu")
    with pytest.raises(ValueError, match="unknown model preset 'nope'"):
        Profile("x", "nope")
    for preset in MODEL_PRESETS:  # every preset builds every model
        with torch.device("meta"):
            assert len(build_model("enlcn", 4, preset).attention_modules()) == 5


def test_paper_enlcn_x4_one_training_iteration():
    """The full-size model: one forward + backward + Adam step, batch 1, LR 24×24, contrastive on."""
    torch.manual_seed(0)
    model = build_model("enlcn", 4).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    lr, hr = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 96, 96)
    start = time.perf_counter()
    sr = model(lr)
    loss = torch.nn.functional.l1_loss(sr, hr) + 1e-3 * contrastive_loss(model)
    loss.backward()
    opt.step()
    assert sr.shape == (1, 3, 96, 96)
    assert torch.isfinite(loss) and 0.0 < loss.item() < 2.0
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.attention_modules()[0].theta.weight.grad.abs().sum() > 0  # the loss reaches θ
    assert model.sub_mean.weight.grad is None
    assert time.perf_counter() - start < 60
