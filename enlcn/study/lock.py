"""One process per run: a pid lock file in the run's folder."""

from __future__ import annotations

import os
from pathlib import Path


class RunLocked(RuntimeError):
    """Another living process holds the run's lock."""


class RunLock:
    """``runs/<profile>/<run>/.lock`` holding the pid, so two processes never train one run at once."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = int(self.path.read_text() or 0)
            if pid and _alive(pid):
                raise RunLocked(f"{self.path.parent} is being trained by process {pid}") from None
            self.path.unlink()  # stale: its process is gone
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
