"""Tables as the book shows them: a caption, fixed decimals, and a dash (explained) for a missing value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enlcn.display import book_table
from enlcn.provenance import record_table


def test_a_missing_value_shows_as_a_dash_and_the_caption_says_why():
    frame = pd.DataFrame({"method": ["NLA", "Conv"], "paper_psnr": [26.87, np.nan]})
    html = book_table(frame, "PSNR (dB).", missing="the paper gives none").to_html()
    assert ">—<" in html and "nan" not in html.lower()
    assert "PSNR (dB). —: the paper gives none." in html
    assert ">26.870<" in html  # three decimals
    assert ">0<" not in html  # no index column


def test_a_table_with_missing_values_must_say_what_they_mean():
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [1, 2]})
    with pytest.raises(ValueError, match=r"missing values in \['a'\]: say what they mean"):
        book_table(frame, "A table.")
    with pytest.raises(ValueError, match="caption is empty"):
        book_table(frame.fillna(0), " ")
    full = book_table(frame.fillna(0), "A table.", missing="never shown").to_html()
    assert "never shown" not in full  # nothing missing: the caption says nothing about dashes


def test_provenance_without_a_seed_shows_a_dash_not_nan():
    table = record_table({"seed": None, "hardware": {"cores": 2}}, [("file t.csv", "committed")])
    assert table.to_dict("records") == [
        {"field": "file t.csv", "value": "committed"},
        {"field": "seed", "value": "—"},
        {"field": "hardware.cores", "value": "2"},
    ]


def test_provenance_shows_nested_records_in_full_one_short_row_each():
    sessions = [{"commit": "35b7cf368135", "finished_step": 900},
                {"commit": "9494123289d4", "finished_step": 4000}]
    record = {"parameters": {"queries": 48, "models": {"enla": sessions}, "pending": []},
              "uncommitted": ["a.py", "b.py"]}
    rows = dict(record_table(record).itertuples(index=False))
    assert rows == {
        "parameters.queries": "48",
        "parameters.models.enla[0]": "commit: 35b7cf368135, finished_step: 900",
        "parameters.models.enla[1]": "commit: 9494123289d4, finished_step: 4000",
        "parameters.pending": "none",
        "uncommitted": "a.py, b.py",
    }
    html = book_table(record_table(record), "Provenance.").to_html()
    assert "finished_step: 4000" in html and "{'" not in html  # in full, no dict text


def test_a_missing_row_label_of_a_pivot_is_a_dash_too():
    pivot = pd.DataFrame({"claim": ["k = 6 beats k = 2"], "paper Δ": [np.nan], "ours": [0.01]})
    pivot = pivot.set_index(["claim", "paper Δ"])
    with pytest.raises(ValueError, match=r"index paper Δ"):
        book_table(pivot, "Claims.", index=True)
    html = book_table(pivot, "Claims.", missing="Figure 6 is a plot", index=True).to_html()
    assert "nan" not in html.lower() and ">—<" in html


def test_an_interval_kept_as_text_is_rounded_for_the_page():
    from enlcn.display import interval_text

    assert interval_text("(-0.00524588171002235, 0.004458713706851104)") == "(-0.005, 0.004)"
    assert interval_text("(1, 2)", digits=1) == "(1.0, 2.0)"
    assert interval_text("not an interval") == "not an interval"
    assert interval_text(0.5) == 0.5


def test_settings_show_as_a_table_of_values_and_meanings():
    from dataclasses import dataclass, field

    from enlcn.display import settings_table
    from enlcn.profiles import AblationK, get_profile

    table = settings_table(get_profile("cpu").ablation_k, "The settings.")
    rows = {r.setting: (r.value, r.meaning) for r in table.frame.itertuples()}
    assert list(rows) == ["ks", "coses", "m", "c", "draws", "ms", "image_size", "queries", "repeats"]
    assert rows["ks"] == ("1, 2, 3, 4, 6, 8, 10", "amplification factors k")
    assert rows["coses"][0] == "-0.5, 0, 0.5" and rows["draws"][0] == "4000"
    assert "AblationK(" not in table.to_html() and "The settings." in table.to_html()
    assert AblationK(ks=(2.0,)).ks == (2.0,)  # the fields' meanings change nothing else

    @dataclass(frozen=True)
    class Unexplained:
        a: int = field(default=1, metadata={"meaning": "explained"})
        b: int = 2

    with pytest.raises(ValueError, match=r"Unexplained.b does not say what it means"):
        settings_table(Unexplained(), "Settings.")
