"""Does exact attention find the repeats, and does the network use what it finds? (the pilot's diagnosis)

The pilot's positive control (EDSR + NLA) gains nothing over EDSR although the self-similar test images hold
information a multi-copy oracle turns into decibels (:mod:`.oracle`). Two measurements on a trained model
locate where the chain breaks:

* **finding** — for query positions on a motif copy, the weight the exact attention map
  ``softmax(QᵢᵀK)`` (paper Eq. 1) puts on the query's true repeats (the same motif position in the other
  copies: :func:`~enlcn.data.synthetic.true_repeats`), with the query's own weight removed and the rest
  renormalised — against what uniform attention would put there (``|repeats| / N``);
* **using** — each attention module's branch share ``‖A(x) − x‖ / ‖x‖``
  (:func:`~enlcn.correlation.branch_share`): how much the module changes the features it is given.

Both are measured on the trained weights and on a freshly initialised model of the same kind and seed, so
a reader sees what training changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..correlation import attention_inputs, attention_io, branch_share, motif_queries, repeat_precision
from ..data import bicubic_downscale
from ..data.synthetic import true_repeats
from ..profiles import get_profile
from ..provenance import REPO
from .files import load_model
from .registry import get_run


def exact_rows(module: nn.Module, x: torch.Tensor, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact attention logits ``QᵢᵀK`` and weights ``softmax(QᵢᵀK)`` (Eq. 1; ENLCA: of the amplified
    embeddings, Eq. 3) of the queries ``index`` in ``module`` for input ``x`` (batch 1): two
    ``[len(index), N]`` float64 arrays."""
    q, k, _ = module.embed(x)  # [1, N, c] each
    logits = (q[0, torch.as_tensor(index)] @ k[0].T).double()  # [queries, N]
    return logits.numpy(), torch.softmax(logits, dim=-1).numpy()


@torch.no_grad()
def repeat_mass(
    model: nn.Module,
    lr: np.ndarray,
    labels: np.ndarray,
    queries: int = 32,
    seed: int = 0,
    inputs: list[torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Per motif query and attention module: :func:`~enlcn.correlation.repeat_precision` of the exact map
    (the query's own weight removed) and the spread ``max − min`` of the query's logits (a spread well below
    1 means a near-uniform map). Columns ``query, module, mass, uniform_mass, top_precision,
    effective_positions, logit_spread``. ``inputs`` (:func:`~enlcn.correlation.attention_inputs` of
    ``model`` and ``lr``) saves the forward pass when it is at hand."""
    index = motif_queries(labels, queries, seed)
    inputs = attention_inputs(model, lr) if inputs is None else inputs
    rows = []
    for module_index, (module, x) in enumerate(zip(model.attention_modules(), inputs, strict=True)):
        logits, weights = exact_rows(module, x, index)
        for i, z, w in zip(index, logits, weights, strict=True):
            w = w.copy()
            w[int(i)] = 0.0
            w /= w.sum()
            stats = repeat_precision(w, true_repeats(labels, int(i)))
            rows.append({"query": int(i), "module": module_index, **stats, "logit_spread": float(np.ptp(z))})
    return pd.DataFrame(rows)


def untrained_like(profile: str, run_name: str) -> nn.Module:
    """A freshly initialised model of ``run_name``'s kind under ``profile`` (seeded by the run's seed)."""
    from ..models import build_model

    run = get_run(run_name)
    cfg = run.config(profile)  # the run's own attention options (k, m, contrastive …)
    torch.manual_seed(run.seed)
    return build_model(run.model, cfg.scale, cfg.preset, attention=cfg.attention).eval()


def attention_table(
    profile: str, models: dict[tuple[str, str], nn.Module], images: int = 4, queries: int = 32
) -> pd.DataFrame:
    """Per ``(run, weights)`` key of ``models`` and attention module: the mean over the first ``images``
    self-similar test images of ``profile`` of :func:`repeat_mass` (``queries`` motif positions each) and
    the branch share. Columns ``run, weights, module, mass, uniform_mass, top_precision,
    effective_positions, logit_spread, branch_share``."""
    scale = get_profile(profile).train_dict().get("scale", 4)
    test = get_profile(profile).study_data.selfsim_set("test", scale)
    items = [test.item(i) for i in range(min(images, len(test)))]
    lrs = [(bicubic_downscale(item.image, scale), item.labels) for item in items]
    frames = []
    for (name, weights), model in models.items():
        for image_index, (lr, labels) in enumerate(lrs):
            io = attention_io(model, lr)  # one forward pass for both measures
            mass = repeat_mass(model, lr, labels, queries, seed=image_index, inputs=[x for x, _ in io])
            mass = mass.groupby("module", as_index=False).mean(numeric_only=True).drop(columns="query")
            mass["branch_share"] = branch_share(model, lr, io)
            mass.insert(0, "image", image_index)
            mass.insert(0, "weights", weights)
            mass.insert(0, "run", name)
            frames.append(mass)
    table = pd.concat(frames, ignore_index=True)
    return (
        table.groupby(["run", "weights", "module"], as_index=False, sort=False)
        .mean(numeric_only=True)
        .drop(columns="image")
    )


def attention_use(
    profile: str, runs: tuple[str, ...], images: int = 4, queries: int = 32, root: Path = REPO
) -> pd.DataFrame:
    """:func:`attention_table` of each of ``runs`` as trained (``weights = "trained"``) and freshly
    initialised (``"initial"``)."""
    models = {}
    for name in runs:
        models[name, "trained"] = load_model(profile, name, root)
        models[name, "initial"] = untrained_like(profile, name)
    return attention_table(profile, models, images, queries)


def in_progress(profile: str, root: Path = REPO) -> dict[tuple[str, str], nn.Module]:
    """The pilot's EDSR + NLA runs of ``profile`` still training, from their latest checkpoint:
    ``{(run, "step N"): model}`` (empty when none has a checkpoint)."""
    from ..models.checkpoints import read_checkpoint
    from ..train import load_trained
    from .files import is_done, run_dir
    from .registry import get_experiment

    out = {}
    for run in get_experiment("pilot"):
        path = run_dir(profile, run, root) / "checkpoints" / "latest.pt"
        if run.model == "edsr" or is_done(profile, run, root) or not path.exists():
            continue
        step = int(read_checkpoint(path)["step"])
        out[run.name, f"step {step}"] = load_trained(path)[0]
    return out


def pilot_attention(profile: str, images: int = 4, queries: int = 32, root: Path = REPO) -> pd.DataFrame:
    """:func:`attention_use` of the finished EDSR + NLA runs of ``profile``'s pilot and
    :func:`attention_table` of those still training (at their latest checkpoint), with the column
    ``repeat_gain`` = mass / uniform mass (1: no preference for the repeats); empty if there is neither."""
    from .files import is_done
    from .registry import get_experiment

    names = tuple(r.name for r in get_experiment("pilot") if r.model != "edsr" and is_done(profile, r, root))
    frames = [attention_use(profile, names, images, queries, root)] if names else []
    running = in_progress(profile, root)
    if running:
        frames.append(attention_table(profile, running, images, queries))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    return table.assign(repeat_gain=table["mass"] / table["uniform_mass"])


def measured_weights(table: pd.DataFrame) -> str:
    """Which weights :func:`pilot_attention`'s ``table`` measured, in words for the page, read from the table
    itself (its ``weights`` column; ``candidate`` too when there is one), so that the text never says a run is
    training when none is: the finished runs (final weights, beside a freshly initialised model) and the
    runs still training at their latest checkpoint (``"step N"``)."""
    if table.empty:
        return "No EDSR + NLA run of the pilot has finished or written a checkpoint yet: nothing is measured."
    keys = [c for c in ("candidate", "run") if c in table]
    runs = table.drop_duplicates([*keys, "weights"])

    def name(row: pd.Series) -> str:
        return " ".join(f"`{row[k]}`" for k in keys)

    done = runs[runs["weights"] == "trained"]
    training = runs[runs["weights"].astype(str).str.startswith("step ")]
    per = (
        " (" + ", ".join(f"`{c}`: {n}" for c, n in done.groupby("candidate", sort=False).size().items()) + ")"
        if "candidate" in done and len(done) else ""
    )
    finished = (
        f"{len(done)} finished EDSR + NLA run{'s' if len(done) != 1 else ''}{per}, each with its final "
        "weights (`trained`) beside a freshly initialised model of the same kind and seed (`initial`)"
    )
    if training.empty:
        return f"Measured: {finished if len(done) else 'no finished run'}; no run was still training."
    at = ", ".join(f"{name(r)} at {r['weights']}" for _, r in training.iterrows())
    return (
        f"Measured: {finished if len(done) else 'no finished run'}; and {len(training)} run"
        f"{'s' if len(training) != 1 else ''} still training, at {'their' if len(training) != 1 else 'its'} "
        f"latest checkpoint: {at}."
    )
