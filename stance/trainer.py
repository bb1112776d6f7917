"""The Hugging Face Trainer as `stance train` uses it: class-weighted loss, layer-wise
learning rates, precision, arguments, and checkpoint averaging.

The Trainer supplies checkpoints, resume, early stopping, seeding and
multi-GPU/multi-node (torchrun / accelerate launch); the subclass here changes
only the loss and the optimizer groups.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stance import checkpoints
from stance.config import Config
from stance.data import LabeledData
from stance.errors import StanceError
from stance.io import fault_point, world_size
from stance.metrics import compute_metrics
from stance.modeling import encoder_layers


def class_weights(labels: list[str], train: LabeledData) -> list[float]:
    """Inverse-frequency weights, as scikit-learn's class_weight='balanced'."""
    counts = Counter(train.labels)
    n, k = len(train), len(labels)
    return [n / (k * counts[lab]) if counts[lab] else 0.0 for lab in labels]


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


def sentence_loss(logits: Any, labels: Any, class_weights: list[float] | None, smoothing: float,
                  teacher: Any = None, distill: tuple[float, float] | None = None) -> Any:
    """Cross-entropy on the rows with a gold label (class-weighted, smoothed), and with a teacher
    ``alpha * CE + (1 - alpha) * T^2 * KL`` (``stance.distill``); rows of a distillation pool have label -100."""
    import torch

    from stance.distill import distill_loss

    weight = None
    if class_weights is not None:
        weight = torch.tensor(class_weights, dtype=logits.dtype, device=logits.device)
    gold = labels != -100
    ce = torch.nn.functional.cross_entropy(logits[gold], labels[gold], weight=weight, label_smoothing=smoothing) \
        if bool(gold.any()) else logits.sum() * 0.0
    if teacher is None or distill is None:
        return ce
    alpha, temperature = distill
    return alpha * ce + (1 - alpha) * distill_loss(logits, teacher, temperature)


def make_trainer_class():
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        """Trainer with a class-weighted cross-entropy (weights None = the Trainer's own loss)
        and, optionally, layer-wise learning-rate decay.

        Label smoothing is the Trainer's ``args.label_smoothing_factor``; the weighted
        loss applies it too, so both paths smooth alike.
        """

        def __init__(self, *args: Any, class_weights: list[float] | None = None,
                     layer_lr_decay: float = 1.0, span_loss_weight: float = 1.0,
                     distill: tuple[float, float] | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.class_weights = class_weights
            self.distill = distill  # (alpha, temperature): stance.distill
            self.layer_lr_decay = layer_lr_decay
            self.span_loss_weight = span_loss_weight

        def _set_signature_columns_if_needed(self):
            # The teacher column is no argument of the model's forward; keep it for compute_loss.
            super()._set_signature_columns_if_needed()
            if self.distill is not None and "teacher" not in self._signature_columns:
                self._signature_columns.append("teacher")

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
            teacher = inputs.pop("teacher", None)  # only in distillation's training batches
            if "span_tags" in inputs:
                return self._loss_with_spans(model, inputs, return_outputs, teacher)
            if self.class_weights is None and teacher is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = self._sentence_loss(outputs.logits, labels, teacher)
            return (loss, outputs) if return_outputs else loss

        def _sentence_loss(self, logits, labels, teacher=None):
            return sentence_loss(logits, labels, self.class_weights, self.args.label_smoothing_factor,
                                 teacher, self.distill)

        def _loss_with_spans(self, model, inputs, return_outputs, teacher=None):
            """Sentence loss plus the weighted span-tagging loss, from one pass of a ``SpanTagger``."""
            from stance.span_head import span_loss

            labels, tags = inputs.pop("labels"), inputs.pop("span_tags")
            logits, span_logits = model(**inputs)
            loss = self._sentence_loss(logits, labels, teacher) + self.span_loss_weight * span_loss(span_logits, tags)
            # Only the sentence logits go on to the per-epoch metrics (dev macro-F1 picks the epoch).
            return (loss, {"logits": logits}) if return_outputs else loss

    return WeightedTrainer


def cpu_has_native_bf16() -> bool:
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
    native = torch.cuda.is_bf16_supported() if gpu else cpu_has_native_bf16()
    if precision == "auto":
        return "bf16" if native else "fp32"
    # A CPU without native bf16 still runs it (emulated, slowly); an older GPU cannot.
    if precision == "bf16" and gpu and not native:
        raise StanceError("train.precision: bf16: this GPU has no bfloat16 support; use fp32 or auto")
    return precision


def training_arguments(cfg: Config, ckpt_dir: Path, precision: str, has_dev: bool, quiet: bool) -> Any:
    """The TrainingArguments of a run: epochs evaluated and checkpointed, best epoch kept by dev macro-F1."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
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
        # transformers refuses bf16 without a GPU unless told the CPU is meant; and only then does it set up
        # gloo DDP for CPU processes under torchrun (accelerate's MULTI_CPU): without it every process would
        # train alone on all the data, and each would write the model.
        use_cpu=not torch.cuda.is_available() and (precision == "bf16" or world_size() > 1),
    )


def epoch_metrics(labels: list[str]):
    """The Trainer's per-epoch dev metrics (macro-F1 picks the best epoch)."""

    def metrics(pred) -> dict[str, float]:
        preds = [labels[i] for i in np.asarray(pred.predictions).argmax(-1)]
        golds = [labels[i] for i in pred.label_ids]
        m = compute_metrics(golds, preds, labels)
        return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}

    return metrics


def best_epoch(trainer: Any) -> float | None:
    """The epoch of the checkpoint the Trainer kept as best (checkpoint names carry the global step)."""
    if not trainer.state.best_model_checkpoint:
        return None
    step = int(Path(trainer.state.best_model_checkpoint).name.split("-")[-1])
    return next((h["epoch"] for h in trainer.state.log_history if h.get("step") == step and "eval_macro_f1" in h),
                None)


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
