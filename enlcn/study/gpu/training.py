"""One run being trained inside a worker process.

Its state (:class:`RunState`: trainer, RNG states, step, the losses summed on the device), built at step 0
(:func:`build_run`), one optimisation step with its own RNG states swapped in and no host synchronisation
(:func:`train_step`), its batch (:func:`batch_of`, a pure function of seed and step) and a validation point
(:func:`log_point`, logging only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Run
from .setting import Setting, run_config


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

    from ...train import Trainer

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

    from ...loss import objective
    from ...models import set_contrastive

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
        loss, l1, _ = objective(model, model(lr), hr, cfg.lambda_cl)
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

    from ...evaluate import upscale
    from ...metrics import psnr_y, quantize

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
