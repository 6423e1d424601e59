"""The one-shot GPU study (book/protocol.md, "Pre-registered: the one-shot GPU setting").

``tools/gpu_study.sh`` runs :func:`main` on a lent GPU: it calibrates the step time of the ranked tiers, fixes
one step count *S* by the Protocol's formula (:func:`steps_for`, :func:`choose`), trains every run of the
chosen tiers concurrently, scores each on the setting's test sets and writes a bundle of at most 8 files
(:class:`Bundle`) that ``enlcn study import`` checks, re-scores on the CPU and places under
``results/gpu-x2/study/`` (:func:`import_bundle`), where the Findings chapter reads it (:func:`gpu_means`).

**How the runs share one GPU: a few processes, each stepping several runs round-robin.** The evidence,
measured on the CPU (``torch.profiler``, one training step of batch 16): EDSR-baseline 16 × 64 dispatches
about 900 top-level aten operations per step (forward, backward, Adam), EDSR + NLA about 3900; in eager
PyTorch each costs the host some 5–10 µs to launch on CUDA, so one step needs ≈ 5–40 ms of host time.
The GPU work of that step is small: the 33 body convolutions at 48², batch 16, are
2·9·64²·48²·16 ≈ 2.7 GFLOP each, ≈ 100 GFLOP forward and ≈ 300 GFLOP with the backward, about a
millisecond on an H100/H200 in bf16. One Python thread therefore cannot keep the GPU busy: the step is
launch-bound by several times. CUDA streams in one process do not help, since every launch still goes
through that one thread (and ENLCA reads its redraw counter with ``int()`` in every training call, a
host synchronisation that stalls the thread). Several processes launch in parallel, one per CPU core,
and keep the GPU fed while one of them waits. One process per run (30 runs) would create 30 CUDA
contexts (≈ 0.5 GB each, and the GPU time-slices between them); a few processes (default: one per two
CPU cores, at most 8), each stepping its share of the runs in turn (:func:`assign`), keeps the host side
parallel with few contexts. Processes also isolate failures: an exception in a run ends that run only
(recorded with its step), a CUDA error ends one process's runs, and a process that hangs is killed at
the hard deadline (:func:`run_study`), so the command ends inside its budget with a partial bundle.

Within a process each run keeps its own torch RNG states (CPU and CUDA), swapped in around its step, so a
run draws the same random numbers (ENLCA redraws, NLSA hashing) whichever runs share its process; a batch
is a pure function of seed and step (:class:`enlcn.train.PatchBatches`). A training step makes no host
synchronisation of its own (losses are summed on the device and read at each validation).

**Not fixed by the Protocol, chosen here** (to be confirmed in a dated Protocol note before a GPU run):
the contrastive loss's warm-up. The official variant switches it on after 101 of 1000 epochs; a run of
*S* steps here switches it on after the same fraction, ``⌈0.101·S⌉`` steps (:func:`warmup_steps`).

``ENLCN_GPU_STUDY_TINY=1`` (**tests only**) shrinks the model, data and constants
(:meth:`Setting.tiny`) so that the whole command runs on a CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..provenance import REPO
from .registry import BASE, CRISSCROSS, ENLA, ENLA_CL, ENLA_K, ENLCA, NLA, NLSA, Run, _enlcn_k, with_seeds

PROFILE = "gpu-x2"
#: the Protocol's ranked tiers (book/protocol.md, "Runs, in ranked tiers")
TIERS: dict[int, tuple[Run, ...]] = {
    1: (*with_seeds(BASE, 3), *with_seeds(NLA, 3), *with_seeds(ENLCA, 3, short="ENLCN")),
    2: tuple(r for arm in (ENLA, ENLA_K, ENLA_CL) for r in with_seeds(arm, 3)),
    3: tuple(r for arm in (CRISSCROSS, NLSA) for r in with_seeds(arm, 3)),
    # k = 1 is tier 2's ENLA_CL (the same model, seeds and start), k = 6 tier 1's ENLCN: not trained twice
    4: tuple(r for k in (2, 4, 8) for r in with_seeds(_enlcn_k(k), 2)),
}
#: the official variant's warm-up: the contrastive loss is on after 101 of 1000 epochs
WARMUP_FRACTION = 0.101
#: ``ENLCN_GPU_STUDY_TINY=1``: the test-only setting (:meth:`Setting.tiny`)
TINY_ENV = "ENLCN_GPU_STUDY_TINY"
#: the bundle's format; ``enlcn study import`` refuses another
BUNDLE_FORMAT = 1
MANIFEST = "provenance.json"
SCORES = "scores.csv"
CURVES = "curves.csv"
LOG = "log.txt"
MIB = 2**20


# -- the setting -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """The Protocol's constants ("How the number of steps is fixed") and what the runs are built from."""

    budget_s: float = 480.0  # B
    reserve_s: float = 60.0  # R: scoring and the bundle
    warmup_rounds: int = 5
    timed_rounds: int = 20
    margin: float = 0.85
    quantum: int = 500  # S is a whole number of these
    s_min: int = 8000
    s_floor: int = 500  # the tier-1 fallback trains at least this many steps
    val_every: int = 1000  # validation PSNR logged every this many steps (logging only)
    data_profile: str = PROFILE  # whose study data (train, validation, tests)
    overrides: tuple[tuple[str, Any], ...] = ()  # TrainConfig fields changed (tiny only)
    test_sets: tuple[str, ...] | None = None  # None: every test set of the data (tiny: the procedural one)
    tiny: bool = False

    def tests(self, scale: int) -> tuple[dict, dict]:
        """``(test pairs, masks)`` of the setting's data at ``scale`` (:func:`.data.study_data`)."""
        from .data import study_data, study_masks

        tests, masks = study_data(self.data_profile, scale)[2], study_masks(self.data_profile, scale)
        keep = self.test_sets or tuple(tests)
        return {k: v for k, v in tests.items() if k in keep}, {k: v for k, v in masks.items() if k in keep}

    @classmethod
    def tiny_setting(cls, budget_s: float) -> Setting:
        """**Tests only**: the quick preset and data, batch 2 of 16² patches, steps in units of 10."""
        return cls(
            budget_s=budget_s,
            reserve_s=0.4 * budget_s,
            warmup_rounds=2,
            timed_rounds=3,
            quantum=10,
            s_min=40,
            s_floor=10,
            val_every=20,
            data_profile="quick",
            overrides=(("preset", "quick"), ("batch_size", 2), ("lr_patch", 16)),
            test_sets=("selfsim",),
            tiny=True,
        )


def setting_from_env(budget_s: float) -> Setting:
    """The Protocol's setting, or the test-only tiny one when ``ENLCN_GPU_STUDY_TINY=1``."""
    if os.environ.get(TINY_ENV, "") == "1":
        return Setting.tiny_setting(budget_s)
    return Setting(budget_s=budget_s)


def tier_runs(tiers: Iterable[int]) -> list[tuple[int, Run]]:
    """``(tier, run)`` of ``tiers`` in rank order."""
    return [(t, r) for t in sorted(tiers) for r in TIERS[t]]


def tier_of(name: str) -> int:
    """The tier of run ``name`` (``KeyError`` if no tier has it)."""
    for t, runs in TIERS.items():
        if any(r.name == name for r in runs):
            return t
    raise KeyError(f"no tier of the GPU study has a run {name!r}")


def run_by_name(name: str) -> Run:
    """The run of the GPU study named ``name`` (``KeyError`` if no tier has it)."""
    for _, run in tier_runs(TIERS):
        if run.name == name:
            return run
    raise KeyError(f"no tier of the GPU study has a run {name!r}")


def warmup_steps(steps: int) -> int:
    """Steps without the contrastive loss: the official variant's fraction (101 of 1000 epochs) of them."""
    return math.ceil(WARMUP_FRACTION * steps)


def run_config(run: Run, steps: int, device: str, setting: Setting = Setting()):
    """``run``'s :class:`~enlcn.train.TrainConfig` under ``gpu-x2`` for ``steps`` steps: one step per epoch,
    so the learning rate halves after S/2 and 3S/4 steps; bf16 autocast on CUDA only."""
    config = run.config(PROFILE)
    return replace(
        config,
        **dict(setting.overrides),
        epochs=steps,
        iters_per_epoch=1,
        milestones=tuple(sorted({max(steps // 2, 1), max(3 * steps // 4, 1)})),
        warmup_epochs=warmup_steps(steps),
        checkpoint_every=steps,
        val_every=setting.val_every,
        bf16=device.startswith("cuda"),
    )


# -- the step count (Protocol, "How the number of steps is fixed", items 3 and 4) -----------------------
def steps_for(b_train: float, t_round: float, setting: Setting = Setting()) -> int:
    """``S_j = ⌊margin · B_train / T_j / quantum⌋ · quantum`` (0 when there is no time or no finite T_j)."""
    if not (t_round > 0 and math.isfinite(t_round)) or b_train <= 0:
        return 0
    return int(math.floor(setting.margin * b_train / t_round / setting.quantum)) * setting.quantum


@dataclass(frozen=True)
class Choice:
    """The chosen tiers ``1 … j*``, the step count S, and whether the setting is exploratory by item 4."""

    tiers: tuple[int, ...]
    steps: int
    by_tier: dict[int, int]  # S_j of every calibrated j
    fallback: bool  # tier 1 got fewer than S_min steps: every verdict is exploratory


def choose(b_train: float, round_s: dict[int, float], setting: Setting = Setting()) -> Choice:
    """Item 4: the largest ``j`` with ``S_j ≥ S_min`` (tiers ``1 … j``) and ``S = S_j``; if even tier 1 gets
    fewer, tier 1 alone trains ``max(S₁, s_floor)`` steps and the setting is exploratory."""
    by_tier = {j: steps_for(b_train, t, setting) for j, t in sorted(round_s.items())}
    good = [j for j in by_tier if by_tier[j] >= setting.s_min]
    if good:
        j = max(good)
        return Choice(tuple(range(1, j + 1)), by_tier[j], by_tier, False)
    return Choice((1,), max(by_tier.get(1, 0), setting.s_floor), by_tier, True)


def assign(runs: Sequence[tuple[int, Run]], workers: int) -> list[list[tuple[int, Run]]]:
    """Deal the runs (rank order) to ``workers`` processes in turn, so every process holds a mix of arms
    and tiers and the chosen tiers' runs spread over all processes."""
    shares: list[list[tuple[int, Run]]] = [[] for _ in range(max(1, workers))]
    for i, item in enumerate(runs):
        shares[i % len(shares)].append(item)
    return [s for s in shares if s]


def default_workers(device: str, n_runs: int) -> int:
    """Processes: one per two CPU cores, at most 8, on CUDA; one per core on the CPU; never more than runs."""
    cores = os.cpu_count() or 1
    n = min(8, max(1, cores // 2)) if device.startswith("cuda") else cores
    return max(1, min(n, n_runs))


# -- one run inside a worker process -----------------------------------------------------------------
@dataclass
class RunState:
    """A run being trained in a worker: its trainer (model, Adam, schedule, batches), RNG states, progress."""

    tier: int
    run: Run
    trainer: Any  # enlcn.train.Trainer
    rng: tuple[Any, Any]  # (CPU, CUDA or None) torch RNG states, swapped in around each step
    step: int = 0
    loss_sum: Any = 0.0  # L1 summed on the device since the last log
    finite: Any = True  # every loss finite since the last log (a device bool)
    curve: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0  # time spent in this run's steps and validations


def build_run(
    tier: int, run: Run, steps: int, device: str, setting: Setting, data: tuple, folder: Path
) -> RunState:
    """A fresh run at step 0: the trainer's model (paired initialisation), Adam and schedule, channels-last
    on CUDA, and the RNG state the trainer's seeding left."""
    import torch

    from ..train import Trainer

    train, _, _ = data
    config = run_config(run, steps, device, setting)
    trainer = Trainer(config, [(lr, hr) for _, lr, hr in train], [], folder / run.name, device=device)
    if device.startswith("cuda"):
        trainer.model.to(memory_format=torch.channels_last)
    cuda = torch.cuda.get_rng_state(trainer.device) if trainer.device.type == "cuda" else None
    return RunState(tier, run, trainer, (torch.get_rng_state(), cuda))


def train_step(state: RunState, batch: tuple[Any, Any]) -> None:
    """One optimisation step of Eq. 12 (L1 + λ·contrastive after the warm-up), with no host synchronisation:
    bf16 autocast and channels-last on CUDA, the learning-rate schedule stepped per step."""
    import torch
    import torch.nn.functional as F

    from ..models import contrastive_loss, set_contrastive

    tr = state.trainer
    cfg, model, dev = tr.config, tr.model, tr.device
    torch.set_rng_state(state.rng[0])
    if state.rng[1] is not None:
        torch.cuda.set_rng_state(state.rng[1], dev)
    if state.step % cfg.iters_per_epoch == 0:
        model.on_epoch_start()
    set_contrastive(model, state.step // cfg.iters_per_epoch >= cfg.warmup_epochs)
    cuda = dev.type == "cuda"
    lr, hr = (t.to(dev, non_blocking=True) for t in batch)
    if cuda:
        lr = lr.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", torch.bfloat16, enabled=cfg.bf16 and cuda):
        sr = model(lr)
        l1 = F.l1_loss(sr.float(), hr)
        cl = contrastive_loss(model)
        loss = l1 if cl is None else l1 + cfg.lambda_cl * cl
    tr.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    tr.optimizer.step()
    tr.scheduler.step()
    state.step += 1
    state.loss_sum = state.loss_sum + l1.detach()
    state.finite = torch.logical_and(torch.as_tensor(state.finite, device=dev), torch.isfinite(loss.detach()))
    state.rng = (torch.get_rng_state(), torch.cuda.get_rng_state(dev) if cuda else None)


def batch_of(state: RunState, cache: dict[tuple[int, int], tuple[Any, Any]]) -> tuple[Any, Any]:
    """The run's batch at its step (a pure function of seed and step; shared by the runs of one seed),
    in pinned memory on CUDA so the copy does not block the host."""
    tr = state.trainer
    key = (tr.config.seed, state.step)
    if key not in cache:
        if len(cache) > 16:
            cache.clear()
        lr, hr = tr.batches[state.step]
        if tr.device.type == "cuda":
            lr, hr = lr.pin_memory(), hr.pin_memory()
        cache[key] = (lr, hr)
    return cache[key]


def log_point(state: RunState, val: list, since: int) -> None:
    """Validation PSNR (logging only) and the mean L1 since the last point; a non-finite loss fails it."""
    import numpy as np

    from ..evaluate import upscale
    from ..metrics import psnr_y, quantize

    tr = state.trainer
    if not bool(state.finite):
        raise FloatingPointError(
            f"a loss became non-finite between steps {state.step - since} and {state.step}"
        )
    l1 = float(state.loss_sum) / max(since, 1)
    scores = [
        psnr_y(quantize(upscale(tr.model, lr, tr.config.scale)), hr, tr.config.scale) for _, lr, hr in val
    ]
    tr.model.train()
    state.curve.append(
        {"step": state.step, "l1": l1, "val_psnr": float(np.mean(scores)) if scores else math.nan}
    )
    state.loss_sum = 0.0


def score_run(state: RunState, data: tuple, masks: dict) -> pd.DataFrame:
    """Per-image Y-PSNR / SSIM of the run's final weights in float32 (TF32 off) on every test set."""
    import torch

    from .scoring import score

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = state.trainer.model.float().eval()
    return score(model, state.trainer.config.scale, data[2], masks)


def half_state(model: Any) -> dict[str, Any]:
    """The model's state dict on the CPU, floating tensors in float16, contiguous."""
    import torch

    return {
        k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }


def stage_run(state: RunState, staging: Path, scores: pd.DataFrame | None, steps: int) -> None:
    """Write the run's record (``record.json``), scores and float16 weights under ``staging/<run>/``."""
    from ..provenance import write_csv_atomic, write_json_atomic
    from ..train import save_atomic

    folder = staging / state.run.name
    record = {
        "run": state.run.name,
        "tier": state.tier,
        "label": state.run.label,
        "seed": state.run.seed,
        "steps_target": steps,
        "step": state.step,
        "seconds": round(state.seconds, 2),
        "error": state.error,
        "curve": state.curve,
        "config": json.loads(json.dumps(asdict(state.trainer.config))),
    }
    if scores is not None:
        write_csv_atomic(folder / SCORES, scores)
        buffer = {"config": record["config"], "model": half_state(state.trainer.model)}
        save_atomic(buffer, folder / "weights16.pt")
    write_json_atomic(folder / "record.json", record)


# -- a worker process --------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def calibrate_share(
    items: list[tuple[int, Run]],
    j: int,
    device: str,
    setting: Setting,
    data: tuple,
    built: dict,
    folder: Path,
    conn: Any,
    stop: Any,
) -> None:
    """Protocol item 2 in one process: its runs of tiers ``1 … j`` step in turn (contrastive loss on, as after
    the warm-up) for ``warmup_rounds`` untimed and ``timed_rounds`` timed rounds; the median round time is
    sent, then the process keeps stepping (untimed) until ``stop`` is set, so that every process is timed
    while the others run."""
    for tier, run in items:
        if tier <= j and run.name not in built:
            built[run.name] = build_run(tier, run, setting.s_min, device, setting, data, folder)
            built[run.name].trainer.config.warmup_epochs = 0
    states = [built[r.name] for t, r in items if t <= j]
    if not states:
        conn.send(("calibrated", j, None))
        stop.wait()
        return
    cache: dict = {}
    times = []
    for i in range(setting.warmup_rounds + setting.timed_rounds):
        t = time.perf_counter()
        for state in states:
            train_step(state, batch_of(state, cache))
        _sync(device)
        if i >= setting.warmup_rounds:
            times.append(time.perf_counter() - t)
    conn.send(("calibrated", j, statistics.median(times)))
    while not stop.is_set():
        for state in states:
            train_step(state, batch_of(state, cache))
        _sync(device)


def train_share(
    items: list[tuple[int, Run]],
    tiers: Sequence[int],
    steps: int,
    deadline: float,
    device: str,
    setting: Setting,
    data: tuple,
    masks: dict,
    staging: Path,
    conn: Any,
) -> None:
    """Train this process's runs of ``tiers`` in turn to ``steps`` or until ``deadline`` (unix), then score
    and stage each (:func:`stage_run`). A run whose step raises is recorded with its error and step; the
    others go on."""
    states = []
    for tier, run in items:
        if tier not in tiers:
            continue
        try:
            states.append(build_run(tier, run, steps, device, setting, data, staging / "work"))
        except Exception as err:  # noqa: BLE001 - recorded, the other runs go on
            failed = RunState(tier, run, None, (None, None), error=_error(err, 0))
            _stage_failed(failed, staging, steps)
    active, cache, logged = list(states), {}, {s.run.name: 0 for s in states}
    while active and time.time() < deadline:
        for state in list(active):
            t = time.perf_counter()
            try:
                train_step(state, batch_of(state, cache))
                if state.step % setting.val_every == 0:
                    log_point(state, data[1], state.step - logged[state.run.name])
                    logged[state.run.name] = state.step
                    conn.send(("progress", state.run.name, state.step))
            except Exception as err:  # noqa: BLE001 - recorded, the other runs go on
                state.error = _error(err, state.step)
                active.remove(state)
                _stage_failed(state, staging, steps)
            state.seconds += time.perf_counter() - t
            if state.step >= steps and state in active:
                active.remove(state)
            if time.time() >= deadline:
                break
    for state in states:
        if state.error is not None:
            continue
        try:
            if state.step != logged[state.run.name]:
                log_point(state, data[1], state.step - logged[state.run.name])
            scores = score_run(state, data, masks)
        except Exception as err:  # noqa: BLE001 - recorded, the other runs go on
            state.error = _error(err, state.step, "scoring")
            _stage_failed(state, staging, steps)
            continue
        stage_run(state, staging, scores, steps)
        conn.send(("scored", state.run.name, state.step))


def _error(err: BaseException, step: int, where: str = "training") -> str:
    return f"{where} failed at step {step}: {type(err).__name__}: {' '.join(str(err).split())[:500]}"


def _stage_failed(state: RunState, staging: Path, steps: int) -> None:
    from ..provenance import write_json_atomic

    record = {
        "run": state.run.name,
        "tier": state.tier,
        "label": state.run.label,
        "seed": state.run.seed,
        "steps_target": steps,
        "step": state.step,
        "seconds": round(state.seconds, 2),
        "error": state.error,
        "curve": state.curve,
        "config": None,
    }
    write_json_atomic(staging / state.run.name / "record.json", record)


def worker_main(
    index: int,
    names: list[tuple[int, str]],
    device: str,
    setting: Setting,
    conn: Any,
    stop: Any,
    staging: str,
    threads: int,
) -> None:
    """A worker process: load the data, then answer the parent's commands (``calibrate j``, ``train``,
    ``exit``) for its share of the runs. Output goes to ``staging/worker-<index>.log``."""
    staging_dir = Path(staging)
    log = open(staging_dir / f"worker-{index}.log", "a", buffering=1)  # noqa: SIM115 - the process's life
    sys.stdout = sys.stderr = log
    try:
        import torch

        if not device.startswith("cuda"):
            torch.set_num_threads(threads)
        from .data import study_data

        items = [(t, run_by_name(n)) for t, n in names]
        scale = run_config(items[0][1], setting.s_min, device, setting).scale
        train, val, _ = study_data(setting.data_profile, scale)
        tests, masks = setting.tests(scale)
        data = (train, val, tests)
        built: dict[str, RunState] = {}
        conn.send(("ready", None, None))
        while True:
            msg = conn.recv()
            if msg[0] == "calibrate":
                calibrate_share(items, msg[1], device, setting, data, built, staging_dir / "cal", conn, stop)
                conn.send(("idle", msg[1], None))
            elif msg[0] == "train":
                built.clear()
                _, tiers, steps, deadline = msg
                train_share(items, tiers, steps, deadline, device, setting, data, masks, staging_dir, conn)
                conn.send(("done", None, None))
            else:
                return
    except BaseException as err:  # noqa: BLE001 - reported to the parent, then the process ends
        traceback.print_exc()
        try:
            conn.send(("crashed", _error(err, 0, "worker"), None))
        except Exception:  # noqa: BLE001, S110 - the parent may be gone
            pass


# -- the bundle ------------------------------------------------------------------------------------
#: the device's limits on what comes back from ``$OUT``
LIMITS = {"files": 8, "file_bytes": 16 * MIB, "total_bytes": 64 * MIB, "depth": 2}
#: the files besides the weights (the manifest is written last and counted with room to spare)
META_FILES = (MANIFEST, SCORES, CURVES, LOG)
#: room kept for the manifest's final version and the log
MANIFEST_ROOM = 256 * 1024
LOG_BYTES = 512 * 1024


def bundle_problems(folder: Path, limits: dict[str, int] = LIMITS) -> list[str]:
    """What breaks the device's limits in ``folder``: too many files, a file or the total too large, a file
    more than ``depth`` folders deep (empty: within the limits)."""
    files = [p for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    problems = []
    if len(files) > limits["files"]:
        problems.append(f"{len(files)} files, at most {limits['files']}")
    total = 0
    for p in files:
        size = p.stat().st_size
        total += size
        rel = p.relative_to(folder)
        if size > limits["file_bytes"]:
            problems.append(f"{rel}: {size} bytes, at most {limits['file_bytes']}")
        if len(rel.parts) - 1 > limits["depth"]:
            problems.append(f"{rel}: {len(rel.parts) - 1} folders deep, at most {limits['depth']}")
    if total > limits["total_bytes"]:
        problems.append(f"{total} bytes in all, at most {limits['total_bytes']}")
    return problems


def _serialise(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def pack_weights(
    runs: Sequence[tuple[str, int, dict[str, Any]]],
    files: int,
    room: int,
    file_bytes: int = LIMITS["file_bytes"],
) -> tuple[list[tuple[str, bytes, list[str]]], list[str]]:
    """Pack ``(run, tier, {"config", "model"})`` into at most ``files`` files of at most ``file_bytes`` and
    ``room`` bytes in all, tier 1 first (stable within a tier). From the first run that does not fit, every
    later one is dropped: weights are dropped from the last tier first. Returns ``([(file name, bytes, runs)],
    dropped runs)``."""
    order = sorted(runs, key=lambda r: r[1])
    if files < 1:
        return [], [n for n, _, _ in order]
    packs: list[tuple[str, bytes, list[str]]] = []
    current: dict[str, Any] = {}  # the open pack (counted as a file)
    blob, used = b"", 0  # the open pack serialised; bytes of the closed packs

    def fits(data: bytes) -> bool:
        return len(data) <= file_bytes and used + len(data) <= room

    for i, (name, _, payload) in enumerate(order):
        trial = _serialise({"format": BUNDLE_FORMAT, "runs": {**current, name: payload}})
        if fits(trial):
            current, blob = {**current, name: payload}, trial
            continue
        if current and len(packs) + 1 < files:  # close the open pack; the run alone opens the next
            packs.append((f"weights-{len(packs) + 1}.pt", blob, list(current)))
            used += len(blob)
            current, blob = {}, b""
            alone = _serialise({"format": BUNDLE_FORMAT, "runs": {name: payload}})
            if fits(alone):
                current, blob = {name: payload}, alone
                continue
        dropped = [n for n, _, _ in order[i:]]
        break
    else:
        dropped = []
    if current:
        packs.append((f"weights-{len(packs) + 1}.pt", blob, list(current)))
    return packs, dropped


class Bundle:
    """The folder the device brings back: every file written atomically, the limits checked at the end."""

    def __init__(self, folder: Path) -> None:
        from .. import atomic

        self.folder = atomic.check_writable(folder, "bundle folder")
        self.manifest: dict[str, Any] = {}

    def write(self, name: str, data: bytes) -> None:
        from .. import atomic

        atomic.write_bytes(self.folder / name, data)

    def write_manifest(self, **updates: Any) -> None:
        """Merge ``updates`` into the manifest and write it (``provenance.json``)."""
        self.manifest.update(updates)
        self.write(MANIFEST, json.dumps(self.manifest, indent=1, default=str).encode())

    def write_tables(self, records: list[dict[str, Any]], staging: Path) -> None:
        """``scores.csv`` (per image, every scored run) and ``curves.csv`` (validation PSNR, L1 per run)."""
        frames = [
            pd.read_csv(staging / r["run"] / SCORES).assign(run=r["run"])
            for r in records
            if (staging / r["run"] / SCORES).exists()
        ]
        scores = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["image", "psnr", "ssim", "test_set", "run"])
        )
        self.write(SCORES, scores.to_csv(index=False, float_format="%.8g").encode())
        curves = pd.DataFrame(
            [{"run": r["run"], **c} for r in records for c in r["curve"]],
            columns=["run", "step", "l1", "val_psnr"],
        )
        self.write(CURVES, curves.to_csv(index=False, float_format="%.8g").encode())

    def write_log(self, text: str) -> None:
        data = text.encode(errors="replace")
        self.write(LOG, data[-LOG_BYTES:])

    def write_weights(self, records: list[dict[str, Any]], staging: Path) -> tuple[dict[str, str], list[str]]:
        """Pack the scored runs' float16 weights into the room left (tier 1 first); returns (run → file,
        runs whose weights were dropped)."""
        import torch

        used = sum(
            (self.folder / n).stat().st_size for n in (SCORES, CURVES, LOG) if (self.folder / n).exists()
        )
        room = LIMITS["total_bytes"] - used - MANIFEST_ROOM
        files = LIMITS["files"] - len(META_FILES)
        runs = []
        for r in records:
            path = staging / r["run"] / "weights16.pt"
            if path.exists():
                runs.append((r["run"], r["tier"], torch.load(path, map_location="cpu", weights_only=True)))
        packs, dropped = pack_weights(runs, files, room)
        where = {}
        for name, blob, names in packs:
            self.write(name, blob)
            where.update(dict.fromkeys(names, name))
        return where, dropped


# -- provenance -----------------------------------------------------------------------------------
def commit_id(root: Path = REPO) -> str:
    """The commit of the code: ``$ENLCN_COMMIT``, else the file ``.enlcn-commit`` the caller wrote in the
    repository root, else git's answer (``unknown`` without a repository)."""
    value = os.environ.get("ENLCN_COMMIT", "").strip()
    if value:
        return value
    path = root / ".enlcn-commit"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    from ..provenance import git_commit

    return git_commit(root)


def device_info(device: str) -> dict[str, Any]:
    """Device name, torch / CUDA / cuDNN versions, Python and the CPU of this process."""
    import platform

    import torch

    from ..provenance import cpu_model

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_model(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
    }


# -- the parent: calibrate, choose, train, collect (Protocol, "How the number of steps is fixed") ------
class Workers:
    """The worker processes (spawned), their pipes, and what each reported."""

    def __init__(
        self, shares: list[list[tuple[int, Run]]], device: str, setting: Setting, staging: Path
    ) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        self.stop = ctx.Event()
        self.shares, self.procs, self.conns = shares, [], []
        self.dead: dict[int, str] = {}
        threads = max(1, (os.cpu_count() or 1) // len(shares))
        for i, share in enumerate(shares):
            parent, child = ctx.Pipe()
            names = [(t, r.name) for t, r in share]
            p = ctx.Process(
                target=worker_main,
                args=(i, names, device, setting, child, self.stop, str(staging), threads),
                daemon=True,
            )
            p.start()
            self.procs.append(p)
            self.conns.append(parent)

    def live(self) -> list[int]:
        return [i for i in range(len(self.procs)) if i not in self.dead]

    def send(self, i: int, msg: tuple) -> None:
        try:
            self.conns[i].send(msg)
        except (OSError, EOFError) as err:
            self.dead[i] = f"pipe closed: {err}"

    def receive(self, until: float, want: str, on: Any = None) -> dict[int, Any]:
        """Messages ``want`` from every live worker until ``until`` (unix time); other messages go to ``on``;
        a worker that crashes or closes its pipe is marked dead."""
        from multiprocessing.connection import wait

        got: dict[int, Any] = {}
        while set(self.live()) - set(got) and time.time() < until:
            waiting = {self.conns[i]: i for i in self.live() if i not in got}
            for conn in wait(list(waiting), timeout=max(0.0, min(1.0, until - time.time()))):
                i = waiting[conn]
                try:
                    kind, a, b = conn.recv()
                except (OSError, EOFError):
                    self.dead[i] = f"process ended (exit code {self.procs[i].exitcode})"
                    continue
                if kind == want:
                    got[i] = (a, b)
                elif kind == "crashed":
                    self.dead[i] = a
                elif on is not None:
                    on(i, kind, a, b)
        return got

    def kill(self) -> list[int]:
        """Kill every process still alive (the hard deadline); returns their indices."""
        killed = []
        for i, p in enumerate(self.procs):
            if p.is_alive():
                p.kill()
                killed.append(i)
        for p in self.procs:
            p.join(2)
        return killed


def calibrate(workers: Workers, setting: Setting, t_start: float, log: list[str]) -> dict[int, float]:
    """Item 2: ``T_j`` for j = 1, 2, … (tiers 1 … j in every process at once; the round of all runs is the
    slowest process's median round), stopping at the first j whose ``S_j`` falls below ``S_min``."""
    round_s: dict[int, float] = {}
    limit = t_start + setting.budget_s - setting.reserve_s
    for j in sorted(TIERS):
        for i in workers.live():
            workers.send(i, ("calibrate", j))
        got = workers.receive(limit, "calibrated")
        workers.stop.set()
        workers.receive(limit, "idle")
        workers.stop.clear()
        times = [t for _, t in got.values() if t is not None]
        if not times:
            log.append(f"calibration of tiers 1-{j}: no process reported a time")
            break
        round_s[j] = max(times)
        b_train = setting.budget_s - setting.reserve_s - (time.time() - t_start)
        s_j = steps_for(b_train, round_s[j], setting)
        log.append(
            f"calibration of tiers 1-{j}: T = {round_s[j]:.4f} s per round, S = {s_j} "
            f"(B_train {b_train:.0f} s)"
        )
        if s_j < setting.s_min:
            break
    return round_s


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
    """The whole one-shot study (see the module doc); writes the bundle under ``out`` as it goes. Returns
    0 when at least one run was scored, 1 otherwise."""
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
                records.append(
                    {
                        "run": run.name,
                        "tier": tier,
                        "label": run.label,
                        "seed": run.seed,
                        "steps_target": choice.steps if choice else None,
                        "step": reached.get(run.name, 0),
                        "seconds": None,
                        "error": f"process {i}: {why} (last reported step {reached.get(run.name, 0)})",
                        "curve": [],
                        "config": None,
                    }
                )
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


# -- import (``enlcn study import BUNDLE``) ------------------------------------------------------------
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
    from ..models import build_model
    from ..train import TrainConfig
    from .scoring import score

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
    from ..provenance import write_csv_atomic, write_json_atomic
    from ..train import save_atomic

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
    from ..provenance import git_commit

    report = {
        "tolerance_db": RESCORE_TOLERANCE_DB,
        "imported_by": git_commit(),
        "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "beyond_tolerance": rescored[rescored["beyond"]].to_dict("records"),
        "rescored": rescored.to_dict("records"),
    }
    write_json_atomic(target / STUDY_FILE, {**manifest, "import": report})
    return rescored


# -- what the Findings chapter reads ------------------------------------------------------------------
def gpu_manifest(root: Path = REPO) -> dict[str, Any] | None:
    """The imported bundle's manifest and import report (``results/gpu-x2/study/gpu-study.json``), or None."""
    path = root / "results" / PROFILE / "study" / STUDY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def gpu_means(root: Path = REPO) -> pd.DataFrame:
    """:func:`enlcn.study.stats.seed_means` (PSNR and SSIM) of the imported GPU runs (empty without any)."""
    from . import stats
    from .files import load_scores

    manifest = gpu_manifest(root)
    cols = ["arm", "seed", "run", "test_set", "psnr", "ssim"]
    if manifest is None:
        return pd.DataFrame(columns=cols)
    runs = [run_by_name(r["run"]) for r in manifest["runs"] if r["error"] is None]
    if not runs:
        return pd.DataFrame(columns=cols)
    scores = pd.concat([load_scores(PROFILE, r, root) for r in runs], ignore_index=True)
    seeds = {r.name: r.seed for r in runs}
    psnr = stats.seed_means(scores, seeds, "psnr")
    return psnr.merge(stats.seed_means(scores, seeds, "ssim"), on=["arm", "seed", "run", "test_set"])


def gpu_decision(root: Path = REPO) -> dict[str, Any] | None:
    """The pilot's decision rule on the imported GPU runs (:func:`enlcn.study.pilot.decision_row`), with
    ``counts``: the rule is met and S reached ``S_min`` (not the tier-1 fallback). None without a bundle."""
    from .pilot import bicubic_means, decision_row

    manifest = gpu_manifest(root)
    means = gpu_means(root)
    if manifest is None or means.empty:
        return None
    row = decision_row(PROFILE, means, bicubic_means(setting_of(manifest).data_profile))
    row["steps"] = manifest["steps"]
    row["counts"] = bool(row["meets the rule"] and not manifest["fallback_exploratory"])
    return row


def main(argv: list[str] | None = None) -> int:
    """``python -m enlcn.study.gpu --device cuda|cpu --budget-s N --out DIR [--workers P]``."""
    parser = argparse.ArgumentParser(prog="enlcn.study.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--budget-s", type=float, default=Setting.budget_s, help="B, from the script's start")
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="bundle folder (default: $OUT)")
    parser.add_argument("--workers", type=int, help="processes (default: one per two cores, ≤ 8, on CUDA)")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out is required when $OUT is not set")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("enlcn.study.gpu: --device cuda but CUDA is not available", file=sys.stderr)
            return 2
    t_start = float(os.environ.get("ENLCN_T0", "") or time.time())
    return run_study(args.device, args.budget_s, Path(args.out), args.workers, t_start)


if __name__ == "__main__":
    sys.exit(main())
