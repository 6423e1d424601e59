"""Data: MATLAB-exact bicubic LR, image IO, paired datasets, training patches, offline and procedural
images, and the downloader of the official datasets."""

from .datasets import BENCHMARKS, PairedImages, TrainPatches, benchmark_dataset, div2k, make_loader
from .fetch import DATASETS, FetchError, fetch, list_datasets
from .images import ImageError, load_rgb, save_rgb
from .resize import bicubic_downscale, imresize_matlab, modcrop
from .synthetic import (
    SKIMAGE_TEST,
    SKIMAGE_TRAIN,
    SelfSimilar,
    SelfSimilarSet,
    self_similar_image,
    skimage_images,
    true_repeats,
)

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "FetchError",
    "ImageError",
    "PairedImages",
    "SKIMAGE_TEST",
    "SKIMAGE_TRAIN",
    "SelfSimilar",
    "SelfSimilarSet",
    "TrainPatches",
    "benchmark_dataset",
    "bicubic_downscale",
    "div2k",
    "fetch",
    "imresize_matlab",
    "list_datasets",
    "load_rgb",
    "make_loader",
    "modcrop",
    "save_rgb",
    "self_similar_image",
    "skimage_images",
    "true_repeats",
]
