"""The built book in a real browser (slow): Debian's chromium, driven by playwright, opens every page from
``file://`` with the network cut off. Each page must load only local files, all of them, log no error or
warning, and only the explorer page may load the explorer's data (≤ 6 MB). ``make test-browser`` runs it."""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from procs import run

from enlcn.study.explorer import coding_tolerances

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
def html(tmp_path_factory) -> Path:
    """A fresh build of the book (its html folder), shared by this module's tests; $ENLCN_BROWSER_HTML
    names an already-built html folder instead (to iterate on a page)."""
    _chromium()
    if os.environ.get("ENLCN_BROWSER_HTML"):
        return Path(os.environ["ENLCN_BROWSER_HTML"])
    return _build_book(tmp_path_factory.mktemp("browser-book"))


@pytest.fixture(scope="module")
def visits(html) -> dict[str, PageVisit]:
    """Every page of a fresh build, visited once in headless chromium."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

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


# --------------------------------------------------------------------------- the live explorer, clicked

#: explore()'s float32 weights below this are compared absolutely (float32's normal range ends at 1e-38)
WEIGHT_FLOOR = 1e-30
#: the page's arithmetic vs the same computation in numpy/torch float64 on the same decoded Q/K
SAME_INPUT_RTOL = 1e-9
UPDATE_MS = 100
OLD_GRID = {8, 24, 40, 56}  # rows/columns of the old offline explorer's 4×4 query grid on a 64×64 image


@pytest.fixture(scope="module")
def explorer(html):
    """The built explorer page in headless chromium (network cut off) and its console messages."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--disable-background-networking"])
        context = browser.new_context(viewport={"width": 1000, "height": 1500})
        context.route(re.compile(r"^(?!(file|data|blob):)"), lambda route: route.abort())
        page = context.new_page()
        console: list[tuple[str, str]] = []
        page.on("console", lambda message: console.append((message.type, message.text)))
        page.on("pageerror", lambda error: console.append(("pageerror", str(error))))
        page.goto((html / EXPLORER_PAGE).as_uri(), wait_until="networkidle")
        assert _explorer_drew(page), "the explorer did not draw within 30 s"
        yield page, console
        browser.close()


@pytest.fixture(scope="module")
def payload():
    from enlcn.study.explorer import read_explorer_js

    return read_explorer_js((BOOK / "_page_static" / "explorer" / "explorer-data.js").read_text())


@pytest.fixture(scope="module")
def trained():
    from enlcn.study.explorer import explorer_images
    from enlcn.study.files import explorable_models

    # the page's images: the photograph in its 64×64 window, on which explore() runs the models too
    return explorable_models("cpu"), {name: im[:2] for name, im in explorer_images("cpu").items()}


def _last(page) -> dict:
    return page.evaluate("window.ENLCN_LAST")


def _after(page, action) -> dict:
    """``action()`` (a click, a menu choice…), then the page's next ENLCN_LAST."""
    page.evaluate("window.ENLCN_LAST.tag = 'old'")
    action()
    page.wait_for_function("window.ENLCN_LAST.tag !== 'old'", timeout=10_000)
    return _last(page)


def _click_query(page, row: int, col: int) -> dict:
    """Click LR position (row, col) on the image panel (its map's margins and zoom: from the page)."""
    g = page.evaluate("window.ENLCN_LAST.geometry")
    box = page.locator("#enlcn-explorer canvas").first.bounding_box()
    x, y = box["x"] + g["left"] + (col + 0.5) * g["zoom"], box["y"] + g["top"] + (row + 0.5) * g["zoom"]
    last = _after(page, lambda: page.mouse.click(x, y))
    assert last["query"] == [row, col]
    return last


def _set_slider(page, name: str, value: float) -> dict:
    return _after(page, lambda: page.evaluate(
        "([n, v]) => { const s = document.querySelector(`#enlcn-explorer input[name=${n}]`); "
        "s.value = v; s.dispatchEvent(new Event('input')); }", [name, str(value)]))


def _choose(page, name: str, value: str) -> dict:
    return _after(page, lambda: page.select_option(f"#enlcn-explorer select[name={name}]", value))


def _close(a, b, rtol: float, floor: float = 0.0) -> float:
    """The largest relative difference of two arrays where ``|b| ≥ floor`` (asserting it is within ``rtol``;
    below the floor the difference must be within ``rtol·floor``)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    big = np.abs(b) >= floor
    worst = float(np.max(np.abs(a - b)[big] / np.abs(b[big])))
    assert worst <= rtol, f"max relative difference {worst:.3g} > {rtol:.3g}"
    assert np.all(np.abs(a - b)[~big] <= rtol * floor)
    return worst


def _number_tolerance(key: str, value: float, tau: dict[str, float]) -> float:
    """How far a number may move when every weight of the exact map / estimate moves by a factor within
    ``e^{±τ}`` (weights renormalised): a mass (top 2 %, repeats) by that factor (the top set's mass is a
    largest sum), ``1/Σw²`` by ``e^{±2τ}``, the entropy by ``τ + (e^τ − 1)·H`` (``|Σ(w'−w) log w| ≤
    (e^τ−1)H``, ``|Σw'·t| ≤ τ``), TV by ``((e^τₓ − 1) + (e^τₑ − 1))/2``; a precision counts positions, one of
    which may change rank (0.1)."""
    if key in ("TV(estimate, exact)",):
        return (np.expm1(tau["exact"]) + np.expm1(tau["estimate"])) / 2
    if key == "uniform mass on repeats":
        return 1e-12
    t = tau[key.split(" ")[0]]
    if "precision" in key:
        return 0.1
    if "entropy" in key:
        return t + np.expm1(t) * abs(value)
    if "effective" in key:
        return np.expm1(2 * t) * abs(value)
    return np.expm1(t) * abs(value)


def _numbers_close(js: dict, py: dict, tau: dict[str, float] | None) -> float:
    """Assert every number within its tolerance (``tau`` None: the same inputs, 1e-9 relative); returns
    the largest relative difference of the numbers that are not precisions."""
    assert js.keys() == py.keys()
    worst = 0.0
    for key, v in py.items():
        tol = SAME_INPUT_RTOL * abs(v) + 1e-12 if tau is None else _number_tolerance(key, v, tau) + 1e-12
        assert abs(js[key] - v) <= tol, f"{key}: page {js[key]}, python {v}, tolerance {tol:.3g}"
        if "precision" not in key:
            worst = max(worst, abs(js[key] - v) / max(abs(v), 1e-12))
    return worst


def _check_against_python(last: dict, payload, trained, k: float | None = None) -> str:
    """The page's maps and numbers against (a) the same float64 computation on the same decoded Q/K and
    (b) enlcn.explore.explore on the model itself, within the coding's bound (:func:`coding_tolerances`)."""
    from enlcn.data.synthetic import true_repeats
    from enlcn.explore import Knobs, explore
    from enlcn.study.explorer import live_maps, module_projection

    models, images = trained
    image, model, module, query = last["image"], last["model"], last["module"], tuple(last["query"])
    exact, estimate, numbers = live_maps(payload, image, model, module, query, k)
    same = [_close(last[n], ours, SAME_INPUT_RTOL) for n, ours in (("exact", exact), ("estimate", estimate))]
    _numbers_close(last["numbers"], numbers, None)
    lr, labels = images[image]
    repeats = None if labels is None else true_repeats(labels, query)
    ex = explore(models[model], lr, query, module, Knobs(k=k), repeats)
    mod = payload["models"][model][module]
    projection = module_projection(payload, model, module)
    tau_x, tau_e = coding_tolerances(mod["k"] if k is None else k, projection)
    model_diff = [_close(last["exact"], ex.exact, np.expm1(tau_x), WEIGHT_FLOOR),
                  _close(last["estimate"], ex.estimate, np.expm1(tau_e), WEIGHT_FLOOR)]
    worst_number = _numbers_close(last["numbers"], ex.numbers, {"exact": tau_x, "estimate": tau_e})
    return (f"{image} {query} module {module} of {model}, k={k}: {last['ms']:.1f} ms; max relative "
            f"difference exact/estimate vs same-input float64 {same[0]:.1e}/{same[1]:.1e}, vs explore() "
            f"{model_diff[0]:.4f}/{model_diff[1]:.4f} (bounds {np.expm1(tau_x):.4f}/{np.expm1(tau_e):.4f}), "
            f"numbers vs explore() {worst_number:.4f}")


def test_the_explorer_computes_any_clicked_query_as_python_does(explorer, payload, trained, capsys):
    page, console = explorer
    _, images = trained
    labels = images["selfsim000"][1]
    counts = np.bincount(labels[labels >= 0])
    motif = [(r, c) for r, c in np.argwhere(labels >= 0) if counts[labels[r, c]] >= 2
             and r not in OLD_GRID and c not in OLD_GRID]
    times = []
    for row, col in [tuple(int(v) for v in motif[len(motif) // 3]), (13, 51)]:  # a motif pixel, background
        last = _click_query(page, row, col)
        with capsys.disabled():
            print("\n" + _check_against_python(last, payload, trained), end="")
        times.append(last["ms"])
    assert "exact mass on repeats" in _click_query(page, *map(int, motif[len(motif) // 3]))["numbers"]
    _choose(page, "image", "chelsea")
    for module in ("0", "4"):
        _choose(page, "module", module)
        last = _click_query(page, 37, 45)
        with capsys.disabled():
            print("\n" + _check_against_python(last, payload, trained), end="")
        times.append(last["ms"])
    assert max(times) < UPDATE_MS, f"updates took {times} ms"
    assert not [m for m in console if m[0] in PROBLEM_TYPES + ("pageerror",)], console


def test_the_k_slider_and_redraw_change_the_estimate_as_the_knobs_do(explorer, payload, trained, capsys):
    page, console = explorer
    _choose(page, "image", "selfsim000")
    before = _click_query(page, 30, 19)
    last = _set_slider(page, "k", 2.5)
    assert last["knobs"]["k"] == 2.5 and last["estimate"] != before["estimate"]
    with capsys.disabled():
        print("\n" + _check_against_python(last, payload, trained, k=2.5))
    redrawn = _after(page, lambda: page.click("#enlcn-explorer button[name=redraw]"))
    assert redrawn["knobs"]["seed"] == 1 and redrawn["exact"] == last["exact"]
    tv = np.abs(np.array(redrawn["estimate"]) - np.array(last["estimate"])).sum() / 2
    assert tv > 1e-3, "a fresh draw of F left the estimate unchanged"
    again = _after(page, lambda: page.click("#enlcn-explorer button[name=redraw]"))
    assert again["estimate"] != redrawn["estimate"] and again["exact"] == last["exact"]
    wider = _set_slider(page, "m", 5)  # M_CHOICES[5] = 128 features: a fresh draw
    assert wider["effective"]["m"] == 128 and wider["exact"] == last["exact"]
    own = _after(page, lambda: page.click("#enlcn-explorer button[name=own]"))
    assert own["knobs"] == {"k": None, "m": None, "seed": None, "orthogonal": None}
    times = [round(m["ms"], 1) for m in (last, redrawn, again, wider, own)]
    with capsys.disabled():
        print(f"k slider, redraw ×2, m = 128, own: {times} ms")
    assert max(times) < UPDATE_MS
    assert not [m for m in console if m[0] in PROBLEM_TYPES + ("pageerror",)], console


def test_choosing_a_model_or_module_resets_no_other_menu(explorer):
    page, _ = explorer
    values = "() => [...document.querySelectorAll('#enlcn-explorer select')].map((s) => s.value)"
    _choose(page, "image", "chelsea")
    _choose(page, "module", "3")
    query = _click_query(page, 20, 33)["query"]
    _set_slider(page, "k", 4)
    for model in page.evaluate("Object.keys(window.ENLCN_EXPLORER.models)"):
        last = _choose(page, "model", model)
        assert page.evaluate(values) == ["chelsea", model, "3"]
        assert (last["model"], last["module"], last["query"], last["knobs"]["k"]) == (model, 3, query, 4)
    last = _choose(page, "module", "1")
    assert page.evaluate(values)[:2] == ["chelsea", model] and last["knobs"]["k"] == 4
