"""``build_attention(kind, channels, **options)``: one constructor for every attention kind.

Options are validated against the kind's typed ``Options`` dataclass: an unknown option or a value of
the wrong kind is an error naming it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from .base import Attention

#: kind -> "module:Class" (imported lazily so that one kind's import cost is not paid by all)
KINDS: dict[str, str] = {
    "none": "enlcn.attention.base:NoAttention",
    "nla": "enlcn.attention.nla:NonLocalAttention",
    "nlsa": "enlcn.attention.nlsa:NonLocalSparseAttention",
    "crisscross": "enlcn.attention.crisscross:CrissCrossAttention",
    "enla": "enlcn.attention.enlca:ENLA",
    "enlca": "enlcn.attention.enlca:ENLCA",
}


def attention_class(kind: str) -> type[Attention]:
    """The module class of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; choose one of {', '.join(KINDS)}")
    module_name, cls_name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


class OptionError(ValueError, TypeError):
    """An option a module or model does not have (a ``TypeError`` as for a wrong keyword, and a
    ``ValueError`` as for any bad setting: the CLI reports it in one line)."""


def make_options(cls: type[Attention], options: dict[str, Any]) -> Any:
    """Build ``cls.Options`` from keyword options, naming any option the kind does not have."""
    known = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise OptionError(
            f"{cls.__name__} has no option(s) {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(sorted(known)) or '(none)'}"
        )
    if hasattr(cls.Options, "create"):  # kinds with presets (ENLA/ENLCA: variant="paper"|"official")
        return cls.Options.create(**options)
    return cls.Options(**options)


def build_attention(kind: str, channels: int, **options: Any) -> Attention:
    """Build the attention module ``kind`` for ``channels`` input channels.

    Kinds: ``none`` (identity), ``nla`` (exact non-local attention, Eq. 1), ``nlsa`` (NLSN's LSH
    attention), ``crisscross`` (CCNet), ``enla`` (Eqs. 3–6 without amplification), ``enlca`` (ENLA with
    amplification ``k`` and the contrastive loss, Eqs. 3–10). Options use the paper's symbols where it has
    them (``m``, ``k``, ``n1``, ``n2``, ``b``); ``variant="paper"|"official"`` picks the defaults of
    :mod:`enlcn.variants` for ENLA/ENLCA.
    """
    cls = attention_class(kind)
    return cls(channels, make_options(cls, options))
