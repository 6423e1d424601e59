"""Training: the loss falls, resuming reproduces an uninterrupted run exactly, bad input is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enlcn.train import PatchBatches, TrainConfig, Trainer, training_variant


def pairs(n=3, size=24, scale=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hr = rng.integers(0, 256, (size * scale, size * scale, 3), dtype=np.uint8)
        lr = hr.reshape(size, scale, size, scale, 3).mean((1, 3)).round().astype(np.uint8)
        out.append((lr, hr))
    return out


def config(**kw):
    base = dict(
        model="enlcn",
        scale=2,
        preset="quick",
        lr_patch=10,
        batch_size=2,
        iters_per_epoch=3,
        epochs=3,
        warmup_epochs=1,
        milestones=(2,),
        checkpoint_every=2,
        lr=1e-3,
        attention={"redraw_interval": 2},
    )
    return TrainConfig(**{**base, **kw})


def test_variant_settings_come_from_the_deviation_list():
    assert training_variant("paper") == {"warmup_epochs": 150, "beta2": 0.99}
    assert training_variant("official") == {"warmup_epochs": 101, "beta2": 0.999}
    assert TrainConfig(variant="paper").beta2 == 0.99
    with pytest.raises(KeyError, match="patchsize"):
        TrainConfig.from_dict({"patchsize": 3})


def test_batches_are_a_pure_function_of_seed_and_step():
    b = PatchBatches(pairs(), 2, 8, 4, seed=1, total_steps=10)
    lr, hr = b[3]
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert torch.equal(b[3][0], lr) and not torch.equal(b[4][0], lr)
    # crops are aligned: the HR crop's 2×2 means are the LR crop (as the LR was made)
    pooled = torch.nn.functional.avg_pool2d(hr * 255, 2)
    assert (pooled - lr * 255).abs().max() <= 0.5 + 1e-4


def test_small_images_and_bad_pairs_are_named():
    with pytest.raises(ValueError, match="smaller than the patch"):
        PatchBatches(pairs(size=6), 2, 8, 1, 0, 1)
    lr, hr = pairs(1)[0]
    with pytest.raises(ValueError, match="not ×2"):
        PatchBatches([(lr, hr[:-2])], 2, 8, 1, 0, 1)


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    data = pairs()
    full = Trainer(config(), data, [], tmp_path / "full")
    full.fit(progress=False)
    part = Trainer(config(), data, [], tmp_path / "part")
    part.fit(stop_after=4, progress=False)  # checkpoint at step 4 (mid-epoch, after a redraw)
    resumed = Trainer(config(), data, [], tmp_path / "part")
    summary = resumed.fit(resume=True, progress=False)
    assert summary["step"] == 9
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = (tmp_path / "part" / "train_log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in log[1:]] == list(range(1, 10))
    # warm-up: no contrastive loss in epoch 0, then it is on
    rows = [r.split(",") for r in log[1:]]
    assert all(r[3] == "" for r in rows[:3]) and all(r[3] != "" for r in rows[3:])


def test_refuses_to_overwrite_or_resume_with_other_settings(tmp_path):
    data = pairs()
    Trainer(config(epochs=1), data, [], tmp_path).fit(progress=False)
    with pytest.raises(FileExistsError):
        Trainer(config(epochs=1), data, [], tmp_path).fit(progress=False)
    with pytest.raises(ValueError, match="lr"):
        Trainer(config(epochs=2, lr=5e-4), data, [], tmp_path).fit(resume=True, progress=False)


def test_loss_falls_on_the_quick_profile(tmp_path):
    rng = np.random.default_rng(0)
    hr = np.kron(rng.integers(0, 256, (12, 12, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # blocky, learnable
    lr = hr.reshape(24, 2, 24, 2, 3).mean((1, 3)).round().astype(np.uint8)
    cfg = config(model="edsr", attention={}, epochs=1, iters_per_epoch=60, checkpoint_every=60, batch_size=4)
    Trainer(cfg, [(lr, hr)], [], tmp_path).fit(progress=False)
    l1 = np.loadtxt(tmp_path / "train_log.csv", delimiter=",", skiprows=1, usecols=2)
    assert l1[-10:].mean() < 0.7 * l1[:10].mean()


def test_profiles_give_typed_training_settings():
    from enlcn.train import train_config

    quick, paper = train_config("quick"), train_config("paper", variant="paper")
    assert (quick.preset, quick.total_steps) == ("quick", 30)
    assert (paper.total_steps, paper.beta2, paper.warmup_epochs) == (1_000_000, 0.99, 150)
    with pytest.raises(ValueError, match="unknown profile"):
        train_config("laptop")


def test_bf16_on_cpu_warns_and_trains_in_float32(tmp_path):
    with pytest.warns(UserWarning, match="bf16 is CUDA-only"):
        trainer = Trainer(config(bf16=True, epochs=1, iters_per_epoch=2), pairs(), [], tmp_path, device="cpu")
    trainer.fit(progress=False)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compiled_training_follows_eager_training(tmp_path):
    """torch.compile (inductor on CPU) gives the same losses as eager mode, to float tolerance."""
    logs = []
    for compiled in (False, True):
        out = tmp_path / ("compiled" if compiled else "eager")
        cfg = config(model="edsr", attention={}, epochs=1, iters_per_epoch=4, compile=compiled)
        Trainer(cfg, pairs(), [], out, device="cpu").fit(progress=False)
        logs.append(np.loadtxt(out / "train_log.csv", delimiter=",", skiprows=1, usecols=2))
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-4)


def test_paired_init_gives_every_arm_edsrs_backbone_of_the_seed(tmp_path):
    from enlcn.models.edsr import backbone_modules

    pairs = [(np.zeros((24, 24, 3), np.uint8), np.zeros((48, 48, 3), np.uint8))]

    def backbone(model: str, seed: int, paired: bool = True) -> list[torch.Tensor]:
        config = TrainConfig(model, 2, "quick", lr_patch=16, seed=seed, paired_init=paired)
        trainer = Trainer(config, pairs, [], tmp_path / f"{model}-{seed}-{paired}")
        return [t for m in backbone_modules(trainer.model) for t in m.state_dict().values()]

    edsr, nla, enlcn = backbone("edsr", 3), backbone("edsr+nla", 3), backbone("enlcn", 3)
    assert len(edsr) == len(nla) == len(enlcn) > 10
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(edsr, nla, enlcn, strict=True))
    # EDSR's own weights do not change; without pairing, the attention model's blocks do differ
    assert all(torch.equal(a, b) for a, b in zip(edsr, backbone("edsr", 3, False), strict=True))
    unpaired = backbone("edsr+nla", 3, False)
    assert not all(torch.equal(a, b) for a, b in zip(edsr, unpaired, strict=True))
    assert not torch.equal(edsr[-1], backbone("edsr", 4)[-1])  # another seed, another start


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [("lr", "1e-4", 1e-4), ("lr", "1E-4", 1e-4), ("lambda_cl", ".5", 0.5), ("lr", "3", 3.0),
     ("batch_size", "3", 3), ("bf16", "false", False), ("milestones", "20,30", (20, 30)),
     ("milestones", [20, 30], (20, 30)), ("beta2", "null", None)],
)
def test_options_are_converted_to_their_declared_types(key, text, value):
    config = TrainConfig.from_dict({key: text})
    got = getattr(config, key)
    if value is None:  # None takes the variant's value
        assert isinstance(got, float)
    else:
        assert got == value and type(got) is type(value)


def test_yaml_strings_from_set_are_numbers(tmp_path):
    from enlcn.cli import parse_sets

    config = TrainConfig.from_dict(parse_sets(["lr=1e-4", "lambda_cl=1e-3", "epochs=2"]))
    assert config.lr == 1e-4 and isinstance(config.lambda_cl, float) and config.epochs == 2


@pytest.mark.parametrize(
    ("key", "text", "match"),
    [("lr", "fast", "TrainConfig.lr: expected a number, got 'fast'"),
     ("batch_size", "2.5", "TrainConfig.batch_size: expected an integer"),
     ("bf16", "maybe", "TrainConfig.bf16: expected true or false"),
     ("lr", "-1", r"TrainConfig.lr must be > 0"),
     ("lr", "nan", r"TrainConfig.lr must be > 0"),
     ("gamma", "2", r"TrainConfig.gamma must be in \(0, 1\]"),
     ("milestones", "30,20", "milestones must be increasing"),
     ("milestones", "a,b", r"TrainConfig.milestones\[0\]: expected an integer")],
)
def test_bad_options_are_errors_naming_the_option(key, text, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({key: text})


def test_cli_rejects_a_bad_option_before_any_work(tmp_path, capsys):
    from enlcn.cli import main

    assert main(["train", "--profile", "quick", "--set", "lambda_cl=abc", "--out", str(tmp_path / "r")]) == 2
    assert "TrainConfig.lambda_cl: expected a number, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_smoke_steps_are_read_once_and_checked(monkeypatch):
    from enlcn.profiles import ablation_k_settings, get_profile, smoke_steps
    from enlcn.train import train_config

    monkeypatch.delenv("ENLCN_SMOKE_STEPS", raising=False)
    assert smoke_steps() is None and train_config("cpu").batch_size == 8
    assert ablation_k_settings("cpu") == get_profile("cpu").ablation_k
    monkeypatch.setenv("ENLCN_SMOKE_STEPS", " 5 ")
    cfg = train_config("cpu")
    assert (cfg.iters_per_epoch, cfg.epochs, cfg.batch_size, cfg.lr_patch) == (5, 1, 2, 16)
    assert ablation_k_settings("cpu") == get_profile("quick").ablation_k
    for bad in ("0", "-2", "five", "1.5"):
        monkeypatch.setenv("ENLCN_SMOKE_STEPS", bad)
        with pytest.raises(ValueError, match="ENLCN_SMOKE_STEPS must be a positive integer"):
            train_config("cpu")


def test_smoke_self_similar_images_are_smaller_and_every_profile_still_makes_them(monkeypatch):
    from enlcn.profiles import PROFILES, get_profile

    monkeypatch.delenv("ENLCN_SMOKE_STEPS", raising=False)
    assert get_profile("paper").study_data.selfsim_size == 256
    monkeypatch.setenv("ENLCN_SMOKE_STEPS", "2")
    assert get_profile("paper").study_data.selfsim_size == 160  # 10 sides of its 16² motifs
    assert get_profile("pilot-x4").study_data == PROFILES["pilot-x4"].study_data  # 224 < 10 × 32: kept
    for name in PROFILES:
        profile = get_profile(name)
        test = profile.study_data.selfsim_set("test", profile.train_dict().get("scale", 4))
        item = test.item(len(test) - 1)  # the motifs fit (ValueError otherwise)
        side = profile.study_data.selfsim_size
        assert item.image.shape[0] == side <= PROFILES[name].study_data.selfsim_size


def test_best_and_latest_of_one_step_are_one_file_and_part_when_the_state_moves_on(tmp_path):
    from enlcn.models.checkpoints import read_checkpoint

    val = [("v", *pairs(1, size=12, seed=5)[0])]
    trainer = Trainer(config(epochs=1, iters_per_epoch=2, checkpoint_every=2), pairs(), val, tmp_path)
    trainer.fit(progress=False)
    best, latest = tmp_path / "checkpoints" / "best.pt", tmp_path / "checkpoints" / "latest.pt"
    assert best.stat().st_ino == latest.stat().st_ino  # validation's best at step 2 is the step's latest
    state = read_checkpoint(latest)
    assert state["step"] == 2 and state["best_psnr"] == trainer.best_psnr > 0
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in state["model"].items())
    lr, hr = trainer.batches[0]
    trainer.train_step(lr, hr)  # the weights move on at the same step count: written anew
    trainer.checkpoint()
    assert latest.stat().st_ino != best.stat().st_ino
    moved = read_checkpoint(latest)["model"]
    assert not all(torch.equal(v, read_checkpoint(best)["model"][k]) for k, v in moved.items())
    torch.manual_seed(123)  # only the RNG moves on: written anew too
    trainer.checkpoint("other")
    assert not torch.equal(read_checkpoint(tmp_path / "checkpoints" / "other.pt")["torch_rng"],
                           read_checkpoint(latest)["torch_rng"])
