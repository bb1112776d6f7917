"""Every inference backend against torch fp32 on a tiny model, and the `auto` choice."""

import hashlib
import json
import logging
import shutil
import warnings

import numpy as np
import pytest

from stance.backend_report import choose_auto
from stance.errors import StanceError
from stance.export import export, format_report
from stance.modeling import StanceClassifier
from tests.conftest import make_rows


@pytest.fixture(scope="module")
def exported(trained_model, tiny_data, tmp_path_factory):
    m = tmp_path_factory.mktemp("exp") / "model"
    shutil.copytree(trained_model, m)
    report = export(m, onnx=True, int8=True, data=tiny_data["test"])
    return m, report


@pytest.fixture(scope="module")
def texts():
    return [r["text"] for r in make_rows(200, 21)] + ["A much longer sentence, " * 12 + "said the minister."]


def test_export_writes_files_and_measures_every_backend(exported):
    m, report = exported
    assert (m / "onnx" / "model.onnx").is_file() and (m / "onnx" / "model.int8.onnx").is_file()
    assert set(report["backends"]) == {"torch", "torch-int8", "onnx", "onnx-int8", "onnx-cascade"}
    assert 0 < report["cascade_margin"] <= 0.6 and report["cascade_tuned_on"] is not None
    assert report["n"] == 40 and report["backends"]["torch"]["agreement"] == 1.0
    saved = json.loads((m / "onnx" / "backends.json").read_text())
    assert saved["backends"] == report["backends"]


def test_onnx_fp32_matches_torch(exported, texts):
    m, _ = exported
    ref = StanceClassifier.load(m, backend="torch").predict_proba(texts)
    got = StanceClassifier.load(m, backend="onnx").predict_proba(texts)
    assert np.abs(ref - got).max() < 1e-4
    assert (ref.argmax(1) == got.argmax(1)).all()


def test_onnx_sessions_share_one_arena_or_fall_back(exported, texts, monkeypatch):
    import onnxruntime as ort

    import stance.backends as backends

    m, _ = exported
    ref = StanceClassifier.load(m, backend="onnx").predict_proba(texts)
    assert backends._SHARED_ARENA is True  # registered once for the process
    # A host that refuses a second allocator must still get working sessions of their own.
    monkeypatch.setattr(backends, "_SHARED_ARENA", None)
    monkeypatch.setattr(ort, "create_and_register_allocator",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("allocator already registered")))
    got = StanceClassifier.load(m, backend="onnx-cascade").predict_proba(texts)
    assert backends._SHARED_ARENA is False
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize("backend", ["torch-int8", "onnx-int8", "onnx-cascade"])
def test_int8_backends_stay_close_to_fp32(exported, texts, backend):
    m, _ = exported
    ref = StanceClassifier.load(m, backend="torch").predict_proba(texts)
    got = StanceClassifier.load(m, backend=backend).predict_proba(texts)
    # Quantization moves probabilities a little; labels flip only near ties.
    assert np.abs(ref - got).mean() < 0.05
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize("backend", ["onnx-int8", "onnx-cascade"])
def test_a_sentence_scores_the_same_alone_and_in_any_batch_under_int8(exported, texts, backend):
    import onnx

    m, report = exported
    clf = StanceClassifier.load(m, backend=backend)
    batched = clf.predict_proba(texts, batch_size=64)
    # Each sentence alone (no padding, no neighbours), and the list reversed into other batches.
    alone = np.vstack([clf.predict_proba([t], batch_size=1) for t in texts])
    reordered = clf.predict_proba(texts[::-1], batch_size=16)[::-1]
    # One int8 scale per batch moved these by about 5e-3 on this model; per token, only float rounding is left.
    assert np.abs(alone - batched).max() < 1e-5 and np.abs(reordered - batched).max() < 1e-5
    graph = onnx.load(str(m / "onnx" / "model.int8.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops
    assert report["int8_activations"] == "per-token"


def test_an_int8_export_warns_about_nothing(trained_model, tiny_data, tmp_path, capsys, caplog):
    m = tmp_path / "model"
    shutil.copytree(trained_model, m)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(m, onnx=True, int8=True, data=tiny_data["test"])
    assert "warning:" not in capsys.readouterr().err
    assert [r.getMessage()[:60] for r in caplog.records if r.levelno >= logging.WARNING] == []  # ONNX Runtime's
    # The tracer's, the ONNX exporter's and torch.ao's notes are about their internals: nothing a user can act on.
    assert [f"{w.category.__name__} {w.filename}:{w.lineno} {str(w.message)[:60]}" for w in caught] == []


def test_an_int8_export_without_per_token_scales_warns_that_scores_depend_on_the_batch(exported, tmp_path, capsys):
    m = tmp_path / "old"
    shutil.copytree(exported[0], m)
    report = json.loads((m / "onnx" / "backends.json").read_text())
    del report["int8_activations"]  # as `stance export` wrote it before per-token scales
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    StanceClassifier.load(m, backend="onnx-cascade")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "depend on the sentences batched with it" in err and "--overwrite" in err
    StanceClassifier.load(exported[0], backend="onnx-cascade")
    assert capsys.readouterr().err == ""


def test_cascade_reruns_unsure_sentences_in_fp32(exported, texts):
    m, _ = exported
    ref = StanceClassifier.load(m, backend="onnx").predict_proba(texts)
    fast = StanceClassifier.load(m, backend="onnx-int8")
    int8 = fast.predict_proba(texts)
    fast.temperature = 1.0  # the cascade judges margins on raw probabilities
    raw = fast.predict_proba(texts)
    clf = StanceClassifier.load(m, backend="onnx-cascade")
    clf.backend.margin = 1.01  # every sentence is unsure: all fp32
    assert np.abs(clf.predict_proba(texts) - ref).max() < 1e-5
    clf.backend.margin = 0.0  # none is: all int8
    assert np.abs(clf.predict_proba(texts) - int8).max() < 1e-6
    top2 = np.sort(raw, axis=1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    clf.backend.margin = float(np.median(margins))  # about half the sentences re-run
    mixed = clf.predict_proba(texts)
    unsure = margins < clf.backend.margin
    assert 0 < unsure.sum() < len(texts)
    assert np.allclose(mixed[unsure], ref[unsure], atol=1e-5) and np.allclose(mixed[~unsure], int8[~unsure], atol=1e-6)


def test_auto_picks_fastest_faithful_backend(tmp_path, trained_model):
    m = tmp_path / "m"
    shutil.copytree(trained_model, m)
    assert choose_auto(m) == "torch"  # nothing measured: stay on fp32
    (m / "onnx").mkdir()
    for f in ("model.onnx", "model.int8.onnx"):
        (m / "onnx" / f).write_bytes(b"")
    report = {"backends": {
        "torch": {"agreement": 1.0, "sentences_per_second": 100},
        "torch-int8": {"agreement": 0.95, "sentences_per_second": 300},
        "onnx": {"agreement": 0.999, "sentences_per_second": 150},
        "onnx-int8": {"agreement": 0.98, "sentences_per_second": 400},
    }}
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    assert choose_auto(m) == "onnx"
    report["backends"]["onnx-int8"]["agreement"] = 0.995
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    assert choose_auto(m) == "onnx-int8"
    (m / "onnx" / "model.int8.onnx").unlink()  # a measured backend whose file is gone is not chosen
    assert choose_auto(m) == "onnx"
    # torch int8 scores a sentence differently in different batches: never chosen, however fast and faithful.
    report["backends"]["torch-int8"] = {"agreement": 1.0, "sentences_per_second": 10_000}
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    assert choose_auto(m) == "onnx"


def test_auto_wants_the_agreement_bar_met_on_every_held_out_set(tmp_path, trained_model):
    m = tmp_path / "m"
    shutil.copytree(trained_model, m)
    (m / "onnx").mkdir()
    for f in ("model.onnx", "model.int8.onnx"):
        (m / "onnx" / f).write_bytes(b"")
    report = {"backends": {
        "torch": {"agreement": 1.0, "sentences_per_second": 100, "agreement_other": {"other.jsonl": 1.0}},
        "onnx": {"agreement": 1.0, "sentences_per_second": 150, "agreement_other": {"other.jsonl": 1.0}},
        "onnx-int8": {"agreement": 0.995, "sentences_per_second": 400, "agreement_other": {"other.jsonl": 0.983}},
    }}
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    assert choose_auto(m) == "onnx"  # int8 clears the bar on test, not on the other domain
    report["backends"]["onnx-int8"]["agreement_other"]["other.jsonl"] = 0.991
    (m / "onnx" / "backends.json").write_text(json.dumps(report))
    assert choose_auto(m) == "onnx-int8"


def test_export_measures_agreement_on_the_extra_test_sets_the_model_was_trained_with(trained_model, tmp_path):
    import yaml

    m = tmp_path / "model"
    shutil.copytree(trained_model, m)
    other = tmp_path / "test_other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in make_rows(30, 5)))
    cfg = yaml.safe_load((m / "stance_config.yaml").read_text())
    cfg["data"]["extra_test"] = [str(other), str(tmp_path / "gone.jsonl")]  # a file not here is skipped
    (m / "stance_config.yaml").write_text(yaml.safe_dump(cfg))
    report = export(m, onnx=True, int8=True)
    for name, measured in report["backends"].items():
        assert list(measured["agreement_other"]) == [str(other)], name
        assert 0 <= measured["agreement_other"][str(other)] <= 1
    assert report["backends"]["torch"]["agreement_other"][str(other)] == 1.0
    assert "agreement also on " + str(other) in format_report(report)


def test_missing_onnx_backend_is_a_clear_error(trained_model):
    with pytest.raises(StanceError, match="model.onnx: not found; run `stance export"):
        StanceClassifier.load(trained_model, backend="onnx")
    with pytest.raises(StanceError, match="--backend: must be one of"):
        StanceClassifier.load(trained_model, backend="tensorrt")


def test_train_exports_measures_every_held_out_set_and_records_default_backend(tmp_path, tiny_backbone, tiny_data):
    from stance.config import config_from_dict
    from stance.train import train
    from tests.conftest import tiny_config_dict

    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "m")
    d["model"]["export_onnx"] = True
    d["train"]["epochs"] = 1
    other = shutil.copy(tiny_data["dev"], tmp_path / "other_domain.jsonl")
    d["data"]["extra_test"] = [str(other)]  # another held-out set: auto must see its agreement there too
    metrics = train(config_from_dict(d), quiet=True)
    assert (tmp_path / "m" / "onnx" / "model.onnx").is_file()
    assert metrics["default_backend"] in metrics["backends"]
    for name, measured in metrics["backends"].items():
        assert list(measured["agreement_other"]) == [str(other)], name
    assert f"and on {other}" in (tmp_path / "m" / "README.md").read_text()  # the model card names the set
    assert "## Inference backends" in (tmp_path / "m" / "README.md").read_text()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    # The ONNX files were exported from the weights train saved, and say so.
    sha = hashlib.sha256((tmp_path / "m" / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((tmp_path / "m" / "onnx" / "backends.json").read_text())["weights_sha256"] == sha
