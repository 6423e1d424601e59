"""Where a run's files live and how they are read back: folders, done-ness, scores, summaries, weights.

``runs/<profile>/<run>/`` holds what resuming needs (checkpoints, step log; not committed);
``results/<profile>/study/<run>/`` what the book reads (config, scores, curves, provenance, weights).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..models.checkpoints import read_checkpoint
from ..provenance import REPO
from ..train import TrainConfig
from .registry import Run, get_run, unique_runs


def run_dir(profile: str, run: Run, root: Path = REPO) -> Path:
    return root / "runs" / profile / run.name


def result_dir(profile: str, run: Run, root: Path = REPO) -> Path:
    return root / "results" / profile / "study" / run.name


def is_done(profile: str, run: Run, root: Path = REPO) -> bool:
    """True if ``run``'s results exist and were made with the config this code gives it now."""
    res = result_dir(profile, run, root)
    if not (res / "summary.json").exists() or not (res / "scores.csv").exists():
        return False
    saved = json.loads((res / "config.json").read_text())
    current = json.loads(json.dumps(asdict(run.config(profile))))
    # a field added to TrainConfig after the run was trained is absent from its config.json: the run
    # is still current when that field has its default (the default is what the run was trained with)
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    for key in set(current) - set(saved):
        if current[key] == defaults[key]:
            saved[key] = current[key]
    return saved == current


def final_weights(profile: str, run: Run, root: Path = REPO) -> torch.nn.Module:
    """The finished ``run``'s final weights: ``weights.pt`` in results/, else ``runs/…/checkpoints/latest.pt``
    (which must be at the run's last step)."""
    from ..train import load_trained

    kept = result_dir(profile, run, root) / "weights.pt"
    if kept.exists():
        return load_trained(kept)[0]
    latest = run_dir(profile, run, root) / "checkpoints" / "latest.pt"
    if not latest.exists():
        raise FileNotFoundError(
            f"run {run.name!r} ({profile}) keeps no weights in results/ and {latest} does not exist: "
            "it can only be scored again on the machine that trained it"
        )
    step = int(read_checkpoint(latest)["step"])
    total = run.config(profile).total_steps
    if step != total:
        raise ValueError(f"{latest} is at step {step}, not at the run's last step {total}")
    return load_trained(latest)[0]


def load_scores(profile: str, run: Run, root: Path = REPO) -> pd.DataFrame:
    scores = pd.read_csv(result_dir(profile, run, root) / "scores.csv")
    return scores.assign(run=run.name, label=run.label)


def load_summary(profile: str, run: Run, root: Path = REPO) -> dict[str, Any]:
    return json.loads((result_dir(profile, run, root) / "summary.json").read_text())


def status(profile: str, root: Path = REPO, experiments: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per run of ``experiments`` (default: all): done?, steps trained so far, wall time."""
    rows = []
    for experiment, run in unique_runs(experiments):
        done = is_done(profile, run, root)
        summary = load_summary(profile, run, root) if done else {}
        steps = summary["steps"] if done else _logged_steps(run_dir(profile, run, root) / "train_log.csv")
        rows.append(
            {
                "experiment": experiment,
                "run": run.name,
                "done": done,
                "steps": steps,
                "of": run.config(profile).total_steps,
                "wall_time_s": summary.get("wall_time_s"),
            }
        )
    return pd.DataFrame(rows)


def _logged_steps(log: Path) -> int:
    if not log.exists():
        return 0
    with open(log) as f:
        return max(sum(1 for _ in f) - 1, 0)


def runs(profile: str, root: Path = REPO) -> pd.DataFrame:
    """Every registered run under ``profile``: ``run, label, model, attention, seed, scale, done,
    weights`` (``weights``: final weights committed in results/, so :func:`load_model` can open it)."""
    rows = []
    for experiment, run in unique_runs():
        rows.append(
            {
                "run": run.name,
                "label": run.label,
                "model": run.model,
                "attention": dict(run.attention),
                "seed": run.seed,
                "scale": run.config(profile).scale,
                "experiment": experiment,
                "done": is_done(profile, run, root),
                "weights": (result_dir(profile, run, root) / "weights.pt").exists(),
            }
        )
    return pd.DataFrame(rows)


def load_model(profile: str, run: Run | str, root: Path = REPO) -> torch.nn.Module:
    """The final weights of ``run`` (a :class:`Run` or its name; ``results/…/weights.pt``), in eval mode
    on the CPU."""
    from ..train import load_trained

    if isinstance(run, str):
        run = get_run(run)
    path = result_dir(profile, run, root) / "weights.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run {run.name!r} keeps no weights or has not been trained "
            f"(`enlcn study <experiment> --profile {profile}`)"
        )
    return load_trained(path)[0]


def load_curves(
    profile: str, runs: tuple[Run, ...], root: Path = REPO
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Per-epoch training losses and validation PSNR of the finished ``runs``, keyed by run name."""
    epochs, val = {}, {}
    for run in runs:
        res = result_dir(profile, run, root)
        if (res / "epochs.csv").exists():
            epochs[run.name] = pd.read_csv(res / "epochs.csv")
        if (res / "val_log.csv").exists():
            val[run.name] = pd.read_csv(res / "val_log.csv")
    return epochs, val


class LazyModels(Mapping[str, torch.nn.Module]):
    """Label → trained model (eval, CPU), each read from its weights file when first asked for, then kept.

    The explorer offers every trained attention model but shows one or two: a paper-size model is 165 MB
    and a second or two to read, so reading only those asked for saves both."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = dict(paths)
        self.loaded: dict[str, torch.nn.Module] = {}

    def __getitem__(self, label: str) -> torch.nn.Module:
        if label not in self.loaded:
            from ..train import load_trained

            self.loaded[label] = load_trained(self.paths[label])[0]  # KeyError for an unknown label
        return self.loaded[label]

    def __contains__(self, label: object) -> bool:  # Mapping's would read the model
        return label in self.paths

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def explorable_models(profile: str, root: Path = REPO) -> LazyModels:
    """Label → trained model (eval, CPU; read on first access) of every run of ``profile`` that kept its
    weights and has attention modules (the explorer's choice of models), in registry order."""
    paths = {}
    for _, run in unique_runs():
        path = result_dir(profile, run, root) / "weights.pt"
        if run.model != "edsr" and path.exists():
            paths[run.label.removeprefix("+ ")] = path
    return LazyModels(paths)
