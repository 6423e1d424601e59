"""The grid's CPU cost from measured step times (enlcn.study.cost)."""

import pandas as pd
import pytest

from enlcn.study.cost import bench_model, grid_cost, step_seconds
from enlcn.study.registry import ENLA_CL, ENLA_K, get_run


def test_runs_are_costed_by_the_bench_model_of_their_kind():
    assert bench_model(ENLA_K) == "edsr+enla"  # ENLCA modules without the contrastive loss
    assert bench_model(ENLA_CL) == "enlcn"  # with it
    assert bench_model(get_run("enlca_m16")) == "enlcn" and bench_model(get_run("nlsa_s1")) == "edsr+nlsa"


def test_grid_cost_is_steps_times_the_measured_step(tmp_path):
    csv = tmp_path / "cpu-pipeline.csv"
    models = ["edsr", "enlcn", "edsr+enla", "edsr+nla", "edsr+nlsa", "edsr+crisscross"]
    pd.DataFrame({"model": models, "train_step_ms": [100, 200, 120, 400, 900, 250]}).to_csv(csv, index=False)
    steps = step_seconds(csv)
    assert steps["edsr+nla"] == pytest.approx(0.4)
    cost = grid_cost("quick", steps, root=tmp_path)
    total = get_run("base").config("quick").total_steps
    assert len(cost) == 42 and (cost.steps == total).all() and cost["recorded CPU-h"].isna().all()
    by_run = cost.set_index("run")["estimated CPU-h"]
    assert by_run["base"] == pytest.approx(total * 0.1 / 3600)
    assert by_run["enla_k_s1"] == pytest.approx(total * 0.12 / 3600)
    assert by_run["nlsa_s2"] == pytest.approx(total * 0.9 / 3600)
