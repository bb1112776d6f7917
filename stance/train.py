"""Fine-tuning: ``train(cfg) -> metrics``, a pure function the CLI calls.

It reads as the steps it runs, each a function below:
``load_splits`` -> ``build_trainer`` -> ``fit`` -> ``post_fit`` (best epoch or
checkpoint averaging, temperature, threshold, held-out evaluation) ->
``write_model_dir``.  The Trainer and its arguments live in ``stance.trainer``;
the model card is rendered from a template by ``stance.model_card``.

The model directory appears whole or not at all: it is built under a temporary
name and renamed at the end.  Checkpoints live beside it in
``<output_dir>.checkpoints/`` so an interrupted run can ``--resume``
(``stance.checkpoints`` makes sure it resumes only the same run).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stance import checkpoints, model_card
from stance.calibration import calibrate, choose_min_score
from stance.config import Config, save_config
from stance.data import LabeledData, read_labeled
from stance.distill import DistillRows, distill_rows
from stance.errors import StanceError
from stance.evaluate import evaluate_data
from stance.io import atomic_dir, check_output_dir, is_rank_zero, output_lock, write_json, write_text
from stance.metrics import plot_confusion
from stance.modeling import StanceClassifier, freeze_bottom, load_backbone, transformers_bars_off
from stance.trainer import (
    average_checkpoints,
    best_epoch,
    class_weights,
    epoch_metrics,
    make_trainer_class,
    resolve_precision,
    training_arguments,
)


def subsample(data: LabeledData, fraction: float, seed: int) -> LabeledData:
    """A stratified fraction of the rows (for learning curves), fixed by seed."""
    if fraction >= 1.0:
        return data
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    keep, _ = train_test_split(idx, train_size=fraction, random_state=seed, stratify=data.labels)
    return data.select(np.sort(keep).tolist())


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


@dataclass
class Splits:
    """The labeled data of one run: train, dev, test and any extra held-out test sets."""

    train: LabeledData
    dev: LabeledData | None
    test: LabeledData | None
    extra: dict[str, LabeledData]
    # With train.distill.teacher: each training row's teacher distribution, and the rows without gold.
    distill: DistillRows | None = None

    def held_out(self) -> list[tuple[str, LabeledData]]:
        """(name, data) of every held-out set in report order: dev, test, then the extra ones."""
        named = [("dev", self.dev), ("test", self.test), *self.extra.items()]
        return [(name, data) for name, data in named if data is not None]

    def counts(self) -> dict[str, dict[str, int]]:
        return {"train": self.train.counts(), **{name: data.counts() for name, data in self.held_out()}}


def load_splits(cfg: Config) -> Splits:
    """Read and check every data file of the config (a bad row stops the run before any training)."""
    def read(path: Any) -> LabeledData:
        return read_labeled(path, cfg.labels, cfg.data.text_column, cfg.data.label_column)

    train_data = subsample(read(cfg.data.train), cfg.train.train_fraction, cfg.train.seed)
    if len(set(train_data.labels)) < 2:
        raise StanceError(f"{cfg.data.train}: training data has fewer than two distinct labels")
    if cfg.model.spans and not train_data.has_spans:
        raise StanceError(f"{cfg.data.train}: model.spans is true, but no training row has holder/target spans "
                          "(add them, data/GUIDELINES.md, or set model.spans: false)")
    splits = Splits(train_data, read(cfg.data.dev) if cfg.data.dev else None,
                    read(cfg.data.test) if cfg.data.test else None,
                    # Other held-out domains (e.g. data/test_polnear.jsonl): reported, never used for a choice.
                    {Path(p).stem: read(p) for p in cfg.data.extra_test})
    distill = cfg.train.distill
    if distill.teacher:
        splits.distill = distill_rows(distill.teacher, cfg.labels, train_data, splits.held_out(), distill.unlabeled)
    return splits


def _dataset(tokenizer: Any, data: LabeledData, labels: list[str], max_length: int, name: str,
             spans: bool = False, teacher: list[list[float]] | None = None) -> Any:
    """Tokenized rows; with ``spans``, also each token's BIO tag of the row's gold holder/target;
    with ``teacher``, each row's teacher distribution (``stance.distill``)."""
    label2id = {lab: i for i, lab in enumerate(labels)}
    return _tokenized(tokenizer, data.texts, [label2id[x] for x in data.labels], data.spans, max_length, name,
                      spans, teacher)


def _tokenized(tokenizer: Any, texts: list[str], label_ids: list[int], gold_spans: list[dict | None] | None,
               max_length: int, name: str, spans: bool, teacher: list[list[float]] | None) -> Any:
    import datasets

    from stance.spans import bio_tags

    if spans and not getattr(tokenizer, "is_fast", False):
        raise StanceError("model.spans: needs a fast tokenizer (tokenizer.json), to align spans with tokens")

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length, return_offsets_mapping=spans)
        # Stored so the length-grouped sampler need not re-measure every row.
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        if spans:
            gold = gold_spans or [None] * len(texts)
            offsets = enc.pop("offset_mapping")
            enc["span_tags"] = [bio_tags(offs, gold[i]) for i, offs in zip(batch["row"], offsets)]
        return enc

    columns = {"text": texts, "label": label_ids, "row": list(range(len(texts)))}
    if teacher is not None:
        columns["teacher"] = teacher
    ds = datasets.Dataset.from_dict(columns)
    return ds.map(tokenize, batched=True, batch_size=1000, remove_columns=["text", "row"], desc=f"Tokenizing {name}")


def _distill_dataset(tokenizer: Any, cfg: Config, splits: Splits) -> Any:
    """The training rows with their teacher distributions, then the teacher's rows without gold (label -100)."""
    import datasets

    k, rows = len(cfg.labels), splits.distill
    labeled = _dataset(tokenizer, splits.train, cfg.labels, cfg.model.max_length, "train", cfg.model.spans,
                       rows.train_column(k))
    if not rows.unlabeled_texts:
        return labeled
    pool = _tokenized(tokenizer, rows.unlabeled_texts, [-100] * len(rows.unlabeled_texts), None,
                      cfg.model.max_length, "teacher rows", cfg.model.spans, rows.unlabeled_targets)
    return datasets.concatenate_datasets([labeled, pool])


def build_trainer(cfg: Config, splits: Splits, ckpt_dir: Path, quiet: bool) -> Any:
    """A fresh head on the backbone, the tokenized data, and the Trainer that fits them."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

    # Seed before anything random is created (the classifier head's init included).
    set_seed(cfg.train.seed)
    model, tokenizer = load_backbone(cfg.model.name_or_path, cfg.labels)
    freeze_bottom(model, cfg.model.freeze_layers, embeddings=cfg.model.freeze_embeddings)
    collator = DataCollatorWithPadding(tokenizer)
    if cfg.model.spans:
        from stance.span_head import PadSpanTags, SpanTagger

        model, collator = SpanTagger(model), PadSpanTags(collator)
    has_dev = splits.dev is not None

    def dataset(data: LabeledData, name: str) -> Any:
        return _dataset(tokenizer, data, cfg.labels, cfg.model.max_length, name, cfg.model.spans)

    train_ds = dataset(splits.train, "train") if splits.distill is None else _distill_dataset(tokenizer, cfg, splits)

    callbacks = []
    # Averaging keeps the last epochs whatever dev says of each one, so it trains them all.
    if has_dev and cfg.train.early_stopping_patience > 0 and not cfg.train.average_last:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
    trainer = make_trainer_class()(
        model=model,
        args=training_arguments(cfg, ckpt_dir, resolve_precision(cfg.train.precision), has_dev, quiet),
        train_dataset=train_ds,
        eval_dataset=dataset(splits.dev, "dev") if has_dev else None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=epoch_metrics(cfg.labels),
        callbacks=callbacks,
        class_weights=class_weights(cfg.labels, splits.train) if cfg.train.class_weighting == "balanced" else None,
        layer_lr_decay=cfg.train.layer_lr_decay,
        span_loss_weight=cfg.train.span_loss_weight,
        distill=(cfg.train.distill.alpha, cfg.train.distill.temperature) if splits.distill else None,
    )
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    return trainer


def fit(trainer: Any, resume_from: str | None, cfg: Config, splits: Splits) -> dict[str, Any]:
    """Train (from a checkpoint, when resuming); the metrics dict starts here."""
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    metrics = {"train_seconds": time.perf_counter() - t0, "train_rows": len(splits.train),
               "precision": "bf16" if trainer.args.bf16 else "fp32", "extra_test": list(splits.extra)}
    if splits.distill is not None:
        metrics["distill"] = {"teacher": str(cfg.train.distill.teacher), "train_rows_with_teacher":
                              splits.distill.covered, "unlabeled_rows": len(splits.distill.unlabeled_texts)}
    return metrics


def post_fit(cfg: Config, trainer: Any, splits: Splits, ckpt_dir: Path, metrics: dict[str, Any],
             quiet: bool) -> tuple[StanceClassifier, dict[str, tuple[dict, list]]]:
    """Keep the best epoch (or the checkpoint average), fit temperature and threshold on dev,
    then evaluate every held-out set.  Returns the classifier and the reports by split."""
    model, head = (trainer.model.model, trainer.model.span_head) if cfg.model.spans else (trainer.model, None)
    clf = StanceClassifier(model, trainer.processing_class, max_length=cfg.model.max_length, span_head=head)
    metrics["best_epoch"] = best_epoch(trainer) if splits.dev is not None else None
    if cfg.train.average_last:
        metrics["averaged_checkpoints"] = average_checkpoints(trainer.model, ckpt_dir, cfg.train.average_last)
    if cfg.train.calibrate and splits.dev is not None:
        # Temperature scaling on dev, so `score` reads as a probability (labels unchanged).
        metrics["calibration"] = calibrate(clf, splits.dev, cfg.train.eval_batch_size)
    if cfg.train.fit_min_score and splits.dev is not None:
        # After calibration: the threshold is then a probability, and dev (not test) chooses it.
        metrics["min_score"] = choose_min_score(clf, splits.dev, cfg.train.eval_batch_size)
    reports = {split: evaluate_data(clf, data, cfg.train.eval_batch_size, quiet) for split, data in splits.held_out()}
    metrics.update({split: report[0] for split, report in reports.items()})
    return clf, reports


def write_model_dir(out: Path, cfg: Config, clf: StanceClassifier, trainer: Any, splits: Splits,
                    reports: dict[str, tuple[dict, list]], metrics: dict[str, Any]) -> None:
    """The model directory, whole or not at all: weights, config, results, plots, ONNX, model card."""
    with atomic_dir(out) as tmp:
        clf.save_pretrained(tmp)
        save_config(cfg, tmp / "stance_config.yaml")
        write_json(tmp / "train_results.json", {"train_seconds": metrics["train_seconds"],
                                                "train_rows": len(splits.train), "best_epoch": metrics["best_epoch"],
                                                "log_history": trainer.state.log_history})
        for split, (m, errors) in reports.items():
            name = "eval" if split == "dev" else split
            write_json(tmp / f"{name}_results.json", m)
            plot_confusion(m, tmp / f"{name}_confusion_matrix.png", title=f"{split}: macro-F1 {m['macro_f1']:.3f}")
            write_text(tmp / f"{name}_errors.jsonl", "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors))
        if cfg.model.export_onnx:
            from stance.export import export

            # Agreement is measured on the test split and the extra_test sets (read from the saved
            # config), which no training choice has seen; `auto` wants its bar met on each of them.
            report = export(tmp, onnx=True, int8=True)
            metrics["backends"], metrics["default_backend"] = report["backends"], report["auto"]
        write_json(tmp / "all_results.json", metrics)
        write_text(tmp / "README.md", model_card.render(cfg, splits.counts(), metrics))


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
    # Under torchrun every rank would draw the same bars and warnings; rank 0 speaks for all.
    quiet = quiet or not is_rank_zero()
    with output_lock(out), quiet_libraries() if quiet else nullcontext():
        splits = load_splits(cfg)
        ckpt_dir = checkpoints.checkpoint_dir(out)
        # Once the data is known good, before the weights load, so a refused --resume fails fast.
        resume_from = checkpoints.prepare(ckpt_dir, cfg, resume)
        trainer = build_trainer(cfg, splits, ckpt_dir, quiet)
        metrics = fit(trainer, resume_from, cfg, splits)
        if not trainer.is_world_process_zero():  # under torchrun, only rank 0 evaluates and writes
            return {**metrics, "output_dir": str(out), "rank": trainer.args.process_index}
        clf, reports = post_fit(cfg, trainer, splits, ckpt_dir, metrics, quiet)
        write_model_dir(out, cfg, clf, trainer, splits, reports, metrics)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    metrics["output_dir"] = str(out)
    return metrics


def summarize(metrics: dict[str, Any]) -> str:
    if metrics.get("rank"):
        return f"rank {metrics['rank']}: trained; rank 0 evaluates and saves {metrics['output_dir']}"
    parts = [f"saved {metrics['output_dir']}", f"train {metrics['train_seconds']:.0f}s"]
    for split in ("dev", "test", *metrics.get("extra_test", [])):
        if split in metrics:
            parts.append(f"{split} macro-F1 {metrics[split]['macro_f1']:.3f}")
            spans = metrics[split].get("spans")
            if spans and spans["n_label_correct"]:
                parts.append(f"{split} holder/target token-F1 {spans['holder']['f1_given_label']:.3f}/"
                             f"{spans['target']['f1_given_label']:.3f} (label right)")
    if "default_backend" in metrics:
        parts.append(f"predict backend: {metrics['default_backend']}")
    return "; ".join(parts)
