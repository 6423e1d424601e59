"""The peer attention kinds: exact non-local (NLSN), NLSN's sparse LSH attention, CCNet's criss-cross."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from enlcn.attention.base import tokens
from enlcn.attention.nlsa import bucket_count
from enlcn.attention.registry import build_attention

#: options per kind for the shared tests (several NLSA chunks and buckets; γ ≠ 0 so Q/K/V get gradients)
PEERS = {
    "nla": {"res_scale": 0.5},
    "nlsa": {"chunk_size": 32, "n_hashes": 2, "res_scale": 0.7},
    "crisscross": {"gamma_init": 0.5},
}


def build(kind: str, channels: int = 16, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_attention(kind, channels, **{**PEERS[kind], **options})


def features(*shape: int, seed: int = 1) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def conv1x1(x: Tensor, conv: torch.nn.Conv2d) -> Tensor:
    """A 1×1 conv by hand on tokens: ``[B, N, C_in] → [B, N, C_out]``."""
    return tokens(x) @ conv.weight[:, :, 0, 0].T + conv.bias


def prelu(z: Tensor, act: torch.nn.PReLU) -> Tensor:
    return torch.where(z >= 0, z, act.weight * z)


# -- shared contract -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", PEERS)
def test_output_shape_and_not_identity(kind: str) -> None:
    m = build(kind)
    x = features(2, 16, 9, 11)
    torch.manual_seed(3)
    out = m(x)
    assert out.shape == x.shape
    assert (out - x).abs().max() > 1e-3  # the attention branch contributes


@pytest.mark.parametrize("kind", PEERS)
def test_gradients_reach_every_parameter(kind: str) -> None:
    m = build(kind)
    x = features(2, 16, 10, 10)
    torch.manual_seed(3)
    m(x).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", PEERS)
def test_deterministic_under_manual_seed(kind: str) -> None:
    x = features(2, 16, 12, 10)
    outs, weights = [], []
    for _ in range(2):
        m = build(kind, seed=7)
        torch.manual_seed(11)
        outs.append(m(x))
        torch.manual_seed(12)
        weights.append(m.attention_weights(x, 5))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


@pytest.mark.parametrize("kind", PEERS)
@pytest.mark.parametrize("index", [0, 37, -1])
def test_attention_weights_are_distributions(kind: str, index: int) -> None:
    m = build(kind)
    x = features(3, 16, 8, 13)
    torch.manual_seed(4)
    w = m.attention_weights(x, index)
    assert w.shape == (3, 8 * 13)
    assert w.min() >= 0
    torch.testing.assert_close(w.sum(-1), torch.ones(3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", PEERS)
def test_bad_input_and_index_raise(kind: str) -> None:
    m = build(kind)
    with pytest.raises(ValueError, match="16 channels"):
        m(features(1, 8, 6, 6))
    with pytest.raises(ValueError, match="B×C×H×W"):
        m.attention_weights(features(16, 6, 6), 0)
    with pytest.raises(IndexError, match="outside"):
        m.attention_weights(features(1, 16, 6, 6), 36)


@pytest.mark.parametrize(
    ("kind", "options", "name"),
    [
        ("nla", {"reduction": 3}, "reduction"),
        ("nla", {"reduction": 0}, "reduction"),
        ("nla", {"res_scale": float("nan")}, "res_scale"),
        ("nlsa", {"chunk_size": 0}, "chunk_size"),
        ("nlsa", {"n_hashes": 0}, "n_hashes"),
        ("nlsa", {"match_kernel": 2}, "match_kernel"),
        ("nlsa", {"reduction": 5}, "reduction"),
        ("crisscross", {"recurrence": 0}, "recurrence"),
        ("crisscross", {"reduction": 3}, "reduction"),
        ("crisscross", {"gamma_init": float("inf")}, "gamma_init"),
    ],
)
def test_invalid_options_name_the_option(kind: str, options: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        build(kind, **options)


# -- NLA -------------------------------------------------------------------------------------------
def nla_by_hand(m, x: Tensor) -> tuple[Tensor, Tensor]:
    """NLSN's Eq. 1 from the module's convs and PReLUs: the ``[B, N, N]`` scores and the output tokens."""
    theta = prelu(conv1x1(x, m.match1[0]), m.match1[1])
    phi = prelu(conv1x1(x, m.match2[0]), m.match2[1])
    g = prelu(conv1x1(x, m.assembly[0]), m.assembly[1])
    score = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)  # no 1/√d scaling
    return score, score @ g + m.options.res_scale * tokens(x)


def test_nla_matches_hand_computation() -> None:
    m = build("nla", channels=16)
    with torch.no_grad():  # distinct PReLU slopes so a mixed-up activation would show
        for act, slope in [(m.match1[1], 0.1), (m.match2[1], -0.3), (m.assembly[1], 0.6)]:
            act.weight.fill_(slope)
    x = features(2, 16, 7, 9)
    score, out = nla_by_hand(m, x)
    torch.testing.assert_close(tokens(m(x)), out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tokens(m._reference_forward(x)), out, rtol=1e-5, atol=1e-5)
    for index in (0, 30, 62):
        torch.testing.assert_close(m.attention_weights(x, index), score[:, index], rtol=1e-5, atol=1e-6)


def test_nla_res_scale_multiplies_the_input() -> None:
    x = features(1, 16, 5, 5)
    a, b = build("nla", res_scale=1.0), build("nla", res_scale=0.25)
    torch.testing.assert_close(a(x) - b(x), 0.75 * x, rtol=1e-5, atol=1e-5)


# -- NLSA ------------------------------------------------------------------------------------------
def test_bucket_count_follows_nlsn_with_a_floor_of_two() -> None:
    assert bucket_count(100 * 100, 144) == 70  # 69 + 1, as at a 100×100 test patch
    assert bucket_count(460, 144) == 4
    assert bucket_count(288, 144) == 2
    assert bucket_count(10**6, 144) == 128  # NLSN's cap
    assert bucket_count(35, 144) == 2  # NLSN: 0 buckets (crash); clamped here


@pytest.mark.parametrize(
    ("height", "width", "chunk", "n_hashes"),
    [(20, 23, 144, 3), (5, 7, 144, 2), (6, 6, 8, 4), (9, 10, 16, 1)],
)
def test_nlsa_forward_is_the_weighted_sum_of_values(
    height: int, width: int, chunk: int, n_hashes: int
) -> None:
    m = build("nlsa", channels=16, chunk_size=chunk, n_hashes=n_hashes, reduction=2, res_scale=0.7)
    x = features(2, 16, height, width)
    v = tokens(m.conv_assembly(x))  # [B, N, C]
    n = height * width
    for seed, index in [(0, 0), (1, n // 2), (2, n - 1)]:
        torch.manual_seed(seed)
        out = tokens(m(x))[:, index]
        torch.manual_seed(seed)
        w = m.attention_weights(x, index)
        expected = tokens(x)[:, index] + 0.7 * torch.einsum("bn,bnc->bc", w, v)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def nlsa_by_definition(m, x: Tensor, seed: int) -> Tensor:
    """NLSN's sparse attention written out with loops over images, rounds and chunks (output tokens)."""
    length, size, n_hashes = x.shape[-2] * x.shape[-1], m.options.chunk_size, m.options.n_hashes
    q = tokens(m.conv_match(x))
    k = F.normalize(q, dim=-1, eps=5e-5)
    v = tokens(m.conv_assembly(x))
    torch.manual_seed(seed)  # the module's only random draw: the rotations, shared by the batch
    rotations = torch.randn(q.shape[-1], n_hashes, bucket_count(length, size) // 2)
    padding = -length % size
    out = torch.zeros_like(v)
    for img in range(x.shape[0]):
        rets, lses = torch.zeros(n_hashes, *v.shape[1:]), torch.zeros(n_hashes, length)
        for r in range(n_hashes):
            proj = q[img] @ rotations[:, r]
            order = torch.argsort(torch.cat([proj, -proj], -1).argmax(-1), stable=True).tolist()
            order += [order[(length - padding + j) % length] for j in range(padding)]  # repeat the tail
            chunks = [order[i : i + size] for i in range(0, len(order), size)]
            for c, members in enumerate(chunks):
                window = members + chunks[c - 1] + chunks[(c + 1) % len(chunks)]
                real = [s for s in range(size) if c * size + s < length]  # padded slots give no output
                logits = q[img, [members[s] for s in real]] @ k[img, window].T  # [S', 3S]
                rets[r, [members[s] for s in real]] = torch.softmax(logits, -1) @ v[img, window]
                lses[r, [members[s] for s in real]] = torch.logsumexp(logits, -1)
        out[img] = (rets * torch.softmax(lses, 0)[..., None]).sum(0)
    return tokens(x) + m.options.res_scale * out


@pytest.mark.parametrize(
    ("height", "width", "chunk", "n_hashes"),
    [(20, 23, 144, 3), (5, 7, 144, 2), (6, 6, 8, 4), (9, 10, 16, 1)],
)
def test_nlsa_matches_the_definition_step_by_step(height: int, width: int, chunk: int, n_hashes: int) -> None:
    m = build("nlsa", channels=16, chunk_size=chunk, n_hashes=n_hashes, reduction=2, res_scale=0.7)
    x = features(2, 16, height, width)
    torch.manual_seed(3)
    out = tokens(m(x))
    torch.testing.assert_close(out, nlsa_by_definition(m, x, seed=3), rtol=1e-5, atol=1e-5)


def test_nlsa_weights_stay_in_three_chunks_per_round() -> None:
    m = build("nlsa", chunk_size=16, n_hashes=1)
    x = features(2, 16, 20, 23)
    for seed in range(3):
        torch.manual_seed(seed)
        w = m.attention_weights(x, 100)
        assert ((w > 0).sum(-1) <= 3 * 16).all()
        torch.manual_seed(seed)
        w2 = build("nlsa", chunk_size=16, n_hashes=2).attention_weights(x, 100)
        assert ((w2 > 0).sum(-1) <= 2 * 3 * 16).all()


def test_nlsa_draws_new_rotations_every_call() -> None:
    m = build("nlsa", chunk_size=16, n_hashes=1)
    x = features(1, 16, 16, 16)
    torch.manual_seed(0)
    a = m(x)
    b = m(x)  # the RNG moved on: other buckets
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize(("size", "chunk", "n_hashes"), [(8, 64, 1), (8, 64, 3), (4, 64, 2)])
def test_nlsa_with_a_single_chunk_is_exact_attention_on_normalized_keys(
    size: int, chunk: int, n_hashes: int
) -> None:
    # L = chunk (no padding) or L | chunk (cyclic padding repeats every key equally): every round's window
    # holds all keys with equal multiplicity, so hashing is irrelevant and NLSA is exact softmax attention
    m = build("nlsa", channels=16, chunk_size=chunk, n_hashes=n_hashes, res_scale=0.7)
    x = features(2, 16, size, size)
    q = tokens(m.conv_match(x))
    k = F.normalize(q, dim=-1, eps=5e-5)
    score = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # [B, N, N]
    expected = tokens(x) + 0.7 * score @ tokens(m.conv_assembly(x))
    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.testing.assert_close(tokens(m(x)), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m.attention_weights(x, 5), score[:, 5], rtol=1e-5, atol=1e-6)


# -- criss-cross -----------------------------------------------------------------------------------
def cross_matrix(m, x: Tensor) -> Tensor:
    """Dense ``[B, N, N]`` criss-cross attention: softmax over the same row and column, self once."""
    _, _, h, w = x.shape
    q, k = conv1x1(x, m.query), conv1x1(x, m.key)
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    on_cross = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])  # [N, N]
    energy = (q @ k.transpose(1, 2)).masked_fill(~on_cross, float("-inf"))
    return torch.softmax(energy, dim=-1)


def cross_pass(m, x: Tensor) -> Tensor:
    """One dense criss-cross pass ``x + γ · A V`` (``B×C×H×W``)."""
    out = tokens(x) + m.gamma * cross_matrix(m, x) @ conv1x1(x, m.value)
    return out.transpose(1, 2).reshape(x.shape)


def test_crisscross_single_pass_matches_the_dense_definition() -> None:
    m = build("crisscross", channels=32, recurrence=1)
    x = features(2, 32, 7, 10)
    a = cross_matrix(m, x)
    torch.testing.assert_close(m(x), cross_pass(m, x), rtol=1e-5, atol=1e-5)
    for index in (0, 23, 69):
        w = m.attention_weights(x, index)
        torch.testing.assert_close(w, a[:, index], rtol=1e-5, atol=1e-6)
        row, col = divmod(index, 10)
        grid = w.view(2, 7, 10).clone()
        assert (grid[:, row] > 0).all() and (grid[:, :, col] > 0).all()
        grid[:, row] = 0
        grid[:, :, col] = 0
        assert grid.abs().max() == 0  # nothing off the cross
    assert (a > 0).sum(-1).eq(7 + 10 - 1).all()  # H + W − 1 positions, self counted once


def test_crisscross_recurrence_two_composes_the_passes() -> None:
    m = build("crisscross", channels=32, recurrence=2, gamma_init=0.5)
    x = features(2, 32, 8, 9)
    y1 = cross_pass(m, x)
    torch.testing.assert_close(m(x), cross_pass(m, y1), rtol=1e-5, atol=1e-5)
    composed = cross_matrix(m, y1) @ cross_matrix(m, x)  # A_2 A_1, [B, N, N]
    for index in (0, 40, 71):
        w = m.attention_weights(x, index)
        torch.testing.assert_close(w, composed[:, index], rtol=1e-5, atol=1e-6)
        assert (w > 0).all()  # two passes reach every position


def test_crisscross_starts_as_identity_with_cnnet_gamma() -> None:
    torch.manual_seed(0)
    m = build_attention("crisscross", 16)  # gamma_init = 0 as in CCNet
    x = features(1, 16, 6, 6)
    torch.testing.assert_close(m(x), x, rtol=0, atol=0)
    m(x).square().mean().backward()
    assert m.gamma.grad.abs().item() > 0
