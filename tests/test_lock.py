"""The committed lock of the environment (requirements/lock.txt): what it holds, that `make venv` installs
exactly it, and that `make lock` reproduces it (slow: needs the package index)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
#: what `make venv` writes into the venv: a copy of the lock it installed
VENV_STAMP = Path(sys.prefix) / "enlcn-lock.txt"
#: never in the lock: the Makefile installs torch itself; a CUDA build's libraries are its own business
FORBIDDEN = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(text: str) -> list[str]:
    """The lock's requirement entries, continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [" ".join(ln.split()) for ln in joined.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def lock_pins() -> dict[str, str]:
    pins = {}
    for entry in lock_entries(LOCK.read_text(encoding="utf-8")):
        name, version = entry.split()[0].split("==")
        pins[norm(name)] = version
    return pins


def lock_header() -> dict[str, str]:
    return dict(re.findall(r"^# lock-([a-z]+): (\S+)$", LOCK.read_text(encoding="utf-8"), re.M))


def makefile_default(var: str) -> str:
    m = re.search(rf"^{var}\s*[:?]?=\s*(\S+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert m, f"the Makefile sets no {var}"
    return m.group(1)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------- the lock itself


def test_every_entry_is_one_exact_version_with_sha256_hashes():
    entries = lock_entries(LOCK.read_text(encoding="utf-8"))
    assert len(entries) > 100, f"only {len(entries)} entries: not the whole environment"
    entry = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][^\s;]*(?: --hash=sha256:[0-9a-f]{64})+$")
    bad = [e[:80] for e in entries if not entry.match(e)][:5]
    assert not bad, f"entries that are not `name==version --hash=sha256:...` (no markers, URLs, -e): {bad}"
    names = [norm(e.split("==")[0]) for e in entries]
    assert len(names) == len(set(names)), "a package is pinned twice"


def test_no_torch_and_no_cuda_package_is_locked():
    locked = sorted(n for n in lock_pins() if FORBIDDEN.match(n))
    assert not locked, f"the lock must not force a torch build, nor pull CUDA packages: {locked}"
    # ... but torch's pure-Python dependencies are locked, as its CPU build declares them
    assert {"sympy", "networkx", "filelock", "fsspec", "jinja2", "typing-extensions"} <= set(lock_pins())


def test_header_names_the_target_and_the_makefile_agrees():
    header = lock_header()
    assert set(header) == {"python", "platform", "torch", "date"}, header
    assert header["python"] == makefile_default("LOCK_PYTHON")
    assert header["platform"] == makefile_default("LOCK_PLATFORM") and "x86_64" in header["platform"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", header["date"])
    # the torch the lock was resolved with is the one `make venv` installs, everywhere it is named
    assert header["torch"] == makefile_default("TORCH_VERSION")
    lock_in = (ROOT / "requirements" / "lock.in").read_text(encoding="utf-8")
    assert re.findall(r"^torch==(\S+)$", lock_in, re.M) == [header["torch"]]
    uv = tomllib.loads((ROOT / "requirements" / "uv.toml").read_text(encoding="utf-8"))
    assert [m["version"] for m in uv["dependency-metadata"] if m["name"] == "torch"] == [header["torch"]]
    assert f"make lock LOCK_DATE={header['date']}" in LOCK.read_text(encoding="utf-8")


def test_lock_satisfies_pyproject_and_holds_pip():
    project = pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("book", "dev"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = lock_pins()
    wrong = []
    for req in reqs:
        if norm(req.name) == "torch":
            if Version(lock_header()["torch"]) not in req.specifier:
                wrong.append(f"torch {lock_header()['torch']} not in {req.specifier}")
        elif norm(req.name) not in pins:
            wrong.append(f"{req.name} missing")
        elif Version(pins[norm(req.name)]) not in req.specifier:
            wrong.append(f"{req.name} {pins[norm(req.name)]} not in {req.specifier}")
    assert not wrong, "the lock does not satisfy pyproject.toml (make lock):\n  " + "\n  ".join(wrong)
    assert "pip" in pins and "setuptools" in pins  # the installer and the editable build use locked versions


def test_uv_toml_declares_the_installed_cpu_torchs_dependencies():
    import torch

    version = Version(torch.__version__)
    if version.public != lock_header()["torch"] or version.local != "cpu":
        pytest.skip(f"torch {torch.__version__} is not the CPU build of the locked {lock_header()['torch']}")
    uv = tomllib.loads((ROOT / "requirements" / "uv.toml").read_text(encoding="utf-8"))
    (meta,) = [m for m in uv["dependency-metadata"] if m["name"] == "torch"]
    declared = {str(Requirement(r)) for r in importlib.metadata.requires("torch") or []}
    declared = {r for r in declared if "extra ==" not in r}
    assert {str(Requirement(r)) for r in meta["requires-dist"]} == declared


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_make_venv_installs_exactly_the_lock_then_torch_then_the_project(tmp_path, installer):
    """`make -n venv` (a dry run for a new venv): the whole lock hash-checked without resolution — by uv
    (the default; uv itself hash-pinned, installed outside the environment) or by pip (the lock's pip
    first) —, then torch by its pin with pip, then the project without dependencies, then `pip check`."""
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "venv", f"VENV={tmp_path / 'v'}", f"INSTALLER={installer}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    installs = [ln for ln in out.splitlines() if re.search(r"(-m pip|/bin/uv pip)\b.* (install|check)\b", ln)]
    assert len(installs) == 5, installs
    first, lock, torch, project, check = installs
    if installer == "uv":
        assert "-m pip" in first and "--require-hashes --no-deps --target" in first and "uv-tool.txt" in first
        # uv, unlike pip, writes no bytecode unless asked; under PYTHONDONTWRITEBYTECODE every process would
        # then compile the imported libraries from source (+3.4 s per `import torch, pandas, …` measured)
        assert "/bin/uv pip install" in lock and "--compile-bytecode" in lock
    else:
        assert "--require-hashes --no-deps -r" in first and "lock-pip.txt" in first
        assert "-m pip" in lock and " install " in lock
    assert "--require-hashes --no-deps -r requirements/lock.txt" in lock
    assert "-m pip" in torch and "-m pip" in project and "-m pip" in check
    assert re.search(r"install +\"?torch==2\.\d+", torch) and "--no-deps" not in torch
    assert "--no-deps" in project and re.search(r"-e \.", project)
    assert check.endswith(" check")
    assert "enlcn-lock.txt" in out and "uninstall --yes" in out  # what a new lock drops goes too


def test_uv_tool_pins_one_version_with_hashes():
    text = (ROOT / "requirements" / "uv-tool.txt").read_text(encoding="utf-8")
    assert len(re.findall(r"^uv==\d+\.\d+\.\d+ ", text, re.M)) == 1
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 1


def test_make_lock_resolves_for_the_stated_target_without_torch(tmp_path):
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "lock", f"VENV={tmp_path / 'v'}", "LOCK_DATE=2026-01-02T03:04:05Z"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    hash_pinned_uv = r"pip\b.* install .*--require-hashes .*-r requirements/uv-tool.txt"
    assert re.search(hash_pinned_uv, out), "make lock installs uv hash-pinned"
    compile_ = " ".join(out.split("\\\n"))
    for flag in (
        "uv pip compile pyproject.toml requirements/lock.in --extra book --extra dev",
        "--config-file requirements/uv.toml",
        "--generate-hashes",
        "--no-emit-package torch",
        "--exclude-newer 2026-01-02T03:04:05Z",
        f"--python-version {lock_header()['python']}",
    ):
        assert flag in " ".join(compile_.split()), flag


# ------------------------------------------------------------------------------ the installed environment


def test_installed_versions_equal_the_lock():
    """In an environment `make venv` made (CI's always is), every installed distribution is the lock's
    version and nothing else is installed, torch and the project aside."""
    if not VENV_STAMP.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI runs in `make venv`'s environment, but {VENV_STAMP} is missing")
        pytest.skip(f"not an environment `make venv` made ({VENV_STAMP.name} missing): nothing to compare")
    assert VENV_STAMP.read_bytes() == LOCK.read_bytes(), (
        "the venv was installed from another requirements/lock.txt: `make venv` reinstalls it"
    )
    from enlcn.provenance import installed_distributions  # the environment's site-packages only

    installed = dict(installed_distributions())
    for unlocked in ("torch", "enlcn"):
        installed.pop(unlocked, None)
    pins = lock_pins()
    both = {n: (installed.get(n), pins.get(n)) for n in set(pins) | set(installed)}
    differ = {n: v for n, v in both.items() if None in v or Version(v[0]) != Version(v[1])}
    assert not differ, f"installed vs locked (None: absent): {dict(sorted(differ.items()))}"


def test_provenance_says_a_make_venv_environment_matches_the_lock():
    from enlcn.provenance import environment

    if not VENV_STAMP.exists():
        pytest.skip("not an environment `make venv` made")
    record = environment()
    assert record["lock_sha256"] == hashlib.sha256(VENV_STAMP.read_bytes()).hexdigest()
    assert record["matches_lock"] is True, record["lock_differences"]


# ------------------------------------------------------------------------------------ make lock (network)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_lock_reproduces_the_committed_lock(tmp_path):
    """`make lock LOCK_DATE=<the lock's date>` (uv, pinned, against the package index: needs the network)
    writes the committed lock again, byte for byte: releases after that date are ignored."""
    if not (Path(sys.prefix) / "bin" / "python").exists():
        pytest.skip("make lock installs uv into a venv; this interpreter is not one")
    out = tmp_path / "lock.txt"
    proc = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "lock", f"VENV={sys.prefix}", f"LOCK_DATE={lock_header()['date']}",
         f"LOCK_OUT={out}"],
        capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert out.read_text(encoding="utf-8") == LOCK.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock.txt"], "make lock left temporary files"


def test_vendored_copies_on_sys_path_are_not_installed_packages():
    """Loading a native kernel imports setuptools, which puts its vendored packages on ``sys.path``; the
    environment check must not count them (it reported ``autocommand 2.2.2 (not in the lock)`` before)."""
    import importlib.metadata
    import sys

    import setuptools  # noqa: F401 - what torch.utils.cpp_extension imports

    from enlcn.provenance import LOCK, installed_distributions, normalize_name, read_lock

    vendored = [p for p in sys.path if p.endswith("_vendor")]
    names = {normalize_name(d.metadata["Name"]) for d in importlib.metadata.distributions(path=vendored)}
    only_vendored = names - set(read_lock(LOCK).pins)  # e.g. autocommand, jaraco-context
    if not only_vendored:
        pytest.skip("this setuptools vendors nothing outside the lock")
    assert not only_vendored & set(installed_distributions())
