"""The README's example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

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
