"""Figures the notebooks share: correlation maps (paper Figures 1, 7, 8) and training curves."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .correlation import Maps


def plot_correlation_maps(
    lr: np.ndarray, maps: Mapping[str, Maps], module: int = 0, estimate: bool = True, log: bool = True
) -> plt.Figure:
    """The LR image with the query marked, then one column per model: ``softmax(Q_iᵀK)`` (top row) and,
    with ``estimate``, ENLA's random-feature weights (bottom row) of attention module ``module``.

    ``log`` shows ``log10`` of the weights (the maps span orders of magnitude); each panel has its own
    colour scale, as the paper's figures do.
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
            ax.imshow(shown, cmap="magma")
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
