"""The one-shot GPU study (book/protocol.md, "Pre-registered: the one-shot GPU setting").

``tools/gpu_study.sh`` runs :func:`main` on a lent GPU: it calibrates the step time of the ranked tiers, fixes
one step count *S* by the Protocol's formula (:func:`steps_for`, :func:`choose`), trains every run of the
chosen tiers concurrently, scores each on the setting's test sets and writes a bundle of at most 8 files
(:class:`Bundle`) that ``enlcn study import`` checks, re-scores on the CPU and places under
``results/gpu-x2/study/`` (:func:`import_bundle`), where the Findings chapter reads it (:func:`gpu_means`).

**How the runs share one GPU: a few processes, each stepping several runs round-robin.** The evidence,
measured on the CPU (``torch.profiler``, one training step of batch 16): EDSR-baseline 16 × 64 dispatches
about 900 top-level aten operations per step (forward, backward, Adam), EDSR + NLA about 3900; in eager
PyTorch each costs the host some 5–10 µs to launch on CUDA, so one step needs ≈ 5–40 ms of host time.
The GPU work of that step is small: the 33 body convolutions at 48², batch 16, are
2·9·64²·48²·16 ≈ 2.7 GFLOP each, ≈ 100 GFLOP forward and ≈ 300 GFLOP with the backward, about a
millisecond on an H100/H200 in bf16. One Python thread therefore cannot keep the GPU busy: the step is
launch-bound by several times. CUDA streams in one process do not help, since every launch still goes
through that one thread (and ENLCA reads its redraw counter with ``int()`` in every training call, a
host synchronisation that stalls the thread). Several processes launch in parallel, one per CPU core,
and keep the GPU fed while one of them waits. One process per run (30 runs) would create 30 CUDA
contexts (≈ 0.5 GB each, and the GPU time-slices between them); a few processes (default: one per two
CPU cores, at most 8), each stepping its share of the runs in turn (:func:`assign`), keeps the host side
parallel with few contexts. Processes also isolate failures: an exception in a run ends that run only
(recorded with its step), a CUDA error ends one process's runs, and a process that hangs is killed at
the hard deadline (:func:`run_study`), so the command ends inside its budget with a partial bundle.

Within a process each run keeps its own torch RNG states (CPU and CUDA), swapped in around its step, so a
run draws the same random numbers (ENLCA redraws, NLSA hashing) whichever runs share its process; a batch
is a pure function of seed and step (:class:`enlcn.train.PatchBatches`). A training step makes no host
synchronisation of its own (losses are summed on the device and read at each validation).

**Not fixed by the Protocol's first text, chosen here and recorded in its dated note of 2026-12-06, before
any GPU run:** the contrastive loss's warm-up. The official variant switches it on after 101 of 1000
epochs; a run of *S* steps here switches it on after the same fraction, ``⌈0.101·S⌉`` steps
(:func:`warmup_steps`).

``ENLCN_GPU_STUDY_TINY=1`` (**tests only**) shrinks the model, data and constants
(:meth:`Setting.tiny_setting`) so that the whole command runs on a CPU in a few minutes.

One module per concern; each imports only modules listed before it (``setting`` and ``bundle`` import none
of them):

* :mod:`~enlcn.study.gpu.setting`: the profile, the ranked tiers and their runs, the Protocol's constants
  (:class:`Setting`, the test-only tiny one), a run's training config for *S* steps and its warm-up;
* :mod:`~enlcn.study.gpu.bundle`: the bundle's files, the device's limits, the weights packed tier 1 first,
  the writer, the commit and device its manifest records;
* :mod:`~enlcn.study.gpu.training`: one run being trained in a worker: its state and RNG states, one step,
  its batch, a validation point;
* :mod:`~enlcn.study.gpu.score`: a trained run scored in float32 and staged (record, scores, float16 weights);
* :mod:`~enlcn.study.gpu.workers`: the runs dealt to the processes, a worker process (calibration rounds,
  training its share to *S* or the deadline) and the parent's handle on the processes;
* :mod:`~enlcn.study.gpu.calibrate`: the Protocol's items 2 to 4: ``T_j`` calibrated, the step-count formula,
  the tiers and *S* chosen;
* :mod:`~enlcn.study.gpu.study`: the whole study on the parent's side (:func:`run_study`): calibrate, choose,
  train, collect, write the bundle;
* :mod:`~enlcn.study.gpu.importer`: ``enlcn study import``: the bundle checked, re-scored on the CPU, placed;
* :mod:`~enlcn.study.gpu.results`: what the Findings chapter reads of the imported runs;
* :mod:`~enlcn.study.gpu.cli`: ``python -m enlcn.study.gpu`` (:mod:`enlcn.study.gpu.__main__`), its arguments.

The code on the GPU's path (``setting`` … ``study``, ``cli``) imports only what the device image has (torch,
numpy, pandas, …), matplotlib never. The names other code uses are re-exported here
(``from enlcn.study import gpu``; ``gpu.import_bundle``).

The device image has Python 3.12 and torch 2.11, the development machine a newer torch.
``tools/torch_compat.py --torch-src DIR`` checks statically that every torch name, keyword and Tensor
method that this package and the modules it loads use exists in the torch sources unpacked in DIR
(from the device's wheel, never installed). It cannot see names reached dynamically or behaviour that
changed under the same signature (its docstring lists what else).
"""

from __future__ import annotations

from .bundle import (
    BUNDLE_FORMAT,
    CURVES,
    LIMITS,
    LOG,
    LOG_BYTES,
    MANIFEST,
    MANIFEST_ROOM,
    META_FILES,
    MIB,
    SCORES,
    Bundle,
    bundle_problems,
    commit_id,
    device_info,
    pack_weights,
)
from .calibrate import (
    Choice,
    calibrate,
    choose,
    steps_for,
)
from .cli import (
    main,
)
from .importer import (
    MANIFEST_FIELDS,
    RESCORE_TOLERANCE_DB,
    STUDY_FILE,
    carried_weights,
    check_bundle,
    import_bundle,
    rescore_carried,
    setting_of,
)
from .results import (
    gpu_decision,
    gpu_manifest,
    gpu_means,
)
from .score import (
    half_state,
    score_run,
    stage_run,
)
from .setting import (
    PROFILE,
    TIERS,
    TINY_ENV,
    WARMUP_FRACTION,
    Setting,
    run_by_name,
    run_config,
    setting_from_env,
    tier_of,
    tier_runs,
    warmup_steps,
)
from .study import (
    collect,
    run_study,
)
from .training import (
    RunState,
    batch_of,
    build_run,
    log_point,
    train_step,
)
from .workers import (
    Workers,
    assign,
    calibrate_share,
    default_workers,
    train_share,
    worker_main,
)

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "CURVES",
    "Choice",
    "LIMITS",
    "LOG",
    "LOG_BYTES",
    "MANIFEST",
    "MANIFEST_FIELDS",
    "MANIFEST_ROOM",
    "META_FILES",
    "MIB",
    "PROFILE",
    "RESCORE_TOLERANCE_DB",
    "RunState",
    "SCORES",
    "STUDY_FILE",
    "Setting",
    "TIERS",
    "TINY_ENV",
    "WARMUP_FRACTION",
    "Workers",
    "assign",
    "batch_of",
    "build_run",
    "bundle_problems",
    "calibrate",
    "calibrate_share",
    "carried_weights",
    "check_bundle",
    "choose",
    "collect",
    "commit_id",
    "default_workers",
    "device_info",
    "gpu_decision",
    "gpu_manifest",
    "gpu_means",
    "half_state",
    "import_bundle",
    "log_point",
    "main",
    "pack_weights",
    "rescore_carried",
    "run_by_name",
    "run_config",
    "run_study",
    "score_run",
    "setting_from_env",
    "setting_of",
    "stage_run",
    "steps_for",
    "tier_of",
    "tier_runs",
    "train_share",
    "train_step",
    "warmup_steps",
    "worker_main",
]
