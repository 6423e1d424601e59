"""The book's offline correlation-map explorer: precomputed maps and numbers in one JavaScript data file.

:func:`explorer_data` runs :func:`enlcn.explore.explore` for a grid of queries on a few images, every
trained ENLA/ENLCA model of a profile and every attention module (plus ENLCN's estimate for a sweep of
``k``), and packs the maps as small PNGs (:func:`enlcn.explore.encode_map`) with their numbers.
:func:`write_explorer_js` writes ``window.ENLCN_EXPLORER = {…}`` to a ``.js`` file that
``book/_page_static/explorer/explorer.js`` (served at ``_static/explorer/``) reads: a ``<script>`` tag
works from ``file://`` and needs no kernel and no network, unlike ``fetch`` or widgets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..correlation import attention_inputs
from ..data.synthetic import true_repeats
from ..explore import Knobs, decode_map, encode_map, explore, query_grid
from ..provenance import REPO, write_json_atomic, write_text_atomic
from .data import explore_images
from .files import explorable_models
from .registry import BASE

KS = (1.0, 2.0, 4.0, 6.0, 8.0)  # the k sweep of ENLCN's estimate (Figure 6's values)


def _snap_to_motifs(grid: list[tuple[int, int]], labels: np.ndarray | None) -> list[tuple[int, int]]:
    """On a self-similar image, move each grid query to the nearest motif pixel that has repeats."""
    if labels is None:
        return grid
    flat = labels.ravel()
    counts = np.bincount(flat[flat >= 0])
    ok = np.argwhere((labels >= 0) & (counts[np.maximum(labels, 0)] >= 2))
    out = []
    for q in grid:
        best = ok[np.argmin(((ok - np.array(q)) ** 2).sum(1))]
        out.append((int(best[0]), int(best[1])))
    return list(dict.fromkeys(out))


def explorer_data(
    profile: str,
    root: Path = REPO,
    image_names: tuple[str, ...] = ("selfsim000", "chelsea"),
    models: tuple[str, ...] = ("ENLA (k = 1)", "ENLA, ×k", "ENLA, ×k, contrastive (ENLCN)"),
    grid: int = 4,
    ks: tuple[float, ...] = KS,
) -> dict:
    """Everything the offline explorer shows, as a JSON-able dict (see the module doc)."""
    scale = BASE.config(profile).scale
    images = explore_images(profile, scale)
    trained = explorable_models(profile, root)
    models = tuple(m for m in models if m in trained)
    data: dict = {"profile": profile, "models": list(models), "ks": list(ks), "images": {}}
    for name in image_names:
        if name not in images:
            continue
        lr, labels = images[name]
        queries = _snap_to_motifs(query_grid(*lr.shape[:2], grid), labels)
        entry = {"lr": encode_rgb(lr), "shape": list(lr.shape[:2]), "queries": queries, "states": {}}
        for label in models:
            model = trained[label]
            inputs = attention_inputs(model, lr)
            for qi, query in enumerate(queries):
                repeats = true_repeats(labels, query) if labels is not None else None
                for module in range(len(model.attention_modules())):
                    ex = explore(model, lr, query, module, Knobs(), repeats, inputs)
                    entry["states"][f"{label}|{module}|{qi}"] = _state(ex)
                if label.endswith("(ENLCN)"):  # the k sweep, on module 2 (the middle one)
                    for k in ks:
                        ex = explore(model, lr, query, 2, Knobs(k=k), repeats, inputs)
                        entry["states"][f"{label}|k={k:g}|{qi}"] = _state(ex)
        if labels is not None:
            entry["repeats"] = {
                str(qi): np.argwhere(true_repeats(labels, q)).tolist() for qi, q in enumerate(queries)
            }
        data["images"][name] = entry
    return data


def _state(ex) -> dict:
    return {
        "exact": encode_map(ex.exact),
        "estimate": None if ex.estimate is None else encode_map(ex.estimate),
        "numbers": {k: float(f"{v:.4g}") for k, v in ex.numbers.items()},
    }


def encode_rgb(image: np.ndarray) -> str:
    """A uint8 RGB image as a base64 PNG."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


#: what the data file assigns to: a ``<script>`` tag's global, readable from ``file://``
PREFIX = "window.ENLCN_EXPLORER = "


def explorer_js(data: dict) -> str:
    """The text of the explorer's data file: ``window.ENLCN_EXPLORER = <data>;``."""
    return PREFIX + json.dumps(data, separators=(",", ":")) + ";\n"


def read_explorer_js(text: str) -> dict:
    """The data of :func:`explorer_js`'s text."""
    if not text.startswith(PREFIX):
        raise ValueError(f"explorer data: expected text starting with {PREFIX!r}, got {text[:40]!r}")
    return json.loads(text[len(PREFIX):].rstrip().removesuffix(";"))


def write_explorer_js(data: dict, path: Path, provenance: dict | None = None) -> Path:
    """:func:`explorer_js` at ``path`` (atomically), and the provenance beside it."""
    write_text_atomic(path, explorer_js(data))
    if provenance is not None:
        write_json_atomic(path.with_name("provenance.json"), provenance)
    return path


def _same_numbers(a: dict, b: dict) -> bool:
    """Numbers kept to 4 significant digits: equal to one unit of the last digit."""
    if a.keys() != b.keys():
        return False
    x = np.array([a[k] for k in a], dtype=float)
    y = np.array([b[k] for k in a], dtype=float)
    return bool(np.all((np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= 1e-3 * np.maximum(abs(x), abs(y)))))


def _same_map(a: dict | None, b: dict | None) -> bool:
    """Two :func:`encode_map` maps within one quantization step (of either) at every position."""
    if a is None or b is None:
        return a is b
    la, lb = np.log10(decode_map(a)), np.log10(decode_map(b))
    step = sum((m["hi"] - m["lo"]) / (m["levels"] - 1) for m in (a, b))
    return la.shape == lb.shape and bool(np.all(np.abs(la - lb) <= step + 1e-9))


def same_explorer_data(new: str, old: str) -> bool:
    """Whether two data files show the same explorer (a recomputation reproduced it): the same images,
    models, queries and repeats; every number within one unit of its 4th significant digit; every map
    within one quantization level. Float rounding differs between CPUs and runs, so bytes may not."""
    a, b = read_explorer_js(new), read_explorer_js(old)
    if {k: v for k, v in a.items() if k != "images"} != {k: v for k, v in b.items() if k != "images"}:
        return False
    if a["images"].keys() != b["images"].keys():
        return False
    for name, ea in a["images"].items():
        eb = b["images"][name]
        if any(ea.get(k) != eb.get(k) for k in ("lr", "shape", "queries", "repeats")):
            return False
        if ea["states"].keys() != eb["states"].keys():
            return False
        for key, sa in ea["states"].items():
            sb = eb["states"][key]
            if not (_same_numbers(sa["numbers"], sb["numbers"]) and _same_map(sa["exact"], sb["exact"])
                    and _same_map(sa["estimate"], sb["estimate"])):
                return False
    return True
