"""Which class of machine a bench run measures: the instruction-set level, and how a lower level is measured
on a CPU that has a higher one.

``ENLCN_ISA`` (:func:`enlcn.attention.native.isa_level`) chooses the level our kernels are built for. The
libraries around them choose their own code paths from the CPU they find: MKL (sgemm), oneDNN (the
convolutions, brgemm) and ATen (elementwise kernels) would keep using AVX-512 on an AVX-512 CPU while our
kernels run AVX2, and the run would measure no machine that exists. So a run at a level below the CPU's
best caps the three libraries at the same level with their own documented switches
(:data:`enlcn.attention.native.LIBRARY_CAPS`, :func:`library_caps`), set before they start:
:func:`capped_exec` starts the run again in a fresh process with them (the worker processes inherit
them). The emulation is of the instruction set only: the caches, the vector units' ports and the clock stay
the CPU's own, so a measured AVX2 level on an AVX-512 CPU is "this CPU restricted to AVX2", not an
AVX2-only CPU — every record says which (:func:`machine_record`).

Imports nothing else of :mod:`enlcn.bench`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..attention import native


def library_caps(level: str | None) -> dict[str, str]:
    """The environment that restricts MKL, oneDNN and ATen to ``level``: empty when ``level`` is this CPU's
    best (nothing to restrict) or there is no level (not x86-64)."""
    supported = native.supported_levels()
    if level is None or not supported or level == supported[0]:
        return {}
    return dict(native.LIBRARY_CAPS[level])


def capped_exec(argv: Sequence[str]) -> None:
    """When ``ENLCN_ISA`` names a level below this CPU's best and the libraries are not yet capped at it,
    replace this process with ``python -m enlcn.bench <argv>`` under :func:`library_caps` (one line on
    stdout says so); otherwise return."""
    caps = library_caps(native.isa_level())
    if not caps or all(os.environ.get(k) == v for k, v in caps.items()):
        return
    print(
        "enlcn bench: restricting MKL, oneDNN and ATen as well: "
        + " ".join(f"{k}={v}" for k, v in caps.items())
    )
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "enlcn.bench", *argv], {**os.environ, **caps})


def machine_record() -> dict[str, object]:
    """What a bench record says of the machine class it measured: ``isa`` (the level our kernels run),
    ``isa_supported`` (the CPU's levels), ``isa_emulated`` (a level below the CPU's best, with the libraries
    capped), ``aten_capability`` (ATen's dispatch level as torch reports it), ``library_caps`` (the caps in
    this process's environment), and each native kernel's path (level and products)."""
    import torch

    level = native.isa_level()
    supported = native.supported_levels()
    caps = {k: os.environ[k] for k in native.LIBRARY_CAPS["generic"] if k in os.environ}
    return {
        "isa": level,
        "isa_supported": list(supported),
        "isa_emulated": bool(supported) and level != supported[0],
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "library_caps": caps,
        "kernel_paths": {
            "enlca_inference": native.status(),
            "enla_training": native.enla_train_status(),
            "exact_attention": native.attention_status(),
            "contrastive": native.contrastive_status(),
        },
    }
