import copy

import pytest
import yaml

from experiments.settings import PLAN_FILE, Setting, load_plan
from stance.errors import StanceError

SMALL = {
    "time_budget_minutes": 15,
    "seeds": [1, 2],
    "train_files": {"r1": ["a.jsonl"], "r1-2": ["a.jsonl", "b.jsonl"]},
    "settings": [
        {"name": "base", "what": "as configured", "train": "r1", "overrides": ["train.precision=fp32"],
         "curve": True},
        {"name": "more", "what": "two files", "train": "r1-2", "overrides": ["train.epochs=3", "train.seed=7"],
         "seeds": [5]},
        {"name": "cv-only", "what": "never on the full data", "train": "r1-2", "seeds": []},
    ],
    "curve": {"what": "base on {fraction:.0%} of r1", "train": "r1", "overrides": ["train.precision=fp32"],
              "fractions": [0.25, 0.5], "seed": 9},
    "crossval": {"heldout": "r1", "documents": "data/*.jsonl", "baseline": "base", "stands_for": "base",
                 "others": ["more", "cv-only"], "k": 4, "seed": 3},
}


def write(tmp_path, plan):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def test_a_setting_trains_on_its_named_files_then_its_overrides_in_order(tmp_path):
    plan = load_plan(write(tmp_path, SMALL))
    assert plan.settings == (
        Setting("base", "as configured", ("data.train=a.jsonl", "train.precision=fp32"), (1, 2), True),
        Setting("more", "two files", ("data.train=[a.jsonl, b.jsonl]", "train.epochs=3", "train.seed=7"), (5,)),
        Setting("cv-only", "never on the full data", ("data.train=[a.jsonl, b.jsonl]",), ()),
    )
    assert plan.time_budget_s == 900 and plan.curve_fractions == (0.25, 0.5) and plan.curve_train == "a.jsonl"
    assert plan.crossval.heldout == "a.jsonl" and plan.crossval.others == ("more", "cv-only")
    assert (plan.crossval.k, plan.crossval.seed, plan.crossval.documents) == (4, 3, "data/*.jsonl")


def test_the_learning_curve_points_follow_the_first_setting_in_the_sweep(tmp_path):
    plan = load_plan(write(tmp_path, SMALL))
    assert [s.name for s in plan.sweep_settings()] == ["base", "train-25pct", "train-50pct", "more", "cv-only"]
    assert plan.curve[0] == Setting("train-25pct", "base on 25% of r1",
                                    ("data.train=a.jsonl", "train.precision=fp32", "train.train_fraction=0.25"),
                                    (9,), True)


def test_the_shipped_plan_loads_and_cross_validates_settings_it_declares():
    plan = load_plan()
    names = [s.name for s in plan.sweep_settings()]
    assert names[0] == "default" and len(set(names)) == len(names)
    assert {plan.crossval.baseline, plan.crossval.stands_for, *plan.crossval.others} <= set(names)
    assert all(s.overrides[0].startswith("data.train=") for s in plan.sweep_settings())


def _set(plan, dotted, value):
    node = plan
    *path, last = dotted.split(".")
    for p in path:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize(("key", "value", "message"), [
    ("colour", "blue", "colour: unknown key (known: crossval, curve, seeds"),
    ("time_budget_minutes", 0, "time_budget_minutes: expected an integer >= 1, got 0"),
    ("seeds", [1, 1], "seeds: expected a list of distinct integers"),
    ("train_files", [], "train_files: expected a mapping of names to lists of files"),
    ("train_files.r1", [], "train_files.r1: expected at least one file"),
    ("settings", [], "settings: expected a non-empty list"),
    ("settings.0.colour", "blue", "settings[0].colour: unknown key"),
    ("settings.0.name", KeyError, "settings[0].name: missing"),
    ("settings.1.name", "base", "settings[1].name: 'base' is already the name of another setting"),
    ("settings.1.name", "train-10pct", "settings[1].name: 'train-10pct': names starting with 'train-'"),
    ("settings.1.train", "r9", "settings[1].train: 'r9' is not in train_files (known: r1, r1-2)"),
    ("settings.1.overrides", ["train.epochs"], "settings[1].overrides: 'train.epochs': expected key=value"),
    ("settings.1.overrides", ["data.train=c.jsonl"], "settings[1].overrides: data.train goes in `train`"),
    ("settings.1.seeds", [1, "2"], "settings[1].seeds: expected a list of distinct integers"),
    ("settings.1.curve", "yes please", "settings[1].curve: expected true or false"),
    ("curve.fractions", [0.5, 1.0], "curve.fractions: expected a list of fractions between 0 and 1"),
    ("curve.what", "{share}", "curve.what: not a template of {fraction}"),
    ("curve.train", "r1-2", "curve.train: the curve takes fractions of one file"),
    ("crossval.heldout", "r1-2", "crossval.heldout: the held-out rows must be one file"),
    ("crossval.baseline", "nope", "crossval.baseline: 'nope' is not a setting"),
    ("crossval.others", ["base", "nope"], "crossval.others: 'nope' is not a setting"),
    ("crossval.k", 1, "crossval.k: expected an integer >= 2, got 1"),
])
def test_every_mistake_in_the_plan_is_one_error_naming_the_file_and_the_key(tmp_path, key, value, message):
    plan = copy.deepcopy(SMALL)
    _set(plan, key, value)
    path = write(tmp_path, plan)
    with pytest.raises(StanceError) as e:
        load_plan(path)
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


def test_a_cross_validated_setting_must_train_on_the_held_out_file(tmp_path):
    plan = copy.deepcopy(SMALL)
    plan["train_files"]["other"] = ["b.jsonl"]
    plan["settings"][2]["train"] = "other"
    path = write(tmp_path, plan)
    with pytest.raises(StanceError, match=r"plan.yaml: crossval.others: cv-only does not train on a.jsonl$"):
        load_plan(path)


def test_a_plan_that_is_not_yaml_or_not_there_is_one_error_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings: [\n")
    with pytest.raises(StanceError, match=rf"^{bad}: not valid YAML"):
        load_plan(bad)
    with pytest.raises(StanceError, match=rf"^{tmp_path / 'gone.yaml'}: cannot read the experiment plan"):
        load_plan(tmp_path / "gone.yaml")
    bad.write_text("- a list\n")
    with pytest.raises(StanceError, match=rf"^{bad}: top level: expected a mapping, got list$"):
        load_plan(bad)
    assert PLAN_FILE.name == "settings.yaml"
