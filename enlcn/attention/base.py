"""The interface every attention kind shares.

An attention module maps a feature map ``x`` of shape ``B×C×H×W`` to a feature map of the same shape
(the residual connection is part of the module, as in the official code) and can report the normalized
aggregation weights one query position gives every position (``attention_weights``), which the
correlation maps, the explorer and the tests are built on.

Modules with a training-time auxiliary loss (ENLCA's contrastive loss) leave it in ``aux_loss`` after a
forward pass in training mode; the model collects it. Everything else leaves ``aux_loss`` as ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn


class Attention(nn.Module):
    """Base class: ``forward(x) -> x'`` (same shape) and ``attention_weights(x, index) -> [B, H*W]``."""

    #: the typed options dataclass of this kind (set by every subclass)
    Options: type

    def __init__(self, channels: int, options: Any) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.options = options
        self.aux_loss: Tensor | None = None

    def attention_weights(self, x: Tensor, index: int) -> Tensor:
        """Normalized weights ``[B, H*W]`` that query position ``index`` (row-major) gives every position."""
        raise NotImplementedError

    def training_path(self, x: Tensor) -> str:
        """Which code computes a training forward/backward of input like ``x`` (for run provenance)."""
        return "autograd"

    def extra_repr(self) -> str:
        opts = ", ".join(f"{f.name}={getattr(self.options, f.name)!r}" for f in fields(self.options))
        return f"channels={self.channels}, {opts}"

    # -- shared argument checks -------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise a clear error for anything but a ``B×C×H×W`` float tensor with our channel count."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__} expects a B×C×H×W tensor, got {shape}")
        if x.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.channels} channels, got input with {x.shape[1]}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point tensor, got {x.dtype}")

    @staticmethod
    def check_index(x: Tensor, index: int) -> int:
        """Validate a row-major query index into the ``H×W`` grid of ``x``; negative indices count back."""
        n = x.shape[-2] * x.shape[-1]
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"query index {index} is outside the {x.shape[-2]}×{x.shape[-1]} grid (N = {n})")
        return index % n


def tokens(x: Tensor) -> Tensor:
    """``B×C×H×W`` feature map → ``B×N×C`` tokens (row-major positions)."""
    return x.flatten(2).transpose(1, 2)


def feature_map(t: Tensor, height: int, width: int) -> Tensor:
    """``B×N×C`` tokens → ``B×C×H×W`` feature map (inverse of :func:`tokens`)."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], height, width)


def one_hot_weights(x: Tensor, index: int) -> Tensor:
    """Weights ``[B, N]`` that put all mass on position ``index`` (what the identity 'attends' to)."""
    b, n = x.shape[0], x.shape[-2] * x.shape[-1]
    w = torch.zeros(b, n, dtype=x.dtype, device=x.device)
    w[:, index] = 1.0
    return w


@dataclass(frozen=True)
class NoOptions:
    """Kind ``none`` takes no options."""


class NoAttention(Attention):
    """Kind ``none``: the identity (the baseline without any attention module)."""

    Options = NoOptions

    def __init__(self, channels: int, options: Any) -> None:
        super().__init__(channels, options)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x

    def attention_weights(self, x: Tensor, index: int) -> Tensor:
        self.check_input(x)
        return one_hot_weights(x, self.check_index(x, index))
