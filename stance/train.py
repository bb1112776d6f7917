"""Fine-tuning: ``train(cfg) -> metrics``, a pure function the CLI calls.

Read top to bottom: seed, data, model, Trainer, save.  The Hugging Face
``Trainer`` supplies checkpoints, resume, early stopping, seeding and
multi-GPU/multi-node (torchrun / accelerate launch); we subclass it only to
weight the loss by class.

The model directory appears whole or not at all: it is built under a temporary
name and renamed at the end.  Checkpoints live beside it in
``<output_dir>.checkpoints/`` so an interrupted run can ``--resume``.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from stance import checkpoints
from stance.calibration import calibrate, choose_min_score
from stance.config import Config, save_config
from stance.data import LabeledData, read_labeled
from stance.errors import StanceError
from stance.evaluate import evaluate_data
from stance.io import (
    atomic_dir,
    check_output_dir,
    clean_stale_siblings,
    fault_point,
    output_lock,
    write_json,
    write_text,
)
from stance.metrics import compute_metrics, plot_confusion
from stance.modeling import StanceClassifier, encoder_layers, freeze_bottom, load_backbone, transformers_bars_off


def _class_weights(labels: list[str], train: LabeledData) -> list[float]:
    """Inverse-frequency weights, as scikit-learn's class_weight='balanced'."""
    counts = Counter(train.labels)
    n, k = len(train), len(labels)
    return [n / (k * counts[lab]) if counts[lab] else 0.0 for lab in labels]


def subsample(data: LabeledData, fraction: float, seed: int) -> LabeledData:
    """A stratified fraction of the rows (for learning curves), fixed by seed."""
    if fraction >= 1.0:
        return data
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    keep, _ = train_test_split(idx, train_size=fraction, random_state=seed, stratify=data.labels)
    keep = np.sort(keep)
    return LabeledData(data.path, [data.texts[i] for i in keep], [data.labels[i] for i in keep])


def layer_lr_groups(model: Any, learning_rate: float, decay: float, weight_decay: float,
                    decay_names: set[str] | list[str]) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise learning-rate decay.

    Depth counts from the top: the head (pooler, classifier: whatever is neither in a
    layer of ``encoder_layers`` nor in the embeddings) trains at ``learning_rate``,
    layer ``i`` of ``n`` at ``learning_rate * decay ** (n - i)``, embeddings at
    ``decay ** (n + 1)``.  As in the Trainer's own grouping, only ``decay_names`` get
    weight decay and frozen parameters are left out.
    """
    stack = encoder_layers(model)
    if stack is None:
        raise StanceError(f"train.layer_lr_decay: no numbered layers found in {type(model).__name__}; "
                          "set it to 1 for this backbone")
    n = len(stack)
    power_of = {id(p): n - i for i, layer in enumerate(stack) for p in layer.parameters()}
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    if embeddings is not None:
        power_of.update({id(p): n + 1 for p in embeddings.parameters()})
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        power, wd = power_of.get(id(param), 0), name in decay_names
        group = groups.setdefault((power, wd), {"params": [], "lr": learning_rate * decay ** power,
                                                "weight_decay": weight_decay if wd else 0.0})
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def _make_trainer_class():
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        """Trainer with a class-weighted cross-entropy (weights None = the Trainer's own loss)
        and, optionally, layer-wise learning-rate decay.

        Label smoothing is the Trainer's ``args.label_smoothing_factor``; the weighted
        loss applies it too, so both paths smooth alike.
        """

        def __init__(self, *args: Any, class_weights: list[float] | None = None,
                     layer_lr_decay: float = 1.0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.class_weights = class_weights
            self.layer_lr_decay = layer_lr_decay

        def create_optimizer(self, model=None):
            if self.layer_lr_decay == 1.0 or self.optimizer is not None:
                return super().create_optimizer(model)
            opt_model = self.model if model is None else model
            groups = layer_lr_groups(opt_model, self.args.learning_rate, self.layer_lr_decay,
                                     self.args.weight_decay, set(self.get_decay_parameter_names(opt_model)))
            # The schedulers scale each group's own lr, so the decay holds through warm-up and decay.
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
            return self.optimizer

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            # Weights written, optimizer and trainer state not yet: the checkpoint is incomplete here.
            fault_point(f"checkpoint-save-{self.state.global_step}")

        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            fault_point(f"step-{self.state.global_step + 1}")
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.class_weights is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch

            labels = inputs.pop("labels")
            outputs = model(**inputs)
            weight = torch.tensor(self.class_weights, dtype=outputs.logits.dtype, device=outputs.logits.device)
            loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weight,
                                                     label_smoothing=self.args.label_smoothing_factor)
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


def _cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (x86 avx512_bf16 or AMX).

    Elsewhere torch emulates bf16 matmuls, which is slower than fp32, so ``auto``
    must not pick it.  Only Linux exposes the flags; other systems read as False.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """``train.precision`` as the run will use it: ``fp32`` or ``bf16`` (``auto`` resolved)."""
    import torch

    gpu = torch.cuda.is_available()
    native = torch.cuda.is_bf16_supported() if gpu else _cpu_has_native_bf16()
    if precision == "auto":
        return "bf16" if native else "fp32"
    # A CPU without native bf16 still runs it (emulated, slowly); an older GPU cannot.
    if precision == "bf16" and gpu and not native:
        raise StanceError("train.precision: bf16: this GPU has no bfloat16 support; use fp32 or auto")
    return precision


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("stance", "torch", "transformers", "tokenizers", "datasets", "accelerate", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def held_out_names(cfg: Config) -> list[str]:
    """dev, test and the extra test sets by file stem, in the order they are reported."""
    return ["dev", "test", *(Path(p).stem for p in cfg.data.extra_test)]


def _model_card(cfg: Config, counts: dict[str, dict[str, int]], metrics: dict[str, Any]) -> str:
    labels = cfg.labels
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags: [stance, news, accuse, deny, support]",
        "---",
        "",
        "# Stance classifier (accuse / deny / support / none)",
        "",
        "Trained with [stance](https://github.com/) on news sentences. Labels: "
        + ", ".join(f"`{lab}`" for lab in labels) + ".",
        "",
        "```python",
        "from transformers import pipeline",
        'clf = pipeline("text-classification", model="PATH/TO/THIS/DIR")',
        'clf("The ministry denied the report.")',
        "```",
        "",
        "## Data",
        "",
        "| split | file | " + " | ".join(labels) + " | total |",
        "|---|---|" + "---|" * (len(labels) + 1),
    ]
    files = {"train": cfg.data.train, "dev": cfg.data.dev, "test": cfg.data.test,
             **{Path(p).stem: p for p in cfg.data.extra_test}}
    for split, c in counts.items():
        name = files[split] if isinstance(files[split], str) else "` + `".join(files[split])
        lines.append(f"| {split} | `{name}` | " + " | ".join(str(c.get(lab, 0)) for lab in labels)
                     + f" | {sum(c.values())} |")
    lines += ["", "## Metrics", ""]
    for split in held_out_names(cfg):
        m = metrics.get(split)
        if not m:
            continue
        lines.append(f"**{split}**: macro-F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f} (n={m['n']})")
        lines.append("")
        lines.append("| label | precision | recall | F1 | support |")
        lines.append("|---|---|---|---|---|")
        for lab, pc in m["per_class"].items():
            lines.append(f"| {lab} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
        lines.append("")
    if metrics.get("backends"):
        lines += ["## Inference backends", "",
                  f"Measured on the test split; `stance predict` uses **{metrics['default_backend']}** by default "
                  "(the fastest whose labels agree with torch fp32 on >= 99% of sentences).", "",
                  "| backend | agreement with fp32 | sentences/s |", "|---|---|---|"]
        for name, m in metrics["backends"].items():
            lines.append(f"| {name} | {m['agreement']:.2%} | {m['sentences_per_second']:.0f} |")
        lines.append("")
    t = cfg.train
    averaged = metrics.get("averaged_checkpoints")
    kept = (f"weights averaged over {', '.join(averaged)}" if averaged
            else f"best epoch by dev macro-F1: {metrics.get('best_epoch')}")
    lines += [
        "## Training",
        "",
        f"- backbone: `{cfg.model.name_or_path}`, max_length {cfg.model.max_length}, "
        f"freeze_embeddings {cfg.model.freeze_embeddings}, freeze_layers {cfg.model.freeze_layers}",
        f"- epochs {t.epochs} ({kept}), batch size {t.batch_size}, "
        f"learning rate {t.learning_rate} (layer-wise decay {t.layer_lr_decay}), warmup {t.warmup_ratio}, "
        f"weight decay {t.weight_decay}",
        f"- class weighting: {t.class_weighting}; label smoothing {t.label_smoothing}; seed {t.seed}; "
        f"precision {metrics.get('precision', 'fp32')} (saved weights are fp32); "
        f"train time {metrics.get('train_seconds', 0):.0f} s",
        f"- softmax temperature (fitted on dev): {metrics.get('calibration', {}).get('temperature', 1.0)}",
        f"- stance predictions scoring under {metrics.get('min_score', {}).get('min_score', 0.0)} become `none` "
        "(chosen on dev; 0 = plain argmax; `transformers.pipeline` does not apply it)",
        "- full resolved config: `stance_config.yaml`",
        "",
        "## Library versions",
        "",
        *[f"- {k} {v}" for k, v in _versions().items()],
        "",
    ]
    return "\n".join(lines)


def average_checkpoints(model: Any, ckpt_dir: Path, n: int) -> list[str]:
    """Load into ``model`` the mean weights of the last ``n`` checkpoints in ``ckpt_dir``; return their names."""
    import torch
    from safetensors.torch import load_file

    ckpts = checkpoints.complete_checkpoints(ckpt_dir)[-n:]
    if len(ckpts) < n:
        raise StanceError(f"train.average_last: {n} checkpoints asked for, training saved {len(ckpts)}")
    total: dict[str, torch.Tensor] = {}
    for ckpt in ckpts:
        for key, value in load_file(ckpt / "model.safetensors").items():
            # Integer buffers (position ids) are equal in every checkpoint: keep one.
            if value.is_floating_point():
                total[key] = total[key] + value.double() if key in total else value.double()
            else:
                total.setdefault(key, value)
    state = {k: (v / len(ckpts)).float() if v.is_floating_point() else v for k, v in total.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    trainable = {k for k, _ in model.named_parameters()}
    if unexpected or trainable & set(missing):
        raise StanceError(f"train.average_last: checkpoints do not match the model ({(unexpected or missing)[:3]})")
    return [p.name for p in ckpts]


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence datasets' and transformers' progress bars and warnings, then restore them.

    The switches are process-wide, so a quiet ``train()`` in a notebook must not
    leave every later call silent.
    """
    import datasets
    from transformers.utils import logging as hf_log

    ds_bars, verbosity = datasets.is_progress_bar_enabled(), hf_log.get_verbosity()
    datasets.disable_progress_bars()
    hf_log.set_verbosity_error()
    try:
        with transformers_bars_off():
            yield
    finally:
        if ds_bars:
            datasets.enable_progress_bars()
        hf_log.set_verbosity(verbosity)


def train(
    cfg: Config,
    output_dir: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune a backbone on ``cfg.data`` and save a model directory; return the metrics.

    ``quiet`` turns off progress bars and library warnings for the run only.  An
    existing model directory at the output is replaced only with ``overwrite``
    (anything else there never is), and one run at a time may write it.
    """
    out = Path(output_dir or cfg.output_dir)
    check_output_dir(out, ("model",), overwrite, "--output-dir")
    with output_lock(out), quiet_libraries() if quiet else nullcontext():
        clean_stale_siblings(out)
        return _train(cfg, out, resume, quiet)


def _train(cfg: Config, out: Path, resume: bool, quiet: bool) -> dict[str, Any]:
    import datasets
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, TrainingArguments, set_seed

    # Seed before anything random is created (the classifier head's init included).
    set_seed(cfg.train.seed)
    ckpt_dir = checkpoints.checkpoint_dir(out)
    labels = cfg.labels

    # -- data -------------------------------------------------------------------
    read = lambda p: read_labeled(p, labels, cfg.data.text_column, cfg.data.label_column)  # noqa: E731
    train_data = subsample(read(cfg.data.train), cfg.train.train_fraction, cfg.train.seed)
    dev_data = read(cfg.data.dev) if cfg.data.dev else None
    test_data = read(cfg.data.test) if cfg.data.test else None
    # Other held-out domains (e.g. data/test_polnear.jsonl): reported beside test, never used for a choice.
    extra = {Path(p).stem: read(p) for p in cfg.data.extra_test}
    if len(set(train_data.labels)) < 2:
        raise StanceError(f"{cfg.data.train}: training data has fewer than two distinct labels")
    # Once the data is known good, before the weights load, so a refused --resume fails fast.
    resume_from = checkpoints.prepare(ckpt_dir, cfg, resume)

    # -- model ------------------------------------------------------------------
    model, tokenizer = load_backbone(cfg.model.name_or_path, labels)
    freeze_bottom(model, cfg.model.freeze_layers, embeddings=cfg.model.freeze_embeddings)

    label2id = {lab: i for i, lab in enumerate(labels)}

    def _tokenize(texts: list[str]) -> dict[str, list]:
        enc = tokenizer(texts, truncation=True, max_length=cfg.model.max_length)
        # Stored so the length-grouped sampler need not re-measure every row.
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    def to_dataset(data: LabeledData, name: str):
        ds = datasets.Dataset.from_dict({"text": data.texts, "label": [label2id[x] for x in data.labels]})
        return ds.map(
            lambda b: _tokenize(b["text"]),
            batched=True, batch_size=1000, remove_columns=["text"], desc=f"Tokenizing {name}",
        )

    train_ds = to_dataset(train_data, "train")
    dev_ds = to_dataset(dev_data, "dev") if dev_data else None

    def trainer_metrics(pred) -> dict[str, float]:
        preds = [labels[i] for i in np.asarray(pred.predictions).argmax(-1)]
        golds = [labels[i] for i in pred.label_ids]
        m = compute_metrics(golds, preds, labels)
        return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}

    has_dev = dev_ds is not None
    precision = resolve_precision(cfg.train.precision)
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.train.batch_size,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        learning_rate=cfg.train.learning_rate,
        num_train_epochs=cfg.train.epochs,
        warmup_steps=cfg.train.warmup_ratio,  # < 1 means a fraction of all steps
        weight_decay=cfg.train.weight_decay,
        label_smoothing_factor=cfg.train.label_smoothing,
        train_sampling_strategy=cfg.train.sampling,
        lr_scheduler_type=cfg.train.lr_scheduler,
        eval_strategy="epoch" if has_dev else "no",
        save_strategy="epoch",
        # Averaging needs every epoch's checkpoint; otherwise keep the best and the latest.
        save_total_limit=None if cfg.train.average_last else 2,
        load_best_model_at_end=has_dev and not cfg.train.average_last,
        metric_for_best_model="macro_f1" if has_dev else None,
        greater_is_better=True,
        logging_strategy="epoch",
        seed=cfg.train.seed,
        data_seed=cfg.train.seed,
        report_to="none",
        disable_tqdm=quiet,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=precision == "bf16",
        # transformers refuses bf16 without a GPU unless told the CPU is meant.
        use_cpu=precision == "bf16" and not torch.cuda.is_available(),
    )
    callbacks = []
    # Averaging keeps the last epochs whatever dev says of each one, so it trains them all.
    if has_dev and cfg.train.early_stopping_patience > 0 and not cfg.train.average_last:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
    weights = _class_weights(labels, train_data) if cfg.train.class_weighting == "balanced" else None
    trainer = _make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=trainer_metrics,
        callbacks=callbacks,
        class_weights=weights,
        layer_lr_decay=cfg.train.layer_lr_decay,
    )

    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - t0

    # -- evaluate the kept (best) model on held-out data --------------------------
    metrics: dict[str, Any] = {"train_seconds": train_seconds, "train_rows": len(train_data), "precision": precision,
                               "extra_test": list(extra)}
    if not trainer.is_world_process_zero():
        return metrics  # under torchrun, only rank 0 evaluates and writes
    clf = StanceClassifier(trainer.model, tokenizer, max_length=cfg.model.max_length)
    best_epoch = None
    if has_dev and trainer.state.best_model_checkpoint:
        # Checkpoint names carry the global step; map it back to an epoch.
        step = int(Path(trainer.state.best_model_checkpoint).name.split("-")[-1])
        best_epoch = next((h["epoch"] for h in trainer.state.log_history
                           if h.get("step") == step and "eval_macro_f1" in h), None)
    metrics["best_epoch"] = best_epoch
    if cfg.train.average_last:
        metrics["averaged_checkpoints"] = average_checkpoints(trainer.model, ckpt_dir, cfg.train.average_last)
    if cfg.train.calibrate and dev_data is not None:
        # Temperature scaling on dev, so `score` reads as a probability (labels unchanged).
        metrics["calibration"] = calibrate(clf, dev_data, cfg.train.eval_batch_size)
    if cfg.train.fit_min_score and dev_data is not None:
        # After calibration: the threshold is then a probability, and dev (not test) chooses it.
        metrics["min_score"] = choose_min_score(clf, dev_data, cfg.train.eval_batch_size)
    reports: dict[str, tuple[dict, list]] = {}
    for split, data in (("dev", dev_data), ("test", test_data), *extra.items()):
        if data is not None:
            reports[split] = evaluate_data(clf, data, cfg.train.eval_batch_size, quiet)
            metrics[split] = reports[split][0]

    # -- save: whole directory or nothing -----------------------------------------
    counts = {"train": train_data.counts()}
    if dev_data:
        counts["dev"] = dev_data.counts()
    if test_data:
        counts["test"] = test_data.counts()
    counts.update({stem: data.counts() for stem, data in extra.items()})
    with atomic_dir(out) as tmp:
        clf.save_pretrained(tmp)
        save_config(cfg, tmp / "stance_config.yaml")
        write_json(tmp / "train_results.json", {"train_seconds": train_seconds, "train_rows": len(train_data),
                                                "best_epoch": best_epoch,
                                                "log_history": trainer.state.log_history})
        for split, (m, errors) in reports.items():
            name = "eval" if split == "dev" else split
            write_json(tmp / f"{name}_results.json", m)
            plot_confusion(m, tmp / f"{name}_confusion_matrix.png", title=f"{split}: macro-F1 {m['macro_f1']:.3f}")
            write_text(tmp / f"{name}_errors.jsonl", "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors))
        if cfg.model.export_onnx:
            from stance.export import export

            # Agreement is measured on the test split, which no training choice has seen.
            report = export(tmp, onnx=True, int8=True, data=cfg.data.test)
            metrics["backends"], metrics["default_backend"] = report["backends"], report["auto"]
        write_json(tmp / "all_results.json", metrics)
        write_text(tmp / "README.md", _model_card(cfg, counts, metrics))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    metrics["output_dir"] = str(out)
    return metrics


def summarize(metrics: dict[str, Any]) -> str:
    parts = [f"saved {metrics['output_dir']}", f"train {metrics['train_seconds']:.0f}s"]
    for split in ("dev", "test", *metrics.get("extra_test", [])):
        if split in metrics:
            parts.append(f"{split} macro-F1 {metrics[split]['macro_f1']:.3f}")
    if "default_backend" in metrics:
        parts.append(f"predict backend: {metrics['default_backend']}")
    return "; ".join(parts)
