"""The notebooks are thin, parameterized and run under papermill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from enlcn.profiles import PROFILES

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"ablation_k", "efficiency"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_names_a_known_profile(path):
    params = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    namespace: dict = {}
    exec("".join(params[0]["source"]), namespace)
    assert namespace["profile"] in PROFILES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebooks_are_unexecuted(path):
    for c in cells(path):
        if c["cell_type"] == "code":
            assert not c.get("outputs"), f"{path.name}: commit sources without outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_the_quick_profile(path, tmp_path):
    papermill = pytest.importorskip("papermill")
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(path, work / path.name)

    def execute(recompute: bool) -> dict[str, bytes]:
        papermill.execute_notebook(
            str(work / path.name),
            str(work / "out.ipynb"),
            parameters={"profile": "quick", "root": str(tmp_path), "recompute": recompute},
            kernel_name="python3",
            cwd=str(work),
            progress_bar=False,
        )
        return {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in sorted(tmp_path.rglob("*"))
                if p.is_file() and "notebooks" not in p.parts}

    first = execute(recompute=True)  # nothing committed yet: every result is new
    assert any(name.startswith("results/quick/") for name in first)
    assert execute(recompute=False) == first  # rendering what exists writes nothing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_takes_a_root_parameter_and_no_relative_paths(path):
    params = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec("".join(params[0]["source"]), namespace)
    assert namespace["root"] == ""
    code = "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "code")
    assert "project_root(root)" in code and '"..' not in code and "'.." not in code


def test_notebook_writes_to_the_same_place_from_any_working_directory(tmp_path):
    """Issue 10, item 1: `papermill notebooks/x.ipynb out.ipynb` from the repository root wrote results/
    beside the clone. Outputs now go to project_root(root), whatever the working directory."""
    papermill = pytest.importorskip("papermill")
    source = Path(__file__).resolve().parents[1] / "notebooks" / "pilot.ipynb"
    target = tmp_path / "project"
    for i, cwd in enumerate([source.parent, source.parents[1], tmp_path]):
        papermill.execute_notebook(str(source), str(tmp_path / f"out{i}.ipynb"),
                                   parameters={"profile": "quick", "root": str(target)},
                                   kernel_name="python3", cwd=str(cwd), progress_bar=False)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.csv"))
    assert written and all(str(p).startswith("project/results/quick/pilot/") for p in written), written


def test_project_root_is_the_repository_by_default(tmp_path):
    from enlcn.provenance import REPO, project_root

    assert project_root("") == REPO and (REPO / "notebooks").is_dir()
    assert project_root(tmp_path) == tmp_path.resolve()
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        project_root(tmp_path / "f")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_type_checked(path):
    params = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec("".join(params[0]["source"]), namespace)
    code = "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "code")
    import re

    call = re.search(r"check_parameters\(globals\(\), ([^)]*)\)", code)
    assert call, f"{path.name}: no check_parameters(globals(), ...)"
    checked = {a.split("=")[0].strip() for a in call.group(1).split(",")}
    assert {k for k in namespace if not k.startswith("__")} == checked


def test_check_parameters_converts_papermill_strings():
    from enlcn.typed import check_parameters

    ns = {"profile": "quick", "train_missing": "false", "queries": "48", "root": ""}
    check_parameters(ns, profile=str, train_missing=bool, queries=int, root=str)
    assert ns == {"profile": "quick", "train_missing": False, "queries": 48, "root": ""}
    with pytest.raises(ValueError, match="parameter queries: expected an integer, got 'many'"):
        check_parameters({"queries": "many"}, queries=int)
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        check_parameters({"profile": "gpu"}, profile=str)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_keep_their_results_through_a_result_folder(path):
    """Results are read in render mode and checked in recompute mode (enlcn.results): a notebook that
    wrote a file itself would rewrite it on every `make book`."""
    code = "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "code")
    assert "ResultFolder(" in code and "recompute" in code
    writers = ("write_csv_atomic", "write_json_atomic", "write_text_atomic", ".to_csv(")
    for writer in writers:
        assert writer not in code, f"{path.name} writes with {writer}: use a ResultFolder"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_provenance_cell_shows_its_table_not_its_code(path):
    """A page's ``results.finish()`` cell is bookkeeping: the reader sees the provenance table, and every
    page hides the cell's code the same way (``hide-input``)."""
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    for cell in (c for c in code if "results.finish()" in "".join(c["source"])):
        tags = cell.get("metadata", {}).get("tags", [])
        assert "hide-input" in tags, f"{path.name}: the code of results.finish() is shown"
