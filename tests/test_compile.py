"""`compile_model`: torch.compile with inductor's cache kept apart per ATen CPU level (enlcn.train).

Inductor's FX graph cache key leaves the level out; a graph compiled at the CPU's best level and served to
a process capped to a lower one gave NaN (or a segfault). The slow test reproduces the user's case: two
processes sharing inductor's default cache folder, the second at a lower level (as the ISA tests and the
bench run), each training the compiled model two steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enlcn.attention import native
from enlcn.train import ATEN_LEVEL_ENV, INDUCTOR_CACHE_ENV, compile_model, inductor_cache_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def default_dir(monkeypatch, tmp_path):
    """Inductor's default cache folder, moved under ``tmp_path`` (it lies in the temporary directory)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return Path(default_cache_dir()).resolve()


def test_a_capped_level_gets_its_own_folder(monkeypatch, default_dir):
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)
    monkeypatch.setenv(ATEN_LEVEL_ENV, "avx2")
    level = torch.backends.cpu.get_cpu_capability().lower()  # what ATen runs: fixed when torch loaded
    assert inductor_cache_dir() == str(default_dir / f"aten-{level}")
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(default_dir))  # inductor writes its default back once used
    assert inductor_cache_dir() == str(default_dir / f"aten-{level}")
    compile_model(torch.nn.Identity())
    assert os.environ[INDUCTOR_CACHE_ENV] == str(default_dir / f"aten-{level}")


def test_without_a_cap_or_with_a_chosen_folder_nothing_changes(monkeypatch, default_dir, tmp_path):
    monkeypatch.delenv(ATEN_LEVEL_ENV, raising=False)
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)
    assert inductor_cache_dir() is None
    compile_model(torch.nn.Identity())  # torch.compile writes inductor's default back into the environment
    assert Path(os.environ.get(INDUCTOR_CACHE_ENV, default_dir)).resolve() == default_dir
    monkeypatch.setenv(ATEN_LEVEL_ENV, "default")
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "mine"))
    assert inductor_cache_dir() is None
    compile_model(torch.nn.Identity())
    assert os.environ[INDUCTOR_CACHE_ENV] == str(tmp_path / "mine")


TRAIN = """
import json, numpy as np, torch
from enlcn.train import TrainConfig, Trainer
torch.manual_seed(0)
hr = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
pairs = [(hr.reshape(32, 2, 32, 2, 3).mean((1, 3)).round().astype(np.uint8), hr)]
cfg = TrainConfig(model="edsr+nla", scale=2, preset="quick", lr_patch=16, batch_size=2, iters_per_epoch=2,
                  epochs=1, warmup_epochs=0, checkpoint_every=1000, compile=True)
t = Trainer(cfg, pairs, [], "{out}", device="cpu")
print(json.dumps([t.train_step(*t.batches[s])[0] for s in range(2)]))
"""


@pytest.mark.slow
def test_a_lower_level_after_the_best_trains_right_from_a_shared_default_cache(tmp_path):
    levels = native.supported_levels()
    if len(levels) < 2:
        pytest.skip("an x86-64 CPU with two instruction-set levels is needed")
    env = {k: v for k, v in os.environ.items() if k not in (INDUCTOR_CACHE_ENV, *native.level_env("generic"))}
    env |= {"TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    losses = []
    for i, extra in enumerate(({}, native.level_env(levels[1]))):
        code = TRAIN.format(out=tmp_path / f"run{i}")
        done = subprocess.run([sys.executable, "-c", code], env=env | extra, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        level = extra.get(ATEN_LEVEL_ENV, "the best")
        assert done.returncode == 0, f"at {level}: exit {done.returncode}; {done.stderr[-1500:]}"
        losses.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert all(torch.isfinite(torch.tensor(run)).all() for run in losses), losses
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("torchinductor_")]  # inductor's default
    capped = native.level_env(levels[1])[ATEN_LEVEL_ENV]
    assert (folder / f"aten-{capped}").is_dir()  # the capped process compiled apart from the first
