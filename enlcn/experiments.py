"""Experiments the notebooks run that need no training: each returns a tidy pandas DataFrame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from .attention.enla import enla_weights
from .attention.kernels import gaussian_projection


def photo_patches(size: int, patch: int = 3) -> Tensor:
    """Unit-norm, mean-free ``patch×patch×3`` patches of scikit-image's astronaut, ``[N, 3·patch²]``.

    The photograph is centre-cropped to a square and resized to ``size×size`` (area-averaging), so
    ``N = size²``; patches overlap with stride 1 and zero padding at the borders. These stand in for
    learned embeddings θ(X), δ(X) when no trained model is involved.
    """
    from skimage import data

    img = torch.from_numpy(data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)[None]  # [1,3,H,W]
    side = min(img.shape[-2:])
    img = img[..., :side, :side]
    img = F.interpolate(img, size=(size, size), mode="area")
    cols = F.unfold(img, patch, padding=patch // 2)[0].T  # [N, 3·patch²]
    cols = cols - cols.mean(dim=1, keepdim=True)
    return F.normalize(cols, dim=1, eps=1e-6)


def effective_positions(weights: Tensor) -> Tensor:
    """``1/Σ w²`` per row: how many positions a distribution effectively spreads over."""
    return 1.0 / weights.pow(2).sum(-1)


def attention_error_vs_k(
    ks: list[float], ms: list[int], image_size: int, queries: int, repeats: int, seed: int = 0
) -> pd.DataFrame:
    """ENLA's estimated attention weights against exact softmax weights, as ``k`` and ``m`` vary.

    Embeddings are ``√k``-scaled :func:`photo_patches` (``Q = K``, so ``QᵀK = k·cos``, Eq. 3 and 8). For
    ``queries`` random query positions and ``repeats`` fresh projections per setting, records the mean
    total-variation distance ``½Σ|ŵ − w|`` between ENLA's weights (:func:`enla_weights`, no ``eps``) and
    ``softmax(QᵢᵀK)``, for i.i.d. (paper) and orthogonal (official) features. Columns:
    ``k, m, features, tv_distance, tv_se, effective_positions``.
    """
    gen = torch.Generator().manual_seed(seed)
    base = photo_patches(image_size)  # [N, c]
    n, c = base.shape
    idx = torch.randperm(n, generator=gen)[:queries]
    rows = []
    for k in ks:
        emb = base * math.sqrt(k)
        q = emb[idx]  # [Q, c]
        exact = torch.softmax(q @ emb.T, dim=-1)  # [Q, N]
        eff = effective_positions(exact).mean().item()
        keys = emb.expand(len(idx), n, c)  # [Q, N, c] (a view)
        for m in ms:
            for orthogonal in (False, True):
                tv = []
                for _ in range(repeats):
                    proj = gaussian_projection(m, c, orthogonal, gen)
                    est = enla_weights(q, keys, proj)  # [Q, N]
                    tv.append(0.5 * (est - exact).abs().sum(-1))
                tv_all = torch.cat(tv)
                rows.append(
                    dict(
                        k=k,
                        m=m,
                        features="orthogonal (official)" if orthogonal else "i.i.d. (paper)",
                        tv_distance=tv_all.mean().item(),
                        tv_se=(tv_all.std() / math.sqrt(len(tv_all))).item(),
                        effective_positions=eff,
                    )
                )
    return pd.DataFrame(rows)
