"""The native CPU kernels (``csrc/``): built on first use, loaded, optional. A leaf: it builds and loads
kernels that take tensors; preparing a module's weights for them is the caller's (e.g.
:func:`enlcn.attention.fast.kernel_operands`).

ENLCA's inference kernel (``csrc/enlca_cpu.cpp``, called by :func:`enlcn.attention.fast.enlca_native`)
computes exactly what :func:`enlcn.attention.fast._enlca_whole` computes (same
products, same constant shifts, Eqs. 3–6), but over blocks of :data:`BLOCK` tokens in one parallel region,
so that each block's feature map is produced, exponentiated and consumed while it is in cache instead of
being streamed through memory by whole-image BLAS calls. Its ``exp`` is a polynomial (≤ 2 ulp against
``torch.exp`` on the arguments the kernel sees, tested) and the final division a reciprocal multiply; the
output matches the reference path to float rounding (tests/test_native.py).

Both variants run on it (``variant="paper"``: ``feature_eps = 0``, i.i.d. features; ``"official"``:
``feature_eps = 1e-4``, orthogonal features). What it does not take, and the Python path then does:
``key_norm="query"`` (Eq. 3 read literally, ``K = √k·δ/‖θ‖``: no bound on ``‖K‖``, so no constant key
shift), amplifications too large for the constant shifts (:data:`enlcn.attention.fast.MAX_CONSTANT_RANGE`),
non-float32 or non-CPU tensors.

The kernel is compiled with ``torch.utils.cpp_extension`` (``-O3 -fopenmp`` and one instruction-set level's
``-march``, ~30–60 s once per environment, torch version, level and source) into torch's extension cache,
under a name that includes a hash of the source, the compile flags (the level's among them), the torch
version, this CPU's flags and the Python environment (``sys.prefix``), so that a home directory shared by two
different CPUs never loads a binary built for the other and two virtual environments on one machine do not
rebuild each other's kernels.

Instruction-set levels (:data:`LEVELS`): ``avx512`` (``-march=x86-64-v4``), ``avx2`` (``x86-64-v3``: AVX2 +
FMA) and ``generic`` (``x86-64``: SSE2 only, the scalar code). The kernels' vector loops are written once
over ``csrc/simd.h`` (16 lanes with AVX-512, 8 with AVX2, scalar otherwise), and every extension exports
``isa()``, the level it was compiled for: a loaded build that names another level (or none) is refused and
:func:`status` and its kin report the level the kernel names. The best level this CPU supports is built
unless ``ENLCN_ISA`` names another it supports (to build, test and benchmark every level on one machine); a
level the CPU lacks, or an unknown name, is a ``ValueError`` before anything is built. Anything that
prevents building or loading it (no compiler, no ``sgemm_`` symbol in torch's library, a non-x86 machine)
makes :func:`load` return ``None``; the Python fused path is then used and :func:`status` says why.
``ENLCN_NATIVE=0`` switches it off.

Builds of one kernel are serialised by an ``flock`` on ``enlcn-build.lock`` in its build directory, which
the kernel releases when its holder dies, so it is never stale. torch's own lock (a ``lock`` file created
with ``O_EXCL``, waited on forever) found while holding ours can only be a killed builder's: it is removed,
with a line on stderr. A live holder is waited for at most ``ENLCN_BUILD_WAIT`` seconds (default 300); then
that kernel falls back to the Python path, and :func:`status` names the lock and the holder's pid.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from .. import faultpoint

SOURCE = Path(__file__).with_name("csrc") / "enlca_cpu.cpp"
#: the contrastive loss's fused row kernel (training; enlcn.attention.contrastive)
CONTRASTIVE_SOURCE = Path(__file__).with_name("csrc") / "contrastive_cpu.cpp"
#: ENLCA's normalisation and ENLA after the embedding, forward and backward (training;
#: enlcn.attention.enla_autograd)
ENLA_TRAIN_SOURCE = Path(__file__).with_name("csrc") / "enla_train_cpu.cpp"
#: exact softmax attention over windows of chunks, forward and backward (training; enlcn.attention.blocked)
ATTENTION_SOURCE = Path(__file__).with_name("csrc") / "attention_cpu.cpp"
#: flags of every level; :func:`cflags` adds the level's ``-march`` (and ``-mtune=native``, which tunes
#: scheduling for the building CPU but assumes no instruction beyond the level's)
CFLAGS = ("-O3", "-fopenmp")
LDFLAGS = ("-fopenmp",)
ENV = "ENLCN_NATIVE"
#: forces an instruction-set level (one of :data:`LEVELS`); unset: the best this CPU supports
ISA_ENV = "ENLCN_ISA"
_V2 = ("cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3")  # /proc/cpuinfo names ("pni" = SSE3)
_V3 = (*_V2, "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")  # "abm" = LZCNT
_V4 = (*_V3, "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
#: instruction-set levels, best first: the ``-march`` each is compiled with and the CPU flags it needs
#: (the x86-64 psABI's microarchitecture levels v4, v3 and the baseline)
LEVELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "avx512": ("x86-64-v4", _V4),
    "avx2": ("x86-64-v3", _V3),
    "generic": ("x86-64", ()),
}
#: what caps the libraries at each level too (``ENLCN_ISA`` alone changes only our kernels): oneDNN (the
#: kernels' brgemm, torch's convolutions), MKL (sgemm) and ATen's own vector kernels, so that a process run at
#: a level with :func:`level_env` computes as on a CPU that has no more than that level. Spellings: oneDNN's
#: CPU dispatcher control, MKL's instruction-set dispatch (Intel CPUs only) and ``ATEN_CPU_CAPABILITY``.
LIBRARY_CAPS: dict[str, dict[str, str]] = {
    "avx512": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "generic": {
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ATEN_CPU_CAPABILITY": "default",
    },
}
#: tokens per block: the block's feature map, (m+1)×256 floats, stays in L2 (measured: 256 faster than
#: 512 and 1024 at 150×150 on a 2-core AMD EPYC; see enlcn/attention/fast.py)
BLOCK = 256
#: our build lock (an ``flock``), in each kernel's build directory; it holds the holder's pid
LOCK_FILE = "enlcn-build.lock"
#: torch's build lock (``torch.utils.file_baton.FileBaton``) in the same directory
TORCH_LOCK = "lock"
#: at most this many seconds waited for another process's build of the same kernel (default 300)
WAIT_ENV = "ENLCN_BUILD_WAIT"
DEFAULT_WAIT = 300.0
#: seconds between two tries of a held lock
POLL = 0.1
#: seconds of waiting for the build lock before saying so: another process loading the kernels from torch's
#: cache holds it about a second (two notebooks or study processes starting together), which goes unsaid
ANNOUNCE_AFTER = 2.0


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def is_x86() -> bool:
    """Whether this machine is x86-64, the only architecture the kernels are written for."""
    return platform.machine().lower() in ("x86_64", "amd64")


def supported_levels() -> tuple[str, ...]:
    """The levels of :data:`LEVELS` this CPU can run, best first (``()`` off x86-64)."""
    if not is_x86():
        return ()
    flags = set(_cpu_flags().split())
    return tuple(level for level, (_, needs) in LEVELS.items() if flags.issuperset(needs))


def isa_level() -> str | None:
    """The level the kernels are built for: :data:`ISA_ENV` when set, else the best this CPU supports;
    ``None`` off x86-64. An unknown name, or a level this CPU lacks (its binary would die of an illegal
    instruction), is a ``ValueError`` naming the variable and what is missing."""
    raw = os.environ.get(ISA_ENV, "").strip().lower()
    supported = supported_levels()
    if not raw:
        return supported[0] if supported else None
    if raw not in LEVELS:
        raise ValueError(
            f"{ISA_ENV}={raw!r}: expected one of {', '.join(LEVELS)} (unset: the best this CPU runs)"
        )
    if raw not in supported:
        if not is_x86():
            raise ValueError(f"{ISA_ENV}={raw!r}: the native kernels are x86-64 only ({platform.machine()})")
        missing = sorted(set(LEVELS[raw][1]) - set(_cpu_flags().split()))
        raise ValueError(
            f"{ISA_ENV}={raw!r}: this CPU cannot run it (lacks {', '.join(missing)}); it runs "
            f"{', '.join(supported)}"
        )
    return raw


def level_env(level: str) -> dict[str, str]:
    """The environment variables that run a process at ``level`` (one of :data:`LEVELS`): :data:`ISA_ENV` for
    our kernels and :data:`LIBRARY_CAPS` for the libraries."""
    return {ISA_ENV: level, **LIBRARY_CAPS[level]}


def cflags(level: str | None = None) -> tuple[str, ...]:
    """The compile flags of ``level`` (default :func:`isa_level`): :data:`CFLAGS` and the level's ``-march``
    (plus ``-mtune=native`` above the generic level)."""
    level = isa_level() if level is None else level
    march = LEVELS[level][0]
    tune = () if level == "generic" else ("-mtune=native",)
    return (*CFLAGS, f"-march={march}", *tune)


def build_name(source: Path | None = None, level: str | None = None) -> str:
    """Extension name: changes with the source (default :data:`SOURCE`: its text and where it lies) and the
    headers beside it, the flags (the instruction-set ``level``'s among them, default :func:`isa_level`),
    the torch version, the CPU's features and the Python environment (resolved ``sys.prefix``). Where the
    source lies counts because torch rebuilds a cached extension whose sources moved: two checkouts sharing
    one environment would otherwise rebuild each other's kernels every time."""
    source = SOURCE if source is None else source
    level = isa_level() if level is None else level
    headers = [h.read_text() for h in sorted(source.parent.glob("*.h"))]
    flags = " ".join(cflags(level) + LDFLAGS)
    env = str(Path(sys.prefix).resolve())
    where = str(source.resolve())
    key = "\n".join([source.read_text(), *headers, flags, torch.__version__, _cpu_flags(), env, where])
    return f"enlcn_{source.stem}_{level}_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _announce_build(build_dir: Path, name: str, what: str = "ENLCA CPU kernel") -> None:
    """One line on stderr when the kernel is about to be compiled (not when torch's cache has it)."""
    if not any(build_dir.glob(f"{name}*.so")):
        print(f"enlcn: building the native {what} (once; ~1 min) in {build_dir}", file=sys.stderr)


def build_wait() -> float:
    """Seconds to wait for another process's build of a kernel: :data:`WAIT_ENV`, default
    :data:`DEFAULT_WAIT`; a value that is not a number ≥ 0 is a ``ValueError``."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return DEFAULT_WAIT
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not (math.isfinite(wait) and wait >= 0):
        raise ValueError(f"{WAIT_ENV}={raw!r}: expected a number of seconds ≥ 0 (default {DEFAULT_WAIT:g})")
    return wait


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote into it (``"?"`` before it has)."""
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


def _acquire(fd: int, lock: Path, wait: float) -> str | None:
    """Take the exclusive ``flock`` on ``fd`` (the file ``lock``), waiting at most ``wait`` seconds for a
    live holder (one line on stderr when it waits): ``None``, or why not."""
    start = time.monotonic()
    deadline = start + wait
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        if not announced and time.monotonic() - start >= ANNOUNCE_AFTER:
            print(
                f"enlcn: waiting (at most {wait:g} s, {WAIT_ENV}) for process {_holder(fd)}, which holds "
                f"the native build lock {lock}",
                file=sys.stderr,
                flush=True,
            )
            announced = True
        left = deadline - time.monotonic()
        if left <= 0:
            pid = _holder(fd)
            return (
                f"process {pid} held the build lock {lock} for more than {wait:g} s; if it is stuck, "
                f"kill it (kill {pid}), or wait longer with {WAIT_ENV}=<seconds>"
            )
        time.sleep(min(POLL, left))


def _clear_stale_torch_lock(build_dir: Path) -> None:
    """Remove torch's build lock from ``build_dir``: found while we hold ours, its builder is dead (torch
    would wait for it forever)."""
    stale = build_dir / TORCH_LOCK
    try:
        stale.unlink()
    except FileNotFoundError:
        return
    print(f"enlcn: removed a stale build lock {stale} (its builder is gone)", file=sys.stderr, flush=True)


def _locked(lock: Path, wait: float, build: Callable[[], ModuleType]) -> tuple[ModuleType | None, str | None]:
    """``(build(), None)`` run holding the build lock ``lock`` (its pid written into it, a stale torch lock
    beside it removed), or ``(None, why)`` when another process holds it for more than ``wait`` seconds.
    The lock file is never removed, so two processes never lock two different files of one name."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        why = _acquire(fd, lock, wait)
        if why is not None:
            return None, why
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _clear_stale_torch_lock(lock.parent)
            return build(), None
        finally:
            os.ftruncate(fd, 0)  # no pid of a process that no longer holds it
    finally:
        os.close(fd)  # releases the flock


def _compile(
    cpp_extension: ModuleType, build_dir: Path, name: str, source: Path, what: str, level: str
) -> ModuleType:
    """``cpp_extension.load`` of ``source`` as ``name`` into ``build_dir`` for ``level`` (holding the build
    lock)."""
    _announce_build(build_dir, name, what)
    faultpoint.pause("native-build")
    return cpp_extension.load(
        name, [str(source)], extra_cflags=list(cflags(level)), extra_ldflags=list(LDFLAGS), verbose=False
    )


def _build(source: Path, what: str) -> tuple[ModuleType | None, str | None]:
    """Build (or load from torch's cache) the extension of ``source``: ``(module, None)`` or
    ``(None, why)``."""
    if os.environ.get(ENV, "1") == "0":
        return None, f"switched off by {ENV}=0"
    if not is_x86():
        return None, f"not built for {platform.machine()}: the kernels are x86-64 only (the Python paths run)"
    wait = build_wait()
    level = isa_level()
    assert level is not None  # x86-64 always runs the generic level
    try:
        from torch.utils import cpp_extension

        name = build_name(source, level)
        build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
        build_dir.mkdir(parents=True, exist_ok=True)
        module, why = _locked(
            build_dir / LOCK_FILE, wait, lambda: _compile(cpp_extension, build_dir, name, source, what, level)
        )
    except Exception as exc:  # noqa: BLE001 - any build/load failure means: use the Python path
        return None, f"build or load failed: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
    built = module.isa() if module is not None and hasattr(module, "isa") else None
    if module is not None and built is None:
        module, why = None, f"the build of {name} does not say its instruction-set level (no isa())"
    elif module is not None and built != level:
        module, why = None, f"the build of {name} says it is for {built}, not {level}"
    if module is None:
        print(f"enlcn: the native {what} falls back to the Python path: {why}", file=sys.stderr, flush=True)
    return module, why


#: why a kernel is unavailable (its ``_build`` message), by source file; absent until it was first loaded
_why_not: dict[Path, str | None] = {}


def _load(source: Path, what: str) -> ModuleType | None:
    module, _why_not[source] = _build(source, what)
    return module


@functools.cache
def load() -> ModuleType | None:
    """The compiled kernel (built on first call), or ``None`` when unavailable (see :func:`status`)."""
    return _load(SOURCE, "ENLCA CPU kernel")


@functools.cache
def load_contrastive() -> ModuleType | None:
    """The contrastive loss's row kernel (built on first call), or ``None`` (:func:`contrastive_status`)."""
    return _load(CONTRASTIVE_SOURCE, "contrastive-loss CPU kernel")


@functools.cache
def load_attention() -> ModuleType | None:
    """The exact attention's window kernel (built on first call), or ``None`` (:func:`attention_status`)."""
    return _load(ATTENTION_SOURCE, "exact-attention CPU kernel")


@functools.cache
def load_enla_train() -> ModuleType | None:
    """ENLA's training kernel (built on first call), or ``None`` (:func:`enla_train_status`)."""
    return _load(ENLA_TRAIN_SOURCE, "ENLA training CPU kernel")


#: how :func:`status` and its kin name each level
LABELS = {"avx512": "AVX-512", "avx2": "AVX2", "generic": "generic x86-64"}


def _native_status(ext: ModuleType | None, source: Path) -> str:
    """``"native (<level>[, oneDNN brgemm | , sgemm])"`` for a loaded kernel (the level its ``isa()`` names),
    else ``"python: <why not>"``."""
    if ext is None:
        return f"python: {_why_not.get(source)}"
    parts = [LABELS[ext.isa()]]
    if hasattr(ext, "uses_brgemm"):
        parts.append("oneDNN brgemm" if ext.uses_brgemm() else "sgemm")
    return f"native ({', '.join(parts)})"


def enla_train_status() -> str:
    """Which code trains ENLA/ENLCA's attention on the CPU: ``"native (AVX2, oneDNN brgemm)"``,
    ``"native (AVX-512, sgemm)"`` and the like, or ``"python: <why not>"``."""
    return _native_status(load_enla_train(), ENLA_TRAIN_SOURCE)


def attention_status() -> str:
    """Which code computes NLA's and NLSA's blocked attention on the CPU: ``"native (<level>, oneDNN
    brgemm)"``, ``"native (<level>, sgemm)"`` or ``"python: <why not>"``."""
    return _native_status(load_attention(), ATTENTION_SOURCE)


def contrastive_status() -> str:
    """``"native (<level>)"`` or ``"python: <why not>"``: which code computes the contrastive loss on the
    CPU."""
    return _native_status(load_contrastive(), CONTRASTIVE_SOURCE)


def status() -> str:
    """``"native (AVX-512, oneDNN brgemm)"`` (the level it was built for, and its products), or
    ``"python: <why not native>"``."""
    return _native_status(load(), SOURCE)


def supported(x: Tensor, s_q: float | None, s_k: float | None) -> bool:
    """Whether the kernel applies: float32 on the CPU, both constant shifts (see ``fast.constant_shifts``)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and s_q is not None and s_k is not None
