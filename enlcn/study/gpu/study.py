"""The whole one-shot study, the parent's side (:func:`run_study`): the worker processes started, the tiers
calibrated and chosen, the chosen runs trained concurrently until the deadline, their staged records
collected (:func:`collect`) and the bundle written, ending inside the budget with a partial bundle if a
process fails or hangs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .bundle import BUNDLE_FORMAT, META_FILES, Bundle, bundle_problems, commit_id, device_info, run_record
from .calibrate import Choice, calibrate, choose
from .setting import PROFILE, TIERS, setting_from_env, tier_runs
from .workers import Workers, assign, default_workers


def collect(staging: Path, names: Iterable[str]) -> list[dict[str, Any]]:
    """The staged records of ``names`` (those written so far)."""
    out = []
    for name in names:
        path = staging / name / "record.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


def run_study(
    device: str, budget_s: float, out: Path, workers: int | None = None, t_start: float | None = None
) -> int:
    """The whole one-shot study (see the package doc, :mod:`enlcn.study.gpu`); writes the bundle under ``out``
    as it goes. Returns 0 when at least one run was scored, 1 otherwise."""
    import shutil
    import tempfile

    t_start = t_start or time.time()
    setting = setting_from_env(budget_s)
    bundle = Bundle(Path(out))
    log: list[str] = []
    items = tier_runs(TIERS)
    shares = assign(items, workers or default_workers(device, len(items)))
    bundle.write_manifest(
        format=BUNDLE_FORMAT,
        profile=PROFILE,
        test_only_tiny=setting.tiny,
        setting=asdict(setting),
        commit=commit_id(),
        started_unix=t_start,
        **device_info(device),
        processes=len(shares),
        shares=[[r.name for _, r in share] for share in shares],
        phase="started",
    )
    staging = Path(tempfile.mkdtemp(prefix="enlcn-gpu-study-"))
    pool = Workers(shares, device, setting, staging)
    reached: dict[str, int] = {}
    chosen: list[str] = []
    choice: Choice | None = None
    try:
        pool.receive(t_start + budget_s - setting.reserve_s, "ready")
        round_s = calibrate(pool, setting, t_start, log)
        t0 = time.time() - t_start
        b_train = budget_s - setting.reserve_s - t0
        choice = choose(b_train, round_s, setting)
        log.append(
            f"chosen tiers {choice.tiers}, S = {choice.steps}" + (" (fallback)" if choice.fallback else "")
        )
        chosen = [r.name for _, r in tier_runs(choice.tiers)]
        bundle.write_manifest(
            phase="training",
            t0_s=round(t0, 2),
            b_train_s=round(b_train, 2),
            calibration_round_s={str(j): t for j, t in round_s.items()},
            steps_by_tier={str(j): s for j, s in choice.by_tier.items()},
            tiers=list(choice.tiers),
            steps=choice.steps,
            fallback_exploratory=choice.fallback,
            runs_chosen=chosen,
            dead_processes_before_training={str(i): why for i, why in pool.dead.items()},
        )
        deadline = t_start + budget_s - setting.reserve_s
        for i in pool.live():
            pool.send(i, ("train", list(choice.tiers), choice.steps, deadline))
        hard = t_start + budget_s - min(15.0, setting.reserve_s / 4)

        def on(i: int, kind: str, name: str, step: int) -> None:
            reached[name] = step
            if kind == "scored":
                bundle.write_tables(collect(staging, chosen), staging)

        pool.receive(hard, "done", on)
        for i in pool.live():
            pool.send(i, ("exit",))
        for proc in pool.procs:
            proc.join(max(0.0, min(5.0, hard - time.time())))
    finally:
        killed = pool.kill()
        log.append(f"processes killed at the end: {killed}" if killed else "every process ended by itself")
    records = collect(staging, chosen)
    seen = {r["run"] for r in records}
    for i, share in enumerate(shares):
        for tier, run in share:
            if run.name in chosen and run.name not in seen:
                why = pool.dead.get(i) or ("killed at the hard deadline" if i in killed else "no record")
                step = reached.get(run.name, 0)
                error = f"process {i}: {why} (last reported step {step})"
                records.append(run_record(run, tier, choice.steps if choice else None, step, None, error))
    records.sort(key=lambda r: (r["tier"], [x.name for _, x in tier_runs(TIERS)].index(r["run"])))
    bundle.write_tables(records, staging)
    logs = (
        "\n".join(log)
        + "\n"
        + "".join(
            f"\n== worker {p.name}\n{p.read_text(errors='replace')[-60000:]}"
            for p in sorted(staging.glob("worker-*.log"))
        )
    )
    bundle.write_log(logs)
    where, dropped = bundle.write_weights(records, staging)
    runs_out = [
        {k: v for k, v in r.items() if k not in ("curve", "config")}
        | {"weights": where.get(r["run"]), "config": r["config"]}
        for r in records
    ]
    scored = [r for r in records if r["error"] is None]
    bundle.write_manifest(
        phase="finished",
        runs=runs_out,
        weights_dropped=dropped,
        failed=[r["run"] for r in records if r["error"]],
        wall_time_s=round(time.time() - t_start, 2),
        process_problems={str(i): w for i, w in pool.dead.items()},
        files=sorted(set(META_FILES) | set(where.values())),
    )
    problems = bundle_problems(bundle.folder)
    if problems:
        log.append("bundle limits: " + "; ".join(problems))
        print("bundle limits broken: " + "; ".join(problems), file=sys.stderr)
    shutil.rmtree(staging, ignore_errors=True)
    print("\n".join(log))
    print(f"bundle: {bundle.folder} ({len(scored)} runs scored, {len(records) - len(scored)} failed)")
    return 0 if scored else 1
