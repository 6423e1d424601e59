"""The bundle: what the device brings back from ``$OUT``.

Its file names and format, the device's limits (:data:`LIMITS`, :func:`bundle_problems`), the float16 weights
packed into the room left, the last tier dropped first (:func:`pack_weights`), the writer (:class:`Bundle`:
manifest, scores, curves, log, weights, each written atomically) and the provenance its manifest records (the
commit, :func:`commit_id`; the device and versions, :func:`device_info`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...provenance import REPO

#: the bundle's format; ``enlcn study import`` refuses another
BUNDLE_FORMAT = 1
MANIFEST = "provenance.json"
SCORES = "scores.csv"
CURVES = "curves.csv"
LOG = "log.txt"
MIB = 2**20


#: the device's limits on what comes back from ``$OUT``
LIMITS = {"files": 8, "file_bytes": 16 * MIB, "total_bytes": 64 * MIB, "depth": 2}
#: the files besides the weights (the manifest is written last and counted with room to spare)
META_FILES = (MANIFEST, SCORES, CURVES, LOG)
#: room kept for the manifest's final version and the log
MANIFEST_ROOM = 256 * 1024
LOG_BYTES = 512 * 1024


def run_record(
    run: Any,
    tier: int,
    steps_target: int | None,
    step: int,
    seconds: float | None,
    error: str | None,
    curve: list | None = None,
    config: dict | None = None,
) -> dict[str, Any]:
    """One run's entry of the manifest (``record.json`` while staged): its name, tier, label, seed (``run``:
    a study :class:`~enlcn.study.registry.Run`), the step count it was given and the step it reached, its
    seconds, its error (``None``: trained and scored), its validation curve and its training config (``None``
    for a run that failed before it had one)."""
    return {
        "run": run.name,
        "tier": tier,
        "label": run.label,
        "seed": run.seed,
        "steps_target": steps_target,
        "step": step,
        "seconds": seconds,
        "error": error,
        "curve": [] if curve is None else curve,
        "config": config,
    }


def bundle_problems(folder: Path, limits: dict[str, int] = LIMITS) -> list[str]:
    """What breaks the device's limits in ``folder``: too many files, a file or the total too large, a file
    more than ``depth`` folders deep (empty: within the limits)."""
    files = [p for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    problems = []
    if len(files) > limits["files"]:
        problems.append(f"{len(files)} files, at most {limits['files']}")
    total = 0
    for p in files:
        size = p.stat().st_size
        total += size
        rel = p.relative_to(folder)
        if size > limits["file_bytes"]:
            problems.append(f"{rel}: {size} bytes, at most {limits['file_bytes']}")
        if len(rel.parts) - 1 > limits["depth"]:
            problems.append(f"{rel}: {len(rel.parts) - 1} folders deep, at most {limits['depth']}")
    if total > limits["total_bytes"]:
        problems.append(f"{total} bytes in all, at most {limits['total_bytes']}")
    return problems


def _serialise(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def pack_weights(
    runs: Sequence[tuple[str, int, dict[str, Any]]],
    files: int,
    room: int,
    file_bytes: int = LIMITS["file_bytes"],
) -> tuple[list[tuple[str, bytes, list[str]]], list[str]]:
    """Pack ``(run, tier, {"config", "model"})`` into at most ``files`` files of at most ``file_bytes`` and
    ``room`` bytes in all, tier 1 first (stable within a tier). From the first run that does not fit, every
    later one is dropped: weights are dropped from the last tier first. Returns ``([(file name, bytes, runs)],
    dropped runs)``."""
    order = sorted(runs, key=lambda r: r[1])
    if files < 1:
        return [], [n for n, _, _ in order]
    packs: list[tuple[str, bytes, list[str]]] = []
    current: dict[str, Any] = {}  # the open pack (counted as a file)
    blob, used = b"", 0  # the open pack serialised; bytes of the closed packs

    def fits(data: bytes) -> bool:
        return len(data) <= file_bytes and used + len(data) <= room

    for i, (name, _, payload) in enumerate(order):
        trial = _serialise({"format": BUNDLE_FORMAT, "runs": {**current, name: payload}})
        if fits(trial):
            current, blob = {**current, name: payload}, trial
            continue
        if current and len(packs) + 1 < files:  # close the open pack; the run alone opens the next
            packs.append((f"weights-{len(packs) + 1}.pt", blob, list(current)))
            used += len(blob)
            current, blob = {}, b""
            alone = _serialise({"format": BUNDLE_FORMAT, "runs": {name: payload}})
            if fits(alone):
                current, blob = {name: payload}, alone
                continue
        dropped = [n for n, _, _ in order[i:]]
        break
    else:
        dropped = []
    if current:
        packs.append((f"weights-{len(packs) + 1}.pt", blob, list(current)))
    return packs, dropped


class Bundle:
    """The folder the device brings back: every file written atomically, the limits checked at the end."""

    def __init__(self, folder: Path) -> None:
        from ... import atomic

        self.folder = atomic.check_writable(folder, "bundle folder")
        self.manifest: dict[str, Any] = {}

    def write(self, name: str, data: bytes) -> None:
        from ... import atomic

        atomic.write_bytes(self.folder / name, data)

    def write_manifest(self, **updates: Any) -> None:
        """Merge ``updates`` into the manifest and write it (``provenance.json``)."""
        self.manifest.update(updates)
        self.write(MANIFEST, json.dumps(self.manifest, indent=1, default=str).encode())

    def write_tables(self, records: list[dict[str, Any]], staging: Path) -> None:
        """``scores.csv`` (per image, every scored run) and ``curves.csv`` (validation PSNR, L1 per run)."""
        frames = [
            pd.read_csv(staging / r["run"] / SCORES).assign(run=r["run"])
            for r in records
            if (staging / r["run"] / SCORES).exists()
        ]
        scores = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["image", "psnr", "ssim", "test_set", "run"])
        )
        self.write(SCORES, scores.to_csv(index=False, float_format="%.8g").encode())
        curves = pd.DataFrame(
            [{"run": r["run"], **c} for r in records for c in r["curve"]],
            columns=["run", "step", "l1", "val_psnr"],
        )
        self.write(CURVES, curves.to_csv(index=False, float_format="%.8g").encode())

    def write_log(self, text: str) -> None:
        data = text.encode(errors="replace")
        self.write(LOG, data[-LOG_BYTES:])

    def write_weights(self, records: list[dict[str, Any]], staging: Path) -> tuple[dict[str, str], list[str]]:
        """Pack the scored runs' float16 weights into the room left (tier 1 first); returns (run → file,
        runs whose weights were dropped)."""
        import torch

        used = sum(
            (self.folder / n).stat().st_size for n in (SCORES, CURVES, LOG) if (self.folder / n).exists()
        )
        room = LIMITS["total_bytes"] - used - MANIFEST_ROOM
        files = LIMITS["files"] - len(META_FILES)
        runs = []
        for r in records:
            path = staging / r["run"] / "weights16.pt"
            if path.exists():
                runs.append((r["run"], r["tier"], torch.load(path, map_location="cpu", weights_only=True)))
        packs, dropped = pack_weights(runs, files, room)
        where = {}
        for name, blob, names in packs:
            self.write(name, blob)
            where.update(dict.fromkeys(names, name))
        return where, dropped


def commit_id(root: Path = REPO) -> str:
    """The commit of the code: ``$ENLCN_COMMIT``, else the file ``.enlcn-commit`` the caller wrote in the
    repository root, else git's answer (``unknown`` without a repository)."""
    value = os.environ.get("ENLCN_COMMIT", "").strip()
    if value:
        return value
    path = root / ".enlcn-commit"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    from ...provenance import git_commit

    return git_commit(root)


def device_info(device: str) -> dict[str, Any]:
    """Device name, torch / CUDA / cuDNN versions, Python and the CPU of this process."""
    import platform

    import torch

    from ...provenance import cpu_model

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_model(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
    }
