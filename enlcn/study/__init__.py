"""The training studies: the paper's comparisons as named runs, trained, scored and judged per profile.

One concept per module:

* :mod:`.registry`: the registry (:class:`Run`, :data:`EXPERIMENTS`, the paper's numbers and claims);
* :mod:`.data`: each profile's training / validation / test images and motif masks;
* :mod:`.lock`, :mod:`.execute`: training a run (one process per run, resumable, every session recorded),
  scoring it and writing its result files;
* :mod:`.files`: where those files live and how they are read back;
* :mod:`.scoring`: per-image Y-PSNR / SSIM of a model or any upscaler;
* :mod:`.tables`: the first (cpu) study's tables and its noise-bound rule;
* :mod:`.stats`: the powered study's paired statistics (pure functions on DataFrames);
* :mod:`.pilot`, :mod:`.oracle`, :mod:`.diagnose`: the pilot's decision rule, the multi-copy oracle (the
  headroom) and the look inside a trained model's attention (does it find the repeats? is it used?);
* :mod:`.explorer`: the data of the book's offline explorer page.

Where things go (``profile`` = quick | cpu | paper | pilot-…)::

    runs/<profile>/<run>/        checkpoints, full step log (not committed; what resuming needs)
    results/<profile>/study/<run>/
        config.json              the resolved TrainConfig
        scores.csv               per-image Y-PSNR / SSIM of the final weights on every test set
        epochs.csv, val_log.csv  per-epoch mean losses and validation PSNR
        summary.json             provenance: commit(s), versions, hardware, wall and CPU time per session
        weights.pt               final weights (anyone can re-score the run)

:func:`ensure` trains what is missing (resuming an interrupted run) and returns the scores; a run whose
results exist with the same config is not retrained. ``enlcn study EXPERIMENT --profile P`` runs the
same from the command line (start it with ``nohup`` for the ``cpu`` profile: hours).
"""

from .data import Masks, Pairs, explore_images, standard_data, study_data, study_masks, test_sets
from .execute import close_killed_session, ensure, rescore, train_run, write_results
from .files import (
    explorable_models,
    final_weights,
    is_done,
    load_curves,
    load_model,
    load_scores,
    load_summary,
    result_dir,
    run_dir,
    runs,
    status,
)
from .lock import RunLock, RunLocked
from .registry import (
    BASE,
    CLAIMS,
    ENLA,
    ENLA_CL,
    ENLA_K,
    ENLCA,
    EXPERIMENTS,
    PAPER_PSNR,
    SEED_GROUPS,
    Run,
    get_experiment,
    get_run,
    paper_gain,
)
from .scoring import bicubic_scores, score, score_upscaled
from .tables import compare, seed_spread, summary_table, verdicts

__all__ = [
    "BASE",
    "CLAIMS",
    "ENLA",
    "ENLA_CL",
    "ENLA_K",
    "ENLCA",
    "EXPERIMENTS",
    "Masks",
    "PAPER_PSNR",
    "Pairs",
    "Run",
    "RunLock",
    "RunLocked",
    "SEED_GROUPS",
    "bicubic_scores",
    "close_killed_session",
    "compare",
    "ensure",
    "explorable_models",
    "explore_images",
    "final_weights",
    "get_experiment",
    "get_run",
    "is_done",
    "load_curves",
    "load_model",
    "load_scores",
    "load_summary",
    "paper_gain",
    "rescore",
    "result_dir",
    "run_dir",
    "runs",
    "score",
    "score_upscaled",
    "seed_spread",
    "standard_data",
    "status",
    "study_data",
    "study_masks",
    "summary_table",
    "test_sets",
    "train_run",
    "verdicts",
    "write_results",
]
