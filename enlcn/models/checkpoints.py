"""Load the official ENLCA checkpoints (``ENLCAx2.pt``, ``ENLCAx4.pt``) into our models.

Our :class:`~enlcn.models.edsr.SRModel` keeps the official module names (``sub_mean``, ``head.0``,
``body.{i}``, ``tail.0.{0,2}``, ``tail.1``, ``add_mean``), so only the inside of an ENLCA module is
renamed (official ``src/model/attention.py`` and ``ENLA.py``)::

    ours                          official
    body.{i}.theta.*              body.{i}.conv_match1.0.*      (Q embedding, x_embed_1)
    body.{i}.delta.*              body.{i}.conv_match2.0.*      (K embedding, x_embed_2)
    body.{i}.psi.*                body.{i}.conv_assembly.0.*    (V embedding)
    body.{i}.projection           body.{i}.attn_fn.projection_matrix   (F, m×c buffer)
    body.{i}.calls_since_redraw   — (the official counter lives in the wrapper, not in the checkpoint)

The architecture is read from the tensors: ``n_feats`` from ``head.0.weight``, ``n_resblocks`` from the
ResBlock keys, the attention positions from the ENLCA keys, ``m`` from ``F``, ``rgb_range`` from
``sub_mean.bias`` (``−rgb_range·mean``). ``res_scale`` is not stored (0.1 in the README). The ENLCA
modules get ``variant="official"`` (orthogonal F, 1e-4 inside φ), which the checkpoints were trained with.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .edsr import RGB_MEAN, SRModel, build_model

#: our ENLCA submodule prefix -> the official one
ENLCA_RENAMES = {
    "theta.": "conv_match1.0.",
    "delta.": "conv_match2.0.",
    "psi.": "conv_assembly.0.",
    "projection": "attn_fn.projection_matrix",
}
#: our buffers that the official checkpoints do not hold
NOT_IN_OFFICIAL = ("calls_since_redraw",)
#: model names whose official checkpoints we can load
LOADABLE = ("enlcn", "edsr")


def official_key(ours: str, model: SRModel) -> str | None:
    """The official name of our state-dict entry ``ours`` (None for entries the official code lacks)."""
    m = re.fullmatch(r"body\.(\d+)\.(.+)", ours)
    if m is None or not _is_enlca(model.body[int(m.group(1))]):
        return ours
    index, rest = m.groups()
    if rest in NOT_IN_OFFICIAL:
        return None
    for ours_prefix, official_prefix in ENLCA_RENAMES.items():
        if rest.startswith(ours_prefix):
            return f"body.{index}.{official_prefix}{rest[len(ours_prefix) :]}"
    raise KeyError(f"no official name for {ours!r}")


def to_official_state_dict(model: SRModel) -> dict[str, Tensor]:
    """Our model's state under the official key names (what the official ``model.state_dict()`` holds)."""
    out = {}
    for name, tensor in model.state_dict().items():
        key = official_key(name, model)
        if key is not None:
            out[key] = tensor
    return out


def load_official_checkpoint(
    source: str | PathLike | Mapping[str, Any], scale: int, name: str = "enlcn", res_scale: float = 0.1
) -> SRModel:
    """Build our ``name`` model (``enlcn`` or ``edsr``) for ×``scale`` filled with an official checkpoint.

    ``source`` is a path (``torch.load(map_location="cpu", weights_only=True)``) or a state dict, possibly
    wrapped as ``{"state_dict": …}`` / ``{"model": …}`` and with ``module.`` prefixes (DataParallel). A
    checkpoint of another architecture or scale is an error naming the mismatched keys. The model is
    returned in eval mode.
    """
    if name not in LOADABLE:
        raise ValueError(f"can load official checkpoints of {', '.join(LOADABLE)}, not {name!r}")
    state = unwrap_state_dict(source)
    model = build_model(name, scale, "paper", res_scale=res_scale, **infer_architecture(state, name))
    expected = to_official_state_dict(model)
    check_keys(state, expected, name, scale)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            official = official_key(key, model)
            if official is not None:
                tensor.copy_(state[official])
    return model.eval()


def read_checkpoint(path: str | PathLike, device: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, never code.

    A checkpoint is a pickle, and an unrestricted unpickler runs whatever functions the file names — a
    downloaded ``.pt`` could call ``os.system``. ``weights_only=True`` allows only tensors, containers and
    plain numbers and strings (all our checkpoints and the official ENLCA ones hold); a file that asks for
    anything else is refused with ``ValueError("<path>: refused: …")`` before any of its code runs. There is
    deliberately no unsafe switch. A truncated file, random bytes or an image raises ``ValueError("<path>:
    truncated or not a checkpoint …")``; a missing file ``FileNotFoundError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))  # what the file asked for, refused
        if found is None:  # not a refusal: a damaged file or no pickle at all
            raise _damaged(path, err) from err
        raise ValueError(
            f"{path}: refused: its pickle calls {found.group(1)}, which a weights-only load never runs "
            "(a checkpoint holds tensors and plain values; do not trust this file)"
        ) from err
    except Exception as err:  # noqa: BLE001 - zip, EOF errors all mean the same here
        raise _damaged(path, err) from err


def _damaged(path: Path, err: BaseException) -> ValueError:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # torch's weights-only errors open with a paragraph about its defaults; the cause is further down
    cause = next((line for line in lines if line.startswith(("Unsupported", "invalid load key"))), None)
    detail = f"{type(err).__name__}: {(cause or lines[0])[:160]}" if lines else type(err).__name__
    return ValueError(f"{path}: truncated or not a checkpoint ({path.stat().st_size} bytes; {detail})")


def unwrap_state_dict(source: str | PathLike | Mapping[str, Any]) -> dict[str, Tensor]:
    """A flat ``name → tensor`` dict from a path or a (wrapped, possibly ``module.``-prefixed) state dict."""
    state: Any = source
    if not isinstance(source, Mapping):
        state = read_checkpoint(source, "cpu")
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError("not a state dict: expected a mapping of names to tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def infer_architecture(state: Mapping[str, Tensor], name: str) -> dict[str, Any]:
    """``build_model`` overrides read from the checkpoint's tensors (see the module docstring)."""
    for key in ("head.0.weight", "sub_mean.bias"):
        if key not in state:
            raise ValueError(f"not an official EDSR/ENLCN checkpoint: it has no {key!r}")
    n_feats = state["head.0.weight"].shape[0]
    n_resblocks = len([k for k in state if re.fullmatch(r"body\.\d+\.body\.0\.weight", k)])
    rgb_range = round(-float(state["sub_mean.bias"][0]) / RGB_MEAN[0], 4)
    overrides: dict[str, Any] = {"n_feats": n_feats, "n_resblocks": n_resblocks, "rgb_range": rgb_range}
    if name == "edsr":
        return overrides
    positions = sorted(int(k.split(".")[1]) for k in state if k.endswith(".attn_fn.projection_matrix"))
    options: dict[str, Any] = {"variant": "official"}
    if positions:
        q_weight = state.get(f"body.{positions[0]}.conv_match1.0.weight")
        if q_weight is not None and n_feats % q_weight.shape[0] == 0:
            options["reduction"] = n_feats // q_weight.shape[0]
        options["m"] = state[f"body.{positions[0]}.attn_fn.projection_matrix"].shape[0]
    if len(positions) > 1 and positions[1] > 1 and n_resblocks % (positions[1] - 1) == 0:
        overrides["attention_every"] = positions[1] - 1  # the rest is checked key by key
    elif n_resblocks % 4:
        overrides["attention_every"] = n_resblocks or 1  # a wrong layout; check_keys names the keys
    return {**overrides, "attention_options": options}


def check_keys(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], name: str, scale: int) -> None:
    """Raise a ``ValueError`` naming missing, unexpected and wrongly shaped keys (first few and counts)."""
    problems = key_problems(state, expected)
    if problems:
        hint = ""
        if name == "enlcn" and not any(k.endswith("attn_fn.projection_matrix") for k in state):
            hint = " (it has no ENLCA module: a plain EDSR checkpoint loads with name='edsr')"
        raise ValueError(
            f"checkpoint does not match the official {name} ×{scale} layout — " + "; ".join(problems) + hint
        )


def key_problems(state: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> list[str]:
    """How a state dict differs from the ``expected`` one: counts and the first few missing, unexpected and
    wrongly shaped keys (empty when it matches)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    return [
        f"{len(items)} {what}: {', '.join(items[:5])}{', …' if len(items) > 5 else ''}"
        for what, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (checkpoint vs model)", shapes),
        )
        if items
    ]


def _is_enlca(module: Any) -> bool:
    return hasattr(module, "theta") and hasattr(module, "projection")
