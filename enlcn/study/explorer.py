"""The book's live correlation-map explorer: each module's embeddings ``Q, K`` in one JavaScript data file.

The correlation map of a query ``i`` is ``softmax(QᵢᵀK)`` over all positions, with ``Q = √k·θ/‖θ‖`` and
``K = √k·δ/‖δ‖`` (Eq. 3); ENLA's estimate of it is row ``i`` of ``D⁻¹φ(Q)ᵀφ(K)`` (Eqs. 4–6) with the
module's trained projection ``F``. So ``Q, K`` and ``F`` are all a browser needs to draw both maps for
*any* query, any ``k`` and any fresh draw of ``F``. :func:`explorer_data` packs them for a few images and
every trained ENLA/ENLCA model of a profile; ``book/_page_static/explorer/explorer.js`` (served at
``_static/explorer/``) computes the maps and their numbers (:func:`enlcn.explore.map_numbers`) on click.

Images (:func:`explorer_images`): the first self-similar image (64×64 LR, with its true repeats) and the
photograph ``chelsea`` cut to its 64×64 LR window of most structure (:func:`structure_window`: rows 0–63,
columns 23–86 of its 75×112 LR, the cat's eyes, nose and forehead stripes); the models run on that window,
so the page's maps are :func:`enlcn.explore.explore`'s on it. The whole photograph does not fit in 6 MB at
float16's precision (~7.5 MB).

Encoding (:func:`pack_embeddings`; sizes measured on the ``cpu`` data, 2 images × 4 models × 5 modules,
3.9 M numbers). Only the unit directions ``v = Q/√k`` matter (Eq. 3 fixes the length). Each ``[N, c]`` array
is rotated into its own orthonormal principal basis (:func:`direction_basis`, stored as float32) and every
coordinate is rounded to a multiple of ``step = 9·2⁻¹⁵`` (:func:`direction_step`: ``2u/√c`` rounded down to
``2⁻¹⁵`` with room for the basis's float32 rounding, ``c = 12``; stored in the data): a row's error is at
most ``√c·step/2 = 0.974·u``, so **every decoded unit direction is within ``u = 2⁻¹¹`` (float16's unit
roundoff) of the float32 model's**, float16 storage's own guarantee, checked for every row when packing; a
logit ``k·v̂ᵢ·v̂ⱼ`` is then within ``k(2u + u²)`` (:func:`logit_error_bound`). Measured on the shipped data:
rows at most 0.83·u from the model's (mean 0.56·u; float16 storage of ``Q, K``: 0.91·u, mean 0.41·u; the
previous step ``2⁻¹⁰``, each coordinate within ``u``: 3.0·u). The integer codes are predicted from their
left, upper and upper-left neighbours (:func:`med_residuals`, LOCO-I's median predictor: embeddings of
neighbouring pixels are correlated), the residuals Rice-coded with one parameter per block of 16
(:func:`rice_pack`, unary and remainder parts in separate streams so that Python decodes them vectorised)
and the bits written 13 to two characters of a 91-letter alphabet (:func:`bits_to_text`, 1.23 characters a
byte instead of base64's 1.33). Measured bits per number: 8.04, 5.00 MB in all. The step costs 1.9 bits a
number against ``2⁻¹⁰`` (6.1 bits); with the whole photograph (75×112) the file would be 7.5 MB (5.8 MB at
``2⁻¹⁰``); the power of two ``2⁻¹²`` instead of ``9·2⁻¹⁵`` costs 0.17 bits more, ``2u/√12`` itself saves
0.04. At ``2⁻¹⁰`` and with the whole photograph: the principal basis saved 0.3 bits against the model's own
channels, the median predictor 0.26 against the planar one ``L+U−UL``, blocks of 16 0.1 against 32; float16
with deflate was ~12 MB, int8 directions 5.0 MB with 4 % errors. Generation is deterministic: two runs
with one math thread (as the notebooks run) write the same bytes; other thread counts may tip a code by
one step (:func:`same_explorer_data`). ``F`` is stored exactly (float32, base64). A ``<script>`` tag works
from ``file://`` with no network.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import torch

from ..attention.enlca import ENLCA
from ..correlation import embeddings
from ..provenance import REPO
from .data import explore_images
from .files import explorable_models
from .registry import BASE

ENCODING = ("unit directions: principal basis, steps of 2u/sqrt(c) rounded down to 2^-15 (every row within "
            "u = 2^-11), median prediction, block Rice, base91")
U = 2.0**-11  #: float16's unit roundoff: every decoded unit direction is within U (Euclidean) of the model's
STEP_GRID = 2.0**-15  #: the quantisation step is a multiple of this (exact in binary: codes·step is exact)
STEP_MARGIN = 2.0**-10  #: room left below 2U/√c for the float32 basis's rounding (a few 1e-7 of a row)
BLOCK = 16  #: residuals per Rice parameter
K_BITS = 4  #: bits of one Rice parameter (0…15)
#: 91 letters that need no escaping in a JSON string: '#' (35) … '~' (126) without the backslash
ALPHABET = "".join(chr(i) for i in range(35, 127) if chr(i) != "\\")
GROUP = 13  #: bits written as two letters (2¹³ = 8192 ≤ 91² = 8281)


# ---------------------------------------------------------------------------------------------- encoding


def direction_basis(v: np.ndarray) -> np.ndarray:
    """An orthonormal basis (``c×c`` float32, columns by decreasing energy) of the rows of ``v`` (``[N, c]``):
    the eigenvectors of ``vᵀv``. In it the coordinates after the first vary little (0.3 bit a number less)."""
    v = np.asarray(v, dtype=np.float64)
    _, vectors = np.linalg.eigh(v.T @ v)
    return np.ascontiguousarray(vectors[:, ::-1]).astype(np.float32)


def direction_step(c: int) -> float:
    """The quantisation step of a coordinate of a ``c``-channel unit direction: the largest multiple of
    ``STEP_GRID`` at most ``2U/√c·(1 − STEP_MARGIN)``, so that a row's rounding error, ``√c·step/2`` at worst,
    stays below float16's ``U`` (``9·2⁻¹⁵`` for ``c = 12``: ``0.974·U``)."""
    return float(np.floor(2 * U / np.sqrt(c) * (1 - STEP_MARGIN) / STEP_GRID) * STEP_GRID)


def quantise_directions(v: np.ndarray, basis: np.ndarray, step: float) -> np.ndarray:
    """Integer codes (``[N, c]`` int32) of the coordinates of the unit rows of ``v`` in ``basis``: each
    ``round(coordinate/step)``, so within half a step of the true coordinate."""
    v = np.asarray(v, dtype=np.float64)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.rint(unit @ basis.astype(np.float64) / step).astype(np.int32)


def unit_directions(codes: np.ndarray, basis: np.ndarray, step: float) -> np.ndarray:
    """The decoded directions ``v̂ = step·codes·basisᵀ`` (``[N, c]`` float64; not renormalised, so that the
    bounds below hold as stated; ``Q = √k·v̂``). The page sums in this order (explorer.js ``directions``)."""
    coords, b = codes.astype(np.float64) * step, basis.astype(np.float64)
    out = np.zeros(coords.shape)
    for j in range(b.shape[1]):  # v̂_a = Σ_j coords_j·b[a, j], summed over j in order, as the page does
        out += coords[:, j : j + 1] * b[:, j]
    return out


def direction_errors(v: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """``‖v̂ − v/‖v‖‖`` of every row (float64): what :func:`pack_embeddings` guarantees to be at most ``U``."""
    v = np.asarray(v, dtype=np.float64)
    return np.linalg.norm(decoded - v / np.linalg.norm(v, axis=1, keepdims=True), axis=1)


def logit_error_bound(k: float) -> float:
    """The largest change of a logit ``k·v̂ᵢ·v̂ⱼ`` the coding can cause: with ``v̂ = v + e`` and ``‖e‖ ≤ U``
    (every row, :func:`pack_embeddings`), ``|k(eᵢ·vⱼ + vᵢ·eⱼ + eᵢ·eⱼ)| ≤ k(2U + U²)``: float16 storage's own
    bound (each coordinate of ``Q, K`` within ``U`` relatively, so each row within ``U·‖Q‖``)."""
    return k * (2 * U + U**2)


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` (``[..., h, w]``) moved down ``dy`` and right ``dx`` with zeros coming in."""
    out = np.zeros_like(a)
    out[..., dy:, dx:] = a[..., : a.shape[-2] - dy, : a.shape[-1] - dx]
    return out


def _median_prediction(left: np.ndarray, up: np.ndarray, upleft: np.ndarray) -> np.ndarray:
    """LOCO-I's median predictor: min/max of left and up at an edge, else ``left + up − upleft``."""
    lo, hi = np.minimum(left, up), np.maximum(left, up)
    return np.where(upleft >= hi, lo, np.where(upleft <= lo, hi, left + up - upleft))


def med_residuals(planes: np.ndarray) -> np.ndarray:
    """Residuals of integer planes (``[P, h, w]``) against the median prediction from each position's
    left, upper and upper-left neighbours (zero outside the plane)."""
    p = planes.astype(np.int64)
    return p - _median_prediction(_shifted(p, 0, 1), _shifted(p, 1, 0), _shifted(p, 1, 1))


def med_undo(residuals: np.ndarray) -> np.ndarray:
    """The planes of :func:`med_residuals`, rebuilt one anti-diagonal at a time (each position's three
    neighbours lie on earlier ones), all planes at once."""
    r = residuals.astype(np.int64)
    n_planes, h, w = r.shape
    out = np.zeros((n_planes, h + 1, w + 1), np.int64)  # a zero row and column before the plane
    for d in range(h + w - 1):
        y = np.arange(max(0, d - w + 1), min(h, d + 1))
        x = d - y
        pred = _median_prediction(out[:, y + 1, x], out[:, y, x + 1], out[:, y, x])
        out[:, y + 1, x + 1] = r[:, y, x] + pred
    return out[:, 1:, 1:]


def _zigzag(r: np.ndarray) -> np.ndarray:
    return np.where(r >= 0, 2 * r, -2 * r - 1)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return np.where(z % 2 == 0, z // 2, -(z + 1) // 2)


def _uint_bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The bits (MSB first, uint8 0/1) of each value in its own width, concatenated."""
    owner = np.repeat(np.arange(values.size), widths)
    shift = np.repeat(np.cumsum(widths), widths) - 1 - np.arange(owner.size)
    return ((values[owner] >> shift) & 1).astype(np.uint8)


def _read_uints(bits: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_uint_bits`."""
    owner = np.repeat(np.arange(widths.size), widths)
    shift = np.repeat(np.cumsum(widths), widths) - 1 - np.arange(owner.size)
    values = np.bincount(owner, weights=bits.astype(np.float64) * 2.0**shift, minlength=widths.size)
    return values.astype(np.int64)


def rice_pack(residuals: np.ndarray) -> np.ndarray:
    """Bits (uint8 0/1) of integer residuals ``[P, n]``: zigzagged (``0, −1, 1, −2…`` → ``0, 1, 2, 3…``),
    cut into blocks of ``BLOCK`` per plane (the last padded with zeros), and Rice-coded with the block's
    best parameter ``k``: first every ``k`` (``K_BITS`` each), then every value's low ``k`` bits, then every
    value's ``z >> k`` in unary (that many zeros, then a one)."""
    z = _zigzag(np.asarray(residuals, np.int64))
    n_planes, n = z.shape
    blocks = -(-n // BLOCK)
    z = np.pad(z, ((0, 0), (0, blocks * BLOCK - n))).reshape(-1, BLOCK)
    cost = np.stack([(z >> k).sum(1) + (k + 1) * BLOCK for k in range(2**K_BITS)], 1)
    k = cost.argmin(1)
    kk = np.repeat(k, BLOCK)
    flat = z.ravel()
    q = flat >> kk
    unary = np.zeros(int(q.sum() + q.size), np.uint8)
    unary[np.cumsum(q + 1) - 1] = 1
    low = _uint_bits(flat & ((1 << kk) - 1), kk)
    return np.concatenate([_uint_bits(k, np.full(k.size, K_BITS)), low, unary])


def rice_unpack(bits: np.ndarray, n_planes: int, n: int) -> np.ndarray:
    """The ``[P, n]`` residuals of :func:`rice_pack`'s bits (trailing bits are ignored)."""
    blocks = n_planes * -(-n // BLOCK)
    k = _read_uints(bits[: blocks * K_BITS], np.full(blocks, K_BITS))
    kk = np.repeat(k, BLOCK)
    start = blocks * K_BITS + int(kk.sum())
    low = _read_uints(bits[blocks * K_BITS : start], kk)
    ones = np.flatnonzero(bits[start:])[: kk.size]
    q = np.diff(ones, prepend=-1) - 1
    z = ((q << kk) | low).reshape(n_planes, -1)[:, :n]
    return _unzigzag(z)


def bits_to_text(bits: np.ndarray) -> str:
    """Bits as text: each ``GROUP`` bits (MSB first; the last group padded with zeros) as two letters of
    ``ALPHABET``, low digit first."""
    bits = np.pad(bits, (0, -bits.size % GROUP)).reshape(-1, GROUP).astype(np.int64)
    groups = bits @ (1 << np.arange(GROUP - 1, -1, -1))
    letters = np.frombuffer(ALPHABET.encode("ascii"), np.uint8)
    return np.stack([letters[groups % 91], letters[groups // 91]], 1).tobytes().decode("ascii")


def text_to_bits(text: str) -> np.ndarray:
    """Inverse of :func:`bits_to_text` (with its padding)."""
    index = np.full(128, -1, np.int64)
    index[np.frombuffer(ALPHABET.encode("ascii"), np.uint8)] = np.arange(len(ALPHABET))
    digits = index[np.frombuffer(text.encode("ascii"), np.uint8)].reshape(-1, 2)
    if (digits < 0).any():
        raise ValueError("explorer data: a letter outside the alphabet")
    groups = digits[:, 0] + 91 * digits[:, 1]
    return ((groups[:, None] >> np.arange(GROUP - 1, -1, -1)) & 1).astype(np.uint8).ravel()


def pack_embeddings(arrays: list[np.ndarray], shape: tuple[int, int]) -> dict:
    """Several ``[h·w, c]`` embeddings (``Q, K`` of each module, in order) of one image: the quantisation
    ``step`` (:func:`direction_step`), each array's :func:`direction_basis` (float32, base64) and all their
    codes as one text (the module doc's coding). Checks the guarantee: every decoded row within ``U``."""
    h, w = shape
    step = direction_step(arrays[0].shape[1])
    bases = [direction_basis(a / np.linalg.norm(a, axis=1, keepdims=True)) for a in arrays]
    codes = [quantise_directions(a, b, step) for a, b in zip(arrays, bases, strict=True)]
    for a, c, b in zip(arrays, codes, bases, strict=True):
        worst = direction_errors(a, unit_directions(c, b, step)).max()
        if worst > U:
            raise AssertionError(f"explorer data: a direction {worst:.3g} from the model's (> u = {U:.3g})")
    planes = np.concatenate([np.ascontiguousarray(c.T).reshape(-1, h, w) for c in codes])  # [P, h, w]
    residuals = med_residuals(planes).reshape(planes.shape[0], -1)
    codes_text = bits_to_text(rice_pack(residuals))
    return {"step": step, "bases": encode_floats(np.stack(bases)), "codes": codes_text}


def unpack_codes(packed: dict, shape: tuple[int, int], c: int, count: int) -> list[np.ndarray]:
    """The ``count`` ``[h·w, c]`` integer code arrays of :func:`pack_embeddings`."""
    h, w = shape
    residuals = rice_unpack(text_to_bits(packed["codes"]), count * c, h * w)
    planes = med_undo(residuals.reshape(-1, h, w)).reshape(count, c, h * w)
    return [p.T.astype(np.int32) for p in planes]


def unpack_embeddings(packed: dict, shape: tuple[int, int], c: int, count: int) -> list[np.ndarray]:
    """The decoded unit directions ``v̂`` (``[h·w, c]`` float64) of :func:`pack_embeddings`."""
    bases = decode_floats(packed["bases"], (count, c, c))
    codes = unpack_codes(packed, shape, c, count)
    return [unit_directions(p, b, packed["step"]) for p, b in zip(codes, bases, strict=True)]


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


#: the largest LR window an image is shipped in (rows, columns): a larger image (the photograph, 75×112 LR
#: on the cpu profile) is cut to its window of most structure (:func:`structure_window`)
WINDOW = (64, 64)


def structure_window(lr: np.ndarray, size: tuple[int, int] = WINDOW) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the window of ``size`` (at most the image) with the most structure:
    the largest sum of absolute differences of vertically and horizontally adjacent grey levels (the mean of
    the channels) inside it; the top-most, then left-most of equals. Fixed by the image alone, not by a model
    (on ``chelsea``: rows 0–63, columns 23–86 of 75×112, the cat's eyes, nose and forehead stripes)."""
    grey = np.asarray(lr, np.float64)
    grey = grey.mean(2) if grey.ndim == 3 else grey
    h, w = min(size[0], grey.shape[0]), min(size[1], grey.shape[1])
    dy, dx = np.abs(np.diff(grey, axis=0)), np.abs(np.diff(grey, axis=1))

    def window_sums(d: np.ndarray, wh: int, ww: int) -> np.ndarray:  # sums of every wh×ww window of d
        c = np.pad(d.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        return c[wh:, ww:] - c[:-wh, ww:] - c[wh:, :-ww] + c[:-wh, :-ww]

    total = np.zeros((grey.shape[0] - h + 1, grey.shape[1] - w + 1))
    if h > 1:
        total += window_sums(dy, h - 1, w)
    if w > 1:
        total += window_sums(dx, h, w - 1)
    top, left = np.unravel_index(np.argmax(total), total.shape)  # the first maximum in raster order
    return int(top), int(left), h, w


def explorer_images(
    profile: str, image_names: tuple[str, ...] = ("selfsim000", "chelsea")
) -> dict[str, tuple[np.ndarray, np.ndarray | None, tuple[int, int, int, int]]]:
    """The page's images: name → ``(LR, repeat labels or None, window)``, each of
    :func:`~enlcn.study.data.explore_images` cut to its :func:`structure_window` (the models then run on the
    window itself, so the page's maps are :func:`enlcn.explore.explore`'s on that LR)."""
    images = explore_images(profile, BASE.config(profile).scale)
    out = {}
    for name in image_names:
        if name not in images:
            continue
        lr, labels = images[name]
        top, left, h, w = window = structure_window(lr)
        lr = np.ascontiguousarray(lr[top : top + h, left : left + w])
        out[name] = (lr, None if labels is None else labels[top : top + h, left : left + w], window)
    return out


def explorer_data(
    profile: str,
    root: Path = REPO,
    image_names: tuple[str, ...] = ("selfsim000", "chelsea"),
) -> dict:
    """Everything the live explorer needs, as a JSON-able dict (see the module doc): per model its modules'
    ``k``, ``ε`` and ``F``; per image (:func:`explorer_images`: its window, ``[top, left, height, width]`` of
    the LR it was cut from) and model the packed ``Q, K`` codes of every module."""
    trained = {label: model for label, model in explorable_models(profile, root).items() if _estimates(model)}
    data: dict = {"profile": profile, "encoding": ENCODING, "models": {}, "images": {}}
    for label, model in trained.items():
        data["models"][label] = [_module_entry(m) for m in model.attention_modules()]
    for name, (lr, labels, window) in explorer_images(profile, image_names).items():
        entry = {"shape": list(lr.shape[:2]), "window": list(window), "lr": encode_png(lr), "embeddings": {}}
        entry["labels"] = None if labels is None else encode_labels(labels)
        for label, model in trained.items():
            arrays = []
            for _, q, k in embeddings(model, lr):  # [N, c] each, Eq. 3
                arrays += [q.numpy(), k.numpy()]
            entry["embeddings"][label] = pack_embeddings(arrays, (int(lr.shape[0]), int(lr.shape[1])))
        data["images"][name] = entry
    return data


def decoded_embeddings(data: dict, image: str, model: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(Q, K)`` (``[N, c]`` float64, Eq. 3) of every module of ``model`` on ``image``, as the browser
    decodes them (what its maps are computed from)."""
    h, w = data["images"][image]["shape"]
    modules = data["models"][model]
    c = modules[0]["c"]
    v = unpack_embeddings(data["images"][image]["embeddings"][model], (h, w), c, 2 * len(modules))
    return [(np.sqrt(mod["k"]) * v[2 * j], np.sqrt(mod["k"]) * v[2 * j + 1]) for j, mod in enumerate(modules)]


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


def _same_codes(a: dict, b: dict, shape: tuple[int, int], c: int, count: int) -> bool:
    """Two packed code sets within one step everywhere (float rounding may tip a code over), in bases
    within float32 rounding of each other (an eigenvector's sign may flip: then its codes flip too)."""
    ba, bb = (decode_floats(p["bases"], (count, c, c)) for p in (a, b))
    sign = np.where((ba * bb).sum(1) < 0, -1, 1)[:, None, :]  # per basis vector
    if a["step"] != b["step"] or np.abs(ba - sign * bb).max() > 1e-5:
        return False
    x, y = unpack_codes(a, shape, c, count), unpack_codes(b, shape, c, count)
    return all(np.abs(p - q * s[0]).max() <= 1 for p, q, s in zip(x, y, sign, strict=True))


def same_explorer_data(new: str, old: str) -> bool:
    """Whether two data files show the same explorer (a recomputation reproduced it): the same images,
    windows, labels and models; every module's ``k``, ``ε`` and ``F`` (float32) equal; the same step and
    every ``Q, K`` code within one step. Float rounding differs between CPUs and runs, so bytes may not."""
    a, b = read_explorer_js(new), read_explorer_js(old)
    if {k: v for k, v in a.items() if k != "images"} != {k: v for k, v in b.items() if k != "images"}:
        return False
    if a["images"].keys() != b["images"].keys():
        return False
    for name, ea in a["images"].items():
        eb = b["images"][name]
        if any(ea.get(k) != eb.get(k) for k in ("shape", "window", "lr", "labels")):
            return False
        if ea["embeddings"].keys() != eb["embeddings"].keys():
            return False
        shape = (ea["shape"][0], ea["shape"][1])
        for model, packed in ea["embeddings"].items():
            modules = a["models"][model]
            if not _same_codes(packed, eb["embeddings"][model], shape, modules[0]["c"], 2 * len(modules)):
                return False
    return True


def coding_tolerances(k: float, projection: np.ndarray) -> tuple[float, float]:
    """``(τ_exact, τ_estimate)``: every weight of the page's exact map and estimate lies within a factor
    ``e^{±τ}`` of :func:`enlcn.explore.explore`'s on the float32 model, for this module's coding.

    The page's unit directions are ``v̂ = v + e`` with ``‖e‖ ≤ u = 2⁻¹¹`` (float16's unit roundoff) for every
    row (:func:`pack_embeddings` checks it): float16 storage's own guarantee, so these are float16's bounds.

    * Exact map: a logit ``k·v̂ᵢ·v̂ⱼ`` moves by at most ``B = k(2u + u²)`` (:func:`logit_error_bound`); the
      softmax's normaliser by at most ``B`` too, so each weight by a factor within ``e^{±2B}``: ``τ = 2B``.
    * Estimate (Eqs. 4–6): the exponent ``a_r = √k·f_r·v̂ − k‖v̂‖²/2`` of φ moves by at most
      ``A = √k·max‖f_r‖·u + k(u + u²/2)``, so every ``φ_r`` by ``e^{±A}``, a numerator ``φ(Qᵢ)ᵀφ(Kⱼ)`` by
      ``e^{±2A}`` and a weight (numerator over their sum) by ``e^{±4A}``: ``τ = 4A``.

    explore()'s own float32 rounding (~1e-6 relative) is far inside both (tests/test_browser.py,
    tests/test_explore.py assert them)."""
    f_max = float(np.linalg.norm(projection, axis=1).max())
    return 2 * logit_error_bound(k), 4 * (np.sqrt(k) * f_max * U + k * (U + U**2 / 2))
