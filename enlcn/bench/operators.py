"""The attention operators of the paper's Table 4 and appendix Table 5: running time and peak memory of each
at ``size×size`` inputs, and the ratios of the efficiency claims from one run's table.

Every (operator, input size) is measured in a FRESH subprocess (:func:`~enlcn.bench.timing.run_worker`), so
that its peak memory is its own: on the CPU the peak resident set is reset (``/proc/self/clear_refs``)
after the module and the input exist, and the peak reached during one forward pass (``VmHWM``) minus the
resident set before it is reported (fallback: ``ru_maxrss`` delta); on CUDA
``torch.cuda.max_memory_allocated`` minus the allocation before. Times are the median of ``repeats`` forward
passes after ``warmup`` passes, in eval mode under ``torch.inference_mode``, with ``torch.set_num_threads``
fixed and ``torch.cuda.synchronize`` on CUDA. Operators whose ``N×N`` score matrix would exceed
``--nla-cap-gb`` are listed as skipped, not run. The allocator is set to keep freed memory
(:func:`warm_allocator`), as in a long-running inference process.

The ENLCA / conv target ratio, a few tens of percent either way, is taken from interleaved calls of the
two operators in one process (:func:`paired_times`, ``<out stem>-paired.csv``), so that the drift of a
shared machine between two processes minutes apart does not enter it. ``enlca-m128-fast`` is the module's
inference forward as a user gets it (the native kernel where it builds, see :mod:`enlcn.attention.native`;
which one ran is in the JSON's ``parameters.enlca_fast_path``); ``enlca-m128-python`` is the same fused
algebra in torch only, measured beside it.

Whole networks are operators too (:data:`MODEL_OPERATORS`), for :mod:`enlcn.bench.networks` (``--models``)
and :mod:`enlcn.bench.pipeline` (``--pipeline``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from ..allocator import warm_allocator
from ..attention import native
from .timing import MODEL_MIN_REPEATS, _div, _first_call, _timed_calls, paired_ratio, run_worker

CHANNELS = 64
DEFAULT_SIZES = (50, 100, 150, 200, 300)
QUICK_SIZES = (16,)
#: operator name -> (kind, build options, path): path "fast" / "ref" selects ENLCA's inference path
ENLCA_OPERATORS = {
    f"{kind}-m{m}-{path}": (kind, m, path)
    for kind in ("enla", "enlca")
    for m in (16, 128)
    for path in ("ref", "fast")
}
#: the matrix products of the fused ENLCA-m128 path alone (and with its two exps): a measured floor
FLOOR_OPERATORS = ("enlca-m128-products", "enlca-m128-products+exp")
#: the fused path in Python/torch only (the native kernel of enlcn.attention.native switched off)
PYTHON_OPERATOR = "enlca-m128-python"
OPERATORS = (
    "none",
    "conv3x3",
    "nla-naive",
    "nla-sdpa",
    "nlsa-r4",
    "crisscross",
    *ENLCA_OPERATORS,
    PYTHON_OPERATOR,
    *FLOOR_OPERATORS,
)
#: models of the --pipeline mode (training step and inference)
PIPELINE_MODELS = ("edsr", "enlcn", "edsr+enla", "edsr+nla", "edsr+nlsa", "edsr+crisscross")
#: whole networks: "model-<name>-<preset>-x<scale>" (3-channel LR input of the given size)
MODEL_OPERATORS = {
    f"model-{name}-{preset}-x{scale}": (name, preset, scale)
    for name in PIPELINE_MODELS
    for preset in ("paper", "cpu", "quick")
    for scale in (2, 4)
}
#: operators whose cost is quadratic in N (skipped above the cap on the N×N score matrix)
QUADRATIC = ("nla-naive", "nla-sdpa")
CSV_COLUMNS = (
    "operator",
    "size",
    "height",
    "width",
    "tokens",
    "status",
    "time_ms",
    "time_ms_min",
    "repeats",
    "peak_mem_mb",
    "threads",
    "device",
)


class ProductsFloor(torch.nn.Module):
    """Only the BLAS products that the fused ENLCA path (:func:`~enlcn.attention.fast.enlca_fast`) runs,
    at its shapes, on random data — plus its two in-place ``exp_`` when ``with_exp``.

    ``[θ; δ] = W X`` (2c×C · C×N), the two feature products ((m+1)×(c+2) and m×(c+2) · (c+2)×N),
    ``X φ(K)ᵀ`` (C×N · N×m) and the output product ((C+1)×(m+1) · (m+1)×N): work every BLAS-based
    implementation of Eqs. 5–6 has to do. Its time against the conv is the floor of the whole-image
    Python path (``enlca-m128-python``) on this machine, before the norms, sums and the final division;
    the native kernel (:mod:`enlcn.attention.native`) runs the same products per cache-sized block and
    goes below it.
    """

    def __init__(self, channels: int, m: int, reduction: int = 4, with_exp: bool = False) -> None:
        super().__init__()
        c = channels // reduction
        self.with_exp = with_exp
        self.register_buffer("w_qk", torch.randn(2 * c, channels) / channels**0.5)
        self.register_buffer("p_q", torch.randn(m + 1, c + 2) * 0.1)
        self.register_buffer("p_k", torch.randn(m, c + 2) * 0.1)
        self.register_buffer("ctx_t", torch.randn(channels + 1, m + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, ch, h, w = x.shape
        out = x.new_empty(b, ch + 1, h * w)
        for i in range(b):
            xi = x[i].reshape(ch, h * w)  # [C, N]
            emb = self.w_qk @ xi  # [2c, N]
            z = emb[: self.p_q.shape[1]]  # stands in for [Q; ‖Q‖²; 1] (same shape: c + 2 ≤ 2c rows)
            phi_q = self.p_q @ z  # [m+1, N]
            phi_k = self.p_k @ z  # [m, N]
            if self.with_exp:
                phi_q.exp_()
                phi_k.exp_()
            torch.mm(xi, phi_k.T)  # [C, m] = X φ(K)ᵀ
            torch.mm(self.ctx_t, phi_q, out=out[i])  # [C+1, N]
        return out


def build_operator(name: str, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable ``x -> y`` for operator ``name`` (eval mode, on ``device``)."""
    from ..attention import build_attention

    if name in MODEL_OPERATORS:
        from ..models import build_model

        model, preset, scale = MODEL_OPERATORS[name]
        mod = build_model(model, scale, preset)
    elif name == "conv3x3":
        mod = torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
    elif name == "none":
        mod = build_attention("none", CHANNELS)
    elif name in ("nla-naive", "nla-sdpa"):
        mod = build_attention("nla", CHANNELS)
    elif name == "nlsa-r4":
        mod = build_attention("nlsa", CHANNELS, n_hashes=4)
    elif name == "crisscross":
        mod = build_attention("crisscross", CHANNELS)
    elif name in FLOOR_OPERATORS:
        mod = ProductsFloor(CHANNELS, 128, with_exp=name.endswith("+exp"))
    elif name in ENLCA_OPERATORS or name == PYTHON_OPERATOR:
        kind, m, path = ENLCA_OPERATORS.get(name, ("enlca", 128, "fast"))
        mod = build_attention(kind, CHANNELS, m=m)
        mod.use_fast_path = path == "fast"
        mod.use_native = name != PYTHON_OPERATOR
        if mod.use_native:
            native.load()  # build / load the kernel before anything is timed
    else:
        known = ", ".join((*OPERATORS, *MODEL_OPERATORS))
        raise ValueError(f"unknown operator {name!r}; choose from {known}")
    mod = mod.to(device).eval()
    if name == "nla-naive":
        return mod._reference_forward  # NLSN's matmul + softmax with the N×N matrix written out
    return mod


def quadratic_gb(size: int) -> float:
    """GB of one float32 ``N×N`` score matrix for a ``size×size`` input."""
    n = size * size
    return n * n * 4 / 1e9


def measure(name: str, size: int, repeats: int, warmup: int, threads: int, device: str) -> dict:
    """Time and peak memory of one operator at ``size×size`` (call in a fresh process for the memory)."""
    warm_allocator()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    fn = build_operator(name, device)
    channels = 3 if name in MODEL_OPERATORS else CHANNELS
    x = (torch.rand if name in MODEL_OPERATORS else torch.randn)(1, channels, size, size, device=device)
    floor = min(MODEL_MIN_REPEATS, repeats) if name in MODEL_OPERATORS else 1
    with torch.inference_mode():
        first, peak = _first_call(lambda: fn(x), cuda)
        times = _timed_calls(lambda: fn(x), first, repeats, warmup, floor, cuda)
    return {
        "operator": name,
        "size": size,
        "height": size,
        "width": size,
        "tokens": size * size,
        "status": "ok",
        "time_ms": statistics.median(times) * 1e3,
        "time_ms_min": min(times) * 1e3,
        "repeats": len(times),
        "peak_mem_mb": peak / 2**20,
        "threads": threads,
        "device": device,
    }


def _measure_in_subprocess(
    name: str, size: int, repeats: int, warmup: int, threads: int, device: str
) -> dict:
    try:
        spec = dict(name=name, size=size, repeats=repeats, warmup=warmup, threads=threads, device=device)
        return run_worker("operator", **spec)
    except RuntimeError as exc:
        return _row(name, size, threads, device, f"error: {exc}")


def _row(name: str, size: int, threads: int, device: str, status: str) -> dict:
    row = dict.fromkeys(CSV_COLUMNS, float("nan"))
    row.update(operator=name, size=size, height=size, width=size, tokens=size * size, status=status)
    row.update(threads=threads, device=device, repeats=0)
    return row


def run_bench(
    sizes: Sequence[int] = DEFAULT_SIZES,
    operators: Sequence[str] = OPERATORS,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    device: str | None = None,
    nla_cap_gb: float = 4.0,
    isolate: bool = True,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Measure ``operators`` at every ``size×size`` input; one row per (operator, size).

    ``isolate`` (default) runs each measurement in a fresh subprocess so that peak memory is per
    operator; ``isolate=False`` measures in this process (memory then only meaningful on CUDA).
    """
    threads = threads or torch.get_num_threads()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    unknown = [op for op in operators if op not in OPERATORS and op not in MODEL_OPERATORS]
    if unknown:
        raise ValueError(f"unknown operator(s) {unknown}; choose from {', '.join(OPERATORS)}")
    rows = []
    for size in sizes:
        for name in operators:
            if name in QUADRATIC and quadratic_gb(size) > nla_cap_gb:
                n = size * size
                status = f"skipped: N² = {n}² floats = {quadratic_gb(size):.1f} GB > cap {nla_cap_gb:g} GB"
                row = _row(name, size, threads, device, status)
            elif isolate:
                row = _measure_in_subprocess(name, size, repeats, warmup, threads, device)
            else:
                row = measure(name, size, repeats, warmup, threads, device)
            rows.append(row)
            if progress:
                progress(f"{name:>18} {size:>4}×{size:<4} {row['status']:>6} {row['time_ms']:10.3f} ms")
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def _time(df: pd.DataFrame, op: str, size: int) -> float:
    sel = df[(df.operator == op) & (df["size"] == size) & (df.status == "ok")]
    return float(sel.time_ms.iloc[0]) if len(sel) else float("nan")


def _mem(df: pd.DataFrame, op: str, size: int) -> float:
    sel = df[(df.operator == op) & (df["size"] == size) & (df.status == "ok")]
    return float(sel.peak_mem_mb.iloc[0]) if len(sel) else float("nan")


def ratio_size(df: pd.DataFrame) -> int:
    """The input side of the time ratios: 150 when measured, else the largest size."""
    sizes = sorted(int(s) for s in df["size"].unique())
    return 150 if 150 in sizes else sizes[-1]


def ratios(
    df: pd.DataFrame, contrastive: list[dict] | None = None, paired: pd.DataFrame | None = None
) -> list[tuple[str, float, str]]:
    """``(name, value, target)`` of the efficiency claims, from this run's table.

    The time ratios use :func:`ratio_size`; the memory ratio 300 vs 150 (else the two largest sizes).
    With ``paired`` (:func:`paired_times` of ``conv3x3`` and ``enlca-m128-fast``) the ENLCA / conv
    target is the median of per-round ratios of interleaved calls in one process; the ratio of the
    separate processes' medians is then reported as ``info``.
    """
    sizes = sorted(int(s) for s in df["size"].unique())
    at = ratio_size(df)
    hi, lo = (
        (300, 150) if {150, 300} <= set(sizes) else (sizes[-1], sizes[-2] if len(sizes) > 1 else sizes[-1])
    )
    enlca, conv = _time(df, "enlca-m128-fast", at), _time(df, "conv3x3", at)
    mem_fast = _div(_mem(df, "enlca-m128-fast", hi), _mem(df, "enlca-m128-fast", lo))
    mem_ref = _div(_mem(df, "enlca-m128-ref", hi), _mem(df, "enlca-m128-ref", lo))
    name = f"enlca_m128_over_conv3x3@{at}"
    if paired is not None and not paired.empty:
        head = [
            (name, paired_ratio(paired, "enlca-m128-fast", "conv3x3"), "<= 1.0"),
            (f"{name}_separate_processes", _div(enlca, conv), "info"),
        ]
        for op in (PYTHON_OPERATOR, *FLOOR_OPERATORS):  # the Python path; its BLAS products (and exps) alone
            if op in set(paired.operator):
                label = op.replace("-", "_").replace("+", "_plus_")
                head.append((f"{label}_over_conv3x3@{at}", paired_ratio(paired, op, "conv3x3"), "info"))
    else:
        head = [(name, _div(enlca, conv), "<= 1.0")]
    out = [
        *head,
        (f"enlca_m128_ref_over_conv3x3@{at}", _div(_time(df, "enlca-m128-ref", at), conv), "info"),
        (f"nla_naive_over_enlca_m128@{at}", _div(_time(df, "nla-naive", at), enlca), ">= 67"),
        (f"nla_sdpa_over_enlca_m128@{at}", _div(_time(df, "nla-sdpa", at), enlca), "info"),
        (f"nlsa_r4_over_enlca_m128@{at}", _div(_time(df, "nlsa-r4", at), enlca), ">= 5.5"),
        (f"enlca_m128_peak_mem_{hi}_over_{lo}", mem_fast, "<= 4.5"),
        (f"enlca_m128_ref_peak_mem_{hi}_over_{lo}", mem_ref, "info"),
    ]
    for row in contrastive or []:
        if row["operator"].endswith("-topk"):
            form = row["operator"].split("-")[1]
            sort = next(r for r in contrastive if r["operator"] == f"contrastive-{form}-sort")
            side = row["size"]
            speedup = _div(sort["time_ms"], row["time_ms"])
            out.append((f"contrastive_{form}_sort_over_topk@N={side}^2", speedup, ">= 3"))
            out.append((f"contrastive_{form}_identical@N={side}^2", float(row["identical"]), "== 1"))
    return out


def paired_times(
    names: Sequence[str], size: int, rounds: int, warmup: int, threads: int, device: str
) -> pd.DataFrame:
    """Interleaved forward times of operators on one ``size×size`` input, in this process.

    Every round runs each operator once, in an order reversed every other round (A B, B A, …), so a slow
    drift of the machine (other load, clock) hits them alike; a ratio of two operators is then the median
    of the per-round ratios. Rows: ``round``, ``operator``, ``time_ms``.
    """
    warm_allocator()  # as in the separate processes: freed blocks are not page-faulted back each call
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fns = {name: build_operator(name, device) for name in names}
    channels = 3 if names[0] in MODEL_OPERATORS else CHANNELS
    x = (torch.rand if names[0] in MODEL_OPERATORS else torch.randn)(1, channels, size, size, device=device)
    rows = []
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn(x)
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                sync()
                start = time.perf_counter()
                fns[name](x)
                sync()
                rows.append({"round": r, "operator": name, "time_ms": (time.perf_counter() - start) * 1e3})
    return pd.DataFrame(rows)
