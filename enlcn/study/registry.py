"""The registry of named runs: which models the paper's ablations compare, and the paper's numbers.

An *experiment* (``table2``, ``k``, ``table6``, ``seeds``, ``pilot``, ``grid``) is a list of
:class:`Run`; a run is one model trained with the profile's :class:`~enlcn.train.TrainConfig` plus the
run's own settings. Runs shared by experiments (e.g. the ENLCN of Table 2 is also the k = 6 point of
Figure 6) are trained once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..train import TrainConfig, train_config


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
    train: tuple[tuple[str, Any], ...] = ()  # TrainConfig overrides of this run (e.g. the paper variant)

    def config(self, profile: str) -> TrainConfig:
        return train_config(
            profile, model=self.model, attention=dict(self.attention), seed=self.seed, **dict(self.train)
        )


BASE = Run("base", "EDSR (baseline)", "edsr")
ENLA = Run("enla", "+ ENLA (k = 1)", "edsr+enla")
ENLA_K = Run("enla_k", "+ ENLA, ×k", "edsr+enlca", (("contrastive", False),))
ENLA_CL = Run("enla_cl", "+ ENLA, contrastive", "edsr+enlca", (("k", 1.0),))
ENLCA = Run("enlca", "+ ENLA, ×k, contrastive (ENLCN)", "enlcn")


def _enlcn_k(k: float) -> Run:
    return Run(f"enlca_k{k:g}", f"ENLCN, k = {k:g}", "enlcn", (("k", float(k)),))


def with_seeds(run: Run, seeds: int, short: str | None = None) -> tuple[Run, ...]:
    """``run`` (seed 0) and its copies with seeds ``1 … seeds − 1``, named ``<name>_s<seed>`` and labelled
    ``<short or label>, seed <seed>``."""
    from dataclasses import replace

    label = short or run.label
    return (
        run,
        *(replace(run, name=f"{run.name}_s{s}", label=f"{label}, seed {s}", seed=s) for s in range(1, seeds)),
    )


NLA = Run("nla", "+ Non-Local (NLA)", "edsr+nla")
CRISSCROSS = Run("crisscross", "+ Criss-Cross", "edsr+crisscross")
NLSA = Run("nlsa", "+ NLSA", "edsr+nlsa")


def _grid() -> tuple[Run, ...]:
    """The powered study's grid (book/protocol.md, "The grid, once a setting is chosen"), official variant
    primary: Table 2 and Table 6 with 3 seeds per arm; Figure 6's k, Table 3's (n1, n2) (the paper's loss
    form, where n1 and n2 exist), Table 4's m and the paper variant with 2 seeds per arm."""
    runs = [
        *(r for arm in (BASE, ENLA, ENLA_K, ENLA_CL) for r in with_seeds(arm, 3)),  # Table 2
        *with_seeds(ENLCA, 3, short="ENLCN"),
        *(r for arm in (NLA, CRISSCROSS, NLSA) for r in with_seeds(arm, 3)),  # Table 6 (with BASE, ENLCA)
        *(r for k in (2, 4, 8) for r in with_seeds(_enlcn_k(k), 2)),  # Figure 6 (k = 1, 6 above)
    ]
    for n1, n2 in ((0.01, 0.04), (0.02, 0.08), (0.04, 0.16)):  # Table 3 (no contrastive loss: ENLA_K)
        name = f"enlca_n{n1 * 100:g}_{n2 * 100:g}"
        opts = (("loss_form", "paper"), ("n1", n1), ("n2", n2))
        runs += with_seeds(Run(name, f"ENLCN, Eq. 10 loss, n1 = {n1:.0%}, n2 = {n2:.0%}", "enlcn", opts), 2)
    for m in (16, 128):  # Table 4 (m = 32 is the preset's: ENLCA)
        runs += with_seeds(Run(f"enlca_m{m}", f"ENLCN, m = {m}", "enlcn", (("m", m),)), 2)
    paper = Run(
        "enlca_paper", "ENLCN, paper variant", "enlcn", (("variant", "paper"),), train=(("variant", "paper"),)
    )
    runs += with_seeds(paper, 2)
    return tuple(runs)


EXPERIMENTS: dict[str, tuple[Run, ...]] = {
    # Table 2: progressively adding ENLA, the amplification k and the contrastive loss to EDSR
    "table2": (BASE, ENLA, ENLA_K, ENLA_CL, ENLCA),
    # run-to-run noise: the same settings with other seeds (the paper reports one run per setting)
    "seeds": (*with_seeds(BASE, 3)[1:], *with_seeds(ENLCA, 3, short="ENLCN")[1:]),
    # Figure 6 (PSNR half): ENLCN with amplification k (k = 1 is Table 2's "ENLA, contrastive" run)
    "k": (ENLA_CL, _enlcn_k(2), _enlcn_k(4), ENLCA, _enlcn_k(8)),
    # the pilot (book/protocol.md): the positive control, exact non-local attention, against EDSR, paired
    # by seed; run under the pilot profiles only
    "pilot": (*with_seeds(BASE, 3), *with_seeds(NLA, 3)),
    # Table 6: attention kinds on the same backbone
    "table6": (BASE, NLA, CRISSCROSS, NLSA, ENLCA),
    # the powered study's grid, trained only in the setting the pilot chooses (book/protocol.md)
    "grid": _grid(),
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


def unique_runs(experiments: tuple[str, ...] | None = None) -> list[tuple[str, Run]]:
    """``(experiment, run)`` for every run of ``experiments`` (default: all) once, at its first experiment,
    in registry order."""
    out, seen = [], set()
    for experiment, registered in EXPERIMENTS.items():
        if experiments is not None and experiment not in experiments:
            continue
        for run in registered:
            if run.name not in seen:
                seen.add(run.name)
                out.append((experiment, run))
    return out
