"""The ``enlcn`` command (also ``python -m enlcn``)."""

from __future__ import annotations

import argparse
import sys


def _flops(_: argparse.Namespace) -> int:
    from .flops import table4

    print(table4().to_string(index=False))
    return 0


def _deviations(_: argparse.Namespace) -> int:
    from .variants import deviations_table

    print(deviations_table()[["topic", "option", "paper", "official"]].to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enlcn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("flops", help="Table 4: GFLOPs of the attention operators at 100×100, 64 channels"
                   ).set_defaults(func=_flops)
    sub.add_parser("deviations", help="paper vs official code: every known difference"
                   ).set_defaults(func=_deviations)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
