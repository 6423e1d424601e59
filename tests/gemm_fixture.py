"""Run a native kernel's products on oneDNN's brgemm or on sgemm for one test (the kernels' tests)."""

from __future__ import annotations

from types import ModuleType

import pytest


def with_gemm(request: pytest.FixtureRequest, ext: ModuleType | None, why_not: str, gemm: str) -> ModuleType:
    """``ext`` with its products on ``gemm`` (``"brgemm"`` or ``"sgemm"``) until the test ends; skips the
    test where the kernel (``why_not`` says why) or brgemm is unavailable."""
    if ext is None:
        pytest.skip(f"native kernel unavailable: {why_not}")
    if gemm == "sgemm":
        ext.allow_brgemm(False)
        request.addfinalizer(lambda: ext.allow_brgemm(True))
    elif not ext.uses_brgemm():
        pytest.skip("oneDNN brgemm is not usable on this machine")
    return ext
