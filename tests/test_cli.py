"""The CLI contract: commands run end to end, and bad input is one line, non-zero, no traceback."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from stance.cli import app

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in err, err


def test_train_evaluate_predict_end_to_end(tiny_config, tiny_data, tmp_path):
    r = run("train", tiny_config, "--quiet", "--set", "train.epochs=2", "--output-dir", tmp_path / "m")
    assert r.exit_code == 0, r.output
    assert "dev macro-F1" in r.stdout and (tmp_path / "m" / "model.safetensors").is_file()

    r = run("evaluate", tmp_path / "m", tiny_data["dev"], tiny_data["test"], "--out", tmp_path / "ev")
    assert r.exit_code == 0, r.output
    assert "macro-F1" in r.stdout and (tmp_path / "ev" / "summary.json").is_file()

    art = tmp_path / "a.txt"
    art.write_text("Labour backed the plan. The minister denied it.")
    r = run("predict", tmp_path / "m", art, "--out", tmp_path / "p.csv", "--quiet")
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 3

    r = run("predict", tmp_path / "m", "-", "--quiet", input="Police praised the mayor. Critics blamed him.")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["doc_id"] for x in rows] == ["-", "-"] and rows[1]["start"] == len("Police praised the mayor. ")


def test_python_api(trained_model):
    from stance import StanceClassifier

    labels = StanceClassifier.load(trained_model).predict(["Police praised the mayor.", "They met."])
    assert len(labels) == 2 and set(labels) <= {"accuse", "deny", "support", "none"}


def test_missing_config(tmp_path):
    assert_one_line_error(run("train", tmp_path / "nope.yaml"), "nope.yaml: config file not found")


def test_broken_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: 3\n")
    assert_one_line_error(run("train", p), "c.yaml: not valid YAML")


def test_unknown_key_and_wrong_type(tiny_config):
    assert_one_line_error(run("train", tiny_config, "--set", "train.epoks=3"), "unknown config key 'train.epoks'")
    assert_one_line_error(run("train", tiny_config, "--set", "train.batch_size=big"),
                          "tiny.yaml: train.batch_size: expected an integer")


def test_unknown_label_in_data(tiny_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "none"}\n{"text": "x", "label": "praise"}\n')
    assert_one_line_error(run("train", tiny_config, "--set", f"data.train={bad}"),
                          "bad.jsonl:2: unknown label 'praise'")


def test_broken_json_in_data(tiny_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "none"}\n{"text": "x" "label": "none"}\n')
    assert_one_line_error(run("train", tiny_config, "--set", f"data.dev={bad}"), "bad.jsonl:2: broken JSON")


def test_missing_article_file(trained_model, tmp_path):
    assert_one_line_error(run("predict", trained_model, tmp_path / "gone.txt"), "gone.txt: article file not found")


def test_folder_that_is_not_a_model(tmp_path, tiny_data):
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "config.json").write_text("{}")
    assert_one_line_error(run("evaluate", tmp_path / "notamodel", tiny_data["test"]),
                          "notamodel: no model.safetensors")
    assert_one_line_error(run("predict", tmp_path / "nowhere", tiny_data["test"]), "model directory not found")


def test_pickle_weights_are_refused(trained_model, tmp_path):
    import shutil

    m = tmp_path / "m"
    shutil.copytree(trained_model, m)
    (m / "model.safetensors").rename(m / "pytorch_model.bin")
    assert_one_line_error(run("predict", m, "-"), "only safetensors")


def test_failed_predict_keeps_existing_output(trained_model, tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("keep me\n")
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"id": 1, "text": "Hi there."}\nnot json\n')
    assert_one_line_error(run("predict", trained_model, bad, "--out", out, "--quiet"), "in.jsonl:2: broken JSON")
    assert out.read_text() == "keep me\n"


def test_bad_option_values(trained_model, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text("Hello there.")
    assert_one_line_error(run("predict", trained_model, art, "--format", "xml"), "--format")
    assert_one_line_error(run("predict", trained_model, art, "--min-score", "2"), "--min-score")


def test_unknown_label_in_eval_data(trained_model, tmp_path):
    bad = tmp_path / "e.csv"
    bad.write_text("text,label\nfine,none\nx,blame\n")
    assert_one_line_error(run("evaluate", trained_model, bad, "--out", tmp_path / "ev"), "e.csv:3: unknown label")
    assert not (tmp_path / "ev").exists()


@pytest.mark.slow
def test_real_backbone_loads_offline_and_trains_one_step(tmp_path, tiny_data):
    """The default alias resolves to the packaged MiniLM weights with no network."""
    cfg = yaml.safe_load(open("configs/base.yaml"))
    cfg["data"] = {k: str(v) for k, v in tiny_data.items()}
    cfg["train"].update(epochs=1, batch_size=32, seed=1)
    cfg["output_dir"] = str(tmp_path / "m")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # As shipped, with the span head: a few rows with holder/target spans train it too.
    from stance.testing import make_span_rows, write_jsonl

    train = write_jsonl(tmp_path / "train.jsonl", make_span_rows(40, 7))
    r = run("train", tmp_path / "c.yaml", "--quiet", "--set", f"data.train={train}")
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384
    assert config["id2label"] == {"0": "accuse", "1": "deny", "2": "support", "3": "none"}
    assert (tmp_path / "m" / "span_head.safetensors").is_file()


def test_export_then_predict_with_each_backend(trained_model, tiny_data, tmp_path):
    import shutil

    m = tmp_path / "m"
    shutil.copytree(trained_model, m)
    r = run("export", m, "--onnx", "--int8", "--data", tiny_data["test"])
    assert r.exit_code == 0, r.output
    assert "--backend auto ->" in r.stdout and "onnx-int8" in r.stdout
    art = tmp_path / "a.txt"
    art.write_text("Labour backed the plan. The minister denied it. Police blamed the mayor.")
    labels = {}
    for backend in ("torch", "onnx", "auto"):
        r = run("predict", m, art, "--backend", backend, "--quiet")
        assert r.exit_code == 0, r.output
        labels[backend] = [json.loads(x)["label"] for x in r.stdout.splitlines()]
    assert labels["torch"] == labels["onnx"] == labels["auto"]
    assert_one_line_error(run("export", m), "nothing to do; pass --onnx")


def test_help_shows_the_defaults_written_in_brackets():
    # Rich reads "[...]" as markup and would silently drop these unless escaped.
    r = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "300"})  # wide: no wrapped help lines
    text = " ".join(r.output.split())
    assert "[default: stdout]" in text and "[default: the model's, chosen on dev" in text
