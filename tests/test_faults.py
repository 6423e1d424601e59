"""Fault suite: a run interrupted at the worst moments resumes to exactly the uninterrupted run.

Kills are simulated in-process at precise points (an exception raised from inside the trainer), which
reaches points no pause hook marks; the real SIGKILLs from outside, which also lose what Python had not
flushed, are in tests/test_robustness.py. After the
resume, weights, optimizer state and every log must equal an uninterrupted run's, with no duplicate or
missing rows and no stray temporary files. Run alone with ``pytest -m faults``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from enlcn.train import TrainConfig, Trainer

pytestmark = pytest.mark.faults


class Killed(BaseException):
    """Stands for the process dying (BaseException: nothing in the trainer catches it)."""


def _pairs():
    rng = np.random.default_rng(0)
    hr = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(3)]
    return [(h.reshape(20, 2, 20, 2, 3).mean((1, 3)).round().astype(np.uint8), h) for h in hr]


def _val():
    (lr, hr) = _pairs()[0]
    return [("v", lr, hr)]


def _config():
    return TrainConfig(model="edsr+nla", scale=2, preset="quick", lr_patch=8, batch_size=2,
                       iters_per_epoch=4, epochs=3, milestones=(2,), checkpoint_every=3, lr=1e-3)


def _files(folder: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".csv",):
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    t = Trainer(_config(), _pairs(), _val(), folder)
    t.fit(progress=False)
    return folder, t.model.state_dict(), t.optimizer.state_dict()


def _resume_and_compare(folder: Path, reference) -> None:
    ref_folder, ref_model, ref_opt = reference
    t = Trainer(_config(), _pairs(), _val(), folder)
    t.fit(resume=True, progress=False)
    for key, value in ref_model.items():
        assert torch.equal(value, t.model.state_dict()[key]), key
    for a, b in zip(ref_opt["state"].values(), t.optimizer.state_dict()["state"].values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert _files(folder) == _files(ref_folder)  # train_log.csv, val_log.csv: same bytes
    stray = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert not stray, stray


def test_killed_while_writing_the_first_checkpoint(tmp_path, monkeypatch, reference):
    real = torch.save

    def dies_mid_write(obj, path, *a, **k):  # save_atomic serialises to memory first
        raise Killed

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(Killed):
        Trainer(_config(), _pairs(), _val(), tmp_path).fit(progress=False)
    monkeypatch.setattr(torch, "save", real)
    assert not (tmp_path / "checkpoints" / "latest.pt").exists()
    # save_atomic removes its temporary when an exception unwinds; SIGKILL gives it no chance:
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    (tmp_path / "checkpoints" / ".latest.pt.k1ll3d.tmp").write_bytes(b"")
    (tmp_path / "checkpoints" / ".best.pt.k1ll3d.tmp").write_bytes(b"")
    _resume_and_compare(tmp_path, reference)


def test_killed_after_a_validation_row_before_the_next_checkpoint(tmp_path, monkeypatch, reference):
    real = Trainer.validate

    def validate_then_die(self, epoch):
        real(self, epoch)
        if self.step == 8:  # the row of step 8 is written; the last checkpoint is step 6
            raise Killed

    monkeypatch.setattr(Trainer, "validate", validate_then_die)
    with pytest.raises(Killed):
        Trainer(_config(), _pairs(), _val(), tmp_path).fit(progress=False)
    monkeypatch.setattr(Trainer, "validate", real)
    rows = (tmp_path / "val_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["4", "8"]
    _resume_and_compare(tmp_path, reference)


def test_killed_during_validation(tmp_path, monkeypatch, reference):
    import enlcn.evaluate as evaluate

    real = evaluate.upscale
    calls = []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(*a, **k)

    monkeypatch.setattr(evaluate, "upscale", dies)
    with pytest.raises(Killed):
        Trainer(_config(), _pairs(), _val(), tmp_path).fit(progress=False)
    monkeypatch.setattr(evaluate, "upscale", real)
    _resume_and_compare(tmp_path, reference)


def test_killed_between_steps_repeatedly(tmp_path, monkeypatch, reference):
    real = Trainer.train_step
    for stop_at in (2, 5, 7, 11):
        def dies(self, lr, hr, stop_at=stop_at):
            if self.step == stop_at:
                raise Killed
            return real(self, lr, hr)

        monkeypatch.setattr(Trainer, "train_step", dies)
        with pytest.raises(Killed):
            Trainer(_config(), _pairs(), _val(), tmp_path).fit(resume=True, progress=False)
    monkeypatch.setattr(Trainer, "train_step", real)
    _resume_and_compare(tmp_path, reference)


def test_a_fresh_start_with_leftover_logs_says_so(tmp_path, capsys):
    (tmp_path / "train_log.csv").write_text("step,epoch,l1,contrastive,lr\n1,0,0.5,,0.001\n")
    (tmp_path / "val_log.csv").write_text("4,0,20.0\n")
    (tmp_path / ".x.tmp").write_text("")
    t = Trainer(_config(), _pairs(), _val(), tmp_path)
    t.fit(resume=True, stop_after=1, progress=False)
    assert "no checkpoint to resume from; starting at step 0" in capsys.readouterr().err
    assert (tmp_path / "train_log.csv").read_text().count("\n1,") == 1
    assert not (tmp_path / "val_log.csv").read_text().strip()
    assert not (tmp_path / ".x.tmp").exists()
    assert os.environ.get("ENLCN_BLOCKED") is None


# -- corrupt and truncated checkpoints, for every command that reads one ----------------------------------
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    Trainer(_config(), _pairs(), [], folder).fit(stop_after=3, progress=False)
    return folder / "checkpoints" / "latest.pt"


def _corruptions(good: Path, folder: Path) -> dict[str, Path]:
    data = good.read_bytes()
    rng = np.random.default_rng(1)
    noisy = bytearray(data)
    for i in rng.integers(len(data) // 4, len(data), 64):
        noisy[i] = (noisy[i] + 97) % 256
    png = folder / "image.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    files = {"half": data[: len(data) // 2], "random_bytes_inside": bytes(noisy), "empty": b""}
    out = {}
    for name, content in files.items():
        out[name] = folder / f"{name}.pt"
        out[name].write_bytes(content)
    out["an_image"] = png
    return out


@pytest.mark.parametrize("kind", ["half", "random_bytes_inside", "empty", "an_image"])
def test_every_command_names_a_corrupt_checkpoint(kind, tmp_path, good_checkpoint, capsys):
    from enlcn.cli import main

    bad = _corruptions(good_checkpoint, tmp_path)[kind]
    lr = tmp_path / "lr.png"
    from PIL import Image

    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(lr)
    commands = {
        "eval": ["eval", "--checkpoint", str(bad), "--data", "skimage", "--mode", "whole"],
        "upscale": ["upscale", str(lr), str(tmp_path / "out.png"), "--checkpoint", str(bad)],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert f"enlcn {name}: error: {bad}" in err and "truncated or not a checkpoint" in err, err
        assert "Traceback" not in err
    # train --resume on a run whose latest.pt is damaged
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(bad.read_bytes())
    argv = ["train", "--profile", "quick", "--resume", "--out", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "enlcn train: error:" in err and "latest.pt: truncated or not a checkpoint" in err, err


# -- images that claim huge sizes, and where upscale writes --------------------------------------------------
def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width×height`` (the pixel data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def quick_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q")
    Trainer(_config(), _pairs(), [], folder).fit(stop_after=1, progress=False)
    return folder / "checkpoints" / "latest.pt"


@pytest.mark.parametrize(("width", "height", "match"), [
    (9000, 9000, r"needs about .* GiB, 8\.0 GiB are available; use --mode tile"),
    (50000, 50000, "claims more pixels than can be decoded safely"),
])
def test_a_small_file_claiming_a_huge_image_is_refused_before_work(width, height, match, tmp_path,
                                                                    quick_checkpoint, capsys, monkeypatch):
    import psutil

    from enlcn.cli import main

    # the machine's free memory is not the test's business: 8 GiB free, whatever this machine has
    free = psutil.virtual_memory()._replace(available=8 * 2**30)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: free)

    bomb = _png_claiming(tmp_path / "bomb.png", width, height)
    assert bomb.stat().st_size < 200
    assert main(["upscale", str(bomb), str(tmp_path / "out.png"), "--checkpoint", str(quick_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert f"enlcn upscale: error: {bomb}" in err
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "out.png").exists()


def test_upscale_writes_an_ordinary_file_and_never_over_its_input(tmp_path, quick_checkpoint, capsys):
    from PIL import Image

    from enlcn.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(np.full((10, 10, 3), 90, np.uint8)).save(src)
    old = os.umask(0o022)
    try:
        argv = ["upscale", str(src), str(tmp_path / "out.png"), "--checkpoint", str(quick_checkpoint)]
        assert main(argv) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o644  # was 0600 (mkstemp)
    refused = [(src, "is the input image"), (tmp_path, "is a folder"), (tmp_path / "x.txt", "unknown image")]
    for out, match in refused:
        before = src.read_bytes()
        assert main(["upscale", str(src), str(out), "--checkpoint", str(quick_checkpoint)]) == 2
        assert match in capsys.readouterr().err
        assert src.read_bytes() == before


def test_result_csvs_do_not_record_float_noise(tmp_path):
    """Issue 10, item 7: re-running a result on another CPU changed committed CSVs in the 10th digit."""
    import pandas as pd

    from enlcn.provenance import write_csv_atomic

    values = np.array([29.940123456789, 0.0123456789012, 1.5e-9, 18.325])
    a = write_csv_atomic(tmp_path / "a.csv", pd.DataFrame({"v": values})).read_bytes()
    b = write_csv_atomic(tmp_path / "b.csv", pd.DataFrame({"v": values * (1 + 3e-10)})).read_bytes()
    assert a == b
    assert b"29.940123" in a  # 8 significant digits: PSNR to 1e-6 dB (rescoring compares at 1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (3, 40)])
def test_upscale_handles_tiny_and_odd_images(shape, tmp_path, quick_checkpoint):
    from PIL import Image

    from enlcn.cli import main
    from enlcn.data.images import load_rgb

    src = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "odd_x2.png"
    assert main(["upscale", str(src), str(out), "--checkpoint", str(quick_checkpoint)]) == 0
    assert load_rgb(out).shape == (2 * shape[0], 2 * shape[1], 3)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 30])
def test_upscale_names_an_unreadable_input(content, tmp_path, quick_checkpoint, capsys):
    from enlcn.cli import main

    src = tmp_path / "bad.png"
    src.write_bytes(content)
    assert main(["upscale", str(src), str(tmp_path / "o.png"), "--checkpoint", str(quick_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert f"enlcn upscale: error: {src}: cannot read image" in err and "Traceback" not in err
