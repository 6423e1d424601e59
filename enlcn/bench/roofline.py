"""The product floors of the training steps (``--pipeline``'s roofline): the matrix-product GFLOP of the
ENLA, NLA and NLSA modules in one training step, the measured product rate (``torch.mm``'s sgemm, the
native kernel's brgemm), and from them what each step could be at best over EDSR's and the rate the modules
reach now (``info`` ratios).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ..attention import native
from .timing import _timed_calls

if TYPE_CHECKING:
    from ..train import TrainConfig


def _attention_modules(model: str, profile: str) -> tuple[TrainConfig, list[torch.nn.Module]]:
    """``(training config, attention modules)`` of ``model`` as ``profile`` builds it (for the floors)."""
    from ..models import build_model
    from ..train import train_config

    cfg = train_config(profile, model=model)
    net = build_model(model, cfg.scale, cfg.preset, attention=cfg.attention)
    return cfg, list(net.attention_modules())


def nla_step_gflop(profile: str) -> float:
    """Matrix-product GFLOP of the NLA modules in one EDSR + NLA training step under ``profile``: per image
    and module ``2N²(4d + 3d_v)`` — forward ``QKᵀ`` and ``PV``; backward ``QKᵀ`` again (the blocked path
    recomputes it), ``dV``, ``dP``, ``dQ``, ``dK`` (:mod:`enlcn.attention.blocked`)."""
    cfg, modules = _attention_modules("edsr+nla", profile)
    n = cfg.lr_patch**2
    flop = 0.0
    for m in modules:
        d, dv = m.match1[0].out_channels, m.assembly[0].out_channels
        flop += cfg.batch_size * 2 * n * n * (4 * d + 3 * dv)
    return flop / 1e9


def sgemm_gflops(threads: int, device: str, size: int = 1024, repeats: int = 5) -> float:
    """Measured float32 ``torch.mm`` rate (GFLOP/s, median of ``repeats``) of ``size``³ products: on the CPU
    MKL's sgemm, the rate of every PyTorch-level product (the Python training paths)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    times = _timed_calls(lambda: torch.mm(a, b), 0.0, repeats, 1, repeats, device.startswith("cuda"))
    return 2 * size**3 / statistics.median(times) / 1e9


def kernel_gflops(threads: int, size: int = 256, repeats: int = 40) -> float | None:
    """The rate (GFLOP/s, all threads) of the products the native exact-attention kernel runs (oneDNN's
    brgemm where usable; :mod:`enlcn.attention.native`), on ``size``³ blocks; ``None`` without the kernel.
    On this AMD EPYC it is 2–3× MKL's sgemm rate (:func:`sgemm_gflops`), which is why the native NLA and NLSA
    paths run below a floor computed at the sgemm rate."""
    ext = native.load_attention()
    if ext is None:
        return None
    torch.set_num_threads(threads)
    return float(ext.product_gflops(size, repeats))


def nlsa_step_gflop(profile: str) -> float:
    """Matrix-product GFLOP of the NLSA modules in one EDSR + NLSA training step under ``profile``: per image,
    module and hash round, ``K`` chunks of ``S`` queries against their ``3S``-key windows,
    ``2·K·S·3S·(4c + 3C)`` — the same five products as NLA's (:func:`nla_step_gflop`) with the scores
    recomputed in backward (:func:`~enlcn.attention.blocked.window_attention`); ``K = ⌈L / S⌉``."""
    cfg, modules = _attention_modules("edsr+nlsa", profile)
    length = cfg.lr_patch**2
    flop = 0.0
    for m in modules:
        s, n_hashes = m.options.chunk_size, m.options.n_hashes
        c, dv = m.conv_match.out_channels, m.conv_assembly.out_channels
        chunks = -(-length // s)
        flop += cfg.batch_size * n_hashes * 2 * chunks * s * 3 * s * (4 * c + 3 * dv)
    return flop / 1e9


def enla_step_gflop(profile: str) -> float:
    """Matrix-product GFLOP of the ENLA modules in one EDSR + ENLA training step under ``profile``: per image
    and module ``2N·[3C(2c + C) + 6mC + 4cm]`` — the stacked θ/δ/ψ 1×1 embedding forward and its two
    backward products; the features of Q and K (forward, and their input gradients); ``φ_Kᵀ V`` and
    ``φ_Q C`` forward and their four backward products (:mod:`enlcn.attention.enla_autograd`)."""
    cfg, modules = _attention_modules("edsr+enla", profile)
    n = cfg.lr_patch**2
    flop = 0.0
    for mod in modules:
        c, ch, m = mod.theta.out_channels, mod.psi.out_channels, mod.options.m
        flop += cfg.batch_size * 2 * n * (3 * ch * (2 * c + ch) + 6 * m * ch + 4 * c * m)
    return flop / 1e9


#: the models whose training step has a product floor: model -> (its attention's GFLOP per step, slug)
FLOOR_MODELS: dict[str, tuple[Callable[[str], float], str]] = {
    "edsr+enla": (enla_step_gflop, "enla"),
    "edsr+nla": (nla_step_gflop, "nla"),
    "edsr+nlsa": (nlsa_step_gflop, "nlsa"),
}


def achieved_gflops(gflop: float, model_ms: float, edsr_ms: float) -> float:
    """GFLOP/s of the attention products over the time the model's step adds to EDSR's, or NaN when it adds
    none: the step can be no slower than EDSR's when the modules' token-major output lets the convolutions
    after them run channels_last (faster), and then there is no time to divide by."""
    added_s = (model_ms - edsr_ms) / 1e3
    return gflop / added_s if added_s > 0 else float("nan")


def attention_floors(
    steps: pd.DataFrame, profile: str, threads: int, device: str
) -> list[tuple[str, float, str]]:
    """What ENLA's, NLA's and NLSA's training steps could be at best: EDSR's step plus the modules' products
    (:data:`FLOOR_MODELS`) at the best measured product rate (``torch.mm``'s, :func:`sgemm_gflops`, or the
    native kernel's brgemm, :func:`kernel_gflops`), over EDSR's; and the rate the modules reach now (GFLOP
    over the step time they add to EDSR's). ``info``."""
    present = [m for m in FLOOR_MODELS if m in set(steps.operator)]
    if "edsr" not in set(steps.operator) or not present:
        return []
    med = steps.groupby("operator")["time_ms"].median()
    sgemm, kernel = sgemm_gflops(threads, device), kernel_gflops(threads) if device == "cpu" else None
    rate = max(sgemm, kernel or 0.0)
    out = []
    for model in present:
        count, slug = FLOOR_MODELS[model]
        gflop = count(profile)
        floor = (med["edsr"] + gflop / rate * 1e3) / med["edsr"]
        achieved = achieved_gflops(gflop, med[model], med["edsr"])
        out += [
            (f"edsr_{slug}_over_edsr_train_step_floor_at_product_rate", floor, "info"),
            (f"{slug}_attention_gflop_per_step", gflop, "info"),
            (f"{slug}_attention_achieved_gflops", achieved, "info"),
        ]
    out += [("sgemm_gflops", sgemm, "info")]
    return out + ([("native_kernel_gflops", kernel, "info")] if kernel else [])
