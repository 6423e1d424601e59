"""Machines without the native kernels (aarch64: Apple silicon, Graviton) train and evaluate on the Python
paths, and every status line says why. The machine is faked in a subprocess (``platform.machine``), so the
whole pipeline runs as it would there, and its losses are compared with this machine's native run."""

from __future__ import annotations

import json
import os
import sys

import procs
import pytest

SCRIPT = r"""
import json, platform, sys
if sys.argv[1] == "aarch64":
    platform.machine = lambda: "aarch64"
import numpy as np
import torch
from enlcn.attention import native
from enlcn.train import Trainer, train_config

torch.set_num_threads(1)
rng = np.random.default_rng(0)
pairs = []
for _ in range(2):
    hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    pairs.append((hr.reshape(24, 2, 24, 2, 3).mean((1, 3)).round().astype(np.uint8), hr))
from enlcn.models.edsr import training_paths

losses, paths = {}, {}
for model in ("enlcn", "edsr+nla"):
    cfg = train_config("quick", model=model, warmup_epochs=0, epochs=1, iters_per_epoch=3, lr_patch=12,
                       batch_size=2, checkpoint_every=3, lr=1e-3)
    trainer = Trainer(cfg, pairs, [("val", *pairs[0])], f"{sys.argv[2]}/{model}")
    summary = trainer.fit(progress=False)
    paths.update({f"{model}: {k}": v for k, v in training_paths(trainer.model).items()})
    losses[model] = [float(v) for v in np.loadtxt(f"{sys.argv[2]}/{model}/train_log.csv", delimiter=",",
                                                  skiprows=1, usecols=2)] + [summary["best_psnr"]]
status = {"inference": native.status(), "attention": native.attention_status(),
          "contrastive": native.contrastive_status(), "enla_train": native.enla_train_status()}
print(json.dumps({"losses": losses, "status": status, "paths": paths}))
"""


def _run(tmp_path, machine: str) -> dict:
    script = tmp_path / "generic.py"
    script.write_text(SCRIPT)
    out = tmp_path / machine
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = procs.run([sys.executable, str(script), machine, str(out)], env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_aarch64_machine_trains_on_the_python_paths_and_says_why(tmp_path):
    generic = _run(tmp_path, "aarch64")
    for name, line in generic["status"].items():
        assert line == "python: not built for aarch64: the kernels are x86-64 only (the Python paths run)", (
            name,
            line,
        )
    native = _run(tmp_path, "native")
    if native["status"]["inference"].startswith("python"):
        pytest.skip(f"no native kernels on this machine to compare with: {native['status']}")
    for model, losses in generic["losses"].items():
        # the same run on other code paths: the losses agree to float rounding, 3 steps and validation
        assert losses == pytest.approx(native["losses"][model], rel=1e-4), model
    # two different paths, not one path run twice (at these sizes the attention branch's rounding does not
    # reach the float32 losses, so they may even be equal)
    assert all("native" in p for p in native["paths"].values()), native["paths"]
    assert all("native" not in p for p in generic["paths"].values()), generic["paths"]
