"""The ``enlcn`` command (also ``python -m enlcn``).

enlcn train --profile quick [--config run.yaml] [--set key=value ...] [--data skimage|DIR] --out DIR
enlcn eval --checkpoint C [--official] --data DIR|skimage [--mode whole|chop|tile] [--ensemble]
enlcn upscale IN OUT --checkpoint C [--official --scale S]
enlcn study table2 seeds k table6 --profile cpu   (resumable; --status lists the runs)
enlcn study import BUNDLE [--root DIR]   (the one-shot GPU study's bundle → results/gpu-x2/study/)
enlcn maps IMAGE --query Y,X --checkpoint C [--module N --k K --m M --seed S] --out maps.png
enlcn flops | deviations | bench [...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[2, 3]"]`` → ``{"a": 1, "b": [2, 3]}`` (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({_yaml_problem(err)})") from err
    return out


def _yaml_problem(err: Exception) -> str:
    """PyYAML's error as one line: what is wrong and where (``line L, column C``)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def load_config_file(path: str | None) -> dict[str, Any]:
    """A YAML mapping of TrainConfig fields (empty when no file is given)."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({_yaml_problem(err)})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping of training options, got {type(data).__name__}")
    return data


def image_pairs(source: str, scale: int, split: str) -> list[tuple[str, Any, Any]]:
    """``(name, lr, hr)`` uint8 pairs from ``skimage`` (offline photographs) or a folder of HR images."""
    if source != "skimage":
        from .data.datasets import PairedImages

        return list(PairedImages(source, scale))
    from .data import bicubic_downscale, modcrop
    from .data.synthetic import skimage_images

    return [(name, bicubic_downscale(hr, scale), modcrop(hr, scale)) for name, hr in skimage_images(split)]


def _train(args: argparse.Namespace) -> int:
    from .allocator import warm_allocator
    from .train import Trainer, train_config

    config = train_config(args.profile, **{**load_config_file(args.config), **parse_sets(args.set or [])})
    warm_allocator()  # steps reuse their freed memory instead of page-faulting it back (enlcn.allocator)
    named = image_pairs(args.data, config.scale, "train")
    for name, lr, _ in named:  # PatchBatches checks too, but knows no file names
        if min(lr.shape[:2]) < config.lr_patch:
            raise ValueError(
                f"{args.data}: training image {name!r} is {lr.shape[0]}×{lr.shape[1]} at LR "
                f"(×{config.scale}), smaller than the LR patch {config.lr_patch}"
            )
    train = [(lr, hr) for _, lr, hr in named]
    val = image_pairs(args.val or args.data, config.scale, "test")
    trainer = Trainer(config, train, val, args.out)  # under torchrun: one process of the DDP run
    summary = trainer.fit(resume=args.resume)
    if not trainer.is_main:
        return 0
    print(
        f"done: step {summary['step']}, best validation Y-PSNR {summary['best_psnr']:.2f} dB, "
        f"{summary['seconds']:.0f} s; outputs in {args.out}"
    )
    return 0


def _model(args: argparse.Namespace):
    if args.official:
        from .models import load_official_checkpoint

        if args.scale is None:
            raise SystemExit("--official needs --scale (the official checkpoints do not store it)")
        return load_official_checkpoint(args.checkpoint, args.scale), args.scale
    from .train import load_trained

    model, config = load_trained(args.checkpoint)
    if args.scale is not None and args.scale != config.scale:
        raise ValueError(
            f"--scale {args.scale}: {args.checkpoint} is a ×{config.scale} model (its scale is stored in it; "
            "--scale is for --official checkpoints)"
        )
    return model, config.scale


def _eval(args: argparse.Namespace) -> int:
    from .atomic import check_writable
    from .evaluate import check_scorable, evaluate

    if args.save_dir is not None:
        check_writable(args.save_dir, "--save-dir folder")
    model, scale = _model(args)
    pairs = image_pairs(args.data, scale, "test")
    check_scorable(pairs, scale, args.data)
    table = evaluate(model, pairs, scale, args.mode, args.ensemble, args.save_dir)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _upscale(args: argparse.Namespace) -> int:
    from .atomic import check_writable
    from .data.images import IMAGE_SUFFIXES, image_size, load_rgb, save_rgb
    from .evaluate import check_whole_pass_fits, upscale
    from .metrics import quantize

    src, out = Path(args.input), Path(args.output)
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; give the output image's file name")
    if out.exists() and out.resolve() == src.resolve():
        raise ValueError(f"{out}: is the input image; refusing to write over it")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{out}: unknown image type {out.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    height, width = image_size(src)  # the header only: nothing decoded yet
    check_writable(out.parent, "output folder")
    model, scale = _model(args)
    if args.mode == "whole":
        check_whole_pass_fits(model, height, width, scale, str(src))
    save_rgb(out, quantize(upscale(model, load_rgb(src), scale, args.mode, args.ensemble)))
    print(f"wrote {args.output} (×{scale})")
    return 0


def _maps(args: argparse.Namespace) -> int:
    from .atomic import check_writable
    from .data.images import image_size, load_rgb
    from .evaluate import check_whole_pass_fits
    from .explore import Knobs, explore, parse_query
    from .viz import plot_exploration

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; give the figure's file name (e.g. maps.png)")
    query = parse_query(args.query)
    height, width = image_size(args.image)
    check_writable(out.parent, "output folder")
    model, scale = _model(args)
    check_whole_pass_fits(model, height, width, scale, str(args.image))
    knobs = Knobs(k=args.k, m=args.m, seed=args.seed, orthogonal=args.orthogonal)
    ex = explore(model, load_rgb(args.image), query, args.module, knobs)
    fig = plot_exploration(load_rgb(args.image), {Path(args.checkpoint).name: ex})
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    for key, value in ex.numbers.items():
        print(f"{key:>28}: {value:.6g}")
    print(f"wrote {out}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data.fetch import FetchError, fetch, list_datasets

    if args.action == "list":
        print(list_datasets()[["name", "file", "size", "md5", "note"]].to_string(index=False))
        return 0
    try:
        root = fetch(args.name, args.root)
    except FetchError as err:
        print(f"enlcn data fetch: {err}", file=sys.stderr)
        return 3
    print(f"{args.name}: ready in {root}")
    return 0


def _flops(_: argparse.Namespace) -> int:
    from .flops import table4

    print(table4().drop(columns="note").to_string(index=False))
    return 0


def _deviations(_: argparse.Namespace) -> int:
    from .variants import deviations_table

    print(deviations_table()[["topic", "option", "paper", "official"]].to_string(index=False))
    return 0


def _study_import(args: argparse.Namespace) -> int:
    """``enlcn study import BUNDLE``: check, re-score on the CPU and place a GPU bundle (enlcn.study.gpu)."""
    from .provenance import project_root
    from .study import gpu

    if len(args.experiments) != 2:
        raise ValueError("usage: enlcn study import BUNDLE [--root DIR]")
    root = project_root(args.root or "")
    rescored = gpu.import_bundle(Path(args.experiments[1]), root)
    target = root / "results" / gpu.PROFILE / "study"
    beyond = rescored[rescored["beyond"]]
    print(
        f"imported {args.experiments[1]} into {target}: {rescored['run'].nunique()} carried runs "
        f"re-scored on the CPU, {beyond['run'].nunique()} beyond {gpu.RESCORE_TOLERANCE_DB} dB "
        "(the GPU's scores are kept)"
    )
    if len(beyond):
        print(beyond.to_string(index=False))
    print("the Findings tables read it when recomputed: make results NOTEBOOKS=findings")
    return 0


def _study(args: argparse.Namespace) -> int:
    from . import study

    if args.experiments[:1] == ["import"]:
        return _study_import(args)
    if args.status:
        print(study.status(args.profile).to_string(index=False))
        return 0
    if args.rescore:
        names = args.runs or [r.name for e in args.experiments for r in study.get_experiment(e)]
        for name in dict.fromkeys(names):
            run = study.get_run(name)
            if study.is_done(args.profile, run):
                study.rescore(args.profile, run)
                print(f"== {name} ({args.profile}): rescored")
        return 0
    import signal

    # `kill` (SIGTERM) unwinds like Ctrl-C, so the session's time is recorded before the process ends
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .allocator import warm_allocator

    warm_allocator()  # steps reuse their freed memory instead of page-faulting it back (enlcn.allocator)
    names = list(args.runs or []) + [r.name for e in args.experiments for r in study.get_experiment(e)]
    from .study.pilot import check_may_train

    runs = [study.get_run(n) for n in dict.fromkeys(names)]  # single runs first, then the experiments'
    check_may_train(args.profile, runs)  # before any training
    for run in runs:
        name = run.name
        if not study.is_done(args.profile, run):
            try:
                study.train_run(args.profile, run, progress=not args.no_progress)
            except study.RunLocked as err:
                if not args.skip_locked:
                    raise
                print(f"== {name} ({args.profile}): skipped, {err}")
                continue
        print(f"== {name} ({args.profile}): done")
    for experiment in args.experiments:
        scores = study.ensure(args.profile, experiment, train_missing=False)
        print(f"== {experiment} ({args.profile})")
        print(study.summary_table(scores).to_string() if len(scores) else "no finished runs")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enlcn", description="ENLCA / ENLCN reproducibility study")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model (profiles quick | cpu | paper)")
    p.add_argument("--profile", default="quick")
    p.add_argument("--config", help="YAML file of training options (TrainConfig fields)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one option (repeatable)")
    p.add_argument("--data", default="skimage", help="'skimage' (offline default) or a folder of HR images")
    p.add_argument("--val", help="validation data (default: the test split of --data)")
    p.add_argument("--out", required=True, help="run folder: config, logs, checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=_train)

    for name, func, helptext in (
        ("eval", _eval, "Y-PSNR/SSIM of a checkpoint on a dataset"),
        ("upscale", _upscale, "super-resolve one image"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "upscale":
            p.add_argument("input")
            p.add_argument("output")
        else:
            p.add_argument("--data", default="skimage")
            p.add_argument("--save-dir", help="write the SR images here")
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--official", action="store_true", help="an official ENLCAx2.pt / ENLCAx4.pt")
        p.add_argument("--scale", type=int, help="with --official")
        p.add_argument("--mode", default="whole", choices=["whole", "chop", "tile"])
        p.add_argument("--ensemble", action="store_true", help="×8 self-ensemble")
        p.set_defaults(func=func)

    p = sub.add_parser("data", help="list or download the official datasets (needs internet)")
    data_sub = p.add_subparsers(dest="action", required=True)
    data_sub.add_parser("list", help="the known datasets, their URLs, sizes and checksums")
    f = data_sub.add_parser("fetch", help="download, verify and extract one dataset")
    f.add_argument("name")
    f.add_argument("--root", default="data", help="folder to download and extract into")
    p.set_defaults(func=_data)

    p = sub.add_parser("study", help="train and score the ablation runs (resumable; see enlcn.study)")
    p.add_argument("experiments", nargs="*",
                   help="table2 | seeds | k | table6 | pilot | grid (in order); or: import BUNDLE")
    p.add_argument("--root", help="import: the folder holding results/ (default: this repository)")
    p.add_argument("--profile", default="quick")
    p.add_argument("--status", action="store_true", help="list the runs and how far each got")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="train these runs first, in this order")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--rescore", action="store_true", help="score the finished runs again (new test sets)")
    p.add_argument("--skip-locked", action="store_true",
                   help="skip runs another process is training (processes sharing one list: make study)")
    p.set_defaults(func=_study)

    p = sub.add_parser("maps", help="one query's correlation maps (exact, estimate, difference), a figure")
    p.add_argument("image", help="an LR image")
    p.add_argument("--query", required=True, help="ROW,COL of the query in the LR image")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--official", action="store_true", help="an official ENLCAx2.pt / ENLCAx4.pt")
    p.add_argument("--scale", type=int, help="with --official")
    p.add_argument("--module", type=int, default=0, help="attention module (0-based; ENLCN has 5)")
    p.add_argument("--k", type=float, help="recompute the estimate with this amplification (Eq. 3)")
    p.add_argument("--m", type=int, help="… with this many random features (Eq. 4)")
    p.add_argument("--seed", type=int, help="… with a fresh draw of the random features")
    p.add_argument("--orthogonal", type=lambda v: v.lower() in ("1", "true", "yes"), default=None,
                   help="… with orthogonal (true) or i.i.d. (false) features")
    p.add_argument("--out", default="maps.png", help="the figure (PNG)")
    p.set_defaults(func=_maps)
    sub.add_parser("flops", help="Table 4: GFLOPs at 100×100, 64 channels").set_defaults(func=_flops)
    sub.add_parser("deviations", help="paper vs official code").set_defaults(func=_deviations)
    p = sub.add_parser("bench", help="time and memory of the attention operators (see enlcn.bench)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_environment()
        return args.func(args)
    except (ValueError, KeyError, OSError, IndexError, RuntimeError) as err:
        print(f"enlcn {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2


def check_environment() -> None:
    """Refuse, before any work, the ``ENLCN_*`` settings the native kernels would refuse later
    (``ENLCN_ISA``, ``ENLCN_BUILD_WAIT``): a ``ValueError`` naming the variable and what is wrong."""
    from .attention import native

    native.isa_level()
    native.build_wait()


def one_line(err: BaseException) -> str:
    """An error as one line: ``KeyError``'s quotes dropped, a bare ``OSError`` as ``<file>: <reason>``."""
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = str(err.args[0])
    elif isinstance(err, OSError) and type(err).__str__ is OSError.__str__ and err.strerror:
        text = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        text = str(err)
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
