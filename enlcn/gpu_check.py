"""A prepared check for the day a GPU is lent: ``python -m enlcn.gpu_check`` (or ``make gpu-check``).

On one CUDA GPU, in well under 8 minutes, it measures and writes to ``results/bench/gpu-check.json``:

1. **equality**: the CUDA forward (eval) and training forward + backward of every attention kind equal
   the CPU reference on the same weights and input (float32, TF32 off; tolerance :data:`RTOL`/:data:`ATOL`);
2. **training paths**: a few bf16-autocast and ``torch.compile`` training steps of ENLCN (quick preset)
   run and their losses stay finite;
3. **Table 5**: NLA / ENLCA-m128 and NLSA-r4 / ENLCA-m128 forward time at 100² and 150², beside the
   paper's 2080 Ti numbers (:data:`PAPER_TABLE5`);
4. ENLCN / EDSR forward at the paper size (32 blocks, 256 features, ×4, 128² LR), interleaved;
5. the ``paper`` profile's training throughput (steps/s of ENLCN and EDSR, batch 16 of 48² patches), from
   which the README's time estimate for a full paper-schedule run is computed.

Without CUDA it prints what it would measure and exits 0; ``--require-cuda`` makes that an error (exit 1).
``--cpu-dry-run`` runs every step tiny on the CPU (the tests do), so the script itself is never untested.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .provenance import REPO, Provenance, hardware, write_json_atomic

RTOL, ATOL = 1e-3, 1e-4  # float32 on two devices: different reduction orders, no TF32
KINDS = ("nla", "nlsa", "crisscross", "enla", "enlca")
#: paper Table 5 (ms, one 2080 Ti, average of 1000 runs)
PAPER_TABLE5 = {
    "nla": {100: 42.8, 150: 107.2},
    "nlsa-r4": {100: 3.9, 150: 8.8},
    "enlca-m128": {100: 0.9, 150: 1.6},
}
PAPER_STEPS = 1000 * 1000  # the paper profile: 1000 epochs of 1000 iterations


def plan() -> list[str]:
    return [
        f"CUDA vs CPU outputs and gradients of {', '.join(KINDS)} (rtol {RTOL}, atol {ATOL}, TF32 off)",
        "bf16 autocast and torch.compile training steps of ENLCN: finite losses",
        "Table 5: NLA / ENLCA-m128 and NLSA-r4 / ENLCA-m128 at 100² and 150², paper's 2080 Ti numbers beside",
        "ENLCN / EDSR forward, paper preset ×4 at 128², interleaved rounds",
        "paper-profile training throughput (steps/s) of ENLCN and EDSR → time of a full paper schedule",
    ]


def check_equality(device: str, size: int, channels: int) -> list[dict]:
    """Forward (eval) and training forward+backward of every attention kind on ``device`` vs the CPU."""
    from .attention import build_attention

    rows = []
    for kind in KINDS:
        torch.manual_seed(0)
        cpu = build_attention(kind, channels)
        dev = build_attention(kind, channels).to(device)
        dev.load_state_dict(cpu.state_dict())
        x = torch.randn(2, channels, size, size)
        row: dict = {"kind": kind}
        for mode in ("eval", "train"):
            torch.manual_seed(1)  # NLSA's hashing and ENLCA's redraws draw from the global RNG
            a = cpu.train(mode == "train")
            b = dev.train(mode == "train")
            xa, xb = x.clone().requires_grad_(mode == "train"), x.to(device).requires_grad_(mode == "train")
            with torch.set_grad_enabled(mode == "train"):
                torch.manual_seed(2)
                ya = a(xa)
                torch.manual_seed(2)
                yb = b(xb)
            err = float(((ya - yb.cpu()).abs() - RTOL * ya.abs()).max().detach())
            row[f"{mode} max excess over rtol·|y|"] = err
            ok = err <= ATOL
            if mode == "train":
                go = torch.randn_like(ya)
                ya.backward(go)
                yb.backward(go.to(device))
                gerr = float(((xa.grad - xb.grad.cpu()).abs() - RTOL * xa.grad.abs()).max())
                row["input-gradient max excess"] = gerr
                ok = ok and gerr <= ATOL * 10
            row[f"{mode} ok"] = ok
        rows.append(row)
    return rows


def check_training_paths(device: str) -> dict:
    """A few bf16-autocast and ``torch.compile`` training steps of ENLCN (quick preset): finite losses."""
    import numpy as np

    from .train import TrainConfig, Trainer

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pairs = [(hr.reshape(32, 2, 32, 2, 3).mean((1, 3)).round().astype(np.uint8), hr)]
    out = {}
    for name, opts in (("bf16", {"bf16": True}), ("compile", {"compile": True})):
        import tempfile

        cfg = TrainConfig(model="enlcn", scale=2, preset="quick", lr_patch=16, batch_size=2,
                          iters_per_epoch=3, epochs=1, warmup_epochs=0, checkpoint_every=1000, **opts)
        with tempfile.TemporaryDirectory() as tmp:
            t = Trainer(cfg, pairs, [], tmp, device=device)
            losses = []
            t.train_step = _recording(t.train_step, losses)
            try:
                t.fit(progress=False)
                finite = all(map(math.isfinite, losses))
                out[name] = {"steps": len(losses), "losses": losses, "finite": finite}
            except Exception as exc:  # noqa: BLE001 - the check reports what failed
                out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500], "finite": False}
    return out


def _recording(step, losses: list):
    def wrapped(lr, hr):
        l1, cl = step(lr, hr)
        losses.append(l1 + (cl or 0.0))
        return l1, cl

    return wrapped


def table5(device: str, sizes: Sequence[int], repeats: int) -> dict:
    """Forward times of NLA, NLSA-r4 and ENLCA-m128 and the paper's ratios beside ours."""
    from .bench import run_bench

    ops = ("nla-sdpa", "nlsa-r4", "enlca-m128-fast")
    df = run_bench(sizes, ops, repeats=repeats, warmup=3, device=device, isolate=False)
    t = df.set_index(["operator", "size"])["time_ms"]
    out = {}
    for s in sizes:
        ours = {op: float(t.get((op, s), math.nan)) for op in ops}
        paper = {k: v.get(s, math.nan) for k, v in PAPER_TABLE5.items()}
        out[str(s)] = {
            "ms": ours,
            "nla_over_enlca": ours["nla-sdpa"] / ours["enlca-m128-fast"],
            "nlsa_over_enlca": ours["nlsa-r4"] / ours["enlca-m128-fast"],
            "paper_nla_over_enlca": paper["nla"] / paper["enlca-m128"],
            "paper_nlsa_over_enlca": paper["nlsa-r4"] / paper["enlca-m128"],
        }
    return out


def enlcn_over_edsr(device: str, size: int, rounds: int, preset: str) -> float:
    from .bench import paired_ratio, paired_times

    names = [f"model-enlcn-{preset}-x4", f"model-edsr-{preset}-x4"]
    paired = paired_times(names, size, rounds, 1, torch.get_num_threads(), device)
    return paired_ratio(paired, names[0], names[1])


def throughput(device: str, profile: str, steps: int) -> dict:
    """Training steps per second of ENLCN and EDSR under ``profile`` (after one warm-up step)."""
    from .bench import build_train_step

    out = {}
    for model in ("enlcn", "edsr"):
        step, _ = build_train_step(model, profile, device)
        step()
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rate = steps / (time.perf_counter() - start)
        out[model] = {"steps_per_s": rate, "paper_schedule_hours": PAPER_STEPS / rate / 3600}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="enlcn.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--require-cuda", action="store_true", help="no CUDA is an error (exit 1), not a skip")
    p.add_argument("--cpu-dry-run", action="store_true", help="every step, tiny, on the CPU (for tests)")
    p.add_argument("--out", default=str(REPO / "results" / "bench" / "gpu-check.json"))
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_dry_run:
        print("gpu_check: no CUDA device; it would measure:\n  - " + "\n  - ".join(plan()))
        if args.require_cuda:
            why = "--require-cuda given, torch.cuda.is_available() is False"
            print(f"gpu_check: error: {why}", file=sys.stderr)
            return 1
        return 0
    device = "cuda" if cuda and not args.cpu_dry_run else "cpu"
    dry = args.cpu_dry_run
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    result: dict = {"device": device, "dry_run": dry}
    steps = [
        ("equality", lambda: check_equality(device, 12 if dry else 48, 16 if dry else 64)),
        ("training_paths", lambda: check_training_paths(device)),
        ("table5", lambda: table5(device, (16, 24) if dry else (100, 150), 2 if dry else 50)),
        ("enlcn_over_edsr", lambda: enlcn_over_edsr(device, 16 if dry else 128, 2 if dry else 10,
                                                     "quick" if dry else "paper")),
        ("throughput", lambda: throughput(device, "quick" if dry else "paper", 2 if dry else 20)),
    ]
    for name, fn in steps:
        s = time.perf_counter()
        try:
            result[name] = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on: one failure must not hide the others
            result[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        shown = json.dumps(result[name], default=str)[:400]
        print(f"gpu_check: {name} ({time.perf_counter() - s:.1f} s): {shown}")
    equality, paths = result["equality"], result["training_paths"]
    ok = isinstance(equality, list) and all(r.get("train ok") and r.get("eval ok") for r in equality)
    ok = ok and "error" not in paths and all(v.get("finite") for v in paths.values())
    result["all_checks_pass"] = bool(ok)
    hw = hardware(device, torch.get_num_threads())
    prov = Provenance("enlcn.gpu_check", "paper", {"dry_run": dry}, seed=0, hardware=hw)
    prov.wall_time_s = round(time.perf_counter() - t0, 1)
    write_json_atomic(Path(args.out), {"provenance": prov.to_dict(), "result": result})
    print(f"gpu_check: wrote {args.out} ({prov.wall_time_s} s); checks {'pass' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
