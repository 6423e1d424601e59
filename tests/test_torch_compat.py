"""tools/torch_compat.py, the static torch-API check, against a tiny fake "old torch" source tree (no wheel).

The reference tree is the running torch's own sources, so a name or keyword is *missing* only where the
running torch has it and the fake tree does not: the planted absences below are such names.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "torch_compat.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("torch_compat", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["torch_compat"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tc = _load_tool()

#: the fake old torch: torch.bmm (stub), F.pad (through _add_docstr), F.interpolate without `antialias`,
#: nn.Conv2d without `padding_mode`, Tensor with contiguous/to (stub) and backward; no einsum, no Tensor.float
OLD_TORCH = {
    "torch/__init__.py": """
        from torch._C import *
        from torch._C._VariableFunctions import *
        from torch._tensor import Tensor
        from torch import nn
    """,
    "torch/version.py": "__version__ = '2.11.0-fake'",
    "torch/_C/__init__.pyi": """
        from typing import overload
        class dtype: ...
        class memory_format: ...
        float32: dtype = ...
        contiguous_format: memory_format = ...
        class TensorBase:
            def contiguous(self, memory_format: memory_format = ...) -> Tensor: ...
            @overload
            def to(self, dtype: dtype, non_blocking: bool = False) -> Tensor: ...
            @overload
            def to(self, device=None, dtype=None, non_blocking: bool = False) -> Tensor: ...
    """,
    "torch/_C/_VariableFunctions.pyi": "def bmm(input, mat2, *, out=None): ...",
    "torch/_C/_nn.pyi": "def pad(input, pad, mode: str = ..., value=None): ...",
    "torch/_tensor.py": """
        import torch
        class Tensor(torch._C.TensorBase):
            def backward(self, gradient=None, retain_graph=None): ...
            def split(self, split_size, dim=0): ...
    """,
    "torch/nn/__init__.py": "from .modules import *\nfrom . import functional",
    "torch/nn/modules/__init__.py": """
        from .module import Module
        from .conv import Conv2d
        __all__ = ["Module", "Conv2d"]
    """,
    "torch/nn/modules/module.py": """
        class Module:
            def to(self, *args, **kwargs): ...
    """,
    "torch/nn/modules/conv.py": """
        from .module import Module
        class _ConvNd(Module):
            def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0): ...
        class Conv2d(_ConvNd):
            pass
    """,
    "torch/nn/functional.py": """
        import torch
        from torch._C import _add_docstr
        pad = _add_docstr(torch._C._nn.pad, r"doc")
        def interpolate(input, size=None, scale_factor=None, mode="nearest"): ...
    """,
}

#: uses of the fake's present names only (no method any other receiver class has)
USES_OK = """
    import torch
    from torch import nn

    def forward(x, w, out):
        import torch.nn.functional as F
        y = torch.bmm(x, w, out=out).contiguous(memory_format=torch.contiguous_format)
        y = F.pad(y, (1, 1), mode="reflect")
        conv = nn.Conv2d(3, 3, 3, padding=1)
        return F.interpolate(conv(y), scale_factor=2).to(torch.float32, non_blocking=True)
"""

#: and the planted absences: a function, a method, two keywords; plus a dynamic getattr
USES_BAD = """
    import torch
    import torch.nn.functional as F
    from torch import nn

    def forward(x, name):
        y = torch.einsum("ij->ji", x).float()
        y = F.interpolate(y, scale_factor=2, antialias=True)
        nn.Conv2d(3, 3, 3, padding_mode="reflect")
        "a b".split(" ", maxsplit=1)  # str.split: a keyword Tensor.split does not take in 2.13 either
        return getattr(torch, name)(y)
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture
def old_root(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    _write(root, OLD_TORCH)
    return root


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Two importable modules using torch, ``compat_uses_ok`` and ``compat_uses_bad``."""
    _write(tmp_path / "user", {"compat_uses_ok.py": USES_OK, "compat_uses_bad.py": USES_BAD})
    monkeypatch.syspath_prepend(str(tmp_path / "user"))
    return "compat_uses_ok", "compat_uses_bad"


def _statuses(rows) -> dict[str, str]:
    return {r.chain: r.status for r in rows}


def test_present_names_and_keywords_are_ok(old_root, user_modules):
    rows = tc.check([user_modules[0]], old_root, receivers=("torch.Tensor",))
    status = _statuses(rows)
    for chain in [
        "torch",
        "torch.nn",
        "torch.bmm",  # a C builtin, found in the stub through two star imports
        "torch.contiguous_format",
        "torch.float32",
        "torch.nn.functional",
        "torch.nn.functional.pad",  # pad = _add_docstr(torch._C._nn.pad, ...)
        "torch.nn.functional.interpolate",
        "torch.nn.Conv2d",  # keyword padding= taken by the base class's __init__
        ".contiguous() on Tensor",
        ".to() on Tensor",  # keyword non_blocking= in one of two overloads
    ]:
        assert status[chain] == "ok", (chain, status.get(chain))
    assert not any(r.failed or r.unresolved for r in rows)


def test_absent_function_method_and_keywords_are_missing(old_root, user_modules):
    rows = tc.check([user_modules[1]], old_root, receivers=("torch.Tensor",))
    status = _statuses(rows)
    assert status["torch.einsum"] == tc.MISSING
    assert status[".float() on Tensor"] == tc.MISSING
    assert status["torch.nn.functional.interpolate"] == "keyword antialias missing"
    assert status["torch.nn.Conv2d"] == "keyword padding_mode missing"
    assert status["getattr(torch, ...)"].startswith("unresolved")


def test_it_flags_exactly_the_planted_absences(old_root, user_modules):
    """Not everything passes, and not everything fails: the failures are the four planted ones."""
    rows = tc.check(list(user_modules), old_root, receivers=("torch.Tensor",))
    failed = {r.chain for r in rows if r.failed}
    planted = {"torch.einsum", ".float() on Tensor", "torch.nn.functional.interpolate", "torch.nn.Conv2d"}
    assert failed == planted
    assert _statuses(rows)[".split() on Tensor"] == "ok"  # maxsplit=: str.split, not a Tensor call
    assert len(rows) - len(failed) >= 10


def test_main_exit_status_and_summary(old_root, user_modules, capsys):
    assert tc.main(["--torch-src", str(old_root), "--modules", user_modules[0]]) == 0
    out = capsys.readouterr().out
    assert "torch 2.11.0-fake: 1 modules" in out and "missing 0" in out
    assert tc.main(["--torch-src", str(old_root), "--modules", *user_modules]) == 1
    assert "missing 5" in capsys.readouterr().out  # the four, and .float() on Module (all receivers)


def test_uses_follow_function_level_imports_and_keywords(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        textwrap.dedent("""
            from torch.utils.data import DataLoader as DL
            def f(ds):
                import torch.nn.functional as F
                return DL(ds, batch_size=2), F.relu(ds), ds.contiguous()
            def g(F):
                return F.relu  # f's import binds F in f only
        """)
    )
    uses = {u.chain: u for u in tc.module_uses(path, "m", {"contiguous"})}
    assert uses["torch.utils.data.DataLoader"].keywords == {"batch_size"}
    assert uses["torch.nn.functional.relu"].sites == ["m:5"]
    assert uses["contiguous"].method


def test_the_study_modules_include_lazy_and_function_level_imports():
    modules = tc.study_modules()
    assert "enlcn.study.gpu.workers" in modules
    assert "enlcn.train" in modules  # imported inside a function of the GPU study's training module
    assert "enlcn.attention.enlca" in modules  # named by a lazy "module:Class" string of the registry
