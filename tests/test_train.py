import json

import pytest
import yaml

from stance.config import config_from_dict, load_config
from stance.errors import StanceError
from stance.modeling import StanceClassifier
from stance.train import train
from tests.conftest import LABELS, tiny_config_dict


def test_model_dir_is_complete_and_pipeline_returns_label_names(trained_model):
    names = {p.name for p in trained_model.iterdir()}
    for required in ("model.safetensors", "config.json", "tokenizer.json", "stance_config.yaml", "README.md",
                     "eval_results.json", "test_results.json", "all_results.json", "eval_confusion_matrix.png"):
        assert required in names
    assert not any(n.endswith(".bin") for n in names)
    config = json.loads((trained_model / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(4)] == LABELS

    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(trained_model))
    texts = ["The minister accused the union on Monday.", "Police praised the mayor on Monday."]
    out = pipe(texts)
    assert all(o["label"] in LABELS for o in out)
    # Our classifier and the stock pipeline agree on the same directory.
    clf = StanceClassifier.load(trained_model)
    assert clf.predict(texts) == [o["label"] for o in out]


def test_tiny_model_learns_the_synthetic_task(trained_model):
    metrics = json.loads((trained_model / "test_results.json").read_text())
    # Chance macro-F1 is ~0.25; the verbs make the task separable.
    assert metrics["macro_f1"] > 0.5
    assert set(metrics["per_class"]) == set(LABELS)


def test_same_seed_same_metrics(tmp_path, tiny_backbone, tiny_data):
    runs = []
    for i in range(2):
        d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / f"m{i}")
        d["train"]["epochs"] = 2
        runs.append(train(config_from_dict(d), quiet=True))
    assert runs[0]["dev"]["macro_f1"] == runs[1]["dev"]["macro_f1"]
    assert runs[0]["test"]["confusion_matrix"] == runs[1]["test"]["confusion_matrix"]
    w0 = (tmp_path / "m0" / "model.safetensors").read_bytes()
    assert w0 == (tmp_path / "m1" / "model.safetensors").read_bytes()


def test_three_way_model_from_config(tmp_path, tiny_backbone, tiny_data):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "m3")
    d["labels"] = ["accuse", "deny", "support", "none"][::-1]
    d["train"]["epochs"] = 1
    train(config_from_dict(d), quiet=True)
    assert StanceClassifier.load(tmp_path / "m3").labels == ["none", "support", "deny", "accuse"]


def test_quiet_train_silences_libraries_only_while_it_runs(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    import datasets
    from transformers.utils import logging as hf_log

    import stance.train as train_mod

    seen = {}
    real_load = train_mod.load_backbone

    def spy(*args, **kwargs):
        seen.update(ds=datasets.is_progress_bar_enabled(), hf=hf_log.is_progress_bar_enabled(),
                    verbosity=hf_log.get_verbosity())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(train_mod, "load_backbone", spy)
    before = (datasets.is_progress_bar_enabled(), hf_log.get_verbosity(), hf_log.is_progress_bar_enabled())
    datasets.enable_progress_bars()
    hf_log.set_verbosity_warning()
    hf_log.enable_progress_bar()
    try:
        d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "m")
        d["train"]["epochs"] = 1
        train(config_from_dict(d), quiet=True)
        assert seen == {"ds": False, "hf": False, "verbosity": hf_log.ERROR}
        assert datasets.is_progress_bar_enabled() and hf_log.is_progress_bar_enabled()
        assert hf_log.get_verbosity() == hf_log.WARNING
    finally:
        if not before[0]:
            datasets.disable_progress_bars()
        hf_log.set_verbosity(before[1])
        if not before[2]:
            hf_log.disable_progress_bar()


def test_failed_training_keeps_previous_model(tmp_path, tiny_backbone, tiny_data, trained_model):
    import shutil

    out = tmp_path / "model"
    shutil.copytree(trained_model, out)
    before = (out / "model.safetensors").read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "none"}\n{"text": "x", "label": "blame"}\n')
    d = tiny_config_dict(tiny_backbone, {**tiny_data, "test": bad}, out)
    with pytest.raises(StanceError, match="bad.jsonl:2: unknown label 'blame'"):
        train(config_from_dict(d), quiet=True, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "model"]


def test_resume_continues_from_checkpoint(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    """Kill training after epoch 1 (checkpoint written), then --resume finishes it."""
    from transformers import TrainerCallback

    import stance.train as train_mod

    class Boom(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt

    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    d["train"]["epochs"] = 2
    cfg = config_from_dict(d)
    real = train_mod.make_trainer_class

    def with_boom():
        cls = real()

        class Interrupted(cls):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                self.add_callback(Boom())

        return Interrupted

    monkeypatch.setattr(train_mod, "make_trainer_class", with_boom)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, quiet=True)
    assert not (tmp_path / "model").exists()
    assert any(p.name.startswith("checkpoint-") for p in (tmp_path / "model.checkpoints").iterdir())
    monkeypatch.setattr(train_mod, "make_trainer_class", real)
    metrics = train(cfg, resume=True, quiet=True)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    history = json.loads((tmp_path / "model" / "train_results.json").read_text())["log_history"]
    assert max(h.get("epoch", 0) for h in history) == 2
    assert "dev" in metrics
    assert not (tmp_path / "model.checkpoints").exists()


def test_resume_without_checkpoint_is_an_error(tiny_config):
    with pytest.raises(StanceError, match="no complete checkpoint to resume from"):
        train(load_config(tiny_config), resume=True, quiet=True)


def test_saved_config_is_the_resolved_one(tmp_path, tiny_config):
    cfg = load_config(tiny_config, ["train.epochs=1", "train.class_weighting=none"])
    train(cfg, quiet=True)
    saved = yaml.safe_load((tmp_path / "model" / "stance_config.yaml").read_text())
    assert saved["train"]["epochs"] == 1.0 and saved["train"]["class_weighting"] == "none"


def test_length_grouped_batches_hold_similar_lengths(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    import transformers

    seen: list[int] = []
    real = transformers.DataCollatorWithPadding.__call__

    def spy(self, features):
        seen.append(max(len(f["input_ids"]) for f in features) - min(len(f["input_ids"]) for f in features))
        return real(self, features)

    monkeypatch.setattr(transformers.DataCollatorWithPadding, "__call__", spy)
    for sampling in ("random", "group_by_length"):
        d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / sampling)
        d["train"].update(epochs=1, sampling=sampling)
        d["data"]["dev"] = d["data"]["test"] = None
        train(config_from_dict(d), quiet=True)
    random_spread, grouped_spread = seen[: len(seen) // 2], seen[len(seen) // 2:]
    # Padding waste is the length spread inside a batch.
    assert sum(grouped_spread) < sum(random_spread) / 2


def test_freeze_layers_keeps_bottom_weights_and_trains_the_rest(tmp_path, tiny_backbone, tiny_data):
    from safetensors.torch import load_file

    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "frozen")
    d["model"]["freeze_layers"] = 1
    d["train"]["epochs"] = 1
    train(config_from_dict(d), quiet=True)
    before = load_file(tiny_backbone / "model.safetensors")
    after = load_file(tmp_path / "frozen" / "model.safetensors")

    def same(suffix: str) -> bool:
        a = next(v for k, v in after.items() if k.endswith(suffix))
        b = next(v for k, v in before.items() if k.endswith(suffix))
        return bool((a == b).all())

    # Embeddings and layer 0 are the backbone's bytes; layer 1 moved.
    assert same("embeddings.word_embeddings.weight")
    assert same("encoder.layer.0.attention.self.query.weight")
    assert same("encoder.layer.0.output.dense.weight")
    assert not same("encoder.layer.1.attention.self.query.weight")


def test_freeze_more_layers_than_the_backbone_has_is_a_config_error(tmp_path, tiny_backbone, tiny_data):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "m")
    d["model"]["freeze_layers"] = 3  # the tiny backbone has 2
    with pytest.raises(StanceError, match="model.freeze_layers: 3 is more than the backbone's 2 layers"):
        train(config_from_dict(d), quiet=True)
    assert not (tmp_path / "m").exists()


def test_average_last_keeps_the_mean_of_the_last_checkpoints(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    import shutil

    from safetensors.torch import load_file

    # Keep the checkpoints that training would delete, to compare against them.
    monkeypatch.setattr("stance.train.shutil.rmtree", lambda *a, **k: None)
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "avg")
    d["train"].update(epochs=3, average_last=2)
    metrics = train(config_from_dict(d), quiet=True)
    ckpts = sorted((tmp_path / "avg.checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    assert len(ckpts) == 3  # every epoch kept, none stopped early
    assert metrics["averaged_checkpoints"] == [p.name for p in ckpts[-2:]]
    a, b = (load_file(p / "model.safetensors") for p in ckpts[-2:])
    saved = load_file(tmp_path / "avg" / "model.safetensors")
    key = "bert.encoder.layer.1.output.dense.weight"
    assert not (a[key] == b[key]).all()  # the two epochs differ, so the mean is a new point
    assert (saved[key] - (a[key] + b[key]) / 2).abs().max() < 1e-6
    assert "weights averaged over" in (tmp_path / "avg" / "README.md").read_text()
    shutil.rmtree(tmp_path / "avg.checkpoints")


def test_bf16_trains_under_autocast_and_saves_fp32_weights(tmp_path, tiny_backbone, tiny_data):
    from safetensors.torch import load_file

    runs = {}
    for precision in ("fp32", "bf16"):
        d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / precision)
        d["train"].update(epochs=1, precision=precision)
        runs[precision] = train(config_from_dict(d), quiet=True)
        assert runs[precision]["precision"] == precision
        assert {v.dtype for v in load_file(tmp_path / precision / "model.safetensors").values()
                if v.is_floating_point()} == {__import__("torch").float32}
    loss = {p: next(h["loss"] for h in json.loads((tmp_path / p / "train_results.json").read_text())["log_history"]
                    if "loss" in h) for p in runs}
    # Same seed and batches: only bfloat16 rounding in the matmuls can move the loss.
    assert loss["fp32"] != loss["bf16"]
    assert abs(loss["fp32"] - loss["bf16"]) < 0.05 * loss["fp32"]
    assert "precision bf16" in (tmp_path / "bf16" / "README.md").read_text()


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_takes_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    import torch

    from stance import trainer as train_mod

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_mod, "cpu_has_native_bf16", lambda: native)
    assert train_mod.resolve_precision("auto") == expected
    # An explicit choice is kept either way.
    assert train_mod.resolve_precision("fp32") == "fp32"
    assert train_mod.resolve_precision("bf16") == "bf16"


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 1.5]])
def test_label_smoothing_puts_eps_on_every_label(tmp_path, weights):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    import stance.train as train_mod

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     num_labels=4)).eval()
    with torch.no_grad():  # a random head scores all labels alike; smoothing must show
        model.classifier.bias.copy_(torch.tensor([2.0, -1.0, 0.5, -2.0]))
    ids, gold = torch.randint(0, 50, (6, 5)), torch.tensor([0, 1, 2, 3, 0, 1])
    eps = 0.2
    trainer = train_mod.make_trainer_class()(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                            label_smoothing_factor=eps),
        class_weights=weights)
    with torch.no_grad():
        loss = trainer.compute_loss(model, {"input_ids": ids, "labels": gold})
        nll = -model(input_ids=ids).logits.log_softmax(-1)
    # The target is (1 - eps) on the gold label plus eps / 4 on each label; class weights
    # scale each label's term and the mean is over the gold labels' weights.
    w = torch.tensor(weights) if weights else torch.ones(4)
    target = (1 - eps) * torch.nn.functional.one_hot(gold, 4) + eps / 4
    expected = (target * w * nll).sum() / w[gold].sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = (w[gold] * nll[torch.arange(6), gold]).sum() / w[gold].sum()
    assert abs(loss.item() - plain.item()) > 1e-3  # smoothing changed the loss


def test_layer_lr_groups_decay_from_head_to_embeddings():
    from transformers import BertConfig, BertForSequenceClassification

    from stance.trainer import layer_lr_groups

    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=4))
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    decay_names = {n for n, _ in model.named_parameters() if "LayerNorm" not in n and not n.endswith("bias")}
    groups = layer_lr_groups(model, 1e-3, 0.5, 0.01, decay_names)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    # Every trainable parameter once; the frozen one not at all.
    assert sum(len(g["params"]) for g in groups) == len(lr_of) == len(params) - 1
    assert id(params["bert.embeddings.word_embeddings.weight"]) not in lr_of
    lr = lambda name: lr_of[id(params[name])][0]  # noqa: E731
    assert lr("classifier.weight") == lr("bert.pooler.dense.weight") == 1e-3
    for i in range(3):  # top layer (2) at 1e-3 * 0.5, the bottom one (0) at 1e-3 * 0.5**3
        assert lr(f"bert.encoder.layer.{i}.attention.self.query.weight") == pytest.approx(1e-3 * 0.5 ** (3 - i))
    assert lr("bert.embeddings.position_embeddings.weight") == pytest.approx(1e-3 * 0.5 ** 4)
    assert lr_of[id(params["bert.encoder.layer.1.output.dense.weight"])][1] == 0.01
    assert lr_of[id(params["bert.encoder.layer.1.output.dense.bias"])][1] == 0.0


def test_layer_lr_groups_refuses_a_model_without_numbered_layers():
    import torch

    from stance.trainer import layer_lr_groups

    class Flat(torch.nn.Module):
        config = type("C", (), {"num_hidden_layers": 2})()

        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(4, 4)

    with pytest.raises(StanceError, match="train.layer_lr_decay: no numbered layers found in Flat"):
        layer_lr_groups(Flat(), 1e-3, 0.5, 0.0, set())


def test_train_hands_smoothing_and_layer_decay_to_the_trainer(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    """The config keys reach the Trainer that actually runs, not just the dataclass."""
    import stance.train as train_mod

    seen = []
    make = train_mod.make_trainer_class

    def recording():
        cls = make()

        class Recording(cls):
            def train(self, *args, **kwargs):
                seen.append(self)
                return super().train(*args, **kwargs)

        return Recording

    monkeypatch.setattr(train_mod, "make_trainer_class", recording)
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "m")
    d["train"].update(epochs=1, label_smoothing=0.15, layer_lr_decay=0.5)
    train(config_from_dict(d), quiet=True)
    (trainer,) = seen
    assert trainer.args.label_smoothing_factor == 0.15
    # The tiny backbone has 2 layers: head, layers 1 and 0, embeddings.
    peak = sorted({g["initial_lr"] for g in trainer.optimizer.param_groups}, reverse=True)
    assert peak == pytest.approx([3e-3, 1.5e-3, 7.5e-4, 3.75e-4])


def test_extra_test_sets_are_reported_beside_test_and_never_chosen_on(tmp_path, tiny_backbone, tiny_data):
    from stance.testing import make_rows, write_jsonl
    from stance.train import summarize

    other = write_jsonl(tmp_path / "test_other.jsonl", make_rows(24, 9))
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    d["data"]["extra_test"] = [str(other)]
    d["train"]["epochs"] = 1
    metrics = train(config_from_dict(d), quiet=True)
    assert metrics["test_other"]["n"] == 24 and metrics["extra_test"] == ["test_other"]
    assert "test_other macro-F1" in summarize(metrics)
    saved = json.loads((tmp_path / "model" / "test_other_results.json").read_text())
    assert saved["macro_f1"] == metrics["test_other"]["macro_f1"]
    assert "**test_other**: macro-F1" in (tmp_path / "model" / "README.md").read_text()


def test_an_extra_test_file_named_like_a_split_is_refused(tiny_backbone, tiny_data, tmp_path):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    d["data"]["extra_test"] = [str(tiny_data["test"])]
    with pytest.raises(StanceError, match="data.extra_test: file name 'test' is taken"):
        config_from_dict(d)
