"""The book's live correlation-map explorer: each module's embeddings ``Q, K`` in one JavaScript data file.

The correlation map of a query ``i`` is ``softmax(QᵢᵀK)`` over all positions, with ``Q = √k·θ/‖θ‖`` and
``K = √k·δ/‖δ‖`` (Eq. 3); ENLA's estimate of it is row ``i`` of ``D⁻¹φ(Q)ᵀφ(K)`` (Eqs. 4–6) with the
module's trained projection ``F``. So ``Q, K`` and ``F`` are all a browser needs to draw both maps for
*any* query, any ``k`` and any fresh draw of ``F``. :func:`explorer_data` packs them for a few images and
every trained ENLA/ENLCA model of a profile; ``book/_page_static/explorer/explorer.js`` (served at
``_static/explorer/``) computes the maps and their numbers (:func:`enlcn.explore.map_numbers`) on click.

Encoding (:func:`encode_directions`): ``Q`` and ``K`` rows have length ``√k`` by construction, so only
their directions are stored, as int8 with a per-row scale that is not stored (each row is divided by its
largest |component| and rounded to ``±127``; the reader renormalises it to unit length and multiplies by
``√k``). The int8 codes are delta-coded along each channel plane (neighbouring pixels have similar
embeddings) and deflated (zlib) before base64: ``DecompressionStream("deflate")`` inflates them in the
browser. ``F`` is stored exactly (float32). A ``<script>`` tag works from ``file://`` with no network.
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from ..attention.enlca import ENLCA
from ..correlation import embeddings
from ..provenance import REPO
from .data import explore_images
from .files import explorable_models
from .registry import BASE

ENCODING = "int8 row directions, delta-coded per channel plane, zlib, base64"
LEVELS = 127  # int8 codes of a direction: round(127·u/max|u|)


# ---------------------------------------------------------------------------------------------- encoding


def encode_directions(u: np.ndarray) -> np.ndarray:
    """The int8 codes of the rows of ``u`` (``[N, c]``): ``round(127·u/max|u|)`` per row (the scale is not
    kept: a reader renormalises each decoded row, which is all Eq. 3's ``Q, K`` need)."""
    u = np.asarray(u, dtype=np.float64)
    scale = np.abs(u).max(axis=1, keepdims=True)
    return np.round(u / np.maximum(scale, 1e-30) * LEVELS).astype(np.int8)


def decode_directions(codes: np.ndarray, k: float) -> np.ndarray:
    """``√k·`` the unit rows of ``codes`` (``[N, c]``, float64): ``Q`` or ``K`` of Eq. 3 from their codes."""
    u = codes.astype(np.float64)
    return u / np.linalg.norm(u, axis=1, keepdims=True) * np.sqrt(k)


def pack_codes(codes: list[np.ndarray]) -> str:
    """Several ``[N, c]`` int8 arrays as one base64 string: each as ``c`` channel planes of ``N``, each
    plane delta-coded (mod 256) from 0, all concatenated and deflated."""
    planes = [np.ascontiguousarray(a.T).astype(np.int16) for a in codes]  # [c, N] each
    deltas = [np.diff(p, axis=1, prepend=0).astype(np.int8) for p in planes]  # wraps mod 256
    raw = b"".join(d.tobytes() for d in deltas)
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def unpack_codes(text: str, n: int, c: int, count: int) -> list[np.ndarray]:
    """The ``count`` ``[n, c]`` int8 arrays of :func:`pack_codes`."""
    deltas = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.int8)
    if deltas.size != count * c * n:
        raise ValueError(f"explorer data: {deltas.size} codes, expected {count}×{c}×{n}")
    planes = np.cumsum(deltas.reshape(count, c, n).astype(np.int64), axis=2)  # undo the deltas…
    planes = ((planes + 128) % 256 - 128).astype(np.int8)  # …mod 256
    return [p.T.copy() for p in planes]


def encode_floats(a: np.ndarray) -> str:
    """A float array as base64 of its little-endian float32 bytes (exact for float32 data)."""
    return base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode("ascii")


def decode_floats(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape).astype(np.float64)


def encode_png(image: np.ndarray) -> str:
    """A uint8 image (RGB or greyscale) as a base64 PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def encode_labels(labels: np.ndarray) -> str:
    """Repeat labels (``h×w``, −1 = background) as base64 of little-endian int16."""
    return base64.b64encode(np.asarray(labels, dtype="<i2").tobytes()).decode("ascii")


def decode_labels(text: str, shape: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i2").reshape(shape).astype(np.int64)


# ---------------------------------------------------------------------------------------------- the payload


def _module_entry(module: torch.nn.Module) -> dict:
    """What the browser needs of one ENLA/ENLCA module besides its embeddings: ``k`` (Eq. 3), ``F`` (Eq. 4)
    and the constant inside φ, and how fresh draws of ``F`` are made (orthogonal blocks or i.i.d.)."""
    o, projection = module.options, module.projection.detach().cpu().numpy()
    return {
        "k": float(o.k),
        "feature_eps": float(o.feature_eps),
        "orthogonal": bool(o.orthogonal),
        "m": int(projection.shape[0]),
        "c": int(projection.shape[1]),
        "projection": encode_floats(projection),
    }


def _estimates(model) -> bool:
    """Whether every attention module of ``model`` is ENLA/ENLCA (random features to estimate with): the
    page's subject. Exact peers (NLA, NLSA, criss-cross) have no estimate and no ``F``."""
    return all(isinstance(module, ENLCA) for module in model.attention_modules())


def explorer_data(
    profile: str,
    root: Path = REPO,
    image_names: tuple[str, ...] = ("selfsim000", "chelsea"),
) -> dict:
    """Everything the live explorer needs, as a JSON-able dict (see the module doc): per model its modules'
    ``k``, ``ε`` and ``F``; per image and model the packed ``Q, K`` codes of every module."""
    scale = BASE.config(profile).scale
    images = explore_images(profile, scale)
    trained = {label: model for label, model in explorable_models(profile, root).items() if _estimates(model)}
    data: dict = {"profile": profile, "encoding": ENCODING, "models": {}, "images": {}}
    for label, model in trained.items():
        data["models"][label] = [_module_entry(m) for m in model.attention_modules()]
    for name in image_names:
        if name not in images:
            continue
        lr, labels = images[name]
        entry = {"shape": list(lr.shape[:2]), "lr": encode_png(lr), "embeddings": {}}
        entry["labels"] = None if labels is None else encode_labels(labels)
        for label, model in trained.items():
            codes = []
            for _, q, k in embeddings(model, lr):  # [N, c] each, Eq. 3
                codes += [encode_directions(q.numpy()), encode_directions(k.numpy())]
            entry["embeddings"][label] = pack_codes(codes)
        data["images"][name] = entry
    return data


def decoded_embeddings(data: dict, image: str, model: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(Q, K)`` (``[N, c]`` float64, Eq. 3) of every module of ``model`` on ``image``, as the browser
    decodes them (what its maps are computed from)."""
    h, w = data["images"][image]["shape"]
    modules = data["models"][model]
    c = modules[0]["c"]
    codes = unpack_codes(data["images"][image]["embeddings"][model], h * w, c, 2 * len(modules))
    return [
        (decode_directions(codes[2 * j], mod["k"]), decode_directions(codes[2 * j + 1], mod["k"]))
        for j, mod in enumerate(modules)
    ]


def module_projection(data: dict, model: str, module: int) -> np.ndarray:
    """The trained ``F`` (``m×c``) of ``module`` of ``model``."""
    mod = data["models"][model][module]
    return decode_floats(mod["projection"], (mod["m"], mod["c"]))


def live_maps(
    data: dict, image: str, model: str, module: int, query: tuple[int, int], k: float | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """What the page computes for ``query`` (float64, from the decoded ``Q, K``, the module's own ``F``):
    ``softmax(QᵢᵀK)``, ENLA's estimate (Eqs. 4–6) and :func:`~enlcn.explore.map_numbers` (with the true
    repeats on a labelled image). ``k`` re-amplifies ``Q, K`` as ``Knobs(k=…)`` does (Eq. 3)."""
    from ..attention.enla import enla_weights
    from ..data.synthetic import true_repeats
    from ..explore import map_numbers

    entry, mod = data["images"][image], data["models"][model][module]
    h, w = entry["shape"]
    q, key = decoded_embeddings(data, image, model)[module]
    if k is not None:
        q, key = q * np.sqrt(k / mod["k"]), key * np.sqrt(k / mod["k"])
    q, key = torch.from_numpy(q), torch.from_numpy(key)
    i = query[0] * w + query[1]
    exact = torch.softmax(key @ q[i], dim=0).numpy().reshape(h, w)
    projection = torch.from_numpy(module_projection(data, model, module))
    estimate = enla_weights(q[i][None], key[None], projection, mod["feature_eps"])[0].numpy().reshape(h, w)
    labels = None if entry["labels"] is None else decode_labels(entry["labels"], (h, w))
    repeats = None if labels is None else true_repeats(labels, query)
    return exact, estimate, map_numbers(exact, estimate, repeats)


# ---------------------------------------------------------------------------------------------- the file


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


def _same_codes(a: str, b: str, n: int, c: int, count: int) -> bool:
    """Two packed code sets within one int8 level everywhere (float rounding may tip a code over)."""
    x, y = unpack_codes(a, n, c, count), unpack_codes(b, n, c, count)
    return all(np.abs(p.astype(np.int16) - q.astype(np.int16)).max() <= 1 for p, q in zip(x, y, strict=True))


def same_explorer_data(new: str, old: str) -> bool:
    """Whether two data files show the same explorer (a recomputation reproduced it): the same images,
    labels and models; every module's ``k``, ``ε`` and ``F`` (float32) equal; every ``Q, K`` code within
    one int8 level. Float rounding differs between CPUs and runs, so bytes may not."""
    a, b = read_explorer_js(new), read_explorer_js(old)
    if {k: v for k, v in a.items() if k != "images"} != {k: v for k, v in b.items() if k != "images"}:
        return False
    if a["images"].keys() != b["images"].keys():
        return False
    for name, ea in a["images"].items():
        eb = b["images"][name]
        if any(ea[k] != eb[k] for k in ("shape", "lr", "labels")):
            return False
        if ea["embeddings"].keys() != eb["embeddings"].keys():
            return False
        n = ea["shape"][0] * ea["shape"][1]
        for model, packed in ea["embeddings"].items():
            modules = a["models"][model]
            if not _same_codes(packed, eb["embeddings"][model], n, modules[0]["c"], 2 * len(modules)):
                return False
    return True
