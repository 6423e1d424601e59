"""The JupyterLab explorer (enlcn.explorer_widget): one figure, one redraw per change, at the final state."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from enlcn.explore import explore  # noqa: E402
from enlcn.explorer_widget import QueryExplorer  # noqa: E402
from enlcn.models import build_model  # noqa: E402

pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    kinds = {"ENLCN": "enlcn", "NLA": "edsr+nla"}
    models = {name: build_model(kind, 2, "quick").eval() for name, kind in kinds.items()}
    rng = np.random.default_rng(0)
    labels = np.full((20, 24), -1)
    labels[[2, 9, 15], [3, 12, 20]] = 0  # one motif repeated three times
    images = {"selfsim": (rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), labels),
              "photo": (rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), None)}
    return models, images


@pytest.fixture
def explorer(setup):
    models, images = setup
    plt.close("all")
    return QueryExplorer(models, images, image="selfsim", model="ENLCN", module=0, query=(2, 3))


def test_it_keeps_one_figure_through_many_changes(explorer):
    before = plt.get_fignums()
    figure = explorer.figure
    for row, col in [(0, 0), (5, 7), (9, 12), (19, 23), (4, 4), (10, 1)]:
        explorer.set_query(row, col)
    explorer.w_k.value = 4.0
    explorer.w_module.value = 1
    explorer.w_compare.value = "NLA"
    explorer.w_k.value = 0.0  # NLA has no estimate: k must be 0 to show both
    assert explorer.figure is figure and plt.get_fignums() == before  # no figure opened, ever
    assert len(figure.axes) >= 10  # two rows of panels (colour bars included) in the one figure


def test_a_click_redraws_once_at_the_clicked_query(explorer, setup):
    models, images = setup
    start = explorer.redraws
    event = SimpleNamespace(inaxes=explorer.figure.axes[0], xdata=12.2, ydata=8.8)
    explorer.on_click(event)
    assert explorer.redraws == start + 1  # row and column together: one redraw, never a half-updated query
    assert explorer.results["ENLCN"].query == (9, 12)
    expected = explore(models["ENLCN"], images["selfsim"][0], (9, 12), 0)
    np.testing.assert_allclose(explorer.results["ENLCN"].exact, expected.exact, rtol=1e-12)
    assert explorer.results["ENLCN"].numbers["exact mass on repeats"] > 0  # the true repeats are scored


def test_each_slider_change_redraws_once(explorer):
    start = explorer.redraws
    explorer.w_m.value = 64
    explorer.w_seed.value = 3
    assert explorer.redraws == start + 2
    assert explorer.knobs().m == 64 and explorer.knobs().seed == 3


def test_an_image_change_redraws_once_with_the_query_inside_it(explorer):
    explorer.set_query(19, 23)
    start = explorer.redraws
    explorer.w_image.value = "photo"  # 12×16: the sliders' ranges shrink and clamp the query
    assert explorer.redraws == start + 1
    assert explorer.results["ENLCN"].query == (11, 15)


def test_a_knob_that_cannot_apply_says_so_and_keeps_the_figure(explorer):
    explorer.w_model.value = "NLA"
    start = explorer.redraws
    explorer.w_k.value = 2.0  # exact attention has no random-feature estimate
    assert explorer.redraws == start and "no random-feature estimate" in explorer.message.value
    explorer.w_k.value = 0.0
    assert explorer.redraws == start + 1 and explorer.message.value == ""
