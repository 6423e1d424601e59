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
    papermill.execute_notebook(
        str(work / path.name),
        str(work / "out.ipynb"),
        parameters={"profile": "quick"},
        kernel_name="python3",
        cwd=str(work),
        progress_bar=False,
    )
    assert (tmp_path / "results" / "quick").is_dir()
