"""Writing files so that a reader never sees half of one, with errors that name the file.

Every result, checkpoint, image and log header the package writes goes through :func:`replacing`: the
content is written to a temporary file in the destination's folder and renamed over the destination
(``os.replace`` is atomic on POSIX), so a process killed at any byte leaves either the old file or the
new one, plus at most a ``.<name>.*.tmp`` that the next run clears. The new file gets the permissions a
plain ``open(path, "w")`` would give it under the process's umask (:func:`file_mode`), not ``mkstemp``'s
0600 and not a fixed 0644.

A file-system error (read-only folder, no space, no permission) is re-raised as :class:`WriteError`, an
``OSError`` whose message names the destination rather than the temporary file.

Low level: imports nothing from ``enlcn`` but :mod:`enlcn.faultpoint`.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import faultpoint


class WriteError(OSError):
    """A file or folder that cannot be written; ``str()`` is one line naming it and why."""

    def __str__(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else super().__str__()


def file_mode() -> int:
    """The permissions a plain ``open(path, "w")`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _reason(err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (any previous version of the file is intact)"
    return err.strerror or str(err)


def write_error(path: Path, err: OSError) -> WriteError:
    """``err`` (raised while writing ``path`` or its temporary) as a :class:`WriteError` naming ``path``."""
    return WriteError(err.errno, f"cannot write {path}: {_reason(err)}", str(path))


@contextmanager
def replacing(path: str | os.PathLike, point: str = "results-write") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the body returns, give it :func:`file_mode` and rename it
    to ``path``. On any error the temporary is removed and ``path`` is untouched; ``OSError`` becomes
    :class:`WriteError`. ``point`` names the :mod:`enlcn.faultpoint` just before the rename."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; the destination is an ordinary file
        faultpoint.pause(point)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise (err if isinstance(err, WriteError) else write_error(path, err)) from err
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes, point: str = "results-write") -> Path:
    """Write ``data`` to ``path`` atomically (:func:`replacing`)."""
    with replacing(path, point) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, point: str = "results-write") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`replacing`)."""
    return write_bytes(path, text.encode(), point)


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove a file can be created in it, before any work starts; a
    :class:`WriteError` naming it otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".enlcn-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        message = f"cannot write to the {what} {folder}: {_reason(err)}"
        raise WriteError(err.errno, message, str(folder)) from err
    return folder
