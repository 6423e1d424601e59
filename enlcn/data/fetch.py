"""Downloading the official SR datasets (for users with internet; the project's machines have none).

Registry sources (``shared/reference/sr-conventions.md`` §3): DIV2K zips with bytes and md5 (TFDS
``checksums.tsv`` and torchSR ``div2k.py``), EDSR's ``benchmark.tar`` (md5 from torchSR, size unknown),
and the super-image Hugging Face tarballs of Set5/Set14/BSD100 (no published checksum: unverified).

``fetch`` streams to ``<file>.part``, resumes with an HTTP ``Range`` request (restarting when the server
ignores it), checks size and hash before renaming to the final name, and extracts through a temporary
folder in ``root`` that is moved into place entry by entry; a ``.<name>.extracted`` marker is written
last, so a tree without its marker is never taken as complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

CHUNK = 1 << 20
DIV2K_BASE = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
HF_BASE = "https://huggingface.co/datasets/eugenesiow/{set}/resolve/main/data/{file}"
UNREACHABLE_HINT = (
    "on the project's build machines only package registries are reachable: download on a machine "
    "with internet and copy the archive into the root folder (fetch then verifies and extracts it)"
)


class FetchError(RuntimeError):
    """A download or extraction that failed; the message names the URL or file and the reason."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive: URL, expected size in bytes and checksums (``None`` = unknown)."""

    name: str
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    note: str = ""

    @property
    def filename(self) -> str:
        return PurePosixPath(self.url.split("?", 1)[0]).name


def _registry() -> dict[str, RemoteFile]:
    div2k = {  # file stem: (bytes, md5) — TFDS checksums.tsv / torchSR div2k.py
        "DIV2K_train_HR": (3_530_603_713, "bdc2d9338d4e574fe81bf7d158758658"),
        "DIV2K_valid_HR": (448_993_893, "9fcdda83005c5e5997799b69f955ff88"),
        "DIV2K_train_LR_bicubic_X2": (925_390_592, "9a637d2ef4db0d0a81182be37fb00692"),
        "DIV2K_train_LR_bicubic_X3": (427_847_282, "ad80b9fe40c049a07a8a6c51bfab3b6d"),
        "DIV2K_train_LR_bicubic_X4": (246_914_039, "76c43ec4155851901ebbe8339846d93d"),
        "DIV2K_valid_LR_bicubic_X2": (117_763_600, "1512c9a3f7bde2a1a21a73044e46b9cb"),
        "DIV2K_valid_LR_bicubic_X3": (54_513_392, "18b1d310f9f88c13618c287927b29898"),
        "DIV2K_valid_LR_bicubic_X4": (31_505_881, "21962de700c8d368c6ff83314480eff0"),
    }
    out = {
        stem: RemoteFile(stem, f"{DIV2K_BASE}{stem}.zip", size, md5, note="DIV2K (Agustsson & Timofte 2017)")
        for stem, (size, md5) in div2k.items()
    }
    out["benchmark"] = RemoteFile(
        "benchmark",
        "https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
        None,
        "4ace41d33c2384b97e6b320cd0afd6ba",
        note="EDSR benchmark/{Set5,Set14,B100,Urban100} (size not published; md5 from torchSR)",
    )
    for bench in ("Set5", "Set14", "BSD100"):
        for part in ("HR", "LR_x2", "LR_x3", "LR_x4"):
            key = f"{bench}_{part}"
            out[key] = RemoteFile(
                key,
                HF_BASE.format(set=bench, file=f"{key}.tar.gz"),
                note="super-image (Hugging Face) tarball; no published size or checksum: unverified",
            )
    return out


DATASETS: dict[str, RemoteFile] = _registry()


def list_datasets() -> pd.DataFrame:
    """The registry as a table: name, file, url, size, md5, sha256, note."""
    rows = [{**asdict(f), "file": f.filename} for f in DATASETS.values()]
    cols = ["name", "file", "url", "size", "md5", "sha256", "note"]
    return pd.DataFrame(rows)[cols].astype({"size": "Int64"})


def _unreachable(url: str, err: BaseException) -> FetchError:
    reason = getattr(err, "reason", err)
    return FetchError(f"{url}: the host could not be reached ({reason}); {UNREACHABLE_HINT}")


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "enlcn-fetch"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https registry URLs)
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        raise _unreachable(url, err) from err


def _resume_offset(response: http.client.HTTPResponse, start: int) -> int:
    """Where the body starts: ``start`` for a matching 206 answer, else 0 (the server ignored Range)."""
    if start and response.status == 206:
        content_range = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
        if content_range.startswith(f"bytes {start}-"):
            return start
    return 0


def _download(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``part`` (appending when the server honours Range); raise on a short body."""
    from tqdm import tqdm

    start = part.stat().st_size if part.exists() else 0
    if size is not None and start == size:
        return  # complete but not yet verified (e.g. interrupted before the check): verify it
    if size is not None and start > size:
        start = 0  # longer than the file: start over
    try:
        response = _open(url, start, timeout)
    except FetchError as err:
        if not (start and isinstance(err.__cause__, urllib.error.HTTPError) and err.__cause__.code == 416):
            raise
        start, response = 0, _open(url, 0, timeout)  # "range not satisfiable": the .part is stale
    with response:
        offset = _resume_offset(response, start)
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total = offset + expected if expected is not None else size
        received = 0
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name[:-5],
                disable=not progress,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                raise FetchError(
                    f"{url}: the transfer broke off after {offset + received} bytes ({err!r}); "
                    f"{part.name} is kept, run fetch again to resume"
                ) from err
    if expected is not None and received < expected:
        raise FetchError(
            f"{url}: the server sent {received} of {expected} bytes; {part.name} is kept, run again to resume"
        )


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, entry: RemoteFile) -> None:
    """Raise ``FetchError`` unless ``path`` has the registry's size and md5/sha256 (where known)."""
    actual = path.stat().st_size
    if entry.size is not None and actual != entry.size:
        raise FetchError(f"{path}: {actual} bytes, expected {entry.size} ({entry.url})")
    for algorithm in ("md5", "sha256"):
        want = getattr(entry, algorithm)
        if want is not None and (got := _digest(path, algorithm)) != want.lower():
            raise FetchError(f"{path}: {algorithm} {got}, expected {want} ({entry.url}): corrupt download")


def _check_member(name: str, archive: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise FetchError(f"{archive}: unsafe member path {name!r} (outside the target folder)")


def _extract_to(archive: Path, dest: Path) -> None:
    """Extract a zip or tar(.gz) into ``dest``, refusing absolute paths, ``..`` and links out of it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_member(name, archive)
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                _check_member(member.name, archive)
            try:
                tf.extractall(dest, filter="data")  # also rejects links pointing outside dest
            except tarfile.FilterError as err:
                raise FetchError(f"{archive}: unsafe member ({err})") from err
    else:
        raise FetchError(f"{archive}: neither a zip nor a tar archive")


def _merge_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; folders that exist are merged (DIV2K's X2/X3/X4 zips share a top folder)."""
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_move(child, dst / child.name)
    else:
        os.replace(src, dst)


def _extract(archive: Path, root: Path, marker: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=root))
    try:
        _extract_to(archive, tmp)
        for entry in sorted(tmp.iterdir()):
            _merge_move(entry, root / entry.name)
        marker.write_text(f"{archive.name}\n")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise FetchError(f"{archive}: extraction failed ({err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(
    name: str,
    root: str | os.PathLike,
    *,
    url_override: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    extract: bool = True,
) -> Path:
    """Download (resuming), verify and extract the registry entry ``name`` into ``root``; return ``root``.

    Every socket operation is bounded by ``timeout`` seconds. An archive already in ``root`` (e.g.
    copied from another machine) is verified and used without any network access.
    """
    if name not in DATASETS:
        raise FetchError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    entry = DATASETS[name]
    url = url_override or entry.url
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / entry.filename
    marker = root / f".{name}.extracted"
    if extract and marker.exists() and final.exists():
        return root
    if not final.exists():
        part = final.with_name(final.name + ".part")
        _download(url, part, entry.size, timeout, progress)
        try:
            verify(part, entry)
        except FetchError:
            if entry.size is None or part.stat().st_size >= entry.size:
                part.unlink()  # complete but wrong: resuming cannot fix it
            raise
        os.replace(part, final)
    else:
        verify(final, entry)
    if extract:
        _extract(final, root, marker)
    return root
