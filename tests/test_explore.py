"""The correlation-map explorer's logic (enlcn.explore) and `enlcn maps`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enlcn.correlation import correlation_maps
from enlcn.explore import Knobs, explore, map_numbers, parse_query, top_mass
from enlcn.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("enlcn", 2, "quick").eval()


@pytest.fixture(scope="module")
def lr():
    return np.random.default_rng(0).integers(0, 256, (12, 14, 3), dtype=np.uint8)


def test_default_knobs_give_the_correlation_maps_of_the_module(model, lr):
    maps = correlation_maps(model, lr, (3, 5))
    for module in range(len(model.attention_modules())):
        ex = explore(model, lr, (3, 5), module)
        np.testing.assert_allclose(ex.exact, maps.exact[module], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ex.estimate, maps.estimate[module], rtol=1e-4, atol=1e-7)
        assert ex.exact.sum() == pytest.approx(1.0) and ex.estimate.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(ex.difference, ex.estimate - ex.exact)


def test_amplification_sharpens_the_exact_map(model, lr):
    soft, sharp = (explore(model, lr, (6, 7), 1, Knobs(k=k)) for k in (1.0, 20.0))
    assert sharp.numbers["exact entropy"] < soft.numbers["exact entropy"]
    assert sharp.numbers["exact effective positions"] < soft.numbers["exact effective positions"]


def test_more_random_features_estimate_better_on_average(model, lr):
    def tv(m):
        return np.mean([explore(model, lr, (6, 7), 1, Knobs(m=m, seed=s)).numbers["TV(estimate, exact)"]
                        for s in range(6)])

    assert tv(512) < tv(4)


def test_a_fresh_draw_changes_only_the_estimate(model, lr):
    a, b = explore(model, lr, (2, 2), 0), explore(model, lr, (2, 2), 0, Knobs(seed=7))
    np.testing.assert_array_equal(a.exact, b.exact)
    assert not np.allclose(a.estimate, b.estimate)


def test_numbers_by_hand():
    w = np.zeros((4, 5))
    w[0, 0], w[1, 1] = 0.75, 0.25
    rep = np.zeros((4, 5), bool)
    rep[1, 1] = True
    n = map_numbers(w, np.full((4, 5), 0.05), rep)
    assert n["exact entropy"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert n["exact effective positions"] == pytest.approx(1 / (0.75**2 + 0.25**2))
    assert n["exact top 2% mass"] == pytest.approx(0.75)  # 2 % of 20 positions: the top one
    assert n["TV(estimate, exact)"] == pytest.approx(0.5 * (0.7 + 0.2 + 18 * 0.05))
    assert n["exact mass on repeats"] == 0.25 and n["exact precision on repeats"] == 0.0
    assert n["uniform mass on repeats"] == pytest.approx(1 / 20)
    assert top_mass(np.full(100, 0.01), 0.05) == pytest.approx(0.05)


def test_nla_has_exact_maps_only_and_bad_input_is_named(lr):
    torch.manual_seed(0)
    nla = build_model("edsr+nla", 2, "quick").eval()
    ex = explore(nla, lr, (1, 1), 0)
    assert ex.estimate is None and ex.exact.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no random-feature estimate"):
        explore(nla, lr, (1, 1), 0, Knobs(k=2))
    with pytest.raises(IndexError, match="outside the 12×14"):
        explore(nla, lr, (12, 0), 0)
    with pytest.raises(IndexError, match=r"has 5 attention modules \(0…4\)"):
        explore(nla, lr, (0, 0), 5)
    assert parse_query("3, 4") == (3, 4)
    with pytest.raises(ValueError, match="ROW,COL"):
        parse_query("3")


def test_cli_maps_writes_a_figure_and_prints_the_numbers(tmp_path, capsys, model, lr):
    from enlcn.cli import main
    from enlcn.data.images import save_rgb
    from enlcn.train import TrainConfig, save_atomic

    ckpt = tmp_path / "m.pt"
    save_atomic({"config": TrainConfig(model="enlcn", scale=2, preset="quick").__dict__,
                 "model": model.state_dict()}, ckpt)
    image = save_rgb(tmp_path / "lr.png", lr)
    assert main(["maps", str(image), "--query", "3,5", "--checkpoint", str(ckpt), "--module", "2",
                 "--k", "2", "--out", str(tmp_path / "maps.png")]) == 0
    out = capsys.readouterr().out
    assert "TV(estimate, exact)" in out and (tmp_path / "maps.png").stat().st_size > 10_000
    assert main(["maps", str(image), "--query", "30,5", "--checkpoint", str(ckpt)]) == 2
    assert "outside the 12×14 LR image" in capsys.readouterr().err


def test_live_explorer_data_from_models(tmp_path, monkeypatch, model, lr):
    import json

    from enlcn.study import explorer

    labels = np.full(lr.shape[:2], -1, np.int32)
    labels[1:3, 1:3] = np.arange(4).reshape(2, 2)
    labels[8:10, 9:11] = np.arange(4).reshape(2, 2)
    exact_peer = build_model("edsr+nla", 2, "quick").eval()  # no estimate, no F: not the page's subject
    monkeypatch.setattr(explorer, "explorable_models",
                        lambda *a: {"EDSR + NLA": exact_peer, "ENLA, ×k, contrastive (ENLCN)": model})
    monkeypatch.setattr(explorer, "explore_images", lambda *a: {"im": (lr, labels), "photo": (lr, None)})
    data = explorer.explorer_data("quick", tmp_path, image_names=("im", "photo"))
    n_modules = len(model.attention_modules())
    label = "ENLA, ×k, contrastive (ENLCN)"
    assert set(data) == {"profile", "encoding", "models", "images"}
    assert list(data["models"]) == [label]  # the exact peer is left out
    assert len(data["models"][label]) == n_modules
    assert set(data["models"][label][0]) == {"k", "feature_eps", "orthogonal", "m", "c", "projection"}
    assert set(data["images"]["im"]) == {"shape", "window", "lr", "labels", "embeddings"}
    assert data["images"]["im"]["window"] == [0, 0, 12, 14]  # smaller than the page's window: whole
    assert set(data["images"]["im"]["embeddings"][label]) == {"step", "bases", "codes"}
    assert data["images"]["photo"]["labels"] is None
    stored = explorer.decode_labels(data["images"]["im"]["labels"], lr.shape[:2])
    np.testing.assert_array_equal(stored, labels)
    # the page's maps (live_maps: from the decoded codes) against explore() on the model, within the coding's
    # bound (tests/test_browser.py coding_tolerances: every weight within a factor e^{±τ})
    from enlcn.study.explorer import coding_tolerances

    for module in range(n_modules):
        projection = explorer.module_projection(data, label, module)
        np.testing.assert_array_equal(projection, model.attention_modules()[module].projection.numpy())
        for k in (None, 3.0):
            ex = explore(model, lr, (3, 5), module, Knobs(k=k))
            exact, estimate, numbers = explorer.live_maps(data, "photo", label, module, (3, 5), k)
            mod = data["models"][label][module]
            tau_x, tau_e = coding_tolerances(mod["k"] if k is None else k, projection)
            np.testing.assert_allclose(exact, ex.exact, rtol=np.expm1(tau_x))
            np.testing.assert_allclose(estimate, ex.estimate, rtol=np.expm1(tau_e))
            tv = "TV(estimate, exact)"
            assert abs(numbers[tv] - ex.numbers[tv]) <= (np.expm1(tau_x) + np.expm1(tau_e)) / 2
    text = explorer.explorer_js(data)
    assert text.startswith("window.ENLCN_EXPLORER = ") and text.endswith(";\n")
    assert json.loads(text[24:-2])["models"] == data["models"]
    assert explorer.read_explorer_js(text) == data


def _clustered_directions(n: int, c: int, seed: int) -> np.ndarray:
    """Rows like trained embeddings: around one direction, varying smoothly along a raster of 20 columns."""
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.normal(scale=0.02, size=(n, c)), axis=0)
    return np.ones(c) + smooth + rng.normal(scale=0.01, size=(n, c))


def test_directions_round_trip_within_float16s_roundoff():
    """Every decoded unit direction (every row) is within u = 2⁻¹¹ of the true one, float16's guarantee, so a
    logit k·v̂ᵢ·v̂ⱼ within logit_error_bound(k) = k(2u + u²); the packing is lossless on the integer codes.
    The previous step, 2⁻¹⁰ (each coordinate within u, a row within √c·u), and the old int8 directions
    (round(127·v/max|v|), renormalised) miss it."""
    from enlcn.study import explorer as X

    h, w, c = 20, 25, 12
    arrays = [_clustered_directions(h * w, c, seed) * 3.0 for seed in range(4)]  # any length: only v counts
    packed = X.pack_embeddings(arrays, (h, w))
    assert set(packed) == {"step", "bases", "codes"} and set(packed["codes"]) <= set(X.ALPHABET)
    assert packed["step"] == X.direction_step(c) == 9 * 2.0**-15 and np.sqrt(c) * packed["step"] / 2 < X.U
    codes = X.unpack_codes(packed, (h, w), c, 4)
    bases = X.decode_floats(packed["bases"], (4, c, c))
    decoded = X.unpack_embeddings(packed, (h, w), c, 4)
    units = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in arrays]
    for a, v, code, basis, got in zip(arrays, units, codes, bases, decoded, strict=True):
        step = packed["step"]
        np.testing.assert_array_equal(code, X.quantise_directions(a, basis.astype(np.float32), step))
        np.testing.assert_allclose(basis.T @ basis, np.eye(c), atol=1e-6)
        assert np.abs((got - v) @ basis).max() <= step / 2 * (1 + 1e-5)  # half a step a coordinate
        errors = X.direction_errors(a, got)
        np.testing.assert_allclose(errors, np.linalg.norm(got - v, axis=1))
        assert errors.max() <= X.U  # every row: float16's guarantee
        old_codes = X.quantise_directions(a, basis, 2.0**-10)
        old = X.direction_errors(a, X.unit_directions(old_codes, basis, 2.0**-10))
        assert old.max() > X.U and (old > X.U).mean() > 0.1  # the old step: many rows beyond u
    logits = np.abs(decoded[0] @ decoded[1].T - units[0] @ units[1].T).max()
    assert 6.0 * logits <= X.logit_error_bound(6.0) == 6.0 * (2 * X.U + X.U**2)
    # the int8 coding this replaced: coordinates 1/254 of the row's largest apart, 8 times u
    int8 = np.round(units[0] / np.abs(units[0]).max(1, keepdims=True) * 127)
    int8 /= np.linalg.norm(int8, axis=1, keepdims=True)
    assert np.abs(int8 - units[0]).max() > 2 * X.U


def test_the_page_shows_a_photograph_in_its_window_of_most_structure():
    from enlcn.study.explorer import WINDOW, structure_window

    rng = np.random.default_rng(1)
    lr = np.full((75, 112, 3), 128, np.uint8)
    lr[5:35, 60:100] = rng.integers(0, 256, (30, 40, 3))  # the only texture
    top, left, h, w = structure_window(lr)
    assert (h, w) == WINDOW == (64, 64) and top <= 5 and top + h >= 35 and left <= 60 and left + w >= 100
    assert (top, left) == (0, 37)  # the first of the windows holding it and its edges (raster order)
    assert structure_window(lr[:40, :50]) == (0, 0, 40, 50)  # smaller than the window: whole
    grey = rng.integers(0, 256, (70, 66)).astype(float)  # against a brute-force search
    score = {(y, x): np.abs(np.diff(grey[y:y + 64, x:x + 64], axis=0)).sum()
             + np.abs(np.diff(grey[y:y + 64, x:x + 64], axis=1)).sum() for y in range(7) for x in range(3)}
    assert structure_window(grey)[:2] == max(score, key=lambda yx: (score[yx], -yx[0], -yx[1]))


def test_packing_pieces_invert_each_other():
    from enlcn.study import explorer as X

    rng = np.random.default_rng(0)
    planes = rng.integers(-3000, 3000, (3, 7, 9))
    residuals = X.med_residuals(planes)
    np.testing.assert_array_equal(X.med_undo(residuals), planes)
    r = rng.laplace(scale=40, size=(5, 37)).astype(np.int64)
    r[1] = 0  # a plane of zeros: k = 0, one bit a value
    bits = X.rice_pack(r)
    np.testing.assert_array_equal(X.rice_unpack(bits, 5, 37), r)
    text = X.bits_to_text(bits)
    assert len(text) == 2 * -(-bits.size // X.GROUP)
    np.testing.assert_array_equal(X.text_to_bits(text)[: bits.size], bits)


def test_the_committed_live_explorer_data_is_the_cpu_models():
    """The committed data: the cpu profile's models, both images (the photograph in its 64×64 window), 6 MB at
    most, and every shipped direction of the ENLCN model within u = 2⁻¹¹ of the float32 model's own
    (recomputed here as explorer_data does: float16's guarantee, which the previous step 2⁻¹⁰ missed)."""
    from pathlib import Path

    from enlcn.correlation import embeddings
    from enlcn.study import explorer as X
    from enlcn.study.files import explorable_models

    book = Path(__file__).resolve().parents[1] / "book"
    text = (book / "_page_static" / "explorer" / "explorer-data.js").read_text()
    data = X.read_explorer_js(text)
    label = list(data["models"])[-1]
    assert data["profile"] == "cpu" and label.endswith("(ENLCN)")
    assert len(text.encode()) <= 6_000_000  # the page's budget: 6 MB in all
    assert set(data["images"]) == {"selfsim000", "chelsea"} and data["images"]["selfsim000"]["labels"]
    assert data["images"]["chelsea"]["window"] == [0, 23, 64, 64]  # of its 75×112 LR
    assert data["images"]["selfsim000"]["window"] == [0, 0, 64, 64]  # whole
    model = explorable_models("cpu")[label]
    for name, (lr, labels, window) in X.explorer_images("cpu").items():
        entry = data["images"][name]
        assert entry["shape"] == list(lr.shape[:2]) and entry["window"] == list(window)
        if labels is not None:
            np.testing.assert_array_equal(X.decode_labels(entry["labels"], lr.shape[:2]), labels)
        truth = [a.numpy() for _, q, k in embeddings(model, lr) for a in (q, k)]
        shipped = X.unpack_embeddings(entry["embeddings"][label], lr.shape[:2], truth[0].shape[1], len(truth))
        worst = max(X.direction_errors(t, s).max() for t, s in zip(truth, shipped, strict=True))
        assert worst <= X.U, f"{name}: a direction {worst / X.U:.4f} u from the model's"
    assert '<div id="enlcn-explorer">' in (book / "explorer.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)  # chromium may take up to 600 s on a loaded machine
def test_live_explorer_page_draws_in_headless_chromium():
    """The built page draws its maps with no network (needs `make book-html` and Debian's chromium)."""
    import shutil
    from pathlib import Path

    from procs import run

    page = Path(__file__).resolve().parents[1] / "book" / "_build" / "html" / "explorer.html"
    chromium = shutil.which("chromium")
    if chromium is None or not page.exists():
        pytest.skip("needs chromium and a built book")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--virtual-time-budget=8000", "--dump-dom"]
    dom = run([chromium, *flags, page.as_uri()], timeout=600).stdout
    assert 'data-drawn="1"' in dom and "TV(estimate, exact)" in dom
