"""Running time and peak memory of the attention operators (paper Table 4 and appendix Table 5).

``python -m enlcn.bench [--sizes 50 100 150 200 300] [--repeats 10] [--warmup 2] [--threads T]
[--device cpu|cuda] [--out results/bench/<device>.csv] [--quick] [--in-process]
[--models [--preset paper] | --pipeline [--profile cpu]] [--model-size 128]``

Every (operator, input size) is measured in a FRESH subprocess, so that its peak memory is its own: on the
CPU the peak resident set is reset (``/proc/self/clear_refs``) after the module and the input exist, and
the peak reached during one forward pass (``VmHWM``) minus the resident set before it is reported
(fallback: ``ru_maxrss`` delta); on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before.
Times are the median of ``repeats`` forward passes after ``warmup`` passes, in eval mode under
``torch.inference_mode``, with ``torch.set_num_threads`` fixed and ``torch.cuda.synchronize`` on CUDA.
Operators whose ``N×N`` score matrix would exceed ``--nla-cap-gb`` are listed as skipped, not run. The
allocator is set to keep freed memory (:func:`warm_allocator`), as in a long-running inference process.

The ENLCA / conv target ratio, a few tens of percent either way, is taken from interleaved calls of the
two operators in one process (:func:`paired_times`, ``<out stem>-paired.csv``), so that the drift of a
shared machine between two processes minutes apart does not enter it. ``enlca-m128-fast`` is the module's
inference forward as a user gets it (the native kernel where it builds, see :mod:`enlcn.attention.native`;
which one ran is in the JSON's ``parameters.enlca_fast_path``); ``enlca-m128-python`` is the same fused
algebra in torch only, measured beside it.

Printed: the table, the ratios of the efficiency claims measured in this same run, and the contrastive
loss with a partial selection (``topk``, what :func:`~enlcn.attention.contrastive.contrastive_loss` does)
vs a full sort of every row at ``N = 48²``. Written: the table as CSV (atomically) and beside it a JSON
``{"provenance": <enlcn.provenance.Provenance record>, "ratios": {name: {"value", "target"}}}``.

``--models``: ENLCN vs EDSR forward at ``--model-size`` and one global ENLCN pass (``<out stem>-models``).
Each model is first measured in its own process (peak memory, a few passes); the ratio then comes from
``--repeats`` interleaved rounds of both models in one process (:func:`paired_times`, per-round times in
``<out stem>-models-paired.csv``): the two differ by a few percent, less than the drift between
processes measured minutes apart.
``--pipeline``: for every model of :data:`PIPELINE_MODELS` under a training profile (default ``cpu``:
batch 8 of 32² LR patches, ×4), the median time of one training step (forward, L1 + λ·contrastive loss,
backward, Adam step, on random tensors of the profile's shapes) with the peak memory of the first step,
and whole-image inference at ``--model-size`` (images/s, peak memory), each in a fresh process as above
(``<out stem>-pipeline``). ``--quick`` makes every mode tiny (for tests).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from .allocator import warm_allocator
from .attention import native
from .provenance import Provenance, hardware, load_average, write_csv_atomic, write_json_atomic

if TYPE_CHECKING:
    from .train import TrainConfig

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
#: seconds budget does not cut model passes below this many repeats (their ratio needs a median)
MODEL_MIN_REPEATS = 3
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
PIPELINE_COLUMNS = (
    "model",
    "profile",
    "preset",
    "scale",
    "params",
    "batch_size",
    "lr_patch",
    "train_status",
    "train_step_ms",
    "train_step_ms_min",
    "train_repeats",
    "train_peak_mem_mb",
    "infer_size",
    "infer_status",
    "infer_ms",
    "images_per_s",
    "infer_peak_mem_mb",
    "threads",
    "device",
)
#: at most this many seconds of timed passes per operator and size (slow operators get fewer repeats)
TIME_BUDGET_S = 6.0
CONTRASTIVE_SIDE = 48
MODEL_SIZE = 128


# -- building the operators ------------------------------------------------------------------------
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
    from .attention import build_attention

    if name in MODEL_OPERATORS:
        from .models import build_model

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


# -- one measurement (runs in its own process) ----------------------------------------------------
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:  # pragma: no cover - not permitted / not Linux
        return False


def _peak_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        return None
    return None


def _first_call(fn: Callable[[], object], cuda: bool) -> tuple[float, float]:
    """Seconds and peak memory (bytes above the memory before it) of one call of ``fn``."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        reset = _reset_peak_rss()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        hwm = _peak_rss_bytes() if reset else None
        if hwm is not None:
            peak = hwm - base
        else:  # ru_maxrss only grows: a delta, or 0 if the pass stayed below the earlier peak
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss_before
    return first, max(peak, 0)


def _timed_calls(
    fn: Callable[[], object], first: float, repeats: int, warmup: int, floor: int, cuda: bool
) -> list[float]:
    """Seconds of ``repeats`` calls after ``warmup`` (fewer, not below ``floor``, if over the budget)."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if first * (warmup + repeats) > TIME_BUDGET_S:  # slow: fewer passes
        warmup, repeats = 0, max(floor, min(repeats, int(TIME_BUDGET_S / max(first, 1e-9))))
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


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


#: ``ENLCN_CHANNELS_LAST=1``: the training steps of the bench run channels_last (a measurement option)
CHANNELS_LAST_ENV = "ENLCN_CHANNELS_LAST"


def build_train_step(model: str, profile: str, device: str, seed: int = 0) -> tuple[Callable[[], None], int]:
    """``(step, parameters)``: one training step of ``model`` under ``profile``'s settings as a closure.

    The step is the loss of Eq. 12 (L1 + ``lambda_cl`` · contrastive loss, when the model has one) on
    random LR/HR tensors of the profile's batch and patch shapes, backward, and an Adam step. With
    ``ENLCN_CHANNELS_LAST=1`` in the environment (:data:`CHANNELS_LAST_ENV`) the model and the tensors are
    channels_last instead of NCHW (the study trains NCHW; this measures what the layout would change).
    """
    import torch.nn.functional as F

    from .models import build_model, contrastive_loss, count_parameters, set_contrastive
    from .train import train_config

    torch.manual_seed(seed)
    cfg = train_config(profile, model=model)
    net = build_model(model, cfg.scale, cfg.preset, attention=cfg.attention).to(device).train()
    set_contrastive(net, True)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
    side = cfg.lr_patch
    lr = torch.rand(cfg.batch_size, 3, side, side, device=device)
    hr = torch.rand(cfg.batch_size, 3, side * cfg.scale, side * cfg.scale, device=device)
    if os.environ.get(CHANNELS_LAST_ENV, "0") == "1":
        net = net.to(memory_format=torch.channels_last)
        lr, hr = (t.contiguous(memory_format=torch.channels_last) for t in (lr, hr))

    def step() -> None:
        l1 = F.l1_loss(net(lr), hr)
        cl = contrastive_loss(net)
        loss = l1 if cl is None else l1 + cfg.lambda_cl * cl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, count_parameters(net)


def measure_train_step(
    model: str, profile: str, repeats: int, warmup: int, threads: int, device: str
) -> dict:
    """Time of one training step (:func:`build_train_step`) of ``model`` under ``profile``, peak memory of
    the first."""
    warm_allocator()
    torch.set_num_threads(threads)
    step, params = build_train_step(model, profile, device)
    cuda = device.startswith("cuda")
    first, peak = _first_call(step, cuda)
    times = _timed_calls(step, first, repeats, warmup, min(MODEL_MIN_REPEATS, repeats), cuda)
    return {
        "params": params,
        "train_status": "ok",
        "train_step_ms": statistics.median(times) * 1e3,
        "train_step_ms_min": min(times) * 1e3,
        "train_repeats": len(times),
        "train_peak_mem_mb": peak / 2**20,
    }


#: what ``--worker`` runs: spec["kind"] -> measurement
WORKERS: dict[str, Callable[..., dict]] = {"operator": measure, "train": measure_train_step}


def run_worker(kind: str, **spec) -> dict:
    """Run measurement ``kind`` (:data:`WORKERS`) with keywords ``spec`` in a fresh
    ``python -m enlcn.bench --worker`` process; its result row.

    Raises ``RuntimeError`` with the last line of the worker's stderr if it failed.
    """
    payload = json.dumps({"kind": kind, **spec})
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    proc = subprocess.run(
        [sys.executable, "-m", "enlcn.bench", "--worker", payload], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["(no output)"])[-1][:200])
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


# -- the contrastive loss: top-k vs full sort -----------------------------------------------------
def _sorted_row_terms(q_rows, k, form, rel, start, stop, b, hinge):
    """``contrastive._row_terms`` with a full descending sort of every row instead of ``topk``."""
    t = q_rows @ k.transpose(1, 2)
    top = torch.sort(t, dim=-1, descending=True).values[..., :stop]
    if form == "official":
        pos = top[..., :rel].exp().mean(-1)
        neg = top[..., start:stop].exp().mean(-1)
        return torch.relu(-torch.log(pos / (neg + 1e-6)) + b)
    term = -(torch.logsumexp(top[..., :rel], dim=-1) - torch.logsumexp(top[..., start:stop], dim=-1)) + b
    return torch.relu(term) if hinge else term


def contrastive_sorted(q, k, form="paper", n1=0.02, n2=0.08, b=1.0, hinge=False):
    """The loss of :func:`contrastive_loss` computed with full row sorts (same row chunks)."""
    from .attention import contrastive as cl

    bsz, n, _ = q.shape
    rel, start, stop = cl.contrastive_bands(n, form, n1, n2)
    rows = max(1, cl.CHUNK_ELEMENTS // n)
    terms = [
        _sorted_row_terms(q[:, i : i + rows], k, form, rel, start, stop, b, hinge) for i in range(0, n, rows)
    ]
    return torch.cat(terms, dim=1).mean()


def bench_contrastive(
    side: int = CONTRASTIVE_SIDE, repeats: int = 5, threads: int | None = None
) -> list[dict]:
    """Time the contrastive loss (both forms) with ``topk`` and with a full sort, ``N = side²``.

    ``topk`` is the reference path (:func:`~enlcn.attention.contrastive.contrastive_loss_reference`): its
    selected values must equal the full sort's exactly. The native row kernel is timed against it by
    ``--pipeline`` (same values to float rounding, tested in tests/test_contrastive.py).
    """
    import torch.nn.functional as F

    from .attention.contrastive import contrastive_loss_reference as contrastive_loss

    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    n = side * side
    q = F.normalize(torch.randn(1, n, 16, generator=gen), dim=-1) * math.sqrt(6)
    k = F.normalize(torch.randn(1, n, 16, generator=gen), dim=-1) * math.sqrt(6)
    rows = []
    with torch.inference_mode():
        for form in ("paper", "official"):
            values = {}
            for method, fn in (("topk", contrastive_loss), ("sort", contrastive_sorted)):
                fn(q, k, form)  # warm-up
                times = []
                for _ in range(max(1, repeats)):
                    start = time.perf_counter()
                    values[method] = fn(q, k, form)
                    times.append(time.perf_counter() - start)
                row = _row(f"contrastive-{form}-{method}", side, threads, "cpu", "ok")
                row.update(time_ms=statistics.median(times) * 1e3, time_ms_min=min(times) * 1e3)
                row.update(repeats=len(times), loss=float(values[method]))
                rows.append(row)
            same = bool(torch.equal(values["topk"], values["sort"]))
            for row in rows[-2:]:
                row["identical"] = same
    return rows


# -- ratios of the claims ---------------------------------------------------------------------------
def _time(df: pd.DataFrame, op: str, size: int) -> float:
    sel = df[(df.operator == op) & (df["size"] == size) & (df.status == "ok")]
    return float(sel.time_ms.iloc[0]) if len(sel) else float("nan")


def _mem(df: pd.DataFrame, op: str, size: int) -> float:
    sel = df[(df.operator == op) & (df["size"] == size) & (df.status == "ok")]
    return float(sel.peak_mem_mb.iloc[0]) if len(sel) else float("nan")


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


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


def paired_ratio(paired: pd.DataFrame, num: str, den: str) -> float:
    """Median over rounds of ``time(num) / time(den)`` of :func:`paired_times`' table."""
    wide = paired.pivot(index="round", columns="operator", values="time_ms")
    return float((wide[num] / wide[den]).median())


def model_ratios(
    df: pd.DataFrame, preset: str, scale: int, size: int, paired: pd.DataFrame | None = None
) -> list[tuple[str, float, str]]:
    """ENLCN forward / EDSR forward on the same backbone (target ≤ 1.05).

    With ``paired`` (:func:`paired_times`) the target ratio is the median of per-round ratios of the
    interleaved passes, and the ratio of the separate processes' medians is reported as ``info``.
    """
    enlcn, edsr = f"model-enlcn-{preset}-x{scale}", f"model-edsr-{preset}-x{scale}"
    name = f"enlcn_over_edsr_{preset}_x{scale}@{size}"
    separate = _div(_time(df, enlcn, size), _time(df, edsr, size))
    if paired is None or paired.empty:
        return [(name, separate, "<= 1.05")]
    return [
        (name, paired_ratio(paired, enlcn, edsr), "<= 1.05"),
        (f"{name}_separate_processes", separate, "info"),
    ]


def _check(value: float, target: str) -> str:
    if target == "info" or math.isnan(value):
        return ""
    op, bound = target.split()
    ok = {"<=": value <= float(bound), ">=": value >= float(bound), "==": value == float(bound)}[op]
    return "PASS" if ok else "FAIL"


def ratio_line(name: str, value: float, target: str) -> str:
    """``ratio <name>: <value> (target <op> <bound>) PASS|FAIL`` (``info`` ratios carry no verdict)."""
    return f"ratio {name}: {value:.4g} (target {target}) {_check(value, target)}".rstrip()


RATIO_LINE = r"^ratio (\S+): (\S+) \(target ([^)]*)\)"


# -- the training pipeline: training step and inference of whole models ----------------------------
def pipeline_row(
    model: str, profile: str, size: int, repeats: int, warmup: int, threads: int, device: str, isolate: bool
) -> dict:
    """One row of the ``--pipeline`` table: ``model``'s training step under ``profile`` and its
    whole-image inference at ``size×size`` (each in a fresh process when ``isolate``)."""
    from .train import train_config

    cfg = train_config(profile, model=model)
    row = dict.fromkeys(PIPELINE_COLUMNS, float("nan"))
    row.update(model=model, profile=profile, preset=cfg.preset, scale=cfg.scale, batch_size=cfg.batch_size)
    row.update(lr_patch=cfg.lr_patch, infer_size=size, threads=threads, device=device, train_repeats=0)
    spec = dict(model=model, profile=profile, repeats=repeats, warmup=warmup, threads=threads, device=device)
    try:
        row.update(run_worker("train", **spec) if isolate else measure_train_step(**spec))
    except RuntimeError as exc:
        row["train_status"] = f"error: {exc}"
    op = f"model-{model}-{cfg.preset}-x{cfg.scale}"
    infer = run_bench([size], [op], repeats, warmup, threads, device, isolate=isolate).iloc[0]
    row.update(infer_status=infer.status, infer_ms=infer.time_ms, infer_peak_mem_mb=infer.peak_mem_mb)
    row["images_per_s"] = _div(1e3, infer.time_ms)
    return row


def pipeline_ratios(df: pd.DataFrame) -> list[tuple[str, float, str]]:
    """Training step and inference time of every model over EDSR's, from this run's table (``info``)."""
    t = df.set_index("model")
    out = []
    for model in t.index.drop("edsr", errors="ignore"):
        slug, size = model.replace("+", "_"), int(t.infer_size[model])
        train = _div(t.train_step_ms[model], t.train_step_ms.get("edsr", math.nan))
        infer = _div(t.infer_ms[model], t.infer_ms.get("edsr", math.nan))
        out.append((f"{slug}_over_edsr_train_step", train, "info"))
        out.append((f"{slug}_over_edsr_infer@{size}", infer, "info"))
    return out


#: issue 14's targets: training step over EDSR's, interleaved in one process
TRAIN_STEP_TARGETS = {"enlcn": "<= 1.30", "edsr+enla": "<= 1.05", "edsr+nlsa": "<= 3.0", "edsr+nla": "<= 1.8"}


def paired_train_steps(
    models: Sequence[str], profile: str, rounds: int, warmup: int, threads: int, device: str
) -> pd.DataFrame:
    """Interleaved training steps of ``models`` in this process (order reversed every other round, as
    :func:`paired_times`); rows ``round, operator, time_ms``.

    The allocator is warmed first (:func:`warm_allocator`). Without it every step page-faults its large
    blocks back from the OS, a cost that does not grow with the model and so pulls every ratio towards 1:
    measured at the cpu profile on one thread, EDSR + ENLA / EDSR read 0.94 (and ENLCN 1.19, NLA 1.87)
    against 1.03 (1.31, 2.13) with it.
    """
    warm_allocator()
    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    steps = {m: build_train_step(m, profile, device)[0] for m in models}
    for _ in range(warmup):
        for step in steps.values():
            step()
    rows = []
    for r in range(rounds):
        for name in models if r % 2 == 0 else models[::-1]:
            sync()
            start = time.perf_counter()
            steps[name]()
            sync()
            rows.append({"round": r, "operator": name, "time_ms": (time.perf_counter() - start) * 1e3})
    return pd.DataFrame(rows)


def paired_contrastive(
    profile: str, rounds: int, threads: int, device: str, modules: int = 5
) -> pd.DataFrame:
    """Interleaved forward+backward of the contrastive loss of ``modules`` ENLCA modules at the profile's
    training shape (B = batch, N = lr_patch²), by the reference (``torch.topk`` + autograd) and by the
    default path (the native row kernel on the CPU); rows ``round, operator, time_ms``."""
    import torch.nn.functional as F

    from .attention import contrastive as C
    from .models import model_config
    from .train import train_config

    warm_allocator()
    torch.set_num_threads(threads)
    cfg = train_config(profile, model="enlcn")
    opts = model_config("enlcn", cfg.scale, cfg.preset).attention_options
    c = model_config("enlcn", cfg.scale, cfg.preset).n_feats // 4  # ENLCA's reduction 4
    g = torch.Generator().manual_seed(0)
    shape = (cfg.batch_size, cfg.lr_patch**2, c)
    amp = float(opts.get("k", 6.0)) ** 0.5
    qs = [F.normalize(torch.randn(shape, generator=g), dim=-1).mul(amp).to(device) for _ in range(modules)]
    ks = [F.normalize(torch.randn(shape, generator=g), dim=-1).mul(amp).to(device) for _ in range(modules)]
    fns = {"contrastive-reference": C.contrastive_loss_reference, "contrastive-default": C.contrastive_loss}

    def run(fn) -> None:
        for q, k in zip(qs, ks, strict=True):
            q, k = q.clone().requires_grad_(True), k.clone().requires_grad_(True)
            fn(q, k, "official").backward()

    rows = []
    for r in range(rounds + 1):  # round 0 warms up (and builds the kernel)
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            start = time.perf_counter()
            run(fns[name])
            if r:
                rows.append({"round": r, "operator": name, "time_ms": (time.perf_counter() - start) * 1e3})
    return pd.DataFrame(rows)


def pipeline_targets(
    df: pd.DataFrame, steps: pd.DataFrame, contrastive: pd.DataFrame
) -> list[tuple[str, float, str]]:
    """Issue 14's targets from one run: interleaved training-step ratios over EDSR, contrastive loss
    reference / default, peak training memory ENLCN / EDSR (first steps, separate processes)."""
    out = []
    for model in dict.fromkeys(steps.operator):
        if model != "edsr":
            ratio = paired_ratio(steps, model, "edsr")
            target = TRAIN_STEP_TARGETS.get(model, "info")
            out.append((f"{model.replace('+', '_')}_over_edsr_train_step_interleaved", ratio, target))
    if not contrastive.empty:
        speed = paired_ratio(contrastive, "contrastive-reference", "contrastive-default")
        out.append(("contrastive_loss_reference_over_default_fwd_bwd_5_modules", speed, ">= 3"))
    t = df.set_index("model")
    if {"enlcn", "edsr"} <= set(t.index):
        mem = _div(t.train_peak_mem_mb["enlcn"], t.train_peak_mem_mb["edsr"])
        out.append(("enlcn_over_edsr_train_peak_mem", mem, "<= 1.5"))
    return out


def _attention_modules(model: str, profile: str) -> tuple[TrainConfig, list[torch.nn.Module]]:
    """``(training config, attention modules)`` of ``model`` as ``profile`` builds it (for the floors)."""
    from .models import build_model
    from .train import train_config

    cfg = train_config(profile, model=model)
    net = build_model(model, cfg.scale, cfg.preset, attention=cfg.attention)
    return cfg, list(net.attention_modules())


def nla_step_gflop(profile: str) -> float:
    """Matrix-product GFLOP of the NLA modules in one EDSR + NLA training step under ``profile``: per image
    and module ``2N²(4d + 3d_v)`` — forward ``QKᵀ`` and ``PV``; backward ``QKᵀ`` again (the blocked path
    recomputes it), ``dV``, ``dP``, ``dQ``, ``dK`` (:mod:`enlcn.attention.blocked`)."""
    cfg, modules = _attention_modules("edsr+nla", profile)
    n = cfg.lr_patch**2
    flop = 0.0
    for m in modules:
        d, dv = m.match1[0].out_channels, m.assembly[0].out_channels
        flop += cfg.batch_size * 2 * n * n * (4 * d + 3 * dv)
    return flop / 1e9


def sgemm_gflops(threads: int, device: str, size: int = 1024, repeats: int = 5) -> float:
    """Measured float32 ``torch.mm`` rate (GFLOP/s, median of ``repeats``) of ``size``³ products: on the CPU
    MKL's sgemm, the rate of every PyTorch-level product (the Python training paths)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    times = _timed_calls(lambda: torch.mm(a, b), 0.0, repeats, 1, repeats, device.startswith("cuda"))
    return 2 * size**3 / statistics.median(times) / 1e9


def kernel_gflops(threads: int, size: int = 256, repeats: int = 40) -> float | None:
    """The rate (GFLOP/s, all threads) of the products the native exact-attention kernel runs (oneDNN's
    brgemm where usable; :mod:`enlcn.attention.native`), on ``size``³ blocks; ``None`` without the kernel.
    On this AMD EPYC it is 2–3× MKL's sgemm rate (:func:`sgemm_gflops`), which is why the native NLA and NLSA
    paths run below a floor computed at the sgemm rate."""
    ext = native.load_attention()
    if ext is None:
        return None
    torch.set_num_threads(threads)
    return float(ext.product_gflops(size, repeats))


def nlsa_step_gflop(profile: str) -> float:
    """Matrix-product GFLOP of the NLSA modules in one EDSR + NLSA training step under ``profile``: per image,
    module and hash round, ``K`` chunks of ``S`` queries against their ``3S``-key windows,
    ``2·K·S·3S·(4c + 3C)`` — the same five products as NLA's (:func:`nla_step_gflop`) with the scores
    recomputed in backward (:func:`~enlcn.attention.blocked.window_attention`); ``K = ⌈L / S⌉``."""
    cfg, modules = _attention_modules("edsr+nlsa", profile)
    length = cfg.lr_patch**2
    flop = 0.0
    for m in modules:
        s, n_hashes = m.options.chunk_size, m.options.n_hashes
        c, dv = m.conv_match.out_channels, m.conv_assembly.out_channels
        chunks = -(-length // s)
        flop += cfg.batch_size * n_hashes * 2 * chunks * s * 3 * s * (4 * c + 3 * dv)
    return flop / 1e9


def enla_step_gflop(profile: str) -> float:
    """Matrix-product GFLOP of the ENLA modules in one EDSR + ENLA training step under ``profile``: per image
    and module ``2N·[3C(2c + C) + 6mC + 4cm]`` — the stacked θ/δ/ψ 1×1 embedding forward and its two
    backward products; the features of Q and K (forward, and their input gradients); ``φ_Kᵀ V`` and
    ``φ_Q C`` forward and their four backward products (:mod:`enlcn.attention.enla_autograd`)."""
    cfg, modules = _attention_modules("edsr+enla", profile)
    n = cfg.lr_patch**2
    flop = 0.0
    for mod in modules:
        c, ch, m = mod.theta.out_channels, mod.psi.out_channels, mod.options.m
        flop += cfg.batch_size * 2 * n * (3 * ch * (2 * c + ch) + 6 * m * ch + 4 * c * m)
    return flop / 1e9


#: the models whose training step has a product floor: model -> (its attention's GFLOP per step, slug)
FLOOR_MODELS: dict[str, tuple[Callable[[str], float], str]] = {
    "edsr+enla": (enla_step_gflop, "enla"),
    "edsr+nla": (nla_step_gflop, "nla"),
    "edsr+nlsa": (nlsa_step_gflop, "nlsa"),
}


def achieved_gflops(gflop: float, model_ms: float, edsr_ms: float) -> float:
    """GFLOP/s of the attention products over the time the model's step adds to EDSR's, or NaN when it adds
    none: the step can be no slower than EDSR's when the modules' token-major output lets the convolutions
    after them run channels_last (faster), and then there is no time to divide by."""
    added_s = (model_ms - edsr_ms) / 1e3
    return gflop / added_s if added_s > 0 else float("nan")


def attention_floors(
    steps: pd.DataFrame, profile: str, threads: int, device: str
) -> list[tuple[str, float, str]]:
    """What ENLA's, NLA's and NLSA's training steps could be at best: EDSR's step plus the modules' products
    (:data:`FLOOR_MODELS`) at the best measured product rate (``torch.mm``'s, :func:`sgemm_gflops`, or the
    native kernel's brgemm, :func:`kernel_gflops`), over EDSR's; and the rate the modules reach now (GFLOP
    over the step time they add to EDSR's). ``info``."""
    present = [m for m in FLOOR_MODELS if m in set(steps.operator)]
    if "edsr" not in set(steps.operator) or not present:
        return []
    med = steps.groupby("operator")["time_ms"].median()
    sgemm, kernel = sgemm_gflops(threads, device), kernel_gflops(threads) if device == "cpu" else None
    rate = max(sgemm, kernel or 0.0)
    out = []
    for model in present:
        count, slug = FLOOR_MODELS[model]
        gflop = count(profile)
        floor = (med["edsr"] + gflop / rate * 1e3) / med["edsr"]
        achieved = achieved_gflops(gflop, med[model], med["edsr"])
        out += [
            (f"edsr_{slug}_over_edsr_train_step_floor_at_product_rate", floor, "info"),
            (f"{slug}_attention_gflop_per_step", gflop, "info"),
            (f"{slug}_attention_achieved_gflops", achieved, "info"),
        ]
    out += [("sgemm_gflops", sgemm, "info")]
    return out + ([("native_kernel_gflops", kernel, "info")] if kernel else [])


# -- provenance and output -------------------------------------------------------------------------
#: what :func:`enlca_fast_path` reports for runs recorded before the native kernel existed
PRE_NATIVE_PATH = "python (before the native kernel existed)"


def start_provenance(profile: str | None, parameters: dict, device: str, threads: int) -> Provenance:
    """The run's :class:`~enlcn.provenance.Provenance` (its load average is the one before the run).

    Every mode records which ENLCA inference path it timed (``parameters.enlca_fast_path``, from
    :func:`enlcn.attention.native.status`) and which code trains ENLA/ENLCA's attention
    (``parameters.enla_training_path``, :func:`enlcn.attention.native.enla_train_status`); both build their
    kernel if needed, before any timing.
    """
    parameters = {
        **parameters,
        "enlca_fast_path": native.status(),
        "enla_training_path": native.enla_train_status(),
    }
    return Provenance("enlcn.bench", profile, parameters, seed=0, hardware=hardware(device, threads))


def enlca_fast_path(meta: dict) -> str:
    """The ENLCA inference path a run (a JSON of :func:`read_results`) timed, as recorded."""
    return meta["provenance"].get("parameters", {}).get("enlca_fast_path", PRE_NATIVE_PATH)


def write_results(
    out: Path, table: pd.DataFrame, prov: Provenance, rat: list[tuple[str, float, str]]
) -> None:
    """``table`` as CSV at ``out`` and ``{"provenance", "ratios"}`` as JSON beside it (both atomic)."""
    write_csv_atomic(out, table)
    meta = {
        "provenance": prov.finish().to_dict(),
        "ratios": {name: {"value": value, "target": target} for name, value, target in rat},
    }
    write_json_atomic(out.with_suffix(".json"), meta)
    print(f"wrote {out} and {out.with_suffix('.json')}")


def read_results(json_path: str | os.PathLike) -> tuple[dict, pd.DataFrame]:
    """The JSON and the CSV beside it of one run; ``ValueError`` naming the command to re-run if the JSON
    has the layout from before the shared provenance record."""
    path = Path(json_path)
    meta = json.loads(path.read_text())
    if "provenance" not in meta:
        mode = next((f" --{m}" for m in ("models", "pipeline") if path.stem.endswith(f"-{m}")), "")
        raise ValueError(
            f"{path} has the old benchmark layout (no 'provenance' record): "
            f"re-run `python -m enlcn.bench{mode}` to regenerate it"
        )
    return meta, pd.read_csv(path.with_suffix(".csv"))


def run_summary(meta: dict) -> str:
    """One line saying where and when a run (a JSON of :func:`read_results`) was measured."""
    prov, hw = meta["provenance"], meta["provenance"]["hardware"]
    where = hw["gpu"] if hw["device"].startswith("cuda") and "gpu" in hw else hw["cpu"]
    path = enlca_fast_path(meta)
    return (
        f"{where} ({hw['device']}, {hw['torch_threads']} threads), torch {prov['versions']['torch']}, "
        f"commit {prov['commit']}, {prov['started']}, load average {hw['load_average_1_5_15min']}, "
        f"ENLCA fast path: {path}" + _switches_text(prov["parameters"].get("path_switches") or {})
    )


def _switches_text(switches: dict) -> str:
    """``"; reference training paths: ENLCN_NATIVE=0 …"`` for a run with path switches set, else ``""``."""
    if not switches:
        return ""
    return "; reference training paths: " + " ".join(f"{k}={v}" for k, v in switches.items())


def _print_ratios(rat: list[tuple[str, float, str]]) -> None:
    print("\nratios (this run):")
    for name, value, target in rat:
        print(ratio_line(name, value, target))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from .profiles import PROFILES

    p = argparse.ArgumentParser(prog="enlcn.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="input sides (default 50 100 150 200 300)"
    )
    p.add_argument(
        "--operators",
        nargs="+",
        default=None,
        choices=OPERATORS,
        metavar="OP",
        help=f"operators (default all: {', '.join(OPERATORS)})",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed passes (median; default 10)")
    p.add_argument("--warmup", type=int, default=None, help="untimed passes first (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--nla-cap-gb", type=float, default=4.0, help="skip NLA when one N×N matrix exceeds this")
    p.add_argument(
        "--out", default=None, help="CSV path (default results/bench/<device>.csv); JSON beside it"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny run for tests: 16×16, 1 repeat, no warm-up (--pipeline: the quick profile)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process (faster; peak memory then not per operator on the CPU)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--models",
        action="store_true",
        help="whole networks instead of operators: ENLCN vs EDSR forward at --model-size, and one global "
        "ENLCN pass at --global-size (writes <out stem>-models.csv/json)",
    )
    mode.add_argument(
        "--explore",
        action="store_true",
        help="seconds of one correlation-map explorer update (cpu-preset ENLCN, 128² LR; target < 1 s)",
    )
    mode.add_argument(
        "--pipeline",
        action="store_true",
        help=f"training step (under --profile) and inference at --model-size of {', '.join(PIPELINE_MODELS)} "
        "(writes <out stem>-pipeline.csv/json)",
    )
    p.add_argument("--preset", default="paper", help="model preset for --models (default paper)")
    p.add_argument(
        "--profile",
        default=None,
        choices=sorted(PROFILES),
        help="training profile for --pipeline (default cpu; quick with --quick)",
    )
    p.add_argument(
        "--model-size", type=int, default=None, help=f"LR side of whole-model passes (default {MODEL_SIZE})"
    )
    p.add_argument("--global-size", type=int, default=512, help="LR side of the global pass (0: skip)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_models(args: argparse.Namespace, threads: int, device: str, out: Path) -> int:
    """ENLCN/EDSR forward ratio and one whole-image ENLCN ×4 pass (time, peak memory), same run."""
    scale = 4
    ops = [f"model-edsr-{args.preset}-x{scale}", f"model-enlcn-{args.preset}-x{scale}"]
    repeats = args.repeats if args.repeats is not None else 10  # interleaved rounds
    warmup = args.warmup if args.warmup is not None else 1
    prov = start_provenance(None, _parameters(args, repeats=repeats, warmup=warmup), device, threads)
    size = args.model_size
    floor = min(MODEL_MIN_REPEATS, repeats)  # separate processes: peak memory and a standalone time each
    df = run_bench([size], ops, floor, warmup, threads, device, isolate=not args.in_process, progress=print)
    print(f"interleaved: {repeats} rounds of {' / '.join(ops)} at {size}²", flush=True)
    paired = paired_times(ops, size, repeats, warmup, threads, device)
    write_csv_atomic(out.with_name(out.stem + "-models-paired.csv"), paired)
    if args.global_size:
        g = run_bench(
            [args.global_size], ops[1:], 1, 0, threads, device, isolate=not args.in_process, progress=print
        )
        df = pd.concat([df, g], ignore_index=True)
    print(df.drop(columns=["height", "width", "threads", "device"]).to_string(index=False))
    rat = model_ratios(df, args.preset, scale, size, paired)
    if args.global_size:
        peak_gb = float(df[df["size"] == args.global_size].peak_mem_mb.iloc[0]) / 1024
        rat.append((f"enlcn_{args.preset}_x{scale}_global_pass@{args.global_size}_peak_gb", peak_gb, "<= 24"))
    _print_ratios(rat)
    write_results(out.with_name(out.stem + "-models.csv"), df, prov, rat)
    return 0


def run_pipeline(args: argparse.Namespace, threads: int, device: str, out: Path) -> int:
    """Training step time and inference throughput / peak memory of :data:`PIPELINE_MODELS`."""
    from .train import train_config

    profile = args.profile or ("quick" if args.quick else "cpu")
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    size = args.model_size
    cfg = train_config(profile)
    params = _parameters(args, profile=profile, preset=cfg.preset, repeats=repeats, warmup=warmup)
    prov = start_provenance(profile, params, device, threads)
    print(
        f"enlcn bench --pipeline: profile={profile} (preset {cfg.preset}, ×{cfg.scale}, batch "
        f"{cfg.batch_size} of {cfg.lr_patch}² LR patches), inference at {size}², device={device} "
        f"threads={threads} repeats={repeats} warmup={warmup}"
    )
    rows = []
    for model in PIPELINE_MODELS:
        rows.append(pipeline_row(model, profile, size, repeats, warmup, threads, device, not args.in_process))
        r = rows[-1]
        print(f"{model:>16} train {r['train_step_ms']:10.1f} ms  infer {r['images_per_s']:8.2f} images/s")
    df = pd.DataFrame(rows, columns=list(PIPELINE_COLUMNS))
    shown = ["model", "params", "train_step_ms", "train_peak_mem_mb", "infer_ms", "images_per_s"]
    shown += ["infer_peak_mem_mb", "train_status", "infer_status"]
    with pd.option_context("display.width", 200):
        print(df[shown].to_string(index=False))
    rounds = max(repeats, 1)
    print(f"interleaved training steps ({rounds} rounds) and contrastive loss, in this process …")
    steps = paired_train_steps(list(PIPELINE_MODELS), profile, rounds, warmup, threads, device)
    contrastive = paired_contrastive(profile, rounds, threads, device)
    paired = pd.concat([steps, contrastive], ignore_index=True)
    write_csv_atomic(out.with_name(out.stem + "-pipeline-paired.csv"), paired)
    rat = pipeline_targets(df, steps, contrastive) + attention_floors(steps, profile, threads, device)
    rat += pipeline_ratios(df)
    _print_ratios(rat)
    write_results(out.with_name(out.stem + "-pipeline.csv"), df, prov, rat)
    return 0


def run_explore(args: argparse.Namespace, threads: int, out: Path) -> int:
    """Median seconds of one explorer update (:func:`enlcn.explore.explore`) on a ``--model-size`` LR image:
    a new image (forward pass + maps), a new query on the same image, and a live recompute of the
    estimate with other k / m / features (issue 11's target: under a second at 128²)."""
    import numpy as np

    from .correlation import attention_inputs
    from .explore import Knobs, explore
    from .models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    size = args.model_size
    model = build_model("enlcn", 4, "quick" if args.quick else "cpu").eval()
    lr = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 7)
    params = _parameters(args, repeats=repeats, model_size=size)
    prov = start_provenance(None, params, "cpu", threads)
    inputs = attention_inputs(model, lr)
    cases = {
        "new image (forward + maps)": lambda: explore(model, lr, (size // 2, size // 3), 2),
        "new query": lambda: explore(model, lr, (size // 3, size // 2), 2, Knobs(), None, inputs),
        "k, m, feature draw recomputed": lambda: explore(
            model, lr, (size // 3, size // 2), 2, Knobs(k=2.0, m=128, seed=1, orthogonal=False), None, inputs
        ),
    }
    rows = []
    for name, fn in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        rows.append({"case": name, "size": size, "median_s": statistics.median(times), "repeats": repeats})
        print(f"{name:>32}: {rows[-1]['median_s']:.3f} s (median of {repeats})")
    df = pd.DataFrame(rows)
    worst = float(df.median_s.max())
    rat = [(f"explore_update_s@{size}", worst, "<= 1.0")]
    _print_ratios(rat)
    write_results(out.with_name(out.stem + "-explore.csv"), df, prov, rat)
    return 0


#: the switches back to the reference (autograd) training paths; a run records the ones set
PATH_SWITCHES = ("ENLCN_NATIVE", "ENLCN_FUSED_ENLA", "ENLCN_BLOCKED", CHANNELS_LAST_ENV)


def _parameters(args: argparse.Namespace, **resolved) -> dict:
    """The run's arguments with the defaults it resolved (the provenance record's ``parameters``), and the
    path switches set in the environment (``path_switches``: empty when every fast path is on)."""
    switches = {k: os.environ[k] for k in PATH_SWITCHES if k in os.environ}
    return {k: v for k, v in vars(args).items() if k != "worker"} | resolved | {"path_switches": switches}


def _warn_if_loaded() -> None:
    load = load_average()
    if load and load[0] > 0.25 * (os.cpu_count() or 1):
        print(f"warning: load average {load[0]} before the run: other processes share the CPU and skew times")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:  # one measurement in this fresh process; prints a JSON line
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec.pop("kind")](**spec)))
        return 0
    quick = args.quick
    sizes = args.sizes or (QUICK_SIZES if quick else DEFAULT_SIZES)
    repeats = args.repeats if args.repeats is not None else (1 if quick else 10)
    warmup = args.warmup if args.warmup is not None else (0 if quick else 2)
    threads = args.threads or torch.get_num_threads()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.model_size = args.model_size or (QUICK_SIZES[0] if quick else MODEL_SIZE)
    operators = tuple(args.operators or OPERATORS)
    out = Path(args.out or f"results/bench/{device.split(':')[0]}.csv")
    _warn_if_loaded()
    if args.models:
        return run_models(args, threads, device, out)
    if args.pipeline:
        return run_pipeline(args, threads, device, out)
    if args.explore:
        return run_explore(args, threads, out)
    params = _parameters(args, sizes=list(sizes), repeats=repeats, warmup=warmup)
    prov = start_provenance(None, params, device, threads)
    print(
        f"enlcn bench: device={device} threads={threads} sizes={list(sizes)} "
        f"repeats={repeats} warmup={warmup}; ENLCA fast path: {prov.parameters['enlca_fast_path']}"
    )
    df = run_bench(
        sizes,
        operators,
        repeats,
        warmup,
        threads,
        device,
        args.nla_cap_gb,
        not args.in_process,
        progress=print,
    )
    contrastive = bench_contrastive(CONTRASTIVE_SIDE, repeats=max(1, min(repeats, 5)), threads=threads)
    full = pd.concat([df, pd.DataFrame(contrastive)], ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_colwidth", 70):
        print(full.drop(columns=["height", "width", "threads", "device"]).to_string(index=False))
    paired = None
    pair = ["conv3x3", "enlca-m128-fast"]
    if set(pair) <= set(operators):  # the ≤ 1.0 target: interleaved calls in one process
        pair += [op for op in (PYTHON_OPERATOR, *FLOOR_OPERATORS) if op in operators]
        at, rounds = ratio_size(df), max(20, 5 * repeats)
        print(f"interleaved: {rounds} rounds of {' / '.join(pair)} at {at}²", flush=True)
        paired = paired_times(pair, at, rounds, warmup, threads, device)
        write_csv_atomic(out.with_name(out.stem + "-paired.csv"), paired)
    rat = ratios(df, contrastive, paired)
    _print_ratios(rat)
    write_results(out, full, prov, rat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
