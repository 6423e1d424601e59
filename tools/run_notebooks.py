#!/usr/bin/env python3
"""Execute the study's notebooks with papermill and write the executed copies for the book.

Every ``<input-dir>/*.ipynb`` (or the notebooks named on the command line) is run with the parameter
``profile`` set (``quick``, ``cpu`` or ``paper``) on the given Jupyter kernel, in the notebook's own
directory (as Jupyter would run it). The executed copy goes to ``<output-dir>/<name>.ipynb``
**atomically**: papermill writes ``<name>.tmp.ipynb`` and only a run that finished is renamed over the
final name, so a failed or interrupted run never leaves a half-executed notebook where the book (or git)
would pick it up. A failed run's partial output is moved to ``<failed-dir>`` for inspection instead.

Independent of the ``enlcn`` package on purpose: it only needs papermill. Used by ``make book``::

    python tools/run_notebooks.py --profile cpu --kernel enlcn \\
        --input-dir notebooks --output-dir book/notebooks
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

TMP_SUFFIX = ".tmp.ipynb"
#: notebooks that read the others' results: run after them, whatever their names
RUN_LAST = ("findings",)


class NotebookFailed(RuntimeError):
    """A notebook raised during execution (or papermill could not run it)."""


def find_notebooks(input_dir: Path, names: list[str]) -> list[Path]:
    if names:
        paths = []
        for name in names:
            p = Path(name)
            if not p.suffix:
                p = p.with_suffix(".ipynb")
            if not p.exists():
                p = input_dir / p.name
            if not p.exists():
                raise SystemExit(f"run_notebooks: no such notebook: {name} (looked in {input_dir}/)")
            paths.append(p)
        return paths
    if not input_dir.is_dir():
        return []
    found = (p for p in input_dir.glob("*.ipynb") if not p.name.endswith(TMP_SUFFIX))
    return sorted(found, key=lambda p: (p.stem in RUN_LAST, p.name))


def run_one(
    src: Path,
    out_dir: Path,
    failed_dir: Path,
    *,
    profile: str,
    kernel: str,
    timeout: float | None,
    extra: dict | None = None,
) -> Path:
    import papermill as pm  # imported here so `--help` works without papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / src.name
    tmp = out_dir / (src.stem + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    try:
        pm.execute_notebook(
            str(src),
            str(tmp),
            parameters={"profile": profile, **(extra or {})},
            kernel_name=kernel,
            language="python",  # the study's notebooks are Python; needed when one lacks kernelspec metadata
            cwd=str(src.resolve().parent),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout,
        )
    except BaseException as exc:  # includes KeyboardInterrupt: never leave the temp file behind
        where = ""
        if tmp.exists():
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept = failed_dir / src.name
            os.replace(tmp, kept)
            where = f"\n  its partially executed copy is at {kept}"
        if isinstance(exc, Exception):
            summary = str(exc).strip().splitlines()
            detail = "\n    ".join(summary[-15:]) if summary else type(exc).__name__
            raise NotebookFailed(
                f"notebook {src} FAILED (profile={profile}, kernel={kernel}): {type(exc).__name__}\n"
                f"    {detail}{where}\n  no executed copy was written to {final}"
            ) from exc
        raise
    strip_widget_state(tmp)
    os.replace(tmp, final)  # atomic on the same filesystem
    return final


def strip_widget_state(path: Path) -> None:
    """Drop the ipywidgets state papermill saves in a notebook's metadata: a book page has no kernel to
    drive widgets, and with the state saved myst-nb would make the page fetch widget scripts from CDNs."""
    import json

    nb = json.loads(path.read_text(encoding="utf-8"))
    if nb.get("metadata", {}).pop("widgets", None) is not None:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


#: the environment variable under which enlcn.results.ResultFolder reports what each run did with its
#: result files (one JSON line per folder)
REPORT_VAR = "ENLCN_RESULTS_REPORT"


def summarize_report(path: Path) -> list[str]:
    """Lines saying what the notebooks did with their result files (``enlcn.results`` statuses:
    committed, new, reproduced (…), changed (…)), naming each file that was written."""
    import json
    import re

    if not path.exists():
        return []
    counts: dict[str, int] = {}
    written, differences = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        for name, status in entry["statuses"].items():
            kind = status.split(" (")[0]
            counts[kind] = counts.get(kind, 0) + 1
            if kind in ("changed", "new"):
                written.append(f"  {status}: {entry['folder']}/{name}")
            differences += [float(d) for d in re.findall(r"max difference (\S+)\)", status)]
    total = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    lines = [f"run_notebooks: result files: {total or 'none'}"]
    if differences:
        lines.append(f"run_notebooks: largest difference of a reproduced number: {max(differences):.2g}")
    return lines + written


#: the math libraries' thread settings a kernel inherits from this process
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def kernel_threads(requested: int | None, load: float | None = None, cores: int | None = None) -> int | None:
    """Threads for the notebooks' math libraries: ``requested`` when given; else 1 when other processes
    already keep every core busy (1-minute load average ≥ cores − 0.5, e.g. study runs training in the
    background: two-thread kernels beside them are oversubscribed — a notebook measured 333 s against 26 s
    with one thread); else ``None``, the libraries' own default."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be >= 1, got {requested}")
        return requested
    load = os.getloadavg()[0] if load is None else load
    cores = (os.cpu_count() or 1) if cores is None else cores
    return 1 if cores > 1 and load >= cores - 0.5 else None


def parse_params(items: list[str]) -> dict:
    """``["a=1", "b=false"]`` → ``{"a": 1, "b": False}`` (values parsed as YAML, as papermill's ``-y``)."""
    import yaml  # papermill depends on PyYAML

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--param expects KEY=VALUE with a Python name as KEY, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: every *.ipynb in --input-dir)")
    ap.add_argument("--profile", default="cpu", help="value of the notebooks' `profile` parameter")
    ap.add_argument("--kernel", default="enlcn", help="Jupyter kernel name (see `make venv`)")
    ap.add_argument("--input-dir", type=Path, default=Path("notebooks"))
    ap.add_argument("--output-dir", type=Path, default=Path("book/notebooks"))
    ap.add_argument(
        "--failed-dir",
        type=Path,
        default=Path("book/_build/failed-notebooks"),
        help="where a failed run's partial output is kept",
    )
    ap.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds (default none)")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another papermill parameter (YAML value, e.g. train_missing=false); repeatable",
    )
    ap.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="math threads of the kernels (default: the libraries' own, or 1 on a machine already busy)",
    )
    args = ap.parse_args(argv)
    try:
        extra = parse_params(args.param)
        user_set = args.threads is None and any(v in os.environ for v in THREAD_VARS)  # the caller's own
        threads = None if user_set else kernel_threads(args.threads)
    except ValueError as exc:
        ap.error(str(exc))
    if threads is not None:  # the kernels inherit this process's environment
        os.environ.update({v: str(threads) for v in THREAD_VARS})
        print(f"run_notebooks: {threads} math thread(s) per kernel (load average {os.getloadavg()[0]:.1f})")

    # Leftovers of a run that was killed hard (SIGKILL) are never valid output.
    if args.output_dir.is_dir():
        for stale_tmp in args.output_dir.glob("*" + TMP_SUFFIX):
            stale_tmp.unlink()

    notebooks = find_notebooks(args.input_dir, args.notebooks)
    if not notebooks:
        print(f"run_notebooks: no notebooks in {args.input_dir}/ — nothing to execute")
        return 0

    if not args.notebooks and args.output_dir.is_dir():
        sources = {p.name for p in notebooks}
        for orphan in sorted(args.output_dir.glob("*.ipynb")):
            if orphan.name not in sources:
                print(f"run_notebooks: warning: {orphan} has no source notebook in {args.input_dir}/")

    report = args.failed_dir.parent / "results-report.jsonl"
    report.unlink(missing_ok=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    os.environ[REPORT_VAR] = str(report.resolve())  # the kernels inherit it
    failures: list[str] = []
    for i, src in enumerate(notebooks, 1):
        print(f"run_notebooks: [{i}/{len(notebooks)}] {src} (profile={args.profile}) ...", flush=True)
        t0 = time.perf_counter()
        try:
            final = run_one(
                src,
                args.output_dir,
                args.failed_dir,
                profile=args.profile,
                kernel=args.kernel,
                timeout=args.timeout,
                extra=extra,
            )
        except NotebookFailed as exc:
            print(f"run_notebooks: ERROR: {exc}", file=sys.stderr, flush=True)
            failures.append(str(src))
            if not args.keep_going:
                break
            continue
        print(f"run_notebooks:   -> {final} ({time.perf_counter() - t0:.1f} s)", flush=True)

    for line in summarize_report(report):
        print(line)
    if failures:
        print(f"run_notebooks: {len(failures)} notebook(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
