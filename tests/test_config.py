import os
import subprocess
import sys
from pathlib import Path

import pytest

from stance.config import Config, load_config, save_config
from stance.errors import StanceError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_base_config_loads_and_documents_every_field():
    path = Path(__file__).parents[1] / "configs" / "base.yaml"
    cfg = load_config(path)
    assert cfg.labels == ["accuse", "deny", "support", "none"]
    text = path.read_text()
    import dataclasses

    sections = [("model", cfg.model), ("data", cfg.data), ("train", cfg.train), ("train.distill", cfg.train.distill)]
    for section, values in sections:
        for f in dataclasses.fields(values):
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"{f.name}:")), None)
            assert line is not None and "#" in line, f"{section}.{f.name} is not documented inline in base.yaml"


def test_overrides_are_typed(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  epochs: 2\n"), ["train.learning_rate=3e-5", "labels=[a, b]"])
    assert cfg.train.learning_rate == 3e-5 and cfg.train.epochs == 2.0 and cfg.labels == ["a", "b"]


def test_train_data_may_be_a_list_of_files(tmp_path):
    cfg = load_config(write(tmp_path, "data:\n  train: [data/train.jsonl, mine.csv]\n"))
    assert cfg.data.train == ["data/train.jsonl", "mine.csv"]
    assert load_config(write(tmp_path, ""), ["data.train=[x.jsonl]"]).data.train == ["x.jsonl"]


def test_spans_are_off_unless_the_config_turns_them_on(tmp_path):
    assert load_config(write(tmp_path, "")).model.spans is False
    cfg = load_config(write(tmp_path, "model:\n  spans: true\n"), ["train.span_loss_weight=0.5"])
    assert cfg.model.spans is True and cfg.train.span_loss_weight == 0.5


def test_label_order_comes_from_config(tmp_path):
    cfg = load_config(write(tmp_path, "labels: [support, none, deny]\n"))
    assert cfg.labels == ["support", "none", "deny"]


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("train:\n  epochs: three\n", [], "c.yaml: train.epochs: expected a number, got 'three'"),
        ("trian:\n  epochs: 3\n", [], "c.yaml: unknown config key 'trian'"),
        ("train:\n  epoch: 3\n", [], "c.yaml: unknown config key 'train.epoch'"),
        ("model:\n  max_length: 12.5\n", [], "c.yaml: model.max_length: expected an integer"),
        ("train:\n  class_weighting: heavy\n", [], "c.yaml: train.class_weighting: must be one of none, balanced"),
        ("train:\n  precision: fp16\n", [], "c.yaml: train.precision: must be one of auto, fp32, bf16, got 'fp16'"),
        ("labels: [a, a]\n", [], "c.yaml: labels: duplicate label"),
        ("train: [1, 2]\n", [], "c.yaml: train: expected a mapping"),
        ("train:\n  epochs: [\n", [], "c.yaml: not valid YAML (line"),
        ("- just\n- a list\n", [], "c.yaml: top level must be a mapping"),
        ("", ["train.nope=1"], "c.yaml: unknown config key 'train.nope'"),
        ("", ["train.epochs"], "expected key=value"),
        ("data:\n  train: []\n", [], "c.yaml: data.train: must name at least one file"),
        ("model:\n  freeze_layers: -1\n", [], "c.yaml: model.freeze_layers: must be >= 0, got -1"),
        ("", ["train.label_smoothing=1"], "c.yaml: train.label_smoothing: must be in [0, 1), got 1.0"),
        ("", ["train.layer_lr_decay=0"], "c.yaml: train.layer_lr_decay: must be in (0, 1] (1 = off), got 0.0"),
        ("train:\n  average_last: 1\n", [], "c.yaml: train.average_last: must be 0 (off) or >= 2, got 1"),
        ("data:\n  train: [a.jsonl, 3]\n", [], "c.yaml: data.train: expected a string or a list of strings"),
        ("train:\n  epochs: [\n", [], "c.yaml: not valid YAML (line 3, column 1): expected the node content"),
        ("model:\n  max_length: " + "1" * 5000 + "\n", [], "c.yaml: not valid YAML: Exceeds the limit (4300 digits)"),
        ("model:\n  spans: maybe\n", [], "c.yaml: model.spans: expected true/false, got 'maybe'"),
        ("", ["train.span_loss_weight=0"], "c.yaml: train.span_loss_weight: must be > 0, got 0.0"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, overrides, expected):
    with pytest.raises(StanceError) as e:
        load_config(write(tmp_path, text), overrides)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_config(tmp_path):
    with pytest.raises(StanceError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_is_read_safely(tmp_path):
    with pytest.raises(StanceError, match="not valid YAML"):
        load_config(write(tmp_path, "output_dir: !!python/object/apply:os.system ['echo hi']\n"))


def test_resolved_config_roundtrips(tmp_path):
    cfg = Config()
    cfg.train.epochs = 2.5
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg


def _laughs(levels: int, width: int = 9) -> str:
    """A billion-laughs config: each anchor repeats the one below it `width` times."""
    lines = ["data:", "  train:", f"    - &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"    - &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_config_is_refused_in_one_short_line(tmp_path):
    # 9**6 = 531k strings: small enough that without the refusal this fails on the message
    # length (a ~4 MB message) instead of exhausting memory; a subprocess with a time and
    # memory cap keeps a regression to a larger bomb from taking the machine with it.
    path = write(tmp_path, _laughs(6))
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
            "from stance.config import load_config\n"
            "from stance.errors import StanceError\n"
            "try:\n    load_config(sys.argv[1])\n"
            "except StanceError as e:\n    print(e)\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    message = proc.stdout.strip()
    assert len(message) < 300 and "\n" not in message, message[:300]
    assert message == f"{path}: line 3: YAML aliases/anchors are not allowed in configs"


@pytest.mark.parametrize("text", ["output_dir: &out models/x\n", "train: &t {epochs: 2}\nmodel: *t\n",
                                  "base: &b {epochs: 2}\ntrain:\n  <<: *b\n"])
def test_any_anchor_or_alias_in_a_config_is_refused(tmp_path, text):
    with pytest.raises(StanceError, match=r"c.yaml: line 1: YAML aliases/anchors are not allowed in configs$"):
        load_config(write(tmp_path, text))


def test_an_alias_in_a_set_override_is_refused(tmp_path):
    with pytest.raises(StanceError, match=r"^--set 'data.train': line 1: YAML aliases/anchors are not allowed"):
        load_config(write(tmp_path, ""), ["data.train=[&a x.jsonl, *a]"])


def test_a_set_value_that_is_not_yaml_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(StanceError, match=r"^--set 'train.epochs': not valid YAML \(line 1, column 2\)"):
        load_config(write(tmp_path, ""), ["train.epochs=["])


# The unknown-key message also lists the known keys of the section (~300 characters for train).
@pytest.mark.parametrize("text, overrides, limit", [
    ("train:\n  epochs: " + "x" * 50_000 + "\n", [], 200),
    ("train:\n  class_weighting: " + "x" * 50_000 + "\n", [], 200),
    ("labels: [" + ", ".join(["a"] * 20_000) + "]\n", [], 200),
    ("model: [" + ", ".join(["a"] * 20_000) + "]\n", [], 200),
    ("data:\n  train: [" + ", ".join(["a"] * 20_000) + ", 3]\n", [], 200),
    ("", ["x" * 50_000], 200),
    ("train:\n  ? " + "x" * 50_000 + "\n  : 1\n", [], 500),
])
def test_a_long_rejected_value_is_quoted_cut_short(tmp_path, text, overrides, limit):
    path = write(tmp_path, text)
    with pytest.raises(StanceError) as e:
        load_config(path, overrides)
    message = str(e.value).replace(str(path), "c.yaml")  # the tmp folder's length is not the point
    assert len(message) < limit and "..." in message, message[:600]


def test_a_config_that_extends_another_overrides_only_the_keys_it_gives(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  max_length: 64\n  spans: true\ntrain:\n  epochs: 5\n  seed: 1\n")
    (tmp_path / "exp").mkdir()
    child = tmp_path / "exp" / "small.yaml"
    child.write_text("extends: ../base.yaml\ntrain:\n  epochs: 2\n")
    cfg = load_config(child, ["train.seed=3"])
    assert (cfg.model.max_length, cfg.model.spans, cfg.train.epochs, cfg.train.seed) == (64, True, 2.0, 3)


def test_configs_that_extend_each_other_are_one_error_naming_the_loop(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(StanceError, match=r"b.yaml: extends: a.yaml extends this file again"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: gone.yaml\n")
    with pytest.raises(StanceError, match=r"c.yaml: extends: .*gone.yaml: config file not found"):
        load_config(tmp_path / "c.yaml")


def test_the_shipped_experiment_configs_load():
    root = Path(__file__).parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        load_config(path)
