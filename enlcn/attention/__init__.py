"""Attention modules of the study: ENLCA (the paper's), ENLA, and the peers NLA, NLSA and criss-cross.

Public API (stable; the notebooks and users import these names)::

    gaussian_projection(m, c, orthogonal, generator=None) -> Tensor[m, c]      # F of Eq. 4
    random_features(u, projection, eps=0.0) -> Tensor[..., m]                  # φ of Eq. 4
    enla(q, k, v, projection, eps=0.0) -> Tensor[B, N, c_out]                 # Eqs. 5-6
    contrastive_loss(q, k, form="paper", n1=0.02, n2=0.08, b=1.0) -> scalar   # Eqs. 8-10
    build_attention(kind, channels, **options) -> Attention                    # every kind
"""

from .base import Attention
from .contrastive import contrastive_loss
from .enla import enla
from .kernels import gaussian_projection, random_features
from .registry import KINDS, build_attention

__all__ = [
    "KINDS",
    "Attention",
    "build_attention",
    "contrastive_loss",
    "enla",
    "gaussian_projection",
    "random_features",
]
