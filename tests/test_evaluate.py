import json

import numpy as np
import pytest

from stance.errors import StanceError
from stance.evaluate import evaluate
from stance.metrics import compute_metrics, expected_calibration_error
from tests.conftest import LABELS, make_rows, write_jsonl


def test_metrics_by_hand():
    golds = ["accuse", "accuse", "deny", "none", "none", "support"]
    preds = ["accuse", "none", "deny", "none", "accuse", "none"]
    m = compute_metrics(golds, preds, LABELS)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["per_class"]["accuse"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["deny"]["f1"] == 1.0
    assert m["per_class"]["support"]["f1"] == 0.0
    # none: P = 1/3, R = 1/2 -> F1 = 0.4
    assert m["per_class"]["none"]["f1"] == pytest.approx(0.4)
    assert m["macro_f1"] == pytest.approx((0.5 + 1 + 0 + 0.4) / 4)
    assert m["confusion_matrix"][0] == [1, 0, 0, 1]  # gold accuse row


def test_ece_perfectly_calibrated_and_overconfident():
    probs = np.array([[0.9, 0.1]] * 10)
    golds = np.array([0] * 9 + [1])
    assert expected_calibration_error(probs, golds) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.array([0] * 5 + [1] * 5)) == pytest.approx(0.4)


def test_single_set_writes_files_in_out(trained_model, tiny_data, tmp_path):
    res = evaluate(trained_model, [tiny_data["test"]], tmp_path / "ev")
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "labels", "confusion_matrix"):
        assert key in m
    assert m["labels"] == LABELS and sum(map(sum, m["confusion_matrix"])) == 40
    assert (tmp_path / "ev" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    errors = [json.loads(x) for x in (tmp_path / "ev" / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 40 - round(m["accuracy"] * 40)
    assert all(e["gold"] != e["predicted"] for e in errors)
    assert res["test"]["macro_f1"] == m["macro_f1"]


def test_several_sets_get_subfolders_and_summary(trained_model, tiny_data, tmp_path):
    extra = write_jsonl(tmp_path / "other.jsonl", make_rows(12, 9))
    evaluate(trained_model, [tiny_data["test"], extra], tmp_path / "ev")
    assert (tmp_path / "ev" / "test" / "metrics.json").is_file()
    assert (tmp_path / "ev" / "other" / "confusion_matrix.png").is_file()
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert set(summary) == {"test", "other"} and summary["other"]["n"] == 12


def test_not_a_model_dir(tmp_path, tiny_data):
    (tmp_path / "m").mkdir()
    with pytest.raises(StanceError, match="not a model directory"):
        evaluate(tmp_path / "m", [tiny_data["test"]], tmp_path / "ev")


def test_temperature_recovers_overconfidence():
    from stance.calibration import fit_temperature

    rng = np.random.default_rng(0)
    n, k = 4000, 4
    true_logits = rng.normal(size=(n, k)) * 2
    p_true = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    gold = np.array([rng.choice(k, p=p) for p in p_true])
    over = np.exp(true_logits * 3) / np.exp(true_logits * 3).sum(1, keepdims=True)  # 3x overconfident
    t = fit_temperature(over, gold)
    assert 2.5 < t < 3.5
    scaled = np.exp(np.log(over) / t) / np.exp(np.log(over) / t).sum(1, keepdims=True)
    assert expected_calibration_error(scaled, gold) < expected_calibration_error(over, gold) / 2


def test_calibrate_model_dir_keeps_labels(trained_model, tiny_data, tmp_path):
    import shutil

    from stance.calibration import calibrate_model_dir
    from stance.modeling import StanceClassifier

    m = tmp_path / "m"
    shutil.copytree(trained_model, m)
    texts = [json.loads(x)["text"] for x in tiny_data["test"].read_text().splitlines()]
    before = StanceClassifier.load(m).predict_proba(texts)
    r = calibrate_model_dir(m, tiny_data["dev"])
    assert r["dev_logloss_after"] <= r["dev_logloss_before"] + 1e-9
    clf = StanceClassifier.load(m)
    assert clf.temperature == pytest.approx(r["temperature"])
    assert clf.min_score == r["min_score"]  # the none threshold is chosen again under the new temperature
    after = clf.predict_proba(texts)
    assert (before.argmax(1) == after.argmax(1)).all()


def test_fit_min_score_buys_back_precision_and_keeps_argmax_when_it_is_best():
    from stance.calibration import fit_min_score

    labels = ["accuse", "deny", "support", "none"]
    rng = np.random.default_rng(0)
    gold, rows = [], []
    for i in range(400):
        g = labels[i % 4]
        p = np.full(4, 0.02)
        if g != "none" or i % 8 < 4:
            p[labels.index(g)] = 0.94  # confident and right
        else:
            p[0] = 0.45 + 0.1 * rng.random()  # unsure accuse calls on none sentences: wrong
            p[3] = 0.35
        gold.append(g)
        rows.append(p / p.sum())
    probs = np.array(rows)
    r = fit_min_score(probs, gold, labels)
    assert 0.5 < r["min_score"] < 0.94
    assert r["macro_f1_after"] == pytest.approx(1.0)
    assert r["macro_f1_before"] < 0.95

    right = np.eye(4)[[labels.index(g) for g in gold]] * 0.9 + 0.025
    assert fit_min_score(right, gold, labels)["min_score"] == 0.0


def test_trained_model_keeps_its_dev_threshold(trained_model, tiny_data):
    from stance.modeling import StanceClassifier

    cfg = json.loads((trained_model / "config.json").read_text())
    results = json.loads((trained_model / "all_results.json").read_text())
    assert cfg["stance_min_score"] == results["min_score"]["min_score"]
    clf = StanceClassifier.load(trained_model)
    assert clf.min_score == cfg["stance_min_score"]
    probs = np.array([[0.4, 0.3, 0.2, 0.1], [0.9, 0.05, 0.03, 0.02]])
    clf.min_score = 0.5
    assert clf.decide(probs) == ["none", "accuse"]  # the model's own threshold by default
    assert clf.decide(probs, 0.0) == ["accuse", "accuse"]  # 0 = plain argmax


def test_loading_a_model_shows_no_weight_bar_and_keeps_the_setting(trained_model, capsys):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from stance.modeling import StanceClassifier

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    try:
        # The plain transformers load prints the bar here, so the check below can fail.
        AutoModelForSequenceClassification.from_pretrained(trained_model)
        assert "Loading weights" in capsys.readouterr().err

        StanceClassifier.load(trained_model, backend="torch")
        assert "Loading weights" not in capsys.readouterr().err
        assert hf_logging.is_progress_bar_enabled()
    finally:
        if not was_on:
            hf_logging.disable_progress_bar()
