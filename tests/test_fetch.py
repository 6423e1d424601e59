"""Dataset fetching against a local HTTP server (127.0.0.1, random port) serving archives built here."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from enlcn.data.fetch import DATASETS, FetchError, RemoteFile, fetch, list_datasets


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PAYLOAD = {"toy/HR/a.png": b"a" * 5000, "toy/HR/b.png": random.Random(0).randbytes(20_000)}  # incompressible


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; modes: honour Range, ignore Range, or close after half the body."""

    def do_GET(self):  # noqa: N802 (http.server API)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.server.requests.append(self.headers.get("Range"))
        start, mode = 0, self.server.mode
        rng = self.headers.get("Range")
        if rng and mode != "ignore-range":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        data = body[start:]
        self.wfile.write(data[: len(data) // 2] if mode == "truncate" else data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.mode, httpd.requests = {}, "normal", []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def register(monkeypatch, server, body: bytes, filename="toy.tar.gz", md5=None, size="auto") -> RemoteFile:
    server.files[f"/{filename}"] = body
    entry = RemoteFile(
        "toy",
        f"{server.base}/{filename}",
        len(body) if size == "auto" else size,
        md5 if md5 is not None else hashlib.md5(body).hexdigest(),
    )
    monkeypatch.setitem(DATASETS, "toy", entry)
    return entry


def test_registry_has_the_official_files():
    table = list_datasets()
    div2k = table.set_index("name").loc["DIV2K_train_HR"]
    assert div2k["size"] == 3_530_603_713 and div2k["md5"] == "bdc2d9338d4e574fe81bf7d158758658"
    bench = table.set_index("name").loc["benchmark"]
    assert bench["md5"] == "4ace41d33c2384b97e6b320cd0afd6ba" and pd.isna(bench["size"])
    assert {"Set5_HR", "Set14_LR_x4", "BSD100_LR_x2"} <= set(table.name)
    assert all(table.file.str.endswith((".zip", ".tar", ".tar.gz")))


def test_good_archive_is_verified_and_extracted(server, monkeypatch, tmp_path):
    register(monkeypatch, server, tar_bytes(PAYLOAD))
    assert fetch("toy", tmp_path, progress=False, timeout=5) == tmp_path
    assert (tmp_path / "toy" / "HR" / "b.png").read_bytes() == PAYLOAD["toy/HR/b.png"]
    assert (tmp_path / "toy.tar.gz").exists() and not (tmp_path / "toy.tar.gz.part").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".toy.extracted", "toy", "toy.tar.gz"]
    server.files.clear()  # already there: no request is made
    fetch("toy", tmp_path, progress=False, timeout=5)


def test_zip_members_merge_into_existing_folders(server, monkeypatch, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("DIV/X4/0001x4.png", b"lr")
    register(monkeypatch, server, buf.getvalue(), filename="x4.zip")
    (tmp_path / "DIV" / "X2").mkdir(parents=True)
    fetch("toy", tmp_path, progress=False, timeout=5)
    assert sorted(p.name for p in (tmp_path / "DIV").iterdir()) == ["X2", "X4"]


def test_corrupt_archive_leaves_nothing(server, monkeypatch, tmp_path):
    register(monkeypatch, server, tar_bytes(PAYLOAD), md5="0" * 32)
    with pytest.raises(FetchError, match="md5"):
        fetch("toy", tmp_path, progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_keeps_only_the_part_file(server, monkeypatch, tmp_path):
    register(monkeypatch, server, tar_bytes(PAYLOAD))
    server.mode = "truncate"
    with pytest.raises(FetchError, match="resume"):
        fetch("toy", tmp_path, progress=False, timeout=5)
    assert [p.name for p in tmp_path.iterdir()] == ["toy.tar.gz.part"]


@pytest.mark.parametrize("mode", ["normal", "ignore-range"])
def test_resume_from_a_partial_file(server, monkeypatch, tmp_path, mode):
    body = tar_bytes(PAYLOAD)
    register(monkeypatch, server, body)
    (tmp_path / "toy.tar.gz.part").write_bytes(body[:1000])
    server.mode = mode
    fetch("toy", tmp_path, progress=False, timeout=5)
    assert server.requests == ["bytes=1000-"]
    assert (tmp_path / "toy.tar.gz").read_bytes() == body  # appended, or restarted when Range is ignored


def test_unknown_size_and_checksum_still_detects_truncation(server, monkeypatch, tmp_path):
    entry = register(monkeypatch, server, tar_bytes(PAYLOAD), size=None)
    monkeypatch.setitem(DATASETS, "toy", RemoteFile("toy", entry.url))
    server.mode = "truncate"
    with pytest.raises(FetchError):
        fetch("toy", tmp_path, progress=False, timeout=5)
    assert not (tmp_path / "toy.tar.gz").exists()


def test_path_traversal_is_refused(server, monkeypatch, tmp_path):
    register(monkeypatch, server, tar_bytes({"../evil.txt": b"x"}))
    with pytest.raises(FetchError, match="unsafe"):
        fetch("toy", tmp_path / "root", progress=False, timeout=5)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "root" / ".toy.extracted").exists()
    assert not any(p.name.startswith(".extract") for p in (tmp_path / "root").iterdir())


def test_unreachable_host_says_so(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(DATASETS, "toy", RemoteFile("toy", f"http://127.0.0.1:{port}/toy.tar.gz"))
    with pytest.raises(FetchError, match="could not be reached") as err:
        fetch("toy", tmp_path, progress=False, timeout=5)
    assert f"127.0.0.1:{port}" in str(err.value) and "package registries" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_name_lists_the_registry(tmp_path):
    with pytest.raises(FetchError, match="DIV2K_train_HR"):
        fetch("nope", tmp_path)


def test_url_override_is_used(server, monkeypatch, tmp_path):
    body = tar_bytes(PAYLOAD)
    register(monkeypatch, server, body)
    server.files["/mirror/toy.tar.gz"] = body
    fetch("toy", tmp_path, url_override=f"{server.base}/mirror/toy.tar.gz", progress=False, timeout=5)
    assert Path(tmp_path / "toy").is_dir() and DATASETS["toy"].url.endswith("/toy.tar.gz")


def test_stale_oversized_part_with_unknown_size_restarts(server, monkeypatch, tmp_path):
    body = tar_bytes(PAYLOAD)
    entry = register(monkeypatch, server, body)
    monkeypatch.setitem(DATASETS, "toy", RemoteFile("toy", entry.url))  # no size, no checksum
    (tmp_path / "toy.tar.gz.part").write_bytes(b"x" * (len(body) + 10))
    fetch("toy", tmp_path, progress=False, timeout=5)
    assert server.requests == [f"bytes={len(body) + 10}-", None]
    assert (tmp_path / "toy.tar.gz").read_bytes() == body


def test_complete_unverified_part_is_checked_without_downloading(server, monkeypatch, tmp_path):
    body = tar_bytes(PAYLOAD)
    register(monkeypatch, server, body)
    (tmp_path / "toy.tar.gz.part").write_bytes(body)
    fetch("toy", tmp_path, progress=False, timeout=5)
    assert server.requests == [] and (tmp_path / "toy" / "HR" / "a.png").exists()
