"""enlcn.allocator: glibc set to keep freed memory, and the record of it."""

from __future__ import annotations

import platform
import sys

import pytest
from procs import run


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's mallopt")
def test_warm_allocator_is_applied_and_recorded_in_a_fresh_process():
    code = (
        "from enlcn import allocator as a; before = a.state(); ok = a.warm_allocator(); "
        "print(before, '|', ok, '|', a.state())"
    )
    out = run([sys.executable, "-c", code], check=True).stdout
    before, ok, after = (s.strip() for s in out.split("|"))
    assert before == "default" and ok == "True" and after.startswith("glibc: freed memory kept")


def test_the_cli_study_command_warms_the_allocator_before_training(monkeypatch):
    from enlcn import allocator, cli, study

    calls = []
    monkeypatch.setattr(allocator, "warm_allocator", lambda: calls.append("warm") or True)
    monkeypatch.setattr(study, "is_done", lambda profile, run: False)
    monkeypatch.setattr(study, "train_run", lambda profile, run, progress: calls.append(run.name))
    assert cli.main(["study", "--profile", "quick", "--runs", "base", "--status"]) == 0
    assert calls == []  # listing does not touch the allocator
    assert cli.main(["study", "--profile", "quick", "--runs", "base", "--no-progress"]) == 0
    assert calls == ["warm", "base"]
