"""Paper vs official code: every known difference, in one place.

Each :class:`Deviation` names the behaviour, what the paper says, what the official code
(github Zj-BinXia/ENLCA @ 5d8d5b2, paths under ``src/``) does, what *this* project does, and — where the
project lets you choose — the option that switches it, with its value under each variant. The ENLA/ENLCA
module defaults for ``variant="paper"`` / ``variant="official"`` are derived from this list
(:func:`attention_variant`), and the book's deviations chapter is generated from it, so the two cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

VARIANTS = ("paper", "official")


@dataclass(frozen=True)
class Deviation:
    """One paper-vs-official-code difference."""

    topic: str
    option: str | None  # "<scope>.<field>" of the switch in this project, or None if nothing to choose
    paper: str
    official: str
    ours: str
    source: str  # file:line in the official code
    note: str = ""
    paper_value: Any = None  # option value under variant="paper" (when option is set)
    official_value: Any = None  # option value under variant="official"


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "Random projection F",
        "attention.orthogonal",
        "m i.i.d. N(0, I) rows (Eq. 4); orthogonal rows only mentioned as a way to cut variance",
        "orthogonal 64×64 QR blocks, rows rescaled by χ_64-distributed norms",
        "both; orthogonal blocks additionally sign-corrected (exactly Haar)",
        "model/ENLA.py:90-119",
        paper_value=False,
        official_value=True,
    ),
    Deviation(
        "Feature map φ",
        "attention.feature_eps",
        "m^-½·exp(Fu − ‖u‖²/2)",
        "m^-½·(exp(Fu − ‖u‖²/2) + 1e-4)",
        "both; the constant is the option's value",
        "model/ENLA.py:47-72",
        "Official checkpoints were trained with the 1e-4 inside φ.",
        paper_value=0.0,
        official_value=1e-4,
    ),
    Deviation(
        "When F is redrawn",
        "attention.redraw",
        "every epoch",
        "every 640 training forward calls (at calls 641, 1282, …), never in eval",
        "'epoch', 'interval' (with attention.redraw_interval = 640) or 'never'",
        "model/__init__.py:26,41; model/ENLA.py:181-207",
        "With 1000 iterations per epoch, 640 calls is about 0.64 epoch.",
        paper_value="epoch",
        official_value="interval",
    ),
    Deviation(
        "Contrastive loss ranks",
        "attention.loss_form",
        "Eq. 10: top n1·N vs n1·N ranks from n2·N (n1 = 2 %, n2 = 8 %), no hinge",
        "top 15 vs sorted ranks 50–64, relu(−log(pos/(neg + 1e-6)) + 1)",
        "both; 'paper' uses floor(n·N) counts and log-space means, optional hinge",
        "model/attention.py:31-39",
        "Fixed counts equal 1.9 % / 6.4–8.3 % of N at 28², 0.65 % / 2.2–2.8 % at 48² (ENLCA issue #3).",
        paper_value="paper",
        official_value="official",
    ),
    Deviation(
        "Hinge on the contrastive loss",
        "attention.hinge",
        "none (Eq. 10); bounded anyway in [b − 2k, b] since T = k·cos",
        "relu(… + 1) per query",
        "option; always on in the official form",
        "model/attention.py:38",
        paper_value=False,
        official_value=True,
    ),
    Deviation(
        "Key normalisation",
        "attention.key_norm",
        "Eq. 3 divides K = √k·δ(X) by ‖θ(X)‖ (a typo)",
        "Q and K each L2-normalised by their own norm (F.normalize, eps 5e-5)",
        "'own' (both variants, as Eq. 8 needs) or 'query' for Eq. 3 taken literally",
        "model/attention.py:27-28",
        "Both variants use 'own': Eq. 8 treats Q and K as unit directions.",
        paper_value="own",
        official_value="own",
    ),
    Deviation(
        "Amplification k",
        "attention.k",
        "k = 6 multiplies Q·K",
        "√6 applied to Q and to K, so Q·K = 6·cos",
        "same as the code (k is the product's factor)",
        "model/attention.py:21",
        paper_value=6.0,
        official_value=6.0,
    ),
    Deviation(
        "Embedding kernels θ, δ, ψ",
        "attention.embed_kernel",
        "'all conv kernels 3×3'",
        "1×1 convs with bias, no activation; θ, δ: C→C/4, ψ: C→C",
        "1×1 in both variants (the paper's sentence is EDSR's blanket statement); 3 is available",
        "model/attention.py:13-15",
        paper_value=1,
        official_value=1,
    ),
    Deviation(
        "Residual scale of ENLCA",
        None,
        "not mentioned",
        "out·0.1 + x (and res_scale 0.1 in every ResBlock)",
        "res_scale option, 0.1",
        "model/attention.py:45",
    ),
    Deviation(
        "Contrastive loss cost",
        None,
        "—",
        "full N×N exp + sort per image, computed even during warm-up",
        "top-k in row chunks (same value), computed only when switched on",
        "model/attention.py:32-35",
    ),
    Deviation(
        "Module placement",
        None,
        "5 modules, 'one after every eight residual blocks'",
        "one before ResBlock 1, then after 8, 16, 24, 32 (hard-coded i % 9, 32 blocks only)",
        "one before the first block and one after every n_resblocks/4 blocks (generalised)",
        "model/enlcn.py:28-38,62",
    ),
    Deviation(
        "Warm-up without the contrastive loss",
        "train.warmup_epochs",
        "150 epochs",
        "101 epochs (loss on when get_last_epoch() > 100)",
        "option",
        "trainer.py:52",
        paper_value=150,
        official_value=101,
    ),
    Deviation(
        "Adam β2",
        "train.beta2",
        "0.99",
        "0.999 (default; the README does not override it)",
        "option",
        "option.py:121-124",
        paper_value=0.99,
        official_value=0.999,
    ),
    Deviation(
        "LR patch size",
        "train.lr_patch",
        "28×28 (×4), 46×46 (×2)",
        "48×48 for both (--patch_size 192 / 96 is the HR size)",
        "option",
        "README; data/common.py:8-17",
        paper_value="28 (×4) / 46 (×2)",
        official_value=48,
    ),
    Deviation(
        "Learning-rate schedule",
        "train.milestones",
        "1e-4, halved 'after 200 epochs', 1000 epochs",
        "MultiStepLR 200-400-600-800, γ = 0.5 (1e-4 → 6.25e-6)",
        "option",
        "README; utility.py:203-205",
    ),
    Deviation(
        "Augmentation",
        None,
        "h-flip and 90°/180°/270° rotations",
        "hflip, vflip, transpose each p = 0.5 (all 8 dihedral transforms)",
        "all 8 dihedral transforms (the same set as the paper's)",
        "data/common.py:59-71",
    ),
    Deviation(
        "Evaluation",
        None,
        "Y-PSNR/SSIM on Set5, Set14, B100, Urban100, Manga109",
        "Y-PSNR only (no SSIM), --chop into 4 quadrants (ENLCA global only inside a quadrant), no Manga109",
        "whole-image inference by default; chop as an option",
        "utility.py:165-181; model/__init__.py:117-159",
    ),
)


def deviations_table() -> pd.DataFrame:
    """All deviations as a table (columns topic, option, paper, official, ours, source, note)."""
    cols = ["topic", "option", "paper", "official", "ours", "source", "note"]
    return pd.DataFrame([{c: getattr(d, c) for c in cols} for d in DEVIATIONS], columns=cols)


def attention_variant(variant: str) -> dict[str, Any]:
    """ENLA/ENLCA option values of ``variant`` (``"paper"`` or ``"official"``), from :data:`DEVIATIONS`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    values = {}
    for d in DEVIATIONS:
        if d.option and d.option.startswith("attention."):
            values[d.option.split(".", 1)[1]] = d.paper_value if variant == "paper" else d.official_value
    return values
