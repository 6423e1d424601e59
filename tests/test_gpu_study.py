"""The one-shot GPU study (enlcn.study.gpu): the step-count formula, the tier choice, the bundle limits,
and (slow) tools/gpu_study.sh end to end on the CPU with the test-only tiny setting → import → Findings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enlcn.study import gpu

REPO = Path(__file__).resolve().parents[1]
S = gpu.Setting()


# -- the step-count formula (Protocol item 3) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("b_train", "t_round", "expected"),
    [
        (400.0, 0.02, 17000),  # 0.85·400/0.02 = 17000 exactly
        (400.0, 0.021, 16000),  # 16190.5 → 16000
        (300.0, 0.03, 8500),  # 8500 exactly
        (300.0, 0.0319, 7500),  # 7993.7 → 7500: just below S_min
        (10.0, 0.5, 0),  # 17 steps: no whole interval
        (0.0, 0.01, 0),  # no time left
        (-5.0, 0.01, 0),
        (100.0, float("inf"), 0),  # no time measured
        (100.0, 0.0, 0),
    ],
)
def test_steps_for_hand_computed(b_train: float, t_round: float, expected: int) -> None:
    assert gpu.steps_for(b_train, t_round, S) == expected


def test_steps_are_whole_intervals_and_fit_the_margin() -> None:
    for b, t in ((417.3, 0.0123), (250.0, 0.0071), (399.9, 0.04)):
        s = gpu.steps_for(b, t, S)
        assert s % 500 == 0
        assert s * t <= 0.85 * b < (s + 500) * t


def test_choose_takes_the_largest_tier_reaching_s_min() -> None:
    # B_train 400 s: T = 0.02 → 17000, 0.04 → 8500, 0.05 → 6500 (stops there)
    c = gpu.choose(400.0, {1: 0.02, 2: 0.04, 3: 0.05}, S)
    assert c.tiers == (1, 2) and c.steps == 8500 and not c.fallback
    assert c.by_tier == {1: 17000, 2: 8500, 3: 6500}
    assert gpu.choose(400.0, {1: 0.01, 2: 0.02, 3: 0.03, 4: 0.04}, S).tiers == (1, 2, 3, 4)


def test_tier_one_fallback_is_exploratory_with_at_least_500_steps() -> None:
    c = gpu.choose(400.0, {1: 0.08}, S)  # 0.85·400/0.08 = 4250 → 4000 < 8000
    assert c.tiers == (1,) and c.steps == 4000 and c.fallback
    c = gpu.choose(10.0, {1: 0.5}, S)  # 17 steps → 0 → the floor
    assert c.tiers == (1,) and c.steps == 500 and c.fallback


def test_tiers_are_the_protocols() -> None:
    assert [len(gpu.TIERS[t]) for t in (1, 2, 3, 4)] == [9, 9, 6, 6]
    names = [r.name for _, r in gpu.tier_runs(gpu.TIERS)]
    assert len(set(names)) == 30
    assert {r.model for r in gpu.TIERS[1]} == {"edsr", "edsr+nla", "enlcn"}
    assert sorted({dict(r.attention)["k"] for r in gpu.TIERS[4]}) == [2.0, 4.0, 8.0]  # k = 1: enla_cl
    assert {r.seed for r in gpu.TIERS[4]} == {0, 1}
    assert gpu.tier_of("nlsa_s2") == 3


def test_run_config_is_the_protocols_training() -> None:
    c = gpu.run_config(gpu.run_by_name("enlca_s1"), 12000, "cuda")
    assert (c.preset, c.scale, c.batch_size, c.lr_patch, c.lr) == ("edsr-baseline", 2, 16, 48, 2e-4)
    assert c.total_steps == 12000 and c.milestones == (6000, 9000) and c.paired_init and c.bf16
    assert c.warmup_epochs == 1212 and c.seed == 1
    assert not gpu.run_config(gpu.run_by_name("base"), 8500, "cpu").bf16
    from enlcn.models import build_model

    model = build_model("enlcn", 2, "edsr-baseline")
    assert len(model.attention_modules()) == 5
    assert model.attention_modules()[0].options.m == 128


def test_assign_spreads_every_tier() -> None:
    shares = gpu.assign(gpu.tier_runs(gpu.TIERS), 8)
    assert len(shares) == 8 and sum(map(len, shares)) == 30
    assert all(sum(t == 1 for t, _ in share) >= 1 for share in shares)


# -- the bundle limits --------------------------------------------------------------------------------
def _payload(n: int) -> dict:
    return {"config": {"model": "edsr"}, "model": {"w": torch.zeros(n, dtype=torch.float16)}}


def test_pack_weights_drops_the_last_tier_first() -> None:
    mib = 2**20
    runs = [(f"t{t}_{i}", t, _payload(mib // 2)) for t in (4, 3, 1, 2) for i in range(3)]  # ~1 MiB each
    packs, dropped = gpu.pack_weights(runs, files=2, room=int(5.5 * mib), file_bytes=int(3.5 * mib))
    kept = [n for _, _, names in packs for n in names]
    assert kept == ["t1_0", "t1_1", "t1_2", "t2_0", "t2_1"]
    assert dropped == ["t2_2", "t3_0", "t3_1", "t3_2", "t4_0", "t4_1", "t4_2"]
    assert len(packs) == 2
    assert all(len(blob) <= 3.5 * mib for _, blob, _ in packs)
    assert sum(len(blob) for _, blob, _ in packs) <= 5.5 * mib
    loaded = torch.load(__import__("io").BytesIO(packs[0][1]), weights_only=True)
    assert list(loaded["runs"]) == ["t1_0", "t1_1", "t1_2"]


def test_pack_weights_keeps_everything_that_fits() -> None:
    runs = [(f"r{i}", 1 + i % 4, _payload(1000)) for i in range(8)]
    packs, dropped = gpu.pack_weights(runs, files=4, room=10**7)
    assert dropped == [] and len(packs) == 1 and len(packs[0][2]) == 8
    by_tier = [r[0] for r in sorted(runs, key=lambda r: r[1])]
    assert gpu.pack_weights(runs, files=0, room=10**7) == ([], by_tier)


def test_bundle_problems_name_every_limit(tmp_path: Path) -> None:
    limits = {"files": 2, "file_bytes": 100, "total_bytes": 150, "depth": 1}
    (tmp_path / "a").write_bytes(b"x" * 90)
    assert gpu.bundle_problems(tmp_path, limits) == []
    (tmp_path / "b").write_bytes(b"x" * 101)
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"x")
    problems = gpu.bundle_problems(tmp_path, limits)
    assert any("3 files" in p for p in problems)
    assert any(p.startswith("b: 101 bytes") for p in problems)
    assert any("2 folders deep" in p for p in problems)
    assert any("192 bytes in all" in p for p in problems)


def test_bundle_writer_stays_inside_the_device_limits(tmp_path: Path) -> None:
    """Thirty-two paper-size (16 × 64) float16 models do not fit 64 MiB: the writer keeps tiers 1 … and drops
    from tier 4 first, within 8 files of 16 MiB."""
    from enlcn.models import build_model

    staging, out = tmp_path / "staging", tmp_path / "out"
    model = build_model("edsr", 2, "edsr-baseline")
    payload = {"config": {"model": "edsr"}, "model": gpu.half_state(model)}
    records = []
    for tier, run in gpu.tier_runs(gpu.TIERS):
        (staging / run.name).mkdir(parents=True)
        torch.save(payload, staging / run.name / "weights16.pt")
        records.append({"run": run.name, "tier": tier, "curve": []})
    bundle = gpu.Bundle(out)
    bundle.write_tables(records, staging)
    bundle.write_log("log")
    where, dropped = bundle.write_weights(records, staging)
    bundle.write_manifest(files=sorted(set(gpu.META_FILES) | set(where.values())))
    assert gpu.bundle_problems(out) == []
    assert 0 < len(dropped) < 32
    kept_tiers = [gpu.tier_of(n) for n in where]
    assert 1 in kept_tiers and all(gpu.tier_of(n) >= max(kept_tiers) for n in dropped)
    assert {gpu.tier_of(n) for n in dropped} >= {4}


def test_commit_from_env_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENLCN_COMMIT", "abc123")
    assert gpu.commit_id(tmp_path) == "abc123"
    monkeypatch.delenv("ENLCN_COMMIT")
    (tmp_path / ".enlcn-commit").write_text("def456\n")
    assert gpu.commit_id(tmp_path) == "def456"
    (tmp_path / ".enlcn-commit").unlink()
    assert gpu.commit_id(tmp_path) == "unknown"  # no repository


def test_channels_last_step_of_every_arm() -> None:
    """The CUDA path's layout (channels-last) through one training step of every kind of arm (tiny, CPU)."""
    setting = gpu.Setting.tiny_setting(100)
    from enlcn.study.data import study_data

    data = study_data(setting.data_profile, 2)
    for name in ("base", "nla", "enlca", "enla", "crisscross", "nlsa"):
        run = gpu.run_by_name(name)
        state = gpu.build_run(gpu.tier_of(name), run, 20, "cpu", setting, data, Path("/tmp"))
        state.trainer.model.to(memory_format=torch.channels_last)
        state.trainer.config.warmup_epochs = 0
        lr, hr = state.trainer.batches[0]
        gpu.train_step(state, (lr.contiguous(memory_format=torch.channels_last), hr))
        assert state.step == 1 and bool(state.finite)


# -- end to end ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_gpu_study_script_end_to_end_on_cpu(tmp_path: Path) -> None:
    """tools/gpu_study.sh --device cpu (tiny, test-only) → a bundle within the limits → enlcn study import
    into a temporary results root → the Findings forest has the GPU setting's rows."""
    out, root = tmp_path / "bundle", tmp_path / "root"
    env = {**os.environ, gpu.TINY_ENV: "1", "PY": sys.executable, "ENLCN_COMMIT": "test-commit"}
    proc = subprocess.run(
        ["tools/gpu_study.sh", "--device", "cpu", "--budget-s", "150", "--out", str(out), "--workers", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert gpu.bundle_problems(out) == []
    manifest = json.loads((out / gpu.MANIFEST).read_text())
    assert manifest["phase"] == "finished" and manifest["commit"] == "test-commit"
    assert manifest["wall_time_s"] <= 150
    assert set(manifest["calibration_round_s"]) >= {"1"}
    scored = [r for r in manifest["runs"] if r["error"] is None]
    assert {r["run"] for r in scored} >= {"base", "base_s1"}
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest["files"])

    cli = subprocess.run(
        [sys.executable, "-m", "enlcn", "study", "import", str(out), "--root", str(root)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    study = root / "results" / "gpu-x2" / "study"
    assert (study / gpu.STUDY_FILE).exists()
    for r in scored:
        assert (study / r["run"] / "scores.csv").exists() and (study / r["run"] / "summary.json").exists()
    # a second import refuses before writing anything
    again = subprocess.run(
        [sys.executable, "-m", "enlcn", "study", "import", str(out), "--root", str(root)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 2 and "already imported" in again.stderr

    os.environ[gpu.TINY_ENV] = "1"
    try:
        from enlcn.findings import forest_table

        forest = forest_table("quick", root)
    finally:
        del os.environ[gpu.TINY_ENV]
    rows = forest[forest["setting"].str.startswith("gpu-x2")]
    if {"nla", "nla_s1"} <= {r["run"] for r in scored}:
        assert (rows["claim"] == "exact non-local attention beats EDSR").any()
    assert len(rows) or len({r["run"] for r in scored} - {"base", "base_s1", "base_s2"}) == 0
