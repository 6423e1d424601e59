"""Training: L1 + λ·contrastive (paper Eqs. 11–12), Adam, step-halved learning rate, resumable.

The loop is written so that a run interrupted at any step and resumed with ``resume=True`` ends with
exactly the weights of an uninterrupted run: every batch is a pure function of ``(seed, step)``
(:class:`PatchBatches`), and the checkpoint holds the model (with ENLCA's projections and redraw
counters), the optimizer, the scheduler, the step and the global torch RNG state (which the projection
redraws and NLSA's hashing draw from).

Several processes (GPUs, or CPU processes with gloo) train one model with DistributedDataParallel when
started by torchrun: ``torchrun --nproc_per_node N -m enlcn train ...``. Rank ``r`` of ``N`` takes the
samples ``r::N`` of the same global batch (``batch_size`` stays the global batch and must be divisible by
``N``) and DDP averages the gradients, so the run follows the single-process run up to the order of float
reductions. Only rank 0 writes logs, checkpoints, ``config.json`` and validates; resuming loads the
checkpoint on every rank.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from . import atomic, faultpoint
from .data.datasets import random_patch
from .data.images import to_tensor
from .folderlock import FolderLock
from .loss import objective
from .models import build_model, set_contrastive
from .models.checkpoints import key_problems, read_checkpoint
from .variants import DEVIATIONS


def training_variant(variant: str) -> dict[str, Any]:
    """Training settings that differ between paper and official code (from :mod:`enlcn.variants`)."""
    if variant not in ("paper", "official"):
        raise ValueError(f"training variant must be 'paper' or 'official', got {variant!r}")
    keys = {"train.warmup_epochs": "warmup_epochs", "train.beta2": "beta2"}
    return {
        keys[d.option]: (d.paper_value if variant == "paper" else d.official_value)
        for d in DEVIATIONS
        if d.option in keys
    }


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` beside its outputs."""

    model: str = "enlcn"
    scale: int = 4
    preset: str = "quick"
    attention: dict[str, Any] = field(default_factory=dict)  # options passed to the attention modules
    variant: str = "official"  # paper | official: warm-up and Adam β2 (see enlcn.variants)
    lr_patch: int = 48  # LR patch side (official 48; paper 28 for ×4, 46 for ×2)
    batch_size: int = 16
    iters_per_epoch: int = 1000
    epochs: int = 1000
    lr: float = 1e-4
    milestones: tuple[int, ...] = (200, 400, 600, 800)  # epochs at which lr is multiplied by gamma
    gamma: float = 0.5
    beta1: float = 0.9
    beta2: float | None = None  # None: the variant's value
    warmup_epochs: int | None = None  # None: the variant's value
    lambda_cl: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 200  # steps
    val_every: int = 1  # epochs
    workers: int = 0
    bf16: bool = False  # CUDA only: autocast to bfloat16
    compile: bool = False  # torch.compile the model
    # every arm of a seed starts from the same backbone: EDSR's weights for this seed (paired design)
    paired_init: bool = False

    def __post_init__(self) -> None:
        from .typed import convert_fields

        convert_fields(self)  # "1e-4" from --set / YAML → 1e-4, or a ValueError naming the field
        defaults = training_variant(self.variant)
        if self.beta2 is None:
            self.beta2 = defaults["beta2"]
        if self.warmup_epochs is None:
            self.warmup_epochs = defaults["warmup_epochs"]
        for name in ("scale", "lr_patch", "batch_size", "iters_per_epoch", "epochs", "checkpoint_every",
                     "val_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be ≥ 1, got {getattr(self, name)!r}")
        checks = {
            "lr": self.lr > 0,
            "lambda_cl": self.lambda_cl >= 0,
            "gamma": 0 < self.gamma <= 1,
            "beta1": 0 <= self.beta1 < 1,
            "beta2": 0 <= self.beta2 < 1,
            "warmup_epochs": self.warmup_epochs >= 0,
            "workers": self.workers >= 0,
            "milestones": all(a < b for a, b in zip(self.milestones, self.milestones[1:], strict=False))
            and all(m >= 1 for m in self.milestones),
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                rule = {"lr": "> 0", "lambda_cl": "≥ 0", "gamma": "in (0, 1]", "beta1": "in [0, 1)",
                        "beta2": "in [0, 1)", "warmup_epochs": "≥ 0", "workers": "≥ 0",
                        "milestones": "increasing epochs ≥ 1"}[name]
                raise ValueError(f"TrainConfig.{name} must be {rule}, got {value!r}")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.iters_per_epoch

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, naming any unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(
                f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


def smoke_overrides() -> dict[str, Any]:
    """The training settings ``ENLCN_SMOKE_STEPS=N`` imposes (:func:`enlcn.profiles.smoke_steps`; empty when
    it is not set): N steps of batch 2 × 16² LR patches, one epoch, no learning-rate step, no warm-up — a
    plumbing check of a profile on a small machine (its self-similar images shrink too:
    :func:`enlcn.profiles.get_profile`). The models, the data path, the evaluation protocol and the result
    layout stay the profile's; config.json records the change."""
    from .profiles import smoke_steps

    steps = smoke_steps()
    if steps is None:
        return {}
    return {"iters_per_epoch": steps, "epochs": 1, "milestones": (), "warmup_epochs": 0,
            "checkpoint_every": steps, "val_every": 1, "batch_size": 2, "lr_patch": 16}


def train_config(profile: str, **overrides: Any) -> TrainConfig:
    """The training settings of ``profile`` (:mod:`enlcn.profiles`), then ``overrides`` (names checked),
    then :func:`smoke_overrides` when ``ENLCN_SMOKE_STEPS`` is set."""
    from .profiles import get_profile

    return TrainConfig.from_dict({**dict(get_profile(profile).train), **overrides, **smoke_overrides()})


#: the environment variables of inductor's cache folder and of ATen's CPU level
INDUCTOR_CACHE_ENV, ATEN_LEVEL_ENV = "TORCHINDUCTOR_CACHE_DIR", "ATEN_CPU_CAPABILITY"


def compile_model(model: torch.nn.Module) -> Any:
    """``torch.compile(model)``, with inductor's cache kept apart per ATen CPU level.

    Inductor's FX graph cache key (torch 2.13) leaves out the CPU level ATen runs at, ``ATEN_CPU_CAPABILITY``,
    though the code inductor generates depends on it: a graph compiled at one level and served to a process
    at another gave NaN outputs or a segfault (Intel Xeon with AVX-512, the cache filled at the default level
    and read with ``ATEN_CPU_CAPABILITY=avx2``, or the reverse; the same runs with the FX graph cache off, or
    with a fresh cache folder, were right). The ISA tests and the bench run such levels
    (:func:`enlcn.attention.native.level_env`), and so may a user emulating a smaller CPU; so a process with
    ``ATEN_CPU_CAPABILITY`` set and no cache folder of its own compiles into
    ``<inductor's default>/aten-<level>`` (:func:`inductor_cache_dir`).
    """
    folder = inductor_cache_dir()
    if folder is not None:
        os.environ[INDUCTOR_CACHE_ENV] = folder
    return torch.compile(model)


def inductor_cache_dir() -> str | None:
    """The inductor cache folder :func:`compile_model` sets: ``<default>/aten-<level>`` when
    ``ATEN_CPU_CAPABILITY`` is set and ``TORCHINDUCTOR_CACHE_DIR`` is unset or inductor's default (which
    inductor writes back into the environment once used); None (leave it) otherwise."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    if not os.environ.get(ATEN_LEVEL_ENV):
        return None
    default = os.path.abspath(default_cache_dir())
    chosen = os.environ.get(INDUCTOR_CACHE_ENV)
    if chosen and os.path.abspath(chosen) != default:
        return None
    level = torch.backends.cpu.get_cpu_capability().lower()  # what ATen runs (a cap above the CPU is ignored)
    return os.path.join(default, f"aten-{level}")


# -- data ------------------------------------------------------------------------------------------
class PatchBatches(Dataset):
    """Training batch number ``step`` → ``(lr, hr)`` float tensors in [0, 1] (``rgb_range`` 1).

    Each batch is a pure function of ``(seed, step)``: ``batch_size`` random images, a random LR crop
    of ``patch`` pixels with the aligned HR crop of ``scale·patch``, and one of the 8 dihedral
    transforms (:func:`enlcn.data.datasets.random_patch`, shared with ``TrainPatches``). Index it with a step
    range (DataLoader with ``batch_size=None``), so workers and resuming cannot change what is drawn.
    ``shard=(rank, world_size)`` keeps the samples ``rank::world_size`` of each batch (one process's share
    of the global batch under DDP).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        scale: int,
        patch: int,
        batch_size: int,
        seed: int,
        total_steps: int,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if not pairs:
            raise ValueError("PatchBatches needs at least one (lr, hr) image pair")
        for i, (lr, hr) in enumerate(pairs):
            if lr.shape[0] < patch or lr.shape[1] < patch:
                raise ValueError(
                    f"training image {i}: LR size {lr.shape[:2]} is smaller than the patch {patch}"
                )
            if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
                raise ValueError(
                    f"training image {i}: HR {hr.shape[:2]} is not ×{scale} of LR {lr.shape[:2]}"
                )
        self.pairs, self.scale, self.patch = list(pairs), scale, patch
        self.batch_size, self.seed, self.total_steps = batch_size, seed, total_steps
        self.rank, self.world_size = shard
        if batch_size % self.world_size:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by the number of processes {self.world_size} "
                "(WORLD_SIZE): batch_size is the global batch, split evenly over the processes"
            )

    def __len__(self) -> int:
        return self.total_steps

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng([self.seed, step])
        crops = []
        for _ in range(self.batch_size):
            lr, hr = self.pairs[rng.integers(len(self.pairs))]
            crops.append(random_patch(lr, hr, self.scale, self.patch, rng))
        lrs, hrs = zip(*crops[self.rank :: self.world_size], strict=True)
        return to_tensor(np.stack(lrs)), to_tensor(np.stack(hrs))


# -- several processes (torchrun) ------------------------------------------------------------------
def torchrun_ranks() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from torchrun's environment; ``(0, 0, 1)`` without torchrun."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))


# -- checkpoints -----------------------------------------------------------------------------------
def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written checkpoint.

    The checkpoint is serialised in memory first and written with plain file I/O, so that a full disk or a
    read-only folder is an :class:`enlcn.atomic.WriteError` naming ``path`` and the reason (torch's own
    writer reports them as ``[enforce fail at inline_container.cc]``).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic.replacing(path, point="checkpoint-write") as tmp:
        tmp.write_bytes(buffer.getbuffer())


def paired_backbone_init(model: torch.nn.Module, seed: int) -> None:
    """Give ``model``'s backbone the initial weights of the EDSR built after ``torch.manual_seed(seed)``.

    Building a model with attention draws the attention modules' weights between the residual blocks'
    from the same random stream, so without this the blocks of ``edsr+nla`` and ``edsr`` of one seed
    start from different weights. With it every arm of a seed starts from the same backbone, and the
    arm − EDSR differences are paired (common random numbers). The attention modules keep their own
    initialisation; the global RNG ends as after building the plain EDSR.
    """
    from .models.edsr import SRModel, copy_backbone

    torch.manual_seed(seed)
    c = model.config
    reference = SRModel(replace(c, name="edsr", attention_kind=None, attention_options={}))
    copy_backbone(reference, model)


# -- the loop --------------------------------------------------------------------------------------
class Trainer:
    """Trains ``config.model`` on ``train_pairs``; validates on ``val_pairs`` (``(name, lr, hr)`` uint8)."""

    def __init__(
        self,
        config: TrainConfig,
        train_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        val_pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
        out_dir: str | Path,
        device: str | None = None,
    ) -> None:
        self.config, self.out_dir = config, Path(out_dir)
        self.rank, local_rank, self.world_size = torchrun_ranks()
        self.distributed, self.is_main = self.world_size > 1, self.rank == 0
        self.batches = PatchBatches(
            train_pairs,
            config.scale,
            config.lr_patch,
            config.batch_size,
            config.seed,
            config.total_steps,
            shard=(self.rank, self.world_size),
        )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.owns_process_group = False
        if self.distributed:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", local_rank)  # one GPU per process
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self.owns_process_group = True
        torch.manual_seed(config.seed)  # the same on every rank: same weights and projection redraws
        self.model = build_model(config.model, config.scale, config.preset, attention=config.attention)
        if config.paired_init:
            paired_backbone_init(self.model, config.seed)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), eps=1e-8
        )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, list(config.milestones), config.gamma
        )
        if config.bf16 and self.device.type != "cuda":
            import warnings

            warnings.warn(
                f"TrainConfig.bf16 is CUDA-only (autocast to bfloat16); training on {self.device} in float32",
                stacklevel=2,
            )
        self.val_pairs = list(val_pairs)
        self.step, self.best_psnr = 0, -math.inf
        # weight updates and state loads so far, and the last checkpoint written (see checkpoint())
        self._updates, self._written = 0, None
        # self.model stays the plain module (state_dict, validation, aux losses); self.forward trains
        self.forward = compile_model(self.model) if config.compile else self.model
        if self.distributed:  # every parameter gets a gradient in every step: find_unused_parameters=False
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.forward, device_ids=ids)

    # state ----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "best_psnr": self.best_psnr,
            "torch_rng": torch.get_rng_state(),
            "config": asdict(self.config),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        saved = TrainConfig.from_dict(state["config"])
        if asdict(saved) | {"epochs": 0} != asdict(self.config) | {"epochs": 0}:
            diff = sorted(
                k for k, v in asdict(saved).items() if asdict(self.config)[k] != v and k != "epochs"
            )
            raise ValueError(
                f"cannot resume: the checkpoint was trained with other settings ({', '.join(diff)})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best_psnr = state["step"], state["best_psnr"]
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it to the GPU
        self._updates += 1

    def checkpoint(self, name: str = "latest") -> Path:
        """Write the training state to ``checkpoints/<name>.pt`` (atomically). A state this trainer has
        already written under another name — validation's ``best`` and the epoch's ``latest`` at one step
        — is hard-linked to that file instead of being serialised and written again (a paper-size state is
        0.5 GB); where links are not possible it is written."""
        path = self.out_dir / "checkpoints" / f"{name}.pt"
        key = self._state_key()
        written = self._written
        if written is not None and written[1] != path and written[0] == key:
            try:
                with atomic.replacing(path, point="checkpoint-write") as tmp:
                    tmp.unlink()
                    os.link(written[1], tmp)
            except OSError:  # no hard links here (or the file is gone): write it
                save_atomic(self.state(), path)
        else:
            save_atomic(self.state(), path)
        self._written = (key, path)
        return path

    def _state_key(self) -> tuple[int, int, int, float, bytes]:
        """What tells two states of this trainer apart: its count of weight updates and loads, the step,
        the scheduler's epoch, the best PSNR and the torch RNG state (as bytes, so keys compare with ==)."""
        rng = torch.get_rng_state().numpy().tobytes()
        return (self._updates, self.step, self.scheduler.last_epoch, self.best_psnr, rng)

    # loop -------------------------------------------------------------------------------------------
    def fit(
        self, resume: bool = False, stop_after: int | None = None, progress: bool = True
    ) -> dict[str, Any]:
        """Train to ``config.epochs`` (or for ``stop_after`` more steps); returns a summary.

        Under torchrun the process group this trainer opened is closed at the end: one ``fit`` per trainer.
        """
        if self.is_main:  # before any work: a folder we cannot write, or another process's run
            atomic.check_writable(self.out_dir, "run folder")
        lock = FolderLock(self.out_dir, "trained") if self.is_main else contextlib.nullcontext()
        try:
            with lock:
                return self._fit(resume, stop_after, progress)
        finally:
            if self.owns_process_group:
                dist.destroy_process_group()
                self.owns_process_group = False

    def _fit(self, resume: bool, stop_after: int | None, progress: bool) -> dict[str, Any]:
        from tqdm import tqdm  # text bar: tqdm.auto needs ipywidgets in notebooks

        cfg = self.config
        latest = self.out_dir / "checkpoints" / "latest.pt"
        if resume and latest.exists():  # every rank loads the checkpoint
            self.load_state(read_checkpoint(latest, self.device))
        elif not resume and (found := run_files(self.out_dir)):
            raise FileExistsError(
                f"{self.out_dir} already holds a run ({', '.join(found)}); pass --resume (resume=True) to "
                "continue it, or use another folder"
            )
        elif resume and self.is_main and run_files(self.out_dir):
            print(f"{self.out_dir}: no checkpoint to resume from; starting at step 0", file=sys.stderr)
        if self.distributed:  # every rank has looked at the folder before rank 0 writes to it
            dist.barrier()
        if self.is_main:  # whatever a killed session wrote after the checkpoint it resumes from goes
            repair_log(self.out_dir / "train_log.csv", self.step, StepLog.COLUMNS)
            repair_log(self.out_dir / "val_log.csv", self.step, VAL_COLUMNS, header=False)
            clear_stale_temporaries(self.out_dir)
            atomic.write_text(self.out_dir / "config.json", json.dumps(asdict(self.config), indent=2))
        end = cfg.total_steps if stop_after is None else min(cfg.total_steps, self.step + stop_after)
        # the loader gets its own generator: iterating a DataLoader draws a seed from the generator it is
        # given, and drawing it from the global RNG would shift the projection redraws after a resume
        loader = DataLoader(
            self.batches,
            batch_size=None,
            sampler=range(self.step, end),
            num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        log = StepLog(self.out_dir / "train_log.csv") if self.is_main else None
        bar = tqdm(
            total=end - self.step,
            desc=f"train {cfg.model} ×{cfg.scale}",
            disable=not (progress and self.is_main),
        )
        t0 = time.perf_counter()
        self.model.train()
        try:
            for lr, hr in loader:
                epoch = self.step // cfg.iters_per_epoch
                if self.step % cfg.iters_per_epoch == 0:
                    self.model.on_epoch_start()
                set_contrastive(self.model, epoch >= cfg.warmup_epochs)
                l1, cl = self.train_step(lr.to(self.device), hr.to(self.device))
                self.step += 1
                if log is not None:
                    lr_now = self.optimizer.param_groups[0]["lr"]
                    log.write(step=self.step, epoch=epoch, l1=l1, contrastive=cl, lr=lr_now)
                bar.set_postfix(l1=f"{l1:.4f}", cl="-" if cl is None else f"{cl:.3f}")
                bar.update()
                if self.step % cfg.iters_per_epoch == 0:
                    self.scheduler.step()
                    if (self.step // cfg.iters_per_epoch) % cfg.val_every == 0:
                        if self.is_main:
                            self.validate(epoch)
                        self.share_rng()
                if self.is_main and (self.step % cfg.checkpoint_every == 0 or self.step == end):
                    self.checkpoint()
        finally:  # an error then starts on a line of its own, after the bar
            bar.close()
            if log is not None:
                log.close()
        if self.distributed:
            dist.barrier()  # the last checkpoint is written before any rank returns
        return {"step": self.step, "best_psnr": self.best_psnr, "seconds": time.perf_counter() - t0}

    def train_step(self, lr: Tensor, hr: Tensor) -> tuple[float, float | None]:
        """One optimisation step of Eq. 12; returns (L1, contrastive loss or None)."""
        autocast = torch.autocast("cuda", torch.bfloat16, enabled=self.config.bf16 and lr.is_cuda)
        with autocast:
            loss, l1, cl = objective(self.model, self.forward(lr), hr, self.config.lambda_cl)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.step} (L1 {l1.item()})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP this also averages the gradients over the ranks
        self.optimizer.step()
        self._updates += 1
        if self.distributed:  # log the whole batch's losses: the mean of the equal-sized shards' means
            losses = torch.stack([l1.detach().float()] + ([] if cl is None else [cl.detach().float()]))
            dist.all_reduce(losses)
            l1, cl = losses[0] / self.world_size, None if cl is None else losses[1] / self.world_size
        return l1.item(), None if cl is None else cl.item()

    def share_rng(self) -> None:
        """Under DDP, give every rank rank 0's RNG state (validation, on rank 0 only, may draw from it)."""
        if not self.distributed:
            return
        cuda = self.device.type == "cuda"
        states = [torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None]
        dist.broadcast_object_list(states, src=0, device=self.device)
        torch.set_rng_state(states[0])
        if cuda:
            torch.cuda.set_rng_state(states[1], self.device)

    @torch.no_grad()
    def validate(self, epoch: int) -> float:
        """Mean Y-PSNR on the validation pairs; keeps the best checkpoint."""
        if not self.val_pairs:
            return float("nan")
        from .evaluate import upscale
        from .metrics import psnr_y, quantize

        scores = [
            psnr_y(quantize(upscale(self.model, lr, self.config.scale)), hr, self.config.scale)
            for _, lr, hr in self.val_pairs
        ]
        self.model.train()
        psnr = float(np.mean(scores))
        faultpoint.pause("validation")
        with open(self.out_dir / "val_log.csv", "a", newline="") as f:  # one row: see repair_log
            csv.writer(f).writerow([self.step, epoch, f"{psnr:.4f}"])
        if psnr > self.best_psnr:
            self.best_psnr = psnr
            self.checkpoint("best")
        return psnr


#: the columns of ``val_log.csv`` (written without a header row, read with ``header=None``)
VAL_COLUMNS = ("step", "epoch", "val_psnr")

#: the files that make a folder a run's (a fresh run refuses such a folder unless it resumes)
RUN_FILES = ("config.json", "train_log.csv", "val_log.csv", "checkpoints/latest.pt", "checkpoints/best.pt")


def run_files(folder: Path) -> list[str]:
    """The :data:`RUN_FILES` present in ``folder``."""
    return [name for name in RUN_FILES if (folder / name).exists()]


def repair_log(path: Path, step: int, columns: Sequence[str], header: bool = True) -> None:
    """Make a step log (first column: the step) valid after a kill at any byte, keeping its rows ≤ ``step``.

    Kept: the complete rows (ending in a newline, ``len(columns)`` fields, an integer step) up to ``step``.
    Dropped: a torn last line, rows after ``step`` (written after the checkpoint the run resumes from).
    ``header``: the file starts with the row ``columns``, restored if a kill left it missing or torn (an
    empty file, as a kill between creating the log and writing its header leaves). Rewritten atomically,
    and only when something changes.
    """
    if not path.exists():
        return
    text = path.read_bytes().decode(errors="replace")  # as written: the csv module ends rows in \r\n
    lines = [line for line in text.splitlines(keepends=True) if line.endswith("\n")]  # torn: no newline
    head = ",".join(columns)
    if header and lines and lines[0].rstrip("\r\n") == head:
        lines = lines[1:]
    steps = [_logged_step(line, len(columns)) for line in lines]
    kept = [line for line, logged in zip(lines, steps, strict=True) if logged is not None and logged <= step]
    new = (head + "\r\n" if header else "") + "".join(kept)
    if new != text:
        atomic.write_text(path, new)


def _logged_step(line: str, n_fields: int) -> int | None:
    fields = next(csv.reader([line]), [])
    try:
        return int(fields[0]) if len(fields) == n_fields else None
    except ValueError:
        return None


def clear_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files a killed :func:`save_atomic` or log rewrite left in ``folder`` (and its
    ``checkpoints/``); returns what was removed."""
    removed = []
    for pattern in (".*.pt.*.tmp", "*.tmp"):
        for d in (folder, folder / "checkpoints"):
            for p in d.glob(pattern) if d.is_dir() else ():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


class StepLog:
    """Appends one CSV row per step, flushed each row, under a header that is never half there.

    The header is written atomically before the file is opened for appending (a kill right after creating
    the log used to leave it empty, and the resumed run then wrote rows without a header); a row torn by
    a kill is dropped by :func:`repair_log` when the run resumes.
    """

    COLUMNS = ("step", "epoch", "l1", "contrastive", "lr")

    def __init__(self, path: Path) -> None:
        if not path.exists() or path.stat().st_size == 0:
            atomic.write_text(path, ",".join(self.COLUMNS) + "\r\n")
        self.file = open(path, "a", newline="")  # noqa: SIM115
        self.writer = csv.DictWriter(self.file, self.COLUMNS)
        faultpoint.pause("log-created")

    def write(self, **row: Any) -> None:
        self.writer.writerow(row)
        faultpoint.pause("log-row")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def load_trained(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """A model saved by :class:`Trainer` (``checkpoints/{latest,best}.pt``) and its training config."""
    path = Path(path)
    state = read_checkpoint(path, device)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(
            f"{path} is not a checkpoint written by enlcn's trainer (for the official "
            "ENLCAx2.pt / ENLCAx4.pt use --official / load_official_checkpoint)"
        )
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config.model, config.scale, config.preset, attention=config.attention)
    problems = key_problems(state["model"], model.state_dict())
    if problems:
        raise ValueError(
            f"{path}: its weights are not a {config.model} ×{config.scale} model, as its config says — "
            + "; ".join(problems)
        )
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config
