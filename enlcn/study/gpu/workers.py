"""The worker processes that train the runs, a few per GPU, each stepping its share of the runs in turn.

The runs dealt to the processes (:func:`assign`, :func:`default_workers`); what a process does
(:func:`worker_main`: load the data, then answer the parent's commands; :func:`calibrate_share`, a process's
timed rounds of the Protocol's item 2; :func:`train_share`, its runs trained in turn to *S* steps or the
deadline, then scored and staged, a failing run recorded while the others go on); and the parent's handle on
them (:class:`Workers`: spawned processes, their pipes, what each reported, killed at the hard deadline).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..registry import Run
from .score import _stage_failed, score_run, stage_run
from .setting import Setting, run_by_name, run_config
from .training import RunState, batch_of, build_run, log_point, train_step


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
        from ..data import study_data

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
