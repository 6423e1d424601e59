"""The training studies: run definitions, resumable training into results/, and the comparison tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from enlcn import study
from enlcn.allocator import state as allocator_state
from enlcn.attention import native


def test_run_names_are_unique_and_shared_runs_are_the_same_object():
    by_name: dict[str, study.Run] = {}
    for runs in study.EXPERIMENTS.values():
        for run in runs:
            assert by_name.setdefault(run.name, run) == run, f"two different runs are called {run.name}"
    # the ENLCN of Table 2 is the k = 6 point of the k sweep (trained once)
    assert study.ENLCA in study.EXPERIMENTS["k"] and study.ENLCA in study.EXPERIMENTS["table2"]


def test_table2_runs_differ_in_exactly_the_ablated_option():
    cfg = {r.name: r.config("cpu") for r in study.EXPERIMENTS["table2"]}
    from enlcn.models.edsr import model_config

    opts = {n: model_config(c.model, c.scale, c.preset, attention=c.attention) for n, c in cfg.items()}
    assert opts["base"].attention_kind is None
    assert opts["enla"].attention_kind == "enla" and opts["enla"].attention_options.get("k", 1.0) == 1.0
    assert (
        opts["enla_k"].attention_options["k"] == 6.0
        and opts["enla_k"].attention_options["contrastive"] is False
    )
    assert opts["enla_cl"].attention_options["k"] == 1.0
    assert opts["enlca"].attention_kind == "enlca" and opts["enlca"].attention_options["k"] == 6.0


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(ValueError, match="known: table2"):
        study.get_experiment("table9")
    with pytest.raises(ValueError, match="enlca"):
        study.get_run("nope")


def test_quick_study_trains_writes_provenance_and_is_not_retrained(tmp_path):
    runs = (study.BASE, study.ENLCA)
    for run in runs:
        study.train_run("quick", run, root=tmp_path, progress=False)
    res = study.result_dir("quick", study.ENLCA, tmp_path)
    summary = json.loads((res / "summary.json").read_text())
    assert summary["steps"] == study.ENLCA.config("quick").total_steps
    assert summary["sessions"][0]["started_step"] == 0 and summary["wall_time_s"] > 0
    paths = summary["sessions"][0]["attention_paths"]
    ext = native.load_enla_train()  # the path it trained on: the native kernel where it builds
    trained = f"ENLA training kernel: {native.enla_train_status()}" if ext else "fused ENLA backward"
    assert paths["ENLCA"].startswith(f"{trained}; contrastive loss: ")
    assert 0 < summary["sessions"][0]["cpu_time_s"] and summary["sessions"][0]["threads"] >= 1
    assert summary["sessions"][0]["allocator"] in ("default", allocator_state())
    assert {"torch", "python"} <= set(summary["versions"]) and "cpu" in summary["hardware"]
    assert isinstance(summary["environment"]["matches_lock"], bool)  # and the lock's hash beside it
    assert len(summary["environment"]["lock_sha256"]) == 64
    assert (res / "weights.pt").exists()  # keep_weights
    assert (study.result_dir("quick", study.BASE, tmp_path) / "weights.pt").exists()  # every run keeps them
    scores = pd.read_csv(res / "scores.csv")
    assert set(scores.test_set) == {"photos", "selfsim", "selfsim_motifs"} and np.isfinite(scores.psnr).all()
    # the motif pixels are the hard part of the self-similar images (sharp edges, the rest is smooth)
    by_set = scores.groupby("test_set").psnr.mean()
    assert by_set["selfsim_motifs"] < by_set["selfsim"] - 3
    assert study.is_done("quick", study.ENLCA, tmp_path)
    # a changed config (here: another seed under the same name) is not "done"
    other = study.Run("enlca", "x", "enlcn", seed=5)
    assert not study.is_done("quick", other, tmp_path)

    # rescoring: results written before the motif test set existed get it, the rest must not change
    for run in runs:  # from results/…/weights.pt
        path = study.result_dir("quick", run, tmp_path) / "scores.csv"
        full = pd.read_csv(path)
        full[full.test_set != "selfsim_motifs"].to_csv(path, index=False)
        again = study.rescore("quick", run, tmp_path)
        pd.testing.assert_frame_equal(again.reset_index(drop=True), full, check_exact=False, atol=1e-9)
        rescored = study.load_summary("quick", run, tmp_path)["rescored"][-1]
        assert rescored["added_test_sets"] == ["selfsim_motifs"]
    # a score that the weights do not reproduce is an error, and nothing is written
    path = study.result_dir("quick", study.BASE, tmp_path) / "scores.csv"
    tampered = pd.read_csv(path)
    tampered.loc[0, "psnr"] += 0.1
    tampered.to_csv(path, index=False)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="changes its psnr"):
        study.rescore("quick", study.BASE, tmp_path)
    assert path.read_bytes() == before
    (study.run_dir("quick", study.BASE, tmp_path) / "checkpoints" / "latest.pt").unlink()
    (study.result_dir("quick", study.BASE, tmp_path) / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match="keeps no weights"):
        study.rescore("quick", study.BASE, tmp_path)


def test_an_interrupted_run_resumes_and_records_both_sessions(tmp_path):
    from enlcn.train import Trainer

    run = study.BASE
    cfg = run.config("quick")
    train, val, _ = study.study_data("quick", cfg.scale)
    Trainer(cfg, [(lr, hr) for _, lr, hr in train], val, study.run_dir("quick", run, tmp_path)).fit(
        stop_after=7, progress=False
    )
    study.train_run("quick", run, root=tmp_path, progress=False)
    summary = study.load_summary("quick", run, tmp_path)
    assert summary["steps"] == cfg.total_steps


def _scores(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for run, psnrs in values.items():
        for i, p in enumerate(psnrs):
            rows.append(
                {"run": run, "label": run, "test_set": "photos", "image": f"im{i}", "psnr": p, "ssim": 0.5}
            )
    return pd.DataFrame(rows)


def test_compare_gives_paired_gains_and_the_papers_numbers():
    scores = _scores({"base": [30.0, 20.0], "enlca": [30.5, 20.1]})
    table = study.compare(scores, "table2").set_index("run")
    assert table.loc["enlca", "photos PSNR"] == pytest.approx(25.3)
    assert table.loc["enlca", "photos Δ"] == pytest.approx(0.3)
    assert table.loc["enlca", "photos Δ s.e."] == pytest.approx(np.std([0.5, 0.1], ddof=1) / np.sqrt(2))
    assert table.loc["enlca", "paper Set5 ×4 PSNR"] == 32.48
    assert table.loc["enlca", "paper Δ"] == pytest.approx(0.27)


def test_seed_spread():
    scores = _scores({"base": [30.0, 20.0], "base_s1": [31.0, 21.0], "base_s2": [29.0, 19.0]})
    spread = study.seed_spread(scores).set_index("setting")
    assert spread.loc["base", "seeds"] == 3
    assert spread.loc["base", "std over seeds"] == pytest.approx(1.0)
    assert spread.loc["base", "range"] == pytest.approx(2.0)


def test_compare_and_spread_of_no_finished_runs_are_empty():
    empty = study.ensure("quick", "table2", train_missing=False, root=Path("/nonexistent"))
    assert empty.empty and study.compare(empty, "table2").empty and study.seed_spread(empty).empty


def test_paper_profile_uses_div2k_and_the_benchmarks_and_says_how_to_get_them(tmp_path):
    from enlcn.profiles import get_profile

    assert get_profile("paper").study_data.source == "standard"
    with pytest.raises(FileNotFoundError, match="enlcn data fetch DIV2K_train_HR"):
        study.standard_data(4, 10, root=tmp_path)
    # a minimal layout: one DIV2K train/valid image, one image per benchmark set
    from enlcn.data.datasets import BENCHMARKS
    from enlcn.data.images import save_rgb

    img = (np.random.default_rng(0).random((24, 28, 3)) * 255).astype(np.uint8)
    for folder in (
        "DIV2K/DIV2K_train_HR",
        "DIV2K/DIV2K_valid_HR",
        *(f"benchmark/{b}/HR" for b in BENCHMARKS),
    ):
        save_rgb(tmp_path / folder / "0001.png", img)
    train, val, tests = study.standard_data(4, 10, root=tmp_path)
    assert len(train) == len(val) == 1 and set(tests) == set(BENCHMARKS)
    name, lr, hr = tests["Set5"][0]
    assert hr.shape == (24, 28, 3) and lr.shape == (6, 7, 3)


def test_verdicts_weigh_each_gain_against_the_seed_noise():
    # base seeds: means 25, 26, 24 → σ = 1; noise bound 2·√2·1 ≈ 2.83
    scores = _scores(
        {
            "base": [25.0, 25.0],
            "base_s1": [26.0, 26.0],
            "base_s2": [24.0, 24.0],
            "enlca": [28.0, 28.0],  # +3.0: supported
            "enla": [26.0, 26.0],  # +1.0: within noise
            "nla": [31.5, 31.5],  # ENLCA − NLA = −3.5: contradicted
        }
    )
    v = study.verdicts(scores).set_index("claim")
    assert v.loc["ENLCN beats EDSR", "verdict"] == "supported"
    assert v.loc["ENLCN beats EDSR", "our Δ"] == pytest.approx(3.0)
    assert v.loc["ENLA beats EDSR", "verdict"] == "not resolved (within noise)"
    assert v.loc["ENLCA beats Non-Local", "verdict"] == "contradicted"
    assert v.loc["ENLCA beats NLSA", "verdict"] == "not run yet"
    no_seeds = study.verdicts(_scores({"base": [25.0], "enlca": [28.0]})).set_index("claim")
    assert no_seeds.loc["ENLCN beats EDSR", "verdict"].startswith("no noise estimate")


def test_paper_gains_come_from_the_papers_tables():
    assert study.paper_gain("table2", "enlca", "base")[0] == pytest.approx(0.27)
    assert study.paper_gain("table6", "enlca", "nlsa")[0] == pytest.approx(0.16)
    assert study.paper_gain(None, "enlca", "enlca_k2")[0] is None


def test_bicubic_floor_scores_every_test_image():
    scores = study.bicubic_scores("quick")
    assert set(scores.test_set) == {"photos", "selfsim", "selfsim_motifs"} and (scores.run == "bicubic").all()
    assert scores.psnr.between(10, 60).all()
    photos, _, _ = zip(*study.study_data("quick", 2)[2]["photos"], strict=True)
    assert list(scores[scores.test_set == "photos"].image) == list(photos)


def test_a_session_killed_hard_is_closed_with_an_estimated_time(tmp_path):
    import time

    latest = tmp_path / "latest.pt"
    latest.write_bytes(b"x")
    started = time.time() - 100
    os_mtime = started + 60
    import os

    os.utime(latest, (os_mtime, os_mtime))
    sessions = [{"commit": "abc", "started_step": 0, "started_unix": started}]
    study.close_killed_session(sessions, latest, resumed_step=300)
    assert sessions[0]["finished_step"] == 300 and sessions[0]["estimated"] is True
    assert sessions[0]["wall_time_s"] == pytest.approx(60, abs=0.5)
    closed = [dict(sessions[0])]
    study.close_killed_session(closed, latest, resumed_step=999)  # a closed entry is left alone
    assert closed[0] == sessions[0]


def test_pilot_profiles_make_dense_self_similar_data_with_motifs_in_every_patch():
    from enlcn import study

    train, val, tests = study.study_data("pilot-x2", 2)
    assert (len(train), len(val), len(tests["selfsim"])) == (40, 8, 32)
    assert train[-1][1].shape == (56, 56, 3) and train[-1][2].shape == (112, 112, 3)
    share = np.mean([m.mean() for m in study.study_masks("pilot-x2", 2)["selfsim"].values()])
    assert 0.18 < share < 0.30  # the Protocol's ~24 % motif pixels (the cpu profile: ~7 %)


def test_a_run_stays_done_when_trainconfig_gains_a_field_at_its_default(tmp_path):
    import dataclasses
    import json

    from enlcn import study

    run = study.BASE
    res = study.result_dir("quick", run, tmp_path)
    res.mkdir(parents=True)
    (res / "summary.json").write_text("{}")
    (res / "scores.csv").write_text("image,psnr\n")
    saved = dataclasses.asdict(run.config("quick"))
    saved.pop("paired_init")  # trained before the field existed
    (res / "config.json").write_text(json.dumps(saved))
    assert study.is_done("quick", run, tmp_path)
    saved["lr"] = 5e-4  # any other difference still means "not this run"
    (res / "config.json").write_text(json.dumps(saved))
    assert not study.is_done("quick", run, tmp_path)


def test_study_command_skips_runs_another_process_holds(monkeypatch, capsys):
    from enlcn.cli import main

    def locked(profile, run, root=None, progress=True):
        raise study.RunLocked(f"runs/{profile}/{run.name} is being trained by process 4242")

    monkeypatch.setattr(study, "is_done", lambda *a, **k: False)
    monkeypatch.setattr(study, "train_run", locked)
    assert main(["study", "--profile", "quick", "--runs", "base", "nla", "--skip-locked"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped, runs/quick/") == 2 and "process 4242" in out
    assert main(["study", "--profile", "quick", "--runs", "base"]) == 2  # without the flag: an error
    assert "is being trained by process 4242" in capsys.readouterr().err


def test_public_api_lists_runs_opens_models_and_draws_fresh_test_images():
    table = study.runs("cpu")
    assert {"run", "model", "attention", "seed", "scale", "done", "weights"} <= set(table.columns)
    assert table.run.is_unique and {"base", "enlca", "nla"} <= set(table.run)
    committed = table.set_index("run")
    assert committed.loc["enlca", "done"] and committed.loc["enlca", "weights"]  # committed cpu weights
    model = study.load_model("cpu", "enlca")
    assert not model.training and len(model.attention_modules()) == 5
    fixed, fresh = study.test_sets("quick"), study.test_sets("quick", seed=12345)
    assert [n for n, _, _ in fixed["photos"]] == [n for n, _, _ in fresh["photos"]]
    assert len(fresh["selfsim"]) == len(fixed["selfsim"])
    assert not np.array_equal(fresh["selfsim"][0][2], fixed["selfsim"][0][2])  # another draw
    assert np.array_equal(study.test_sets("quick", seed=12345)["selfsim"][0][2], fresh["selfsim"][0][2])


def test_verdicts_of_no_scores_keep_their_columns():
    """The ablations notebook pivots the verdicts by test set: before any run it must get an empty table."""
    empty = pd.DataFrame(columns=["run", "seed", "test_set", "image", "psnr", "ssim"])
    verdict = study.verdicts(empty)
    assert verdict.empty and {"claim", "test set", "verdict"} <= set(verdict.columns)
    assert verdict.pivot(index=["claim", "paper", "paper Δ"], columns="test set", values=["verdict"]).empty


def test_explorable_models_are_read_only_when_asked_for():
    models = study.explorable_models("cpu")  # the committed cpu weights
    assert "base" not in models and "EDSR (baseline)" not in models  # no attention, not explorable
    assert list(models)[:2] == ["ENLA (k = 1)", "ENLA, ×k"] and len(models) == len(list(models))
    assert "ENLA (k = 1)" in models and models.loaded == {}  # listing and `in` read no weights file
    enlcn = models["ENLA, ×k, contrastive (ENLCN)"]
    assert models["ENLA, ×k, contrastive (ENLCN)"] is enlcn and list(models.loaded) == [
        "ENLA, ×k, contrastive (ENLCN)"
    ]
    reference = study.load_model("cpu", "enlca").state_dict()
    assert not enlcn.training and all(torch.equal(v, reference[k]) for k, v in enlcn.state_dict().items())
    with pytest.raises(KeyError):
        models["EDSR (baseline)"]
