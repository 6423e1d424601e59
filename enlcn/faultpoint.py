"""Named points where a test can stop this process, so that it can be killed there from outside.

The fault suite kills real processes (SIGKILL from another process, which loses whatever Python had not
yet flushed), but a kill at a *chosen* moment needs the process to wait there. With
``ENLCN_PAUSE_AT=<name>`` (a comma-separated list; ``<name>@<n>`` for its n-th passage, 1-based) the process
writes ``enlcn: paused at <name>`` to stderr and stops itself with SIGSTOP when it reaches
:func:`pause` ``(<name>)``; the test sees the stopped state in ``/proc`` and sends SIGKILL (or SIGCONT).
Without the variable :func:`pause` is a dictionary lookup and nothing else.

This module imports nothing from ``enlcn``: the lowest layers (atomic writes, kernel builds) call it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

ENV = "ENLCN_PAUSE_AT"

#: the points the code defines (a test naming another one would wait forever: :func:`pause` checks)
POINTS = (
    "log-created",  # train_log.csv created and open for appending, no row written yet
    "log-row",  # a train_log.csv row written, not yet flushed
    "checkpoint-write",  # a checkpoint's temporary file written, not yet renamed into place
    "validation",  # inside validation, before its row is written
    "results-write",  # a result file's temporary written, not yet renamed into place
    "native-build",  # holding the native-kernel build lock, before the compiler runs
)

_seen: Counter[str] = Counter()


def wanted() -> dict[str, int]:
    """``{point: passage}`` from :data:`ENV` (``{}`` when unset); an unknown point is a ``ValueError``."""
    out = {}
    for item in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown pause point {name!r}; known: {', '.join(POINTS)}")
        out[name] = int(nth or 1)
    return out


def pause(name: str) -> None:
    """Stop this process here (SIGSTOP) when :data:`ENV` asks for the current passage of ``name``."""
    if ENV not in os.environ:
        return
    _seen[name] += 1
    if wanted().get(name) == _seen[name]:
        print(f"enlcn: paused at {name}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
