import json

import numpy as np
import pytest

from stance.errors import StanceError
from stance.evaluate import compute_metrics, evaluate, expected_calibration_error
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
    from stance.evaluate import fit_temperature

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

    from stance.evaluate import calibrate_model_dir
    from stance.modeling import StanceClassifier

    m = tmp_path / "m"
    shutil.copytree(trained_model, m)
    texts = [json.loads(x)["text"] for x in tiny_data["test"].read_text().splitlines()]
    before = StanceClassifier.load(m).predict_proba(texts)
    r = calibrate_model_dir(m, tiny_data["dev"])
    assert r["dev_logloss_after"] <= r["dev_logloss_before"] + 1e-9
    clf = StanceClassifier.load(m)
    assert clf.temperature == pytest.approx(r["temperature"])
    after = clf.predict_proba(texts)
    assert (before.argmax(1) == after.argmax(1)).all()
