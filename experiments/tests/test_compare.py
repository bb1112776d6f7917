from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from experiments.baselines import run_baselines
from experiments.report import render_report
from experiments.settings import Setting
from experiments.summaries import threshold_to_none, uncalibrated_ece
from experiments.sweep import run_sweep
from stance.data import read_labeled
from stance.metrics import expected_calibration_error
from stance.testing import LABELS, tiny_config_dict

BUDGET_S = 15 * 60


def _setup(tmp_path, tiny_backbone, tiny_data):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "unused")
    d["train"]["epochs"] = 2
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(d))
    read = lambda p: read_labeled(p, LABELS)  # noqa: E731
    return cfg, read(tiny_data["train"]), read(tiny_data["dev"]), read(tiny_data["test"])


SETTINGS = [
    Setting("default", "as configured", seeds=(1, 2), curve=True),
    Setting("slow-lr", "learning rate 1e-5", ("train.learning_rate=1e-5",), seeds=(1, 2)),
    Setting("train-50pct", "half the data", ("train.train_fraction=0.5",), seeds=(42,), curve=True),
]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_backbone, tiny_data):
    """One sweep of SETTINGS on the tiny model, and the baselines, shared by the tests of its report."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg, train, dev, test = _setup(tmp, tiny_backbone, tiny_data)
    runs = tmp / "results" / "runs"
    records = run_sweep(cfg, SETTINGS, runs, tmp / "work", log=lambda s: None)
    baselines = run_baselines(train, dev, test, LABELS, fractions=(0.5,))
    return SimpleNamespace(tmp=tmp, cfg=cfg, train=train, dev=dev, test=test, runs=runs, records=records,
                           baselines=baselines, out=tmp / "results.md")


def _render(sw, settings=SETTINGS, records=None, **kw):
    return render_report(settings, sw.records if records is None else records, sw.baselines, sw.dev, sw.test,
                         LABELS, sw.out, shipped="default", budget_s=BUDGET_S, **kw)


def test_the_sweep_caches_every_run_round_robin_over_seeds_and_keeps_no_model(swept, monkeypatch):
    records, runs = swept.records, swept.runs
    assert sorted(p.name for p in runs.glob("*.json")) == [
        "default-s1.json", "default-s2.json", "slow-lr-s1.json", "slow-lr-s2.json", "train-50pct-s42.json"]
    assert not any((swept.tmp / "work").iterdir())  # trained models are not kept
    # Round-robin over seeds: every setting's first seed comes before any second seed.
    assert [(r["setting"], r["seed"]) for r in records] == [
        ("default", 1), ("slow-lr", 1), ("train-50pct", 42), ("default", 2), ("slow-lr", 2)]
    r = records[0]
    assert len(r["test_probs"]) == len(swept.test) and len(r["dev_probs"]) == len(swept.dev)
    assert records[2]["train_rows"] == len(swept.train) // 2
    # Different seeds give different models.
    assert r["test_probs"] != records[3]["test_probs"]

    # A second sweep reuses every cached run: training would fail loudly here.
    import stance.train

    monkeypatch.setattr(stance.train, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = run_sweep(swept.cfg, SETTINGS, runs, swept.tmp / "work", log=lambda s: None)
    assert [x["test"] for x in again] == [x["test"] for x in records]


def test_the_report_picks_the_winner_on_dev_and_writes_every_section(swept):
    records, test = swept.records, swept.test
    facts = _render(swept, notes={test.texts[0]: "a note the report must carry"}, commentary="Why.")
    dev_means = {name: np.mean([x["dev"]["macro_f1"] for x in records if x["setting"] == name])
                 for name in ("default", "slow-lr")}
    assert facts["winner"] == max(dev_means, key=dev_means.get)
    text = swept.out.read_text()
    assert f"**Winner: `{facts['winner']}`**" in text
    assert ("as shipped trains the winner" in text) == (facts["winner"] == "default")
    assert "± " in text and "TF-IDF + LR" in text and "keyword rule" in text
    assert "## Reading the results\n\nWhy." in text
    assert (swept.tmp / "results" / "confusion_test.png").stat().st_size > 1000
    assert (swept.tmp / "results" / "learning_curve.png").stat().st_size > 1000
    errors = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    ref = next(x for x in records if x["setting"] == facts["winner"] and x["seed"] == 1)
    pred = [LABELS[i] for i in np.asarray(ref["test_probs"]).argmax(1)]
    wrong = sum(g != p for g, p in zip(test.labels, pred))
    assert len(errors) == min(20, wrong)


def test_the_report_names_the_runner_up_within_the_budget_and_a_winner_from_the_crossval(swept):
    winner = _render(swept)["winner"]
    runner = ({"default", "slow-lr"} - {winner}).pop()
    # A setting over the time budget is neither the winner nor the runner-up, however good on dev.
    over = [dict(r, setting="over", train_seconds=10_000.0, dev=dict(r["dev"], macro_f1=1.0))
            for r in swept.records if r["setting"] == "default"]
    assert _render(swept, [*SETTINGS, Setting("over", "too slow", seeds=(1, 2))], swept.records + over)["winner"] \
        == winner
    assert f"within the time budget, `{runner}`" in swept.out.read_text()

    # Cross-validation decides between the dev winner's recipe and a challenger: the
    # challenger wins only if it beats the stand-in for the dev winner there.
    def cv(base_f1, other_f1, stands_for):
        return {"k": 3, "seed": 42, "baseline": "stand-in", "stands_for": stands_for,
                "settings": {"stand-in": {"macro_f1": base_f1, "per_class_f1": dict.fromkeys(LABELS, 0.5), "n": 99},
                             runner: {"macro_f1": other_f1, "per_class_f1": dict.fromkeys(LABELS, 0.6), "n": 99,
                                      "diff": other_f1 - base_f1, "diff_sd": 0.01}}}

    facts = _render(swept, crossval=cv(0.70, 0.72, winner))
    assert facts["winner"] == runner and facts["dev_winner"] == winner
    text = swept.out.read_text()
    assert f"better than the dev winner `{winner}` in cross-validation" in text
    assert "## Cross-validation" in text and "+0.020 ± 0.010" in text
    assert "`stand-in` stands for" in text
    for losing in (cv(0.72, 0.70, winner), cv(0.70, 0.72, "some other setting")):
        assert _render(swept, crossval=losing)["winner"] == winner

    # The dev winner cross-validated as itself (no stand-in): a challenger that beats it there wins.
    own = cv(0.70, 0.72, winner)
    own["baseline"] = winner
    own["settings"] = {winner: own["settings"].pop("stand-in"), **own["settings"]}
    assert _render(swept, crossval=own)["winner"] == runner
    assert "stands for" not in swept.out.read_text()


def test_threshold_maps_low_scores_to_none_and_is_chosen_on_dev():
    from stance.data import LabeledData

    # Two dev rows: a confident accuse that is right, an unsure accuse that is really none.
    dev = LabeledData("dev", ["a", "b"], ["accuse", "none"])
    test = LabeledData("test", ["c"], ["none"])
    rec = {"dev_probs": [[0.9, 0.05, 0.03, 0.02], [0.4, 0.3, 0.1, 0.2]], "test_probs": [[0.42, 0.28, 0.1, 0.2]]}
    out, chosen = threshold_to_none([rec], dev, test, LABELS)
    assert 0.4 < chosen[0] <= 0.9
    assert out[0]["test"]["accuracy"] == 1.0  # the unsure test row became none


def test_uncalibrated_ece_recovers_temperature_one():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4)) * 3
    gold = rng.integers(0, 4, 200)

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    t = 1.7
    expected = expected_calibration_error(softmax(logits), gold)
    assert abs(uncalibrated_ece(softmax(logits / t), t, gold) - expected) < 1e-9


def test_compare_script_rejects_unknown_setting(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "scripts" / "compare.py"), "--only", "nope",
                           "--out", str(tmp_path / "r.md")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --only: unknown settings ['nope']")


def test_matching_setting_finds_the_shipped_recipe(tmp_path, tiny_backbone, tiny_data):
    from experiments.sweep import matching_setting
    from stance.config import load_config

    cfg_path, *_ = _setup(tmp_path, tiny_backbone, tiny_data)
    two = f"data.train=[{tiny_data['train']}, {tiny_data['dev']}]"
    settings = [Setting("default", "as configured", (f"data.train={tiny_data['train']}",)),
                Setting("more-data", "train + dev rows", (two,)),
                Setting("slow-lr", "learning rate 1e-5", ("train.learning_rate=1e-5",))]
    seed = load_config(cfg_path).train.seed
    as_shipped = load_config(cfg_path).to_dict()
    assert matching_setting(cfg_path, as_shipped, settings, seed).name == "default"
    # Output location and export do not matter; the data files and the seed do.
    moved = load_config(cfg_path, ["output_dir=elsewhere", "model.export_onnx=false"]).to_dict()
    assert matching_setting(cfg_path, moved, settings, seed).name == "default"
    assert matching_setting(cfg_path, load_config(cfg_path, [two]).to_dict(), settings, seed).name == "more-data"
    assert matching_setting(cfg_path, as_shipped, settings, seed + 1) is None
    assert matching_setting(cfg_path, load_config(cfg_path, ["train.epochs=9"]).to_dict(), settings, seed) is None


def test_matching_setting_reads_precision_as_the_run_used_it(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    from experiments.sweep import matching_setting
    from stance.config import load_config

    cfg_path, *_ = _setup(tmp_path, tiny_backbone, tiny_data)
    settings = [Setting("fp32", "fp32", ("train.precision=fp32",)), Setting("bf16", "bf16", ("train.precision=bf16",))]
    seed = load_config(cfg_path).train.seed
    # A model saved before train.precision existed was trained in fp32.
    old = load_config(cfg_path).to_dict()
    del old["train"]["precision"]
    assert matching_setting(cfg_path, old, settings, seed).name == "fp32"
    # `auto` is what it resolves to on the machine comparing.
    auto = load_config(cfg_path, ["train.precision=auto"]).to_dict()
    for native, name in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr("stance.trainer.cpu_has_native_bf16", lambda native=native: native)
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
        assert matching_setting(cfg_path, auto, settings, seed).name == name


def test_matching_setting_reads_a_model_saved_before_spans_as_trained_without_them(tmp_path, tiny_backbone,
                                                                                    tiny_data):
    from experiments.sweep import matching_setting
    from stance.config import load_config

    cfg_path, *_ = _setup(tmp_path, tiny_backbone, tiny_data)
    settings = [Setting("default", "as configured"), Setting("spans", "spans", ("model.spans=true",))]
    seed = load_config(cfg_path).train.seed
    old = load_config(cfg_path).to_dict()
    del old["model"]["spans"], old["train"]["span_loss_weight"]
    assert matching_setting(cfg_path, old, settings, seed).name == "default"
    spans = load_config(cfg_path, ["model.spans=true"]).to_dict()
    assert matching_setting(cfg_path, spans, settings, seed).name == "spans"
    spans["train"]["span_loss_weight"] = 0.5  # weighs the span loss: another run
    assert matching_setting(cfg_path, spans, settings, seed) is None


def test_adopt_refuses_a_model_of_no_setting_and_names_the_difference(tmp_path, tiny_backbone, tiny_data):
    from experiments.sweep import adopt_model
    from stance.config import load_config, save_config
    from stance.errors import StanceError

    cfg_path, *_ = _setup(tmp_path, tiny_backbone, tiny_data)
    model = tmp_path / "model"
    model.mkdir()
    save_config(load_config(cfg_path, ["train.epochs=9"]), model / "stance_config.yaml")
    settings = [Setting("default", "as configured"), Setting("slow-lr", "lr 1e-5", ("train.learning_rate=1e-5",))]
    seed = load_config(cfg_path).train.seed
    expected = r"matches no setting .*closest is default, which differs in \['train.epochs'\]"
    with pytest.raises(StanceError, match=expected):
        adopt_model(cfg_path, model, tmp_path / "runs", seed=seed, settings=settings)
    assert not (tmp_path / "runs").exists()


def test_paired_bootstrap_sees_a_real_difference_and_none_between_equals():
    from experiments.summaries import paired_bootstrap
    from stance.data import LabeledData

    labels = ["accuse", "deny", "support", "none"]
    gold = [labels[i % 4] for i in range(200)]
    data = LabeledData(path="dev.jsonl", texts=[f"s{i}" for i in range(200)], labels=gold)
    right = np.eye(4)[[i % 4 for i in range(200)]].tolist()
    half = [row if i % 2 else np.roll(row, 1).tolist() for i, row in enumerate(right)]  # half wrong
    a = [{"dev_probs": half}]
    same = paired_bootstrap(a, a, "dev", data, labels, draws=50)
    assert same["diff"] == 0 and same["diff_sd"] == 0 and same["sd_a"] > 0
    better = paired_bootstrap(a, [{"dev_probs": right}], "dev", data, labels, draws=50)
    assert better["diff"] > 0.4 and better["diff"] > 5 * better["diff_sd"]


def test_a_run_keeps_its_probabilities_on_the_extra_test_sets_and_they_give_the_shipped_score(tmp_path, tiny_backbone,
                                                                                               tiny_data):
    from experiments.sweep import run_one
    from stance.metrics import compute_metrics
    from stance.modeling import decide_labels
    from stance.testing import make_rows, write_jsonl

    other = write_jsonl(tmp_path / "test_other.jsonl", make_rows(24, 9))
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "unused")
    d["data"]["extra_test"] = [str(other)]
    d["train"]["epochs"] = 1
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(d))
    rec = run_one(cfg, Setting("default", "as configured"), 1, tmp_path / "runs", tmp_path / "work")
    probs = np.asarray(rec["extra_test_probs"]["test_other"])
    gold = read_labeled(other, LABELS).labels
    assert probs.shape == (24, len(LABELS))
    # The same decision `stance train` measured the set with: its dev-chosen threshold on these probabilities.
    again = compute_metrics(gold, decide_labels(probs, LABELS, rec["min_score"] or 0.0), LABELS)
    assert again["macro_f1"] == pytest.approx(rec["extra_test"]["test_other"]["macro_f1"], abs=0.02)
