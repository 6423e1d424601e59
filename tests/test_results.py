"""Committed results: rendered as they are, recomputed deliberately, rewritten only when they changed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from enlcn.provenance import provenance
from enlcn.results import ATOL, RTOL, ResultFolder, compare_tables, csv_text, parameters_differ, read_table


def frame(x: float = 0.1864429, label: str = "a") -> pd.DataFrame:
    return pd.DataFrame({"label": [label, "b"], "k": [1, 6], "value": [x, np.nan], "big": [35.2213, 1e-12]})


def folder(tmp_path, recompute=False, **params) -> ResultFolder:
    return ResultFolder(tmp_path / "r", provenance("nb", "quick", {"n": 1, **params}, seed=0), recompute)


def never():
    raise AssertionError("render mode recomputed a committed result")


def commit(tmp_path, table: pd.DataFrame) -> str:
    """Write ``table`` and its provenance as a first run would; return the CSV text."""
    first = folder(tmp_path)
    first.table("t.csv", lambda: table)
    first.finish()
    return (tmp_path / "r" / "t.csv").read_text()


def test_the_issue_s_cross_cpu_difference_is_within_the_tolerance_and_a_real_change_is_not():
    old = read_table(pd.io.common.StringIO(csv_text(frame(0.1864429))))
    amd = read_table(pd.io.common.StringIO(csv_text(frame(0.18644289))))  # the issue's AMD value
    c = compare_tables(amd, old)
    assert c.same and c.max_abs == pytest.approx(1e-8, rel=1e-3)
    assert c.status() == "reproduced (max difference 1e-08)"
    moved = compare_tables(read_table(pd.io.common.StringIO(csv_text(frame(0.18645)))), old)
    assert not moved.same and "column 'value' differs by up to 7.1e-06" in moved.status()
    assert RTOL * 0.1864429 < 7.1e-6  # the tolerance is what decides, not the rounding
    assert compare_tables(old, old).status() == "reproduced (identical)"


def test_other_cells_columns_rows_and_missing_values_must_match_exactly():
    old = frame()
    assert "row 0: 'a' → 'x'" in compare_tables(frame(label="x"), old).why
    assert "columns" in compare_tables(old.drop(columns="big"), old).why
    assert "3 rows → 2" in compare_tables(old.head(2), pd.concat([old, old.head(1)])).why
    filled = old.assign(value=[0.1864429, 0.0])
    assert "missing values moved" in compare_tables(filled, old).why
    tiny = old.assign(big=[35.2213, 1e-12 + ATOL / 2])  # near zero: the absolute tolerance
    assert compare_tables(tiny, old).same


def test_render_mode_reads_the_committed_file_and_writes_nothing(tmp_path):
    text = commit(tmp_path, frame())
    record = (tmp_path / "r" / "provenance.json").read_text()
    render = folder(tmp_path)
    shown = render.table("t.csv", never)
    shown_prov = render.finish()
    assert (tmp_path / "r" / "t.csv").read_text() == text
    assert (tmp_path / "r" / "provenance.json").read_text() == record  # the numbers' own record stays
    assert render.statuses == {"t.csv": "committed"} and render.wrote == []
    assert shown.equals(read_table(tmp_path / "r" / "t.csv"))
    assert shown_prov.caption.startswith("What this page's run did with each result file")
    rows = dict(zip(shown_prov.frame.field, shown_prov.frame.value, strict=True))
    assert rows["file t.csv"] == "committed" and rows["this run"].startswith("render at commit")
    assert rows["results.t.csv"] == "new"  # the provenance of the run that wrote the numbers


def test_recompute_keeps_a_reproduced_file_byte_for_byte(tmp_path):
    text = commit(tmp_path, frame(0.1864429))
    again = folder(tmp_path, recompute=True)
    shown = again.table("t.csv", lambda: frame(0.18644289))
    again.finish()
    assert (tmp_path / "r" / "t.csv").read_text() == text
    assert again.statuses["t.csv"] == "reproduced (max difference 1e-08)"
    assert shown["value"][0] == 0.1864429  # the page shows the committed numbers
    assert json.loads((tmp_path / "r" / "provenance.json").read_text())["results"] == {"t.csv": "new"}


def test_recompute_rewrites_a_changed_file_and_its_provenance(tmp_path):
    commit(tmp_path, frame(0.1864429))
    again = folder(tmp_path, recompute=True)
    shown = again.table("t.csv", lambda: frame(0.2))
    again.finish()
    assert shown["value"][0] == 0.2 and read_table(tmp_path / "r" / "t.csv")["value"][0] == 0.2
    assert again.wrote == ["t.csv"]
    record = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert record["results"]["t.csv"] == "changed (column 'value' differs by up to 0.0136)"
    assert not list((tmp_path / "r").glob("*.tmp"))


def test_a_run_with_other_parameters_recomputes_even_in_render_mode(tmp_path):
    commit(tmp_path, frame())
    other = folder(tmp_path, n=2)
    assert other.stale == "parameter n: 1 → 2" and not other.render
    other.table("t.csv", lambda: frame(0.5))
    other.finish()
    assert json.loads((tmp_path / "r" / "provenance.json").read_text())["parameters"]["n"] == 2
    assert folder(tmp_path, n=2).render  # the folder now holds n = 2's numbers
    prov = provenance("nb", "quick", {"n": 2}, seed=1)
    assert parameters_differ(prov, {"profile": "quick", "seed": 0, "parameters": {"n": 2}}) == "seed 0 → 1"
    # keys a run adds to its record at the end (the models it found) are not compared
    added = {"profile": "quick", "seed": 1, "parameters": {"n": 2, "models": []}}
    assert parameters_differ(prov, added) == ""
    tup = provenance("nb", "quick", {"ks": (1, 6)})
    assert parameters_differ(tup, {"profile": "quick", "seed": None, "parameters": {"ks": [1, 6]}}) == ""


def test_a_missing_result_is_computed_and_written_in_render_mode(tmp_path):
    commit(tmp_path, frame())
    render = folder(tmp_path)
    render.table("t.csv", never)
    render.table("u.csv", lambda: frame(0.3))
    render.finish()
    assert render.statuses == {"t.csv": "committed", "u.csv": "new"}
    assert json.loads((tmp_path / "r" / "provenance.json").read_text())["results"]["u.csv"] == "new"


def test_text_results_use_their_own_equality(tmp_path):
    first = folder(tmp_path)
    first.text("d.js", lambda: "x = 1.0001;\n")
    first.finish()
    same = folder(tmp_path, recompute=True)
    assert same.text("d.js", lambda: "x = 1.0002;\n", same=lambda a, b: a[:7] == b[:7]) == "x = 1.0001;\n"
    assert same.statuses["d.js"] == "reproduced"
    changed = folder(tmp_path, recompute=True)
    changed.text("d.js", lambda: "x = 2;\n")
    assert changed.statuses["d.js"] == "changed"
    assert (tmp_path / "r" / "d.js").read_text() == "x = 2;\n"


def test_each_folder_reports_its_statuses_for_the_notebook_runner(tmp_path, monkeypatch):
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv("ENLCN_RESULTS_REPORT", str(report))
    commit(tmp_path, frame())
    again = folder(tmp_path, recompute=True)
    again.table("t.csv", lambda: frame(0.18644289))
    again.finish()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    statuses = [entry["statuses"] for entry in lines]
    assert statuses == [{"t.csv": "new"}, {"t.csv": "reproduced (max difference 1e-08)"}]
    assert lines[1]["recompute"] is True and lines[1]["folder"].endswith("/r")


def test_the_explorer_data_is_the_same_within_one_coding_step():
    from enlcn.study.explorer import explorer_js, pack_embeddings, same_explorer_data

    rng = np.random.default_rng(0)
    u = rng.normal(size=(64, 4))

    def data(directions: np.ndarray, k: float = 6.0) -> str:
        module = {"k": k, "feature_eps": 1e-4, "orthogonal": True, "m": 4, "c": 4, "projection": "AAAA"}
        packed = pack_embeddings([directions, directions[::-1].copy()], (8, 8))  # Q, K of one module
        image = {"shape": [8, 8], "lr": "png", "labels": None, "embeddings": {"m": packed}}
        models = {"m": [module]}
        return explorer_js({"profile": "quick", "encoding": "e", "models": models, "images": {"im": image}})

    base = data(u)
    assert same_explorer_data(data(u * (1 + 1e-7)), base)  # a re-encode of a recomputation
    assert same_explorer_data(data(u + 1e-6), base)  # float noise tips a code by at most one step
    moved = u.copy()
    moved[3] = rng.normal(size=4)
    assert not same_explorer_data(data(moved), base)  # one position's embedding perturbed
    assert not same_explorer_data(data(u, k=1.0), base)
