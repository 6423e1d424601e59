"""Table 4's FLOPs: analytic counts vs the paper's printed values vs FlopCounterMode.

FlopCounterMode counts only matrix products and convolutions, at 2 FLOPs per multiply-add. So for every
module the counted attention core must equal the analytic count of exactly the products the code runs —
for ENLCA that is the paper's ``4mN(c + c_out)`` plus ``2mN`` for ``D = φ(Q)·(φ(K)1_N)``; ``exp``,
norms, the sum ``φ(K)1_N`` and the division by ``D`` are not counted.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from enlcn import flops
from enlcn.flops import (
    conv_counted_flops,
    conv_flops,
    count_flops,
    crisscross_flops,
    enla_core_flops,
    enlca_flops,
    enlca_gflops,
    module_flops,
    nla_core_flops,
    nla_flops,
    nlsa_buckets,
    nlsa_code_flops,
    nlsa_flops,
    table4,
    without_convolutions,
)

N, C = 100 * 100, 64


@pytest.fixture(scope="module")
def table():
    start = time.perf_counter()
    df = table4()
    assert time.perf_counter() - start < 20  # meta tensors: counting computes nothing
    return df


def test_table4_reproduces_every_printed_value(table) -> None:
    assert list(table.method) == list(flops.PAPER_TABLE4)
    for row in table.itertuples():
        assert round(row.gflops, 2) == pytest.approx(row.paper_gflops, abs=1e-9), row.method


def test_table4_columns(table) -> None:
    expected = ["method", "gflops", "paper_gflops", "paper_psnr", "code_gflops", "counted_gflops",
                "counted_core_gflops", "note"]  # fmt: skip
    assert list(table.columns) == expected
    assert math.isnan(table.set_index("method").loc["Conv", "paper_psnr"])
    assert table.set_index("method").loc["ENLCA-m128", "paper_psnr"] == 27.12


def test_counted_core_equals_code_count_for_every_row(table) -> None:
    for row in table.itertuples():
        assert row.counted_core_gflops == pytest.approx(row.code_gflops, rel=1e-12, abs=0), row.method


def test_analytic_hand_computed() -> None:
    assert conv_flops(N, C, C, 3) == 737_280_000
    assert nla_flops(N, C, C) == 25_600_000_000
    assert nlsa_flops(N, C, C, 4, 144, 128) == 8 * N * (432 * 128 + 64 * 128) == 5_079_040_000
    assert nlsa_buckets(N, 144) == 70
    assert nlsa_code_flops(N, C, C, 4, 144) == 8 * (10_080 * 432 * 128 + N * 64 * 35) == 4_638_269_440
    assert crisscross_flops(100, 100, C, C) == 2 * N * 199 * 128 == 509_440_000
    assert crisscross_flops(100, 100, C, C, include_masked_self=True) == 512_000_000


def test_enlca_normalizer_readings() -> None:
    assert enlca_flops(256, N, C, C) == 4 * 256 * N * 128 == 1_310_720_000
    assert enlca_flops(256, N, C, C, "mN") == 1_310_720_000 + 256 * N
    assert round(enlca_gflops(256, N, C, C, "mN"), 2) == 1.31
    assert round(enlca_gflops(256, N, C, C, "2mN"), 2) == 1.32  # not the printed 1.31
    with pytest.raises(ValueError, match="normalizer"):
        enlca_flops(8, N, C, C, "D")


def test_conv_counted_equals_analytic_exactly() -> None:
    assert conv_counted_flops() == conv_flops(N, C, C, 3)
    assert conv_counted_flops(kernel=1) == conv_flops(N, C, C, 1)


@pytest.mark.parametrize("m", [2, 16, 128, 256])
def test_enla_counted_is_paper_count_plus_2mN(m: int) -> None:
    # The exact relation: FlopCounterMode sees F·Q, F·K, φ(K)ᵀV, φ(Q)·(φ(K)ᵀV) and φ(Q)·(φ(K)1_N).
    counted = enla_core_flops(m)
    assert counted == enlca_flops(m, N, C, C) + 2 * m * N == enlca_flops(m, N, C, C, "2mN")
    assert counted == enla_core_flops(m, n=N, c=C, c_out=C)


def test_enla_counted_with_unequal_channels() -> None:
    # the official module's shapes: c = 16 (reduction 4), c_out = 256, N = 48²
    assert enla_core_flops(128, n=48 * 48, c=16, c_out=256) == enlca_flops(128, 48 * 48, 16, 256, "2mN")


def test_nla_counted_equals_analytic() -> None:
    assert nla_core_flops() == nla_flops(N, C, C)


def test_count_flops_on_plain_function() -> None:
    a, b = torch.empty(3, 5, device="meta"), torch.empty(5, 7, device="meta")
    assert count_flops(torch.matmul, a, b) == 2 * 3 * 5 * 7
    assert count_flops(torch.exp, a) == 0  # elementwise ops are not counted


def test_enlca_module_is_core_plus_three_embedding_convs() -> None:
    counts = module_flops("enlca", m=128, reduction=1)
    # the three 1×1 embeddings run as one linear map of the tokens (matrix products, no aten.convolution)
    assert without_convolutions(counts) == sum(counts.values())
    assert sum(counts.values()) == enla_core_flops(128) + 3 * conv_flops(N, C, C, 1)


def test_nla_module_counts_sdpa_as_matmuls() -> None:
    counts = module_flops("nla", reduction=1)
    assert without_convolutions(counts) == nla_flops(N, C, C)


def test_nlsa_module_is_what_nlsn_code_does() -> None:
    counts = module_flops("nlsa", reduction=1)
    assert without_convolutions(counts) == nlsa_code_flops(N, C, C, 4, 144)
    assert sum(counts.values()) - without_convolutions(counts) == conv_flops(N, C, C, 3) + conv_flops(
        N, C, C, 1
    )


def test_crisscross_module_computes_the_masked_self_too() -> None:
    counts = module_flops("crisscross", reduction=1, recurrence=1)
    assert without_convolutions(counts) == crisscross_flops(100, 100, C, C, include_masked_self=True)
    twice = module_flops("crisscross", reduction=1, recurrence=2)
    assert without_convolutions(twice) == 2 * without_convolutions(counts)
