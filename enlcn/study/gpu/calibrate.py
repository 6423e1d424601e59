"""How the number of steps is fixed (Protocol, items 2 to 4), on the parent's side.

The calibration (:func:`calibrate`: ``T_j``, the slowest process's median round of tiers ``1 … j``, for
j = 1, 2, … until ``S_j`` falls below ``S_min``), the step-count formula (:func:`steps_for`) and the choice
of the tiers and *S* (:func:`choose`, :class:`Choice`, with the tier-1 fallback).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .setting import TIERS, Setting
from .workers import Workers


def steps_for(b_train: float, t_round: float, setting: Setting = Setting()) -> int:  # noqa: B008 - a frozen dataclass
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


def choose(b_train: float, round_s: dict[int, float], setting: Setting = Setting()) -> Choice:  # noqa: B008 - a frozen dataclass
    """Item 4: the largest ``j`` with ``S_j ≥ S_min`` (tiers ``1 … j``) and ``S = S_j``; if even tier 1 gets
    fewer, tier 1 alone trains ``max(S₁, s_floor)`` steps and the setting is exploratory."""
    by_tier = {j: steps_for(b_train, t, setting) for j, t in sorted(round_s.items())}
    good = [j for j in by_tier if by_tier[j] >= setting.s_min]
    if good:
        j = max(good)
        return Choice(tuple(range(1, j + 1)), by_tier[j], by_tier, False)
    return Choice((1,), max(by_tier.get(1, 0), setting.s_floor), by_tier, True)


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
