"""The built book in a real browser (slow): Debian's chromium, driven by playwright, opens every page from
``file://`` with the network cut off. Each page must load only local files, all of them, log no error or
warning, and only the explorer page may load the explorer's data (4 MB). ``make test-browser`` runs it."""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from procs import run

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
LOCAL_SCHEMES = ("file", "data", "blob")
#: console message types that fail a page (playwright's names)
PROBLEM_TYPES = ("error", "warning", "assert")
EXPLORER_PAGE = "explorer.html"
EXPLORER_DATA = "_static/explorer/explorer-data.js"
REQUIRE_ENV = "ENLCN_REQUIRE_BROWSER"
NAN = re.compile(r"\bnan\b", re.IGNORECASE)
#: every body cell of every table as [table number, row label, column number, its header, text] (headers of
#: tables with merged cells may be shifted; the numbers are exact)
TABLE_CELLS_JS = """() => [...document.querySelectorAll("table")].flatMap((table, t) => {
  const text = (cell) => (cell ? cell.innerText.trim() : "");
  const header = table.tHead ? [...table.tHead.rows].at(-1).cells : [];
  return [...table.tBodies].flatMap((body) => [...body.rows]).flatMap((row) =>
    [...row.cells].map((cell, c) => [t + 1, text(row.cells[0]), c + 1, text(header[c]), text(cell)]));
})"""


@dataclass
class PageVisit:
    """What one page did in the browser; ``page`` is its path in the built site."""

    page: str
    requests: list[str] = field(default_factory=list)
    bytes_read: int = 0
    console: list[tuple[str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    nan_cells: list[str] = field(default_factory=list)
    drawn: bool | None = None  # the explorer page only: it drew its maps

    @property
    def problems(self) -> list[str]:
        """Console errors/warnings and uncaught exceptions, as ``type: text``."""
        return [f"{kind}: {text}" for kind, text in self.console if kind in PROBLEM_TYPES + ("pageerror",)]

    @property
    def remote(self) -> list[str]:
        return [url for url in self.requests if urlparse(url).scheme not in LOCAL_SCHEMES]


# ------------------------------------------------------------------------------------------- fixtures


def _chromium() -> str:
    """Debian's chromium; without it (or playwright) the tests skip, or fail when $ENLCN_REQUIRE_BROWSER=1."""
    missing = []
    if shutil.which("chromium") is None:
        missing.append("Debian's chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright is not installed (make venv: it is in the dev extra)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    return shutil.which("chromium")


def _jupyter_book() -> str:
    beside = Path(sys.executable).with_name("jupyter-book")
    found = str(beside) if beside.exists() else shutil.which("jupyter-book")
    assert found, "jupyter-book is not installed (make venv)"
    return found


def _build_book(out: Path) -> Path:
    """The book built into ``out`` from the notebooks `make book` executed (book/notebooks/, build output:
    `make test-browser` runs `make book` first); returns its html folder."""
    sources = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    missing = [name for name in sources if not (BOOK / "notebooks" / name).exists()]
    if missing:
        pytest.fail(f"book/notebooks/ lacks the executed {', '.join(missing)}: run `make book` first "
                    "(`make test-browser` does)")
    book = out / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", "*.tmp.ipynb", "__pycache__"))
    gen = run([sys.executable, str(BOOK / "gen_deviations.py"), "--output", str(book / "deviations.md")])
    assert gen.returncode == 0, f"book/gen_deviations.py failed:\n{gen.stdout}\n{gen.stderr}"
    proc = run([_jupyter_book(), "build", str(book), "--all", "-W", "--keep-going"], timeout=900)
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return book / "_build" / "html"


def site_pages(html: Path) -> list[Path]:
    """Every page of the built site (not the theme's or Sphinx's own files under _static/ or _sources/)."""
    return sorted(
        p for p in html.rglob("*.html") if not {"_static", "_sources"} & set(p.relative_to(html).parts)
    )


def _local_size(url: str) -> int:
    """Bytes the browser reads for a local request: the file's size (``data:`` URLs carry theirs)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return path.stat().st_size if path.is_file() else 0
    return len(url) if parsed.scheme == "data" else 0


def _visit(browser, html: Path, path: Path) -> PageVisit:
    """Open ``path`` as a first-time reader would (a fresh context: no cache, no localStorage) and record its
    requests, console messages, failures and NaN table cells. Every URL that is not local is refused."""
    visit = PageVisit(path.relative_to(html).as_posix())
    context = browser.new_context()
    context.route(re.compile(r"^(?!(file|data|blob):)"), lambda route: route.abort())
    page = context.new_page()
    page.on("request", lambda request: visit.requests.append(request.url))
    page.on("requestfailed", lambda request: visit.failed.append(f"{request.url} ({request.failure})"))
    page.on("console", lambda message: visit.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: visit.console.append(("pageerror", str(error))))
    try:
        page.goto(path.as_uri(), wait_until="networkidle")
        if visit.page == EXPLORER_PAGE:
            visit.drawn = _explorer_drew(page)
        cells = page.evaluate(TABLE_CELLS_JS)
    finally:
        context.close()
    visit.nan_cells = [
        f"table {t}, row {row!r}, column {c} {column!r}: {' '.join(text.split())}"
        for t, row, c, column, text in cells
        if NAN.search(text)
    ]
    visit.bytes_read = sum(
        _local_size(url) for url in visit.requests if urlparse(url).scheme in LOCAL_SCHEMES
    )
    return visit


def _explorer_drew(page, timeout_ms: int = 30_000) -> bool:
    """Whether the offline explorer (explorer.js) marked its maps drawn within ``timeout_ms``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector('#enlcn-explorer[data-drawn="1"]', state="attached", timeout=timeout_ms)
    except PlaywrightTimeout:
        return False
    return True


@pytest.fixture(scope="module")
def visits(tmp_path_factory) -> dict[str, PageVisit]:
    """Every page of a fresh build, visited once in headless chromium."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    html = _build_book(tmp_path_factory.mktemp("browser-book"))
    pages = site_pages(html)
    assert pages, f"no .html pages under {html}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--disable-background-networking"])
        try:
            found = {visit.page: visit for visit in (_visit(browser, html, p) for p in pages)}
        finally:
            browser.close()
    return found


def transfer_table(visits) -> str:
    """One line per page: requests, bytes read, console messages (all / errors and warnings)."""
    lines = [f"{'page':<36} {'requests':>8} {'bytes':>11} {'console':>7} {'errors':>6}"]
    for v in visits:
        lines.append(
            f"{v.page:<36} {len(v.requests):>8} {v.bytes_read:>11,} {len(v.console):>7} {len(v.problems):>6}"
        )
    return "\n".join(lines)


def _report(offenders: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}:\n    " + "\n    ".join(items) for page, items in offenders.items())


# ---------------------------------------------------------------------------------------------- tests


def test_every_page_is_listed_with_what_it_transferred(visits, capsys):
    with capsys.disabled():
        print("\n" + transfer_table(visits.values()))
    assert EXPLORER_PAGE in visits and "intro.html" in visits
    empty = [v.page for v in visits.values() if not v.requests or v.bytes_read <= 0]
    assert not empty, f"pages that loaded nothing: {empty}"


def test_no_page_logs_an_error_or_warning(visits):
    offenders = {v.page: v.problems for v in visits.values() if v.problems}
    assert not offenders, f"console errors/warnings on {len(offenders)} page(s):\n{_report(offenders)}"


def test_pages_request_only_local_files_and_get_them_all(visits):
    remote = {v.page: v.remote for v in visits.values() if v.remote}
    failed = {v.page: v.failed for v in visits.values() if v.failed}
    assert not remote, f"requests that would leave the machine on {len(remote)} page(s):\n{_report(remote)}"
    assert not failed, f"failed requests on {len(failed)} page(s):\n{_report(failed)}"


def test_only_the_explorer_page_loads_the_explorer_data_once(visits):
    loads = {
        v.page: sum(urlparse(u).path.endswith(EXPLORER_DATA) for u in v.requests) for v in visits.values()
    }
    loads = {page: n for page, n in loads.items() if n}
    assert loads == {EXPLORER_PAGE: 1}, f"pages that requested {EXPLORER_DATA} (and how often): {loads}"
    assert visits[EXPLORER_PAGE].drawn, f"{EXPLORER_PAGE}: the explorer did not draw its maps within 30 s"


def test_no_table_cell_shows_nan(visits):
    offenders = {v.page: v.nan_cells for v in visits.values() if v.nan_cells}
    assert not offenders, f"table cells showing NaN on {len(offenders)} page(s):\n{_report(offenders)}"
