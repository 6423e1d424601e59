"""The README's example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    text = README.read_text()
    block = re.search(r"<!-- example: build_attention -->.*?```python\n(.*?)```", text, re.S)
    assert block, "README lost its build_attention example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 12
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([1, 64, 48, 48])" in out


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "make book" in text and "make test" in text


def test_readme_correlation_example_runs_on_the_committed_cpu_model(monkeypatch):
    """Runs once the cpu-profile ENLCN's weights are committed (results/cpu/study/enlca/weights.pt)."""
    import matplotlib

    matplotlib.use("Agg")
    from enlcn import study

    if not (study.result_dir("cpu", study.ENLCA) / "weights.pt").exists():
        pytest.skip("the cpu-profile ENLCN has not been trained yet (enlcn study --profile cpu)")
    text = README.read_text()
    block = re.search(r"<!-- example: correlation_maps -->.*?```python\n(.*?)```", text, re.S)
    assert block, "README lost its correlation-map example"
    namespace: dict = {}
    exec(compile(block.group(1), str(README), "exec"), namespace)
    assert namespace["lr"].shape[2] == 3 and namespace["model"].training is False


# ------------------------------------------------------------------ what the README names must exist

ROOT = README.parent
USAGE = ROOT / "book" / "usage.md"  # the book page the README sends readers to for every other command


def _code(text: str) -> list[str]:
    """The lines of a markdown text's shell blocks (fenced, not Python) and its inline code spans."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    fenced = [body for lang, body in blocks if lang != "python"]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    inline = re.findall(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)", prose)
    return [line for block in fenced for line in block.splitlines()] + inline


def _phony_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = {t for line in re.findall(r"^\.PHONY:(.*)$", makefile, re.M) for t in line.split()}
    rules = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    return phony & rules


@pytest.mark.parametrize("path", [README, USAGE], ids=lambda p: p.name)
def test_every_make_target_named_exists(path):
    """`make X` in the README or the usage page: X is a rule of the Makefile and in its .PHONY list."""
    named = {m for span in _code(path.read_text(encoding="utf-8"))
             for m in re.findall(r"(?:^|[;&|]\s*)make\s+([a-z][\w-]*)", span.strip())}
    assert {"book", "test"} <= named or path != README
    missing = sorted(named - _phony_targets())
    assert not missing, f"{path.name} names make targets the Makefile's .PHONY rules lack: {missing}"


@pytest.mark.parametrize("path", [README, USAGE], ids=lambda p: p.name)
def test_every_enlcn_subcommand_named_exists(path):
    from enlcn.cli import build_parser

    parser = build_parser()
    subcommands = set(next(a for a in parser._actions if a.dest == "command").choices)
    named = {m for span in _code(path.read_text(encoding="utf-8"))
             for m in re.findall(r"(?:^|\s)(?:\.venv/bin/)?enlcn ([a-z]+)", span)}
    assert named, f"{path.name} names no enlcn command"
    assert not named - subcommands, f"{path.name}: no such enlcn subcommand: {sorted(named - subcommands)}"


def test_readme_links_point_at_existing_book_pages():
    """Every relative link of the README is a file of the repository; a book page or notebook is in the
    toc."""
    from test_book import toc

    files, _ = toc()
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert local, "the README links no book page"
    problems = []
    for link in local:
        target = ROOT / link
        if not target.exists():
            problems.append(f"{link}: no such file")
        elif link.startswith("book/") and link.endswith(".md") and target.stem not in files:
            problems.append(f"{link}: not a page of book/_toc.yml")
        elif link.startswith("notebooks/") and f"notebooks/{target.stem}" not in files:
            problems.append(f"{link}: not a chapter of book/_toc.yml")
    assert not problems, "README links:\n  " + "\n  ".join(problems)


def test_readme_layout_table():
    """The layout table's paths exist, its Makefile row lists every .PHONY target but `help` and `native`
    (internal), and its `.ci/run` row says what .ci/run runs, in order."""
    text = README.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([^`]+)` \| (.*) \|$", text, re.M))
    assert rows, "README lost its layout table"
    assert not [p for p in rows if not (ROOT / p).exists()], "layout table names missing paths"
    listed = set(re.findall(r"`([a-z][\w-]*)`", rows["Makefile"]))
    assert listed == _phony_targets() - {"help", "native"}, "the Makefile row and the Makefile differ"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.findall(r"^\s*make ([\w-]+)", ci, re.M) == ["venv", "test", "test-paper-smoke"]
    assert re.search(r"`make venv native`, then `make test`, then `make test-paper-smoke`", rows[".ci/run"])


def test_readme_durations_name_their_machine():
    """A newcomer's README quotes measured durations only beside the machine they were measured on, and
    stays short: the study's narrative is in the book."""
    text = README.read_text(encoding="utf-8")
    paragraphs = re.split(r"\n\s*\n", text)
    timed = [p for p in paragraphs if re.search(r"\b\d+ s\b|\bminutes\b", p)]
    assert timed, "the README quotes no measured duration"
    for paragraph in timed:
        assert any(m in paragraph for m in ("AMD EPYC", "Intel Xeon", "the machine above")), paragraph[:120]
    assert len(text.splitlines()) <= 150, "the README is for a newcomer: move study detail into the book"
