"""Training a run: lock, train (resuming), record each session, score, write the result files."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..models.checkpoints import read_checkpoint
from ..provenance import (
    REPO,
    environment,
    git_commit,
    hardware,
    versions,
    write_csv_atomic,
    write_json_atomic,
)
from ..train import TrainConfig, Trainer
from .data import study_data, study_masks
from .files import final_weights, is_done, load_scores, load_summary, result_dir, run_dir
from .lock import RunLock
from .registry import Run, get_experiment
from .scoring import score


def train_run(profile: str, run: Run, root: Path = REPO, progress: bool = True) -> pd.DataFrame:
    """Train (or resume) ``run`` under ``profile``, score its final weights, write its results. Under a
    pilot profile only the pilot's arms train until the Protocol chooses it (:func:`.pilot.check_may_train`,
    ``ValueError`` before any work)."""
    from .pilot import check_may_train

    check_may_train(profile, [run], root)
    config = run.config(profile)
    work = run_dir(profile, run, root)
    train, val, tests = study_data(profile, config.scale)
    with RunLock(work):
        sessions_path = work / "sessions.json"
        sessions = json.loads(sessions_path.read_text()) if sessions_path.exists() else []
        trainer = Trainer(config, [(lr, hr) for _, lr, hr in train], val, work)
        commit = git_commit()  # the code that trains this session (HEAD may move while it runs)
        latest = work / "checkpoints" / "latest.pt"
        resume = latest.exists()
        start = int(read_checkpoint(latest)["step"]) if resume else 0
        close_killed_session(sessions, latest, start)
        # written before training: a session killed hard (SIGKILL, machine gone) leaves this open entry
        from ..models.edsr import training_paths

        paths = training_paths(trainer.model, trainer.device)
        from ..allocator import state as allocator_state

        sessions.append(
            {
                "commit": commit,
                "started_step": start,
                "started_unix": time.time(),
                "attention_paths": paths,
                "allocator": allocator_state(),
            }
        )
        write_json_atomic(sessions_path, sessions)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            trainer.fit(resume=True, progress=progress)  # from step 0 when there is no checkpoint
        finally:  # an interrupted session's time counts too (it resumes from its last checkpoint)
            sessions[-1].update(
                finished_step=int(trainer.step),
                wall_time_s=round(time.perf_counter() - t0, 1),
                # CPU seconds of this process (all its threads): unlike wall time, not inflated by
                # SIGSTOP pauses; with --threads 1 it is the run's core-seconds
                cpu_time_s=round(time.process_time() - c0, 1),
                threads=torch.get_num_threads(),
                finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
            write_json_atomic(sessions_path, sessions)
        trainer.model.eval()
        scores = score(trainer.model, config.scale, tests, study_masks(profile, config.scale))
        write_results(profile, run, config, trainer, scores, sessions, root)
    return scores


def close_killed_session(sessions: list[dict[str, Any]], latest: Path, resumed_step: int) -> None:
    """Close a session entry left open by a process killed without unwinding.

    Its end is the checkpoint it last wrote (what this session resumes from); its wall time is estimated
    from the checkpoint's modification time and marked ``"estimated": true``.
    """
    if not sessions or "wall_time_s" in sessions[-1]:
        return
    entry = sessions[-1]
    end = latest.stat().st_mtime if latest.exists() else entry["started_unix"]
    entry.update(
        finished_step=resumed_step,
        wall_time_s=round(max(end - entry["started_unix"], 0.0), 1),
        finished="killed; time up to its last checkpoint",
        estimated=True,
    )


def write_results(
    profile: str,
    run: Run,
    config: TrainConfig,
    trainer: Trainer,
    scores: pd.DataFrame,
    sessions: list[dict[str, Any]],
    root: Path = REPO,
) -> Path:
    """Write ``results/<profile>/study/<run>/`` (each file atomically; summary.json last)."""
    res, work = result_dir(profile, run, root), run_dir(profile, run, root)
    res.mkdir(parents=True, exist_ok=True)
    write_json_atomic(res / "config.json", asdict(config))
    write_csv_atomic(res / "scores.csv", scores)
    steps = pd.read_csv(work / "train_log.csv")
    epochs = steps.groupby("epoch").agg(
        l1=("l1", "mean"), contrastive=("contrastive", "mean"), lr=("lr", "last"), step=("step", "last")
    )
    write_csv_atomic(res / "epochs.csv", epochs.reset_index())
    if (work / "val_log.csv").exists():
        val = pd.read_csv(work / "val_log.csv", header=None, names=["step", "epoch", "val_psnr"])
        write_csv_atomic(res / "val_log.csv", val)
    if run.keep_weights:
        from ..train import save_atomic

        save_atomic({"config": asdict(config), "model": trainer.model.state_dict()}, res / "weights.pt")
    means = scores.groupby("test_set")[["psnr", "ssim"]].mean()
    summary = {
        "run": asdict(run),
        "profile": profile,
        "steps": trainer.step,
        "means": {s: {k: round(float(v), 4) for k, v in row.items()} for s, row in means.iterrows()},
        "sessions": sessions,
        "wall_time_s": round(sum(s["wall_time_s"] for s in sessions), 1),
        "versions": versions(),
        "environment": environment(),  # the lock's hash and whether this environment matched it
        "hardware": hardware(),
        "threads": torch.get_num_threads(),
    }
    return write_json_atomic(res / "summary.json", summary)


def rescore(profile: str, run: Run, root: Path = REPO, atol: float = 1e-6) -> pd.DataFrame:
    """Score a finished ``run`` again with today's scoring code, e.g. to add the ``*_motifs`` test sets.

    The scores it already has must come out the same (to ``atol``: inference is deterministic on the
    CPU) — otherwise the weights or the data are not what was scored, and nothing is written. Rewrites
    ``scores.csv`` and updates ``summary.json``'s means with a ``rescored`` entry (commit, time, what was
    added); the training provenance is kept.
    """
    if not is_done(profile, run, root):
        raise ValueError(f"run {run.name!r} ({profile}) is not finished with the current config")
    res = result_dir(profile, run, root)
    old = pd.read_csv(res / "scores.csv")
    model = final_weights(profile, run, root)
    scale = run.config(profile).scale
    new = score(model, scale, study_data(profile, scale)[2], study_masks(profile, scale))
    merged = old.merge(new, on=["test_set", "image"], how="left", suffixes=("_old", ""))
    for col in ("psnr", "ssim"):
        diff = (merged[f"{col}_old"] - merged[col]).abs().max()
        if not diff <= atol:
            raise ValueError(
                f"rescoring {run.name!r} changes its {col} by up to {diff:.3g}: not the same model or data"
            )
    added = sorted(set(new.test_set) - set(old.test_set))
    write_csv_atomic(res / "scores.csv", new)
    summary = load_summary(profile, run, root)
    means = new.groupby("test_set")[["psnr", "ssim"]].mean()
    summary["means"] = {s: {k: round(float(v), 4) for k, v in row.items()} for s, row in means.iterrows()}
    entry = {"commit": git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "added_test_sets": added}
    summary["rescored"] = summary.get("rescored", []) + [entry]
    write_json_atomic(res / "summary.json", summary)
    return new


# -- experiments -----------------------------------------------------------------------------------
def ensure(
    profile: str, experiment: str, train_missing: bool = True, root: Path = REPO, progress: bool = True
) -> pd.DataFrame:
    """Per-image scores of every run of ``experiment`` (training the missing ones if ``train_missing``).

    Runs not done (and not trained here) are left out of the table; :func:`status` lists them.
    """
    frames = []
    for run in get_experiment(experiment):
        if not is_done(profile, run, root):
            if not train_missing:
                continue
            train_run(profile, run, root, progress)
        frames.append(load_scores(profile, run, root))
    if not frames:
        return pd.DataFrame(columns=["run", "label", "test_set", "image", "psnr", "ssim"])
    return pd.concat(frames, ignore_index=True)
