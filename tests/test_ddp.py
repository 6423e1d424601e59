"""torchrun: 2 CPU processes (gloo) split each batch and end with the weights of a 1-process run.

Measured: after 6 steps of ENLCN (contrastive loss on, projections redrawn every 2 calls, lr 1e-3) the
2-process weights differ from the 1-process ones by at most ~5e-8 (float reduction order), while the
weights move ~6e-3 from their start; a 2-process run whose ranks use the same shard, or that does not
average gradients, differs by ~9e-3. TOL sits between the two by orders of magnitude.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from procs import run

TOL = 1e-5
STEPS = 6

SCRIPT = """
import sys

import numpy as np
import torch

from enlcn.train import Trainer, train_config

torch.set_num_threads(1)
rng = np.random.default_rng(0)
pairs = []
for _ in range(3):
    hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    pairs.append((hr.reshape(24, 2, 24, 2, 3).mean((1, 3)).round().astype(np.uint8), hr))
cfg = train_config(
    "quick", model="enlcn", warmup_epochs=0, epochs=2, iters_per_epoch=3, lr_patch=12, batch_size=4,
    checkpoint_every=3, lr=1e-3, attention={"redraw_interval": 2},
)
out, mode = sys.argv[1], sys.argv[2]
trainer = Trainer(cfg, pairs, [("val", *pairs[0])], out)
trainer.fit(stop_after=4 if mode == "part" else None, resume=mode == "resume", progress=False)
"""


def train(tmp_path, out: str, mode: str = "full", nproc: int = 1) -> None:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    launch = [sys.executable]
    if nproc > 1:
        launch += ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    proc = run(  # its whole process tree ends on a timeout: torchrun's workers run in sessions of their own
        [*launch, str(script), str(tmp_path / out), mode],
        timeout=600,  # the four runs take ~25 s together on an idle 2-core machine: generous when loaded
        env={**env, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"{out} ({nproc} processes) failed:\n{proc.stderr[-6000:]}"


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path / "checkpoints" / "latest.pt", weights_only=False)["model"]


def assert_same_run(one: dict, two: dict) -> None:
    assert one.keys() == two.keys()
    for key in one:
        if "projection" in key or "calls_since_redraw" in key:  # drawn from the same RNG on every rank
            assert torch.equal(one[key], two[key]), key
        else:
            diff = (one[key] - two[key]).abs().max().item()
            assert diff < TOL, f"{key}: 1 vs 2 processes differ by {diff:.3g}"


def files(path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def log_rows(path) -> list[list[float]]:
    lines = (path / "train_log.csv").read_text().splitlines()
    return [[float(v) for v in line.split(",")] for line in lines[1:]]


@pytest.mark.timeout(4 * 600 + 300)  # four runs of up to 600 s each
def test_two_processes_train_like_one(tmp_path):
    from enlcn.models import build_model

    train(tmp_path, "one")
    train(tmp_path, "two", nproc=2)
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert_same_run(one, two)
    torch.manual_seed(0)
    start = build_model("enlcn", 2, "quick").state_dict()
    trained = [k for k in one if one[k].is_floating_point() and "projection" not in k]
    moved = max((one[k] - start[k]).abs().max().item() for k in trained)
    assert moved > 100 * TOL  # the comparison is not vacuous: training moved the weights

    # only rank 0 wrote: one header and one row per step; the logged losses are the whole batch's
    rows_one, rows_two = log_rows(tmp_path / "one"), log_rows(tmp_path / "two")
    assert [int(r[0]) for r in rows_two] == list(range(1, STEPS + 1))
    assert torch.allclose(torch.tensor(rows_two), torch.tensor(rows_one), rtol=1e-5, atol=0)
    val = {run: np.loadtxt(tmp_path / run / "val_log.csv", delimiter=",", ndmin=2) for run in ("one", "two")}
    assert val["two"].shape == (2, 3) and np.allclose(val["two"], val["one"], atol=1e-3)  # step, epoch, PSNR
    assert files(tmp_path / "two") == files(tmp_path / "one")

    # interrupted after step 4 (mid-epoch, after a redraw) and resumed on 2 processes: the same run
    train(tmp_path, "resumed", "part", nproc=2)
    train(tmp_path, "resumed", "resume", nproc=2)
    assert_same_run(one, weights(tmp_path / "resumed"))
    assert [int(r[0]) for r in log_rows(tmp_path / "resumed")] == list(range(1, STEPS + 1))


def test_batch_must_split_evenly_over_the_processes(tmp_path, monkeypatch):
    from enlcn.train import Trainer, train_config

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    hr = np.zeros((48, 48, 3), np.uint8)
    with pytest.raises(ValueError, match=r"batch_size 4 is not divisible by the number of processes 3"):
        Trainer(train_config("quick", batch_size=4), [(hr[::2, ::2], hr)], [], tmp_path)
