"""Issue 20 as a careless colleague meets it: real SIGKILLs at named points, hostile checkpoints, two runs
in one folder, read-only and full output locations, bad settings and the permissions of what is written.

Kills are real: ``enlcn train`` runs in a subprocess, stops itself at a named point
(:mod:`enlcn.faultpoint`, ``ENLCN_PAUSE_AT``) and is SIGKILLed from here, so whatever Python had buffered
is lost as it would be. The resumed run must end byte-for-byte like an uninterrupted one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import procs
import pytest
import torch

from enlcn.cli import main
from enlcn.data import save_rgb

pytestmark = pytest.mark.faults

#: a tiny deterministic run: 2 epochs of 3 steps, a checkpoint every 2 steps, validation each epoch
TRAIN_SETS = ["epochs=2", "iters_per_epoch=3", "batch_size=1", "lr_patch=12", "checkpoint_every=2",
              "milestones=[1]", "model=edsr", "lr=1e-3"]


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for s in TRAIN_SETS for a in ("--set", s)]
    return ["train", "--profile", "quick", *sets, "--data", str(data), "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "ENLCN_NATIVE": "0"}  # EDSR only: no kernel to build


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(2):
        save_rgb(folder / f"im{i}.png", rng.integers(0, 256, (52, 60, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> Path:
    """The uninterrupted run, in a subprocess like the killed ones."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = procs.run(procs.enlcn(*_train_args(data, out)), env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _logs(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("train_log.csv", "val_log.csv")}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"]


def _assert_same_run(run: Path, reference: Path) -> None:
    assert _logs(run) == _logs(reference)
    ref = _weights(reference)
    got = _weights(run)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    stray = [p.name for p in run.rglob("*.tmp")]
    assert not stray, stray


# -- real kills ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("point", [
    "log-created",  # the log exists, no row yet (it used to be 0 bytes here: the header was buffered)
    "log-row@4",  # the 4th row written, not flushed
    "checkpoint-write@1",  # the first checkpoint's temporary written, not renamed
    "validation@2",  # the second validation, before its row
    "results-write@1",  # config.json's temporary written, not renamed
])
def test_a_run_killed_at_point_resumes_to_the_uninterrupted_run(point, tmp_path, data, reference):
    run = tmp_path / "run"
    procs.killed_at(procs.enlcn(*_train_args(data, run)), point, env=_env())
    done = procs.run(procs.enlcn(*_train_args(data, run, "--resume")), env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    log = pd.read_csv(run / "train_log.csv")
    assert list(log.columns) == ["step", "epoch", "l1", "contrastive", "lr"]
    assert log.step.tolist() == list(range(1, 7))
    _assert_same_run(run, reference)


def test_a_log_torn_at_any_byte_is_repaired_on_resume(tmp_path, data, reference):
    """A kill inside a write can leave part of a row (or of the header): the resumed log is whole."""
    from enlcn.train import StepLog, repair_log

    full = (reference / "train_log.csv").read_bytes()
    header_end = full.index(b"\n") + 1
    for cut in [0, 5, header_end - 1, header_end, header_end + 7, len(full) - 3]:
        path = tmp_path / f"cut{cut}.csv"
        path.write_bytes(full[:cut])
        repair_log(path, 6, StepLog.COLUMNS)
        text = path.read_bytes()
        assert text.startswith(b"step,epoch,l1,contrastive,lr\r\n"), (cut, text[:40])
        assert full.startswith(text), cut  # only whole rows, nothing invented
        assert text.endswith(b"\n")


# -- checkpoints that are code ------------------------------------------------------------------------
class _Payload:
    """Unpickling this calls ``os.system`` (a checkpoint from a stranger)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Payload(marker), "config": {}, "step": 1}, path)
    return path


@pytest.mark.parametrize("command", ["upscale", "eval", "maps", "eval --official", "train --resume"])
def test_a_checkpoint_that_runs_code_is_refused_by_every_command(command, tmp_path, data, capsys):
    marker = tmp_path / "pwned"
    image = str(data / "im0.png")
    if command == "train --resume":
        _hostile(tmp_path / "run" / "checkpoints" / "latest.pt", marker)
        args = _train_args(data, tmp_path / "run", "--resume")
        path = tmp_path / "run" / "checkpoints" / "latest.pt"
    else:
        path = _hostile(tmp_path / "model.pt", marker)
        args = {
            "upscale": ["upscale", image, str(tmp_path / "sr.png")],
            "eval": ["eval", "--data", str(data)],
            "maps": ["maps", image, "--query", "3,3", "--out", str(tmp_path / "m.png")],
            "eval --official": ["eval", "--official", "--scale", "2", "--data", str(data)],
        }[command] + ["--checkpoint", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's code ran"
    assert err.count("\n") == 1 and f"{path}: refused: its pickle calls posix.system" in err, err


def test_our_own_checkpoints_load_weights_only(reference):
    state = torch.load(reference / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 6 and state["config"]["model"] == "edsr"


def test_a_checkpoint_whose_weights_contradict_its_config_is_one_line(tmp_path, reference, capsys):
    state = torch.load(reference / "checkpoints" / "latest.pt", weights_only=True)
    state["config"]["model"] = "edsr+nla"  # the weights stay EDSR's
    torch.save(state, tmp_path / "liar.pt")
    image = str(reference.parent / "sr.png")
    assert main(["upscale", str(Path(__file__)), image, "--checkpoint", str(tmp_path / "liar.pt")]) == 2
    err = capsys.readouterr().err  # the input is no image: refused before the checkpoint is read
    assert "cannot read image" in err
    save_rgb(tmp_path / "in.png", np.zeros((20, 20, 3), np.uint8))
    assert main(["upscale", str(tmp_path / "in.png"), image, "--checkpoint", str(tmp_path / "liar.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "its weights are not a edsr+nla ×2 model" in err and "missing" in err


# -- two runs, one folder -----------------------------------------------------------------------------
def test_a_second_train_into_a_folder_being_trained_is_refused_naming_the_first(tmp_path, data):
    run = tmp_path / "run"
    env = {**_env(), "ENLCN_PAUSE_AT": "log-created"}
    with procs.started(procs.enlcn(*_train_args(data, run)), env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL) as first:
        procs.wait_stopped(first)
        for extra in ((), ("--resume",)):
            second = procs.run(procs.enlcn(*_train_args(data, run, *extra)), env=_env())
            assert second.returncode == 2, second.stderr[-2000:]
            assert f"is being trained by process {first.pid}" in second.stderr, second.stderr[-2000:]
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=procs.DEFAULT_TIMEOUT) == 0
    log = (run / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == [str(s) for s in range(1, 7)]  # one writer: each step once


def test_the_lock_of_a_killed_trainer_is_free_at_once(tmp_path, data, reference):
    run = tmp_path / "run"
    procs.killed_at(procs.enlcn(*_train_args(data, run)), "log-row@2", env=_env())
    assert (run / ".lock").exists()  # left behind by the kill, and harmless: the flock died with it
    done = procs.run(procs.enlcn(*_train_args(data, run, "--resume")), env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_run(run, reference)


def test_a_fresh_run_into_another_runs_folder_is_refused_unless_resume(tmp_path, data, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.csv").write_text("step,epoch,l1,contrastive,lr\r\n1,0,0.5,,0.001\r\n")
    assert main(_train_args(data, run)) == 2
    assert "already holds a run (train_log.csv); pass --resume" in capsys.readouterr().err
    assert (run / "train_log.csv").read_text().count("\n") == 2  # untouched


def test_the_folder_lock_is_reentrant_in_its_process_and_exclusive_across(tmp_path):
    from enlcn.folderlock import FolderLock, FolderLocked

    holder = "import sys, time; from enlcn.folderlock import FolderLock\n" \
             "with FolderLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n"
    with procs.started([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True) as p:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(FolderLocked, match=f"by process {p.pid}"):
            with FolderLock(tmp_path):
                pass
    with FolderLock(tmp_path, "trained"), FolderLock(tmp_path, "trained"):  # the study's runner, its trainer
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


# -- where nothing can be written ---------------------------------------------------------------------
def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A read-only folder: a read-only tmpfs where we may mount one, else mkstemp refusing with EROFS."""
    folder = tmp_path / "ro"
    if _mount_tmpfs(folder, "ro,size=1m"):
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
        return
    import errno
    import tempfile

    real = tempfile.mkstemp

    def refuses(*a, dir=None, **k):  # noqa: A002 - mkstemp's own name
        if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", refuses)
    yield folder


@pytest.fixture(scope="module")
def checkpoint(reference) -> Path:
    return reference / "checkpoints" / "latest.pt"


@pytest.mark.parametrize("command", ["upscale", "eval --save-dir", "train --out"])
def test_a_read_only_output_folder_is_one_line_before_work(command, read_only, data, checkpoint, capsys):
    args = {
        "upscale": ["upscale", str(data / "im0.png"), str(read_only / "sr.png"),
                    "--checkpoint", str(checkpoint)],
        "eval --save-dir": ["eval", "--data", str(data), "--save-dir", str(read_only / "sr"),
                            "--checkpoint", str(checkpoint)],
        "train --out": _train_args(data, read_only / "run"),
    }[command]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    folder = {"upscale": "output folder", "eval --save-dir": "--save-dir folder", "train --out": "run folder"}
    assert f"cannot write to the {folder[command]} " in captured.err, captured.err
    assert "Read-only file system" in captured.err, captured.err
    assert str(read_only) in captured.err
    assert "mean" not in captured.out  # refused before any evaluation
    assert not list(read_only.rglob("*"))


def test_a_full_disk_during_a_checkpoint_save_names_the_file_and_the_space(tmp_path, data):
    out = tmp_path / "full"
    if not _mount_tmpfs(out, "size=64k"):
        pytest.skip("no tmpfs here: the simulated ENOSPC is test_save_atomic_reports_no_space")
    try:
        done = procs.run(procs.enlcn(*_train_args(data, out / "run")), env=_env())
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("enlcn train: error: cannot write "), last
        assert "latest.pt: no space left on the device" in last, last
        assert not list(out.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_save_atomic_reports_no_space(tmp_path, monkeypatch):
    import errno

    from enlcn.atomic import WriteError
    from enlcn.train import save_atomic

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    (tmp_path / "ok.pt").write_bytes(b"previous")
    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(WriteError, match=r"cannot write .*ok\.pt: no space left on the device"):
        save_atomic({"x": torch.zeros(3)}, tmp_path / "ok.pt")
    monkeypatch.undo()
    assert (tmp_path / "ok.pt").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["ok.pt"]


# -- settings and inputs that are wrong ---------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--set", "attention={bogus: 1}"], "has no option(s) 'bogus'"),
    (["--set", "lr=[1"], "--set 'lr=[1': the value is not valid YAML"),
    (["--config", "{bad}"], "not valid YAML"),
    (["--set", "lr_patch=40"], "training image 'im0' is 26×30 at LR (×2), smaller than the LR patch 40"),
])
def test_bad_training_settings_are_one_line(args, message, tmp_path, data, capsys):
    for i, item in enumerate(args):
        if item == "{bad}":
            bad = tmp_path / "bad.yaml"
            bad.write_text("lr: [1\n  x: :\n")
            args = [*args[:i], str(bad), *args[i + 1:]]
    out = tmp_path / "r"
    assert main(["train", "--profile", "quick", "--data", str(data), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_an_image_too_small_to_score_is_named(tmp_path, data, checkpoint, capsys):
    folder = tmp_path / "set"
    save_rgb(folder / "fine.png", np.zeros((40, 40, 3), np.uint8))
    save_rgb(folder / "small.png", np.zeros((12, 40, 3), np.uint8))
    assert main(["eval", "--data", str(folder), "--checkpoint", str(checkpoint)]) == 2
    out = capsys.readouterr()
    assert "image 'small' is 12×40: too small to score at ×2" in out.err and str(folder) in out.err
    save_rgb(folder / "small.png", np.zeros((1, 40, 3), np.uint8))
    assert main(["eval", "--data", str(folder), "--checkpoint", str(checkpoint)]) == 2
    assert f"{folder / 'small.png'}: 1×40 pixels, smaller than the scale 2" in capsys.readouterr().err


def test_a_scale_that_cannot_apply_is_an_error(tmp_path, data, checkpoint, capsys):
    out = tmp_path / "sr.png"
    args = ["upscale", str(data / "im0.png"), str(out), "--checkpoint", str(checkpoint)]
    assert main([*args, "--scale", "3"]) == 2
    assert "--scale 3: " in capsys.readouterr().err and not out.exists()
    assert main([*args, "--scale", "2"]) == 0  # the checkpoint's own scale is fine


# -- permissions ---------------------------------------------------------------------------------------
def test_written_files_follow_the_umask(tmp_path, data):
    run = tmp_path / "run"
    done = procs.run(["sh", "-c", 'umask 027 && exec "$@"', "sh", *procs.enlcn(*_train_args(data, run))],
                     env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    sr = tmp_path / "sr.png"
    done = procs.run(["sh", "-c", 'umask 077 && exec "$@"', "sh",
                      *procs.enlcn("upscale", str(data / "im0.png"), str(sr), "--checkpoint",
                                   str(run / "checkpoints" / "latest.pt"))], env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*run.rglob("*.*"), sr] if p.is_file()}
    assert modes.pop("sr.png") == 0o600
    modes.pop(".lock", None)
    assert set(modes.values()) == {0o640}, modes
