"""The `enlcn` command: parsing, overrides and errors (training itself is tested in test_train)."""

from __future__ import annotations

import os

import pytest
from procs import enlcn, run

from enlcn.cli import main, parse_sets


def test_parse_sets_reads_yaml_values():
    assert parse_sets(["epochs=3", "milestones=[1, 2]", "variant=paper"]) == {
        "epochs": 3,
        "milestones": [1, 2],
        "variant": "paper",
    }
    with pytest.raises(ValueError, match="--set expects key=value"):
        parse_sets(["epochs"])


def test_flops_prints_table4(capsys):
    assert main(["flops"]) == 0
    out = capsys.readouterr().out
    assert "ENLCA-m128" in out and "25.6" in out


def test_unknown_training_option_is_named(tmp_path, capsys):
    code = main(["train", "--profile", "quick", "--set", "epochz=2", "--out", str(tmp_path)])
    assert code == 2 and "epochz" in capsys.readouterr().err


def test_unknown_profile_is_named(tmp_path, capsys):
    assert main(["train", "--profile", "laptop", "--out", str(tmp_path)]) == 2
    assert "laptop" in capsys.readouterr().err


def test_trained_checkpoint_round_trip(tmp_path):
    import numpy as np
    import torch

    from enlcn.train import Trainer, load_trained, train_config

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    lr = hr.reshape(24, 2, 24, 2, 3).mean((1, 3)).round().astype(np.uint8)
    cfg = train_config("quick", epochs=1, iters_per_epoch=2, checkpoint_every=2, batch_size=1, lr_patch=16)
    trainer = Trainer(cfg, [(lr, hr)], [], tmp_path)
    trainer.fit(progress=False)
    model, config = load_trained(tmp_path / "checkpoints" / "latest.pt")
    assert config == cfg
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), trainer.model.eval()(x))
    with pytest.raises(FileNotFoundError):
        load_trained(tmp_path / "nope.pt")


def test_python_dash_m_works():
    out = run(enlcn("deviations"))
    assert out.returncode == 0 and "Random projection F" in out.stdout


def test_train_then_eval_from_a_folder(tmp_path, capsys):
    import numpy as np

    from enlcn.data import save_rgb

    rng = np.random.default_rng(0)
    for i in range(2):
        save_rgb(tmp_path / "hr" / f"im{i}.png", rng.integers(0, 256, (52, 60, 3), dtype=np.uint8))
    out = tmp_path / "run"
    sets = [
        "--set",
        "epochs=1",
        "--set",
        "iters_per_epoch=2",
        "--set",
        "batch_size=1",
        "--set",
        "lr_patch=12",
    ]
    assert (
        main(["train", "--profile", "quick", *sets, "--data", str(tmp_path / "hr"), "--out", str(out)]) == 0
    )
    assert (out / "checkpoints" / "best.pt").exists() and (out / "val_log.csv").exists()
    capsys.readouterr()
    ckpt = str(out / "checkpoints" / "best.pt")
    assert main(["eval", "--checkpoint", ckpt, "--data", str(tmp_path / "hr"), "--mode", "chop"]) == 0
    table = capsys.readouterr().out
    assert "im0" in table and "mean" in table
    assert (
        main(["upscale", str(tmp_path / "hr" / "im0.png"), str(tmp_path / "sr.png"), "--checkpoint", ckpt])
        == 0
    )
    from enlcn.data import load_rgb

    assert load_rgb(tmp_path / "sr.png").shape == (104, 120, 3)


def test_data_list_and_an_unknown_dataset(tmp_path, capsys):
    assert main(["data", "list"]) == 0
    assert "DIV2K_train_HR.zip" in capsys.readouterr().out
    assert main(["data", "fetch", "no-such-set", "--root", str(tmp_path)]) == 3
    assert "no-such-set" in capsys.readouterr().err


def test_a_bad_kernel_setting_is_refused_before_any_work(tmp_path):
    """``ENLCN_ISA`` naming no level (or one the CPU lacks) stops the command at once, naming the variable."""
    out = run(enlcn("flops"), env={**os.environ, "ENLCN_ISA": "sse9"}, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (
        "enlcn flops: error: ENLCN_ISA='sse9': expected one of avx512, avx2, generic "
        "(unset: the best this CPU runs)"
    )
