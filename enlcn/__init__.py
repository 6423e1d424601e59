"""enlcn: a reproducibility study of ENLCA / ENLCN (Xia et al., AAAI 2022)."""

__version__ = "0.1.0"
