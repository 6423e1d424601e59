"""Random features (Eq. 4) and the ENLA aggregation (Eqs. 5–6)."""

from __future__ import annotations

import math
import sys
import textwrap

import numpy as np
import pytest
import torch
from procs import run
from torch.utils._python_dispatch import TorchDispatchMode

from enlcn.attention import enla, gaussian_projection, random_features


def softmax_attention(q, k, v):
    """Exact Eq. 1 in float64: the reference ENLA approximates."""
    w = torch.softmax(q.double() @ k.double().transpose(1, 2), dim=-1)
    return w @ v.double()


def naive_enla(q, k, v, projection, eps=0.0):
    """Eqs. 5–6 with the unstabilized φ of Eq. 4, in float64."""
    pq = random_features(q.double(), projection.double(), eps)
    pk = random_features(k.double(), projection.double(), eps)
    return (pq @ (pk.transpose(1, 2) @ v.double())) / (pq @ pk.sum(1).unsqueeze(-1))


def unit(x, k):
    return torch.nn.functional.normalize(x, dim=-1) * math.sqrt(k)


# -- F ------------------------------------------------------------------------------------------
def test_iid_projection_is_standard_gaussian():
    f = gaussian_projection(4096, 16, orthogonal=False, generator=torch.Generator().manual_seed(0))
    assert f.shape == (4096, 16) and f.dtype == torch.float32
    n = f.numel()
    assert abs(f.mean().item()) < 5 / math.sqrt(n)
    assert abs(f.var().item() - 1.0) < 5 * math.sqrt(2 / n)


def test_orthogonal_projection_blocks_are_orthogonal_with_chi_lengths():
    c, m = 16, 40  # two full blocks and a truncated third
    f = gaussian_projection(m, c, orthogonal=True, generator=torch.Generator().manual_seed(1))
    assert f.shape == (m, c)
    lengths = f.norm(dim=1)
    for start in (0, 16, 32):
        block = f[start : start + c]
        gram = (block / block.norm(dim=1, keepdim=True)) @ (block / block.norm(dim=1, keepdim=True)).T
        assert torch.allclose(gram, torch.eye(len(block)), atol=1e-5)
    # lengths vary like χ_16 (mean ≈ 3.94), they are not all √c
    assert lengths.std() > 0.3
    assert abs(lengths.mean().item() - 3.94) < 5 * 0.7 / math.sqrt(m)


def test_projection_is_deterministic_under_a_generator():
    a = gaussian_projection(8, 4, True, torch.Generator().manual_seed(3))
    b = gaussian_projection(8, 4, True, torch.Generator().manual_seed(3))
    c = gaussian_projection(8, 4, True, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad", [(0, 4), (4, 0), (2.5, 4)])
def test_projection_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="positive int"):
        gaussian_projection(*bad, orthogonal=False)


# -- φ --------------------------------------------------------------------------------------------
def test_random_features_match_eq4_by_hand():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    u = torch.tensor([0.5, -1.0])
    # exponents F u − ‖u‖²/2 = [0.5, −2, −0.5] − 0.625
    expected = torch.tensor([math.exp(-0.125), math.exp(-2.625), math.exp(-1.125)]) / math.sqrt(3)
    assert torch.allclose(random_features(u, f), expected, rtol=1e-6)
    assert torch.allclose(random_features(u, f, eps=1e-4), expected + 1e-4 / math.sqrt(3), rtol=1e-6)


# -- ENLA -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, 1e-4])
@pytest.mark.parametrize("orthogonal", [False, True])
def test_enla_equals_unstabilized_formula(eps, orthogonal):
    torch.manual_seed(0)
    q, k = unit(torch.randn(2, 50, 8), 6), unit(torch.randn(2, 50, 8), 6)
    v = torch.randn(2, 50, 5)
    f = gaussian_projection(32, 8, orthogonal)
    out = enla(q, k, v, f, eps)
    assert out.shape == (2, 50, 5)
    assert torch.allclose(out.double(), naive_enla(q, k, v, f, eps), rtol=1e-4, atol=1e-5)


def test_enla_approaches_softmax_attention_like_one_over_sqrt_m():
    # ‖q‖² = ‖k‖² = 0.5 keeps Eq. 7's factor exp(‖q+k‖²) − 1 small, so the asymptotic 1/√m rate is
    # visible from m = 16 on; at k = 6 the heavy tails delay it (the paper's point about amplification).
    torch.manual_seed(0)
    q, k = unit(torch.randn(1, 64, 8), 0.5), unit(torch.randn(1, 64, 8), 0.5)
    v = torch.randn(1, 64, 4)
    exact = softmax_attention(q, k, v)
    ms = [16, 64, 256, 1024]
    errors = []
    for m in ms:
        errs = [
            (enla(q, k, v, gaussian_projection(m, 8, False)).double() - exact).pow(2).mean().sqrt().item()
            for _ in range(40)
        ]
        errors.append(float(np.mean(errs)))
    slope = np.polyfit(np.log(ms), np.log(errors), 1)[0]
    assert errors[-1] < errors[0] / 4
    assert -0.65 < slope < -0.35, (errors, slope)


def test_enla_is_finite_and_accurate_with_k20_in_float32():
    torch.manual_seed(0)
    c, n = 64, 400
    q, k = unit(torch.randn(2, n, c), 20), unit(torch.randn(2, n, c), 20)
    k[:, :10] = q[:, :10]  # some exact matches: exp(qᵀk) = e^20
    v = torch.randn(2, n, 16)
    f = gaussian_projection(128, c, orthogonal=True, generator=torch.Generator().manual_seed(0))
    out = enla(q, k, v, f, eps=1e-4)
    assert torch.isfinite(out).all()
    assert torch.allclose(out.double(), naive_enla(q, k, v, f, 1e-4), rtol=1e-3, atol=1e-4)


def test_enla_gradients_flow():
    q = unit(torch.randn(1, 20, 4), 6).requires_grad_()
    k = unit(torch.randn(1, 20, 4), 6).requires_grad_()
    v = torch.randn(1, 20, 3, requires_grad=True)
    enla(q, k, v, gaussian_projection(16, 4, False)).square().sum().backward()
    for t in (q, k, v):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


class LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_enla_never_materializes_an_n_by_n_tensor():
    n, c, m = 200 * 200, 16, 32
    q, k, v = torch.randn(1, n, c) * 0.1, torch.randn(1, n, c) * 0.1, torch.randn(1, n, c)
    with LargestTensor() as probe:
        enla(q, k, v, gaussian_projection(m, c, False))
    assert probe.largest <= n * m  # the feature maps; N² would be 1.6e9


def test_enla_peak_memory_is_far_below_n_squared():
    code = textwrap.dedent(
        """
        import resource, torch
        from enlcn.attention import enla, gaussian_projection
        n, c, m = 200 * 200, 64, 128
        q, k, v = torch.randn(1, n, c) * 0.1, torch.randn(1, n, c) * 0.1, torch.randn(1, n, 64)
        f = gaussian_projection(m, c, True)
        enla(q[:, :100], k[:, :100], v[:, :100], f)  # warm-up: allocator and kernels loaded
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        enla(q, k, v, f)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
        """
    )
    out = run([sys.executable, "-c", code], check=True)
    peak_bytes = int(out.stdout.strip())
    n_squared_bytes = (200 * 200) ** 2 * 4  # 6.4 GB
    assert peak_bytes < n_squared_bytes / 50, peak_bytes


def test_enla_rejects_mismatched_shapes():
    f = gaussian_projection(8, 4, False)
    with pytest.raises(ValueError, match="q and k"):
        enla(torch.randn(1, 5, 4), torch.randn(1, 6, 4), torch.randn(1, 5, 2), f)
    with pytest.raises(ValueError, match="projection"):
        enla(torch.randn(1, 5, 3), torch.randn(1, 5, 3), torch.randn(1, 5, 2), f)
