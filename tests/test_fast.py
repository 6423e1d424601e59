"""The fused inference path of ENLCA/ENLA (enlcn.attention.fast) equals the reference forward."""

from __future__ import annotations

import pytest
import torch
from conftest import reference_forward

import enlcn.attention.enlca as enlca_module
from enlcn.attention import build_attention
from enlcn.attention.fast import MAX_CONSTANT_RANGE, constant_shifts, enlca_fast

SHAPES = [(1, 16, 9, 11), (2, 16, 7, 7), (3, 32, 5, 13)]


def assert_matches(mod, x, chunk=2048):
    """The Python fused path (the native kernel, tested in test_native.py, switched off) vs the reference."""
    ref = reference_forward(mod, x)
    mod.use_native = False
    try:
        fast = enlca_fast(mod, x, chunk=chunk)
    finally:
        mod.use_native = True
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    scale = ref.abs().max().item()
    diff = (fast - ref).abs().max().item()
    assert diff <= 1e-5 * scale, f"max abs diff {diff:.3g} > 1e-5 × output scale {scale:.3g}"
    # the attention term alone (output − input) too, so the residual cannot hide an error
    att_scale = (ref - x).abs().max().item()
    assert diff <= 1e-4 * att_scale + 1e-7


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1.0, 6.0, 20.0])
@pytest.mark.parametrize("feature_eps", [1e-4, 0.0])
@pytest.mark.parametrize("orthogonal", [True, False])
def test_fast_equals_reference_forward(shape, k, feature_eps, orthogonal):
    torch.manual_seed(0)
    b, ch, h, w = shape
    mod = build_attention("enlca", ch, m=16, k=k, feature_eps=feature_eps, orthogonal=orthogonal).eval()
    x = torch.randn(b, ch, h, w)
    assert_matches(mod, x)
    assert_matches(mod, x, chunk=7)  # several ragged query/key blocks


@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize("m", [16, 128])
def test_fast_equals_reference_for_enla_and_enlca_at_64_channels(variant, m):
    torch.manual_seed(1)
    x = torch.randn(1, 64, 20, 23)
    for kind in ("enla", "enlca"):
        assert_matches(build_attention(kind, 64, m=m, variant=variant).eval(), x)


@pytest.mark.parametrize("k", [6.0, 20.0])
def test_literal_eq3_key_norm(k):
    torch.manual_seed(2)
    mod = build_attention("enlca", 16, m=32, k=k, key_norm="query").eval()
    assert_matches(mod, torch.randn(2, 16, 6, 9), chunk=10)


def test_tokens_below_the_norm_eps(small_norm_case):
    """‖θ‖ < ε_n (Q shorter than √k): ‖Q‖² is computed per token, never assumed to be k."""
    assert_matches(*small_norm_case, chunk=13)


def test_float64_and_nonsquare():
    torch.manual_seed(4)
    mod = build_attention("enlca", 16, m=16).double().eval()
    x = torch.randn(2, 16, 3, 17, dtype=torch.float64)
    ref = reference_forward(mod, x)
    assert (enlca_fast(mod, x) - ref).abs().max() <= 1e-12 * ref.abs().max()


def test_constant_shifts_bound_the_exponents():
    torch.manual_seed(5)
    proj = torch.randn(128, 16)
    big_r = proj.norm(dim=1).max().item()
    s_q, s_k = constant_shifts(proj, 1.0, "own")
    assert s_q == pytest.approx(big_r) and s_k is not None
    assert constant_shifts(proj, 6.0, "query")[1] is None  # ‖K‖ unbounded: the data's max is used
    big_k = (MAX_CONSTANT_RANGE / (2 * big_r)) ** 2 * 1.01
    assert constant_shifts(proj, big_k, "own") == (None, None)  # could underflow: data maxima
    # the bounds hold: F Q ≤ s_q and F K − ‖K‖²/2 ≤ s_k for any ‖Q‖, ‖K‖ ≤ √k
    u = torch.nn.functional.normalize(torch.randn(1000, 16), dim=1) * torch.rand(1000, 1)
    assert (u @ proj.T).max() <= s_q + 1e-5
    assert (u @ proj.T - 0.5 * u.square().sum(1, keepdim=True)).max() <= s_k + 1e-5


def test_unsupported_embed_kernel_falls_back():
    mod = build_attention("enlca", 16, m=8, embed_kernel=3).eval()
    x = torch.randn(1, 16, 5, 5)
    with pytest.raises(ValueError):
        enlca_fast(mod, x)
    with torch.no_grad():
        assert torch.equal(mod(x), reference_forward(mod, x))


@pytest.fixture
def spy(monkeypatch):
    calls = []
    real = enlca_module.enlca_fast

    def wrapped(module, x, *args, **kwargs):
        calls.append(tuple(x.shape))
        return real(module, x, *args, **kwargs)

    monkeypatch.setattr(enlca_module, "enlca_fast", wrapped)
    return calls


@pytest.mark.parametrize("kind", ["enla", "enlca"])
def test_dispatch_uses_fast_path_only_for_inference(spy, kind):
    torch.manual_seed(6)
    mod = build_attention(kind, 16, m=16, loss_form="paper", n1=0.1, n2=0.2)
    x = torch.randn(1, 16, 8, 8)
    mod.eval()
    with torch.inference_mode():
        y_inf = mod(x)
    assert len(spy) == 1 and mod.aux_loss is None
    with torch.no_grad():
        y_ng = mod(x)
    assert len(spy) == 2 and torch.equal(y_inf, y_ng)
    y_grad = mod(x)  # eval but autograd on: may be differentiated, so the reference path
    assert len(spy) == 2 and y_grad.requires_grad
    assert (y_grad.detach() - y_ng).abs().max() <= 1e-5 * y_ng.abs().max()
    mod.use_fast_path = False
    with torch.no_grad():
        mod(x)
    assert len(spy) == 2
    mod.use_fast_path = True
    mod.train()
    mod.contrastive_enabled = kind == "enlca"
    mod(x)
    with torch.no_grad():
        mod(x)  # training mode keeps the reference path (call counting, contrastive loss) even without grad
    assert len(spy) == 2
    assert (mod.aux_loss is not None) == (kind == "enlca")


def test_meta_tensors_take_the_reference_path(spy):
    mod = build_attention("enlca", 16, m=8).eval().to("meta")
    with torch.no_grad():
        y = mod(torch.empty(1, 16, 5, 5, device="meta"))
    assert y.shape == (1, 16, 5, 5) and not spy


def test_whole_image_path_is_taken_and_matches(monkeypatch):
    """Whole images with constant shifts take ``_enlca_whole``; blocks or data-max shifts do not."""
    import enlcn.attention.fast as fast

    calls = []
    real = fast._enlca_whole
    monkeypatch.setattr(fast, "_enlca_whole", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(7)
    x = torch.randn(2, 64, 9, 14)
    for eps in (1e-4, 0.0):
        mod = build_attention("enlca", 64, m=128, feature_eps=eps).eval()
        assert_matches(mod, x)  # chunk 2048 ≥ N: whole image
    assert len(calls) == 2
    assert_matches(mod, x, chunk=50)  # blocks: the general loop
    big_k = build_attention("enlca", 64, m=128, k=20.0).eval()  # 2R√k > MAX_CONSTANT_RANGE
    assert constant_shifts(big_k.projection, 20.0, "own") == (None, None)
    assert_matches(big_k, x)
    assert len(calls) == 2
