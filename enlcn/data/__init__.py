"""Data: MATLAB-exact bicubic LR, image IO, paired datasets and the offline default images."""

from .datasets import BENCHMARKS, PairedImages, benchmark_dataset, div2k
from .images import ImageError, load_rgb, save_rgb
from .resize import bicubic_downscale, imresize_matlab, modcrop
from .synthetic import skimage_images

__all__ = [
    "BENCHMARKS",
    "ImageError",
    "PairedImages",
    "benchmark_dataset",
    "bicubic_downscale",
    "div2k",
    "imresize_matlab",
    "load_rgb",
    "modcrop",
    "save_rgb",
    "skimage_images",
]
