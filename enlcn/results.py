"""Committed results: the book renders them; recomputing them is deliberate and says whether it reproduced.

A notebook keeps its result tables in ``results/<profile>/<notebook>/``, committed to git: they are the
book's inputs. A :class:`ResultFolder` decides, file by file, what a notebook run does with them:

* **render** (``recompute=False``, what ``make book`` runs): a result that exists is *read*, never
  recomputed or rewritten, so building the book shows the committed numbers, takes seconds, and leaves
  ``git status`` clean on any machine. A result that does not exist yet is computed and written (a new
  result, to be committed).
* **recompute** (``recompute=True``, what ``make results`` runs): every result is computed again and
  compared with the committed file (:func:`compare_tables`). When every number agrees within the
  tolerance, ``|new − old| ≤ ATOL + RTOL·|old|`` (other cells equal), the committed file is kept and the
  run reports ``reproduced (max difference …)``; otherwise the new numbers replace it and the run says
  ``changed``. Only a run that wrote a result rewrites the folder's ``provenance.json``: the record always
  describes the run that produced the numbers beside it.

Why a tolerance and not rounding: the same float32 computation differs in its last bits between an Intel
(AVX-512) and an AMD (AVX2) CPU, e.g. 0.1864429 against 0.18644289, and such values straddle any rounding
boundary. ``RTOL = 1e-5`` is ~80 float32 epsilons (the CSVs carry 6–8 significant digits), far below any
difference the study interprets (0.001 dB of PSNR is 3e-5 relative at 30 dB).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .display import BookTable, book_table
from .provenance import CSV_DIGITS, REPO, Provenance, record_table, write_json_atomic, write_text_atomic

#: relative tolerance of a reproduced number (see the module doc)
RTOL = 1e-5
#: absolute tolerance, for numbers that are (nearly) zero
ATOL = 1e-9
#: the record written beside the results of a run that wrote any
PROVENANCE = "provenance.json"
#: the caption of the table :meth:`ResultFolder.finish` returns
PROVENANCE_CAPTION = (
    "What this page's run did with each result file (committed: read from the repository; new, reproduced "
    "or changed: computed by this run), and the run itself; then the record of the run that computed the "
    "numbers shown: notebook, profile, parameters, seed, commit, versions and hardware."
)
#: where :meth:`ResultFolder.report` appends its statuses, if set (``tools/run_notebooks.py`` sets it)
REPORT_VAR = "ENLCN_RESULTS_REPORT"


@dataclass(frozen=True)
class Comparison:
    """How a recomputed result compares with the committed one."""

    same: bool  # within the tolerance
    max_abs: float  # largest |new − old| over the numeric cells (0.0: identical; NaN: not measured)
    why: str = ""  # what differs, when not ``same``

    def status(self) -> str:
        if not self.same:
            return f"changed ({self.why})" if self.why else "changed"
        if self.max_abs == 0:
            return "reproduced (identical)"
        if math.isnan(self.max_abs):
            return "reproduced"
        return f"reproduced (max difference {self.max_abs:.2g})"


def csv_text(frame: pd.DataFrame, digits: int = CSV_DIGITS) -> str:
    """A DataFrame as the CSV text a result file holds (floats to ``digits`` significant digits)."""
    return frame.to_csv(index=False, float_format=f"%.{digits}g")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A result CSV as a DataFrame (an empty file: an empty frame)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def compare_tables(
    new: pd.DataFrame, old: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL
) -> Comparison:
    """Compare two tables as read from CSV: same columns and rows, numbers within
    ``atol + rtol·|old|`` (NaN only where the other is NaN), every other cell equal."""
    if list(new.columns) != list(old.columns):
        return Comparison(False, float("nan"), f"columns {list(old.columns)} → {list(new.columns)}")
    if len(new) != len(old):
        return Comparison(False, float("nan"), f"{len(old)} rows → {len(new)}")
    worst = 0.0
    for col in new.columns:
        a, b = new[col], old[col]
        numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
        if numeric and not (pd.api.types.is_bool_dtype(a) or pd.api.types.is_bool_dtype(b)):
            x, y = a.to_numpy(float), b.to_numpy(float)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return Comparison(False, float("nan"), f"column {col!r}: missing values moved")
            ok = ~np.isnan(y)
            diff = np.abs(x[ok] - y[ok])
            if len(diff):
                worst = max(worst, float(diff.max()))
                if not np.all(diff <= atol + rtol * np.abs(y[ok])):
                    return Comparison(False, worst, f"column {col!r} differs by up to {diff.max():.3g}")
        elif not a.astype(str).equals(b.astype(str)):
            row = int(np.argmax(a.astype(str).to_numpy() != b.astype(str).to_numpy()))
            return Comparison(False, worst, f"column {col!r}, row {row}: {b.iloc[row]!r} → {a.iloc[row]!r}")
    return Comparison(True, worst)


@dataclass
class ResultFolder:
    """A notebook's committed result folder, read in render mode and checked in recompute mode.

    ``prov`` is the provenance of this run: when its profile, seed or parameters differ from those the
    committed results were produced with, the results are recomputed (and rewritten) even in render mode
    (:attr:`stale` says why), so a page never shows numbers of other parameters than its own.
    """

    folder: Path
    prov: Provenance
    recompute: bool = False
    statuses: dict[str, str] = field(default_factory=dict)  # file name → what this run did with it

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.committed = self.committed_provenance()  # the record of the numbers now in the folder
        self.stale = parameters_differ(self.prov, self.committed)

    @property
    def render(self) -> bool:
        """Whether committed results are read rather than computed."""
        return not (self.recompute or self.stale)

    def table(
        self,
        name: str,
        compute: Callable[[], pd.DataFrame],
        digits: int = CSV_DIGITS,
        rtol: float = RTOL,
        atol: float = ATOL,
    ) -> pd.DataFrame:
        """The result table ``name``: the committed file's (render), or ``compute()`` checked against it
        (recompute). Always as read back from its CSV text, so both modes hand the page the same frame."""

        def compare(new: str, old: str) -> Comparison:
            return compare_tables(read_table(io.StringIO(new)), read_table(io.StringIO(old)), rtol, atol)

        return read_table(io.StringIO(self._keep(name, lambda: csv_text(compute(), digits), compare)))

    def text(
        self, name: str, compute: Callable[[], str], same: Callable[[str, str], bool] | None = None
    ) -> str:
        """A result kept as text (e.g. a page's data file), like :meth:`table`; ``same(new, old)`` says
        whether a recomputation reproduced it (default: identical text)."""

        def compare(new: str, old: str) -> Comparison:
            if new == old:
                return Comparison(True, 0.0)
            return Comparison(same is not None and same(new, old), math.nan)

        return self._keep(name, compute, compare)

    def _keep(self, name: str, compute: Callable[[], str], compare: Callable[[str, str], Comparison]) -> str:
        """The text of result ``name``: the committed file's in render mode; otherwise ``compute()``,
        written unless ``compare(new, committed)`` says it reproduced the committed text (then that is
        kept and returned). Records what happened in :attr:`statuses`."""
        path = self.folder / name
        if path.exists() and self.render:
            self.statuses[name] = "committed"
            return path.read_text()
        new = compute()
        if path.exists():
            old = path.read_text()
            comparison = compare(new, old)
            self.statuses[name] = comparison.status()
            if comparison.same:
                return old
        else:
            self.statuses[name] = "new"
        write_text_atomic(path, new)
        return new

    @property
    def wrote(self) -> list[str]:
        """The files this run wrote (new or changed)."""
        return [n for n, s in self.statuses.items() if s == "new" or s.startswith("changed")]

    def finish(self) -> BookTable:
        """Write the provenance of this run if it wrote a result; return the table a page shows under its
        results (captioned, every value in full: :func:`~enlcn.provenance.record_table`): what this run did
        with each file, then the provenance of the numbers shown."""
        prov = self.prov.finish()
        record = self.committed
        if self.wrote or self.stale or record is None:
            record = {**prov.to_dict(), "results": dict(self.statuses)}
            write_json_atomic(self.folder / PROVENANCE, record)
            self.committed = record
        self.report()
        rows = [(f"file {name}", status) for name, status in self.statuses.items()]
        mode = "recompute" if self.recompute else "render" + (f" ({self.stale})" if self.stale else "")
        rows.append(("this run", f"{mode} at commit {prov.commit}, {prov.wall_time_s} s"))
        return book_table(record_table(record, rows), PROVENANCE_CAPTION)

    def report(self) -> None:
        """Append what this run did with each file to the file named by ``$ENLCN_RESULTS_REPORT``, if set
        (``tools/run_notebooks.py`` sets it and sums the reports up after the notebooks ran)."""
        target = os.environ.get(REPORT_VAR)
        if target:
            try:
                folder = self.folder.relative_to(REPO).as_posix()
            except ValueError:
                folder = self.folder.as_posix()
            line = json.dumps({"folder": folder, "recompute": self.recompute, "statuses": self.statuses})
            with open(target, "a", encoding="utf-8") as f:  # one short line, appended
                f.write(line + "\n")

    def committed_provenance(self) -> dict[str, Any] | None:
        """The provenance record beside the results, or None."""
        path = self.folder / PROVENANCE
        return json.loads(path.read_text()) if path.exists() else None



def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists, other objects strings)."""
    return json.loads(json.dumps(value, default=str))


def parameters_differ(prov: Provenance, committed: dict[str, Any] | None) -> str:
    """Why results produced under the ``committed`` provenance record are not this run's (``""``: they
    are): another profile, seed, or value of one of this run's parameters. Keys the committed record
    added after its start (e.g. the models it found) are not compared."""
    if committed is None:
        return ""
    for key in ("profile", "seed"):
        if _plain(getattr(prov, key)) != committed.get(key):
            return f"{key} {committed.get(key)!r} → {getattr(prov, key)!r}"
    old = committed.get("parameters", {})
    for key, value in _plain(prov.parameters).items():
        if old.get(key) != value:
            return f"parameter {key}: {old.get(key)!r} → {value!r}"
    return ""
