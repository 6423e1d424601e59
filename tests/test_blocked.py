"""Exact attention by query blocks (enlcn.attention.blocked): the same values and gradients as autograd."""

from __future__ import annotations

import pytest
import torch
from gemm_fixture import with_gemm

from enlcn.attention import native
from enlcn.attention.blocked import _native_kernel, blocked_attention
from enlcn.attention.registry import build_attention


@pytest.fixture(params=["native", "native-sgemm", "python"])
def kernel(request, monkeypatch):
    """The code that computes the blocked attention: the native kernel on brgemm, the native kernel on sgemm,
    or the Python blocks (as without a compiler or with ENLCN_NATIVE=0)."""
    if request.param == "python":
        monkeypatch.setattr(native, "load_attention", lambda: None)
        assert _native_kernel(torch.zeros(1)) is None
        return request.param
    ext = native.load_attention()
    gemm = "sgemm" if request.param == "native-sgemm" else "brgemm"
    with_gemm(request, ext, "" if ext else native.attention_status(), gemm)
    if gemm == "sgemm":
        assert native.attention_status() == f"native ({native.LABELS[native.isa_level()]}, sgemm)"
    assert _native_kernel(torch.zeros(1)) is ext
    return request.param


def _grads(fn, q, k, v, go):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v)
    out.backward(go)
    return [out.detach(), q.grad, k.grad, v.grad]


def _reference(q, k, v):
    return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v  # Eq. 1 written out, no 1/√d


@pytest.mark.parametrize(("n", "block"), [(63, 16), (64, 16), (100, 256), (1024, 256), (37, 1)])
def test_values_and_gradients_equal_the_reference(n, block, kernel):
    g = torch.Generator().manual_seed(n + block)
    q, k = torch.randn(3, n, 12, generator=g), torch.randn(3, n, 12, generator=g)
    v, go = torch.randn(3, n, 20, generator=g), torch.randn(3, n, 20, generator=g)
    ref = _grads(_reference, q, k, v, go)
    new = _grads(lambda a, b, c: blocked_attention(a, b, c, block), q, k, v, go)
    for name, a, b in zip(("out", "dq", "dk", "dv"), ref, new, strict=True):
        err = ((a - b).abs().max() / a.abs().max()).item()
        assert err < 1e-5, f"{name}: relative error {err:.2e}"


def test_peaked_scores_stay_finite_and_exact(kernel):
    # scores of ±80: softmax must subtract the row maximum, as the reference does
    q = torch.randn(2, 50, 8) * 4
    k, v = torch.randn(2, 50, 8) * 4, torch.randn(2, 50, 8)
    out = blocked_attention(q, k, v, 16)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _reference(q, k, v), rtol=1e-5, atol=1e-5)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"q, k \[B, N, d\] and v"):
        blocked_attention(torch.zeros(2, 5, 4), torch.zeros(2, 6, 4), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="block must be"):
        blocked_attention(torch.zeros(1, 5, 4), torch.zeros(1, 5, 4), torch.zeros(1, 5, 3), 0)


def test_nla_module_trains_the_same_on_both_paths(monkeypatch):
    torch.manual_seed(0)
    m = build_attention("nla", 16)
    x = torch.randn(2, 16, 9, 11)
    go = torch.randn(2, 16, 9, 11)

    def run():
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        y.backward(go)
        return [y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()]

    assert m.blocked_path(x)
    blocked = run()
    monkeypatch.setenv("ENLCN_BLOCKED", "0")
    assert not m.blocked_path(x)
    sdpa = run()
    for a, b in zip(sdpa, blocked, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    monkeypatch.delenv("ENLCN_BLOCKED")
    assert not m.blocked_path(x.double())  # float32 only
    m.use_blocked = False
    assert not m.blocked_path(x)


def _window_reference(q, k, v):
    """Each chunk's window written out: itself, previous, next (wrapping), as NLSN concatenates them."""
    from enlcn.attention.nlsa import with_neighbours

    k_w, v_w = with_neighbours(k[None])[0], with_neighbours(v[None])[0]  # [G, K, 3S, ·]
    logits = q @ k_w.transpose(-1, -2)
    lse = torch.logsumexp(logits, dim=-1)
    return torch.exp(logits - lse[..., None]) @ v_w, lse


def test_chunk_windows_are_self_previous_next_within_each_group():
    from enlcn.attention.blocked import chunk_windows

    assert chunk_windows(2, 3).tolist() == [[0, 2, 1], [1, 0, 2], [2, 1, 0], [3, 5, 4], [4, 3, 5], [5, 4, 3]]
    assert chunk_windows(1, 1).tolist() == [[0, 0, 0]]  # a lone chunk sees itself three times, as in NLSN


@pytest.mark.parametrize(
    ("groups", "chunks", "block"), [(3, 3, 4), (2, 4, 4), (1, 1, 1), (2, 2, 3), (3, 5, 16)]
)
def test_window_attention_values_and_gradients_with_the_lse_used(groups, chunks, block, kernel):
    from enlcn.attention.blocked import window_attention

    g = torch.Generator().manual_seed(groups * 10 + chunks)
    q, k = 2 * torch.randn(groups, chunks, 7, 5, generator=g), torch.randn(groups, chunks, 7, 5, generator=g)
    v = torch.randn(groups, chunks, 7, 6, generator=g)
    go, gl = torch.randn(groups, chunks, 7, 6, generator=g), torch.randn(groups, chunks, 7, generator=g)

    def grads(fn):
        a, b, c = (t.clone().requires_grad_(True) for t in (q, k, v))
        out, lse = fn(a, b, c)
        (out * go).sum().backward(retain_graph=True)
        (lse * gl).sum().backward()  # NLSA weights its hash rounds by the lse: its gradient must be right
        return [out.detach(), lse.detach(), a.grad, b.grad, c.grad]

    new = grads(lambda *t: window_attention(*t, block=block))
    for a, b in zip(grads(_window_reference), new, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_window_attention_names_bad_shapes():
    from enlcn.attention.blocked import window_attention

    with pytest.raises(ValueError, match=r"window_attention expects q, k \[G, K, S, c\]"):
        window_attention(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="block must be ≥ 1"):
        window_attention(*(torch.zeros(1, 2, 3, 4),) * 3, block=0)


def test_nlsa_module_trains_the_same_on_both_paths(monkeypatch):
    torch.manual_seed(0)
    m = build_attention("nlsa", 16, chunk_size=8)
    x, go = torch.randn(2, 16, 9, 10), torch.randn(2, 16, 9, 10)

    def run():
        torch.manual_seed(3)  # the same hash rotations
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        m(xi).backward(go)
        return [xi.grad] + [p.grad.clone() for p in m.parameters()]

    assert m.blocked_path(x) and m.training_path(x).startswith("chunked")
    chunked = run()
    monkeypatch.setenv("ENLCN_BLOCKED", "0")
    for a, b in zip(run(), chunked, strict=True):  # the rule: 1e-4 relative to the tensor's scale
        assert ((a - b).abs().max() / a.abs().max()).item() < 1e-4
