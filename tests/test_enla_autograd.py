"""ENLA's hand-derived backward (enlcn.attention.enla_autograd): the same values and gradients as autograd."""

from __future__ import annotations

import pytest
import torch

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
