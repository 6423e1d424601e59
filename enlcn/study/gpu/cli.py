"""The one-shot GPU study (book/protocol.md, "Pre-registered: the one-shot GPU setting").

``python -m enlcn.study.gpu`` (:mod:`enlcn.study.gpu.__main__`, run by ``tools/gpu_study.sh``): its arguments,
then :func:`~enlcn.study.gpu.study.run_study`. The first line above is the command's description.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .setting import Setting
from .study import run_study


def main(argv: list[str] | None = None) -> int:
    """``python -m enlcn.study.gpu --device cuda|cpu --budget-s N --out DIR [--workers P]``."""
    parser = argparse.ArgumentParser(prog="enlcn.study.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--budget-s", type=float, default=Setting.budget_s, help="B, from the script's start")
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="bundle folder (default: $OUT)")
    parser.add_argument("--workers", type=int, help="processes (default: one per two cores, ≤ 8, on CUDA)")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out is required when $OUT is not set")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("enlcn.study.gpu: --device cuda but CUDA is not available", file=sys.stderr)
            return 2
    t_start = float(os.environ.get("ENLCN_T0", "") or time.time())
    return run_study(args.device, args.budget_s, Path(args.out), args.workers, t_start)
