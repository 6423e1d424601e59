"""Super-resolution models: EDSR, ENLCN and EDSR + any attention kind, and official-checkpoint loading.

Public API::

    build_model(name, scale, preset="paper", **overrides) -> SRModel   # "edsr", "enlcn", "edsr+<kind>"
    model_config(name, scale, preset="paper", **overrides) -> ModelConfig
    contrastive_loss(model) -> Tensor | None        # mean of the modules' losses (official trainer.py:51)
    set_contrastive(model, enabled) -> int          # switch ENLCA's loss on/off (warm-up)
    count_parameters(model, trainable_only=False) -> int
    load_official_checkpoint(path_or_state_dict, scale) -> SRModel    # ENLCAx2.pt / ENLCAx4.pt
"""

from .checkpoints import load_official_checkpoint, to_official_state_dict
from .edsr import (
    ModelConfig,
    SRModel,
    build_model,
    contrastive_loss,
    count_parameters,
    model_config,
    set_contrastive,
)

__all__ = [
    "ModelConfig",
    "SRModel",
    "build_model",
    "contrastive_loss",
    "count_parameters",
    "load_official_checkpoint",
    "model_config",
    "set_contrastive",
    "to_official_state_dict",
]
