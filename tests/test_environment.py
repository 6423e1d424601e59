"""The install paths agree: environment.yml vs pyproject.toml and the lock, the Makefile's torch pin, and
CI. (The lock itself: tests/test_lock.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]

# conda name -> PyPI name, after normalisation
ALIASES = {"pytorch": "torch"}
# conda packages that are not project dependencies
CONDA_ONLY = {"python", "pip"}


def norm(name: str) -> str:
    name = re.sub(r"[-_.]+", "-", name.strip()).lower()
    return ALIASES.get(name, name)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pyproject_requirements() -> dict[str, str]:
    """normalised name -> specifier, over runtime deps and the book and dev extras."""
    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in ("book", "dev"):
        reqs += project["optional-dependencies"][extra]
    out = {}
    for r in reqs:
        req = Requirement(r)
        out[norm(req.name)] = str(req.specifier)
    return out


_CONDA_SPEC = re.compile(r"^\s*(?:[\w.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*$")


def conda_requirements() -> dict[str, str]:
    """normalised name -> version spec, over environment.yml's conda and pip dependencies."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                if pip_dep.startswith("-") or pip_dep.startswith((".", "/")):
                    continue  # -e ., -r file, local paths: the project itself
                req = Requirement(pip_dep)
                out[norm(req.name)] = str(req.specifier)
            continue
        m = _CONDA_SPEC.match(str(dep))
        assert m, f"cannot parse conda dependency {dep!r} in environment.yml"
        out[norm(m.group(1))] = m.group(2).replace(" ", "")
    return out


def test_environment_yml_and_pyproject_list_the_same_packages():
    pip_names = set(pyproject_requirements())
    conda_names = set(conda_requirements()) - CONDA_ONLY
    missing = sorted(pip_names - conda_names)
    extra = sorted(conda_names - pip_names)
    assert not missing and not extra, (
        "environment.yml and pyproject.toml (dependencies + [book] + [dev]) disagree:\n"
        f"  in pyproject.toml but missing from environment.yml: {missing}\n"
        f"  in environment.yml but not in pyproject.toml: {extra}\n"
        f"(names normalised: case, '-'/'_'/'.', {ALIASES})"
    )


def test_environment_yml_and_pyproject_use_the_same_version_bounds():
    pip_reqs, conda_reqs = pyproject_requirements(), conda_requirements()
    differ = []
    for name in sorted(set(pip_reqs) & set(conda_reqs)):
        try:
            conda_spec = SpecifierSet(conda_reqs[name])
        except InvalidSpecifier:
            differ.append(f"{name}: environment.yml has {conda_reqs[name]!r}, not a PEP 440 range")
            continue
        if set(map(str, conda_spec)) != set(map(str, SpecifierSet(pip_reqs[name]))):
            differ.append(
                f"{name}: pyproject.toml {pip_reqs[name]!r} vs environment.yml {conda_reqs[name]!r}"
            )
    assert not differ, "version bounds differ:\n  " + "\n  ".join(differ)


def test_environment_yml_python_satisfies_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert env["name"] == "enlcn"
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\b(?!-)", d)]
    assert len(pythons) == 1, f"environment.yml must pin python once, found {pythons}"
    version = re.sub(r"^python\s*=*\s*", "", pythons[0]).rstrip(".*")
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert version in requires, f"environment.yml python {version} not in requires-python {requires}"


def lock_versions() -> dict[str, str]:
    """normalised name -> version, from requirements/lock.txt's pins."""
    text = (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8")
    return {norm(m.group(1)): m.group(2) for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==(\S+)", text, re.M)}


def test_environment_yml_is_the_loose_alternative_and_admits_the_locked_versions():
    """environment.yml keeps ranges (marked as the loose alternative to the lock); the locked environment
    is one it allows: every locked version of a package it lists, the lock's torch and its Python."""
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    header = text[: text.index("name:")]
    assert "LOOSE" in header and "requirements/lock.txt" in header, "say that the lock is the exact install"
    locked = lock_versions()
    lock_header = dict(
        re.findall(r"^# lock-([a-z]+): (\S+)$", (ROOT / "requirements" / "lock.txt").read_text(), re.M)
    )
    locked["torch"] = lock_header["torch"]
    outside = []
    for name, spec in sorted(conda_requirements().items()):
        if name in CONDA_ONLY:
            continue
        assert name in locked, f"{name} is in environment.yml but not in requirements/lock.txt"
        if locked[name] not in SpecifierSet(spec):
            outside.append(f"{name} {locked[name]} not in {spec!r}")
    assert not outside, "locked versions outside environment.yml's ranges:\n  " + "\n  ".join(outside)
    env = yaml.safe_load(text)
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\b(?!-)", d)]
    assert pythons == [f"python={lock_header['python']}"], pythons


def _recipe_lines(makefile: str) -> list[str]:
    return [ln.strip() for ln in makefile.splitlines() if ln.startswith("\t")]


def test_makefile_installs_torch_explicitly_before_the_project():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^TORCH_VERSION\s*\?=\s*\d+\.\d+", text, re.M), "TORCH_VERSION ?= <default> missing"
    lines = _recipe_lines(text)
    torch_idx = [
        i
        for i, ln in enumerate(lines)
        if re.search(r"(?i:pip)\b.*\binstall\b.*torch==\$\(TORCH_VERSION\)", ln) and " -e " not in ln
    ]
    project_re = r"(?i:pip)\b.*\binstall\b.*-e\s+['\"]?\."
    project_idx = [i for i, ln in enumerate(lines) if re.search(project_re, ln)]
    assert torch_idx, "the Makefile never runs `pip install torch==$(TORCH_VERSION)` on its own"
    assert project_idx, "the Makefile never installs the project (`pip install -e .[...]`)"
    assert torch_idx[0] < project_idx[0], "torch must be installed before the project"
    # the project install cannot swap torch for a newer (CUDA) build: it resolves nothing (--no-deps: its
    # dependencies come from the lock) or keeps the pin
    assert all("--no-deps" in lines[i] or "torch==$(TORCH_VERSION)" in lines[i] for i in project_idx)


def test_ci_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert re.search(r"^set -euo pipefail\b", text, re.M), ".ci/run must `set -euo pipefail`"
    calls = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert any(re.search(r"\bmake\s+test\b", ln) for ln in calls), ".ci/run must run `make test`"
