"""The pilot's decision rule (enlcn.study.pilot), on made-up seed means where the answer is known."""

from __future__ import annotations

import pandas as pd

from enlcn.study import pilot


def _means(edsr: dict[str, list[float]], nla: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for arm, table in (("base", edsr), ("nla", nla)):
        for test_set, values in table.items():
            rows += [
                {"arm": arm, "seed": s, "run": f"{arm}_s{s}", "test_set": test_set, "psnr": v}
                for s, v in enumerate(values)
            ]
    return pd.DataFrame(rows)


BICUBIC = pd.Series({"photos": 30.0, "selfsim": 25.0, "selfsim_motifs": 20.0})
EDSR = {"photos": [31.2, 31.1, 31.3], "selfsim": [26.1, 26.0, 26.2], "selfsim_motifs": [21.0, 20.9, 21.1]}


def test_a_clear_positive_control_meets_the_rule():
    nla = {k: [v + 0.30 + 0.01 * i for i, v in enumerate(vals)] for k, vals in EDSR.items()}
    row = pilot.decision_row("pilot-x2", _means(EDSR, nla), BICUBIC)
    assert row["(a) met"] and row["(b) met"] and row["meets the rule"]
    assert abs(row["NLA − EDSR, selfsim"] - 0.31) < 1e-9
    low, high = row["95 % CI, selfsim"]
    assert type(low) is float and low < 0.31 < high  # written as "(low, high)" in decision.csv


def test_rule_a_needs_one_db_on_both_sets():
    weak = {**EDSR, "selfsim": [25.9, 25.8, 26.0]}  # +0.9 dB: not enough
    nla = {k: [v + 0.3 for v in vals] for k, vals in weak.items()}
    row = pilot.decision_row("pilot-x2", _means(weak, nla), BICUBIC)
    assert not row["(a) met"] and not row["meets the rule"]


def test_rule_b_needs_four_standard_errors_and_an_interval_above_zero():
    # Δ = 0.1 with per-seed differences 0.0, 0.1, 0.2: SE 0.058, t = 1.7 → not met
    nla = {k: [v + 0.1 * i for i, v in enumerate(vals)] for k, vals in EDSR.items()}
    row = pilot.decision_row("pilot-x2", _means(EDSR, nla), BICUBIC)
    assert row["(a) met"] and not row["(b) met"]
    # met on the motif pixels alone is enough (the Protocol's "or")
    nla["selfsim_motifs"] = [v + 0.5 + 0.01 * i for i, v in enumerate(EDSR["selfsim_motifs"])]
    assert pilot.decision_row("pilot-x2", _means(EDSR, nla), BICUBIC)["(b) met"]


def test_two_seeds_are_not_enough_and_the_cheapest_candidate_wins():
    nla = {k: [v + 0.3 + 0.01 * i for i, v in enumerate(vals)] for k, vals in EDSR.items()}
    two = _means({k: v[:2] for k, v in EDSR.items()}, {k: v[:2] for k, v in nla.items()})
    row = pilot.decision_row("pilot-x2", two, BICUBIC)
    assert row["(b) met"] and not row["complete (3 seeds each)"] and not row["meets the rule"]
    table = pd.DataFrame(
        [
            {"candidate": "pilot-x4", "meets the rule": True},
            {"candidate": "pilot-x2", "meets the rule": True},
            {"candidate": "pilot-x2-long", "meets the rule": True},
        ]
    )
    assert pilot.chosen_setting(table) == "pilot-x2"
    assert pilot.chosen_setting(table.assign(**{"meets the rule": [True, False, True]})) == "pilot-x4"
    assert pilot.chosen_setting(table.assign(**{"meets the rule": False})) is None


def test_extension_follows_the_protocol():
    def row(c, a, t, gain, complete=True, meets=False):
        return {
            "candidate": c,
            "(a) met": a,
            "t, selfsim_motifs": t,
            "EDSR − bicubic, selfsim": gain,
            "complete (3 seeds each)": complete,
            "meets the rule": meets,
        }

    none_a = pd.DataFrame([row("pilot-x2", False, 9.0, 0.56), row("pilot-x4", False, 1.0, 0.80)])
    assert pilot.extension_choice(none_a) == "pilot-x4-long"  # larger EDSR − bicubic gain
    one_a = pd.DataFrame([row("pilot-x2", True, 2.0, 1.2), row("pilot-x4", False, 9.0, 0.8)])
    assert pilot.extension_choice(one_a) == "pilot-x2-long"  # only x2 meets (a)
    both_a = pd.DataFrame([row("pilot-x2", True, 2.0, 1.2), row("pilot-x4", True, 3.0, 1.1)])
    assert pilot.extension_choice(both_a) == "pilot-x4-long"  # larger t on the motif pixels
    incomplete = pd.DataFrame([row("pilot-x2", False, 9.0, 0.56), row("pilot-x4", False, 1.0, 0.8, False)])
    assert pilot.extension_choice(incomplete) is None
    met = pd.DataFrame([row("pilot-x2", True, 9.0, 1.2, meets=True), row("pilot-x4", False, 1.0, 0.8)])
    assert pilot.extension_choice(met) is None


def test_only_the_pilot_arms_train_in_a_pilot_setting_until_it_is_chosen(monkeypatch):
    import pytest

    from enlcn.study.registry import get_experiment, get_run

    grid = list(get_experiment("grid"))
    pilot.check_may_train("pilot-x2", list(get_experiment("pilot")))  # the pilot's arms: always
    pilot.check_may_train("quick", grid)  # not a pilot profile: not restricted
    monkeypatch.setattr(pilot, "decision_table", lambda root=None: pd.DataFrame())
    with pytest.raises(ValueError, match="chosen no setting yet.*refused: enla, ") as err:
        pilot.check_may_train("pilot-x2-long", grid)
    refused = str(err.value).split("refused: ")[1].split(", ")
    assert "base" not in refused and "nla_s1" not in refused and len(refused) == 42 - 6
    chosen = pd.DataFrame([{"candidate": "pilot-x2-long", "meets the rule": True}])
    monkeypatch.setattr(pilot, "decision_table", lambda root=None: chosen)
    pilot.check_may_train("pilot-x2-long", grid)
    with pytest.raises(ValueError, match="has chosen pilot-x2-long"):
        pilot.check_may_train("pilot-x4", [get_run("enlca")])


def test_the_grid_holds_every_arm_of_the_protocol_with_its_seeds():
    from collections import Counter

    from enlcn.study.registry import get_experiment

    grid = get_experiment("grid")
    assert len({r.name for r in grid}) == len(grid) == 42
    seeds = Counter((r.model, tuple(sorted(r.attention)), r.train) for r in grid)
    three = [
        ("edsr", ()),
        ("edsr+enla", ()),
        ("edsr+enlca", (("contrastive", False),)),
        ("edsr+enlca", (("k", 1.0),)),
        ("enlcn", ()),
        ("edsr+nla", ()),
        ("edsr+crisscross", ()),
        ("edsr+nlsa", ()),
    ]
    for model, attention in three:
        assert seeds[(model, attention, ())] == 3, model
    assert sum(n for key, n in seeds.items() if key[0] == "enlcn" and key[1]) == 18  # 9 arms × 2 seeds
    paper = [r for r in grid if r.name.startswith("enlca_paper")]
    assert [r.config("quick").variant for r in paper] == ["paper", "paper"]
    assert {r.seed for r in grid if r.name.startswith("enlca_k4")} == {0, 1}


def test_the_outcome_follows_the_protocol_to_its_end():
    def row(candidate, a, meets, complete=True, gain=0.5):
        return {
            "candidate": candidate,
            "(a) met": a,
            "meets the rule": meets,
            "complete (3 seeds each)": complete,
            "EDSR − bicubic, selfsim": gain,
            "t, selfsim_motifs": 0.0,
        }

    x2, x4 = row("pilot-x2", False, False, gain=0.57), row("pilot-x4", False, False, gain=0.14)
    assert pilot.outcome(pd.DataFrame([x2, row("pilot-x4", False, False, complete=False)])) == (
        "pending",
        None,
    )
    assert pilot.outcome(pd.DataFrame([x2, x4])) == ("extension", "pilot-x2-long")
    running = row("pilot-x2-long", False, False, complete=False)
    assert pilot.outcome(pd.DataFrame([x2, x4, running])) == ("extension", "pilot-x2-long")
    done = row("pilot-x2-long", False, False)
    assert pilot.outcome(pd.DataFrame([x2, x4, done])) == ("failed", "pilot-x2-long")
    met = row("pilot-x2-long", True, True)
    assert pilot.outcome(pd.DataFrame([x2, x4, met])) == ("chosen", "pilot-x2-long")


def test_train_run_itself_refuses_the_grid_in_an_unchosen_pilot_setting(tmp_path):
    import pytest

    from enlcn.study import train_run
    from enlcn.study.registry import get_run

    with pytest.raises(ValueError, match="refused: enlca$"):
        train_run("pilot-x4", get_run("enlca"), root=tmp_path, progress=False)
    assert not (tmp_path / "runs").exists()  # nothing started


def _finished(root, profile, run, wall_min):
    """A made-up finished pilot run of ``profile`` that took ``wall_min`` minutes wall in one session."""
    import json
    from dataclasses import asdict

    from enlcn.study.files import result_dir

    res = result_dir(profile, run, root)
    res.mkdir(parents=True)
    (res / "config.json").write_text(json.dumps(asdict(run.config(profile)), default=str))
    (res / "scores.csv").write_text("run,label,test_set,image,psnr,ssim\n")
    session = {"wall_time_s": wall_min * 60, "cpu_time_s": wall_min * 30}
    summary = {"steps": 1, "wall_time_s": wall_min * 60, "threads": 1, "sessions": [session]}
    (res / "summary.json").write_text(json.dumps(summary))


def test_each_setting_is_checked_against_its_own_budget(tmp_path):
    """The Protocol: one run ≤ 60 min at a candidate; the extension trains 4× the steps with 4× the budget."""
    import pytest

    from enlcn.profiles import get_profile
    from enlcn.study.registry import get_experiment

    assert {p: pilot.budget_minutes(p) for p in pilot.CANDIDATES + pilot.EXTENSIONS} == {
        "pilot-x2": 60.0, "pilot-x4": 60.0, "pilot-x2-long": 240.0, "pilot-x4-long": 240.0
    }
    for candidate, extension in zip(pilot.CANDIDATES, pilot.EXTENSIONS, strict=True):
        steps = {p: get_profile(p).train_dict()["epochs"] for p in (candidate, extension)}
        assert steps[extension] == pilot.EXTENSION_FACTOR * steps[candidate]  # 4× the steps, 4× the budget
    with pytest.raises(ValueError, match="'cpu' is not a pilot setting"):
        pilot.budget_minutes("cpu")
    words = pilot.budget_text()
    assert "60 minutes wall per run at a candidate, 4× that (240 minutes) at the extension" in words

    base, nla = get_experiment("pilot")[0], get_experiment("pilot")[3]
    for profile in ("pilot-x4", "pilot-x2-long"):
        _finished(tmp_path, profile, base, 45.0)
        _finished(tmp_path, profile, nla, 61.6 if profile == "pilot-x4" else 190.1)
    short = pilot.run_costs("pilot-x4", tmp_path).set_index("run")
    assert list(short["budget min"]) == [60.0, 60.0] and list(short["within budget"]) == [True, False]
    long = pilot.run_costs("pilot-x2-long", tmp_path).set_index("run")
    assert list(long["budget min"]) == [240.0, 240.0] and long["within budget"].all()  # 190 min ≤ 4 × 60
