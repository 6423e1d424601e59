"""Running time and peak memory of the attention operators (paper Table 4 and appendix Table 5).

One module per thing measured; each imports only modules listed before it (``machine`` and ``timing``
import none):

* :mod:`~enlcn.bench.machine`: the machine class a run measures (instruction-set level, the libraries
  capped to a level below the CPU's best), recorded in every run;
* :mod:`~enlcn.bench.timing`: one call's time and peak memory, timed calls, a measurement in a fresh
  worker process, the ratio of interleaved rounds;
* :mod:`~enlcn.bench.report`: ratio lines and their targets, the provenance record, results written and
  read back, run summaries;
* :mod:`~enlcn.bench.operators`: the Table 4 / 5 operators (whole networks as operators too), their times
  and peak memory, interleaved, and the efficiency claims' ratios;
* :mod:`~enlcn.bench.contrastive`: the contrastive loss, ``topk`` vs a full sort;
* :mod:`~enlcn.bench.networks`: ``--models``, ENLCN vs EDSR forward and one global ENLCN pass;
* :mod:`~enlcn.bench.roofline`: the attention products' GFLOP per training step, the product rate, the
  floors of the training steps;
* :mod:`~enlcn.bench.pipeline`: ``--pipeline``, training step and inference of whole models, interleaved
  training steps and contrastive loss, issue 14's targets;
* :mod:`~enlcn.bench.explorer`: ``--explore``, one explorer update;
* :mod:`~enlcn.bench.cli`: ``python -m enlcn.bench`` (:mod:`enlcn.bench.__main__`), its arguments, the
  worker entry and the operator run.

The names other code uses are re-exported here (``from enlcn.bench import run_bench``).
"""

from __future__ import annotations

from .cli import MODEL_SIZE, WORKERS, main, parse_args
from .contrastive import CONTRASTIVE_SIDE, bench_contrastive, contrastive_sorted
from .explorer import run_explore
from .machine import library_caps, machine_record
from .networks import model_ratios, run_models
from .operators import (
    CHANNELS,
    CSV_COLUMNS,
    DEFAULT_SIZES,
    ENLCA_OPERATORS,
    FLOOR_OPERATORS,
    MODEL_OPERATORS,
    OPERATORS,
    PIPELINE_MODELS,
    PYTHON_OPERATOR,
    QUADRATIC,
    QUICK_SIZES,
    ProductsFloor,
    build_operator,
    measure,
    paired_times,
    quadratic_gb,
    ratio_size,
    ratios,
    run_bench,
)
from .pipeline import (
    PIPELINE_COLUMNS,
    TRAIN_STEP_TARGETS,
    build_train_step,
    measure_train_step,
    paired_contrastive,
    paired_train_steps,
    pipeline_ratios,
    pipeline_row,
    pipeline_targets,
    run_pipeline,
)
from .report import (
    CHANNELS_LAST_ENV,
    CLASSES_DIR,
    MACHINE_COLUMNS,
    PATH_SWITCHES,
    PRE_NATIVE_PATH,
    RATIO_LINE,
    class_runs,
    classes_machines,
    classes_ratios,
    enlca_fast_path,
    machine_class,
    ratio_line,
    read_results,
    run_summary,
    start_provenance,
    write_results,
)
from .roofline import (
    FLOOR_MODELS,
    achieved_gflops,
    attention_floors,
    enla_step_gflop,
    kernel_gflops,
    nla_step_gflop,
    nlsa_step_gflop,
    sgemm_gflops,
)
from .timing import MODEL_MIN_REPEATS, TIME_BUDGET_S, paired_ratio, run_worker

__all__ = [
    "CHANNELS",
    "CHANNELS_LAST_ENV",
    "CLASSES_DIR",
    "MACHINE_COLUMNS",
    "CONTRASTIVE_SIDE",
    "CSV_COLUMNS",
    "DEFAULT_SIZES",
    "ENLCA_OPERATORS",
    "FLOOR_MODELS",
    "FLOOR_OPERATORS",
    "MODEL_MIN_REPEATS",
    "MODEL_OPERATORS",
    "MODEL_SIZE",
    "OPERATORS",
    "PATH_SWITCHES",
    "PIPELINE_COLUMNS",
    "PIPELINE_MODELS",
    "PRE_NATIVE_PATH",
    "PYTHON_OPERATOR",
    "QUADRATIC",
    "QUICK_SIZES",
    "RATIO_LINE",
    "TIME_BUDGET_S",
    "TRAIN_STEP_TARGETS",
    "WORKERS",
    "ProductsFloor",
    "achieved_gflops",
    "attention_floors",
    "bench_contrastive",
    "build_operator",
    "build_train_step",
    "contrastive_sorted",
    "enla_step_gflop",
    "enlca_fast_path",
    "kernel_gflops",
    "main",
    "measure",
    "measure_train_step",
    "class_runs",
    "classes_machines",
    "classes_ratios",
    "library_caps",
    "machine_class",
    "machine_record",
    "model_ratios",
    "nla_step_gflop",
    "nlsa_step_gflop",
    "paired_contrastive",
    "paired_ratio",
    "paired_times",
    "paired_train_steps",
    "parse_args",
    "pipeline_ratios",
    "pipeline_row",
    "pipeline_targets",
    "quadratic_gb",
    "ratio_line",
    "ratio_size",
    "ratios",
    "read_results",
    "run_bench",
    "run_explore",
    "run_models",
    "run_pipeline",
    "run_summary",
    "run_worker",
    "sgemm_gflops",
    "start_provenance",
    "write_results",
]
