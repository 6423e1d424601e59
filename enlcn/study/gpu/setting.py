"""The GPU study's pre-registered setting (book/protocol.md, "Pre-registered: the one-shot GPU setting").

The profile (``gpu-x2``), the Protocol's ranked tiers of runs (:data:`TIERS`) and the constants of "How the
number of steps is fixed" (:class:`Setting`, or its test-only tiny version under ``ENLCN_GPU_STUDY_TINY=1``);
a run looked up by name or tier, and its :class:`~enlcn.train.TrainConfig` for *S* steps (:func:`run_config`)
with the contrastive loss's warm-up (:func:`warmup_steps`, the official variant's fraction).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..registry import BASE, CRISSCROSS, ENLA, ENLA_CL, ENLA_K, ENLCA, NLA, NLSA, Run, _enlcn_k, with_seeds

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
#: ``ENLCN_GPU_STUDY_TINY=1``: the test-only setting (:meth:`Setting.tiny_setting`)
TINY_ENV = "ENLCN_GPU_STUDY_TINY"


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
        from ..data import study_data, study_masks

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
