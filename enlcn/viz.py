"""Figures the notebooks share: correlation maps (paper Figures 1, 7, 8), SR crops (Figure 5) and training
curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .correlation import Maps
from .explore import Exploration

if TYPE_CHECKING:
    from .study.qualitative import CropRow


def plot_correlation_maps(
    lr: np.ndarray, maps: Mapping[str, Maps], module: int = 0, estimate: bool = True, log: bool = True
) -> plt.Figure:
    """The LR image with the query marked, then one column per model: ``softmax(Q_iᵀK)`` (top row) and,
    with ``estimate``, ENLA's random-feature weights (bottom row) of attention module ``module``.

    ``log`` shows ``log10`` of the weights (the maps span orders of magnitude); each panel has its own
    colour scale, as the paper's figures do, shown by its colour bar.
    """
    rows = 2 if estimate else 1
    fig, axes = plt.subplots(rows, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 2.6 * rows), squeeze=False)
    query = next(iter(maps.values())).query
    axes[0, 0].imshow(lr)
    axes[0, 0].scatter([query[1]], [query[0]], s=40, c="red", marker="s", edgecolors="white", linewidths=0.8)
    axes[0, 0].set_title("LR input, query")
    for r in range(rows):
        axes[r, 0].axis("off")
    for c, (name, m) in enumerate(maps.items(), start=1):
        panels = [("softmax(QᵢᵀK)", m.exact)] + ([("ENLA estimate", m.estimate)] if estimate else [])
        for r, (what, stack) in enumerate(panels):
            ax = axes[r, c]
            ax.axis("off")
            w = stack[module]
            shown = np.log10(np.clip(w, 1e-12, None)) if log else w
            image = ax.imshow(shown, cmap="magma")
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)  # each panel its own scale: say it
            bar.ax.tick_params(labelsize=6)
            ax.scatter([m.query[1]], [m.query[0]], s=12, c="cyan", marker="s")
            ax.set_title(f"{name}\n{what}" if r == 0 else what, fontsize=8)
    fig.suptitle(f"attention module {module}" + (" (log10 weights)" if log else ""), fontsize=9)
    fig.tight_layout()
    return fig


def plot_training_curves(epochs: Mapping[str, pd.DataFrame], val: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """Per-epoch L1 loss (left) and validation Y-PSNR (right) of several runs."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, frame in epochs.items():
        axes[0].plot(frame["epoch"], frame["l1"], label=name)
    for name, frame in val.items():
        axes[1].plot(frame["epoch"], frame["val_psnr"], label=name)
    axes[0].set(xlabel="epoch", ylabel="training L1 (epoch mean)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="validation Y-PSNR (dB)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_exploration(
    lr: np.ndarray,
    results: Mapping[str, Exploration],
    repeats: np.ndarray | None = None,
    log: bool = True,
    fig: plt.Figure | None = None,
    numbers: bool = True,
) -> plt.Figure:
    """One row per model: the LR image with the query (and its true repeats outlined), the exact map, the
    ENLA estimate, their difference (each with a colour bar), and (``numbers``) the numbers of
    :func:`enlcn.explore.map_numbers` as text (a page shows them better as a table below the figure).
    ``fig``: draw into this figure (cleared first) instead of a new one, as an interactive explorer
    redrawing one figure does."""
    size = (15, 3.0 * len(results)) if numbers else (12, 3.0 * len(results))
    if fig is None:
        fig = plt.figure(figsize=size)
    else:
        fig.clear()
        fig.set_size_inches(*size)
    widths = [1, 1, 1, 1, 1.25] if numbers else [1, 1, 1, 1]
    axes = fig.subplots(len(results), len(widths), squeeze=False, gridspec_kw={"width_ratios": widths})
    for r, (label, ex) in enumerate(results.items()):
        row = axes[r]
        row[0].imshow(lr)
        if repeats is not None and repeats.any():
            row[0].contour(repeats.astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
        row[0].scatter([ex.query[1]], [ex.query[0]], s=40, c="red", marker="s", edgecolors="white")
        row[0].set_title(f"{label}\nmodule {ex.module}, query {ex.query}", fontsize=8)
        shown = (lambda w: np.log10(np.clip(w, 1e-12, None))) if log else (lambda w: w)
        panels = [("softmax(QᵢᵀK)", ex.exact)]
        if ex.estimate is not None:
            panels += [("ENLA estimate", ex.estimate)]
        for c, (title, w) in enumerate(panels, start=1):
            image = row[c].imshow(shown(w), cmap="magma")
            row[c].set_title(title + (" (log10 weight)" if log else " (weight)"), fontsize=8)
            fig.colorbar(image, ax=row[c], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        if ex.difference is not None:
            lim = float(np.abs(ex.difference).max()) or 1.0
            image = row[3].imshow(ex.difference, cmap="RdBu_r", vmin=-lim, vmax=lim)
            row[3].set_title("estimate − exact (weight)", fontsize=8)
            fig.colorbar(image, ax=row[3], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        if numbers:
            text = "\n".join(f"{k}: {v:.4g}" for k, v in ex.numbers.items())
            row[4].text(0.0, 1.0, text, va="top", ha="left", fontsize=7, family="monospace")
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


def panel_title(method: str, psnr: float | None) -> str:
    """``"EDSR — 29.91 dB"`` (Figure 5's captions); the HR panel has no PSNR."""
    return method if psnr is None else f"{method} — {psnr:.2f} dB"


def plot_sr_crops(
    rows: Sequence[CropRow],
    notes: Mapping[str, str] | None = None,
    panel_inches: float = 2.35,
    zoom_share: float = 0.44,
) -> plt.Figure:
    """The paper's Figure 5 layout: per image, the whole HR image with the crop outlined, then the same crop
    of every method (HR first) titled with its crop Y-PSNR, each with the crop's detail box magnified in
    its lower-right corner (``zoom_share`` of the panel's side). ``notes``: method → a second title line
    (e.g. where its weights come from)."""
    if not rows:
        raise ValueError("plot_sr_crops: no images to show")
    columns = 1 + max(len(r.panels) for r in rows)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(panel_inches * columns, (panel_inches + 0.45) * len(rows)), squeeze=False
    )
    for ax_row, row in zip(axes, rows, strict=True):
        context = ax_row[0]
        context.imshow(row.hr)
        box = row.crop
        context.add_patch(
            plt.Rectangle(
                (box.left - 0.5, box.top - 0.5), box.size, box.size, fill=False, ec="yellow", lw=1.5
            )
        )
        context.set_title(f"{row.image}: HR, crop outlined", fontsize=9)
        d = row.detail
        dy, dx = d.top - box.top, d.left - box.left  # the detail box in the crop's coordinates
        for ax, panel in zip(ax_row[1 : 1 + len(row.panels)], row.panels, strict=True):
            ax.imshow(panel.image, interpolation="nearest")
            note = (notes or {}).get(panel.method)
            title = panel_title(panel.method, panel.crop_psnr)
            ax.set_title(f"{title}\n{note}" if note else title, fontsize=9)
            inset = ax.inset_axes([1 - zoom_share, 0.0, zoom_share, zoom_share])
            inset.imshow(panel.image, interpolation="nearest")
            inset.set_xlim(dx - 0.5, dx + d.size - 0.5)
            inset.set_ylim(dy + d.size - 0.5, dy - 0.5)
            inset.set_xticks([])
            inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_edgecolor("yellow")
                spine.set_linewidth(1.2)
            ax.indicate_inset_zoom(inset, edgecolor="yellow", alpha=1.0)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in ax_row[1 + len(row.panels) :]:
            ax.axis("off")
    fig.tight_layout()
    return fig
