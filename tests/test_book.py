"""The Jupyter Book: its toc and config (fast), the generated deviations chapter, the papermill runner,
and a full offline build (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from procs import run

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")
# toc entries that `make book` generates before `jupyter-book build`, with what generates them
GENERATED_FILES = {"deviations": BOOK / "gen_deviations.py"}
# toc globs, with the directory of sources whose executed copies they match (tools/run_notebooks.py)
GENERATED_GLOBS = {"notebooks/*": ROOT / "notebooks"}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toc_entries(node, files: list[str], globs: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                files.append(value)
            elif key == "glob":
                globs.append(value)
            else:
                _toc_entries(value, files, globs)
    elif isinstance(node, list):
        for item in node:
            _toc_entries(item, files, globs)


def toc() -> tuple[list[str], list[str]]:
    files, globs = [], []
    _toc_entries(yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8")), files, globs)
    return files, globs


# ------------------------------------------------------------------------------------------ toc, config


def test_toc_lists_only_existing_or_generated_files():
    files, globs = toc()
    assert files and files[0] == "intro", "the book's root must be intro"
    problems = []
    for entry in files:
        stem = entry.rsplit(".", 1)[0] if entry.endswith(SOURCE_SUFFIXES) else entry
        if stem in GENERATED_FILES:
            if not GENERATED_FILES[stem].exists():
                problems.append(f"{entry}: its generator {GENERATED_FILES[stem]} is missing")
            continue
        if stem.startswith("notebooks/") and (ROOT / f"{stem}.ipynb").exists():
            continue  # the executed copy of a source notebook, written by tools/run_notebooks.py
        if not any((BOOK / (stem + sfx)).exists() for sfx in SOURCE_SUFFIXES):
            problems.append(f"{entry}: no book/{stem}{{.md,.ipynb,.rst}}")
    for pattern in globs:
        if pattern not in GENERATED_GLOBS:
            problems.append(f"glob {pattern!r} is not one this test knows how `make book` fills")
    assert not problems, "book/_toc.yml:\n  " + "\n  ".join(problems)


def test_every_source_notebook_is_a_chapter():
    files, globs = toc()
    listed = {f.rsplit(".", 1)[0] for f in files}
    sources = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    by_glob = "notebooks/*" in globs
    missing = [s for s in sources if f"notebooks/{s}" not in listed and not by_glob]
    assert sources and not missing, f"notebooks/ without a chapter in book/_toc.yml: {missing}"
    assert len(files) == len(set(files)), "a toc entry is listed twice"


def test_generated_files_are_git_ignored_and_made_by_the_makefile():
    ignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for stem, generator in GENERATED_FILES.items():
        assert f"/book/{stem}.md" in ignore, f"book/{stem}.md is generated: .gitignore it"
        assert f"{generator.relative_to(ROOT)} --output book/{stem}.md" in makefile


def test_executed_notebooks_are_build_output_not_committed():
    """`make book` executes notebooks/X.ipynb into book/notebooks/X.ipynb: build output, git-ignored and
    untracked, so that building the book changes no tracked file."""
    assert "/book/notebooks/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    tracked = run(["git", "-C", str(ROOT), "ls-files", "book/notebooks"]).stdout.split()
    assert tracked == [], f"executed notebooks are committed: {tracked}"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--input-dir notebooks --output-dir book/notebooks" in makefile


def test_config_is_offline_and_never_executes_notebooks():
    cfg = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    assert cfg["title"] == "ENLCA / ENLCN — a reproducibility study"
    assert cfg["execute"]["execute_notebooks"] == "off", "papermill executes notebooks, not jupyter-book"
    assert cfg["only_build_toc_files"] is True
    sphinx = cfg.get("sphinx", {}).get("config", {})
    assert sphinx.get("nb_execution_mode", "off") == "off"
    assert not [f for f in sphinx.get("html_js_files", []) if "://" in str(f)], "no remote JS files"
    launch = cfg.get("launch_buttons", {})
    for key in ("binderhub_url", "jupyterhub_url", "colab_url"):
        assert not launch.get(key), f"launch_buttons.{key} needs network access"
    assert not launch.get("thebe"), "thebe needs network access"
    assert "extensions" not in sphinx or "sphinx.ext.intersphinx" not in sphinx["extensions"]


def test_pages_load_only_the_assets_they_name():
    """What every page loads is listed in _config.yml; the explorer's data only by explorer.md's tags."""
    sphinx = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))["sphinx"]["config"]
    assert not (BOOK / "_static").exists(), (
        "book/_static/ must not exist: with it, jupyter-book 1.x adds every .js/.css of every "
        "html_static_path folder to every page; put static files in book/_page_static/ and name them "
        "where they are used"
    )
    assert sphinx["html_static_path"] == ["_page_static"]
    assert (BOOK / "_page_static" / "explorer" / "explorer.js").exists()
    assert '<script src="_static/explorer/explorer-data.js">' in (BOOK / "explorer.md").read_text()
    assert sphinx.get("nb_ipywidgets_js") == {}, "set nb_ipywidgets_js: {} (no require.js from CDNs)"
    assert "sphinx_thebe" not in sphinx.get("extensions", ["sphinx_thebe"]), (
        "sphinx_thebe writes `const THEBE_JS_URL` into every page twice (a SyntaxError); leave it out"
    )


# ------------------------------------------------------------------------------ deviations generator


@pytest.fixture(scope="module")
def gen():
    return _load(BOOK / "gen_deviations.py", "gen_deviations")


def _fake_variants():
    @__import__("dataclasses").dataclass(frozen=True)
    class Deviation:
        topic: str
        option: str | None
        paper: str
        official: str
        ours: str
        source: str
        note: str = ""
        paper_value: object = None
        official_value: object = None

    devs = (
        Deviation(
            "Pipes | stars *", "attention.x", "a|b", "1. not a list", "- not a list", "f.py:1", "n_1", 1, 2
        ),
        Deviation("No option", None, "p", "o", "u", "g.py:2"),
    )
    cols = ["topic", "option", "paper", "official", "ours", "source", "note"]
    table = pd.DataFrame([{c: getattr(d, c) for c in cols} for d in devs], columns=cols)
    return SimpleNamespace(DEVIATIONS=devs, deviations_table=lambda: table)


def test_gen_deviations_renders_the_contract(gen):
    text = gen.render(_fake_variants())
    assert text.startswith("---\n") and "# Paper vs official code" in text
    for header in ("Topic", "Paper", "Official code", "This project"):
        assert f"- {header}" in text
    assert "Pipes \\| stars \\*" in text and "a\\|b" in text
    assert "1\\. not a list" in text and "\\- not a list" in text  # escaped: no accidental lists
    assert "`attention.x`" in text and "`f.py:1`" in text and "n\\_1" in text
    assert "## Option values of the two variants" in text
    assert text.count("\n* - ") == 3 + 2  # header + 2 rows, header + 1 option row


def test_gen_deviations_rejects_a_table_without_the_columns(gen):
    bad = SimpleNamespace(deviations_table=lambda: pd.DataFrame({"topic": ["x"]}))
    with pytest.raises(SystemExit, match="lacks column"):
        gen.render(bad)


def test_gen_deviations_on_the_real_module(gen, tmp_path):
    variants = pytest.importorskip("enlcn.variants")
    out = tmp_path / "deviations.md"
    assert gen.main(["--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    n = len(variants.deviations_table())
    assert f"differ in **{n}** places" in text
    for topic in variants.deviations_table()["topic"]:
        assert gen.md_text(topic) in text
    assert gen.main(["--output", str(out)]) == 0 and out.read_text(encoding="utf-8") == text


# ---------------------------------------------------------------------------------- papermill runner


@pytest.fixture(scope="module")
def runner():
    return _load(ROOT / "tools" / "run_notebooks.py", "run_notebooks")


def _write_notebook(path: Path, *sources: str) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_run_notebooks_skips_cleanly_without_notebooks(runner, tmp_path, capsys):
    rc = runner.main(["--input-dir", str(tmp_path / "none"), "--output-dir", str(tmp_path / "out")])
    assert rc == 0 and "nothing to execute" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(300)
def test_run_notebooks_is_atomic_and_names_the_failing_notebook(runner, tmp_path, capsys):
    pytest.importorskip("papermill")
    src, out, failed = tmp_path / "nb", tmp_path / "out", tmp_path / "failed"
    src.mkdir()
    _write_notebook(src / "01-ok.ipynb", "assert profile == 'cpu'\nprint('ran', profile)")
    _write_notebook(src / "02-bad.ipynb", "raise RuntimeError('boom in notebook two')")
    out.mkdir()
    (out / "02-bad.ipynb").write_text("previous good output", encoding="utf-8")

    argv = ["--input-dir", str(src), "--output-dir", str(out), "--failed-dir", str(failed)]
    rc = runner.main(argv + ["--profile", "cpu", "--kernel", "python3", "--keep-going", "--timeout", "120"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "02-bad.ipynb FAILED" in err and "boom in notebook two" in err
    assert (out / "01-ok.ipynb").exists() and "ran cpu" in (out / "01-ok.ipynb").read_text()
    # the failed run did not touch the previous output, and left no temp file behind
    assert (out / "02-bad.ipynb").read_text(encoding="utf-8") == "previous good output"
    assert not list(out.glob("*.tmp.ipynb"))
    assert (failed / "02-bad.ipynb").exists()


# ------------------------------------------------------------------------------------ full build (slow)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_make_book_in_a_fresh_clone_renders_the_committed_results_and_leaves_git_clean(tmp_path):
    """The README's `make book` in a fresh clone of this repository's HEAD (reusing this environment:
    VENV=sys.prefix, its install stamp taken as done): the notebooks render the committed results (none
    is new or changed), the book builds offline with -W, and `git status --porcelain` prints nothing."""
    import re
    import time

    venv = Path(sys.prefix)
    assert (venv / "bin" / "jupyter-book").exists(), "jupyter-book not installed (make venv)"
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("http_proxy", "https_proxy"))}
    env["PYTHONPATH"] = str(clone)  # the kernels import the clone's enlcn, not this checkout's
    t0 = time.perf_counter()
    proc = run(["make", "-C", str(clone), "book", f"VENV={venv}", f"STAMP={venv / 'bin' / 'python'}"],
               env=env, timeout=1400)
    took = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make book failed:\n{out[-8000:]}"
    print(f"make book in a fresh clone: {took:.0f} s")
    assert run(["git", "-C", str(clone), "status", "--porcelain"]).stdout == ""
    summary = re.search(r"run_notebooks: result files: (.*)", out)
    assert summary and re.fullmatch(r"\d+ committed", summary.group(1)), summary and summary.group(0)

    html = clone / "book" / "_build" / "html"
    assert "intro.html" in (html / "index.html").read_text(encoding="utf-8")  # jupyter-book's redirect
    intro = (html / "intro.html").read_text(encoding="utf-8")
    assert "ENLCA / ENLCN" in intro and "Profiles, and what the build machines can do" in intro
    deviations = (html / "deviations.html").read_text(encoding="utf-8")
    for header in ("Topic", "Official code", "This project"):
        assert f"<p>{header}</p>" in deviations, f"column header {header!r} missing from deviations.html"
    executed = sorted((clone / "book" / "notebooks").glob("*.ipynb"))
    assert [p.name for p in executed] == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for nb in executed:
        assert (html / "notebooks" / (nb.stem + ".html")).exists(), f"{nb.name} not in the built book"
        for cell in json.loads(nb.read_text())["cells"]:  # no path of the machine that built the book
            for output in cell.get("outputs", []):
                shown = json.dumps(output.get("data", {})) + json.dumps(output.get("text", ""))
                found = re.search(r"PosixPath\('/[^']*'\)|(?:/work|/home|/root|/tmp)/[\w.-]+/", shown)
                assert found is None, f"{nb.name} shows {found.group(0)!r}"
        assert "widgets" not in json.loads(nb.read_text())["metadata"], f"{nb.name} keeps widget state"


def test_run_notebooks_passes_extra_parameters(runner, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    _write_notebook(src / "p.ipynb", "assert train_missing is False and n == 3, (train_missing, n)")
    rc = runner.main(
        [
            "--input-dir",
            str(src),
            "--output-dir",
            str(out),
            "--kernel",
            "python3",
            "--param",
            "train_missing=false",
            "--param",
            "n=3",
        ]
    )
    assert rc == 0 and (out / "p.ipynb").exists()
    with pytest.raises(SystemExit):
        runner.main(["--input-dir", str(src), "--param", "not a name=1"])


def test_the_findings_notebook_runs_after_the_ones_it_reads(runner, tmp_path):
    for name in ("zeta", "findings", "ablations", "efficiency.tmp"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    order = [p.stem for p in runner.find_notebooks(tmp_path, [])]
    assert order == ["ablations", "zeta", "findings"]
    assert [p.stem for p in runner.find_notebooks(ROOT / "notebooks", [])][-1] == "findings"


def test_kernels_get_one_thread_on_a_busy_machine(runner):
    assert runner.kernel_threads(None, load=2.1, cores=2) == 1  # two training processes on two cores
    assert runner.kernel_threads(None, load=0.3, cores=2) is None  # idle: the libraries' default
    assert runner.kernel_threads(None, load=9.0, cores=1) is None  # one core: nothing to oversubscribe
    assert runner.kernel_threads(3, load=9.0, cores=2) == 3  # asked for
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        runner.kernel_threads(0)
