"""The pilot's diagnosis (enlcn.study.diagnose): repeat mass and logit spread of exact attention maps."""

import numpy as np
import pytest
import torch
from torch import nn

from enlcn.correlation import motif_queries
from enlcn.data import bicubic_downscale
from enlcn.profiles import get_profile
from enlcn.study.diagnose import repeat_mass


class LabelAttention(nn.Module):
    """An attention module whose embeddings are ``alpha``·one-hot(label): logits ``alpha²`` between copies of
    the same motif point, 0 elsewhere. Its forward is the identity (branch share 0)."""

    def __init__(self, labels: np.ndarray, alpha: float) -> None:
        super().__init__()
        onehot = np.zeros((labels.size, labels.max() + 2), dtype=np.float32)
        onehot[np.arange(labels.size), labels.ravel() + 1] = 1.0
        onehot[:, 0] = 0.0  # background: no embedding
        self.register_buffer("e", torch.from_numpy(onehot)[None] * alpha)

    def embed(self, x):
        return self.e, self.e, None

    def forward(self, x):
        return x


class Toy(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.att = module

    def attention_modules(self):
        return [self.att]

    def forward(self, x):
        return self.att(x)


@pytest.fixture(scope="module")
def image():
    item = get_profile("quick").study_data.selfsim_set("test", 2).item(0)
    return bicubic_downscale(item.image, 2), item.labels


def test_attention_on_the_repeats_puts_all_its_mass_there(image):
    lr, labels = image
    table = repeat_mass(Toy(LabelAttention(labels, alpha=6.0)), lr, labels, queries=8)
    assert len(table) == 8
    # logits 36 on the repeats, 0 on the other N − 1 − r positions: mass = r e³⁶ / (r e³⁶ + N − 1 − r)
    n = labels.size
    r = np.array([int((labels.ravel() == labels.ravel()[q]).sum()) - 1 for q in table["query"]])
    expected = r * np.exp(36.0) / (r * np.exp(36.0) + n - 1 - r)
    np.testing.assert_allclose(table["mass"], expected, rtol=1e-9)
    assert (table["top_precision"] == 1.0).all()
    np.testing.assert_allclose(table["logit_spread"], 36.0, rtol=1e-6)
    np.testing.assert_allclose(table["uniform_mass"], r / n)


def test_uniform_attention_puts_the_uniform_share_there(image):
    lr, labels = image
    table = repeat_mass(Toy(LabelAttention(labels, alpha=0.0)), lr, labels, queries=8)
    # the query's own weight removed and the rest renormalised: each other position weighs 1/(N − 1)
    r = table["uniform_mass"] * labels.size
    np.testing.assert_allclose(table["mass"], r / (labels.size - 1), rtol=1e-12)
    np.testing.assert_allclose(table["effective_positions"], labels.size - 1, rtol=1e-9)
    assert (table["logit_spread"] == 0).all()


def test_motif_queries_lie_on_repeated_motif_points(image):
    _, labels = image
    flat = labels.ravel()
    picked = motif_queries(labels, 20, seed=1)
    assert len(set(picked)) == len(picked) == 20
    for i in picked:
        assert flat[i] >= 0 and (flat == flat[i]).sum() >= 2
    np.testing.assert_array_equal(picked, motif_queries(labels, 20, seed=1))


def test_the_initial_model_has_the_runs_own_attention_options():
    from enlcn.study.diagnose import untrained_like
    from enlcn.study.registry import ENLA_CL, ENLCA

    k1 = untrained_like("quick", ENLA_CL.name)  # ENLCA modules with k = 1
    k6 = untrained_like("quick", ENLCA.name)
    assert {m.options.k for m in k1.attention_modules()} == {1.0}
    assert {m.options.k for m in k6.attention_modules()} == {6.0}


def test_runs_still_training_are_read_from_their_latest_checkpoint(tmp_path):
    import dataclasses

    from enlcn.models import build_model
    from enlcn.study.diagnose import in_progress, pilot_attention
    from enlcn.study.files import run_dir
    from enlcn.study.registry import get_run

    run = get_run("nla_s1")
    cfg = run.config("quick")
    model = build_model(cfg.model, cfg.scale, cfg.preset, attention=cfg.attention)
    path = run_dir("quick", run, tmp_path) / "checkpoints" / "latest.pt"
    path.parent.mkdir(parents=True)
    torch.save({"config": dataclasses.asdict(cfg), "model": model.state_dict(), "step": 7}, path)
    (key, loaded), = in_progress("quick", tmp_path).items()
    assert key == ("nla_s1", "step 7") and len(loaded.attention_modules()) == len(model.attention_modules())
    table = pilot_attention("quick", images=1, queries=4, root=tmp_path)
    assert set(table.weights) == {"step 7"} and len(table) == len(model.attention_modules())
    assert (table.repeat_gain > 0).all() and (table.logit_spread >= 0).all()


def test_the_page_says_which_weights_were_measured_from_the_table_itself():
    import pandas as pd

    from enlcn.study.diagnose import measured_weights

    rows = [("pilot-x2", "nla", w) for w in ("trained", "initial")] + [("pilot-x2", "nla_s1", "trained"),
                                                                      ("pilot-x2", "nla_s1", "initial")]
    done = pd.DataFrame(rows * 5, columns=["candidate", "run", "weights"])  # five modules each
    text = measured_weights(done)
    assert text.startswith("Measured: 2 finished EDSR + NLA runs (`pilot-x2`: 2), each with its final")
    assert text.endswith("no run was still training.") and "step" not in text
    checkpoint = pd.DataFrame([("pilot-x2-long", "nla_s2", "step 12000")] * 5, columns=done.columns)
    text = measured_weights(pd.concat([done, checkpoint]))
    assert "2 finished" in text
    assert text.endswith(
        "1 run still training, at its latest checkpoint: `pilot-x2-long` `nla_s2` at step 12000.")
    assert measured_weights(pd.DataFrame()).startswith("No EDSR + NLA run")
