"""``--models``: ENLCN vs EDSR forward at ``--model-size`` and one global ENLCN pass (``<out stem>-models``).

Each model is first measured in its own process (peak memory, a few passes); the ratio then comes from
``--repeats`` interleaved rounds of both models in one process (:func:`~enlcn.bench.operators.paired_times`,
per-round times in ``<out stem>-models-paired.csv``): the two differ by a few percent, less than the drift
between processes measured minutes apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..provenance import write_csv_atomic
from .operators import _time, paired_times, run_bench
from .report import _parameters, _print_ratios, start_provenance, write_results
from .timing import MODEL_MIN_REPEATS, _div, paired_ratio


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
