"""The native kernels equal the Python paths at every instruction-set level this CPU runs (slow: each level's
four kernels are built, ~1 min each, and the kernels' tests run in a process forced to the level with
:func:`enlcn.attention.native.level_env`, which caps oneDNN, MKL and ATen at the level too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enlcn.attention import native

ROOT = Path(__file__).resolve().parents[1]

#: the test files that compare the four kernels with the Python paths (and the ENLCA kernel's exp with
#: torch.exp): enlca_cpu (test_native), contrastive_cpu, attention_cpu (test_blocked), enla_train_cpu
KERNEL_TESTS = (
    "tests/test_native.py",
    "tests/test_contrastive.py",
    "tests/test_blocked.py",
    "tests/test_enla_autograd.py",
)

#: what the process at a level reports: each kernel's isa() and status, and ATen's vector capability
REPORT = """
import json, torch
from enlcn.attention import native
kernels = {"inference": (native.load, native.status), "contrastive": (native.load_contrastive,
           native.contrastive_status), "attention": (native.load_attention, native.attention_status),
           "enla_train": (native.load_enla_train, native.enla_train_status)}
print(json.dumps({"level": native.isa_level(), "aten": torch.backends.cpu.get_cpu_capability(),
                  **{name: [load() and load().isa(), status()] for name, (load, status) in kernels.items()}}))
"""

#: ATen's capability under each level's cap (torch.backends.cpu.get_cpu_capability())
ATEN = {"avx512": "AVX512", "avx2": "AVX2", "generic": "DEFAULT"}

#: generous: building a level's four kernels on a loaded 2-core machine, then the tests
TIMEOUT = 3600


def _env(level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (native.ENV, *native.LIBRARY_CAPS["generic"])}
    return {**env, **native.level_env(level), "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
@pytest.mark.parametrize("level", list(native.LEVELS))
def test_kernels_equal_the_python_paths_at_each_level(level):
    if level not in native.supported_levels():
        pytest.skip(
            f"this CPU does not run {level} (it runs {' '.join(native.supported_levels()) or 'none'})"
        )
    env = _env(level)
    report = subprocess.run(
        [sys.executable, "-c", REPORT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert report.returncode == 0, report.stderr[-3000:]
    got = json.loads(report.stdout.strip().splitlines()[-1])
    assert got["level"] == level and got["aten"] == ATEN[level], got
    for name in ("inference", "contrastive", "attention", "enla_train"):
        isa, status = got[name]
        assert isa == level and status.startswith(f"native ({native.LABELS[level]}"), (name, got[name])
    # the kernels with block products say what runs them: oneDNN's brgemm where its effective instruction
    # set is AVX2 or above, else sgemm (the generic level's cap, SSE4.1: ATen's brgemm would fall back)
    for name in ("inference", "attention", "enla_train"):
        expected = "sgemm" if level == "generic" else "oneDNN brgemm"
        assert got[name][1].endswith(f", {expected})"), (name, got[name])
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *KERNEL_TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
    print(f"{level}: {summary}; {got}")
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
