"""One process per run: the run's folder lock (:mod:`enlcn.folderlock`, shared with ``enlcn train``)."""

from __future__ import annotations

from pathlib import Path

from ..folderlock import FolderLock, FolderLocked

#: another living process is training the run (the message names its pid)
RunLocked = FolderLocked


class RunLock(FolderLock):
    """``runs/<profile>/<run>/.lock``: two processes never train one run at once."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, "trained")
