"""``python -m enlcn.bench``: :func:`enlcn.bench.cli.main` (also the entry of the worker processes,
``python -m enlcn.bench --worker <json>``, that :func:`enlcn.bench.timing.run_worker` starts)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
