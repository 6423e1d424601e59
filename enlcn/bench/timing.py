"""Shared timing and memory measurement of the bench: one call's time and peak memory, timed calls, a
measurement in a fresh worker process, the ratio of interleaved rounds.

Peak memory of one call (:func:`_first_call`): on the CPU the peak resident set is reset
(``/proc/self/clear_refs``) before it, and the peak reached during the call (``VmHWM``) minus the resident
set before it is reported (fallback: ``ru_maxrss`` delta); on CUDA ``torch.cuda.max_memory_allocated``
minus the allocation before. Times (:func:`_timed_calls`) are the median of ``repeats`` calls after
``warmup`` calls, with ``torch.cuda.synchronize`` on CUDA; slow calls get fewer repeats
(:data:`TIME_BUDGET_S`; whole models not below :data:`MODEL_MIN_REPEATS`). A measurement runs in a FRESH
``python -m enlcn.bench --worker`` process (:func:`run_worker`), so that its peak memory is its own. A ratio
of two things timed in interleaved rounds in one process (:func:`paired_ratio`) is the median of the
per-round ratios, so that the drift of a shared machine between two processes minutes apart does not enter it.

Imports nothing else of :mod:`enlcn.bench`: the other modules build on this one.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import pandas as pd
import torch

#: seconds budget does not cut model passes below this many repeats (their ratio needs a median)
MODEL_MIN_REPEATS = 3
#: at most this many seconds of timed passes per operator and size (slow operators get fewer repeats)
TIME_BUDGET_S = 6.0


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


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def paired_ratio(paired: pd.DataFrame, num: str, den: str) -> float:
    """Median over rounds of ``time(num) / time(den)`` of :func:`paired_times`' table."""
    wide = paired.pivot(index="round", columns="operator", values="time_ms")
    return float((wide[num] / wide[den]).median())
