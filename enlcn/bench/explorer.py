"""``--explore``: seconds of one correlation-map explorer update (:func:`enlcn.explore.explore`) on a
cpu-preset ENLCN at ``--model-size`` LR (issue 11's target: under a second at 128²), written to
``<out stem>-explore``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from .report import _parameters, _print_ratios, start_provenance, write_results


def run_explore(args: argparse.Namespace, threads: int, out: Path) -> int:
    """Median seconds of one explorer update (:func:`enlcn.explore.explore`) on a ``--model-size`` LR image:
    a new image (forward pass + maps), a new query on the same image, and a live recompute of the
    estimate with other k / m / features (issue 11's target: under a second at 128²)."""
    import numpy as np

    from ..correlation import attention_inputs
    from ..explore import Knobs, explore
    from ..models import build_model

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
