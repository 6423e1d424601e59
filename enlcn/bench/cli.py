"""Running time and peak memory of the attention operators (paper Table 4 and appendix Table 5).

``python -m enlcn.bench [--sizes 50 100 150 200 300] [--repeats 10] [--warmup 2] [--threads T]
[--device cpu|cuda] [--out results/bench/<device>.csv] [--quick] [--in-process]
[--models [--preset paper] | --pipeline [--profile cpu]] [--model-size 128]``

Printed: the table, the ratios of the efficiency claims measured in this same run, and the contrastive
loss with a partial selection (``topk``, what :func:`~enlcn.attention.contrastive.contrastive_loss` does)
vs a full sort of every row at ``N = 48²``. Written: the table as CSV (atomically) and beside it a JSON
``{"provenance": <enlcn.provenance.Provenance record>, "ratios": {name: {"value", "target"}}}``.

``--models`` (:mod:`enlcn.bench.networks`), ``--pipeline`` (:mod:`enlcn.bench.pipeline`) and ``--explore``
(:mod:`enlcn.bench.explorer`) time whole models instead. ``--quick`` makes every mode tiny (for tests).
The hidden ``--worker <json>`` runs one measurement of :data:`WORKERS` in this fresh process and prints its
row as a JSON line (:func:`~enlcn.bench.timing.run_worker` starts it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..provenance import write_csv_atomic
from .contrastive import CONTRASTIVE_SIDE, bench_contrastive
from .explorer import run_explore
from .machine import capped_exec
from .networks import run_models
from .operators import (
    DEFAULT_SIZES,
    FLOOR_OPERATORS,
    OPERATORS,
    PIPELINE_MODELS,
    PYTHON_OPERATOR,
    QUICK_SIZES,
    measure,
    paired_times,
    ratio_size,
    ratios,
    run_bench,
)
from .pipeline import measure_train_step, run_pipeline
from .report import _parameters, _print_ratios, _warn_if_loaded, start_provenance, write_results

MODEL_SIZE = 128
#: what ``--worker`` runs: spec["kind"] -> measurement
WORKERS: dict[str, Callable[..., dict]] = {"operator": measure, "train": measure_train_step}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from ..profiles import PROFILES

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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:  # one measurement in this fresh process; prints a JSON line
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec.pop("kind")](**spec)))
        return 0
    capped_exec(sys.argv[1:] if argv is None else argv)  # ENLCN_ISA below the CPU's best: libraries too
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
