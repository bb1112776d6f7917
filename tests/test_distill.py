"""Distillation (train.distill): a teacher's probabilities train the student beside, or instead of, gold labels."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stance.config import config_from_dict
from stance.distill import NO_TEACHER, distill_loss, read_teacher
from stance.errors import StanceError
from stance.testing import LABELS, make_rows, tiny_config_dict, write_jsonl
from stance.train import train


def _teacher_file(path, rows, label_of=lambda lab: lab, confidence=0.97):
    """A teacher that puts ``confidence`` on ``label_of(gold)`` for each row."""
    rest = (1 - confidence) / (len(LABELS) - 1)
    lines = [{"text": r["text"], "probs": {lab: confidence if lab == label_of(r["label"]) else rest for lab in LABELS}}
             for r in rows]
    return write_jsonl(path, lines)


def _unseen(rows, data):
    """The rows whose sentence is in neither dev nor test (the synthetic sentences repeat)."""
    held = {json.loads(line)["text"] for split in ("dev", "test") for line in data[split].read_text().splitlines()}
    return [r for r in rows if r["text"] not in held]


def test_distill_loss_is_zero_for_a_student_that_matches_the_teacher_and_ignores_rows_without_one():
    teacher = torch.tensor([[0.7, 0.1, 0.1, 0.1], [NO_TEACHER] * 4])
    logits = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25] * 4]))
    assert distill_loss(logits, teacher, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    wrong = torch.log(torch.tensor([[0.1, 0.7, 0.1, 0.1], [0.25] * 4]))
    loss_t1 = distill_loss(wrong, teacher, temperature=1.0).item()
    # At T = 1 it is the plain KL of the first row (the second has no teacher).
    p, q = [0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1]
    assert loss_t1 == pytest.approx(sum(a * math.log(a / b) for a, b in zip(p, q)), rel=1e-5)
    assert distill_loss(wrong, torch.full((2, 4), NO_TEACHER), 2.0).item() == 0.0


def test_with_alpha_zero_the_student_follows_the_teacher_not_the_gold_labels(tmp_path, tiny_backbone, tiny_data):
    train_rows = [json.loads(line) for line in tiny_data["train"].read_text().splitlines()]
    # A teacher that reads every sentence as "none": the gold labels (which the same config learns
    # perfectly, test_tiny_model_learns_the_synthetic_task) are given no weight.
    teacher = _teacher_file(tmp_path / "teacher.jsonl", train_rows, label_of=lambda _: "none")
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    d["data"]["dev"] = None  # dev's gold labels would pick the epoch that learned the teacher least
    d["train"]["distill"] = {"teacher": str(teacher), "alpha": 0.0, "temperature": 1.0}
    metrics = train(config_from_dict(d), quiet=True)
    assert metrics["distill"]["train_rows_with_teacher"] == len(train_rows)
    assert metrics["distill"]["unlabeled_rows"] == 0
    confusion = metrics["test"]["confusion_matrix"]  # rows = gold, columns = predicted, in LABELS order
    assert all(row[LABELS.index("none")] == sum(row) for row in confusion), confusion


def test_the_unlabeled_pool_teaches_labels_the_gold_rows_lack(tmp_path, tiny_backbone, tiny_data):
    rows = _unseen(make_rows(400, 11), tiny_data)
    gold = write_jsonl(tmp_path / "train.jsonl", [r for r in rows[:160] if r["label"] in ("accuse", "none")])
    pool_rows = [r for r in rows[160:] if r["text"] not in {g["text"] for g in rows[:160]}]
    pool = _teacher_file(tmp_path / "pool.jsonl", pool_rows)
    d = tiny_config_dict(tiny_backbone, {**tiny_data, "train": gold}, tmp_path / "model")
    d["train"]["distill"] = {"teacher": str(pool)}
    d["train"]["epochs"] = 12  # the tiny encoder needs them to tell four labels apart from soft targets
    metrics = train(config_from_dict(d), quiet=True)
    assert metrics["distill"]["unlabeled_rows"] == len({r["text"] for r in pool_rows})
    assert metrics["train_rows"] == len([r for r in rows[:160] if r["label"] in ("accuse", "none")])
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"and {len({r['text'] for r in pool_rows})} rows without a gold label" in card
    per_class = metrics["test"]["per_class"]
    # No gold row is deny or support: only the teacher's rows can teach them.
    assert per_class["deny"]["f1"] > 0.5 and per_class["support"]["f1"] > 0.5


def test_a_teacher_file_holding_a_dev_sentence_is_refused(tmp_path, tiny_backbone, tiny_data):
    dev_row = json.loads(tiny_data["dev"].read_text().splitlines()[3])
    clean = _unseen(make_rows(8, 21), tiny_data)
    teacher = _teacher_file(tmp_path / "teacher.jsonl", [*clean, dev_row])
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    d["train"]["distill"] = {"teacher": str(teacher)}
    with pytest.raises(StanceError, match=rf"teacher.jsonl:{len(clean) + 1}: this sentence is in dev"):
        train(config_from_dict(d), quiet=True)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(("probs", "message"), [
    ({"accuse": 1.0}, "one probability per label"),
    ({"accuse": 0.5, "deny": 0.5, "support": 0.5, "none": 0.5}, "sum to 2.0000"),
    ({"accuse": -0.5, "deny": 0.5, "support": 0.5, "none": 0.5}, "a number >= 0"),
])
def test_a_bad_teacher_row_is_one_error_naming_file_and_line(tmp_path, probs, message):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "probs": dict.fromkeys(LABELS, 0.25)},
                                              {"text": "b", "probs": probs}])
    with pytest.raises(StanceError, match=rf"t.jsonl:2: probs: .*{message}"):
        read_teacher(path, LABELS)


@pytest.mark.parametrize(("key", "value"), [("alpha", 1.5), ("temperature", 0)])
def test_distill_settings_out_of_range_are_config_errors(tiny_backbone, tiny_data, tmp_path, key, value):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    d["train"]["distill"] = {key: value}
    with pytest.raises(StanceError, match=f"train.distill.{key}"):
        config_from_dict(d)


def test_distill_data_label_writes_probabilities_that_train_a_student(tmp_path, trained_model, tiny_backbone,
                                                                     tiny_data):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"], "source": "synthetic", "doc_id": r["id"]}
                                                 for r in _unseen(make_rows(30, 31), tiny_data)])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "student")))
    args = ["label", trained_model, trained_model, "--name", "twice", "--config", config, "--pool", pool,
            "--out-dir", tmp_path]
    proc = subprocess.run([sys.executable, "scripts/distill_data.py", *map(str, args)], cwd=root, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "twice.jsonl").read_text().splitlines()]
    card = json.loads((tmp_path / "twice.json").read_text())
    assert card["rows_by_split"] == {"train": len({r["text"] for r in make_rows(160, 1)}),
                                     "pool": len({r["text"] for r in rows if r["split"] == "pool"})}
    assert set(card) >= {"dev", "test"} and len(card["models"]) == 2
    # The mean of one model twice is that model: the card scores its argmax on test.
    from stance.data import read_labeled
    from stance.metrics import compute_metrics
    from stance.modeling import StanceClassifier

    clf, test = StanceClassifier.load(trained_model), read_labeled(tiny_data["test"], LABELS)
    argmax = [clf.labels[i] for i in clf.predict_proba(test.texts).argmax(1)]
    assert card["test"]["macro_f1"] == pytest.approx(compute_metrics(test.labels, argmax, LABELS)["macro_f1"])
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "student")
    d["train"]["distill"] = {"teacher": str(tmp_path / "twice.jsonl")}
    metrics = train(config_from_dict(d), quiet=True)
    assert metrics["distill"]["unlabeled_rows"] == card["rows_by_split"]["pool"]


def test_distill_data_label_reuses_an_earlier_output_and_scores_only_the_new_sentences(tmp_path, trained_model,
                                                                                        tiny_backbone, tiny_data):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from stance.modeling import StanceClassifier

    root = Path(__file__).resolve().parents[1]
    pooled = [{"text": r["text"], "source": "synthetic", "doc_id": r["id"]}
              for r in _unseen(make_rows(40, 31), tiny_data)]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "student")))

    def label(name: str, pool: list[dict], *extra: str) -> list[dict]:
        args = ["label", trained_model, "--name", name, "--config", config, "--out-dir", tmp_path,
                "--pool", write_jsonl(tmp_path / f"{name}-pool.jsonl", pool), *extra]
        proc = subprocess.run([sys.executable, "scripts/distill_data.py", *map(str, args)], cwd=root,
                              capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]

    first = label("small", pooled[:10])
    # The earlier file's probabilities are poisoned: a reused row must carry them, a scored one must not.
    poisoned = [{**r, "probs": {lab: 0.25 for lab in r["probs"]}} for r in first]
    write_jsonl(tmp_path / "poisoned.jsonl", poisoned)
    more = label("more", pooled, "--reuse", str(tmp_path / "poisoned.jsonl"))
    old = {r["text"] for r in first}
    assert {r["text"] for r in more} >= old and len(more) > len(first)
    clf = StanceClassifier.load(trained_model)
    new = [r for r in more if r["text"] not in old]
    scored = clf.predict_proba([r["text"] for r in new])
    for r, p in zip(new, scored):
        assert [r["probs"][lab] for lab in clf.labels] == pytest.approx(p.tolist(), abs=1e-5)
    assert all(set(r["probs"].values()) == {0.25} for r in more if r["text"] in old)
