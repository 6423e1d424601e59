"""Builds of the native kernels (enlcn.attention.native) across processes: one build per environment, a
killed builder never blocks the next, a live one is waited for at most ``ENLCN_BUILD_WAIT`` seconds.

The processes build a one-function pybind module (a few seconds) through the real code path, into a private
``TORCH_EXTENSIONS_DIR``, never the user's cache.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from procs import killed_at, run, started, wait_stopped

from enlcn.attention import native

X86_WITH_COMPILER = platform.machine().lower() in ("x86_64", "amd64") and bool(shutil.which("c++"))
needs_compiler = pytest.mark.skipif(not X86_WITH_COMPILER, reason="no x86-64 + C++")

#: generous: the machine may be compiling or training beside the tests
TIMEOUT = 300.0

#: a kernel as native.load() accepts it: it names the level it was compiled for (as csrc/simd.h's isa())
TINY = """#include <pybind11/pybind11.h>
int answer() { return 42; }
const char* isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#else
  return "generic";
#endif
}
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("answer", &answer); m.def("isa", &isa); }
"""

#: a process that loads the kernel of argv[1] the way enlcn does (load(), status()) and reports as JSON
LOAD = """
import json, sys, time
from pathlib import Path
from enlcn.attention import native
native.SOURCE = Path(sys.argv[1])
start = time.monotonic()
ext = native.load()
print(json.dumps({
    "answer": ext.answer() if ext is not None else None,
    "status": None if ext is not None else native.status(),
    "seconds": time.monotonic() - start,
}))
"""


@pytest.fixture
def kernel(tmp_path):
    """``(source, build_dir, env)``: a tiny kernel's source, its build directory under a private
    ``TORCH_EXTENSIONS_DIR``, and the environment for processes that build it."""
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY)
    ext_dir = tmp_path / "torch_extensions"
    env = {k: v for k, v in os.environ.items() if k not in (native.ENV, native.WAIT_ENV, "ENLCN_PAUSE_AT")}
    env["TORCH_EXTENSIONS_DIR"] = str(ext_dir)
    return source, ext_dir / native.build_name(source), env


def _cmd(source: Path) -> list[str]:
    return [sys.executable, "-c", LOAD, str(source)]


def _load(source: Path, env: dict[str, str]) -> tuple[dict, str]:
    """Run :data:`LOAD` on ``source``: its JSON report and its stderr."""
    proc = run(_cmd(source), timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@needs_compiler
def test_a_stale_torch_lock_is_removed_not_waited_on(kernel):
    """torch's ``lock`` left by a killed builder: torch alone would wait for it forever."""
    source, build_dir, env = kernel
    build_dir.mkdir(parents=True)
    (build_dir / native.TORCH_LOCK).touch()
    report, err = _load(source, env)
    assert report["answer"] == 42, err[-3000:]
    assert not (build_dir / native.TORCH_LOCK).exists()
    assert f"enlcn: removed a stale build lock {build_dir / native.TORCH_LOCK} (its builder is gone)" in err


@needs_compiler
def test_a_builder_killed_while_compiling_does_not_block_the_next(kernel):
    """The defect as it happens: SIGKILL during the compile leaves torch's lock; the next process builds."""
    source, build_dir, env = kernel
    with started(_cmd(source), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) as proc:
        deadline = time.monotonic() + TIMEOUT
        while not (build_dir / native.TORCH_LOCK).exists():
            assert proc.poll() is None, "the builder ended before its compile was seen"
            assert time.monotonic() < deadline, "the builder never started compiling"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (build_dir / native.TORCH_LOCK).exists()  # what a killed builder leaves
    report, err = _load(source, env)
    assert report["answer"] == 42, err[-3000:]
    assert "removed a stale build lock" in err
    assert not (build_dir / native.TORCH_LOCK).exists()


@needs_compiler
def test_a_builder_killed_at_the_build_lock_does_not_block_the_next(kernel):
    """Killed holding our lock: the kernel released it, so the next process neither waits nor gives up."""
    source, build_dir, env = kernel
    killed_at(_cmd(source), "native-build", timeout=TIMEOUT, env=env)
    assert (build_dir / native.LOCK_FILE).exists()
    report, err = _load(source, env)
    assert report["answer"] == 42, err[-3000:]
    assert "waiting" not in err


@needs_compiler
def test_a_live_holder_is_waited_for_at_most_ENLCN_BUILD_WAIT(kernel):
    """A builder stopped while holding the lock: another process falls back to the Python path after
    ``ENLCN_BUILD_WAIT`` seconds, saying which lock and which process, instead of hanging."""
    source, build_dir, env = kernel
    lock = build_dir / native.LOCK_FILE
    with tempfile.TemporaryFile("w+") as log:
        holder_env = {**env, "ENLCN_PAUSE_AT": "native-build"}
        with started(_cmd(source), stdout=subprocess.DEVNULL, stderr=log, env=holder_env) as holder:
            wait_stopped(holder, TIMEOUT)
            report, err = _load(source, {**env, native.WAIT_ENV: "3"})
    assert report["answer"] is None
    status = report["status"]
    assert status.startswith("python: ") and str(lock) in status and f"process {holder.pid} " in status
    assert f"kill {holder.pid}" in status and native.WAIT_ENV in status
    assert 3.0 <= report["seconds"] < 60.0  # waited, then gave up (the bound is generous: a loaded machine)
    waiting = [line for line in err.splitlines() if line.startswith("enlcn: waiting")]
    assert len(waiting) == 1 and str(lock) in waiting[0] and f"process {holder.pid}," in waiting[0]
    assert "falls back to the Python path" in err


def test_build_names_differ_between_environments(monkeypatch, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    names = {}
    for prefix in ("a", "b", "link"):
        monkeypatch.setattr(sys, "prefix", str(tmp_path / prefix))
        names[prefix] = native.build_name()
    assert names["a"] != names["b"]
    assert names["a"] == names["link"]  # the resolved prefix: one environment, one build
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "a"))
    assert native.build_name() == names["a"]


def test_build_names_differ_between_checkouts_of_one_environment(tmp_path):
    """Two checkouts (worktrees) sharing one venv: the same source text in two places gets two builds
    (torch rebuilds a cached extension whose sources moved, so one name would rebuild on every switch)."""
    copies = []
    for checkout in ("one", "two"):
        folder = tmp_path / checkout
        folder.mkdir()
        for path in native.SOURCE.parent.iterdir():
            if path.is_file():
                (folder / path.name).write_bytes(path.read_bytes())
        copies.append(folder / native.SOURCE.name)
    assert native.build_name(copies[0]) != native.build_name(copies[1])
    assert native.build_name(copies[0]) == native.build_name(copies[0])


def test_ENLCN_BUILD_WAIT_is_validated(monkeypatch):
    monkeypatch.delenv(native.WAIT_ENV, raising=False)
    assert native.build_wait() == native.DEFAULT_WAIT == 300.0
    monkeypatch.setenv(native.WAIT_ENV, " 2.5 ")
    assert native.build_wait() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(native.WAIT_ENV, bad)
        with pytest.raises(ValueError, match=f"{native.WAIT_ENV}='{bad}': expected a number of seconds"):
            native.build_wait()


@pytest.mark.parametrize(("held_s", "said"), [(0.5, False), (2.6, True)])
def test_a_short_wait_for_the_lock_goes_unsaid(tmp_path, capsys, held_s, said):
    """Another process loading the kernels from torch's cache holds the lock about a second: no line on
    stderr (it would land on a book page); a longer wait is announced once."""
    import fcntl
    import threading

    lock = tmp_path / native.LOCK_FILE
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(holder, fcntl.LOCK_EX)
    threading.Timer(held_s, lambda: os.close(holder)).start()  # closing releases the flock
    fd = os.open(lock, os.O_RDWR)
    try:
        assert native._acquire(fd, lock, wait=30.0) is None
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert ("enlcn: waiting" in err) is said, err
