"""The README's example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    text = README.read_text()
    block = re.search(r"<!-- example: build_attention -->.*?```python\n(.*?)```", text, re.S)
    assert block, "README lost its build_attention example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 12
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([1, 64, 48, 48])" in out


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "make book" in text and "make test" in text


def test_readme_correlation_example_runs_on_the_committed_cpu_model(monkeypatch):
    """Runs once the cpu-profile ENLCN's weights are committed (results/cpu/study/enlca/weights.pt)."""
    import matplotlib

    matplotlib.use("Agg")
    from enlcn import study

    if not (study.result_dir("cpu", study.ENLCA) / "weights.pt").exists():
        pytest.skip("the cpu-profile ENLCN has not been trained yet (enlcn study --profile cpu)")
    text = README.read_text()
    block = re.search(r"<!-- example: correlation_maps -->.*?```python\n(.*?)```", text, re.S)
    assert block, "README lost its correlation-map example"
    namespace: dict = {}
    exec(compile(block.group(1), str(README), "exec"), namespace)
    assert namespace["lr"].shape[2] == 3 and namespace["model"].training is False
