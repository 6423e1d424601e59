"""FLOP counts of the attention modules (paper Table 4 and the "Computational Complexity" paragraph).

Table 4's setting: one module on a 100×100 feature map (``N = 10⁴``), ``c = c_out = 64``; FLOPs are
``2 × MACs`` (one multiply-add = 2 FLOPs), as :class:`torch.utils.flop_counter.FlopCounterMode` reports.
The analytic ``*_flops`` functions return exact integer FLOPs; the ``*_gflops`` ones divide by 10⁹.

Every analytic count here covers the matrix products of the attention itself and nothing else: the
embedding convolutions (θ, δ, ψ), ``exp``/softmax, norms and normalisations, additions, the residual and
(for ENLCA) the training-only ``O(N²)`` contrastive loss are all left out, as in the paper.
:func:`table4` puts them next to counts measured with ``FlopCounterMode``, which counts only
matrix products and convolutions (``aten.mm``/``bmm``/``convolution`` …, no elementwise ops, reductions,
``exp`` or sorting).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .attention import build_attention
from .attention.enla import enla

#: Table 4's setting: a 100×100 map, 64 input and output channels
HEIGHT = WIDTH = 100
CHANNELS = 64
#: NLSN's settings used for NLSA-r4: rounds, chunk size, the bucket cap read as B in the paper's count
NLSA_ROUNDS, NLSA_CHUNK, NLSA_MAX_BUCKETS = 4, 144, 128
#: Table 4 as printed: method -> (GFLOPs, Urban100 ×4 PSNR in dB; NaN for "-")
PAPER_TABLE4: dict[str, tuple[float, float]] = {
    "Baseline": (0.0, 26.64),
    "NLA": (25.60, 26.87),
    "Conv": (0.74, math.nan),
    "NLSA-r4": (5.08, 26.96),
    "ENLCA-m256": (1.31, 27.12),
    "ENLCA-m128": (0.66, 27.12),
    "ENLCA-m64": (0.33, 27.09),
    "ENLCA-m32": (0.16, 27.07),
    "ENLCA-m16": (0.08, 27.07),
    "ENLCA-m8": (0.04, 27.03),
    "ENLCA-m4": (0.02, 27.01),
    "ENLCA-m2": (0.01, 26.88),
}
NORMALIZERS = ("none", "mN", "2mN")


# -- analytic counts -------------------------------------------------------------------------------
def enlca_flops(m: int, n: int, c: int, c_out: int, normalizer: str = "none") -> int:
    """ENLA's products (paper "Computational Complexity"): ``2·(2mNc + 2mNc_out) + D`` FLOPs.

    Includes ``F·Q`` and ``F·K`` (``2mNc`` MACs), ``φ(K)Vᵀ`` and ``φ(Q)·(φ(K)Vᵀ)`` (``2mNc_out`` MACs).
    ``normalizer`` is what the row sums ``D`` (Eq. 6) add: ``"none"`` (0, the count that reproduces every
    printed Table 4 value), ``"mN"`` (the paper's ``O(mN)`` read as FLOPs, which also rounds to the
    printed values) or ``"2mN"`` (``φ(Q)·(φ(K)1_N)`` as a matrix product, what :func:`enlcn.attention.enla`
    runs; gives 1.316 → "1.32" for m = 256, not the printed 1.31). Leaves out the embeddings, ``exp``, the
    norms ``‖u‖²``, the sum ``φ(K)1_N``, the division by ``D`` and the contrastive loss.
    """
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
    extra = {"none": 0, "mN": m * n, "2mN": 2 * m * n}[normalizer]
    return 2 * (2 * m * n * c + 2 * m * n * c_out) + extra


def nla_flops(n: int, c: int, c_out: int) -> int:
    """Exact non-local attention (Eq. 1): ``2·N²·(c + c_out)`` FLOPs (``QᵀK`` and the weighted sum of ``V``).

    Leaves out the embeddings and the softmax (``exp``, row sums, division).
    """
    return 2 * n * n * (c + c_out)


def conv_flops(n: int, c_in: int, c_out: int, kernel: int) -> int:
    """A ``kernel×kernel`` convolution at every one of ``N`` positions: ``2·N·k²·c_in·c_out`` (no bias).

    Zero padding is counted as if it were data (as ``FlopCounterMode`` does).
    """
    return 2 * n * kernel * kernel * c_in * c_out


def nlsa_flops(n: int, c: int, c_out: int, rounds: int, chunk: int, buckets: int) -> int:
    """NLSA as Table 4 counts it: ``2·r·N·[3·chunk·(c + c_out) + c·B]`` FLOPs.

    Per round: each query scores ``3·chunk`` keys (its chunk and both neighbours) and sums as many values
    (``3·chunk·(c + c_out)`` MACs), plus hashing as a full ``c×B`` projection (``c·B`` MACs). With
    ``B = 128`` (NLSN's cap), ``r = 4``, ``chunk = 144`` it gives the printed 5.08 G. Leaves out the
    embeddings, softmax, sorting/gathering and the padding of the sequence to a multiple of ``chunk``.
    """
    return 2 * rounds * n * (3 * chunk * (c + c_out) + c * buckets)


def nlsa_buckets(n: int, chunk: int) -> int:
    """NLSN's number of hash buckets: ``min(L//chunk + (L//chunk) % 2, 128)`` (70 at ``L = 10⁴``)."""
    blocks = n // chunk
    return min(blocks + blocks % 2, NLSA_MAX_BUCKETS)


def nlsa_code_flops(n: int, c: int, c_out: int, rounds: int, chunk: int) -> int:
    """NLSA's products as NLSN's code runs them: ``2·r·(L_pad·3·chunk·(c + c_out) + N·c·B/2)``.

    ``B`` from :func:`nlsa_buckets`; the rotation has ``B/2`` columns (``argmax([xR, −xR])``); the sorted
    sequence is padded to ``L_pad = ⌈N/chunk⌉·chunk`` (10,080 at ``N = 10⁴``), and padded slots are
    computed too. At 100×100: 4.64 G (not the printed 5.08). Leaves out what :func:`nlsa_flops` leaves out.
    """
    padded = math.ceil(n / chunk) * chunk
    half_buckets = nlsa_buckets(n, chunk) // 2
    return 2 * rounds * (padded * 3 * chunk * (c + c_out) + n * c * half_buckets)


def crisscross_flops(h: int, w: int, c: int, c_out: int, include_masked_self: bool = False) -> int:
    """One criss-cross pass (CCNet): ``2·N·(H + W − 1)·(c + c_out)`` FLOPs (not in Table 4).

    Each query scores and sums its row and column, itself once. CCNet's code (and ours) computes the
    whole column including the query, masked to ``−inf``: ``include_masked_self=True`` counts those
    ``H + W`` products. Per pass: multiply by the recurrence (2 in CCNet). Leaves out the embeddings and
    the softmax.
    """
    n = h * w
    return 2 * n * (h + w - (0 if include_masked_self else 1)) * (c + c_out)


def enlca_gflops(m: int, n: int, c: int, c_out: int, normalizer: str = "none") -> float:
    """:func:`enlca_flops` in GFLOPs."""
    return enlca_flops(m, n, c, c_out, normalizer) / 1e9


def nla_gflops(n: int, c: int, c_out: int) -> float:
    """:func:`nla_flops` in GFLOPs."""
    return nla_flops(n, c, c_out) / 1e9


def conv_gflops(n: int, c_in: int, c_out: int, kernel: int) -> float:
    """:func:`conv_flops` in GFLOPs."""
    return conv_flops(n, c_in, c_out, kernel) / 1e9


def nlsa_gflops(n: int, c: int, c_out: int, rounds: int, chunk: int, buckets: int) -> float:
    """:func:`nlsa_flops` in GFLOPs."""
    return nlsa_flops(n, c, c_out, rounds, chunk, buckets) / 1e9


def nlsa_code_gflops(n: int, c: int, c_out: int, rounds: int, chunk: int) -> float:
    """:func:`nlsa_code_flops` in GFLOPs."""
    return nlsa_code_flops(n, c, c_out, rounds, chunk) / 1e9


def crisscross_gflops(h: int, w: int, c: int, c_out: int, include_masked_self: bool = False) -> float:
    """:func:`crisscross_flops` in GFLOPs."""
    return crisscross_flops(h, w, c, c_out, include_masked_self) / 1e9


# -- counted with FlopCounterMode ------------------------------------------------------------------
def count_flops_by_op(fn: Callable[..., Any], *args: Any) -> dict[str, int]:
    """FLOPs of ``fn(*args)`` per aten op under ``FlopCounterMode`` (no grad; ``2 × MACs``).

    Only matrix products and convolutions are counted. Arguments may live on the ``meta`` device: the
    counter needs shapes only, so nothing is computed or allocated.
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return {str(op): int(v) for op, v in counter.get_flop_counts().get("Global", {}).items()}


def count_flops(fn: Callable[..., Any], *args: Any) -> int:
    """Total FLOPs of ``fn(*args)`` under ``FlopCounterMode`` (see :func:`count_flops_by_op`)."""
    return sum(count_flops_by_op(fn, *args).values())


META = torch.device("meta")


def module_flops(kind: str, **options: Any) -> dict[str, int]:
    """Counted FLOPs per op of ``build_attention(kind, 64, **options)`` on a ``1×64×100×100`` input.

    The module is put in eval mode and moved to the ``meta`` device with its input, so no output is
    computed. Includes the embedding convolutions; excludes everything ``FlopCounterMode`` ignores.
    NLA's ``scaled_dot_product_attention`` on 3-D tensors takes the math path and is counted as its two
    ``bmm`` (fused kernels, e.g. CPU flash attention on 4-D inputs, would count 0).
    """
    module = build_attention(kind, CHANNELS, **options).eval().to(META)
    return count_flops_by_op(module, torch.empty(1, CHANNELS, HEIGHT, WIDTH, device=META))


def module_total(kind: str, **options: Any) -> int:
    """Total counted FLOPs of :func:`module_flops`."""
    return sum(module_flops(kind, **options).values())


def enla_core_flops(m: int, n: int = HEIGHT * WIDTH, c: int = CHANNELS, c_out: int = CHANNELS) -> int:
    """Counted FLOPs of one :func:`enlcn.attention.enla` call on ``1×N×c`` queries/keys, ``1×N×c_out`` values.

    Exactly ``enlca_flops(m, n, c, c_out, "2mN")``: the four matrix products plus ``φ(Q)·(φ(K)1_N)``.
    """
    q = torch.empty(1, n, c, device=META)
    v = torch.empty(1, n, c_out, device=META)
    return count_flops(enla, q, q, v, torch.empty(m, c, device=META))


def nla_core_flops(n: int = HEIGHT * WIDTH, c: int = CHANNELS, c_out: int = CHANNELS) -> int:
    """Counted FLOPs of ``softmax(Q Kᵀ) V`` written as explicit matmuls on ``1×N×c`` meta tensors."""

    def reference(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v

    q = torch.empty(1, n, c, device=META)
    return count_flops(reference, q, q, torch.empty(1, n, c_out, device=META))


def conv_counted_flops(c_in: int = CHANNELS, c_out: int = CHANNELS, kernel: int = 3) -> int:
    """Counted FLOPs of ``nn.Conv2d(c_in, c_out, kernel, padding=kernel//2, bias=False)`` at 100×100."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False).to(META)
    return count_flops(conv, torch.empty(1, c_in, HEIGHT, WIDTH, device=META))


def without_convolutions(counts: dict[str, int]) -> int:
    """The FLOPs of ``counts`` outside ``aten.convolution``: a module's attention core without embeddings."""
    return sum(v for op, v in counts.items() if "convolution" not in op)


# -- Table 4 ----------------------------------------------------------------------------------------
def table4() -> pd.DataFrame:
    """Table 4's GFLOPs, analytic and counted, at ``N = 100·100``, ``c = c_out = 64``.

    Columns:

    * ``gflops`` — the analytic count that reproduces the paper (``*_flops`` above, ENLCA without ``D``);
    * ``paper_gflops``, ``paper_psnr`` — as printed in the paper (PSNR: Urban100 ×4, dB; NaN for "-");
    * ``code_gflops`` — the analytic count of the products the code actually runs: ENLCA with
      ``D = φ(Q)·(φ(K)1_N)`` (``"2mN"``), NLSA as NLSN's code runs at 100×100 (:func:`nlsa_code_flops`);
    * ``counted_gflops`` — ``FlopCounterMode`` on the whole module from ``build_attention`` (eval, no grad,
      meta device, ``1×64×100×100``), embedding convolutions included. ``reduction=1`` is passed so that
      ``c = c_out = 64`` as in the table (ENLCA's default is 4, i.e. ``c = 16``); other options are the
      defaults (NLSA: 4 rounds, chunk 144, a 3×3 ``conv_match``);
    * ``counted_core_gflops`` — the attention core alone: ENLCA: one ``enla(q, k, v, F)`` call; NLA:
      explicit ``softmax(QKᵀ)V`` matmuls; Conv: the convolution; NLSA: the module's count without its
      convolutions. It equals ``code_gflops`` exactly for every row.
    """
    n = HEIGHT * WIDTH
    c = c_out = CHANNELS
    rows: list[dict[str, Any]] = []

    def add(method: str, gflops: float, code: float, counted: float, core: float, note: str) -> None:
        paper, psnr = PAPER_TABLE4[method]
        rows.append(
            dict(
                method=method,
                gflops=gflops,
                paper_gflops=paper,
                paper_psnr=psnr,
                code_gflops=code,
                counted_gflops=counted,
                counted_core_gflops=core,
                note=note,
            )
        )

    add("Baseline", 0.0, 0.0, module_total("none") / 1e9, 0.0, "no attention module")
    nla = nla_gflops(n, c, c_out)
    add(
        "NLA",
        nla,
        nla,
        module_total("nla", reduction=1) / 1e9,
        nla_core_flops() / 1e9,
        "2N²(c+c_out); counted module adds three 1×1 embedding convs; softmax not counted",
    )
    conv = conv_gflops(n, c, c_out, 3)
    conv_counted = conv_counted_flops() / 1e9
    add("Conv", conv, conv, conv_counted, conv_counted, "3×3 conv 64→64, no bias (the module is the core)")
    nlsa_counts = module_flops("nlsa", reduction=1)
    add(
        "NLSA-r4",
        nlsa_gflops(n, c, c_out, NLSA_ROUNDS, NLSA_CHUNK, NLSA_MAX_BUCKETS),
        nlsa_code_gflops(n, c, c_out, NLSA_ROUNDS, NLSA_CHUNK),
        sum(nlsa_counts.values()) / 1e9,
        without_convolutions(nlsa_counts) / 1e9,
        "paper: B=128 as a c×B hash; code: B=70, rotation c·B/2, padded to 10,080 positions",
    )
    for m in (256, 128, 64, 32, 16, 8, 4, 2):
        add(
            f"ENLCA-m{m}",
            enlca_gflops(m, n, c, c_out),
            enlca_gflops(m, n, c, c_out, "2mN"),
            module_total("enlca", m=m, reduction=1) / 1e9,
            enla_core_flops(m) / 1e9,
            "4mN(c+c_out) without D; code adds D as 2mN; counted module adds three 1×1 embedding convs",
        )
    return pd.DataFrame(rows)
