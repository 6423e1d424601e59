"""EDSR with attention modules in its body: EDSR, ENLCN (= EDSR + ENLCA) and EDSR + any attention kind.

Layout (the official ``src/model/enlcn.py`` and ``edsr.py``, with the same submodule names, so that the
official checkpoints map onto ours key by key)::

    sub_mean  (MeanShift: frozen 1×1 conv, x − rgb_range·mean)
    head      [conv3×3 3→C]
    body      [attn, RB×e, attn, RB×e, …, attn, conv3×3]      (ModuleList)  + global skip from head
    tail      [Upsampler, conv3×3 C→3]
    add_mean  (MeanShift: x + rgb_range·mean)

``attn`` is one attention module before the first ResBlock and one after every ``attention_every``
(``e``) blocks: with the paper's 32 blocks and ``e = 8`` these are body indices 0, 9, 18, 27, 36 and the
final conv is ``body.37``, as in the official code (which hard-codes ``i % 9`` and so only runs with
every-8 placement; we generalise to ``e = n_resblocks // 4`` by default). ``edsr`` has no attention
module: ``body`` is the 32 ResBlocks and ``body.32`` the conv, as in the official EDSR.

The forward pass returns the SR image in both modes (the official ENLCN returns ``(sr, losses)`` when
training); the attention modules' auxiliary losses are collected by :meth:`SRModel.aux_losses`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..attention import KINDS, Attention, build_attention
from ..attention.registry import OptionError
from ..profiles import ModelPreset, get_model_preset

#: DIV2K RGB mean used by EDSR's MeanShift (std 1)
RGB_MEAN = (0.4488, 0.4371, 0.4040)


# -- config -------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """Everything :class:`SRModel` is built from. ``attention_kind`` is ``None`` for plain EDSR."""

    name: str
    scale: int
    n_resblocks: int = 32
    n_feats: int = 256
    res_scale: float = 0.1
    rgb_range: float = 1.0
    attention_kind: str | None = "enlca"
    attention_options: dict[str, Any] = field(default_factory=dict)  # for build_attention(kind, C, **…)
    attention_every: int | None = None  # ResBlocks between attention modules; None: n_resblocks // 4

    def __post_init__(self) -> None:
        if self.scale < 2 or not (_is_power_of_two(self.scale) or self.scale == 3):
            raise ValueError(f"scale must be 3 or a power of two >= 2, got {self.scale!r}")
        for name in ("n_resblocks", "n_feats"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.rgb_range <= 0:
            raise ValueError(f"rgb_range must be positive, got {self.rgb_range!r}")
        if self.attention_kind is None:
            return
        if self.attention_kind not in KINDS:
            raise ValueError(
                f"unknown attention kind {self.attention_kind!r}; choose one of {', '.join(KINDS)}"
            )
        if self.attention_every is None:
            if self.n_resblocks % 4:
                raise ValueError(
                    f"attention modules go after every n_resblocks/4 blocks, but n_resblocks="
                    f"{self.n_resblocks} is not divisible by 4; set attention_every explicitly"
                )
            self.attention_every = self.n_resblocks // 4
        every = self.attention_every
        if not isinstance(every, int) or every < 1 or self.n_resblocks % every:
            raise ValueError(
                f"attention_every={every!r} must be a positive int dividing n_resblocks={self.n_resblocks}"
            )

    def attention_positions(self) -> list[int]:
        """Indices in ``body`` of the attention modules (``[0, 9, 18, 27, 36]`` for the paper's ENLCN)."""
        if self.attention_kind is None:
            return []
        e = self.attention_every
        return [j * (e + 1) for j in range(self.n_resblocks // e + 1)]


def _is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def parse_name(name: str) -> str | None:
    """Attention kind of model ``name``: ``edsr`` → None, ``enlcn`` → ``enlca``, ``edsr+<kind>`` → kind."""
    if name == "edsr":
        return None
    if name == "enlcn":
        return "enlca"
    if name.startswith("edsr+") and name[5:] in KINDS:
        return name[5:]
    known = ["edsr", "enlcn"] + [f"edsr+{k}" for k in KINDS]
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(known)}")


def preset_attention_options(kind: str | None, preset: ModelPreset) -> dict[str, Any]:
    """The options a preset gives attention ``kind``.

    ENLA/ENLCA take ``m`` (and ENLCA ``k``) and the model's ``res_scale`` (official: ``out·res_scale + x``
    with ``args.res_scale``); NLSA takes the model's ``res_scale`` too, as NLSN passes it. NLA's
    ``res_scale`` multiplies the *input* (NLSN's definition), so it keeps its default 1; criss-cross has
    none.
    """
    if kind == "enlca":
        return {"m": preset.m, "k": preset.k, "res_scale": preset.res_scale}
    if kind == "enla":
        return {"m": preset.m, "res_scale": preset.res_scale}
    if kind == "nlsa":
        return {"res_scale": preset.res_scale}
    return {}


#: fields of ModelConfig that build_model's keyword overrides may set
OVERRIDABLE = ("n_resblocks", "n_feats", "res_scale", "rgb_range", "attention_options", "attention_every")


def model_config(name: str, scale: int, preset: str = "paper", **overrides: Any) -> ModelConfig:
    """The :class:`ModelConfig` of ``build_model(name, scale, preset, **overrides)``.

    ``overrides`` set fields of :data:`OVERRIDABLE` (``attention`` is accepted for ``attention_options``);
    ``attention_options`` are merged over the preset's options for the kind. A ``res_scale`` override
    also reaches the attention modules that take the model's ``res_scale``.
    """
    if "attention" in overrides:
        if "attention_options" in overrides:
            raise TypeError("give either attention= or attention_options=, not both")
        overrides["attention_options"] = overrides.pop("attention")
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise OptionError(
            f"build_model got unknown override(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(OVERRIDABLE)} (and attention=)"
        )
    kind = parse_name(name)
    p = get_model_preset(preset)
    p = dataclasses.replace(p, **{k: v for k, v in overrides.items() if k in ("res_scale", "rgb_range")})
    options = {**preset_attention_options(kind, p), **dict(overrides.pop("attention_options", None) or {})}
    if kind is None and options:
        raise ValueError(
            f"model {name!r} has no attention modules, but attention options {options} were given"
        )
    base = {
        "n_resblocks": p.n_resblocks,
        "n_feats": p.n_feats,
        "res_scale": p.res_scale,
        "rgb_range": p.rgb_range,
    }
    return ModelConfig(name, scale, attention_kind=kind, attention_options=options, **{**base, **overrides})


def build_model(name: str, scale: int, preset: str = "paper", **overrides: Any) -> SRModel:
    """Build model ``name`` (``edsr``, ``enlcn`` ≡ ``edsr+enlca``, ``edsr+<kind>``) for ×``scale``.

    ``preset`` is a key of :data:`enlcn.profiles.MODEL_PRESETS`; ``overrides`` change single fields, e.g.
    ``build_model("enlcn", 4, "cpu", n_feats=64, attention={"m": 64, "variant": "paper"})``.
    """
    return SRModel(model_config(name, scale, preset, **overrides))


# -- building blocks ----------------------------------------------------------------------------------
def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class MeanShift(nn.Conv2d):
    """Frozen 1×1 conv adding ``sign·rgb_range·mean`` (std 1); its 12 + 12 parameters count, as officially."""

    def __init__(self, rgb_range: float, sign: int) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(RGB_MEAN))
        self.requires_grad_(False)


class ResBlock(nn.Module):
    """EDSR block: ``x + res_scale · conv(relu(conv(x)))``."""

    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler: per ×2 stage ``conv C→4C, PixelShuffle(2)``; ×3: ``conv C→9C, PixelShuffle(3)``.

    The official ``common.Upsampler`` passes ``bias`` positionally into ``default_conv``'s ``stride`` slot
    (harmless with torch 1.x, a TypeError in torch 2.x conv2d); here the convs are built directly, so the
    bug does not arise. Keys (``0, 1`` per stage) match the official Sequential.
    """

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        super().__init__(*layers)


# -- the model ----------------------------------------------------------------------------------------
class SRModel(nn.Module):
    """EDSR backbone with attention modules in the body (see the module docstring for the layout)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = c = config
        self.sub_mean = MeanShift(c.rgb_range, sign=-1)
        self.head = nn.Sequential(conv3x3(3, c.n_feats))
        body: list[nn.Module] = []
        if c.attention_kind is not None:
            body.append(self._attention())
        for i in range(c.n_resblocks):
            body.append(ResBlock(c.n_feats, c.res_scale))
            if c.attention_kind is not None and (i + 1) % c.attention_every == 0:
                body.append(self._attention())
        body.append(conv3x3(c.n_feats, c.n_feats))
        self.body = nn.ModuleList(body)
        self.tail = nn.Sequential(Upsampler(c.scale, c.n_feats), conv3x3(c.n_feats, 3))
        self.add_mean = MeanShift(c.rgb_range, sign=1)

    def _attention(self) -> Attention:
        return build_attention(
            self.config.attention_kind, self.config.n_feats, **self.config.attention_options
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        res = x
        for block in self.body:
            res = block(res)
        return self.add_mean(self.tail(res + x))

    # -- attention helpers ----------------------------------------------------------------------------
    def attention_modules(self) -> list[Attention]:
        """The attention modules in body order (empty for ``edsr``)."""
        return [b for b in self.body if isinstance(b, Attention)]

    def aux_losses(self) -> list[Tensor]:
        """The auxiliary losses the attention modules left in the last training forward (None dropped).

        Empty in eval mode, and for modules with no loss or with the loss switched off.
        """
        if not self.training:
            return []
        return [m.aux_loss for m in self.attention_modules() if m.aux_loss is not None]

    def on_epoch_start(self) -> None:
        """Forward the trainer's epoch-start hook to every attention module that has one."""
        for m in self.attention_modules():
            hook = getattr(m, "on_epoch_start", None)
            if hook is not None:
                hook()

    def extra_repr(self) -> str:
        return f"config={self.config}"


def training_paths(model: SRModel, device: torch.device | str = "cpu") -> dict[str, str]:
    """Attention kind → the code its training steps run on ``device`` (float32), for run provenance."""
    x = torch.zeros(1, model.config.n_feats, 2, 2, device=device)
    return {type(m).__name__: m.training_path(x) for m in model.attention_modules()}


def backbone_modules(model: SRModel) -> list[nn.Module]:
    """The modules an attention model shares with EDSR, in order: head, residual blocks, body conv, tail."""
    return [model.head, *(b for b in model.body if not isinstance(b, Attention)), model.tail]


def copy_backbone(source: SRModel, target: SRModel) -> None:
    """Copy ``source``'s backbone weights into ``target`` (same size and scale; attention left alone)."""
    src, dst = backbone_modules(source), backbone_modules(target)
    if len(src) != len(dst):
        raise ValueError(f"backbones differ: {len(src)} vs {len(dst)} modules")
    with torch.no_grad():
        for a, b in zip(src, dst, strict=True):
            b.load_state_dict(a.state_dict())


def contrastive_loss(model: SRModel) -> Tensor | None:
    """Mean of the attention modules' auxiliary losses after a training forward; None if there are none.

    The official trainer (``trainer.py:51``) computes ``torch.mean(sum(losses) / len(losses))`` over the
    5 per-module scalar losses (each already a mean over pixels and batch), i.e. this mean.
    """
    losses = model.aux_losses()
    if not losses:
        return None
    return torch.stack(losses).mean()


def set_contrastive(model: SRModel, enabled: bool) -> int:
    """Switch the contrastive loss of the model's attention modules on or off; returns how many are on.

    Only modules built with ``contrastive=True`` (ENLCA) can be switched on; ENLA and the peers stay off.
    """
    n = 0
    for m in model.attention_modules():
        if hasattr(m, "contrastive_enabled"):
            m.contrastive_enabled = bool(enabled) and bool(getattr(m.options, "contrastive", False))
            n += int(m.contrastive_enabled)
    return n


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (``trainable_only=False`` includes MeanShift's 24 frozen ones, as officially)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
