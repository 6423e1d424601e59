"""The per-claim summary: rules applied to result files, and missing results named with their command."""

from __future__ import annotations

import json

import pandas as pd

from enlcn import findings


def _write(root, rel, frame):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def test_missing_results_say_which_command_makes_them(tmp_path):
    table = findings.findings("cpu", tmp_path)
    assert list(table.columns) == findings.COLUMNS
    missing = table[table.verdict.str.startswith("not measured yet")]
    assert any("ablation_k.ipynb" in v for v in missing.verdict)
    assert any("enlcn.bench --models" in v for v in missing.verdict)
    assert table[table.claim == "4"].verdict.iloc[0].startswith("not testable with this profile")


def test_variance_rule_counts_standard_errors(tmp_path):
    rows = []
    for k, mc, se in ((1.0, 0.21, 0.01), (6.0, 3.0, 0.5)):  # k=1: 1 s.e. off; k=6: 14 s.e. below Eq. 7
        rows += [
            {
                "k": k,
                "cos": 0.0,
                "method": "Eq. 7 (i.i.d.)",
                "rel_std": 0.22 if k == 1 else 10.0,
                "rel_std_se": None,
            },
            {"k": k, "cos": 0.0, "method": "Monte Carlo, i.i.d. (paper)", "rel_std": mc, "rel_std_se": se},
            {
                "k": k,
                "cos": 0.0,
                "method": "Monte Carlo, orthogonal (official)",
                "rel_std": 0.0,
                "rel_std_se": 1,
            },
        ]
    _write(tmp_path, "results/cpu/ablation_k/variance.csv", pd.DataFrame(rows))
    (row,) = findings.variance_rows("cpu", tmp_path)
    assert row["verdict"] == "partly: small k only"
    assert (
        "at k ∈ {1}" in row["ours"]
        and "not at k ∈ {6}" in row["ours"]
        and "100% of the points" in row["ours"]
    )


def test_approximation_rule_uses_m128_orthogonal(tmp_path):
    rows = [
        {"k": k, "m": m, "features": f, "tv_distance": tv, "tv_se": 0.0, "effective_positions": 1.0}
        for k, tv in ((1.0, 0.05), (6.0, 0.4))
        for m in (128, 256)
        for f in ("i.i.d. (paper)", "orthogonal (official)")
    ]
    rows[0]["tv_distance"] = 0.5  # i.i.d. at k = 1, m = 128: ignored
    _write(tmp_path, "results/cpu/ablation_k/attention_error.csv", pd.DataFrame(rows))
    (row,) = findings.approximation_rows("cpu", tmp_path)
    assert row["ours"] == "m = 128, orthogonal features: k = 1: TV 0.05, k = 6: TV 0.40"
    assert row["verdict"] == "close at k ∈ {1}, far at k ∈ {6}"


def test_bench_targets_become_met_or_not_met(tmp_path):
    meta = {
        "provenance": {
            "commit": "abc123",
            "hardware": {"cpu": "CPU A", "torch_threads": 2},
            "parameters": {"enlca_fast_path": "native (AVX-512)"},
        },
        "ratios": {
            "enlca_m128_over_conv3x3@150": {"value": 1.2, "target": "<= 1.0"},
            "enlca_m128_python_over_conv3x3@150": {"value": 2.2, "target": "info"},
            "enlca_m128_products_plus_exp_over_conv3x3@150": {"value": 0.9, "target": "info"},
            "nla_naive_over_enlca_m128@150": {"value": 240.0, "target": ">= 67"},
            "nla_sdpa_over_enlca_m128@150": {"value": 400.0, "target": "info"},
            "contrastive_official_identical@N=48^2": {"value": 1.0, "target": "== 1"},
        },
    }
    (tmp_path / "results" / "bench").mkdir(parents=True)
    (tmp_path / "results" / "bench" / "cpu.json").write_text(json.dumps(meta))
    other = {  # an earlier run on another CPU: quoted beside ours, never the verdict
        "provenance": {"commit": "def456", "hardware": {"cpu": "CPU B", "torch_threads": 2}},
        "ratios": {"enlca_m128_over_conv3x3@150": {"value": 0.8, "target": "<= 1.0"}},
    }
    (tmp_path / "results" / "bench" / "other-machines" / "b").mkdir(parents=True)
    (tmp_path / "results" / "bench" / "other-machines" / "b" / "cpu.json").write_text(json.dumps(other))
    rows = [r for r in findings.cost_rows(tmp_path) if "cpu.json" in r["source"]]
    assert [r["verdict"] for r in rows] == ["not met", "met"]  # info and identity checks are not claims
    assert rows[0]["ours"] == (
        "enlca_m128_over_conv3x3@150 = 1.2 (target <= 1.0) by the native (AVX-512) path; the Python fused"
        " path: 2.2; its BLAS products and exps alone: 0.9 on CPU A, 2 threads (earlier runs: 0.8 on"
        " CPU B, 2 threads, Python fused path)"
    )
    assert rows[1]["ours"] == "nla_naive_over_enlca_m128@150 = 240 (target >= 67) on CPU A, 2 threads"
    assert rows[0]["source"] == "results/bench/cpu.json @ abc123"


def test_psnr_verdicts_are_carried_per_claim(tmp_path):
    rows = [
        {
            "claim": "ENLCN beats EDSR",
            "paper": "paper Table 2, Set5 ×4",
            "paper Δ": 0.27,
            "test set": s,
            "our Δ": d,
            "noise (2·√2·σ)": 0.05,
            "verdict": v,
        }
        for s, d, v in (("photos", 0.1, "supported"), ("selfsim", 0.01, "not resolved (within noise)"))
    ]
    _write(tmp_path, "results/cpu/ablations/verdicts.csv", pd.DataFrame(rows))
    (row,) = findings.psnr_rows("cpu", tmp_path)
    assert row["paper"] == "paper Table 2, Set5 ×4: +0.27 dB"
    assert row["ours"] == "photos: +0.100 dB (noise ±0.050); selfsim: +0.010 dB (noise ±0.050)"
    assert row["verdict"] == "photos: supported; selfsim: not resolved (within noise)"


def test_the_committed_cpu_results_give_a_complete_table():
    table = findings.findings("cpu")
    assert set(table.claim) == {"1", "2", "3", "4"}
    assert not table.isna().any().any()


def _precision(tmp_path, ratios):
    rows = [
        {"model": model, "map": m, "mass / uniform": r}
        for model, by_map in ratios.items()
        for m, r in by_map.items()
    ]
    _write(tmp_path, "results/cpu/correlation_maps/precision_summary.csv", pd.DataFrame(rows))


def test_attention_rule_reads_enlcn_and_compares_it_with_enla(tmp_path):
    _precision(
        tmp_path,
        {
            findings.ENLA_LABEL: {"exact": 1.05, "estimate": 1.1},
            findings.ENLCN_LABEL: {"exact": 2.8, "estimate": 2.2},
        },
    )
    (row,) = findings.attention_rows("cpu", tmp_path)
    assert row["ours"] == (
        "mass on true repeats / uniform mass — ENLA (k = 1): exact map 1.1×, estimate map 1.1×; "
        "ENLA, ×k, contrastive (ENLCN): exact map 2.8×, estimate map 2.2×"
    )
    assert row["verdict"] == "attention prefers the repeats; more focused than ENLA (k = 1)"
    # ENLA alone: the subject of the claim is missing, so no verdict on it
    _precision(tmp_path, {findings.ENLA_LABEL: {"exact": 3.0, "estimate": 3.0}})
    (row,) = findings.attention_rows("cpu", tmp_path)
    assert row["verdict"] == "not run yet (the ENLCN model)"
    _precision(
        tmp_path,
        {
            findings.ENLA_LABEL: {"exact": 3.0, "estimate": 1.0},
            findings.ENLCN_LABEL: {"exact": 2.0, "estimate": 0.9},
        },
    )
    (row,) = findings.attention_rows("cpu", tmp_path)
    assert row["verdict"] == "no preference for the repeats; not more focused than ENLA (k = 1)"


def test_attention_use_row_reports_the_psnr_change_without_attention(tmp_path):
    _precision(tmp_path, {findings.ENLCN_LABEL: {"exact": 2.8, "estimate": 2.2}})
    use = pd.DataFrame(
        [
            {
                "model": "M",
                "Δ photos (dB)": -0.0284,
                "Δ selfsim (dB)": 0.0025,
                "share 0": 0.071,
                "share 1": 0.093,
            }
        ]
    )
    _write(tmp_path, "results/cpu/correlation_maps/attention_use.csv", use)
    _, row = findings.attention_rows("cpu", tmp_path)
    assert row["ours"] == "M: photos -0.028 dB, selfsim +0.003 dB; each module changes its input by 7%–9%"
    assert row["source"] == "results/cpu/correlation_maps/attention_use.csv"


def _pilot_means(deltas):
    """Seed means of EDSR and EDSR + NLA on every test set, NLA − EDSR = ``deltas`` by seed."""
    rows = []
    for seed, d in enumerate(deltas):
        for test_set, base in (("photos", 30.0), ("selfsim", 25.0), ("selfsim_motifs", 20.0)):
            rows += [
                {
                    "arm": "base",
                    "seed": seed,
                    "run": f"base_s{seed}",
                    "test_set": test_set,
                    "psnr": base + seed,
                },
                {
                    "arm": "nla",
                    "seed": seed,
                    "run": f"nla_s{seed}",
                    "test_set": test_set,
                    "psnr": base + seed + d,
                },
            ]
    return pd.DataFrame(rows)


def test_the_positive_control_gets_a_paired_interval_and_the_papers_delta(tmp_path, monkeypatch):
    from enlcn.study import pilot

    means = {"pilot-x2": _pilot_means([0.30, 0.31, 0.32]), "pilot-x4": _pilot_means([0.01, -0.02, 0.01])}
    monkeypatch.setattr(pilot, "pilot_means", lambda setting, root: means.get(setting, pd.DataFrame()))
    forest = findings.forest_table("cpu", tmp_path)
    assert list(forest.setting.unique()) == ["pilot-x2", "pilot-x4"]
    x2 = forest[(forest.setting == "pilot-x2") & (forest["test set"] == "selfsim")].iloc[0]
    half = 4.302653 * 0.01 / 3**0.5  # t(0.975, 2) · sd / √n
    assert abs(x2["Δ"] - 0.31) < 1e-9 and abs(x2["high"] - x2["Δ"] - half) < 1e-5
    assert x2["verdict"] == "supported" and x2["paper Δ"] == 0.23
    x4 = forest[forest.setting == "pilot-x4"]
    assert set(x4.verdict) == {"not resolved"} and (x4["low"] < 0).all() and (x4["high"] > 0).all()
    rows = findings.positive_control_rows("cpu", tmp_path)
    assert [r["verdict"] for r in rows] == ["supported", "not resolved"]
    assert rows[0]["paper"] == "paper Table 6, Urban100 ×4: +0.23 dB"
    assert rows[0]["ours"].startswith("photos: +0.310 dB [+0.285, +0.335]")


def test_the_first_study_enters_the_forest_as_a_noise_band(tmp_path):
    rows = [
        {
            "claim": "ENLA beats EDSR",
            "paper": "paper Table 2, Set5 ×4",
            "paper Δ": 0.16,
            "test set": "selfsim",
            "our Δ": -0.03,
            "noise (2·√2·σ)": 0.04,
            "verdict": "not resolved (within noise)",
        }
    ]
    _write(tmp_path, "results/cpu/ablations/verdicts.csv", pd.DataFrame(rows))
    (row,) = findings.forest_table("cpu", tmp_path).to_dict("records")
    assert abs(row["low"] + 0.07) < 1e-12 and abs(row["high"] - 0.01) < 1e-12
    assert row["interval"].startswith("± noise band")


def test_protocol_row_says_where_the_pilot_stands(monkeypatch, tmp_path):
    from enlcn.study import pilot

    (row,) = findings.protocol_rows("cpu", tmp_path)  # nothing trained: the pilot has not decided
    assert row["verdict"] == "pending (pilot)" and row["claim"] == "3"
    assert findings.protocol_rows("quick", tmp_path) == []  # only the cpu study has a pilot
    table = pd.DataFrame(
        [
            {
                "candidate": "pilot-x2-long",
                "(a) met": True,
                "NLA − EDSR, selfsim": 0.08,
                "95 % CI, selfsim": (-0.5, 0.66),
                "t, selfsim": 0.69,
                "NLA − EDSR, selfsim_motifs": 0.07,
                "95 % CI, selfsim_motifs": (-0.4, 0.54),
                "t, selfsim_motifs": 0.7,
            }
        ]
    )
    monkeypatch.setattr(pilot, "decision_table", lambda settings, root: table)
    monkeypatch.setattr(pilot, "outcome", lambda t: ("failed", "pilot-x2-long"))
    (row,) = findings.protocol_rows("cpu", tmp_path)
    assert row["verdict"].startswith("not testable here")
    assert "selfsim: +0.080 dB [-0.500, +0.660], t = 0.69" in row["ours"] and "(a) yes" in row["ours"]
    monkeypatch.setattr(pilot, "outcome", lambda t: ("chosen", "pilot-x2"))
    (row,) = findings.protocol_rows("cpu", tmp_path)
    assert row["verdict"] == "pending (grid training)" and "pilot-x2 chosen" in row["ours"]
