"""Processes in tests: each one in its own process group, ended with everything it started, whatever
happens; and real kills at named points (:mod:`enlcn.faultpoint`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: generous: a loaded developer machine runs tests beside training
DEFAULT_TIMEOUT = 600.0


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s whole process group (torchrun's workers, compilers) and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@contextmanager
def started(cmd: Sequence[str], **kwargs) -> Iterator[subprocess.Popen]:
    """``Popen(cmd)`` in a new session; on leaving (normally or not) its group is killed if still there."""
    proc = subprocess.Popen(list(cmd), start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        kill_group(proc)


def run(cmd: Sequence[str], timeout: float = DEFAULT_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(cmd, capture_output=True, text=True)``, but a timeout (or any error) ends the
    command's whole process group before raising."""
    with started(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout, out, err) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def state(pid: int) -> str:
    """The process state letter from ``/proc/<pid>/stat`` (``T``: stopped; ``""``: gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def wait_stopped(proc: subprocess.Popen, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until ``proc`` stopped itself at its pause point; fail if it ends or the time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} ended (exit {proc.returncode}) before its pause point")
        if state(proc.pid) in ("T", "t"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{proc.args} did not reach its pause point within {timeout:.0f} s")


def killed_at(cmd: Sequence[str], point: str, timeout: float = DEFAULT_TIMEOUT, **kwargs) -> str:
    """Run ``cmd`` with ``ENLCN_PAUSE_AT=point``, SIGKILL it from here once it has stopped there; returns
    what it wrote to stderr."""
    env = {**kwargs.pop("env", os.environ), "ENLCN_PAUSE_AT": point}
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a full pipe would block, not stop
        with started(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env, **kwargs) as proc:
            wait_stopped(proc, timeout)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        err = log.read()
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert f"enlcn: paused at {point.partition('@')[0]}" in err, err[-3000:]
    return err


def enlcn(*args: str) -> list[str]:
    """The ``enlcn`` command of this interpreter."""
    return [sys.executable, "-m", "enlcn", *args]
