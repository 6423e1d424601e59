"""Named settings: model presets and the profiles that pick them.

A *model preset* fixes the size of the network (:class:`ModelPreset`); a *profile* (:class:`Profile`)
names a whole setting of the study: its model preset, the training settings (``train``, applied by
:func:`enlcn.train.train_config`), the data of the training studies (:class:`StudyData`) and the
settings of the notebooks that train nothing (:class:`AblationK`). Look names up with
:func:`get_model_preset` and :func:`get_profile`: an unknown name is an error that lists the known ones.

Presets:

* ``paper``: the paper's and the official README's ENLCN — 32 ResBlocks, 256 features, res_scale 0.1,
  ``m = 128`` random features, amplification ``k = 6``, ``rgb_range = 1``;
* ``cpu``: a model a 2-core CPU trains in a few hours (8 blocks, 48 features, ``m = 32``);
* ``edsr-baseline``: EDSR's baseline backbone, 16 blocks × 64 features, with the paper's ``m = 128`` and
  ``k = 6`` (the one-shot GPU setting, book/protocol.md "Pre-registered: the one-shot GPU setting");
* ``quick``: a tiny model for tests and smoke runs (4 blocks, 16 features, ``m = 16``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ModelPreset:
    """Backbone size and the attention options every preset sets (``m``, ``k`` reach ENLA/ENLCA only)."""

    n_resblocks: int
    n_feats: int
    res_scale: float
    rgb_range: float = 1.0
    m: int = 128  # random features of ENLA/ENLCA (Eq. 4)
    k: float = 6.0  # amplification of ENLCA (Eq. 3)
    description: str = ""


MODEL_PRESETS: dict[str, ModelPreset] = {
    "paper": ModelPreset(32, 256, 0.1, m=128, k=6.0, description="the paper's ENLCN (41.2M / 43.6M params)"),
    "cpu": ModelPreset(8, 48, 0.1, m=32, k=6.0, description="trains on a 2-core CPU in a few hours"),
    "edsr-baseline": ModelPreset(
        16, 64, 0.1, m=128, k=6.0, description="EDSR-baseline 16 × 64 with the paper's m and k (GPU one-shot)"
    ),
    "quick": ModelPreset(4, 16, 0.1, m=16, k=6.0, description="tiny; for tests and smoke runs"),
}


def _lookup(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def get_model_preset(name: str) -> ModelPreset:
    """The model preset ``name`` (``ValueError`` listing the known ones if there is none)."""
    return _lookup(MODEL_PRESETS, name, "model preset")


def get_profile(name: str) -> Profile:
    """The profile ``name`` (``ValueError`` listing the known ones if there is none); under
    ``ENLCN_SMOKE_STEPS`` its self-similar images at most :data:`SMOKE_SELFSIM_MOTIFS` motif sides a side."""
    profile = _lookup(PROFILES, name, "profile")
    data = profile.study_data
    side = SMOKE_SELFSIM_MOTIFS * data.selfsim_motif_size
    if smoke_steps() is None or data.selfsim_size <= side:
        return profile
    return replace(profile, study_data=replace(data, selfsim_size=side))


#: ``ENLCN_SMOKE_STEPS=N``: every profile becomes a plumbing check — N training steps of small batches
#: (:func:`enlcn.train.smoke_overrides`), the quick profile's k-ablation (:func:`ablation_k_settings`) and
#: smaller self-similar images (:data:`SMOKE_SELFSIM_MOTIFS`)
SMOKE_ENV = "ENLCN_SMOKE_STEPS"
#: the HR side of the procedural self-similar images under ``ENLCN_SMOKE_STEPS``, in motif sides (when smaller
#: than the profile's): 160 for the 3 motifs × 6 copies of 16² of the paper and cpu profiles (256 otherwise),
#: the smallest multiple of 32 that holds them at ×4. Every image the notebooks analyse goes through the
#: model: at the paper preset's 41 M parameters, 40² LR pixels instead of 64² took the paper smoke test's
#: correlation_maps notebook from 83 s to 53 s and explore from 31 s to 21 s (papermill's cell durations,
#: Intel Xeon with AVX-512, 2 cores).
SMOKE_SELFSIM_MOTIFS = 10


def smoke_steps() -> int | None:
    """``ENLCN_SMOKE_STEPS`` as a positive int, or None when unset (``ValueError`` naming it otherwise)."""
    import os

    value = os.environ.get(SMOKE_ENV, "").strip()
    if not value:
        return None
    try:
        steps = int(value)
    except ValueError:
        raise ValueError(f"{SMOKE_ENV} must be a positive integer, got {value!r}") from None
    if steps < 1:
        raise ValueError(f"{SMOKE_ENV} must be a positive integer, got {value!r}")
    return steps


def ablation_k_settings(name: str) -> AblationK:
    """``notebooks/ablation_k.ipynb``'s settings of profile ``name`` — the ``quick`` profile's under
    ``ENLCN_SMOKE_STEPS`` (the plumbing check of :func:`enlcn.train.smoke_overrides`: minutes, not hours)."""
    profile = get_profile(name)
    return get_profile("quick").ablation_k if smoke_steps() is not None else profile.ablation_k


def _meaning(default: Any, meaning: str) -> Any:
    """A dataclass field with ``default`` and what it means (``metadata["meaning"]``, shown by
    :func:`enlcn.display.settings_table`)."""
    return field(default=default, metadata={"meaning": meaning})


@dataclass(frozen=True)
class AblationK:
    """Settings of ``notebooks/ablation_k.ipynb`` (Figure 6's variance curve; no training). Each field says
    what it means (:func:`enlcn.display.settings_table` shows them on the page)."""

    ks: tuple[float, ...] = _meaning((1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0), "amplification factors k")
    coses: tuple[float, ...] = _meaning((-0.5, 0.0, 0.5), "cosines between q and k for Eq. 7")
    m: int = _meaning(128, "random features of the variance curve (the paper's m)")
    c: int = _meaning(64, "embedding width (the paper's 64)")
    draws: int = _meaning(4000, "Monte-Carlo projections per point of the variance curve")
    ms: tuple[int, ...] = _meaning((16, 64, 128, 256), "values of m for the attention-weight error")
    image_size: int = _meaning(
        48, "side of the photograph the embedding patches come from (N = side²; 48² as the official patch)"
    )
    queries: int = _meaning(128, "query positions sampled for the attention-weight error")
    repeats: int = _meaning(8, "random projections per (k, m) of the attention-weight error")


@dataclass(frozen=True)
class StudyData:
    """Data of the training studies (:mod:`enlcn.study`).

    ``source="offline"`` (quick, cpu): training on the scikit-image training photographs plus
    ``selfsim_train`` procedural self-similar images; validation (it only logs progress, no checkpoint
    is chosen on it) on ``selfsim_val`` images; tests on the scikit-image test photographs and
    ``selfsim_test`` images. The three procedural sets use different seeds, so no image is shared.

    ``source="standard"`` (paper): DIV2K train HR (800 images) for training, the first
    ``standard_val`` DIV2K validation images for validation, and the five benchmark sets for tests,
    from ``$ENLCN_DATA`` (default ``data/``) in the layout ``enlcn data fetch`` writes.
    """

    source: str = "offline"  # offline | standard
    standard_val: int = 10
    selfsim_size: int = 256  # HR side of the procedural images
    selfsim_train: int = 16
    selfsim_val: int = 4
    selfsim_test: int = 16
    seeds: tuple[int, int, int] = (101, 202, 303)  # train, val, test
    # the generator's settings (enlcn.data.synthetic.self_similar_image): motifs per image, copies of
    # each, HR side of a motif; the defaults are the generator's own
    selfsim_motifs: int = 3
    selfsim_copies: int = 6
    selfsim_motif_size: int = 16
    photos_in_train: bool = True  # the scikit-image training photographs join the training images

    def selfsim_set(self, split: str, scale: int):
        """The procedural :class:`~enlcn.data.synthetic.SelfSimilarSet` of ``split`` (train | val | test)."""
        from .data.synthetic import SelfSimilarSet

        splits = ("train", "val", "test")
        if split not in splits:
            raise ValueError(f"split must be one of {', '.join(splits)}, got {split!r}")
        i = splits.index(split)
        n = (self.selfsim_train, self.selfsim_val, self.selfsim_test)[i]
        return SelfSimilarSet(
            n,
            self.selfsim_size,
            seed=self.seeds[i],
            scale=scale,
            motifs=self.selfsim_motifs,
            copies=self.selfsim_copies,
            motif_size=self.selfsim_motif_size,
        )


@dataclass(frozen=True)
class Profile:
    """A named setting of the study. Later settings (training, data, notebooks) extend it with fields."""

    name: str
    model_preset: str
    description: str = ""
    ablation_k: AblationK = AblationK()
    #: TrainConfig fields this profile sets (enlcn.train.train_config applies them; typed there)
    train: tuple[tuple[str, object], ...] = ()
    study_data: StudyData = StudyData()

    def __post_init__(self) -> None:
        get_model_preset(self.model_preset)  # fail early on a typo

    def train_dict(self) -> dict[str, object]:
        """The training settings this profile sets, as a dict."""
        return dict(self.train)


def pilot_data(scale: int) -> StudyData:
    """The pilot's data at ``scale`` (book/protocol.md, "Candidate settings"): 56² LR self-similar images,
    2 motifs × 6 copies, 30 training, 8 validation and 32 test images."""
    return StudyData(
        selfsim_size=56 * scale,
        selfsim_train=30,
        selfsim_val=8,
        selfsim_test=32,
        selfsim_motifs=2,
        selfsim_copies=6,
        selfsim_motif_size=8 * scale,
    )


#: the pilot-x2 data, shared unchanged by the one-shot GPU setting (gpu-x2)
PILOT_X2_DATA = pilot_data(2)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "paper",
            "paper",
            "the paper's models and schedule (needs a GPU and days)",
            ablation_k=AblationK(draws=20000, image_size=64, queries=256, repeats=16),
            study_data=StudyData(source="standard"),
            train=(
                ("preset", "paper"),
                ("scale", 4),
                ("lr_patch", 48),
                ("batch_size", 16),
                ("iters_per_epoch", 1000),
                ("epochs", 1000),
                ("milestones", (200, 400, 600, 800)),
                ("checkpoint_every", 1000),
            ),
        ),
        # measured: ENLCN of the cpu preset, ×4, batch 16 of 48² patches: 3.8 s per step on 2 cores
        # (the O(N²) contrastive loss dominates); batch 8 of 32² patches keeps a model to about an hour.
        Profile(
            "cpu",
            "cpu",
            "scaled down so that a 2-core CPU finishes in hours",
            train=(
                ("preset", "cpu"),
                ("scale", 4),
                ("lr_patch", 32),
                ("batch_size", 8),
                ("iters_per_epoch", 100),
                ("epochs", 40),
                ("milestones", (20, 30)),
                ("warmup_epochs", 8),
                ("checkpoint_every", 100),
            ),
        ),
        # The pilot's candidate settings (book/protocol.md, fixed before any pilot result): EDSR and
        # EDSR + NLA only. Dense self-similar images (2 motifs × 6 phase-shifted copies, ~24 % of the
        # pixels; 56² LR, so a 32² training patch usually holds several copies of a motif), three
        # quarters of the training images self-similar, lr 2e-4 halved at 1/2 and 3/4, validation
        # every 500 steps on 8 images, paired initialisation. Steps: what the NLA arm trains in
        # ~50 min on one core beside another run (measured 0.70 s/step at ×2, 0.79 at ×4).
        *(
            Profile(
                f"pilot-x{scale}{suffix}",
                "cpu",
                f"pilot candidate: ×{scale}, dense self-similar data, {steps} steps",
                train=(
                    ("preset", "cpu"),
                    ("scale", scale),
                    ("lr_patch", 32),
                    ("batch_size", 8),
                    ("iters_per_epoch", 100),
                    ("epochs", steps // 100),
                    ("milestones", (steps // 200, 3 * steps // 400)),
                    ("lr", 2e-4),
                    ("checkpoint_every", 100),
                    ("val_every", 5),
                    ("paired_init", True),
                ),
                study_data=pilot_data(scale),
            )
            for scale, steps, suffix in (
                (2, 4000, ""), (4, 3600, ""), (2, 16000, "-long"), (4, 14400, "-long")
            )
        ),
        # The one-shot GPU setting (book/protocol.md, "Pre-registered: the one-shot GPU setting"): the
        # pilot-x2 data unchanged, EDSR-baseline 16 × 64 (m = 128, k = 6), batch 16 of 48² LR patches,
        # lr 2e-4, paired initialisation, bf16 autocast on CUDA. The number of steps S is fixed on the device
        # by the Protocol's calibration (enlcn.study.gpu): the steps below are a placeholder that
        # enlcn.study.gpu.run_config replaces with S (one step per "epoch": the lr halves at S/2 and 3S/4).
        Profile(
            "gpu-x2",
            "edsr-baseline",
            "one-shot GPU study: ×2 pilot data, EDSR-baseline 16 × 64, steps calibrated on the device",
            train=(
                ("preset", "edsr-baseline"),
                ("scale", 2),
                ("lr_patch", 48),
                ("batch_size", 16),
                ("iters_per_epoch", 1),
                ("epochs", 8000),
                ("milestones", (4000, 6000)),
                ("lr", 2e-4),
                ("checkpoint_every", 8000),
                ("val_every", 1000),
                ("paired_init", True),
                ("bf16", True),
            ),
            study_data=PILOT_X2_DATA,
        ),
        Profile(
            "quick",
            "quick",
            "minutes on a CPU; checks that everything runs",
            ablation_k=AblationK(
                ks=(1.0, 2.0, 4.0, 6.0),
                coses=(0.0, 0.5),
                draws=300,
                ms=(16, 128),
                image_size=24,
                queries=16,
                repeats=2,
            ),
            train=(
                ("preset", "quick"),
                ("scale", 2),
                ("lr_patch", 24),
                ("batch_size", 4),
                ("iters_per_epoch", 10),
                ("epochs", 3),
                ("milestones", (2,)),
                ("warmup_epochs", 1),
                ("checkpoint_every", 10),
            ),
            study_data=StudyData(selfsim_size=160, selfsim_train=4, selfsim_val=1, selfsim_test=2),
        ),
    )
}
