"""Holder and target learned with the label: train, save, export, every backend, predict and evaluate."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from stance.config import config_from_dict
from stance.errors import StanceError
from stance.evaluate import evaluate
from stance.export import export
from stance.modeling import StanceClassifier
from stance.predict import FIELDS, predict_articles
from stance.testing import make_span_rows, tiny_config_dict, write_jsonl
from stance.train import summarize, train
from tests.test_cli import assert_one_line_error, run

STANCES = ("accuse", "deny", "support")
BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-cascade")


def span_config(backbone, data, out):
    cfg = tiny_config_dict(backbone, data, out)
    cfg["model"]["spans"] = True
    # The tiny random encoder learns the verb (the label) slowly while the span task pulls at it:
    # a higher rate and a lighter span loss get both within seconds.
    cfg["train"].update({"epochs": 15, "learning_rate": 1e-2, "span_loss_weight": 0.3})
    return cfg


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def span_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("span-data")
    return {"train": write_jsonl(folder / "train.jsonl", make_span_rows(160, 1)),
            "dev": write_jsonl(folder / "dev.jsonl", make_span_rows(40, 2)),
            "test": write_jsonl(folder / "test.jsonl", make_span_rows(40, 3))}


@pytest.fixture(scope="module")
def span_model(tmp_path_factory, tiny_backbone, span_data):
    out = tmp_path_factory.mktemp("span-model") / "model"
    metrics = train(config_from_dict(span_config(tiny_backbone, span_data, out)), quiet=True)
    return out, metrics


@pytest.fixture(scope="module")
def exported(span_model, span_data, tmp_path_factory):
    m = tmp_path_factory.mktemp("span-exp") / "model"
    shutil.copytree(span_model[0], m)
    return m, export(m, onnx=True, int8=True, data=span_data["test"])


@pytest.fixture(scope="module")
def articles(tmp_path_factory, span_data):
    """Training sentences, three to an article, after a headline (so sentence and article offsets differ)."""
    folder = tmp_path_factory.mktemp("span-articles")
    rows = read_jsonl(span_data["train"])[:60]
    for k in range(0, len(rows), 3):
        (folder / f"{k:03d}.txt").write_text("Row over the budget\n\n" + " ".join(r["text"] for r in rows[k:k + 3]))
    return folder, {r["text"]: r for r in rows}


def test_a_tiny_model_learns_holder_and_target_with_the_label(span_model, span_data):
    model, _ = span_model
    rows = read_jsonl(span_data["train"])
    got = StanceClassifier.load(model).predict([r["text"] for r in rows], roles=True)
    stance = [(r, g) for r, g in zip(rows, got) if r["label"] in STANCES and g["label"] == r["label"]]
    assert len(stance) >= 0.9 * sum(r["label"] in STANCES for r in rows)
    holders = sum(g["holder"] == r["holder"] for r, g in stance) / len(stance)
    targets = sum(g["target"] == r["target"] for r, g in stance) / len(stance)
    assert holders >= 0.9 and targets >= 0.85, (holders, targets)
    assert all(g["holder"] is None and g["target"] is None for g in got if g["label"] == "none")


def test_the_directory_stays_a_plain_text_classification_model_for_pipeline(span_model):
    from safetensors import safe_open

    model, _ = span_model
    assert (model / "span_head.safetensors").is_file()
    assert json.loads((model / "span_head.json").read_text())["tags"] == ["O", "B-HOLDER", "I-HOLDER",
                                                                       "B-TARGET", "I-TARGET"]
    with safe_open(str(model / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "span" in k]
    code = ("import json, sys; from transformers import pipeline; "
            "p = pipeline('text-classification', model=sys.argv[1]); "
            "print(json.dumps([o['label'] for o in p(sys.argv[2:])]))")
    texts = ["Police praised the mayor on Monday.", "The minister denied the union again."]
    proc = subprocess.run([sys.executable, "-c", code, str(model), *texts], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    for warning in ("not used", "newly initialized", "Some weights", "UNEXPECTED", "MISSING"):
        assert warning not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout) == StanceClassifier.load(model).predict(texts, min_score=0)


def test_train_reports_span_metrics_in_results_model_card_and_summary(span_model):
    model, metrics = span_model
    spans = json.loads((model / "test_results.json").read_text())["spans"]
    assert spans["n"] == 30 and 0 < spans["n_label_correct"] <= 30
    for role in ("holder", "target"):
        m = spans[role]
        assert 0.5 <= m["f1_given_label"] <= 1 and m["f1_end_to_end"] <= m["f1_given_label"] + 1e-9
    assert metrics["dev"]["spans"]["n"] == 30
    assert "Holder and target on the 30 gold stance sentences" in (model / "README.md").read_text()
    assert "test holder/target token-F1" in summarize({**metrics, "output_dir": str(model)})


def test_evaluate_writes_span_metrics_and_prints_them(span_model, span_data, tmp_path):
    model, _ = span_model
    result = evaluate(model, [span_data["test"]], tmp_path / "ev", quiet=True)
    written = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert written["spans"] == result["test"]["spans"] and written["spans"]["n"] == 30
    r = run("evaluate", model, span_data["test"], "--out", tmp_path / "ev2", "--quiet")
    assert r.exit_code == 0, r.output
    assert "spans: 30 gold stance sentences with spans" in r.stdout and "holder" in r.stdout


def test_evaluate_on_data_without_spans_writes_no_span_metrics(span_model, tiny_data, tmp_path):
    model, _ = span_model
    assert "spans" not in evaluate(model, [tiny_data["test"]], tmp_path / "ev", quiet=True)["test"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_rows_give_holder_and_target_with_article_offsets_on_every_backend(exported, articles, tmp_path,
                                                                                  backend):
    model, _ = exported
    folder, gold = articles
    clf = StanceClassifier.load(model, backend=backend)
    predict_articles(clf, [str(folder)], out=tmp_path / "o.jsonl", quiet=True)
    rows = read_jsonl(tmp_path / "o.jsonl")
    texts = {f.name: f.read_text() for f in folder.iterdir()}
    right = 0
    for r in rows:
        assert list(r) == FIELDS + ["holder", "target"]
        article = texts[r["doc_id"].rsplit("/", 1)[-1]]
        for role in ("holder", "target"):
            span = r[role]
            assert span is None or article[span["start"]:span["end"]] == span["text"]
            assert span is None or r["start"] <= span["start"] < span["end"] <= r["end"]
        if r["label"] == "none":
            assert r["holder"] is None and r["target"] is None
        g = gold.get(r["text"])
        if g and g["label"] == r["label"] != "none":
            right += all(r[role] and r[role]["text"] == g[role]["text"] for role in ("holder", "target"))
    stance_rows = sum(g["label"] != "none" for g in gold.values())
    assert right >= 0.75 * stance_rows, (backend, right, stance_rows)


def test_csv_rows_get_flat_span_columns(exported, articles, tmp_path):
    model, _ = exported
    folder, _ = articles
    predict_articles(StanceClassifier.load(model), [str(folder)], out=tmp_path / "o.csv", quiet=True)
    import csv

    with open(tmp_path / "o.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[-6:] == ["holder", "holder_start", "holder_end", "target", "target_start", "target_end"]
    texts = {f.name: f.read_text() for f in folder.iterdir()}
    found = [r for r in rows if r["holder"]]
    assert found
    for r in found:
        article = texts[r["doc_id"].rsplit("/", 1)[-1]]
        assert article[int(r["holder_start"]):int(r["holder_end"])] == r["holder"]
    assert all(r["holder"] == r["target"] == "" for r in rows if r["label"] == "none")


def test_a_model_without_a_span_head_keeps_todays_rows(trained_model, articles, tmp_path):
    folder, _ = articles
    clf = StanceClassifier.load(trained_model)
    predict_articles(clf, [str(folder)], out=tmp_path / "o.jsonl", quiet=True)
    assert all(list(r) == FIELDS for r in read_jsonl(tmp_path / "o.jsonl"))
    predict_articles(clf, [str(folder)], out=tmp_path / "o.csv", quiet=True)
    assert (tmp_path / "o.csv").read_text().splitlines()[0].split(",")[-1] == "score_none"
    with pytest.raises(StanceError, match="has no span head, so no holder or target"):
        clf.predict(["Police praised the mayor."], roles=True)


def test_export_writes_both_outputs_in_fp32_and_int8_and_measures_span_agreement(exported):
    import onnx

    model, report = exported
    for name in ("model.onnx", "model.int8.onnx"):
        graph = onnx.load(str(model / "onnx" / name)).graph
        assert [o.name for o in graph.output] == ["logits", "span_logits"]
    assert report["backends"]["torch"]["span_agreement"] == 1.0
    assert report["backends"]["onnx"]["span_agreement"] == 1.0
    assert all(report["backends"][b]["span_agreement"] >= 0.8 for b in BACKENDS)


def test_the_cascade_takes_spans_from_the_pass_that_decided_the_label(exported, span_data):
    model, _ = exported
    texts = [r["text"] for r in read_jsonl(span_data["test"])] + ["A much longer sentence, " * 10 + "he said."]
    exact = StanceClassifier.load(model, backend="onnx").predict_roles(texts, min_score=0)
    fast = StanceClassifier.load(model, backend="onnx-int8").predict_roles(texts, min_score=0)
    clf = StanceClassifier.load(model, backend="onnx-cascade")
    for margin, ref in ((1.01, exact), (0.0, fast)):  # every row re-run in fp32; none is
        clf.backend.margin = margin
        got = clf.predict_roles(texts, min_score=0)
        assert got[1] == ref[1] and got[2] == ref[2]
    # Half re-run: each row's spans are those of the pass whose label it kept.
    fast_clf = StanceClassifier.load(model, backend="onnx-int8")
    fast_clf.temperature = 1.0
    raw = fast_clf.predict_proba(texts)
    top2 = np.sort(raw, axis=1)[:, -2:]
    clf.backend.margin = float(np.median(top2[:, 1] - top2[:, 0]))
    unsure = (top2[:, 1] - top2[:, 0]) < clf.backend.margin
    _, labels, roles = clf.predict_roles(texts, min_score=0)
    assert 0 < unsure.sum() < len(texts)
    for i, again in enumerate(unsure):
        ref = exact if again else fast
        assert (labels[i], roles[i]) == (ref[1][i], ref[2][i])


def test_onnx_exported_without_the_span_head_is_refused_by_name_and_auto_falls_back(exported, tmp_path, capsys):
    model, _ = exported
    plain = tmp_path / "plain"
    shutil.copytree(model, plain, ignore=shutil.ignore_patterns("onnx", "span_head.*"))
    export(plain, onnx=True, int8=False)
    m = tmp_path / "m"
    shutil.copytree(model, m)
    shutil.copy(plain / "onnx" / "model.onnx", m / "onnx" / "model.onnx")
    # auto picks the fastest measured backend; keep only fp32 ONNX in the report so that it is the pick,
    # whatever the timings of this run were.
    report = json.loads((m / "onnx" / "backends.json").read_text())
    report["backends"] = {"onnx": report["backends"]["onnx"]}
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    with pytest.raises(StanceError, match="no span_logits output, but the model has a span head"):
        StanceClassifier.load(m, backend="onnx")
    clf = StanceClassifier.load(m, backend="auto")
    assert clf.backend.name == "torch" and "no span_logits output" in capsys.readouterr().err
    assert clf.predict(["Police praised the mayor on Monday."], roles=True)[0]["label"]


@pytest.mark.parametrize("damage, expected", [
    (lambda m: (m / "span_head.json").unlink(), "span_head.json: not found, but span_head.safetensors is there"),
    (lambda m: (m / "span_head.json").write_text('{"tags": ["O", "B-X"], "hidden_size": 32}'),
     "span_head.json: tags: expected ['O', 'B-HOLDER'"),
    (lambda m: (m / "span_head.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "),
     "span_head.safetensors: expected tensors"),
])
def test_a_damaged_span_head_is_a_one_line_error(span_model, tmp_path, damage, expected):
    m = tmp_path / "m"
    shutil.copytree(span_model[0], m)
    damage(m)
    art = tmp_path / "a.txt"
    art.write_text("Police praised the mayor.")
    assert_one_line_error(run("predict", m, art, "--backend", "torch", "--quiet"), expected)


def test_spans_on_without_span_rows_in_train_is_a_one_line_error(tiny_config, tmp_path):
    r = run("train", tiny_config, "--quiet", "--set", "model.spans=true", "--output-dir", tmp_path / "m")
    assert_one_line_error(r, "model.spans is true, but no training row has holder/target spans")
    assert not (tmp_path / "m").exists()


def test_onnx_serving_decodes_spans_without_importing_torch(exported):
    from pathlib import Path

    model, _ = exported
    root = Path(__file__).resolve().parents[1]
    code = ("import json, sys; from stance.modeling import StanceClassifier; "
            "clf = StanceClassifier.load(sys.argv[1], backend='onnx-int8'); "
            "out = clf.predict(['Police praised the mayor on Monday.'], roles=True); "
            "print(json.dumps([out[0]['label'], 'torch' in sys.modules, 'transformers' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=300,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    label, torch_loaded, transformers_loaded = json.loads(proc.stdout)
    assert label in STANCES + ("none",) and not torch_loaded and not transformers_loaded


def test_a_run_without_spans_keeps_the_checkpoint_fingerprint_of_older_stance(tiny_backbone, tiny_data, tmp_path):
    from stance.checkpoints import run_fingerprint

    cfg = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "m")
    fingerprint = run_fingerprint(config_from_dict(cfg))
    # --resume of a run started before model.spans existed must still match.
    assert "model.spans" not in fingerprint and "train.span_loss_weight" not in fingerprint
    cfg["model"]["spans"] = True
    fingerprint = run_fingerprint(config_from_dict(cfg))
    assert fingerprint["model.spans"] is True and fingerprint["train.span_loss_weight"] == 1.0


def test_serve_answers_a_span_model_with_the_holder_and_target_stance_predict_writes(exported, articles, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from stance.serve import create_app

    model, _ = exported
    folder, _ = articles
    path = sorted(folder.iterdir())[0]
    predict_articles(StanceClassifier.load(model, backend="onnx"), [str(path)], out=tmp_path / "o.jsonl", quiet=True)
    want = read_jsonl(tmp_path / "o.jsonl")
    with TestClient(create_app(model, backend="onnx")) as client:
        r = client.post("/v1/predict", json={"articles": [{"id": want[0]["doc_id"], "text": path.read_text()}]})
    assert r.status_code == 200, r.text
    got = r.json()["rows"]
    assert [list(x) for x in got] == [FIELDS + ["holder", "target"]] * len(want)
    assert [(x["label"], x["holder"], x["target"]) for x in got] == \
           [(x["label"], x["holder"], x["target"]) for x in want]
    assert any(x["holder"] for x in got)  # the article has stance sentences with a holder, so this is no empty check
