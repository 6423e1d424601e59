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


def _table() -> dict[int, tuple[int, int, int]]:
    """Every process: pid → (parent pid, process group, session), from ``/proc/<pid>/stat``."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:  # ended meanwhile
                continue
            fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def family(pid: int, with_pid: bool = True) -> set[int]:
    """The processes of ``pid``'s process group and session, and everything any of them started, even in a
    session of its own (torchrun's workers: killing torchrun's group leaves them running). ``with_pid``:
    ``pid`` is still ours (not yet reaped), so it and its children count too."""
    table = _table()
    found = {p for p, (_, group, session) in table.items() if pid in (group, session)}
    if with_pid and pid in table:
        found.add(pid)
    children: dict[int, list[int]] = {}
    for p, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(p)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(os.getpid())
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``, its process group and everything they started (torchrun's workers, which run in
    sessions of their own; compilers), and reap ``proc``.

    Each process found is stopped first and the tree read again until it grows no more, so that nothing
    forks past the kill, and no child is orphaned (hence unfindable) by its parent dying first."""
    stopped: set[int] = set()
    try:
        while new := family(proc.pid, with_pid=proc.returncode is None) - stopped:
            for pid in new:
                _signal(pid, signal.SIGSTOP)
            stopped |= new
    finally:
        for pid in stopped:
            _signal(pid, signal.SIGKILL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
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


def run(
    cmd: Sequence[str], timeout: float = DEFAULT_TIMEOUT, check: bool = False, **kwargs
) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)``, but a
    timeout (or any error, KeyboardInterrupt and pytest-timeout included) ends the command with everything
    it started (:func:`kill_group`) before raising."""
    with started(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = _rest(proc)
            raise subprocess.TimeoutExpired(proc.args, timeout, out, err) from None
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _rest(proc: subprocess.Popen) -> tuple[str, str]:
    """What a killed ``proc`` had written; what a process that escaped the kill holds open is left unread."""
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return "", ""


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
            kill_group(proc)  # SIGKILL, from outside, to it and everything it started
        log.seek(0)
        err = log.read()
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert f"enlcn: paused at {point.partition('@')[0]}" in err, err[-3000:]
    return err


def enlcn(*args: str) -> list[str]:
    """The ``enlcn`` command of this interpreter."""
    return [sys.executable, "-m", "enlcn", *args]
