"""The GPU user's path, walked on the CPU: `make book PROFILE=paper` on data in `enlcn data fetch`'s layout.

A tiny DIV2K + five-benchmark folder (tests/paper_fixture.py) stands in for the real data through
``ENLCN_DATA``; ``ENLCN_SMOKE_STEPS=2`` shortens every training run to two steps of batch 2 (the paper
profile's models, data path, evaluation and result layout unchanged). Its two other shortcuts keep the
images small, because every image validated, scored or analysed goes through the 41 M-parameter model:
the fixture's validation and benchmark images are 32×40 HR, the smallest that PSNR/SSIM score after the
border crop (same code paths as 96² images, a ninth of the pixels; its training images stay above the 16²
training patch), and the procedural self-similar images are 160² instead of 256² under
``ENLCN_SMOKE_STEPS`` (:data:`enlcn.profiles.SMOKE_SELFSIM_MOTIFS`).
Every notebook runs under papermill with ``profile=paper`` into a temporary root — never the committed
results/ — and the book builds from those executed notebooks; the Findings chapter fills its Table 1 row
there (wiring, not a claimed number).
Minutes on two cores: marked ``paper_smoke`` (``make test-paper-smoke``; .ci/run runs it after make test).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from paper_fixture import make_paper_data
from procs import run

pytestmark = [pytest.mark.paper_smoke, pytest.mark.timeout(2700)]  # minutes on two cores
REPO = Path(__file__).resolve().parents[1]
ORDER = ("ablations", "correlation_maps", "explore", "figure5", "pilot", "ablation_k", "efficiency",
         "findings")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    papermill = pytest.importorskip("papermill")
    root = tmp_path_factory.mktemp("paper")
    data = make_paper_data(root / "data")
    env = {"ENLCN_DATA": str(data), "ENLCN_SMOKE_STEPS": "2"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out = root / "executed"
    out.mkdir()
    try:
        assert sorted(ORDER) == sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
        for name in ORDER:
            params = {"profile": "paper", "root": str(root)}
            if name in ("ablations", "correlation_maps"):  # `make book` never trains; this smoke does
                params["train_missing"] = True
            papermill.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                       parameters=params, kernel_name="python3", cwd=str(root),
                                       progress_bar=False)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return root, out


def test_every_notebook_runs_under_the_paper_profile(smoke):
    root, out = smoke
    assert {p.stem for p in out.glob("*.ipynb")} == set(ORDER)
    study = root / "results" / "paper" / "study"
    for name in ("base", "enlca", "nla"):
        cfg = (study / name / "config.json").read_text()
        assert '"preset": "paper"' in cfg and '"iters_per_epoch": 2' in cfg
    scores = (study / "enlca" / "scores.csv").read_text()
    for benchmark in ("Set5", "Set14", "B100", "Urban100", "Manga109"):
        assert benchmark in scores
    assert not (REPO / "results" / "paper").exists()  # nothing written into the committed results


def test_findings_fills_the_table1_row(smoke):
    import pandas as pd

    root, _ = smoke
    table = pd.read_csv(root / "results" / "paper" / "findings" / "findings.csv")
    row = table[table.claim.astype(str) == "4"].iloc[0]
    assert "Set5" in row.ours and "dB" in row.ours and row.verdict == "compare with Table 1"


def test_the_book_builds_from_the_paper_outputs(smoke, tmp_path):
    root, out = smoke
    book = tmp_path / "book"
    shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "notebooks"))
    shutil.copytree(out, book / "notebooks")
    py = sys.executable
    run([py, str(REPO / "book" / "gen_deviations.py"), "--output", str(book / "deviations.md")], check=True)
    jb = Path(py).with_name("jupyter-book")
    built = run([str(jb), "build", str(book), "--all", "-W", "--keep-going"], timeout=1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "Table 1" in (book / "_build" / "html" / "notebooks" / "findings.html").read_text()
