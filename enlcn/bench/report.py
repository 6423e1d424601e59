"""What a bench run reports: its ratio lines and their targets, its provenance record, its results on disk.

Printed: one ``ratio <name>: <value> (target <op> <bound>) PASS|FAIL`` line per ratio (:func:`ratio_line`;
:data:`RATIO_LINE` parses it back). Written: the table as CSV (atomically) and beside it a JSON
``{"provenance": <enlcn.provenance.Provenance record>, "ratios": {name: {"value", "target"}}}``
(:func:`write_results`; :func:`read_results` reads both back, :func:`run_summary` says where and when they
were measured). The record's ``parameters`` are the run's arguments with the defaults it resolved, the
ENLCA inference path it timed (``enlca_fast_path``) and the switches back to the reference training paths
set in the environment (:data:`PATH_SWITCHES`), and the machine class it measured (``machine``:
:func:`enlcn.bench.machine.machine_record`); every CSV row carries the level and the CPU too
(:data:`MACHINE_COLUMNS`).

Imports only :mod:`enlcn.bench.machine` of :mod:`enlcn.bench`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..attention import native
from ..provenance import Provenance, hardware, load_average, write_csv_atomic, write_json_atomic
from .machine import machine_record

#: columns every CSV row gets from the run's record: our kernels' instruction-set level, whether it is a
#: level below the CPU's best (libraries capped, :mod:`enlcn.bench.machine`), and the CPU model
MACHINE_COLUMNS = ("isa", "isa_emulated", "cpu")


def _check(value: float, target: str) -> str:
    if target == "info" or math.isnan(value):
        return ""
    op, bound = target.split()
    ok = {"<=": value <= float(bound), ">=": value >= float(bound), "==": value == float(bound)}[op]
    return "PASS" if ok else "FAIL"


def ratio_line(name: str, value: float, target: str) -> str:
    """``ratio <name>: <value> (target <op> <bound>) PASS|FAIL`` (``info`` ratios carry no verdict)."""
    return f"ratio {name}: {value:.4g} (target {target}) {_check(value, target)}".rstrip()


RATIO_LINE = r"^ratio (\S+): (\S+) \(target ([^)]*)\)"

#: what :func:`enlca_fast_path` reports for runs recorded before the native kernel existed
PRE_NATIVE_PATH = "python (before the native kernel existed)"


def start_provenance(profile: str | None, parameters: dict, device: str, threads: int) -> Provenance:
    """The run's :class:`~enlcn.provenance.Provenance` (its load average is the one before the run).

    Every mode records which ENLCA inference path it timed (``parameters.enlca_fast_path``, from
    :func:`enlcn.attention.native.status`) and which code trains ENLA/ENLCA's attention
    (``parameters.enla_training_path``, :func:`enlcn.attention.native.enla_train_status`); both build their
    kernel if needed, before any timing.
    """
    parameters = {
        **parameters,
        "enlca_fast_path": native.status(),
        "enla_training_path": native.enla_train_status(),
        "machine": machine_record(),
    }
    return Provenance("enlcn.bench", profile, parameters, seed=0, hardware=hardware(device, threads))


def enlca_fast_path(meta: dict) -> str:
    """The ENLCA inference path a run (a JSON of :func:`read_results`) timed, as recorded."""
    return meta["provenance"].get("parameters", {}).get("enlca_fast_path", PRE_NATIVE_PATH)


def write_results(
    out: Path, table: pd.DataFrame, prov: Provenance, rat: list[tuple[str, float, str]]
) -> None:
    """``table`` as CSV at ``out``, each row with the run's :data:`MACHINE_COLUMNS`, and ``{"provenance",
    "ratios"}`` as JSON beside it (both atomic)."""
    machine = prov.parameters.get("machine", {})
    row = {
        "isa": machine.get("isa"),
        "isa_emulated": machine.get("isa_emulated"),
        "cpu": prov.hardware["cpu"],
    }
    write_csv_atomic(out, table.assign(**row))
    meta = {
        "provenance": prov.finish().to_dict(),
        "ratios": {name: {"value": value, "target": target} for name, value, target in rat},
    }
    write_json_atomic(out.with_suffix(".json"), meta)
    print(f"wrote {out} and {out.with_suffix('.json')}")


def read_results(json_path: str | os.PathLike) -> tuple[dict, pd.DataFrame]:
    """The JSON and the CSV beside it of one run; ``ValueError`` naming the command to re-run if the JSON
    has the layout from before the shared provenance record."""
    path = Path(json_path)
    meta = json.loads(path.read_text())
    if "provenance" not in meta:
        mode = next((f" --{m}" for m in ("models", "pipeline") if path.stem.endswith(f"-{m}")), "")
        raise ValueError(
            f"{path} has the old benchmark layout (no 'provenance' record): "
            f"re-run `python -m enlcn.bench{mode}` to regenerate it"
        )
    return meta, pd.read_csv(path.with_suffix(".csv"))


def run_summary(meta: dict) -> str:
    """One line saying where and when a run (a JSON of :func:`read_results`) was measured."""
    prov, hw = meta["provenance"], meta["provenance"]["hardware"]
    where = hw["gpu"] if hw["device"].startswith("cuda") and "gpu" in hw else hw["cpu"]
    path = enlca_fast_path(meta)
    return (
        f"{where} ({hw['device']}, {hw['torch_threads']} threads), torch {prov['versions']['torch']}, "
        f"commit {prov['commit']}, {prov['started']}, load average {hw['load_average_1_5_15min']}, "
        f"ENLCA fast path: {path}" + _switches_text(prov["parameters"].get("path_switches") or {})
    )


def _switches_text(switches: dict) -> str:
    """``"; reference training paths: ENLCN_NATIVE=0 …"`` for a run with path switches set, else ``""``."""
    if not switches:
        return ""
    return "; reference training paths: " + " ".join(f"{k}={v}" for k, v in switches.items())


def _print_ratios(rat: list[tuple[str, float, str]]) -> None:
    print("\nratios (this run):")
    for name, value, target in rat:
        print(ratio_line(name, value, target))


#: ``ENLCN_CHANNELS_LAST=1``: the training steps of the bench run channels_last (a measurement option)
CHANNELS_LAST_ENV = "ENLCN_CHANNELS_LAST"
#: the switches back to the reference (autograd) training paths; a run records the ones set
PATH_SWITCHES = ("ENLCN_NATIVE", "ENLCN_FUSED_ENLA", "ENLCN_BLOCKED", CHANNELS_LAST_ENV)


def _parameters(args: argparse.Namespace, **resolved) -> dict:
    """The run's arguments with the defaults it resolved (the provenance record's ``parameters``), and the
    path switches set in the environment (``path_switches``: empty when every fast path is on)."""
    switches = {k: os.environ[k] for k in PATH_SWITCHES if k in os.environ}
    return {k: v for k, v in vars(args).items() if k != "worker"} | resolved | {"path_switches": switches}


def _warn_if_loaded() -> None:
    load = load_average()
    if load and load[0] > 0.25 * (os.cpu_count() or 1):
        print(f"warning: load average {load[0]} before the run: other processes share the CPU and skew times")


#: committed ``--pipeline`` runs kept per machine class: ``results/bench/classes/<class>/<file>``
CLASSES_DIR = "classes"


def machine_class(meta: dict) -> str:
    """A run's machine class (a JSON of :func:`read_results`): its kernels' level, ``-emulated`` when that
    level is below the CPU's best (libraries capped, :mod:`enlcn.bench.machine`); ``unrecorded`` for runs
    from before the machine record."""
    machine = meta["provenance"].get("parameters", {}).get("machine")
    if not machine or not machine.get("isa"):
        return "unrecorded"
    return machine["isa"] + ("-emulated" if machine.get("isa_emulated") else "")


def class_runs(bench_dir: Path, name: str = "cpu-pipeline.json") -> dict[str, dict]:
    """``{folder: meta}`` of the runs ``<bench_dir>/classes/<folder>/<name>``, in folder order; a folder
    whose run is of another class than its name says is a ``ValueError`` (a file put in the wrong place)."""
    runs = {}
    for path in sorted((Path(bench_dir) / CLASSES_DIR).glob(f"*/{name}")):
        meta, _ = read_results(path)
        if machine_class(meta) != path.parent.name:
            raise ValueError(f"{path}: a run of class {machine_class(meta)!r} in folder {path.parent.name!r}")
        runs[path.parent.name] = meta
    return runs


def classes_machines(runs: dict[str, dict]) -> pd.DataFrame:
    """One row per class of :func:`class_runs`: the CPU, whether the level was emulated, the libraries'
    caps, when and at which commit it was measured, the load before it, and the kernels' paths."""
    rows = []
    for name, meta in runs.items():
        prov = meta["provenance"]
        machine = prov["parameters"]["machine"]
        rows.append(
            {
                "class": name,
                "cpu": prov["hardware"]["cpu"],
                "ATen level": machine["aten_capability"],
                "library caps": " ".join(f"{k}={v}" for k, v in machine["library_caps"].items()) or "none",
                "started": prov["started"][:16].replace("T", " "),
                "commit": prov["commit"],
                "load before (1 min)": prov["hardware"]["load_average_1_5_15min"][0],
                "ENLA training": machine["kernel_paths"]["enla_training"],
                "contrastive": machine["kernel_paths"]["contrastive"],
            }
        )
    return pd.DataFrame(rows)


def classes_ratios(runs: dict[str, dict], extra: Sequence[str] = ("sgemm_gflops",)) -> pd.DataFrame:
    """The target ratios of :func:`class_runs` side by side: one row per ratio with a target (and the
    ``extra`` info ratios, the roofline's measured sgemm GFLOP/s by default), a ``target`` column, then
    one column per class with its value and one with ``met`` / ``not met``."""
    names: list[str] = []
    for meta in runs.values():
        names += [
            k for k, v in meta["ratios"].items() if (v["target"] != "info" or k in extra) and k not in names
        ]
    rows = []
    for ratio in names:
        row: dict[str, object] = {"ratio": ratio}
        for cls, meta in runs.items():
            entry = meta["ratios"].get(ratio)
            row["target"] = entry["target"] if entry else row.get("target", "info")
            row[cls] = entry["value"] if entry else math.nan
            verdict = _check(entry["value"], entry["target"]) if entry else ""
            row[f"{cls} verdict"] = {"PASS": "met", "FAIL": "not met"}.get(verdict, "")
        rows.append(row)
    return pd.DataFrame(rows)
