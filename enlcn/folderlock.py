"""One writer per folder: an advisory ``flock`` on ``<folder>/.lock``, released by the kernel when its
holder exits, however it exits.

``enlcn train`` and ``enlcn study`` hold it on a run's folder while they write there, so two processes
never interleave one run's logs and checkpoints. Because the operating system drops a ``flock`` when the
process dies (SIGKILL included), a lock can never be stale: there is nothing to clean up and no pid to
trust. The file holds the holder's pid only so that the refusal can say who holds it. Taking the lock
again in the process that holds it (the study's runner, then its trainer) is allowed and counted.

Low level: imports nothing from ``enlcn``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"

#: folders this process holds: resolved folder -> (file descriptor, how many times taken)
_held: dict[Path, tuple[int, int]] = {}


class FolderLocked(RuntimeError):
    """Another living process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, "trained"):``; :class:`FolderLocked` if another process holds it."""

    def __init__(self, folder: str | os.PathLike, activity: str = "written") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.activity = activity

    def __enter__(self) -> FolderLock:
        key = self.folder.resolve()
        if key in _held:
            fd, count = _held[key]
            _held[key] = (fd, count + 1)
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        _held[key] = (_acquire(self.path, self.activity), 1)
        return self

    def __exit__(self, *exc: object) -> None:
        key = self.folder.resolve()
        fd, count = _held[key]
        if count > 1:
            _held[key] = (fd, count - 1)
            return
        del _held[key]
        self.path.unlink(missing_ok=True)  # while still holding it: see _acquire
        os.close(fd)  # releases the flock


def _acquire(path: Path, activity: str) -> int:
    """An open descriptor of ``path`` holding its exclusive flock, with our pid written in it.

    A holder unlinks the file before releasing it, so a process that locked a file just unlinked
    holds a lock nobody else will see: after locking, the descriptor must still be the file at ``path``.
    """
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise FolderLocked(f"{path.parent} is being {activity} by {who} (lock {path})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)  # the file we locked was unlinked by its last holder: take the new one


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
