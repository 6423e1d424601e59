"""The study's figures: what a reader needs to read them is on them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from enlcn.correlation import Maps  # noqa: E402
from enlcn.viz import plot_correlation_maps  # noqa: E402


def test_every_correlation_map_panel_has_its_own_colour_bar():
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(64), size=(3, 8)).reshape(3, 8, 8, 8)[:, 0]  # [modules, h, w]
    maps = {name: Maps(exact=weights, estimate=weights * 2, query=(1, 2)) for name in ("ENLA", "ENLCN")}
    fig = plot_correlation_maps(np.zeros((8, 8, 3), np.uint8), maps, module=1)
    images = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(images) == 1 + 2 * 2  # the LR input, then exact and estimate per model
    assert len(bars) == 2 * 2  # one per map panel: each has its own scale
    low, high = bars[0].get_ylim()
    shown = np.log10(weights[1])
    assert np.isclose(low, shown.min()) and np.isclose(high, shown.max())  # log10 of module 1's weights
    plt.close(fig)
