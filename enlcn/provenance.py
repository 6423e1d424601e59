"""Provenance of every number the study reports: profile, parameters, seeds, commit, versions, hardware.

Notebooks call :func:`provenance` at their start and :meth:`Provenance.finish` at their end; the record is
shown under the results and saved beside every result file (:func:`write_json_atomic`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from . import atomic

REPO = Path(__file__).resolve().parents[1]


def project_root(root: str | os.PathLike = "") -> Path:
    """Where notebooks and commands read and write ``results/`` and ``runs/``, whatever the working directory.

    ``root`` (a notebook's ``root`` parameter): an explicit folder; empty means this repository, the one
    the ``enlcn`` package is imported from (an editable install's checkout). A package installed
    elsewhere has no repository: then ``root`` must be given.
    """
    if str(root):
        path = Path(root).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError(f"root {root!r} is not a folder")
        return path
    if not (REPO / "pyproject.toml").is_file():
        raise ValueError(
            f"enlcn is not imported from its repository ({REPO}); give the folder for results/ and runs/ "
            "explicitly (notebooks: -p root DIR)"
        )
    return REPO


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


#: outputs the build itself writes (executed notebooks, results): they do not make the code dirty
OUTPUT_PATHS = ("book/notebooks", "results")


def uncommitted_files(repo: Path = REPO) -> list[str]:
    """The tracked files (code, not :data:`OUTPUT_PATHS`) with uncommitted changes; ``[]`` when clean or
    when there is no repository to ask."""
    excluded = [f":!{path}" for path in OUTPUT_PATHS]
    try:
        changed = _git(repo, "diff", "--name-only", "HEAD", "--", ".", *excluded)
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(changed.splitlines())


def git_commit(repo: Path = REPO) -> str:
    """The current commit (``-dirty`` when code, not outputs, has uncommitted changes: which ones,
    :func:`uncommitted_files`), or ``unknown``."""
    try:
        sha = _git(repo, "rev-parse", "--short=12", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if uncommitted_files(repo) else "")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (other processes on the CPU skew timings), or None."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not available
        return None


def hardware(device: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """CPU, core count, torch threads, the device, the load average and the GPU if there is one.

    ``device`` and ``threads`` name what a measurement chose itself (default: torch's default device and
    thread count in this process).
    """
    import torch

    cuda = torch.cuda.is_available()
    device = device or ("cuda" if cuda else "cpu")
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "device": device,
        "load_average_1_5_15min": load_average(),
    }
    if cuda:
        info["gpu"] = torch.cuda.get_device_name(device if device.startswith("cuda") else 0)
    return info


def versions() -> dict[str, str]:
    """Versions of Python and the libraries the results depend on."""
    import numpy
    import skimage
    import torch

    from . import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-image": skimage.__version__,
        "pandas": pd.__version__,
        "enlcn": __version__,
    }


#: the committed lock of the environment: ``make lock`` writes it, ``make venv`` installs exactly it
LOCK = REPO / "requirements" / "lock.txt"
#: installed but never locked: the project itself, and torch (the Makefile pins it; compared with the lock's
#: ``lock-torch`` header instead)
UNLOCKED = frozenset({"enlcn", "torch"})
#: at most this many differences are listed in a record (then a count of the rest)
MAX_DIFFERENCES = 12


def normalize_name(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Jinja2`` = ``jinja2``, ``typing_extensions`` =
    ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Lock:
    """A lock file: ``pins`` (normalised name → version), its ``# lock-KEY: value`` header lines
    (``python``, ``platform``, ``torch``, ``date``) and the sha256 of its bytes."""

    pins: dict[str, str]
    header: dict[str, str]
    sha256: str


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_HEADER = re.compile(r"^# lock-([a-z]+): (\S+)")


def read_lock(path: str | os.PathLike = LOCK) -> Lock:
    """Read the lock at ``path`` (the format ``make lock`` writes)."""
    data = Path(path).read_bytes()
    pins, header = {}, {}
    for line in data.decode("utf-8").splitlines():
        if m := _PIN.match(line):
            pins[normalize_name(m.group(1))] = m.group(2)
        elif m := _HEADER.match(line):
            header[m.group(1)] = m.group(2)
    return Lock(pins=pins, header=header, sha256=hashlib.sha256(data).hexdigest())


def installed_distributions() -> dict[str, str]:
    """Normalised name → version of every distribution installed in this interpreter's environment (its
    site-packages folders, the first of each name). Only those folders: ``setuptools`` puts its vendored
    copies (``setuptools/_vendor``: autocommand, jaraco.*, …) on ``sys.path`` once imported — as
    ``torch.utils.cpp_extension`` does when a native kernel loads — and they are not installed packages."""
    import sysconfig

    folders = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=folders):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize_name(name), dist.version)
    return found


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def lock_differences(lock: Lock, installed: dict[str, str], python: str) -> list[str]:
    """How an environment (``installed``: name → version, as :func:`installed_distributions`; ``python``:
    its version) differs from ``lock``, one line each; ``[]`` when it is exactly the lock. torch is compared
    by its public version with the lock's ``lock-torch`` (``2.13.0+cpu`` is 2.13.0), the project itself not
    at all; a package the lock does not list is a difference too (a CUDA build's nvidia-* libraries)."""
    from packaging.version import InvalidVersion, Version

    out = []
    want_python = lock.header.get("python")
    if want_python and ".".join(python.split(".")[:2]) != want_python:
        out.append(f"python {python} (lock: {want_python})")
    want_torch, torch = lock.header.get("torch"), installed.get("torch")
    if want_torch:
        if torch is None:
            out.append(f"torch not installed (lock: {want_torch})")
        else:
            try:
                public = Version(torch).public
            except InvalidVersion:
                public = torch
            if not _same_version(public, want_torch):
                out.append(f"torch {torch} (lock: {want_torch})")
    for name, version in sorted(lock.pins.items()):
        have = installed.get(name)
        if have is None:
            out.append(f"{name} not installed (lock: {version})")
        elif not _same_version(have, version):
            out.append(f"{name} {have} (lock: {version})")
    for name in sorted(set(installed) - set(lock.pins) - UNLOCKED):
        out.append(f"{name} {installed[name]} (not in the lock)")
    return out


def environment_record(path: str | os.PathLike = LOCK) -> dict[str, Any]:
    """Whether the running environment is the lock at ``path``: the lock (relative to the repository),
    its sha256, ``matches_lock`` and the differences (at most :data:`MAX_DIFFERENCES`, then a count)."""
    path = Path(path)
    try:
        lock = read_lock(path)
    except OSError:
        return {
            "lock": None,
            "lock_sha256": None,
            "matches_lock": False,
            "lock_differences": ["no lock file: enlcn is not imported from its repository"],
        }
    diffs = lock_differences(lock, installed_distributions(), platform.python_version())
    if len(diffs) > MAX_DIFFERENCES:
        diffs = diffs[:MAX_DIFFERENCES] + [f"... and {len(diffs) - MAX_DIFFERENCES} more"]
    try:
        shown = path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        shown = path.name
    return {"lock": shown, "lock_sha256": lock.sha256, "matches_lock": not diffs, "lock_differences": diffs}


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    record = environment_record()
    if not record["matches_lock"]:
        diffs = record["lock_differences"]
        shown = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")
        sys.stderr.write(
            f"enlcn: this environment is not the locked one ({record['lock'] or 'requirements/lock.txt'}, "
            f"which `make venv` installs): {shown}. Provenance records say so (environment.matches_lock = "
            "False); results may differ from the book's.\n"
        )
    return record


def environment() -> dict[str, Any]:
    """The lock's hash and whether this environment matches it (:func:`environment_record`), computed once
    per process; a mismatch (another torch build, a user's own environment) is stated once on stderr,
    never an error."""
    return copy.deepcopy(_environment())


@dataclass
class Provenance:
    """Where a result came from. ``wall_time_s`` is filled by :meth:`finish`.

    ``notebook`` names what produced the result (a notebook, or a module such as ``enlcn.bench``);
    ``profile`` is None for results that no profile selects (the operator benchmark).
    """

    notebook: str
    profile: str | None
    parameters: dict[str, Any]
    seed: int | None
    commit: str = field(default_factory=git_commit)
    # with a -dirty commit: the code files that differed from it (so a reader knows what was not committed)
    uncommitted: list[str] = field(default_factory=uncommitted_files)
    versions: dict[str, str] = field(default_factory=versions)
    # the lock's sha256 and whether this environment is exactly the lock (matches_lock, lock_differences)
    environment: dict[str, Any] = field(default_factory=environment)
    hardware: dict[str, Any] = field(default_factory=hardware)
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    wall_time_s: float | None = None
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def finish(self) -> Provenance:
        """Record the wall time since creation."""
        self.wall_time_s = round(time.perf_counter() - self._t0, 2)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_t0")
        return d

    def table(self) -> pd.DataFrame:
        """A two-column table for display under a notebook's results."""
        return record_table(self.to_dict())


def record_table(record: dict[str, Any], before: list[tuple[str, Any]] = ()) -> pd.DataFrame:
    """A provenance record as a two-column (field, value) table, after the rows ``before``: nested dicts at
    any depth as ``key.subkey`` rows, a list of dicts (e.g. a run's training sessions) as one
    ``key[i]`` row per item reading ``name: value, …``, any other list as its items joined by commas
    (``none`` when empty), and None as a dash — every value a short line of text, never a dict cut off."""
    rows = list(before)
    rows += _record_rows(record, "")
    return pd.DataFrame({"field": [key for key, _ in rows], "value": [_record_text(v) for _, v in rows]})


def _record_rows(record: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _record_rows(value, f"{name}.")
        elif isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
            rows += [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        else:
            rows.append((name, value))
    return rows


def _record_text(value: Any) -> str:
    """One value of a provenance record as the table shows it (see :func:`record_table`)."""
    if value is None:
        return "—"  # None (no seed): a dash, not "nan"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_record_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_record_text(v) for v in value) or "none"
    return str(value)


def provenance(
    notebook: str, profile: str | None, parameters: dict[str, Any], seed: int | None = None
) -> Provenance:
    """Start a provenance record for ``notebook`` run under ``profile`` with ``parameters``."""
    return Provenance(notebook=notebook, profile=profile, parameters=dict(parameters), seed=seed)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and a rename: never a half-written file
    (:func:`enlcn.atomic.replacing`)."""
    return atomic.write_text(path, text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str))


#: significant digits of the floats in result CSVs: float32 model outputs carry about 7, so an 8th digit
#: would only record a CPU's rounding; re-running a result on another machine then leaves git clean
CSV_DIGITS = 8


def write_csv_atomic(path: str | os.PathLike, frame: pd.DataFrame, digits: int = CSV_DIGITS) -> Path:
    """Write a DataFrame as CSV (floats to ``digits`` significant digits) via a temp file and a rename."""
    with atomic.replacing(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=f"%.{digits}g")
    return Path(path)
