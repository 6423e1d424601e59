"""How the book shows a table: a caption that says what it is (and its units), numbers to a fixed number of
decimals, a missing value shown as "—" with the caption saying why it is missing, and never "NaN".

A notebook's last expression ``book_table(frame, caption, missing=...)`` renders as an HTML table; a
table that has missing values but does not say what they mean is an error, so a reader never has to
guess whether a blank is zero, unknown or not applicable.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import pandas as pd
from pandas.io.formats.style import Styler

#: what a missing value shows as
DASH = "—"


@dataclass(frozen=True)
class BookTable:
    """A captioned table: the caption is a paragraph above the table (it wraps to the page width even
    when a wide table scrolls sideways), the table is a pandas Styler."""

    caption: str
    styler: Styler

    @property
    def frame(self) -> pd.DataFrame:
        """The table's data (unformatted)."""
        return self.styler.data

    def to_html(self) -> str:
        return f'<p class="enlcn-caption">{escape(self.caption)}</p>\n' + self.styler.to_html()

    def _repr_html_(self) -> str:  # what Jupyter (and the book) shows
        return self.to_html()

    def __repr__(self) -> str:  # the plain-text form, e.g. in a terminal
        return f"{self.caption}\n{self.frame.to_string()}"


def book_table(
    frame: pd.DataFrame,
    caption: str,
    missing: str | None = None,
    digits: int = 3,
    index: bool = False,
) -> BookTable:
    """``frame`` as the book shows it: ``caption`` above it, floats to ``digits`` decimals, each missing
    value as "—" and the caption ending with what "—" means (``missing``, e.g. "not in the paper"),
    the row index shown only when ``index`` (a pivot's labels)."""
    if not caption.strip():
        raise ValueError("book_table: the caption is empty; say what the table is and its units")
    labels = frame.index.to_frame(index=False)  # a pivot's row labels can be missing too
    has_missing = bool(frame.isna().to_numpy().any() or (index and labels.isna().to_numpy().any()))
    if has_missing and not missing:
        columns = [str(c) for c in frame.columns[frame.isna().any().to_numpy()]]
        columns += [f"index {c}" for c in labels.columns[labels.isna().any().to_numpy()]] if index else []
        raise ValueError(
            f"book_table {caption[:40]!r}: missing values in {columns}: say what they mean (missing=…)"
        )
    text = caption.rstrip()
    if has_missing:
        text += f" {DASH}: {missing}."
    styler = frame.style.format(precision=digits, na_rep=DASH).format_index(precision=digits, na_rep=DASH)
    return BookTable(text, styler if index else styler.hide(axis="index"))


def settings_table(settings: object, caption: str) -> BookTable:
    """A dataclass instance of settings (e.g. :class:`enlcn.profiles.AblationK`) as a captioned table: one
    row per field, its value (a tuple as its items joined by commas, floats as ``%g``) and what it means (the
    field's ``metadata["meaning"]``; a field without one is an error, so no setting is shown unexplained)."""
    from dataclasses import fields

    def text(value: object) -> str:
        if isinstance(value, tuple | list):
            return ", ".join(text(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    rows = []
    for f in fields(settings):  # type: ignore[arg-type]
        if "meaning" not in f.metadata:
            raise ValueError(f"settings_table: {type(settings).__name__}.{f.name} does not say what it means")
        value = text(getattr(settings, f.name))
        rows.append({"setting": f.name, "value": value, "meaning": f.metadata["meaning"]})
    return book_table(pd.DataFrame(rows), caption)


def interval_text(value: object, digits: int = 3) -> object:
    """An interval kept as text in a CSV, ``"(-0.00524588171, 0.0044587137)"``, as ``"(-0.005, 0.004)"``;
    any other value as it is."""
    if not isinstance(value, str):
        return value
    parts = value.strip().removeprefix("(").removesuffix(")").split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        return value
    return f"({low:.{digits}f}, {high:.{digits}f})"
