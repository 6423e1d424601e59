"""``enlcn study import BUNDLE`` (:func:`import_bundle`): a bundle of ``tools/gpu_study.sh`` checked
(:func:`check_bundle`: manifest, format, files and limits, every run and its config the ones this code gives),
its carried runs re-scored on the CPU from their float16 weights (:func:`rescore_carried`, within
:data:`RESCORE_TOLERANCE_DB`), and placed under ``results/gpu-x2/study/`` in the study's layout.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ...provenance import REPO
from .bundle import BUNDLE_FORMAT, CURVES, MANIFEST, SCORES, bundle_problems
from .setting import PROFILE, TINY_ENV, Setting, run_by_name, run_config, tier_of

#: the CPU re-scoring of a carried run may differ from the GPU's by this much (dB, test-set mean Y-PSNR)
RESCORE_TOLERANCE_DB = 0.05
#: the manifest's fields the import needs
MANIFEST_FIELDS = (
    "format",
    "profile",
    "test_only_tiny",
    "setting",
    "commit",
    "device_name",
    "torch",
    "cuda",
    "calibration_round_s",
    "steps",
    "tiers",
    "runs",
    "files",
    "wall_time_s",
    "phase",
)
#: written beside the imported runs: the manifest and the import's report
STUDY_FILE = "gpu-study.json"


def setting_of(manifest: dict[str, Any]) -> Setting:
    """The :class:`Setting` a bundle was made with (JSON lists back to tuples)."""
    values = dict(manifest["setting"])
    values["overrides"] = tuple(tuple(x) for x in values.get("overrides", ()))
    if values.get("test_sets") is not None:
        values["test_sets"] = tuple(values["test_sets"])
    return Setting(**values)


def check_bundle(folder: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The bundle's manifest, scores and curves, after checking its manifest fields, format, file list and
    sizes, and that every run and its config are the ones this code gives: a ``ValueError`` naming the file
    and what is wrong otherwise."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path}: missing (not a bundle of tools/gpu_study.sh)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    missing = [f for f in MANIFEST_FIELDS if f not in manifest]
    if missing:
        phase = manifest.get("phase", "?")
        raise ValueError(f"{path}: lacks {', '.join(missing)} (phase {phase!r}: a partial bundle?)")
    if manifest["format"] != BUNDLE_FORMAT or manifest["profile"] != PROFILE:
        raise ValueError(
            f"{path}: format {manifest['format']} of profile {manifest['profile']!r}; this code "
            f"reads format {BUNDLE_FORMAT} of {PROFILE!r}"
        )
    if manifest["test_only_tiny"] and os.environ.get(TINY_ENV) != "1":
        raise ValueError(f"{path}: a test-only (ENLCN_GPU_STUDY_TINY) bundle; not imported into the study")
    problems = bundle_problems(folder)
    if problems:
        raise ValueError(f"{folder}: breaks the device's limits: {'; '.join(problems)}")
    present = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if present != sorted(manifest["files"]):
        raise ValueError(f"{path}: lists the files {sorted(manifest['files'])}, the folder has {present}")
    setting = setting_of(manifest)
    device = "cuda" if manifest["cuda"] else "cpu"
    for r in manifest["runs"]:
        try:
            run = run_by_name(r["run"])
        except KeyError as err:
            raise ValueError(f"{path}: {err.args[0]}") from None
        if r["tier"] != tier_of(run.name):
            raise ValueError(
                f"{path}: run {run.name!r} is in tier {r['tier']}, this code puts it in {tier_of(run.name)}"
            )
        if r["config"] is not None:
            expected = json.loads(json.dumps(asdict(run_config(run, manifest["steps"], device, setting))))
            diff = sorted(k for k in expected if r["config"].get(k) != expected[k])
            if diff:
                raise ValueError(
                    f"{path}: run {run.name!r} was trained with other settings than this code gives "
                    f"it ({', '.join(diff)})"
                )
        if r["weights"] is not None and r["weights"] not in manifest["files"]:
            raise ValueError(f"{path}: run {run.name!r}'s weights file {r['weights']!r} is not in the bundle")
    scores = _read_csv(folder / SCORES, {"image", "psnr", "ssim", "test_set", "run"})
    curves = _read_csv(folder / CURVES, {"run", "step", "l1", "val_psnr"})
    scored = {r["run"] for r in manifest["runs"] if r["error"] is None}
    if set(scores["run"]) != scored:
        raise ValueError(
            f"{folder / SCORES}: scores runs {sorted(set(scores['run']))}, the manifest's scored runs "
            f"are {sorted(scored)}"
        )
    return manifest, scores, curves


def _read_csv(path: Path, columns: set[str]) -> pd.DataFrame:
    if not path.is_file():
        raise ValueError(f"{path}: missing")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({' '.join(str(err).split())})") from err
    if not columns <= set(frame.columns):
        raise ValueError(f"{path}: lacks the columns {', '.join(sorted(columns - set(frame.columns)))}")
    return frame


def carried_weights(folder: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run → ``{"config", "model"}`` (float16) from the bundle's weight files; ``ValueError`` naming a file
    that is unreadable or lacks a run the manifest says it carries."""
    import torch

    out: dict[str, dict[str, Any]] = {}
    for name in sorted({r["weights"] for r in manifest["runs"] if r["weights"]}):
        path = folder / name
        try:
            pack = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - named and re-raised
            raise ValueError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from err
        want = [r["run"] for r in manifest["runs"] if r["weights"] == name]
        lacking = [n for n in want if n not in pack.get("runs", {})]
        if lacking:
            raise ValueError(f"{path}: lacks the weights of {', '.join(lacking)}")
        out.update({n: pack["runs"][n] for n in want})
    return out


def rescore_carried(
    manifest: dict[str, Any], weights: dict[str, dict[str, Any]], gpu: pd.DataFrame
) -> pd.DataFrame:
    """Score every carried run on the CPU from its float16 weights (float32 arithmetic) and compare its
    test-set means with the GPU's: ``run, test_set, gpu_psnr, cpu_psnr, diff_db, beyond`` (beyond the
    Protocol's :data:`RESCORE_TOLERANCE_DB`)."""
    from ...models import build_model
    from ...train import TrainConfig
    from ..scoring import score

    setting = setting_of(manifest)
    rows = []
    for name, payload in weights.items():
        config = TrainConfig.from_dict(
            {**payload["config"], "milestones": tuple(payload["config"]["milestones"])}
        )
        model = build_model(config.model, config.scale, config.preset, attention=config.attention)
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
        )
        tests, masks = setting.tests(config.scale)
        cpu = score(model.eval(), config.scale, tests, masks)
        ours = cpu.groupby("test_set")["psnr"].mean()
        theirs = gpu[gpu["run"] == name].groupby("test_set")["psnr"].mean()
        for test_set in theirs.index:
            diff = float(ours.get(test_set, math.nan) - theirs[test_set])
            rows.append(
                {
                    "run": name,
                    "test_set": test_set,
                    "gpu_psnr": float(theirs[test_set]),
                    "cpu_psnr": float(ours.get(test_set, math.nan)),
                    "diff_db": diff,
                    "beyond": not abs(diff) <= RESCORE_TOLERANCE_DB,
                }
            )
    return pd.DataFrame(rows, columns=["run", "test_set", "gpu_psnr", "cpu_psnr", "diff_db", "beyond"])


def import_bundle(folder: Path, root: Path = REPO) -> pd.DataFrame:
    """Check the bundle, re-score its carried runs on the CPU, and place it under
    ``results/gpu-x2/study/`` in the study's layout (one folder per scored run: config, scores, curves,
    summary, weights) with ``gpu-study.json`` (the manifest and the re-scoring) beside them. The GPU's
    scores are the result; CPU differences beyond the tolerance are reported. Nothing is written before
    every check has passed. Returns the re-scoring table."""
    from ...provenance import write_csv_atomic, write_json_atomic
    from ...train import save_atomic

    folder = Path(folder)
    manifest, scores, curves = check_bundle(folder)
    weights = carried_weights(folder, manifest)
    target = root / "results" / PROFILE / "study"
    if (target / STUDY_FILE).exists():
        raise ValueError(
            f"{target / STUDY_FILE}: a GPU bundle is already imported there; remove {target} first"
        )
    rescored = rescore_carried(manifest, weights, scores)
    for r in manifest["runs"]:
        if r["error"] is not None:
            continue
        run = run_by_name(r["run"])
        out = target / run.name
        run_scores = scores[scores["run"] == run.name].drop(columns="run")
        write_json_atomic(out / "config.json", r["config"])
        write_csv_atomic(out / "scores.csv", run_scores)
        curve = curves[curves["run"] == run.name]
        write_csv_atomic(
            out / "val_log.csv",
            pd.DataFrame({"step": curve["step"], "epoch": curve["step"], "val_psnr": curve["val_psnr"]}),
        )
        write_csv_atomic(
            out / "epochs.csv",
            pd.DataFrame(
                {
                    "epoch": curve["step"],
                    "l1": curve["l1"],
                    "contrastive": math.nan,
                    "lr": math.nan,
                    "step": curve["step"],
                }
            ),
        )
        if run.name in weights:
            save_atomic(weights[run.name], out / "weights.pt")
        means = run_scores.groupby("test_set")[["psnr", "ssim"]].mean()
        write_json_atomic(
            out / "summary.json",
            {
                "run": asdict(run),
                "profile": PROFILE,
                "steps": r["step"],
                "steps_target": r["steps_target"],
                "means": {t: {k: round(float(v), 4) for k, v in row.items()} for t, row in means.iterrows()},
                "sessions": [
                    {
                        "commit": manifest["commit"],
                        "device": manifest["device_name"],
                        "started_step": 0,
                        "finished_step": r["step"],
                        "wall_time_s": manifest["wall_time_s"],
                        "run_seconds": r["seconds"],
                    }
                ],
                "wall_time_s": manifest["wall_time_s"],
                "versions": {
                    "torch": manifest["torch"],
                    "cuda": manifest["cuda"],
                    "python": manifest.get("python"),
                },
                "hardware": {
                    "gpu": manifest["device_name"],
                    "cpu": manifest.get("cpu"),
                    "cores": manifest.get("cores"),
                },
                "weights": "float16" if run.name in weights else None,
            },
        )
    from ...provenance import git_commit

    report = {
        "tolerance_db": RESCORE_TOLERANCE_DB,
        "imported_by": git_commit(),
        "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "beyond_tolerance": rescored[rescored["beyond"]].to_dict("records"),
        "rescored": rescored.to_dict("records"),
    }
    write_json_atomic(target / STUDY_FILE, {**manifest, "import": report})
    return rescored
