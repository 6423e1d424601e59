"""``--pipeline``: the training step and the inference of whole models (``<out stem>-pipeline``).

For every model of :data:`PIPELINE_MODELS` under a training profile (default ``cpu``: batch 8 of 32² LR
patches, ×4), the median time of one training step (forward, L1 + λ·contrastive loss, backward, Adam step,
on random tensors of the profile's shapes) with the peak memory of the first step, and whole-image
inference at ``--model-size`` (images/s, peak memory), each in a fresh process as the operators
(:mod:`enlcn.bench.operators`). Issue 14's targets come from the training steps of all models interleaved in
one process (:func:`paired_train_steps`) and from the contrastive loss by its reference and its default
path (:func:`paired_contrastive`), per round in ``<out stem>-pipeline-paired.csv``; the product floors beside
them from :mod:`enlcn.bench.roofline`.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..allocator import warm_allocator
from ..provenance import write_csv_atomic
from .operators import PIPELINE_MODELS, run_bench
from .report import CHANNELS_LAST_ENV, _parameters, _print_ratios, start_provenance, write_results
from .roofline import attention_floors
from .timing import MODEL_MIN_REPEATS, _div, _first_call, _timed_calls, paired_ratio, run_worker

PIPELINE_COLUMNS = (
    "model",
    "profile",
    "preset",
    "scale",
    "params",
    "batch_size",
    "lr_patch",
    "train_status",
    "train_step_ms",
    "train_step_ms_min",
    "train_repeats",
    "train_peak_mem_mb",
    "infer_size",
    "infer_status",
    "infer_ms",
    "images_per_s",
    "infer_peak_mem_mb",
    "threads",
    "device",
)


def build_train_step(model: str, profile: str, device: str, seed: int = 0) -> tuple[Callable[[], None], int]:
    """``(step, parameters)``: one training step of ``model`` under ``profile``'s settings as a closure.

    The step is the loss of Eq. 12 (:func:`enlcn.loss.objective`: L1 + ``lambda_cl`` · contrastive loss) on
    random LR/HR tensors of the profile's batch and patch shapes, backward, and an Adam step. With
    ``ENLCN_CHANNELS_LAST=1`` in the environment (:data:`CHANNELS_LAST_ENV`) the model and the tensors are
    channels_last instead of NCHW (the study trains NCHW; this measures what the layout would change).
    """
    from ..loss import objective
    from ..models import build_model, count_parameters, set_contrastive
    from ..train import train_config

    torch.manual_seed(seed)
    cfg = train_config(profile, model=model)
    net = build_model(model, cfg.scale, cfg.preset, attention=cfg.attention).to(device).train()
    set_contrastive(net, True)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
    side = cfg.lr_patch
    lr = torch.rand(cfg.batch_size, 3, side, side, device=device)
    hr = torch.rand(cfg.batch_size, 3, side * cfg.scale, side * cfg.scale, device=device)
    if os.environ.get(CHANNELS_LAST_ENV, "0") == "1":
        net = net.to(memory_format=torch.channels_last)
        lr, hr = (t.contiguous(memory_format=torch.channels_last) for t in (lr, hr))

    def step() -> None:
        loss, _, _ = objective(net, net(lr), hr, cfg.lambda_cl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, count_parameters(net)


def measure_train_step(
    model: str, profile: str, repeats: int, warmup: int, threads: int, device: str
) -> dict:
    """Time of one training step (:func:`build_train_step`) of ``model`` under ``profile``, peak memory of
    the first."""
    warm_allocator()
    torch.set_num_threads(threads)
    step, params = build_train_step(model, profile, device)
    cuda = device.startswith("cuda")
    first, peak = _first_call(step, cuda)
    times = _timed_calls(step, first, repeats, warmup, min(MODEL_MIN_REPEATS, repeats), cuda)
    return {
        "params": params,
        "train_status": "ok",
        "train_step_ms": statistics.median(times) * 1e3,
        "train_step_ms_min": min(times) * 1e3,
        "train_repeats": len(times),
        "train_peak_mem_mb": peak / 2**20,
    }


def pipeline_row(
    model: str, profile: str, size: int, repeats: int, warmup: int, threads: int, device: str, isolate: bool
) -> dict:
    """One row of the ``--pipeline`` table: ``model``'s training step under ``profile`` and its
    whole-image inference at ``size×size`` (each in a fresh process when ``isolate``)."""
    from ..train import train_config

    cfg = train_config(profile, model=model)
    row = dict.fromkeys(PIPELINE_COLUMNS, float("nan"))
    row.update(model=model, profile=profile, preset=cfg.preset, scale=cfg.scale, batch_size=cfg.batch_size)
    row.update(lr_patch=cfg.lr_patch, infer_size=size, threads=threads, device=device, train_repeats=0)
    spec = dict(model=model, profile=profile, repeats=repeats, warmup=warmup, threads=threads, device=device)
    try:
        row.update(run_worker("train", **spec) if isolate else measure_train_step(**spec))
    except RuntimeError as exc:
        row["train_status"] = f"error: {exc}"
    op = f"model-{model}-{cfg.preset}-x{cfg.scale}"
    infer = run_bench([size], [op], repeats, warmup, threads, device, isolate=isolate).iloc[0]
    row.update(infer_status=infer.status, infer_ms=infer.time_ms, infer_peak_mem_mb=infer.peak_mem_mb)
    row["images_per_s"] = _div(1e3, infer.time_ms)
    return row


def pipeline_ratios(df: pd.DataFrame) -> list[tuple[str, float, str]]:
    """Training step and inference time of every model over EDSR's, from this run's table (``info``)."""
    t = df.set_index("model")
    out = []
    for model in t.index.drop("edsr", errors="ignore"):
        slug, size = model.replace("+", "_"), int(t.infer_size[model])
        train = _div(t.train_step_ms[model], t.train_step_ms.get("edsr", math.nan))
        infer = _div(t.infer_ms[model], t.infer_ms.get("edsr", math.nan))
        out.append((f"{slug}_over_edsr_train_step", train, "info"))
        out.append((f"{slug}_over_edsr_infer@{size}", infer, "info"))
    return out


#: issue 14's targets: training step over EDSR's, interleaved in one process
TRAIN_STEP_TARGETS = {"enlcn": "<= 1.30", "edsr+enla": "<= 1.05", "edsr+nlsa": "<= 3.0", "edsr+nla": "<= 1.8"}


def paired_train_steps(
    models: Sequence[str], profile: str, rounds: int, warmup: int, threads: int, device: str
) -> pd.DataFrame:
    """Interleaved training steps of ``models`` in this process (order reversed every other round, as
    :func:`paired_times`); rows ``round, operator, time_ms``.

    The allocator is warmed first (:func:`warm_allocator`). Without it every step page-faults its large
    blocks back from the OS, a cost that does not grow with the model and so pulls every ratio towards 1:
    measured at the cpu profile on one thread, EDSR + ENLA / EDSR read 0.94 (and ENLCN 1.19, NLA 1.87)
    against 1.03 (1.31, 2.13) with it.
    """
    warm_allocator()
    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    steps = {m: build_train_step(m, profile, device)[0] for m in models}
    for _ in range(warmup):
        for step in steps.values():
            step()
    rows = []
    for r in range(rounds):
        for name in models if r % 2 == 0 else models[::-1]:
            sync()
            start = time.perf_counter()
            steps[name]()
            sync()
            rows.append({"round": r, "operator": name, "time_ms": (time.perf_counter() - start) * 1e3})
    return pd.DataFrame(rows)


def paired_contrastive(
    profile: str, rounds: int, threads: int, device: str, modules: int = 5
) -> pd.DataFrame:
    """Interleaved forward+backward of the contrastive loss of ``modules`` ENLCA modules at the profile's
    training shape (B = batch, N = lr_patch²), by the reference (``torch.topk`` + autograd) and by the
    default path (the native row kernel on the CPU); rows ``round, operator, time_ms``."""
    import torch.nn.functional as F

    from ..attention import contrastive as C
    from ..models import model_config
    from ..train import train_config

    warm_allocator()
    torch.set_num_threads(threads)
    cfg = train_config(profile, model="enlcn")
    opts = model_config("enlcn", cfg.scale, cfg.preset).attention_options
    c = model_config("enlcn", cfg.scale, cfg.preset).n_feats // 4  # ENLCA's reduction 4
    g = torch.Generator().manual_seed(0)
    shape = (cfg.batch_size, cfg.lr_patch**2, c)
    amp = float(opts.get("k", 6.0)) ** 0.5
    qs = [F.normalize(torch.randn(shape, generator=g), dim=-1).mul(amp).to(device) for _ in range(modules)]
    ks = [F.normalize(torch.randn(shape, generator=g), dim=-1).mul(amp).to(device) for _ in range(modules)]
    fns = {"contrastive-reference": C.contrastive_loss_reference, "contrastive-default": C.contrastive_loss}

    def run(fn) -> None:
        for q, k in zip(qs, ks, strict=True):
            q, k = q.clone().requires_grad_(True), k.clone().requires_grad_(True)
            fn(q, k, "official").backward()

    rows = []
    for r in range(rounds + 1):  # round 0 warms up (and builds the kernel)
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            start = time.perf_counter()
            run(fns[name])
            if r:
                rows.append({"round": r, "operator": name, "time_ms": (time.perf_counter() - start) * 1e3})
    return pd.DataFrame(rows)


def pipeline_targets(
    df: pd.DataFrame, steps: pd.DataFrame, contrastive: pd.DataFrame
) -> list[tuple[str, float, str]]:
    """Issue 14's targets from one run: interleaved training-step ratios over EDSR, contrastive loss
    reference / default, peak training memory ENLCN / EDSR (first steps, separate processes)."""
    out = []
    for model in dict.fromkeys(steps.operator):
        if model != "edsr":
            ratio = paired_ratio(steps, model, "edsr")
            target = TRAIN_STEP_TARGETS.get(model, "info")
            out.append((f"{model.replace('+', '_')}_over_edsr_train_step_interleaved", ratio, target))
    if not contrastive.empty:
        speed = paired_ratio(contrastive, "contrastive-reference", "contrastive-default")
        out.append(("contrastive_loss_reference_over_default_fwd_bwd_5_modules", speed, ">= 3"))
    t = df.set_index("model")
    if {"enlcn", "edsr"} <= set(t.index):
        mem = _div(t.train_peak_mem_mb["enlcn"], t.train_peak_mem_mb["edsr"])
        out.append(("enlcn_over_edsr_train_peak_mem", mem, "<= 1.5"))
    return out


def run_pipeline(args: argparse.Namespace, threads: int, device: str, out: Path) -> int:
    """Training step time and inference throughput / peak memory of :data:`PIPELINE_MODELS`."""
    from ..train import train_config

    profile = args.profile or ("quick" if args.quick else "cpu")
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    size = args.model_size
    cfg = train_config(profile)
    params = _parameters(args, profile=profile, preset=cfg.preset, repeats=repeats, warmup=warmup)
    prov = start_provenance(profile, params, device, threads)
    print(
        f"enlcn bench --pipeline: profile={profile} (preset {cfg.preset}, ×{cfg.scale}, batch "
        f"{cfg.batch_size} of {cfg.lr_patch}² LR patches), inference at {size}², device={device} "
        f"threads={threads} repeats={repeats} warmup={warmup}"
    )
    rows = []
    for model in PIPELINE_MODELS:
        rows.append(pipeline_row(model, profile, size, repeats, warmup, threads, device, not args.in_process))
        r = rows[-1]
        print(f"{model:>16} train {r['train_step_ms']:10.1f} ms  infer {r['images_per_s']:8.2f} images/s")
    df = pd.DataFrame(rows, columns=list(PIPELINE_COLUMNS))
    shown = ["model", "params", "train_step_ms", "train_peak_mem_mb", "infer_ms", "images_per_s"]
    shown += ["infer_peak_mem_mb", "train_status", "infer_status"]
    with pd.option_context("display.width", 200):
        print(df[shown].to_string(index=False))
    rounds = max(repeats, 1)
    print(f"interleaved training steps ({rounds} rounds) and contrastive loss, in this process …")
    steps = paired_train_steps(list(PIPELINE_MODELS), profile, rounds, warmup, threads, device)
    contrastive = paired_contrastive(profile, rounds, threads, device)
    paired = pd.concat([steps, contrastive], ignore_index=True)
    write_csv_atomic(out.with_name(out.stem + "-pipeline-paired.csv"), paired)
    rat = pipeline_targets(df, steps, contrastive) + attention_floors(steps, profile, threads, device)
    rat += pipeline_ratios(df)
    _print_ratios(rat)
    write_results(out.with_name(out.stem + "-pipeline.csv"), df, prov, rat)
    return 0
