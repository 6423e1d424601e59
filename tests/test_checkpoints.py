"""Loading official ENLCA checkpoints: key names, architecture inference, outputs, error cases.

The official key list and the official forward pass are written here from the official definitions
(src/model/enlcn.py, common.py, attention.py, ENLA.py), independently of ``enlcn.models``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from enlcn.models import build_model, load_official_checkpoint, to_official_state_dict

MEAN = torch.tensor([0.4488, 0.4371, 0.4040])


def official_shapes(n_resblocks: int, n_feats: int, scale: int, rgb_range: float = 1.0) -> dict:
    """name → shape of the official ENLCN state dict, following the construction loop of enlcn.py."""
    c, m = n_feats // 4, 128  # reduction=4, nb_features=128 (attention.py)
    shapes = {
        "sub_mean.weight": (3, 3, 1, 1),
        "sub_mean.bias": (3,),
        "head.0.weight": (n_feats, 3, 3, 3),
        "head.0.bias": (n_feats,),
    }

    def enlca(i):
        for name, c_out in (("conv_match1", c), ("conv_match2", c), ("conv_assembly", n_feats)):
            shapes[f"body.{i}.{name}.0.weight"] = (c_out, n_feats, 1, 1)  # BasicBlock: [conv] (act=None)
            shapes[f"body.{i}.{name}.0.bias"] = (c_out,)
        shapes[f"body.{i}.attn_fn.projection_matrix"] = (m, c)

    body = 0
    enlca(body)
    for i in range(n_resblocks):
        body += 1
        for j in (0, 2):  # ResBlock.body = [conv, act, conv]
            shapes[f"body.{body}.body.{j}.weight"] = (n_feats, n_feats, 3, 3)
            shapes[f"body.{body}.body.{j}.bias"] = (n_feats,)
        if (i + 1) % 8 == 0:
            body += 1
            enlca(body)
    shapes[f"body.{body + 1}.weight"] = (n_feats, n_feats, 3, 3)
    shapes[f"body.{body + 1}.bias"] = (n_feats,)
    stages = [9] if scale == 3 else [4] * int(math.log2(scale))
    for s, factor in enumerate(stages):  # Upsampler = [conv, PixelShuffle] per stage
        shapes[f"tail.0.{2 * s}.weight"] = (factor * n_feats, n_feats, 3, 3)
        shapes[f"tail.0.{2 * s}.bias"] = (factor * n_feats,)
    shapes.update(
        {
            "tail.1.weight": (3, n_feats, 3, 3),
            "tail.1.bias": (3,),
            "add_mean.weight": (3, 3, 1, 1),
            "add_mean.bias": (3,),
        }
    )
    return shapes


def fake_official_state(n_resblocks=16, n_feats=16, scale=2, rgb_range=1.0, seed=0) -> dict:
    """Random tensors under the official names; MeanShift as the official code sets it."""
    g = torch.Generator().manual_seed(seed)
    state = {
        k: torch.randn(s, generator=g) * 0.1 for k, s in official_shapes(n_resblocks, n_feats, scale).items()
    }
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        state[f"{name}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        state[f"{name}.bias"] = sign * rgb_range * MEAN
    for k in state:
        if k.endswith("projection_matrix"):
            state[k] = torch.randn(state[k].shape, generator=g)
    return state


# ours -> official, written out for the test
RENAMES = {"theta": "conv_match1.0", "delta": "conv_match2.0", "psi": "conv_assembly.0"}


def test_every_official_tensor_lands_in_the_right_place():
    state = fake_official_state(n_resblocks=16, n_feats=16, scale=4)
    model = load_official_checkpoint(state, scale=4)
    cfg = model.config
    assert (cfg.n_resblocks, cfg.n_feats, cfg.attention_every, cfg.rgb_range) == (16, 16, 8, 1.0)
    assert cfg.attention_positions() == [0, 9, 18]
    ours = model.state_dict()
    loaded = 0
    for name, tensor in ours.items():
        parts = name.split(".")
        if name.endswith("calls_since_redraw"):
            assert tensor.item() == 0
            continue
        if parts[-1] == "projection":
            official = f"body.{parts[1]}.attn_fn.projection_matrix"
        elif parts[0] == "body" and parts[2] in RENAMES:
            official = f"body.{parts[1]}.{RENAMES[parts[2]]}.{parts[3]}"
        else:
            official = name
        assert torch.equal(tensor, state[official]), name
        loaded += 1
    assert loaded == len(state) == 4 + 3 * 7 + 16 * 4 + 2 + 4 + 2 + 2  # 99 tensors
    assert not model.training


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_round_trip_through_official_names(scale):
    torch.manual_seed(1)
    model = build_model("enlcn", scale, "quick", n_resblocks=8, attention_every=2)
    official = to_official_state_dict(model)
    assert "body.3.attn_fn.projection_matrix" in official and "body.13.weight" in official
    again = load_official_checkpoint(official, scale=scale)
    assert again.config.attention_positions() == [0, 3, 6, 9, 12]
    x = torch.rand(1, 3, 12, 12)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_official_key_names_of_the_paper_model():
    with torch.device("meta"):
        model = build_model("enlcn", 4)
    expected = official_shapes(32, 256, 4)
    got = {k: tuple(v.shape) for k, v in to_official_state_dict(model).items()}
    assert got == expected
    assert len(got) == 4 + 5 * 7 + 32 * 4 + 2 + 4 + 2 + 2  # 177 tensors


def official_forward(state: dict, x: torch.Tensor, scale: int) -> torch.Tensor:
    """The official ENLCN eval forward, written from enlcn.py / common.py / attention.py / ENLA.py."""

    def conv(t, key, pad):
        return F.conv2d(t, state[f"{key}.weight"], state[f"{key}.bias"], padding=pad)

    def softmax_kernel(data, proj, eps=1e-4):  # ENLA.py:47-72
        ratio = proj.shape[0] ** -0.5
        data_dash = torch.einsum("...id,...jd->...ij", data, proj)
        diag = (data**2).sum(-1, keepdim=True) / 2.0
        return ratio * (torch.exp(data_dash - diag) + eps)

    def linear_attention(q, k, v):  # ENLA.py:124-129
        d_inv = 1.0 / torch.einsum("...nd,...d->...n", q, k.sum(dim=-2))
        context = torch.einsum("...nd,...ne->...de", k, v)
        return torch.einsum("...de,...nd,...n->...ne", context, q, d_inv)

    def enlca(t, i):  # attention.py:23-46 (eval: no loss)
        e1 = F.normalize(conv(t, f"body.{i}.conv_match1.0", 0), p=2, dim=1, eps=5e-5) * math.sqrt(6)
        e2 = F.normalize(conv(t, f"body.{i}.conv_match2.0", 0), p=2, dim=1, eps=5e-5) * math.sqrt(6)
        a = conv(t, f"body.{i}.conv_assembly.0", 0)
        n, c, h, w = e1.shape
        proj = state[f"body.{i}.attn_fn.projection_matrix"]
        q = softmax_kernel(e1.permute(0, 2, 3, 1).reshape(n, h * w, c), proj)
        k = softmax_kernel(e2.permute(0, 2, 3, 1).reshape(n, h * w, c), proj)
        out = linear_attention(q, k, a.permute(0, 2, 3, 1).reshape(n, h * w, -1))
        return out.permute(0, 2, 1).reshape(n, -1, h, w) * 0.1 + t

    x = conv(x, "sub_mean", 0)
    x = conv(x, "head.0", 1)
    res = x
    n_body = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    for i in range(n_body):
        if f"body.{i}.attn_fn.projection_matrix" in state:
            res = enlca(res, i)
        elif f"body.{i}.body.0.weight" in state:
            res = conv(F.relu(conv(res, f"body.{i}.body.0", 1)), f"body.{i}.body.2", 1) * 0.1 + res
        else:
            res = conv(res, f"body.{i}", 1)
    res = res + x
    for s in range(int(math.log2(scale)) if scale != 3 else 1):
        res = F.pixel_shuffle(conv(res, f"tail.0.{2 * s}", 1), 3 if scale == 3 else 2)
    return conv(conv(res, "tail.1", 1), "add_mean", 0)


@pytest.mark.parametrize("scale", [2, 4])
def test_loaded_model_computes_the_official_forward(scale):
    state = fake_official_state(n_resblocks=16, n_feats=32, scale=scale, seed=scale)
    model = load_official_checkpoint(state, scale=scale)
    x = torch.rand(2, 3, 14, 11, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = model(x), official_forward(state, x, scale)
    assert ours.shape == (2, 3, 14 * scale, 11 * scale)
    assert theirs.abs().max() > 0.5  # a non-trivial output
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_enlca_module_matches_the_official_formulas():
    state = fake_official_state(n_resblocks=8, n_feats=32, scale=2, seed=7)
    model = load_official_checkpoint(state, scale=2)
    t = torch.randn(2, 32, 9, 10)
    with torch.no_grad():
        ours = model.body[0](t)
    # Eq. 3 as the official code reads it, then φ (ENLA.py:47-72) and linear_attention (ENLA.py:124-129)
    e1 = F.normalize(
        F.conv2d(t, state["body.0.conv_match1.0.weight"], state["body.0.conv_match1.0.bias"]), dim=1, eps=5e-5
    ) * math.sqrt(6)
    e2 = F.normalize(
        F.conv2d(t, state["body.0.conv_match2.0.weight"], state["body.0.conv_match2.0.bias"]), dim=1, eps=5e-5
    ) * math.sqrt(6)
    v = F.conv2d(t, state["body.0.conv_assembly.0.weight"], state["body.0.conv_assembly.0.bias"])
    proj = state["body.0.attn_fn.projection_matrix"]

    def phi(u):
        u = u.flatten(2).transpose(1, 2)
        return proj.shape[0] ** -0.5 * (torch.exp(u @ proj.T - (u**2).sum(-1, keepdim=True) / 2) + 1e-4)

    q, k, vv = phi(e1), phi(e2), v.flatten(2).transpose(1, 2)
    y = (q @ (k.transpose(1, 2) @ vv)) / (q @ k.sum(1).unsqueeze(-1))
    expected = y.transpose(1, 2).reshape(2, 32, 9, 10) * 0.1 + t
    assert (ours - expected).abs().max().item() <= 1e-5
    assert (ours - t).abs().max() > 1e-3  # the attention term is not negligible


def test_wrappers_prefixes_and_paths(tmp_path):
    state = fake_official_state(n_resblocks=8, n_feats=16, scale=2)
    x = torch.rand(1, 3, 10, 10)
    reference = load_official_checkpoint(state, 2)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "ENLCAx2.pt"
    torch.save({"model": state}, path)
    with torch.no_grad():
        want = reference(x)
        for source in (wrapped, path, str(path)):
            assert torch.equal(load_official_checkpoint(source, 2)(x), want)


def test_rgb_range_is_read_from_meanshift():
    state = fake_official_state(n_resblocks=8, n_feats=16, scale=2, rgb_range=255)
    model = load_official_checkpoint(state, 2)
    assert model.config.rgb_range == 255
    assert model.add_mean.bias[0].item() == pytest.approx(255 * 0.4488)


def test_wrong_scale_is_an_error_naming_the_keys():
    state = fake_official_state(n_resblocks=8, n_feats=16, scale=2)
    with pytest.raises(ValueError, match=r"×4 layout — 2 missing keys: tail\.0\.2\.weight, tail\.0\.2\.bias"):
        load_official_checkpoint(state, 4)
    with pytest.raises(
        ValueError, match=r"2 shape mismatches .*tail\.0\.0\.weight \(64, 16, 3, 3\) vs \(144,"
    ):
        load_official_checkpoint(state, 3)
    with pytest.raises(ValueError, match=r"2 unexpected keys: tail\.0\.2\.weight"):
        load_official_checkpoint(fake_official_state(n_resblocks=8, n_feats=16, scale=4), 2)


def test_plain_edsr_checkpoint_is_an_error_for_enlcn_but_loads_as_edsr():
    torch.manual_seed(0)
    edsr = build_model("edsr", 2, "quick", n_resblocks=8)
    state = to_official_state_dict(edsr)
    # 5 ENLCA × 7 + the blocks and conv shifted to body.8, 10, 11, 13 are missing; body.0, 3, 6, 8 unexpected
    with pytest.raises(
        ValueError,
        match=r"enlcn ×2 layout — 49 missing keys: body\.0\.attn_fn\.projection_matrix"
        r".*; 14 unexpected keys: body\.0\.body\.0\.weight.*name='edsr'",
    ):
        load_official_checkpoint(state, 2)
    loaded = load_official_checkpoint(state, 2, name="edsr")
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), edsr.eval()(x))


def test_not_a_checkpoint():
    with pytest.raises(ValueError, match="not a state dict"):
        load_official_checkpoint({"epoch": 3, "weights": [1, 2]}, 2)
    with pytest.raises(ValueError, match="no 'head.0.weight'"):
        load_official_checkpoint({"foo": torch.zeros(1)}, 2)
    with pytest.raises(ValueError, match="can load official checkpoints of enlcn, edsr"):
        load_official_checkpoint({}, 2, name="edsr+nlsa")
