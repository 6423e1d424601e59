"""The pilot of the powered study (book/protocol.md): is exact attention's gain detectable in a setting?

Each candidate setting is a profile (``pilot-x2``, ``pilot-x4``, and their ``-long`` extensions) in which
the ``pilot`` experiment trains EDSR and EDSR + NLA with seeds 0, 1, 2. :func:`decision_table` applies the
Protocol's rule, fixed before any pilot result:

(a) EDSR beats MATLAB bicubic by ≥ :data:`MIN_GAIN_OVER_BICUBIC` dB (mean over seeds) on the photographs and
    on the self-similar test set;
(b) NLA − EDSR, paired by seed, on ``selfsim`` or on ``selfsim_motifs``: the 95 % t-interval lies above 0
    and Δ ≥ :data:`MIN_T` standard errors.

The chosen setting is the cheapest candidate (by :data:`CANDIDATES` order) that meets both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..profiles import get_profile
from ..provenance import REPO
from . import stats
from .data import study_data
from .files import is_done, load_scores, load_summary, result_dir, run_dir
from .registry import get_experiment
from .scoring import bicubic_scores, score_upscaled

#: candidate profiles in the Protocol's order of cost (cheapest first), then the 4× extensions
CANDIDATES: tuple[str, ...] = ("pilot-x2", "pilot-x4")
EXTENSIONS: tuple[str, ...] = ("pilot-x2-long", "pilot-x4-long")
#: the pilots per book profile: the cpu study's candidates; the other profiles have none
PILOTS: dict[str, tuple[str, ...]] = {"cpu": CANDIDATES + EXTENSIONS}
#: the Protocol's wall-time budget of one run at a candidate, minutes ("one run ≤ 60 min on one core beside
#: another run"); the extension trains :data:`EXTENSION_FACTOR` × the steps with that many times the budget
BUDGET_MIN = 60.0
EXTENSION_FACTOR = 4
#: the budget of one run per pilot profile, minutes wall: the one place :func:`run_costs` reads it from
BUDGETS_MIN: dict[str, float] = {
    **{p: BUDGET_MIN for p in CANDIDATES},
    **{p: EXTENSION_FACTOR * BUDGET_MIN for p in EXTENSIONS},
}
MIN_GAIN_OVER_BICUBIC = 1.0  # dB, rule (a)
MIN_T = 4.0  # rule (b): Δ ≥ 4 SE
RULE_A_SETS = ("photos", "selfsim")
RULE_B_SETS = ("selfsim", "selfsim_motifs")


def pilot_scores(profile: str, root: Path = REPO) -> pd.DataFrame:
    """Per-image scores of the finished pilot runs of ``profile`` (``run, label, test_set, image, …``)."""
    frames = [load_scores(profile, r, root) for r in get_experiment("pilot") if is_done(profile, r, root)]
    if not frames:
        return pd.DataFrame(columns=["run", "label", "test_set", "image", "psnr", "ssim"])
    return pd.concat(frames, ignore_index=True)


def pilot_means(profile: str, root: Path = REPO) -> pd.DataFrame:
    """:func:`stats.seed_means` of the finished pilot runs (PSNR and SSIM)."""
    scores = pilot_scores(profile, root)
    if scores.empty:
        return pd.DataFrame(columns=["arm", "seed", "run", "test_set", "psnr", "ssim"])
    seeds = {r.name: r.seed for r in get_experiment("pilot")}
    psnr = stats.seed_means(scores, seeds, "psnr")
    return psnr.merge(stats.seed_means(scores, seeds, "ssim"), on=["arm", "seed", "run", "test_set"])


def budget_minutes(profile: str) -> float:
    """The Protocol's wall-time budget of one run of the pilot profile ``profile``, minutes
    (:data:`BUDGETS_MIN`); ``ValueError`` for a profile that is not a pilot setting."""
    try:
        return BUDGETS_MIN[profile]
    except KeyError:
        settings = ", ".join(BUDGETS_MIN)
        raise ValueError(f"{profile!r} is not a pilot setting ({settings}): it has no budget") from None


def budget_text() -> str:
    """The budget rule in words, from :data:`BUDGET_MIN` and :data:`EXTENSION_FACTOR` (for captions)."""
    return (
        f"{BUDGET_MIN:g} minutes wall per run at a candidate, {EXTENSION_FACTOR}× that "
        f"({EXTENSION_FACTOR * BUDGET_MIN:g} minutes) at the extension, which trains "
        f"{EXTENSION_FACTOR}× the steps"
    )


def run_costs(profile: str, root: Path = REPO) -> pd.DataFrame:
    """Per finished pilot run: steps, wall and CPU minutes (summed over sessions), threads, and the check
    against the Protocol's budget of ``profile`` (:func:`budget_minutes`)."""
    budget = budget_minutes(profile)
    rows = []
    for run in get_experiment("pilot"):
        if not is_done(profile, run, root):
            continue
        s = load_summary(profile, run, root)
        sessions = s["sessions"]
        cpu = [x.get("cpu_time_s") for x in sessions]
        rows.append(
            {
                "run": run.name,
                "arm": stats.arm_of(run.name),
                "seed": run.seed,
                "steps": s["steps"],
                "wall min": s["wall_time_s"] / 60,
                "CPU min": sum(cpu) / 60 if all(c is not None for c in cpu) else np.nan,
                "threads": s.get("threads"),
                "sessions": len(sessions),
            }
        )
    costs = pd.DataFrame(rows)
    if not costs.empty:
        costs["budget min"] = budget
        costs["within budget"] = costs["wall min"] <= budget
    return costs


def bicubic_means(profile: str) -> pd.Series:
    """MATLAB bicubic's mean Y-PSNR per test set of ``profile`` (the no-learning floor)."""
    return bicubic_scores(profile).groupby("test_set")["psnr"].mean()


def decision_row(profile: str, means: pd.DataFrame, bicubic: pd.Series) -> dict[str, object]:
    """Rule (a) and (b) for one candidate from its seed means and bicubic's means (see the module doc)."""
    row: dict[str, object] = {"candidate": profile}
    base = means[means["arm"] == "base"]
    row["EDSR seeds"] = int(base["seed"].nunique())
    row["NLA seeds"] = int(means.loc[means["arm"] == "nla", "seed"].nunique())
    rule_a = row["EDSR seeds"] > 0
    for test_set in RULE_A_SETS:
        gain = base.loc[base["test_set"] == test_set, "psnr"].mean() - bicubic.get(test_set, np.nan)
        row[f"EDSR − bicubic, {test_set}"] = gain
        rule_a = rule_a and bool(gain >= MIN_GAIN_OVER_BICUBIC)
    row["(a) met"] = rule_a
    rule_b = False
    for test_set in RULE_B_SETS:
        c = stats.claim_row(means, "nla", "base", test_set)
        row[f"NLA − EDSR, {test_set}"] = c["Δ"]
        row[f"95 % CI, {test_set}"] = (float(c["low"]), float(c["high"]))  # plain floats: readable in the CSV
        row[f"t, {test_set}"] = c["t"]
        rule_b = rule_b or bool(c["seeds"] >= 2 and c["low"] > 0 and c["t"] >= MIN_T)
    row["(b) met"] = rule_b
    complete = row["EDSR seeds"] >= 3 and row["NLA seeds"] >= 3
    row["complete (3 seeds each)"] = complete
    row["meets the rule"] = bool(complete and rule_a and rule_b)
    return row


def decision_table(profiles: tuple[str, ...] = CANDIDATES + EXTENSIONS, root: Path = REPO) -> pd.DataFrame:
    """One row per candidate with any finished run: rules (a), (b), and whether it meets the rule."""
    rows = []
    for profile in profiles:
        means = pilot_means(profile, root)
        if means.empty:
            continue
        rows.append(decision_row(profile, means, bicubic_means(profile)))
    return pd.DataFrame(rows)


def summary_means(profiles: tuple[str, ...], root: Path = REPO) -> pd.DataFrame:
    """Mean over seeds (and its sd) of each arm's test-set Y-PSNR per candidate, beside bicubic's."""
    frames = []
    for profile in profiles:
        means = pilot_means(profile, root)
        if means.empty:
            continue
        agg = means.groupby(["arm", "test_set"])["psnr"].agg(["mean", "std", "count"]).reset_index()
        bic = bicubic_means(profile).rename("mean").reset_index().assign(arm="bicubic", count=0)
        frames.append(pd.concat([bic, agg], ignore_index=True).assign(candidate=profile))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def chosen_setting(table: pd.DataFrame) -> str | None:
    """The cheapest candidate (Protocol order) meeting the rule, or None."""
    order = CANDIDATES + EXTENSIONS
    if table.empty:
        return None
    met = [p for p in order if p in set(table.loc[table["meets the rule"], "candidate"])]
    return met[0] if met else None


def extension_choice(table: pd.DataFrame) -> str | None:
    """The Protocol's extension: when every candidate of :data:`CANDIDATES` is complete and none meets the
    rule, the more promising one at 4× the steps (its ``-long`` profile) — among candidates meeting (a),
    the larger paired t of NLA − EDSR on the motif pixels; if none meets (a), the larger EDSR − bicubic
    gain on the self-similar test set. None while a candidate is incomplete or one meets the rule."""
    if table.empty:
        return None
    rows = table.set_index("candidate")
    if not set(CANDIDATES) <= set(rows.index):
        return None
    if not rows.loc[list(CANDIDATES), "complete (3 seeds each)"].all():
        return None
    if rows.loc[list(CANDIDATES), "meets the rule"].any():
        return None
    cands = rows.loc[list(CANDIDATES)]
    meeting_a = cands[cands["(a) met"]]
    if len(meeting_a):
        best = meeting_a["t, selfsim_motifs"].astype(float).idxmax()
    else:
        best = cands["EDSR − bicubic, selfsim"].astype(float).idxmax()
    return f"{best}-long"


def val_curves(profile: str, root: Path = REPO) -> pd.DataFrame:
    """Validation PSNR against step of every pilot run of ``profile`` with a log (``run, arm, seed, …``)."""
    frames = []
    for run in get_experiment("pilot"):
        path = result_dir(profile, run, root) / "val_log.csv"
        work = run_dir(profile, run, root) / "val_log.csv"
        if path.exists():
            val = pd.read_csv(path)
        elif work.exists():  # still training: its running log
            val = pd.read_csv(work, header=None, names=["step", "epoch", "val_psnr"])
        else:
            continue
        frames.append(val.assign(run=run.name, arm=stats.arm_of(run.name), seed=run.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def bicubic_val_psnr(profile: str) -> float:
    """MATLAB bicubic's mean Y-PSNR on the validation images (the floor of the validation curves)."""
    from ..data.resize import imresize_matlab

    scale = get_experiment("pilot")[0].config(profile).scale
    val = study_data(profile, scale)[1]
    scores = score_upscaled(lambda lr: imresize_matlab(lr, scale), scale, {"val": val})
    return float(scores["psnr"].mean())


def oracle_scores(profile: str) -> pd.DataFrame:
    """Per-image scores of the multi-copy oracle (:mod:`.oracle`) on ``profile``'s self-similar test set
    (and its motif pixels): how much the repeats are worth to a method told where they are."""
    from .data import study_masks
    from .oracle import oracle_upscale

    d = get_profile(profile).study_data
    scale = get_experiment("pilot")[0].config(profile).scale
    test = d.selfsim_set("test", scale)
    items = [test.item(i) for i in range(len(test))]
    pairs = test.pairs()
    by_lr = {id(lr): item for (_, lr, _), item in zip(pairs, items, strict=True)}
    scores = score_upscaled(
        lambda lr: oracle_upscale(by_lr[id(lr)], lr), scale, {"selfsim": pairs}, study_masks(profile, scale)
    )
    return scores.assign(run="oracle", label="multi-copy oracle (told where the copies are)")


def check_may_train(profile: str, runs: list, root: Path = REPO) -> None:
    """The Protocol's guard: under a pilot profile, only the pilot's arms (EDSR, EDSR + NLA) train until the
    pilot's rule has chosen that profile; ``ValueError`` naming the refused runs otherwise. Other profiles
    (quick, cpu, paper) are not the pilot's and are not restricted."""
    if profile not in CANDIDATES + EXTENSIONS:
        return
    allowed = {r.model for r in get_experiment("pilot")}
    refused = [r.name for r in runs if r.model not in allowed]
    if not refused:
        return
    chosen = chosen_setting(decision_table(root=root))
    if chosen != profile:
        raise ValueError(
            f"{profile} is a pilot setting and the pilot has chosen {chosen or 'no setting yet'}: by the "
            f"Protocol (book/protocol.md) only EDSR and EDSR + NLA train here until it is chosen; refused: "
            f"{', '.join(refused)}"
        )


def outcome(table: pd.DataFrame) -> tuple[str, str | None]:
    """Where the Protocol stands: ``("chosen", setting)`` when a candidate or extension meets the rule;
    ``("extension", profile)`` while the extension the rule picked has not finished; ``("failed",
    profile)`` when that extension is complete and meets the rule neither (the grid is then not trained);
    ``("pending", None)`` while the candidates are incomplete."""
    chosen = chosen_setting(table)
    if chosen:
        return "chosen", chosen
    extension = extension_choice(table)
    if extension is None:
        return "pending", None
    rows = table.set_index("candidate")
    if extension in rows.index and bool(rows.loc[extension, "complete (3 seeds each)"]):
        return "failed", extension
    return "extension", extension
