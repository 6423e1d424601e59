"""ENLA's hand-derived backward (enlcn.attention.enla_autograd): the same values and gradients as autograd."""

from __future__ import annotations

import pytest
import torch
from gemm_fixture import with_gemm

from enlcn.attention import native
from enlcn.attention.enla import enla
from enlcn.attention.enla_autograd import enla_fused
from enlcn.attention.enlca import ENLCA, ENLCAOptions
from enlcn.attention.kernels import gaussian_projection


def _grads(fn, q, k, v, go):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v)
    out.backward(go)
    return [out.detach(), q.grad, k.grad, v.grad]


@pytest.mark.parametrize("eps", [0.0, 1e-4])
@pytest.mark.parametrize("k_amp", [1.0, 6.0])
@pytest.mark.parametrize(("n", "c", "m"), [(100, 12, 32), (37, 8, 16), (1024, 12, 128)])
def test_values_and_gradients_equal_autograd(eps, k_amp, n, c, m):
    g = torch.Generator().manual_seed(n + c + m)
    q = torch.nn.functional.normalize(torch.randn(3, n, c, generator=g), dim=-1) * k_amp**0.5
    k = torch.nn.functional.normalize(torch.randn(3, n, c, generator=g), dim=-1) * k_amp**0.5
    v, go = torch.randn(3, n, 20, generator=g), torch.randn(3, n, 20, generator=g)
    proj = gaussian_projection(m, c, True, generator=g)
    ref = _grads(lambda a, b, x: enla(a, b, x, proj, eps), q, k, v, go)
    new = _grads(lambda a, b, x: enla_fused(a, b, x, proj, eps), q, k, v, go)
    for name, a, b in zip(("out", "dq", "dk", "dv"), ref, new, strict=True):
        assert a.abs().max() > 0, f"{name} is trivially zero"
        err = ((a - b).abs().max() / a.abs().max()).item()
        assert err < 1e-4, f"{name}: relative error {err:.2e}"


def test_large_exponents_stay_finite():
    # ‖u‖² = 40 and unnormalised inputs: the shifts must keep exp in range, as in the autograd path
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 64, 16, generator=g) * 1.6, torch.randn(2, 64, 16, generator=g) * 1.6
    v = torch.randn(2, 64, 8, generator=g)
    proj = gaussian_projection(32, 16, True, generator=g)
    ref = _grads(lambda a, b, x: enla(a, b, x, proj), q, k, v, torch.ones(2, 64, 8))
    new = _grads(lambda a, b, x: enla_fused(a, b, x, proj), q, k, v, torch.ones(2, 64, 8))
    for a, b in zip(ref, new, strict=True):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_enlca_module_trains_the_same_on_both_paths(monkeypatch, variant):
    monkeypatch.setattr(native, "load_enla_train", lambda: None)  # the Python fused path, not the kernel
    torch.manual_seed(0)
    m = ENLCA(16, ENLCAOptions.create(variant, m=16, k=6.0)).train()
    x = torch.randn(2, 16, 9, 11)  # N = 99 tokens
    go = torch.randn(2, 16, 9, 11)

    def run():
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        (y * go).sum().backward()
        return [y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()]

    assert m.fused_path(x) and m.training_path(x).startswith("fused")
    fused = run()
    monkeypatch.setenv("ENLCN_FUSED_ENLA", "0")
    assert not m.fused_path(x) and m.training_path(x).startswith("autograd")
    reference = run()
    for a, b in zip(reference, fused, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    monkeypatch.delenv("ENLCN_FUSED_ENLA")
    assert not m.fused_path(x.double())  # float32 only


def _module_grads(m, x, go, kernel: bool, weight_cl: float = 3.0):
    """Output, input and parameter gradients (and the contrastive loss) of one training step of ``m``, on
    the native training kernel or on the Python fused path."""
    m.native_training_kernel = (lambda x: None) if not kernel else type(m).native_training_kernel.__get__(m)
    m.zero_grad()
    xi = x.clone().requires_grad_(True)
    y = m(xi)
    loss = (y * go).sum() + (weight_cl * m.aux_loss if m.aux_loss is not None else 0.0)
    loss.backward()
    extra = [m.aux_loss.detach()] if m.aux_loss is not None else []
    return [y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()] + extra


@pytest.fixture(params=["brgemm", "sgemm"])
def enla_kernel(request):
    """The native ENLA training kernel with its products on oneDNN's brgemm, or on sgemm."""
    ext = native.load_enla_train()
    return with_gemm(request, ext, "" if ext else native.enla_train_status(), request.param)


@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize(("k", "contrastive"), [(1.0, False), (6.0, False), (6.0, True)])
@pytest.mark.parametrize(
    ("channels", "m", "size", "layout"),
    [(16, 16, (9, 11), "nchw"), (48, 32, (32, 32), "channels_last"), (32, 128, (7, 11), "channels_last")],
)
def test_native_training_kernel_equals_the_fused_path(
    variant, k, contrastive, channels, m, size, layout, enla_kernel
):
    torch.manual_seed(channels + m)
    # b = 20 keeps every hinged term of the contrastive loss positive, so its gradient reaches Q and K
    mod = ENLCA(channels, ENLCAOptions.create(variant, m=m, k=k, b=20.0)).train()
    mod.contrastive_enabled = contrastive
    x, go = torch.randn(2, channels, *size), torch.randn(2, channels, *size)
    if layout == "channels_last":  # what the modules after the first one see inside the model
        x = x.contiguous(memory_format=torch.channels_last)
    assert mod.native_training_kernel(x) is enla_kernel
    assert mod.training_path(x).startswith("ENLA training kernel: native")
    new, ref = _module_grads(mod, x, go, True), _module_grads(mod, x, go, False)
    assert len(new) == len(ref) == 2 + len(list(mod.parameters())) + contrastive
    for a, b in zip(ref, new, strict=True):  # the rule: 1e-4 relative to the tensor's scale
        assert a.abs().max() > 0
        assert ((a - b).abs().max() / a.abs().max()).item() < 1e-4


def test_native_training_kernel_handles_clamped_norms(enla_kernel):
    # tokens whose θ and δ vanish (zero input, zero biases): F.normalize clamps their norm at eps, and
    # the gradient through the clamp must match autograd's
    torch.manual_seed(2)
    mod = ENLCA(16, ENLCAOptions.create("official", m=16, k=6.0, b=20.0)).train()  # with the contrastive loss
    with torch.no_grad():
        mod.theta.bias.zero_()
        mod.delta.bias.zero_()
    x, go = torch.randn(1, 16, 9, 9), torch.randn(1, 16, 9, 9)
    x[:, :, 2, 3] = 0
    x[:, :, 4, :] = 0
    new, ref = _module_grads(mod, x, go, True), _module_grads(mod, x, go, False)
    for a, b in zip(ref, new, strict=True):
        assert torch.isfinite(b).all()
        assert ((a - b).abs().max() / a.abs().max()).item() < 1e-4


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_native_training_kernel_output_is_channels_last(layout, enla_kernel):
    # as the Python path's x + token-major Y: the convolutions after the module run channels_last (at the
    # AVX2 level they are faster so)
    mod = ENLCA(16, ENLCAOptions.create("official", m=16)).train()
    mod.contrastive_enabled = False
    x = torch.randn(2, 16, 6, 7)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = mod(x)
    y.sum().backward()
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.isfinite(x.grad).all()


def test_native_training_kernel_is_not_taken_where_it_does_not_apply(monkeypatch):
    mod = ENLCA(16, ENLCAOptions.create("official", m=16, key_norm="query")).train()
    x = torch.randn(1, 16, 5, 5)
    assert mod.native_training_kernel(x) is None  # Eq. 3 read literally: the Python path
    mod = ENLCA(16, ENLCAOptions.create("official", m=16, embed_kernel=3)).train()
    assert mod.native_training_kernel(x) is None  # the kernel computes 1×1 embeddings only
    mod = ENLCA(16, ENLCAOptions.create("official", m=16)).train()
    assert mod.native_training_kernel(x.double()) is None
    with torch.no_grad():
        assert mod.native_training_kernel(x) is None  # not differentiated: no training path
    monkeypatch.setattr(native, "load_enla_train", lambda: None)
    assert mod.native_training_kernel(x) is None and mod.training_path(x).startswith("fused")
