"""tests/procs.py: a test's subprocess ends with everything it started, whatever happens (issue 20).

The command here starts two grandchildren, one in its own process group and one in a session of its own,
as torchrun starts its workers; plain ``subprocess.run(timeout=...)`` kills only the command and leaves
both running (shown below), so a timed-out torchrun left its workers behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import run, started, state

CHILD = """
import os, subprocess, sys, time
sleep = ["sleep", "300"]
same_group = subprocess.Popen(sleep)
own_session = subprocess.Popen(sleep, start_new_session=True)  # as torchrun starts its workers
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(f"{os.getpid()} {same_group.pid} {own_session.pid}")
os.replace(tmp, sys.argv[1])
time.sleep(300)
"""


def command(pidfile: Path) -> list[str]:
    return [sys.executable, "-c", CHILD, str(pidfile)]


def pids_of(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()]


def timed_out(runner, cmd: list[str], pidfile: Path, count: int = 3, **kwargs) -> list[int]:
    """Run ``cmd`` under ``runner`` with a short timeout (longer ones if a busy machine had not started its
    processes yet) until ``pidfile`` holds ``count`` pids; those pids."""
    for timeout in (2, 10, 60, 300):
        start = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            runner(cmd, timeout=timeout, **kwargs)
        # on time: not held up by pipes a grandchild still holds open (they sleep 300 s)
        assert time.monotonic() - start < timeout + 120
        if pidfile.exists() and len(pids := pids_of(pidfile)) == count:
            return pids
        pidfile.unlink(missing_ok=True)
    raise AssertionError("the command never wrote its pids")


def ended(pid: int) -> bool:
    return state(pid) in ("", "Z", "X")  # gone, or dead and not yet reaped by init


def assert_ended(pids: list[int]) -> None:
    deadline = time.monotonic() + 60  # SIGKILL is delivered at once; dying may wait for a busy CPU
    while not all(ended(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if not ended(p)] == [], "processes left running"


def test_a_timeout_ends_every_process_the_command_started(tmp_path):
    pidfile = tmp_path / "pids"
    pids = timed_out(run, command(pidfile), pidfile)
    assert_ended(pids)


def test_plain_subprocess_run_leaves_them_running(tmp_path):
    """Why procs.run: the check above fails with subprocess.run (cleaned up here)."""
    pidfile = tmp_path / "pids"

    def plain(cmd, timeout):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    child, *grandchildren = timed_out(plain, command(pidfile), pidfile)
    try:
        assert ended(child)
        assert not any(ended(p) for p in grandchildren)
    finally:
        for pid in grandchildren:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_started_ends_every_process_when_the_body_raises(tmp_path):
    pidfile = tmp_path / "pids"
    with pytest.raises(RuntimeError, match="the test failed"):
        with started(command(pidfile)) as proc:
            deadline = time.monotonic() + 600
            while not pidfile.exists():
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            pids = pids_of(pidfile)
            assert not any(ended(p) for p in pids)
            raise RuntimeError("the test failed")
    assert proc.returncode == -signal.SIGKILL
    assert_ended(pids)


def test_a_timed_out_torchrun_leaves_no_worker(tmp_path):
    """The issue's case: torchrun's two workers (sessions of their own) end with it."""
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import os, time\n"
        "with open('pids', 'a') as f:\n"
        "    f.write(f' {os.getpid()}')\n"
        "time.sleep(300)\n"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    pids = timed_out(run, [*torchrun, str(worker)], tmp_path / "pids", count=2, cwd=tmp_path, env=env)
    assert_ended(pids)


def test_run_returns_like_subprocess_run():
    done = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run([sys.executable, "-c", "import sys; sys.exit(3)"], check=True)
    assert failed.value.returncode == 3
    assert run([sys.executable, "-c", "print('ok')"], check=True).stdout == "ok\n"
