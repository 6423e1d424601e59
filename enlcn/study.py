"""The training studies: which models the paper's ablations compare, trained and scored per profile.

An *experiment* (``table2``, ``k``, ``table6``, ``seeds``) is a list of :class:`Run`; a run is one
model trained with the profile's :class:`~enlcn.train.TrainConfig` plus the run's own settings. Runs
shared by experiments (e.g. the ENLCN of Table 2 is also the k = 6 point of Figure 6) are trained once.

Where things go (``profile`` = quick | cpu | paper)::

    runs/<profile>/<run>/        checkpoints, full step log (not committed; what resuming needs)
    results/<profile>/study/<run>/
        config.json              the resolved TrainConfig
        scores.csv               per-image Y-PSNR / SSIM of the final weights on every test set
        epochs.csv, val_log.csv  per-epoch mean losses and validation PSNR
        summary.json             provenance: commit(s), versions, hardware, wall time per session
        weights.pt               final weights, for the runs the correlation-map notebook opens

:func:`ensure` trains what is missing (resuming an interrupted run) and returns the scores; a run whose
results exist with the same config is not retrained. ``enlcn study EXPERIMENT --profile P`` runs the
same from the command line (start it with ``nohup`` for the ``cpu`` profile: hours).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .profiles import StudyData, get_profile
from .provenance import REPO, git_commit, hardware, versions, write_csv_atomic, write_json_atomic
from .train import TrainConfig, Trainer, train_config

Pairs = list[tuple[str, np.ndarray, np.ndarray]]
Masks = dict[str, dict[str, np.ndarray]]  # test set → image name → boolean HR mask


@dataclass(frozen=True)
class Run:
    """One trained model: ``model`` (a :func:`~enlcn.models.build_model` name) with ``attention`` options."""

    name: str
    label: str
    model: str
    attention: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    # copy the final weights into results/ (a cpu-size model is ~2 MB): anyone can re-score the run. True
    # for every run since the pilot; the first cpu study kept them for the four Table 2 attention models
    keep_weights: bool = True

    def config(self, profile: str) -> TrainConfig:
        return train_config(profile, model=self.model, attention=dict(self.attention), seed=self.seed)


BASE = Run("base", "EDSR (baseline)", "edsr")
ENLA = Run("enla", "+ ENLA (k = 1)", "edsr+enla")
ENLA_K = Run("enla_k", "+ ENLA, ×k", "edsr+enlca", (("contrastive", False),))
ENLA_CL = Run("enla_cl", "+ ENLA, contrastive", "edsr+enlca", (("k", 1.0),))
ENLCA = Run("enlca", "+ ENLA, ×k, contrastive (ENLCN)", "enlcn")


def _enlcn_k(k: float) -> Run:
    return Run(f"enlca_k{k:g}", f"ENLCN, k = {k:g}", "enlcn", (("k", float(k)),))


EXPERIMENTS: dict[str, tuple[Run, ...]] = {
    # Table 2: progressively adding ENLA, the amplification k and the contrastive loss to EDSR
    "table2": (BASE, ENLA, ENLA_K, ENLA_CL, ENLCA),
    # run-to-run noise: the same settings with other seeds (the paper reports one run per setting)
    "seeds": (
        Run("base_s1", "EDSR (baseline), seed 1", "edsr", seed=1),
        Run("base_s2", "EDSR (baseline), seed 2", "edsr", seed=2),
        Run("enlca_s1", "ENLCN, seed 1", "enlcn", seed=1),
        Run("enlca_s2", "ENLCN, seed 2", "enlcn", seed=2),
    ),
    # Figure 6 (PSNR half): ENLCN with amplification k (k = 1 is Table 2's "ENLA, contrastive" run)
    "k": (ENLA_CL, _enlcn_k(2), _enlcn_k(4), ENLCA, _enlcn_k(8)),
    # the pilot (book/protocol.md): the positive control, exact non-local attention, against EDSR, paired
    # by seed; run under the pilot profiles only
    "pilot": (
        BASE,
        Run("base_s1", "EDSR (baseline), seed 1", "edsr", seed=1),
        Run("base_s2", "EDSR (baseline), seed 2", "edsr", seed=2),
        Run("nla", "+ Non-Local (NLA)", "edsr+nla"),
        Run("nla_s1", "+ Non-Local (NLA), seed 1", "edsr+nla", seed=1),
        Run("nla_s2", "+ Non-Local (NLA), seed 2", "edsr+nla", seed=2),
    ),
    # Table 6: attention kinds on the same backbone
    "table6": (
        BASE,
        Run("nla", "+ Non-Local (NLA)", "edsr+nla"),
        Run("crisscross", "+ Criss-Cross", "edsr+crisscross"),
        Run("nlsa", "+ NLSA", "edsr+nlsa"),
        ENLCA,
    ),
}

#: seeds of a run name: ``enlca`` and its other-seed copies ``enlca_s1``, ``enlca_s2``
SEED_GROUPS = {"base": ("base", "base_s1", "base_s2"), "enlca": ("enlca", "enlca_s1", "enlca_s2")}

#: The paper's numbers (Y-PSNR, dB) beside which ours are shown — the *paper's* DIV2K-trained 32×256
#: models, not comparable in absolute value to a small model trained on a few offline images.
PAPER_PSNR: dict[str, dict[str, Any]] = {
    "table2": {
        "dataset": "Set5 ×4",
        "source": "paper Table 2",
        # the table's check marks are lost in the text copy; rows 3 and 4 follow the text's order
        # ("multiplying ... k ... and contrastive learning ... improve around 0.07 dB")
        "values": {"base": 32.21, "enla": 32.37, "enla_k": 32.44, "enla_cl": 32.41, "enlca": 32.48},
    },
    "table6": {
        "dataset": "Urban100 ×4",
        "source": "paper Table 6",
        "values": {"base": 26.64, "nla": 26.87, "crisscross": 26.85, "nlsa": 26.96, "enlca": 27.12},
    },
}


def get_experiment(name: str) -> tuple[Run, ...]:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def get_run(name: str) -> Run:
    for runs in EXPERIMENTS.values():
        for run in runs:
            if run.name == name:
                return run
    known = sorted({r.name for runs in EXPERIMENTS.values() for r in runs})
    raise ValueError(f"unknown run {name!r}; known: {', '.join(known)}")


# -- data ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def study_data(profile: str, scale: int) -> tuple[Pairs, Pairs, dict[str, Pairs]]:
    """``(train, val, {test set: pairs})`` of ``profile``'s :class:`~enlcn.profiles.StudyData`.

    Cached (the MATLAB-bicubic LR images take seconds to make); treat the arrays as read-only.
    """
    from .data import bicubic_downscale, modcrop
    from .data.synthetic import skimage_images

    d: StudyData = get_profile(profile).study_data
    if d.source == "standard":
        return standard_data(scale, d.standard_val)
    if d.source != "offline":
        raise ValueError(f"profile {profile!r}: unknown study data source {d.source!r} (offline | standard)")

    def photos(split: str) -> Pairs:
        return [(n, bicubic_downscale(hr, scale), modcrop(hr, scale)) for n, hr in skimage_images(split)]

    train = (photos("train") if d.photos_in_train else []) + d.selfsim_set("train", scale).pairs()
    val = d.selfsim_set("val", scale).pairs()
    tests = {"photos": photos("test"), "selfsim": d.selfsim_set("test", scale).pairs()}
    return train, val, tests


@functools.lru_cache(maxsize=4)
def study_masks(profile: str, scale: int) -> Masks:
    """Region masks of ``profile``'s test sets: ``{"selfsim": {image: motif-copy pixels}}`` (offline data).

    Non-local attention can only help where a patch has repeats elsewhere in the image; on the smooth
    background of the self-similar images every model does about as well as bicubic, which dilutes a
    whole-image PSNR. Scoring the motif pixels alone (``selfsim_motifs``) measures where it matters.
    The standard benchmarks have no such ground truth: ``{}``.
    """
    d: StudyData = get_profile(profile).study_data
    if d.source != "offline":
        return {}
    return {"selfsim": d.selfsim_set("test", scale).motif_masks()}


def standard_data(scale: int, n_val: int, root: str | os.PathLike | None = None):
    """DIV2K train / first ``n_val`` DIV2K valid / the five benchmark sets, from ``root``.

    ``root`` defaults to ``$ENLCN_DATA`` or ``data/``; a missing folder is a FileNotFoundError that says
    how to get it (``enlcn data fetch``; needs internet).
    """
    from .data.datasets import BENCHMARKS, benchmark_dataset, div2k

    root = Path(root or os.environ.get("ENLCN_DATA", REPO / "data"))
    try:
        train = list(div2k(root, "train", scale))
        val = list(div2k(root, "valid", scale))[:n_val]
        tests = {name: list(benchmark_dataset(root, name, scale)) for name in BENCHMARKS}
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err}. The paper profile trains on DIV2K and tests on {', '.join(BENCHMARKS)} under {root}: "
            f"`enlcn data fetch DIV2K_train_HR --root {root}/DIV2K` (and DIV2K_valid_HR the same way) and "
            f"`enlcn data fetch benchmark --root {root}` (needs internet)"
        ) from err
    return train, val, tests


# -- paths -----------------------------------------------------------------------------------------
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


class RunLock:
    """``runs/<profile>/<run>/.lock`` holding the pid, so two processes never train one run at once."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = int(self.path.read_text() or 0)
            if pid and _alive(pid):
                raise RuntimeError(f"{self.path.parent} is being trained by process {pid}") from None
            self.path.unlink()  # stale: its process is gone
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- one run ---------------------------------------------------------------------------------------
def train_run(profile: str, run: Run, root: Path = REPO, progress: bool = True) -> pd.DataFrame:
    """Train (or resume) ``run`` under ``profile``, score its final weights, write its results."""
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
        start = int(torch.load(latest, map_location="cpu", weights_only=False)["step"]) if resume else 0
        close_killed_session(sessions, latest, start)
        # written before training: a session killed hard (SIGKILL, machine gone) leaves this open entry
        sessions.append({"commit": commit, "started_step": start, "started_unix": time.time()})
        write_json_atomic(sessions_path, sessions)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            trainer.fit(resume=resume, progress=progress)
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


def score(model: torch.nn.Module, scale: int, tests: dict[str, Pairs], masks: Masks | None = None):
    """Per-image Y-PSNR/SSIM of ``model`` (whole-image inference); see :func:`score_upscaled`."""
    from .evaluate import upscale
    from .metrics import quantize

    return score_upscaled(lambda lr: quantize(upscale(model, lr, scale, "whole")), scale, tests, masks)


def score_upscaled(
    upscaler: Callable[[np.ndarray], np.ndarray],
    scale: int,
    tests: dict[str, Pairs],
    masks: Masks | None = None,
) -> pd.DataFrame:
    """Per-image Y-PSNR/SSIM (no ``mean`` rows) of ``upscaler`` (uint8 LR → uint8 SR) on every test set.

    A test set with ``masks`` (:func:`study_masks`) is also scored on the masked pixels only, as the
    extra test set ``<name>_motifs`` (same SR images).
    """
    from .metrics import dataset_scores

    masks = masks or {}
    frames = []
    for test_set, pairs in tests.items():
        triples = [(name, upscaler(lr), hr) for name, lr, hr in pairs]
        regions = [(test_set, None)]
        if test_set in masks:
            regions.append((f"{test_set}_motifs", masks[test_set]))
        for label, region in regions:
            table = dataset_scores(triples, scale, region)
            frames.append(table[table["image"] != "mean"].assign(test_set=label))
    return pd.concat(frames, ignore_index=True)


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
        from .train import save_atomic

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
        "hardware": hardware(),
        "threads": torch.get_num_threads(),
    }
    return write_json_atomic(res / "summary.json", summary)


def final_weights(profile: str, run: Run, root: Path = REPO) -> torch.nn.Module:
    """The finished ``run``'s final weights: ``weights.pt`` in results/, else ``runs/…/checkpoints/latest.pt``
    (which must be at the run's last step)."""
    from .train import load_trained

    kept = result_dir(profile, run, root) / "weights.pt"
    if kept.exists():
        return load_trained(kept)[0]
    latest = run_dir(profile, run, root) / "checkpoints" / "latest.pt"
    if not latest.exists():
        raise FileNotFoundError(
            f"run {run.name!r} ({profile}) keeps no weights in results/ and {latest} does not exist: "
            "it can only be scored again on the machine that trained it"
        )
    step = int(torch.load(latest, map_location="cpu", weights_only=False)["step"])
    total = run.config(profile).total_steps
    if step != total:
        raise ValueError(f"{latest} is at step {step}, not at the run's last step {total}")
    return load_trained(latest)[0]


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


def load_scores(profile: str, run: Run, root: Path = REPO) -> pd.DataFrame:
    scores = pd.read_csv(result_dir(profile, run, root) / "scores.csv")
    return scores.assign(run=run.name, label=run.label)


def load_summary(profile: str, run: Run, root: Path = REPO) -> dict[str, Any]:
    return json.loads((result_dir(profile, run, root) / "summary.json").read_text())


def status(profile: str, root: Path = REPO) -> pd.DataFrame:
    """One row per run of every experiment: done?, steps trained so far, wall time."""
    rows, seen = [], set()
    for experiment, runs in EXPERIMENTS.items():
        for run in runs:
            if run.name in seen:
                continue
            seen.add(run.name)
            done = is_done(profile, run, root)
            log = run_dir(profile, run, root) / "train_log.csv"
            summary = load_summary(profile, run, root) if done else {}
            steps = summary["steps"] if done else _logged_steps(log)
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


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean Y-PSNR / SSIM per run (rows, in experiment order) and test set (columns)."""
    order = list(dict.fromkeys(scores["run"]))
    table = scores.pivot_table(index=["run", "label"], columns="test_set", values=["psnr", "ssim"])
    table = table.reindex(order, level=0)
    return table.round(4)


def compare(scores: pd.DataFrame, experiment: str, baseline: str = "base") -> pd.DataFrame:
    """Mean Y-PSNR per run and test set, its gain over ``baseline``, and the paper's number and gain.

    The gain is the mean over images of the per-image difference (paired), with its standard error.
    Paper columns are NaN where the paper has no number for the run (e.g. the k sweep is only a plot).
    """
    if scores.empty:
        return pd.DataFrame()
    paper = PAPER_PSNR.get(experiment, {"values": {}, "dataset": ""})
    wide = scores.pivot_table(index=["test_set", "image"], columns="run", values="psnr")
    rows = []
    for run in dict.fromkeys(scores["run"]):
        row = {"run": run, "label": scores.loc[scores.run == run, "label"].iloc[0]}
        for test_set, sub in wide.groupby(level="test_set"):
            row[f"{test_set} PSNR"] = sub[run].mean()
            if baseline in sub:
                delta = sub[run] - sub[baseline]
                row[f"{test_set} Δ"] = delta.mean()
                row[f"{test_set} Δ s.e."] = (
                    delta.std(ddof=1) / np.sqrt(len(delta)) if len(delta) > 1 else np.nan
                )
        value = paper["values"].get(run, np.nan)
        row[f"paper {paper['dataset']} PSNR".replace("  ", " ")] = value
        row["paper Δ"] = value - paper["values"].get(baseline, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def seed_spread(scores: pd.DataFrame) -> pd.DataFrame:
    """Run-to-run spread of the mean PSNR over the seeds of :data:`SEED_GROUPS` (per test set)."""
    rows = []
    for group, names in SEED_GROUPS.items():
        sub = scores[scores.run.isin(names)]
        if sub.empty:
            continue
        means = sub.groupby(["test_set", "run"])["psnr"].mean()
        for test_set, m in means.groupby(level="test_set"):
            rows.append(
                {
                    "setting": group,
                    "test_set": test_set,
                    "seeds": len(m),
                    "mean PSNR": m.mean(),
                    "std over seeds": m.std(ddof=1) if len(m) > 1 else np.nan,
                    "range": m.max() - m.min(),
                }
            )
    return pd.DataFrame(rows)


def load_model(profile: str, run: Run, root: Path = REPO) -> torch.nn.Module:
    """The final weights of ``run`` (``results/…/weights.pt``), in eval mode on the CPU."""
    from .train import load_trained

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


#: The paper's ablation claims as (claim, run, reference run, table of :data:`PAPER_PSNR` or None).
CLAIMS: tuple[tuple[str, str, str, str | None], ...] = (
    ("ENLCN beats EDSR", "enlca", "base", "table2"),
    ("ENLA beats EDSR", "enla", "base", "table2"),
    ("×k helps ENLA", "enla_k", "enla", "table2"),
    ("contrastive loss helps ENLA", "enla_cl", "enla", "table2"),
    ("k = 6 beats k = 2", "enlca", "enlca_k2", None),
    ("k = 6 beats k = 8", "enlca", "enlca_k8", None),
    ("ENLCA beats Non-Local", "enlca", "nla", "table6"),
    ("ENLCA beats Criss-Cross", "enlca", "crisscross", "table6"),
    ("ENLCA beats NLSA", "enlca", "nlsa", "table6"),
)


def paper_gain(table: str | None, run: str, ref: str) -> tuple[float | None, str]:
    """The paper's PSNR gain of ``run`` over ``ref`` in ``table`` and where it is from."""
    if table is None:
        return None, "Figure 6 (plot only; the text says k = 6 is best)"
    paper = PAPER_PSNR[table]
    gain = round(paper["values"][run] - paper["values"][ref], 4)
    return gain, f"{paper['source']}, {paper['dataset']}"


def verdicts(scores: pd.DataFrame, z: float = 2.0) -> pd.DataFrame:
    """Each claim of :data:`CLAIMS` judged against the run-to-run noise, per test set.

    ``Δ`` is the difference of the two runs' mean PSNR. The noise of one run's mean PSNR is taken as the
    largest standard deviation over seeds in :func:`seed_spread` (needs ≥ 2 seeds of a setting); the
    difference of two runs then has standard deviation ``√2·σ``. A claim is *supported* when
    ``Δ > z·√2·σ``, *contradicted* when ``Δ < −z·√2·σ``, and *not resolved* otherwise; with no noise
    estimate, or a run missing, it says so.
    """
    spread = seed_spread(scores)
    means = scores.groupby(["run", "test_set"])["psnr"].mean() if not scores.empty else pd.Series()
    test_sets = sorted(scores["test_set"].unique()) if not scores.empty else []
    rows = []
    for claim, run, ref, table in CLAIMS:
        gain, where = paper_gain(table, run, ref)
        for test_set in test_sets:
            sigmas = spread.loc[spread.test_set == test_set, "std over seeds"].dropna() if len(spread) else []
            sigma = float(np.max(sigmas)) if len(sigmas) else np.nan
            row = {"claim": claim, "paper": where, "paper Δ": gain, "test set": test_set}
            if (run, test_set) not in means or (ref, test_set) not in means:
                rows.append({**row, "verdict": "not run yet"})
                continue
            delta = float(means[(run, test_set)] - means[(ref, test_set)])
            bound = z * np.sqrt(2) * sigma
            if np.isnan(sigma):
                verdict = "no noise estimate yet (needs ≥ 2 seeds)"
            elif delta > bound:
                verdict = "supported"
            elif delta < -bound:
                verdict = "contradicted"
            else:
                verdict = "not resolved (within noise)"
            rows.append({**row, "our Δ": delta, f"noise ({z:g}·√2·σ)": bound, "verdict": verdict})
    return pd.DataFrame(rows)


def bicubic_scores(profile: str) -> pd.DataFrame:
    """Per-image scores of MATLAB-bicubic upscaling on the profile's test sets: the no-learning floor."""
    from .data.resize import imresize_matlab

    scale = BASE.config(profile).scale
    tests = study_data(profile, scale)[2]
    scores = score_upscaled(lambda lr: imresize_matlab(lr, scale), scale, tests, study_masks(profile, scale))
    return scores.assign(run="bicubic", label="bicubic (no learning)")
