"""``python -m enlcn.study.gpu`` (what ``tools/gpu_study.sh`` runs): :func:`enlcn.study.gpu.cli.main`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
