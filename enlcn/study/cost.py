"""What the grid costs: CPU-hours of every run of an experiment from measured training-step times.

A run's cost is its steps times the training step of its kind of model, measured by ``enlcn bench
--pipeline --threads 1`` at the profile's shapes (one thread: how the study trains, two processes side by
side). Measured once with every fast training path on and once with the reference (autograd) paths
(``ENLCN_NATIVE=0 ENLCN_FUSED_ENLA=0 ENLCN_BLOCKED=0``), the two estimates are the grid's cost after and
before issue 14's work. Runs already trained are reported from their own records (``cpu_time_s``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..provenance import REPO
from .files import is_done, load_summary
from .registry import Run, get_experiment


def bench_model(run: Run) -> str:
    """The ``enlcn bench --pipeline`` model whose step time stands for ``run``'s: its own model, except
    that ENLCA modules without the contrastive loss cost what ENLA does (``edsr+enla``) and with it what
    ENLCN does (``enlcn``). Options that do not change the step much (k, n1/n2, variant) are ignored;
    ``m`` is (m = 16 or 128 against the preset's 32: an estimate)."""
    attention = dict(run.attention)
    if run.model == "edsr+enlca":
        return "edsr+enla" if attention.get("contrastive", True) is False else "enlcn"
    return run.model


def step_seconds(pipeline_csv: str | Path) -> pd.Series:
    """Median training step (seconds) per model of one ``--pipeline`` result table."""
    table = pd.read_csv(pipeline_csv)
    return table.set_index("model")["train_step_ms"] / 1e3


def grid_cost(profile: str, steps: pd.Series, experiment: str = "grid", root: Path = REPO) -> pd.DataFrame:
    """Per run of ``experiment`` under ``profile``: the bench model standing for it, its steps, the estimated
    CPU-hours (``steps × step time``) and, for runs already trained, the CPU-hours their sessions recorded."""
    rows = []
    for run in get_experiment(experiment):
        model, total = bench_model(run), run.config(profile).total_steps
        recorded = None
        if is_done(profile, run, root):
            sessions = load_summary(profile, run, root).get("sessions", [])
            cpu = [s.get("cpu_time_s") for s in sessions]
            recorded = sum(cpu) / 3600 if cpu and None not in cpu else None
        rows.append(
            {
                "run": run.name,
                "model": run.model,
                "bench model": model,
                "steps": total,
                "estimated CPU-h": total * float(steps.get(model, float("nan"))) / 3600,
                "recorded CPU-h": recorded,
            }
        )
    return pd.DataFrame(rows)
