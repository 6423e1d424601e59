"""A trained run's end inside its worker process: scored on the setting's test sets in float32
(:func:`score_run`), and staged for the bundle (:func:`stage_run`: its record, scores and float16 weights;
a failed run's record alone).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from .bundle import SCORES, run_record
from .training import RunState


def score_run(state: RunState, data: tuple, masks: dict) -> pd.DataFrame:
    """Per-image Y-PSNR / SSIM of the run's final weights in float32 (TF32 off) on every test set."""
    import torch

    from ..scoring import score

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


def _record(state: RunState, steps: int, config: dict | None) -> dict:
    """:func:`~enlcn.study.gpu.bundle.run_record` of a run this process trained (or tried to)."""
    seconds = round(state.seconds, 2)
    return run_record(state.run, state.tier, steps, state.step, seconds, state.error, state.curve, config)


def stage_run(state: RunState, staging: Path, scores: pd.DataFrame | None, steps: int) -> None:
    """Write the run's record (``record.json``), scores and float16 weights under ``staging/<run>/``."""
    from ...provenance import write_csv_atomic, write_json_atomic
    from ...train import save_atomic

    folder = staging / state.run.name
    record = _record(state, steps, json.loads(json.dumps(asdict(state.trainer.config))))
    if scores is not None:
        write_csv_atomic(folder / SCORES, scores)
        buffer = {"config": record["config"], "model": half_state(state.trainer.model)}
        save_atomic(buffer, folder / "weights16.pt")
    write_json_atomic(folder / "record.json", record)


def _stage_failed(state: RunState, staging: Path, steps: int) -> None:
    from ...provenance import write_json_atomic

    write_json_atomic(staging / state.run.name / "record.json", _record(state, steps, None))
