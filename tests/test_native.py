"""The native CPU kernel of ENLCA's inference path (enlcn.attention.native) equals the reference path."""

from __future__ import annotations

import os
import platform
import shutil
import sys

import pytest
import torch
from conftest import reference_forward
from procs import run

from enlcn.attention import build_attention, fast, native
from enlcn.attention.fast import _enlca_whole, constant_shifts

X86_WITH_COMPILER = platform.machine().lower() in ("x86_64", "amd64") and bool(shutil.which("c++"))
needs_kernel = pytest.mark.skipif(native.load() is None, reason=f"kernel unavailable: {native.status()}")


@pytest.mark.skipif(not X86_WITH_COMPILER or os.environ.get(native.ENV) == "0", reason="no x86-64 + C++")
def test_kernel_builds_on_x86_with_a_compiler():
    """Where it can be built it must be: a silent fallback would hide a broken kernel from every test."""
    assert native.load() is not None, native.status()
    assert native.status().startswith("native")


def _native(mod, x, block=native.BLOCK):
    s_q, s_k = constant_shifts(mod.projection, mod.options.k, mod.options.key_norm)
    return fast.enlca_native(mod, x, s_q, s_k, block=block)


def assert_close(y, ref, x):
    assert y.shape == ref.shape and y.dtype == ref.dtype
    diff = (y - ref).abs().max().item()
    assert diff <= 1e-5 * ref.abs().max().item()
    assert diff <= 1e-4 * (ref - x).abs().max().item() + 1e-7  # the attention term alone, too


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 64, 20, 23), (2, 16, 7, 7), (3, 32, 5, 13), (1, 64, 1, 1)])
@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize("kind", ["enla", "enlca"])
@pytest.mark.parametrize("m", [16, 128])
def test_native_equalsreference_forward(shape, variant, kind, m):
    torch.manual_seed(0)
    b, ch, h, w = shape
    mod = build_attention(kind, ch, m=m, variant=variant).eval()
    x = torch.randn(b, ch, h, w)
    ref = reference_forward(mod, x)
    assert_close(_native(mod, x), ref, x)
    assert_close(_native(mod, x, block=16), ref, x)  # many ragged blocks, each thread several
    with torch.no_grad():
        assert torch.equal(mod(x), _native(mod, x))  # the module's inference forward takes the kernel


@needs_kernel
def test_images_larger_than_the_python_chunk_take_the_kernel(monkeypatch):
    """The kernel is used at every size (it blocks by itself), not only below the Python path's chunk."""
    calls = []
    real = fast.enlca_native
    monkeypatch.setattr(fast, "enlca_native", lambda *a, **k: calls.append(1) or real(*a, **k))
    mod = build_attention("enlca", 16, m=16).eval()
    x = torch.randn(1, 16, 12, 12)
    ref = reference_forward(mod, x)
    assert_close(fast.enlca_fast(mod, x, chunk=50), ref, x)  # 144 tokens > chunk
    with torch.no_grad():
        mod(torch.randn(1, 16, 182, 182))  # > DEFAULT_CHUNK tokens
    assert len(calls) == 2


@needs_kernel
def test_native_matches_the_python_fused_path_and_thread_counts():
    torch.manual_seed(1)
    mod = build_attention("enlca", 64, m=128).eval()
    x = torch.randn(1, 64, 37, 41)
    s_q, s_k = constant_shifts(mod.projection, mod.options.k, mod.options.key_norm)
    with torch.no_grad():
        python = _enlca_whole(mod, x, s_q, s_k)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _native(mod, x)
    finally:
        torch.set_num_threads(threads)
    assert_close(_native(mod, x), python, x)
    assert_close(one, python, x)


@needs_kernel
def test_repeated_calls_are_bitwise_identical():
    """Per-thread partial sums are reduced in a fixed order over fixed blocks: no run-to-run jitter."""
    torch.manual_seed(5)
    mod = build_attention("enlca", 64, m=128).eval()
    x = torch.randn(1, 64, 61, 67)
    first = _native(mod, x, block=16)
    for _ in range(20):
        assert torch.equal(_native(mod, x, block=16), first)


@needs_kernel
def test_sgemm_path_equals_the_brgemm_path():
    """Machines without oneDNN's f32 brgemm run every block product on sgemm (other layouts for the keys)."""
    ext = native.load()
    torch.manual_seed(2)
    mod = build_attention("enlca", 64, m=128).eval()
    x = torch.randn(2, 64, 19, 29)
    ref = reference_forward(mod, x)
    ext.allow_brgemm(False)
    try:
        assert not ext.uses_brgemm()
        assert_close(_native(mod, x), ref, x)
        assert_close(_native(mod, x, block=16), ref, x)
    finally:
        ext.allow_brgemm(True)
    assert_close(_native(mod, x), ref, x)


@needs_kernel
def test_tokens_below_the_norm_eps_and_non_contiguous_input(small_norm_case):
    mod, x = small_norm_case
    assert_close(_native(mod, x), reference_forward(mod, x), x)
    xt = torch.randn(1, 9, 11, 16).permute(0, 3, 1, 2)  # channels-last view
    assert_close(_native(mod, xt), reference_forward(mod, xt.contiguous()), xt)


@needs_kernel
def test_nan_input_gives_nan_output_like_thereference_forward():
    mod = build_attention("enlca", 16, m=16).eval()
    x = torch.randn(1, 16, 6, 6)
    x[0, 3, 2, 2] = float("nan")
    assert torch.equal(torch.isnan(_native(mod, x)), torch.isnan(reference_forward(mod, x)))


@needs_kernel
def test_fast_exp_is_within_two_ulp_of_exp():
    ext = native.load()
    x = torch.cat([torch.linspace(-87.0, 0.0, 200_001), torch.rand(100_000) * 20 - 10, torch.zeros(3)])
    got = ext.fast_exp(x).double()
    want = torch.exp(x.double())
    ulp = torch.finfo(torch.float32).eps * want  # ~ one float32 ulp at the true value
    assert ((got - want).abs() <= 2 * ulp).all(), float(((got - want).abs() / ulp).max())
    assert torch.equal(ext.fast_exp(torch.tensor([0.0])), torch.tensor([1.0]))
    assert torch.isnan(ext.fast_exp(torch.tensor([float("nan")]))).all()
    assert ext.fast_exp(torch.tensor([-200.0])).item() == pytest.approx(
        1.6458e-38, rel=1e-3
    )  # clamped at −87


@needs_kernel
def test_kernel_rejects_bad_operands_with_a_clear_error():
    ext = native.load()
    mod = build_attention("enlca", 16, m=16).eval()
    s_q, s_k = constant_shifts(mod.projection, mod.options.k, mod.options.key_norm)
    ops = fast.kernel_operands(mod, s_q, s_k)
    with pytest.raises(RuntimeError, match="contiguous float32 CPU"):
        ext.enlca_forward(torch.randn(1, 16, 4, 4).double(), *ops, 1.0, 1e-5, 0.0, 0.1, 256)
    with pytest.raises(RuntimeError, match="inconsistent shapes"):
        ext.enlca_forward(torch.randn(1, 8, 4, 4), *ops, 1.0, 1e-5, 0.0, 0.1, 256)


def test_unsupported_inputs_take_the_python_path():
    mod = build_attention("enlca", 16, m=16).eval()
    s_q, s_k = constant_shifts(mod.projection, mod.options.k, mod.options.key_norm)
    assert not native.supported(torch.randn(1, 16, 4, 4).double(), s_q, s_k)
    assert not native.supported(torch.randn(1, 16, 4, 4), s_q, None)  # key_norm="query": data maxima


def test_switched_off_by_the_environment():
    code = "from enlcn.attention import native; print(native.status())"
    env = {**os.environ, native.ENV: "0"}
    out = run([sys.executable, "-c", code], env=env, check=True)
    assert out.stdout.strip() == f"python: switched off by {native.ENV}=0"


def test_build_name_changes_with_the_cpu_and_the_source(monkeypatch, tmp_path):
    """A home directory shared by two CPUs must never load a -march=native binary built on the other."""
    level = "generic"  # one level throughout, whatever ENLCN_ISA says: only the CPU and the source change
    name = native.build_name(level=level)
    assert name.startswith("enlcn_enlca_cpu_") and name == native.build_name(level=level)
    monkeypatch.setattr(native, "_cpu_flags", lambda: "fpu sse2 avx2")
    other_cpu = native.build_name(level=level)
    src = tmp_path / "enlca_cpu.cpp"
    src.write_text(native.SOURCE.read_text() + "\n// edited\n")
    monkeypatch.setattr(native, "SOURCE", src)
    assert len({name, other_cpu, native.build_name(level=level)}) == 3


V3_CPU = " ".join(native.LEVELS["avx2"][1])  # an AVX2-only CPU (AMD Zen 2/3) as /proc/cpuinfo lists it


def test_the_default_level_is_the_best_this_cpu_runs(monkeypatch):
    monkeypatch.delenv(native.ISA_ENV, raising=False)
    monkeypatch.setattr(native, "_cpu_flags", lambda: V3_CPU)
    assert native.supported_levels() == ("avx2", "generic")
    assert native.isa_level() == "avx2"
    monkeypatch.setattr(native, "_cpu_flags", lambda: V3_CPU + " " + " ".join(native.LEVELS["avx512"][1]))
    assert native.supported_levels() == ("avx512", "avx2", "generic")
    assert native.isa_level() == "avx512"
    monkeypatch.setattr(native, "_cpu_flags", lambda: "fpu sse sse2")  # a pre-2009 x86-64
    assert native.isa_level() == "generic"


def test_a_forced_level_is_checked_against_the_cpu_before_any_build(monkeypatch):
    monkeypatch.setattr(native, "_cpu_flags", lambda: V3_CPU)
    monkeypatch.setenv(native.ISA_ENV, "AVX2")
    assert native.isa_level() == "avx2"
    monkeypatch.setenv(native.ISA_ENV, "avx512")
    with pytest.raises(
        ValueError, match=r"ENLCN_ISA='avx512': this CPU cannot run it \(lacks avx512bw, avx512cd"
    ):
        native.isa_level()
    with pytest.raises(ValueError, match="ENLCN_ISA='avx512'"):
        native._build(native.SOURCE, "test kernel")  # before anything is compiled
    monkeypatch.setenv(native.ISA_ENV, "sse9")
    with pytest.raises(ValueError, match=r"ENLCN_ISA='sse9': expected one of avx512, avx2, generic"):
        native.isa_level()


def test_each_level_has_its_own_flags_and_build_name(monkeypatch):
    """A forced level changes the cache key, so no machine loads a build that assumes more than it has."""
    assert "-march=x86-64-v4" in native.cflags("avx512") and "-march=x86-64-v3" in native.cflags("avx2")
    assert "-march=x86-64" in native.cflags("generic") and not any(
        "native" in f for f in native.cflags("generic")
    )
    names = {level: native.build_name(level=level) for level in native.LEVELS}
    assert len(set(names.values())) == 3 and names["avx2"].startswith("enlcn_enlca_cpu_avx2_")
    monkeypatch.setattr(native, "_cpu_flags", lambda: V3_CPU)
    monkeypatch.setenv(native.ISA_ENV, "generic")
    assert native.build_name() == native.build_name(level="generic") != native.build_name(level="avx2")


def test_off_x86_there_is_no_level_and_the_python_paths_run(monkeypatch):
    monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
    monkeypatch.delenv(native.ISA_ENV, raising=False)
    assert native.supported_levels() == () and native.isa_level() is None
    module, why = native._build(native.SOURCE, "test kernel")
    assert (
        module is None and why == "not built for aarch64: the kernels are x86-64 only (the Python paths run)"
    )
    monkeypatch.setenv(native.ISA_ENV, "avx2")
    with pytest.raises(ValueError, match="x86-64 only"):
        native.isa_level()


@pytest.mark.skipif(not X86_WITH_COMPILER or os.environ.get(native.ENV) == "0", reason="no x86-64 + C++")
def test_every_kernel_names_the_level_it_was_built_for():
    """Each extension's ``isa()`` (csrc/simd.h) is the requested level, and its status says so."""
    level = native.isa_level()
    kernels = (
        (native.load, native.status),
        (native.load_contrastive, native.contrastive_status),
        (native.load_attention, native.attention_status),
        (native.load_enla_train, native.enla_train_status),
    )
    for load, status in kernels:
        ext = load()
        assert ext is not None and ext.isa() == level, status()
        assert status().startswith(f"native ({native.LABELS[level]}"), status()
    assert not hasattr(native.load(), "avx512")  # replaced by isa()


class _Built:
    """A stand-in for a compiled extension: ``isa()`` names ``level`` (absent when ``level`` is None)."""

    def __init__(self, level: str | None) -> None:
        if level is not None:
            self.isa = lambda: level


@pytest.mark.skipif(not native.supported_levels(), reason="x86-64 only")
def test_a_build_that_names_another_level_or_none_is_refused(monkeypatch):
    monkeypatch.setenv(native.ISA_ENV, "generic")
    for built, why in (
        (_Built("generic"), None),
        (_Built("avx512"), "says it is for avx512, not generic"),
        (_Built(None), "does not say its instruction-set level (no isa())"),
    ):
        monkeypatch.setattr(native, "_locked", lambda lock, wait, build, built=built: (built, None))
        module, reason = native._build(native.SOURCE, "test kernel")
        if why is None:
            assert module is built and reason is None
        else:
            assert module is None and why in reason
