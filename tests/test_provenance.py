"""Provenance records and atomic writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from enlcn.provenance import git_commit, provenance, write_csv_atomic, write_json_atomic


def test_record_has_everything_a_reader_needs():
    prov = provenance("nb", "quick", {"m": 16}, seed=3).finish()
    d = prov.to_dict()
    assert {
        "notebook",
        "profile",
        "parameters",
        "seed",
        "commit",
        "versions",
        "hardware",
        "wall_time_s",
    } <= set(d)
    assert d["parameters"] == {"m": 16} and d["seed"] == 3 and d["wall_time_s"] >= 0
    assert d["versions"]["torch"] and d["hardware"]["cores"] >= 1
    assert "versions.torch" in set(prov.table().field)
    assert git_commit() != ""


def test_atomic_writes_leave_no_partial_file(tmp_path):
    path = write_json_atomic(tmp_path / "a" / "x.json", {"v": 1})
    assert json.loads(path.read_text()) == {"v": 1}
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "a" / "y.json", {1j: 2})  # fails mid-dump: keys must be str
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.json"]
    csv = write_csv_atomic(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2]}))
    assert csv.read_text().splitlines() == ["a", "1", "2"]


def test_a_dirty_commit_says_which_code_was_uncommitted(tmp_path):
    import procs

    from enlcn.provenance import git_commit, uncommitted_files

    def git(*args):
        procs.run(["git", "-C", str(tmp_path), *args], check=True, timeout=60)

    git("init", "-q")
    for name in ("enlcn/a.py", "results/r.csv", "book/notebooks/n.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    (tmp_path / "results" / "r.csv").write_text("2\n")  # outputs the build writes: still clean
    (tmp_path / "book" / "notebooks" / "n.ipynb").write_text("2\n")
    assert not git_commit(tmp_path).endswith("-dirty") and uncommitted_files(tmp_path) == []
    (tmp_path / "enlcn" / "a.py").write_text("2\n")
    assert git_commit(tmp_path).endswith("-dirty")
    assert uncommitted_files(tmp_path) == ["enlcn/a.py"]
