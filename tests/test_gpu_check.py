"""The prepared GPU check runs here too: it skips loudly without CUDA and its every step runs on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from enlcn import gpu_check

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@no_cuda
def test_without_cuda_it_says_what_it_would_measure(capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "g.json")]) == 0
    out = capsys.readouterr().out
    assert "no CUDA device" in out and "Table 5" in out and not (tmp_path / "g.json").exists()
    assert gpu_check.main(["--require-cuda"]) == 1
    assert "--require-cuda given" in capsys.readouterr().err


def test_every_step_runs_in_a_cpu_dry_run(tmp_path):
    out = tmp_path / "g.json"
    assert gpu_check.main(["--cpu-dry-run", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    assert result["all_checks_pass"] and result["dry_run"]
    assert {r["kind"] for r in result["equality"]} == set(gpu_check.KINDS)
    assert all(v["finite"] and v["steps"] == 3 for v in result["training_paths"].values())
    for size in ("16", "24"):
        assert result["table5"][size]["nla_over_enlca"] > 0
    assert result["enlcn_over_edsr"] > 0
    assert result["throughput"]["enlcn"]["steps_per_s"] > 0
    paper = gpu_check.PAPER_TABLE5
    assert paper["nla"][150] / paper["enlca-m128"][150] == pytest.approx(67, rel=0.01)
