"""The JupyterLab correlation-map explorer: widgets wired to :func:`enlcn.explore.explore`.

Dropdowns choose the image, the model (and a second one to compare) and the attention module; sliders
the query and the estimate's knobs (``k``, ``m``, seed, orthogonal or i.i.d. features). With the
``ipympl`` backend (``%matplotlib widget``, :func:`enable_clicks`) a click on the image moves the query.

Two promises, tested (tests/test_explorer_widget.py):

* **One figure.** Every redraw clears and redraws the same figure; the explorer never opens another.
* **One redraw per change.** A click sets the row and the column together and draws once, at the new
  query (setting the two sliders one after the other would draw twice, the first time at a half-updated
  query); so does an image change that moves the sliders' ranges.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from torch import nn

from .correlation import attention_inputs
from .data.synthetic import true_repeats
from .explore import Exploration, Knobs, explore
from .viz import plot_exploration

#: ``image name -> (uint8 LR image, label map or None)`` as :func:`enlcn.study.explore_images` returns
Images = Mapping[str, tuple[np.ndarray, np.ndarray | None]]


def enable_clicks() -> bool:
    """Switch the notebook to the ``ipympl`` backend (clickable figures); False where that is impossible
    (no IPython, no ipympl): the sliders still work."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return False
        shell.run_line_magic("matplotlib", "widget")
    except Exception:  # noqa: BLE001 - any failure means: no clicks, sliders only
        return False
    return True


class QueryExplorer:
    """Widgets for one notebook: ``display(QueryExplorer(models, images, ...).widget)``."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        images: Images,
        image: str,
        model: str,
        compare: str = "",
        module: int = 0,
        query: tuple[int, int] = (0, 0),
        clickable: bool = False,
    ) -> None:
        import ipywidgets as W

        self.models, self.images, self.clickable = models, images, clickable
        lr = images[image][0]
        self.w_image = W.Dropdown(options=list(images), value=image, description="image")
        self.w_model = W.Dropdown(options=list(models), value=model, description="model")
        self.w_compare = W.Dropdown(options=["(none)", *models], value=compare or "(none)",
                                    description="compare")
        n_modules = len(models[model].attention_modules())
        self.w_module = W.IntSlider(value=module, min=0, max=max(n_modules - 1, 0), description="module")
        self.w_row = W.IntSlider(value=query[0], min=0, max=lr.shape[0] - 1, description="row")
        self.w_col = W.IntSlider(value=query[1], min=0, max=lr.shape[1] - 1, description="col")
        self.w_k = W.FloatSlider(value=0, min=0, max=20, step=0.5, description="k (0: own)")
        self.w_m = W.IntSlider(value=0, min=0, max=512, step=8, description="m (0: own)")
        self.w_seed = W.IntSlider(value=-1, min=-1, max=99, description="seed (−1: own)")
        self.w_orth = W.Dropdown(options=[("own", None), ("orthogonal", True), ("i.i.d.", False)],
                                 description="features")
        self.out = W.Output()
        self.message = W.HTML()
        self.redraws = 0  # how many times the figure was drawn (tests count them)
        self.results: dict[str, Exploration] = {}
        self._held = False
        self._inputs: dict[tuple[str, str], list] = {}
        with plt.ioff():  # shown where the layout puts it, not also by pyplot at the end of the cell
            self.figure = plt.figure(figsize=(15, 3))
        if clickable:  # ipympl: the canvas is a widget, shown once and redrawn in place
            self.figure.canvas.mpl_connect("button_press_event", self.on_click)
            view: Any = self.figure.canvas
        else:  # inline: a picture in an Output, replaced on each redraw; pyplot need not keep the figure
            plt.close(self.figure)
            view = self.out
        self.widget = W.VBox([
            W.HBox([self.w_image, self.w_model, self.w_compare]),
            W.HBox([self.w_module, self.w_row, self.w_col]),
            W.HBox([self.w_k, self.w_m, self.w_seed, self.w_orth]),
            self.message,
            view,
        ])
        self.w_image.observe(self._image_changed, names="value")
        self.w_model.observe(self._model_changed, names="value")
        for w in (self.w_compare, self.w_module, self.w_row, self.w_col, self.w_k, self.w_m, self.w_seed,
                  self.w_orth):
            w.observe(self.redraw, names="value")
        self.redraw()

    # -- batching ----------------------------------------------------------------------------------
    @contextmanager
    def held(self) -> Iterator[None]:
        """Change several widgets, then draw once (at the end, in the final state)."""
        outer = self._held
        self._held = True
        try:
            yield
        finally:
            self._held = outer
        if not outer:
            self.redraw()

    def set_query(self, row: int, col: int) -> None:
        """Move the query to ``(row, col)``: one redraw."""
        with self.held():
            self.w_row.value, self.w_col.value = int(row), int(col)

    def on_click(self, event: Any) -> None:
        """A click on the image panel of the first row moves the query there."""
        if self.figure.axes and event.inaxes is self.figure.axes[0] and event.xdata is not None:
            self.set_query(int(round(event.ydata)), int(round(event.xdata)))

    def _image_changed(self, change: Mapping[str, Any]) -> None:
        lr = self.images[change["new"]][0]
        with self.held():  # the sliders may clamp their values: still one redraw
            self.w_row.max, self.w_col.max = lr.shape[0] - 1, lr.shape[1] - 1

    def _model_changed(self, change: Mapping[str, Any]) -> None:
        n_modules = len(self.models[change["new"]].attention_modules())
        with self.held():
            self.w_module.max = max(n_modules - 1, 0)

    # -- drawing ------------------------------------------------------------------------------------
    def knobs(self) -> Knobs:
        """The estimate's knobs as the sliders set them (0 / −1 / "own": the module's own)."""
        seed = None if self.w_seed.value < 0 else int(self.w_seed.value)
        return Knobs(k=self.w_k.value or None, m=self.w_m.value or None, seed=seed,
                     orthogonal=self.w_orth.value)

    def _inputs_of(self, name: str, image: str) -> list:
        key = (name, image)
        if key not in self._inputs:  # one forward pass per model and image
            self._inputs[key] = attention_inputs(self.models[name], self.images[image][0])
        return self._inputs[key]

    def redraw(self, *_: Any) -> None:
        """Explore the current state for each chosen model and draw it into the one figure."""
        if self._held:
            return
        image = self.w_image.value
        lr, labels = self.images[image]
        query = (int(self.w_row.value), int(self.w_col.value))
        names = [self.w_model.value] + ([self.w_compare.value] if self.w_compare.value != "(none)" else [])
        repeats = true_repeats(labels, query) if labels is not None else None
        try:
            self.results = {
                n: explore(self.models[n], lr, query, self.w_module.value, self.knobs(), repeats,
                           self._inputs_of(n, image))
                for n in names
            }
        except (ValueError, IndexError) as err:  # e.g. k on a model without an estimate: say so, keep the map
            self.message.value = f"<b>cannot show this:</b> {err}"
            return
        self.message.value = ""
        plot_exploration(lr, self.results, repeats, fig=self.figure)
        self.redraws += 1
        if self.clickable:
            self.figure.canvas.draw_idle()
        else:
            from IPython.display import display

            with self.out:
                self.out.clear_output(wait=True)
                display(self.figure)
