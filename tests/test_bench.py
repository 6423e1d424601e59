"""The benchmark runs end to end at a tiny size; no timing assertions."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
import torch

from enlcn import bench
from enlcn.attention import native
from enlcn.provenance import cpu_model


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
    # the ≤ 1.0 target comes from the interleaved rounds, the separate-process ratio is info
    values = {mt.group(1): (float(mt.group(2)), mt.group(3)) for mt in matches}
    paired = pd.read_csv(quick_run[1].with_name("cpu-paired.csv"))
    assert len(paired) == 5 * 20
    assert set(paired.operator) == {
        "conv3x3",
        "enlca-m128-fast",
        bench.PYTHON_OPERATOR,
        *bench.FLOOR_OPERATORS,
    }
    python = values["enlca_m128_python_over_conv3x3@16"]
    assert python[1] == "info"
    assert python[0] == pytest.approx(bench.paired_ratio(paired, bench.PYTHON_OPERATOR, "conv3x3"), rel=1e-3)
    value, target = values["enlca_m128_over_conv3x3@16"]
    assert target == "<= 1.0"
    assert value == pytest.approx(bench.paired_ratio(paired, "enlca-m128-fast", "conv3x3"), rel=1e-3)
    assert values["enlca_m128_over_conv3x3@16_separate_processes"][1] == "info"
    floor = values["enlca_m128_products_plus_exp_over_conv3x3@16"]
    assert floor[1] == "info"
    assert floor[0] == pytest.approx(
        bench.paired_ratio(paired, "enlca-m128-products+exp", "conv3x3"), rel=1e-3
    )


def test_provenance_json(quick_run):
    _, out, _ = quick_run
    meta = json.loads(out.with_suffix(".json").read_text())
    assert set(meta) == {"provenance", "ratios"}
    prov = meta["provenance"]
    assert prov["notebook"] == "enlcn.bench" and prov["profile"] is None and prov["wall_time_s"] >= 0
    assert prov["parameters"]["quick"] and prov["parameters"]["sizes"] == list(bench.QUICK_SIZES)
    assert prov["versions"]["torch"] and prov["commit"] and prov["started"]
    assert {"cpu", "cores", "torch_threads", "device", "load_average_1_5_15min"} <= set(prov["hardware"])
    assert prov["hardware"]["device"] == "cpu"
    assert prov["parameters"]["enlca_fast_path"] == native.status()  # which ENLCA path was timed
    assert all(set(r) == {"value", "target"} for r in meta["ratios"].values())
    read_meta, table = bench.read_results(out.with_suffix(".json"))
    assert read_meta == meta and len(table) > 0


def test_old_layout_is_an_error_naming_the_command(tmp_path):
    old = {"torch": "2", "threads": 2, "cpu_model": "x", "git_commit": "abc", "timestamp": "t", "ratios": {}}
    for stem, mode in (("cpu", ""), ("cpu-models", " --models"), ("gpu-pipeline", " --pipeline")):
        command = f"`python -m enlcn.bench{mode}`"
        (tmp_path / f"{stem}.json").write_text(json.dumps(old))
        with pytest.raises(ValueError, match=re.escape(command)):
            bench.read_results(tmp_path / f"{stem}.json")


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
    assert main([*args, "--repeats", "2", "--warmup", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    matches = [re.match(bench.RATIO_LINE, line) for line in printed.splitlines() if line.startswith("ratio ")]
    values = {mt.group(1): float(mt.group(2)) for mt in matches}
    assert set(values) == {
        "enlcn_over_edsr_quick_x4@16",
        "enlcn_over_edsr_quick_x4@16_separate_processes",
        "enlcn_quick_x4_global_pass@24_peak_gb",
    }
    import pandas as pd

    meta, table = bench.read_results(tmp_path / "cpu-models.json")
    assert bench.enlca_fast_path(meta) == native.status()
    assert list(table.operator) == ["model-edsr-quick-x4", "model-enlcn-quick-x4", "model-enlcn-quick-x4"]
    assert (table.status == "ok").all()
    paired = pd.read_csv(tmp_path / "cpu-models-paired.csv")
    edsr, enlcn = "model-edsr-quick-x4", "model-enlcn-quick-x4"
    assert list(paired.operator) == [edsr, enlcn, enlcn, edsr]  # the order alternates between rounds
    assert values["enlcn_over_edsr_quick_x4@16"] == pytest.approx(
        bench.paired_ratio(paired, enlcn, edsr), rel=1e-3
    )


def test_paired_ratio_is_the_median_of_per_round_ratios():
    import pandas as pd

    times = {"a": [10.0, 20.0, 30.0], "b": [11.0, 20.0, 36.0]}  # per-round ratios 1.1, 1.0, 1.2
    paired = pd.DataFrame(
        [{"round": r, "operator": op, "time_ms": t[r]} for op, t in times.items() for r in range(3)]
    )
    assert bench.paired_ratio(paired, "b", "a") == pytest.approx(1.1)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "cpu.csv"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench.main(["--pipeline", "--quick", "--in-process", "--out", str(out), "--device", "cpu"])
    return rc, out.with_name("cpu-pipeline.csv"), buf.getvalue()


def test_pipeline_writes_a_row_per_model(pipeline_run):
    rc, csv, text = pipeline_run
    assert rc == 0
    df = pd.read_csv(csv)
    assert list(df.columns) == [*bench.PIPELINE_COLUMNS, *bench.MACHINE_COLUMNS]
    assert (df.isa == native.isa_level()).all() and (df.cpu == cpu_model()).all()
    # the CPU's best level unless ENLCN_ISA (as in an emulated CI run) chose a lower one
    best = (native.supported_levels() or (None,))[0]
    assert (df.isa_emulated == (native.isa_level() != best)).all()
    assert list(df.model) == list(bench.PIPELINE_MODELS)
    assert (df.train_status == "ok").all() and (df.infer_status == "ok").all()
    assert (df.profile == "quick").all() and (df.preset == "quick").all()
    for col in ("params", "train_step_ms", "train_repeats", "infer_ms", "images_per_s"):
        assert (df[col] > 0).all(), col
    assert (df.train_peak_mem_mb >= 0).all() and (df.infer_peak_mem_mb >= 0).all()
    # the printed table: a header with the columns, then one line per model with positive numbers
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["model", "params"])
    for model, line in zip(bench.PIPELINE_MODELS, lines[header + 1 :], strict=False):
        fields = line.split()
        assert fields[0] == model and fields[-2:] == ["ok", "ok"]
        assert all(float(v) >= 0 for v in fields[1:-2]) and float(fields[2]) > 0


def test_pipeline_json_has_the_shared_provenance(pipeline_run):
    _, csv, text = pipeline_run
    meta, table = bench.read_results(csv.with_suffix(".json"))
    prov = meta["provenance"]
    assert prov["notebook"] == "enlcn.bench" and prov["profile"] == "quick"
    assert prov["parameters"]["pipeline"] and prov["parameters"]["model_size"] == bench.QUICK_SIZES[0]
    assert bench.enlca_fast_path(meta) == native.status()  # every mode records the path it timed
    assert bench.enlca_fast_path({"provenance": {"parameters": {}}}) == bench.PRE_NATIVE_PATH
    assert len(table) == len(bench.PIPELINE_MODELS)
    printed = {m.group(1) for m in (re.match(bench.RATIO_LINE, line) for line in text.splitlines()) if m}
    assert printed == set(meta["ratios"]) and "enlcn_over_edsr_train_step" in printed


def test_training_step_measured_in_a_fresh_process():
    spec = dict(model="enlcn", profile="quick", repeats=1, warmup=0, threads=1, device="cpu")
    row = bench.run_worker("train", **spec)
    assert row["train_status"] == "ok" and row["train_step_ms"] > 0 and row["train_peak_mem_mb"] > 0


def test_pipeline_reports_issue_14_targets_from_interleaved_rounds(pipeline_run):
    _, csv, _ = pipeline_run
    meta, _ = bench.read_results(csv.with_suffix(".json"))
    r = meta["ratios"]
    assert r["enlcn_over_edsr_train_step_interleaved"]["target"] == "<= 1.30"
    assert r["edsr_nla_over_edsr_train_step_interleaved"]["target"] == "<= 1.8"
    assert r["contrastive_loss_reference_over_default_fwd_bwd_5_modules"]["target"] == ">= 3"
    assert r["enlcn_over_edsr_train_peak_mem"]["value"] > 0
    paired = pd.read_csv(csv.with_name("cpu-pipeline-paired.csv"))
    assert set(bench.PIPELINE_MODELS) <= set(paired.operator)
    assert {"contrastive-reference", "contrastive-default"} <= set(paired.operator)
    # every round times every model once: a ratio is a median of per-round ratios
    assert paired.groupby("round").operator.nunique().min() >= 2


def test_explore_mode_times_three_kinds_of_update(tmp_path, capsys):
    assert bench.main(["--explore", "--quick", "--out", str(tmp_path / "cpu.csv")]) == 0
    meta, table = bench.read_results(tmp_path / "cpu-explore.json")
    assert len(table) == 3 and (table.median_s > 0).all()
    ((name, ratio),) = meta["ratios"].items()
    assert name == f"explore_update_s@{bench.QUICK_SIZES[0]}" and ratio["target"] == "<= 1.0"
    assert ratio["value"] == pytest.approx(table.median_s.max())


def test_achieved_rate_is_undefined_when_the_step_adds_no_time():
    assert bench.achieved_gflops(2.0, 110.0, 100.0) == pytest.approx(200.0)  # 2 GFLOP in 10 ms
    assert math.isnan(bench.achieved_gflops(2.0, 99.0, 100.0))
    assert math.isnan(bench.achieved_gflops(2.0, 100.0, 100.0))


def test_attention_floors_count_the_blocked_paths_products(pipeline_run):
    # quick: 5 NLA modules, 16 features (d = 8, d_v = 16), batch 4 of 24² patches
    n = 24 * 24
    assert bench.nla_step_gflop("quick") == pytest.approx(5 * 4 * 2 * n * n * (4 * 8 + 3 * 16) / 1e9)
    # NLSA: 4 hash rounds of ⌈576 / 144⌉ = 4 chunks, each 144 queries against 432 keys; c = 4, C = 16
    per_image_module_round = 2 * 4 * 144 * 432 * (4 * 4 + 3 * 16)
    assert bench.nlsa_step_gflop("quick") == pytest.approx(5 * 4 * 4 * per_image_module_round / 1e9)
    # ENLA: C = 16, c = 4, m = 16: embedding 3·C(2c + C), products 6mC, features 4cm, per 2N
    m = 16
    assert bench.enla_step_gflop("quick") == pytest.approx(
        5 * 4 * 2 * n * (3 * 16 * (2 * 4 + 16) + 6 * m * 16 + 4 * 4 * m) / 1e9
    )
    _, csv, _ = pipeline_run
    r = bench.read_results(csv.with_suffix(".json"))[0]["ratios"]
    assert r["enla_attention_gflop_per_step"]["value"] == pytest.approx(bench.enla_step_gflop("quick"))
    assert r["nla_attention_gflop_per_step"]["value"] == pytest.approx(bench.nla_step_gflop("quick"))
    assert r["nlsa_attention_gflop_per_step"]["value"] == pytest.approx(bench.nlsa_step_gflop("quick"))
    assert r["sgemm_gflops"]["value"] > 0
    assert 1.0 < r["edsr_nla_over_edsr_train_step_floor_at_product_rate"]["value"]
    assert 1.0 < r["edsr_nlsa_over_edsr_train_step_floor_at_product_rate"]["value"]
    if native.load_attention() is not None:  # the floor's rate is the faster of the two
        assert r["native_kernel_gflops"]["value"] > 0


def test_interleaved_measurements_warm_the_allocator_first(monkeypatch):
    # a cold allocator page-faults every step's large blocks back, a constant that pulls ratios to 1
    calls = []
    for module in (bench.pipeline, bench.operators):  # where paired_train_steps / paired_times look it up
        monkeypatch.setattr(module, "warm_allocator", lambda: calls.append("warm") or True)
    steps = bench.paired_train_steps(["edsr"], "quick", 1, 0, 1, "cpu")
    assert calls == ["warm"] and list(steps.operator) == ["edsr"]
    bench.paired_times(["conv3x3"], 8, 1, 0, 1, "cpu")
    assert calls == ["warm", "warm"]


def test_training_steps_run_channels_last_when_asked(monkeypatch):
    monkeypatch.setenv(bench.CHANNELS_LAST_ENV, "1")
    step, _ = bench.build_train_step("edsr+enla", "quick", "cpu")
    tensors = [c.cell_contents for c in step.__closure__ if isinstance(c.cell_contents, torch.Tensor)]
    assert len(tensors) == 2 and all(t.is_contiguous(memory_format=torch.channels_last) for t in tensors)
    step()  # the model and the loss run in that layout
    assert bench.CHANNELS_LAST_ENV in bench.PATH_SWITCHES  # recorded in the run's parameters when set


#: enlcn.bench's modules, each importing only modules before it (machine and timing: none of them)
BENCH_MODULES = ("machine", "timing", "report", "operators", "contrastive", "networks", "roofline")
BENCH_MODULES += ("pipeline", "explorer", "cli")


def _bench_files() -> dict:
    from pathlib import Path

    return {f.stem: f.read_text() for f in sorted(Path(bench.__file__).parent.glob("*.py"))}


def test_no_bench_module_is_over_400_lines():
    sizes = {name: len(text.splitlines()) for name, text in _bench_files().items()}
    assert set(sizes) == {*BENCH_MODULES, "__init__", "__main__"}
    assert max(sizes.values()) <= 400, sizes


def test_bench_modules_import_only_the_ones_before_them():
    # relative imports at the top or inside a function: no import cycle within enlcn.bench
    import ast

    for name, text in _bench_files().items():
        if name.startswith("__"):
            continue
        siblings = {
            node.module
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        allowed = set(BENCH_MODULES[: BENCH_MODULES.index(name)])
        assert siblings <= allowed, f"{name} imports {siblings - allowed}"


@pytest.mark.parametrize("module", ["machine", "timing", "__main__"])  # the layers below, and the entry
def test_each_bench_module_imports_alone(module):
    import subprocess
    import sys

    cmd = [sys.executable, "-c", f"import enlcn.bench.{module}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_library_caps_only_below_the_cpus_best_level(monkeypatch):
    v3 = " ".join(native.LEVELS["avx2"][1])
    monkeypatch.setattr(native, "_cpu_flags", lambda: v3 + " " + " ".join(native.LEVELS["avx512"][1]))
    assert bench.library_caps("avx512") == {} and bench.library_caps(None) == {}
    assert bench.library_caps("avx2") == {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    }
    monkeypatch.setattr(native, "_cpu_flags", lambda: v3)  # an AVX2-only CPU: avx2 is its own level
    assert bench.library_caps("avx2") == {}
    assert bench.library_caps("generic")["ATEN_CPU_CAPABILITY"] == "default"


@pytest.mark.slow  # a whole --pipeline --quick run in a fresh process (~20 s quiet, minutes under load)
@pytest.mark.skipif(len(native.supported_levels()) < 2, reason="no level below this CPU's best (not x86-64)")
def test_a_lower_level_is_measured_with_the_libraries_capped_too(tmp_path):
    """``ENLCN_ISA`` below the CPU's best: the run starts again with MKL, oneDNN and ATen capped at that
    level, and its record and every CSV row say so (ATen's own report of its dispatch level included)."""
    import os
    import subprocess
    import sys

    level = native.supported_levels()[1]
    out = tmp_path / "cpu.csv"
    env = {**os.environ, native.ISA_ENV: level, native.ENV: "0"}  # ENLCN_NATIVE=0: no kernel builds here
    cmd = [sys.executable, "-m", "enlcn.bench", "--pipeline", "--quick", "--in-process", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("enlcn bench: restricting MKL, oneDNN and ATen as well: ")
    meta, df = bench.read_results(tmp_path / "cpu-pipeline.json")
    machine = meta["provenance"]["parameters"]["machine"]
    assert machine["isa"] == level and machine["isa_emulated"] is True
    assert machine["library_caps"] == native.LIBRARY_CAPS[level]
    assert machine["aten_capability"] == {"avx2": "AVX2", "generic": "DEFAULT"}[level]
    assert (df.isa == level).all() and df.isa_emulated.all()


def _class_run(folder, isa, emulated, ratios):
    folder.mkdir(parents=True)
    machine = {
        "isa": isa,
        "isa_emulated": emulated,
        "aten_capability": isa.upper(),
        "library_caps": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"} if emulated else {},
        "kernel_paths": {"enla_training": f"native ({isa})", "contrastive": f"native ({isa})"},
    }
    prov = {
        "parameters": {"machine": machine},
        "hardware": {"cpu": "Some CPU", "load_average_1_5_15min": [0.1, 0.2, 0.3]},
        "started": "2026-12-06T07:00:00+00:00",
        "commit": "abc",
    }
    meta = {"provenance": prov, "ratios": {k: {"value": v, "target": t} for k, (v, t) in ratios.items()}}
    (folder / "cpu-pipeline.json").write_text(json.dumps(meta))
    pd.DataFrame({"model": ["edsr"]}).to_csv(folder / "cpu-pipeline.csv", index=False)


def test_the_classes_side_by_side(tmp_path):
    classes = tmp_path / "classes"
    _class_run(
        classes / "avx512", "avx512", False, {"enlcn": (1.14, "<= 1.30"), "sgemm_gflops": (271.0, "info")}
    )
    _class_run(classes / "avx2-emulated", "avx2", True, {"enlcn": (1.41, "<= 1.30"), "other": (2.0, "info")})
    runs = bench.class_runs(tmp_path)
    assert list(runs) == ["avx2-emulated", "avx512"]
    table = bench.classes_ratios(runs).set_index("ratio")
    assert list(table.index) == ["enlcn", "sgemm_gflops"]  # target ratios and the roofline, not other info
    assert table.loc["enlcn", "avx512"] == 1.14 and table.loc["enlcn", "avx512 verdict"] == "met"
    assert (
        table.loc["enlcn", "avx2-emulated verdict"] == "not met" and table.loc["enlcn", "target"] == "<= 1.30"
    )
    assert math.isnan(table.loc["sgemm_gflops", "avx2-emulated"])  # that run did not measure it
    machines = bench.classes_machines(runs).set_index("class")
    assert machines.loc["avx2-emulated", "library caps"] == "MKL_ENABLE_INSTRUCTIONS=AVX2"
    assert machines.loc["avx512", "library caps"] == "none"
    _class_run(classes / "avx2", "avx2", True, {})  # an emulated run filed as a real AVX2 machine's
    with pytest.raises(
        ValueError, match=r"avx2/cpu-pipeline.json: a run of class 'avx2-emulated' in folder 'avx2'"
    ):
        bench.class_runs(tmp_path)
