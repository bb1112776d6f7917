"""A model directory is untrusted input: hand-edited or corrupt files give one line, never a traceback.

Every case damages a copy of a real exported tiny model and goes through the CLI or
``StanceClassifier.load``, on both loaders: torch via transformers, and the light ONNX path.
"""

import hashlib
import json
import shutil

import pytest

from stance.backends import ONNX_FILES
from stance.errors import StanceError
from stance.export import export
from stance.modeling import StanceClassifier
from tests.test_cli import assert_one_line_error, run

SENTENCES = "The minister denied the claims. Police praised the mayor. Critics blamed him."


@pytest.fixture(scope="module")
def exported(trained_model, tiny_data, tmp_path_factory):
    m = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(trained_model, m)
    export(m, onnx=True, int8=True, data=tiny_data["test"])
    return m


@pytest.fixture
def model(exported, tmp_path):
    """A private copy of the exported model, free to damage."""
    m = tmp_path / "m"
    shutil.copytree(exported, m)
    return m


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def prefer(m, backend):
    """Make `auto` pick ``backend`` whatever the timings on this machine were."""
    report = json.loads((m / "onnx" / "backends.json").read_text())
    report["backends"][backend]["sentences_per_second"] = 1e9
    (m / "onnx" / "backends.json").write_text(json.dumps(report))


def predict(m, backend):
    return run("predict", m, "-", "--quiet", "--backend", backend, input=SENTENCES)


def assert_auto_warns_and_uses_torch(m, *fragments):
    r = predict(m, "auto")
    assert r.exit_code == 0, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), r.stderr
    assert "Traceback" not in r.output
    for f in fragments:
        assert f in lines[0], lines[0]
    assert r.stdout == predict(m, "torch").stdout
    return lines[0]


# -- item 14: what config.json and stance_config.yaml claim -------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_id2label_keys_that_skip_a_number_are_refused_by_both_loaders(model, backend):
    edit_json(model / "config.json", id2label={"0": "accuse", "1": "deny", "3": "support", "4": "none"})
    assert_one_line_error(predict(model, backend),
                          "m/config.json: id2label: keys must be 0..3, got ['0', '1', '3', '4']")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_more_labels_than_the_classifier_has_outputs_are_refused_by_both_loaders(model, backend):
    names = ["accuse", "deny", "support", "none", "praise"]
    edit_json(model / "config.json", id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    (model / "stance_config.yaml").unlink()  # a plain Hugging Face directory: only the weights disagree
    assert_one_line_error(predict(model, backend), "config.json: id2label: 5 labels", "model.safetensors", "4 outputs")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_labels_that_differ_from_stance_config_yaml_are_refused(model, backend):
    edit_json(model / "config.json", id2label={"0": "deny", "1": "accuse", "2": "support", "3": "none"})
    assert_one_line_error(predict(model, backend), "stance_config.yaml: labels", "config.json id2label")
    (model / "stance_config.yaml").unlink()  # a plain Hugging Face directory has nothing to disagree with
    assert predict(model, backend).exit_code == 0


@pytest.mark.parametrize("key, value", [
    ("stance_temperature", 0), ("stance_temperature", -1.5), ("stance_temperature", float("nan")),
    ("stance_temperature", "warm"), ("stance_temperature", float("inf")),
    ("stance_min_score", 1.5), ("stance_min_score", -0.1), ("stance_min_score", float("nan")),
    ("stance_min_score", None),
])
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_temperature_and_min_score_outside_their_range_are_refused(model, backend, key, value):
    edit_json(model / "config.json", **{key: value})
    assert_one_line_error(predict(model, backend), f"m/config.json: {key}: must be")


def _widen_onnx_classifier(path, static):
    """Give model.onnx a fifth logits column, its width fixed in the graph or known only at run time."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    if static:
        for init in graph.initializer:
            if init.name in ("model.classifier.weight", "model.classifier.bias"):
                arr = numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array(np.concatenate([arr, arr[:1]]), init.name))
        graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5
    else:
        # logits = concat(logits, logits[:, :batch/batch]): ONNX Runtime cannot infer that width.
        next(n for n in graph.node if "logits" in n.output).output[0] = "four"
        graph.initializer.extend([numpy_helper.from_array(np.array([v], dtype=np.int64), name)
                                  for v, name in ((0, "zero"), (1, "axis1"))])
        graph.node.extend([
            helper.make_node("Shape", ["attention_mask"], ["shape"]),
            helper.make_node("Slice", ["shape", "zero", "axis1"], ["batch"]),
            helper.make_node("Div", ["batch", "batch"], ["one"]),
            helper.make_node("Slice", ["four", "zero", "one", "axis1"], ["extra"]),
            helper.make_node("Concat", ["four", "extra"], ["logits"], axis=1),
        ])
        graph.output[0].type.tensor_type.shape.dim[1].dim_param = "labels"
    onnx.save(model, str(path))


@pytest.mark.parametrize("static", [True, False])
def test_an_onnx_model_with_more_outputs_than_labels_is_refused(model, static):
    _widen_onnx_classifier(model / "onnx" / "model.onnx", static)
    assert_one_line_error(predict(model, "onnx"), "onnx/model.onnx: logits has 5 columns", "id2label has 4 labels")


# -- item 15: corrupt files and ONNX files from other weights --------------------------------------


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe\x00", b"[]", b'{"backends": {"onnx": {"agreement": 1.0}}}',
    b'{"backends": {"onnx": {"agreement": 1.0, "sentences_per_second": "fast"}}}',
    b'{"backends": {}, "cascade_margin": "wide"}',
    b'{"backends": {"onnx": {"agreement": 1.0, "sentences_per_second": 9, "agreement_other": [0.5]}}}',
    b'{"backends": {"onnx": {"agreement": 1.0, "sentences_per_second": 9, "agreement_other": {"t.jsonl": "x"}}}}',
])
def test_a_corrupt_backends_json_makes_auto_warn_and_a_named_onnx_backend_fail(model, content):
    (model / "onnx" / "backends.json").write_bytes(content)
    assert_auto_warns_and_uses_torch(model, "onnx/backends.json")
    assert_one_line_error(predict(model, "onnx-cascade"), "onnx/backends.json")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_onnx_file_makes_auto_warn_and_a_named_backend_fail(model, damage):
    prefer(model, "onnx-int8")
    f = model / "onnx" / "model.int8.onnx"
    data = f.read_bytes()
    f.write_bytes({"garbage": b"\x08\x07not a model at all", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    assert_auto_warns_and_uses_torch(model, "model.int8.onnx", "stance export")
    assert_one_line_error(predict(model, "onnx-int8"), "onnx/model.int8.onnx", "stance export")
    assert_one_line_error(predict(model, "onnx-cascade"), "onnx/model.int8.onnx")


@pytest.mark.parametrize("content", ["{not json", '{"version": "1.0"}', "\x00\x01"])
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_corrupt_tokenizer_json_is_one_line_error_in_both_loaders(model, backend, content):
    (model / "tokenizer.json").write_text(content)
    assert_one_line_error(predict(model, backend), "m/tokenizer.json")


def _retrain_a_little(m):
    """New weights under the old ONNX export: nudge the classifier bias."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(m / "model.safetensors"))
    tensors["classifier.bias"] = tensors["classifier.bias"] + 0.5
    save_file(tensors, str(m / "model.safetensors"), metadata={"format": "pt"})


def test_onnx_files_exported_from_other_weights_are_refused(model):
    prefer(model, "onnx")
    assert predict(model, "auto").stderr == ""
    _retrain_a_little(model)
    assert_auto_warns_and_uses_torch(model, "weights_sha256", "model.safetensors")
    assert_one_line_error(predict(model, "onnx"), "weights_sha256", "stance export")
    assert_one_line_error(predict(model, "onnx-cascade"), "weights_sha256")


def test_an_export_that_recorded_no_weights_sha_makes_auto_use_torch(model):
    prefer(model, "onnx")
    report = json.loads((model / "onnx" / "backends.json").read_text())
    report.pop("weights_sha256", None)
    (model / "onnx" / "backends.json").write_text(json.dumps(report))
    assert_auto_warns_and_uses_torch(model, "stance export")
    assert predict(model, "onnx").exit_code == 0  # asked for by name, an older export still serves


def test_export_records_the_weights_sha_and_calibrate_keeps_it_valid(model, capsys):
    report = json.loads((model / "onnx" / "backends.json").read_text())
    assert report["weights_sha256"] == hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    prefer(model, "onnx")
    r = run("calibrate", model)
    assert r.exit_code == 0, r.output
    capsys.readouterr()
    clf = StanceClassifier.load(model, backend="auto")
    assert clf.backend.name == "onnx" and capsys.readouterr().err == ""


def test_the_python_api_falls_back_and_refuses_the_same_way(model, capsys):
    prefer(model, "onnx")
    (model / "onnx" / "model.onnx").write_bytes(b"\x08\x07")
    capsys.readouterr()
    assert StanceClassifier.load(model, backend="auto").backend.name == "torch"
    assert capsys.readouterr().err.startswith("warning: ")
    for name in ONNX_FILES:
        if name != "onnx-int8":
            with pytest.raises(StanceError, match="model.onnx"):
                StanceClassifier.load(model, backend=name)
