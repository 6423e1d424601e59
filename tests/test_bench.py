"""The benchmark runs end to end at a tiny size; no timing assertions."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from enlcn import bench


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "cpu.csv"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench.main(["--quick", "--in-process", "--out", str(out), "--device", "cpu"])
    return rc, out, buf.getvalue()


def test_quick_bench_writes_csv_with_every_operator(quick_run):
    rc, out, _ = quick_run
    assert rc == 0
    df = pd.read_csv(out)
    assert set(bench.CSV_COLUMNS) <= set(df.columns)
    ops = set(df.operator)
    assert set(bench.OPERATORS) <= ops
    assert {"contrastive-paper-topk", "contrastive-paper-sort"} <= ops
    main = df[df.operator.isin(bench.OPERATORS)]
    assert (main.status == "ok").all() and (main["size"] == 16).all()
    assert (main.time_ms > 0).all()
    contrastive = df[df.operator.str.startswith("contrastive")]
    assert contrastive.identical.astype(bool).all()


def test_quick_bench_prints_ratios_that_parse(quick_run):
    _, _, text = quick_run
    lines = [line for line in text.splitlines() if line.startswith("ratio ")]
    matches = [re.match(bench.RATIO_LINE, line) for line in lines]
    assert all(matches), lines
    names = [mt.group(1) for mt in matches]
    for prefix in (
        "enlca_m128_over_conv3x3",
        "nla_naive_over_enlca_m128",
        "nlsa_r4_over_enlca_m128",
        "enlca_m128_peak_mem",
        "contrastive_paper_sort_over_topk",
        "contrastive_paper_identical",
    ):
        assert any(n.startswith(prefix) for n in names), prefix
    for mt in matches:
        float(mt.group(2))
        assert mt.group(3) == "info" or re.fullmatch(r"(<=|>=|==) [0-9.]+", mt.group(3))


def test_provenance_json(quick_run):
    _, out, _ = quick_run
    meta = json.loads(out.with_suffix(".json").read_text())
    for key in ("torch", "threads", "cpu_model", "git_commit", "timestamp", "args", "ratios"):
        assert key in meta


def test_isolated_measurement_and_skip_rows():
    df = bench.run_bench(
        sizes=[12], operators=["conv3x3", "enlca-m16-fast"], repeats=1, warmup=0, device="cpu", isolate=True
    )
    assert list(df.status) == ["ok", "ok"] and (df.peak_mem_mb >= 0).all()
    skipped = bench.run_bench(sizes=[300], operators=["nla-naive"], device="cpu", nla_cap_gb=1.0)
    assert skipped.status.iloc[0].startswith("skipped: N² = ")


def test_unknown_operator_is_an_error():
    with pytest.raises(ValueError, match="unknown operator"):
        bench.run_bench(sizes=[8], operators=["bogus"])


def test_models_mode_writes_ratios(tmp_path, capsys):
    from enlcn.bench import main

    out = tmp_path / "cpu.csv"
    args = ["--models", "--preset", "quick", "--model-size", "16", "--global-size", "24", "--in-process"]
    assert main([*args, "--repeats", "1", "--warmup", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    matches = [re.match(bench.RATIO_LINE, line) for line in printed.splitlines() if line.startswith("ratio ")]
    values = {mt.group(1): float(mt.group(2)) for mt in matches}
    assert set(values) == {"enlcn_over_edsr_quick_x4@16", "enlcn_quick_x4_global_pass@24_peak_gb"}
    import pandas as pd

    table = pd.read_csv(tmp_path / "cpu-models.csv")
    assert list(table.operator) == ["model-edsr-quick-x4", "model-enlcn-quick-x4", "model-enlcn-quick-x4"]
    assert (table.status == "ok").all()
