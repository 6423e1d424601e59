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


# -- the native row kernel (CPU, float32) against the reference (torch.topk + autograd) ------------------
from enlcn.attention import native  # noqa: E402

needs_contrastive_kernel = pytest.mark.skipif(
    native.load_contrastive() is None, reason=f"kernel unavailable: {native.contrastive_status()}"
)


def test_the_kernel_builds_on_x86_with_a_compiler():
    import platform
    import shutil

    if platform.machine().lower() in ("x86_64", "amd64") and shutil.which("c++"):
        assert native.load_contrastive() is not None, native.contrastive_status()


def _loss_and_grads(fn, q, k, **kw):
    q, k = q.clone().requires_grad_(True), k.clone().requires_grad_(True)
    loss = fn(q, k, **kw)
    loss.backward()
    return loss.detach(), q.grad, k.grad


@needs_contrastive_kernel
@pytest.mark.parametrize("form", ["paper", "official"])
@pytest.mark.parametrize("hinge", [False, True])
@pytest.mark.parametrize(("n", "c"), [(1024, 12), (777, 8), (100, 16), (4096, 12)])
def test_kernel_equals_reference(form, hinge, n, c):
    g = torch.Generator().manual_seed(n + c)
    amp = 6.0 if form == "official" else 2.0
    q = torch.nn.functional.normalize(torch.randn(2, n, c, generator=g), dim=-1) * amp**0.5
    k = torch.nn.functional.normalize(torch.randn(2, n, c, generator=g), dim=-1) * amp**0.5
    kw = {"form": form, "hinge": hinge, "b": 5.0 if form == "official" else 3.0}  # most hinges active
    ref = _loss_and_grads(contrastive.contrastive_loss_reference, q, k, **kw)
    new = _loss_and_grads(contrastive.contrastive_loss, q, k, **kw)
    torch.testing.assert_close(new[0], ref[0], rtol=1e-5, atol=1e-6)
    for name, a, b in zip(("dq", "dk"), ref[1:], new[1:], strict=True):
        assert a.abs().sum() > 0, f"{name} is trivially zero"
        # per token, relative to the largest gradient. Where two relevances of a row are equal to float
        # rounding at a band boundary (rank n1·N, n2·N or n2·N + n1·N), the kernel's and torch's dot
        # products may order them differently and that row's gradient goes to the other key: allowed in
        # at most 0.1 % of the tokens (measured: none below N = 4096, about 1 in 10⁴ at 4096)
        err = (a - b).abs().amax(-1) / a.abs().max()
        differ = int((err > 1e-4).sum())
        assert differ <= 1e-3 * err.numel(), f"{name}: {differ} tokens differ"


@needs_contrastive_kernel
@pytest.mark.parametrize("form", ["paper", "official"])
@pytest.mark.parametrize("counting_max", [0, 1 << 20])
def test_both_selection_paths_equal_the_reference(form, counting_max):
    # the kernel ranks a row's candidates by counting (few candidates) or by bisection (many, as on
    # structured rows); force each path on every row, on smooth rows (relevance rises with the key index,
    # so the largest relevances are contiguous) and on random ones
    from enlcn.attention.contrastive import _RowKernelLoss, contrastive_bands

    g = torch.Generator().manual_seed(3)
    n, c = 1500, 8
    angle = torch.linspace(0, 3.0, n)
    smooth = torch.stack([angle.cos(), angle.sin()], -1)  # relevance to (1, 0) falls with the index
    q = torch.nn.functional.normalize(torch.randn(2, n, c, generator=g), dim=-1) * 2.0
    k = torch.nn.functional.normalize(torch.randn(2, n, c, generator=g), dim=-1) * 2.0
    q[1, :, :2], q[1, :, 2:] = torch.tensor([2.0, 0.0]), 0.0
    k[1, :, :2], k[1, :, 2:] = 2.0 * smooth.flip(0), 0.0
    rel, start, stop = contrastive_bands(n, form)
    ext = native.load_contrastive()

    def kernel(q, k, form, b):
        return _RowKernelLoss.apply(q, k, ext, rel, start, stop, form == "official", b, False, counting_max)

    ref = _loss_and_grads(contrastive.contrastive_loss_reference, q, k, form=form, b=3.0)
    new = _loss_and_grads(kernel, q, k, form=form, b=3.0)
    torch.testing.assert_close(new[0], ref[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(ref[1:], new[1:], strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


@needs_contrastive_kernel
def test_kernel_on_tied_relevances_keeps_the_loss():
    # quantized embeddings: many equal relevances, the bands' boundaries fall inside runs of ties
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-2, 3, (2, 300, 4), generator=g).float()
    k = torch.randint(-2, 3, (2, 300, 4), generator=g).float()
    ext = native.load_contrastive()
    for form in ("paper", "official"):
        ref = contrastive.contrastive_loss_reference(q, k, form=form, b=30.0)
        new = contrastive.contrastive_loss(q, k, form=form, b=30.0)
        torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)
        bands = contrastive.contrastive_bands(300, form)
        bisected = contrastive._RowKernelLoss.apply(q, k, ext, *bands, form == "official", 30.0, False, 0)
        torch.testing.assert_close(bisected, ref, rtol=1e-5, atol=1e-5)


@needs_contrastive_kernel
@pytest.mark.parametrize("counting_max", [0, 512])
def test_kernel_selects_tied_ranks_as_a_stable_sort(counting_max):
    # equal relevances take ranks by key index, as a stable sort: the kernel's bands are exactly the index
    # sets of ranks [0, rel) and [start, stop) of a stable descending sort (ranked by counting, whose fast
    # pass sees the repeated ranks of ties and recounts, or by bisection)
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-2, 3, (2, 300, 4), generator=g).float()
    k = torch.randint(-2, 3, (2, 300, 4), generator=g).float()
    ext = native.load_contrastive()
    order = torch.sort(q @ k.transpose(1, 2), dim=-1, descending=True, stable=True).indices  # [B, N, N]
    for form in ("paper", "official"):
        rel, start, stop = contrastive.contrastive_bands(300, form)
        official = form == "official"
        _, index, _ = ext.contrastive_rows(q, k, rel, start, stop, official, 1.0, False, counting_max)
        for b in range(2):
            for i in range(300):
                assert set(index[b, i, :rel].tolist()) == set(order[b, i, :rel].tolist())
                assert set(index[b, i, rel:].tolist()) == set(order[b, i, start:stop].tolist())


@needs_contrastive_kernel
def test_kernel_propagates_nan_and_can_be_switched_off(monkeypatch):
    q, k = torch.randn(1, 200, 4), torch.randn(1, 200, 4)
    q[0, 7, 1] = float("nan")
    assert torch.isnan(contrastive.contrastive_loss(q, k))
    calls = []
    monkeypatch.setattr(contrastive, "contrastive_loss_reference", lambda *a, **kw: calls.append(1) or 0.0)
    monkeypatch.setattr(native, "load_contrastive", lambda: None)  # as with ENLCN_NATIVE=0 or no compiler
    contrastive.contrastive_loss(torch.randn(1, 200, 4), torch.randn(1, 200, 4))
    assert calls == [1]
