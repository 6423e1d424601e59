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
        "environment",
        "wall_time_s",
    } <= set(d)
    assert d["parameters"] == {"m": 16} and d["seed"] == 3 and d["wall_time_s"] >= 0
    assert d["versions"]["torch"] and d["hardware"]["cores"] >= 1
    shown = set(prov.table().field)
    assert {"versions.torch", "environment.lock_sha256", "environment.matches_lock"} <= shown
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


LOCK_TEXT = """# lock-python: 3.11
# lock-platform: x86_64-manylinux_2_28
# lock-torch: 2.13.0
# lock-date: 2026-01-01T00:00:00Z
Jinja2==3.1.6 \\
    --hash=sha256:{h}
numpy==2.4.6 \\
    --hash=sha256:{h}
    # via enlcn
"""


@pytest.fixture
def lock_file(tmp_path):
    path = tmp_path / "lock.txt"
    path.write_text(LOCK_TEXT.format(h="0" * 64))
    return path


def test_read_lock_gives_pins_header_and_hash(lock_file):
    import hashlib

    from enlcn.provenance import read_lock

    lock = read_lock(lock_file)
    assert lock.pins == {"jinja2": "3.1.6", "numpy": "2.4.6"}
    assert lock.header == {"python": "3.11", "platform": "x86_64-manylinux_2_28", "torch": "2.13.0",
                           "date": "2026-01-01T00:00:00Z"}
    assert lock.sha256 == hashlib.sha256(lock_file.read_bytes()).hexdigest()


def test_lock_differences_name_every_way_an_environment_differs(lock_file):
    from enlcn.provenance import lock_differences, read_lock

    lock = read_lock(lock_file)
    same = {"jinja2": "3.1.6", "numpy": "2.4.6", "torch": "2.13.0+cpu", "enlcn": "0.1.0"}
    assert lock_differences(lock, same, "3.11.7") == []  # the CPU build of the locked torch, the project
    assert lock_differences(lock, {**same, "numpy": "2.4.6.0"}, "3.11.0") == []  # versions compare by PEP 440
    assert lock_differences(lock, {**same, "numpy": "2.4.5"}, "3.11.7") == ["numpy 2.4.5 (lock: 2.4.6)"]
    assert lock_differences(lock, {k: v for k, v in same.items() if k != "numpy"}, "3.11.7") == [
        "numpy not installed (lock: 2.4.6)"
    ]
    gpu = {**same, "torch": "2.9.1+cu128", "nvidia-cublas-cu12": "12.8.4.1"}
    assert lock_differences(lock, gpu, "3.12.1") == [
        "python 3.12.1 (lock: 3.11)",
        "torch 2.9.1+cu128 (lock: 2.13.0)",
        "nvidia-cublas-cu12 12.8.4.1 (not in the lock)",
    ]
    assert lock_differences(lock, {k: v for k, v in same.items() if k != "torch"}, "3.11.7") == [
        "torch not installed (lock: 2.13.0)"
    ]


def test_record_carries_the_lock_hash_and_whether_the_environment_matches(lock_file, monkeypatch):
    from enlcn import provenance as p

    same = {"jinja2": "3.1.6", "numpy": "2.4.6", "torch": "2.13.0"}
    monkeypatch.setattr(p, "installed_distributions", lambda: same)
    monkeypatch.setattr(p.platform, "python_version", lambda: "3.11.7")
    record = p.environment_record(lock_file)
    assert record == {"lock": "lock.txt", "lock_sha256": p.read_lock(lock_file).sha256, "matches_lock": True,
                      "lock_differences": []}
    monkeypatch.setattr(p, "installed_distributions", lambda: {f"pkg{i}": "1" for i in range(20)})
    record = p.environment_record(lock_file)
    assert record["matches_lock"] is False
    diffs = record["lock_differences"]
    assert len(diffs) == p.MAX_DIFFERENCES + 1 and diffs[-1] == f"... and {23 - p.MAX_DIFFERENCES} more"
    missing = p.environment_record(lock_file.parent / "absent.txt")
    assert missing["lock_sha256"] is None and missing["matches_lock"] is False


def test_every_record_has_the_committed_locks_hash_and_a_mismatch_is_said_once(monkeypatch, capsys):
    from enlcn import provenance as p

    p._environment.cache_clear()
    monkeypatch.setattr(p, "installed_distributions", lambda: {"torch": "2.9.1+cu128"})
    try:
        first = provenance("nb", "quick", {}).to_dict()["environment"]
        first["lock_differences"].append("changed")  # each record has its own copy
        second = provenance("nb", "quick", {}).to_dict()["environment"]
    finally:
        p._environment.cache_clear()
    assert first["lock"] == second["lock"] == "requirements/lock.txt"
    assert first["lock_sha256"] == p.read_lock(p.LOCK).sha256
    assert second["matches_lock"] is False
    assert "torch 2.9.1+cu128 (lock: 2.13.0)" in second["lock_differences"]
    assert "changed" not in second["lock_differences"]
    err = capsys.readouterr().err
    assert err.count("not the locked one") == 1 and "torch 2.9.1+cu128" in err
