"""Typed configuration: YAML -> dataclasses, validated, with ``--set`` overrides.

Every field is documented here and inline in ``configs/base.yaml``.  Errors
name the file and the dotted key (``configs/base.yaml: train.epochs: expected
a number, got 'three'``) so users can fix them without reading code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stance.errors import StanceError, short

DEFAULT_LABELS = ["accuse", "deny", "support", "none"]


@dataclass
class ModelConfig:
    # A short alias ("minilm-l6"), a Hugging Face model id, or a local directory.
    name_or_path: str = "minilm-l6"
    # Tokens per sentence; longer sentences are truncated (and counted).
    max_length: int = 128
    # Freeze the word/position embeddings: no gradient or optimizer state for 12M of the
    # 23M weights.  On the shipped data it saves little time and ties on macro-F1 (docs/results.md).
    freeze_embeddings: bool = False
    # Also freeze the first N transformer layers (N >= 1 freezes the embeddings too,
    # since a trainable embedding would keep the backward pass running through every
    # layer): no gradients or optimizer state below layer N, so each step is cheaper.
    freeze_layers: int = 0
    # After training, write ONNX fp32 + int8 backends and measure their agreement
    # with fp32 on the test split, so `stance predict` can use the fastest faithful one.
    export_onnx: bool = True
    # Also learn who takes the stance and at whom it is aimed: a token-tagging head (BIO holder/target)
    # beside the sentence head, on the same encoder pass.  Needs training rows with holder/target
    # spans; `stance predict` then returns them.  Saved apart (span_head.safetensors), so the
    # directory stays a plain text-classification model for transformers.pipeline.
    spans: bool = False


@dataclass
class DataConfig:
    # One file, or a list whose rows are concatenated (e.g. the shipped corpus plus your own).
    train: str | list[str] = "data/train/round1.jsonl"
    dev: str | None = "data/dev.jsonl"
    test: str | None = "data/test.jsonl"
    # More held-out test sets (other outlets, years, topics), each reported beside test under
    # its file stem and never used for a choice; e.g. [data/test_polnear.jsonl].
    extra_test: list[str] = field(default_factory=list)
    text_column: str = "text"
    label_column: str = "label"


@dataclass
class DistillConfig:
    # Knowledge distillation (stance.distill): a JSONL file of teacher probabilities per sentence,
    # {"text", "probs": {label: p}}, written by scripts/distill_data.py; null = off.
    teacher: str | None = None
    # Loss = alpha * CE(gold) + (1 - alpha) * T^2 * KL(teacher_T || student_T); rows without gold get the KL alone.
    alpha: float = 0.5
    # T: both distributions are softened by it, so the student learns the teacher's second choices too.
    temperature: float = 2.0
    # Also train on the teacher file's sentences that have no gold label (the unlabeled pool).
    unlabeled: bool = True


@dataclass
class TrainConfig:
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 1e-4
    epochs: float = 5.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    # "balanced" weights the loss by inverse class frequency; "none" does not.
    class_weighting: str = "balanced"
    # Cross-entropy against (1 - eps) on the gold label and eps spread over all labels.
    # The boundaries are where annotators disagree (kappa 0.80-0.92), so a gold label is
    # not a certainty; smoothing keeps the model from betting everything on a cue word.
    label_smoothing: float = 0.0
    # Layer-wise learning-rate decay: the classifier head trains at learning_rate, the
    # top transformer layer at learning_rate * d, each layer below one more factor d, the
    # embeddings last.  Lower layers hold general language knowledge a few thousand
    # sentences should nudge, not rewrite; 1.0 = one rate for all (off).
    layer_lr_decay: float = 1.0
    # Stop after this many epochs without a better dev macro-F1 (0 = never).
    early_stopping_patience: int = 2
    seed: int = 42
    # Fraction of the training rows to use (learning curves); 1.0 = all.
    train_fraction: float = 1.0
    # Linear LR decay etc. come from transformers; "linear" is its default.
    lr_scheduler: str = "linear"
    # Fit a softmax temperature on dev after training so scores are calibrated.
    calibrate: bool = True
    # Choose on dev the score under which a stance prediction becomes `none`
    # (saved in the model; `stance predict --min-score` overrides it).
    fit_min_score: bool = True
    # group_by_length batches sentences of similar length (news sentences vary
    # 10-140 tokens, so random batches are ~55% padding); random = plain shuffle.
    sampling: str = "group_by_length"
    # Average the weights of the last N epoch-end checkpoints and keep the average
    # instead of the best single epoch (0 = off).  Checkpoints of one fine-tuning run
    # lie in one basin, so their mean behaves like a cheap ensemble at no inference cost.
    average_last: int = 0
    # Arithmetic of the training steps.  bf16 runs matmuls in bfloat16 under autocast
    # (weights, optimizer state and the saved model stay fp32): faster steps on a
    # CPU with native bf16 (avx512_bf16 / AMX) or an Ampere+ GPU, but several times slower
    # where bf16 is emulated.  auto = bf16 where it is native, else fp32.
    precision: str = "auto"
    # With model.spans: the span-tagging loss is added to the sentence loss times this weight.
    span_loss_weight: float = 1.0
    # Learn from a teacher's probabilities beside the gold labels (off unless distill.teacher is set).
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass
class Config:
    labels: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "models/stance-minilm"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CHOICES = {"train.class_weighting": ("none", "balanced"), "train.sampling": ("group_by_length", "random"),
            "train.precision": ("auto", "fp32", "bf16")}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        item = typing.get_args(tp)[0]
        return "a list of " + {str: "strings", int: "integers", float: "numbers"}.get(item, _type_name(item))
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, file: str, key: str) -> Any:
    where = f"{file}: {key}"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, file, key)
            except StanceError:
                continue
        raise StanceError(f"{where}: expected {_type_name(tp)}, got {short(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise StanceError(f"{where}: expected {_type_name(tp)}, got {short(value)}")
        return [_coerce(v, typing.get_args(tp)[0], file, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "3e-5" (no dot) as a string; accept it as the number it is.
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        return _build(tp, value, file, key + ".")
    raise StanceError(f"{where}: expected {_type_name(tp)}, got {short(value)}")


def _build(cls: type, raw: Any, file: str, prefix: str = "") -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise StanceError(f"{file}: {prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {short(raw)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise StanceError(
                f"{file}: unknown config key {short(f'{prefix}{key}')} (known: {', '.join(sorted(names))})"
            )
    kwargs = {k: _coerce(v, hints[k], file, f"{prefix}{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _validate(cfg: Config, file: str) -> None:
    if not cfg.labels:
        raise StanceError(f"{file}: labels: must list at least two labels")
    if len(cfg.labels) < 2:
        raise StanceError(f"{file}: labels: must list at least two labels, got {short(cfg.labels)}")
    if len(set(cfg.labels)) != len(cfg.labels):
        raise StanceError(f"{file}: labels: duplicate label in {short(cfg.labels)}")
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise StanceError(f"{file}: {key}: must be one of {', '.join(choices)}, got {short(value)}")
    positive = {
        "model.max_length": cfg.model.max_length,
        "train.batch_size": cfg.train.batch_size,
        "train.eval_batch_size": cfg.train.eval_batch_size,
        "train.learning_rate": cfg.train.learning_rate,
        "train.epochs": cfg.train.epochs,
        "train.span_loss_weight": cfg.train.span_loss_weight,
    }
    for key, value in positive.items():
        if value <= 0:
            raise StanceError(f"{file}: {key}: must be > 0, got {short(value)}")
    stems = [Path(p).stem for p in cfg.data.extra_test]
    for stem in stems:
        if stem in ("train", "dev", "test", "eval", "all") or stems.count(stem) > 1:
            raise StanceError(f"{file}: data.extra_test: file name '{stem}' is taken; "
                              "each extra test file needs its own name, other than train/dev/test/eval/all")
    if isinstance(cfg.data.train, list) and not cfg.data.train:
        raise StanceError(f"{file}: data.train: must name at least one file")
    if not 0 < cfg.train.train_fraction <= 1:
        raise StanceError(f"{file}: train.train_fraction: must be in (0, 1], got {short(cfg.train.train_fraction)}")
    if not 0 <= cfg.train.label_smoothing < 1:
        raise StanceError(f"{file}: train.label_smoothing: must be in [0, 1), got {short(cfg.train.label_smoothing)}")
    if cfg.train.early_stopping_patience < 0:
        raise StanceError(f"{file}: train.early_stopping_patience: must be >= 0")
    if not 0 < cfg.train.layer_lr_decay <= 1:
        raise StanceError(
            f"{file}: train.layer_lr_decay: must be in (0, 1] (1 = off), got {short(cfg.train.layer_lr_decay)}")
    if cfg.train.average_last < 0 or cfg.train.average_last == 1:
        raise StanceError(f"{file}: train.average_last: must be 0 (off) or >= 2, got {short(cfg.train.average_last)}")
    if not 0 <= cfg.train.distill.alpha <= 1:
        raise StanceError(f"{file}: train.distill.alpha: must be in [0, 1], got {short(cfg.train.distill.alpha)}")
    if cfg.train.distill.temperature <= 0:
        raise StanceError(f"{file}: train.distill.temperature: must be > 0, got {short(cfg.train.distill.temperature)}")
    if cfg.model.freeze_layers < 0:
        raise StanceError(f"{file}: model.freeze_layers: must be >= 0, got {short(cfg.model.freeze_layers)}")


class _AliasFound(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__()
        self.mark = mark


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases as it composes, before any value exists.

    Aliases let a few hundred bytes stand for millions of values (the "billion laughs"),
    which an error message quoting the value would then print in full; a config has no
    need of them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound(event.start_mark)
        return super().compose_node(parent, index)


def _parse_yaml(text: str, where: str) -> Any:
    """Safely parse config YAML; every problem is one StanceError line starting with ``where``."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: no Python objects
    except _AliasFound as e:
        raise StanceError(f"{where}: line {e.mark.line + 1}: YAML aliases/anchors are not allowed in configs") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise StanceError(f"{where}: not valid YAML{at}: {short(problem, quote=False)}") from None
    except ValueError as e:  # e.g. an integer of over 4300 digits, which Python refuses to convert
        raise StanceError(f"{where}: not valid YAML: {short(e, quote=False)}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str], file: str = "--set") -> dict[str, Any]:
    """Apply ``a.b=c`` overrides; values are parsed as YAML (``3e-5``, ``true``, ``[a, b]``)."""
    for item in overrides:
        if "=" not in item:
            raise StanceError(f"--set {short(item)}: expected key=value, e.g. train.epochs=3")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise StanceError(f"--set {short(key.strip())}: {short(p)} is not a section")
            node = nxt
        node[parts[-1]] = _parse_yaml(value, f"--set {short(key.strip())}") if value.strip() else None
    return raw


def config_from_dict(raw: dict[str, Any], file: str = "<config>") -> Config:
    cfg = _build(Config, raw, file)
    _validate(cfg, file)
    return cfg


def _merged(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``parent``: sections merge key by key, any other value (a list too) replaces."""
    out = dict(parent)
    for key, value in child.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's mapping, with the file it ``extends`` (a path relative to it) merged underneath."""
    file = str(path)
    if not path.is_file():
        raise StanceError(f"{chain[-1]}: extends: {file}: config file not found" if chain else
                          f"{file}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StanceError(f"{file}: not a UTF-8 text file") from None
    raw = _parse_yaml(text, file)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise StanceError(f"{file}: top level must be a mapping of keys, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise StanceError(f"{file}: extends: expected the path of another config, got {short(parent)}")
    base = (path.parent / parent).resolve()
    if base in chain or base == path.resolve():
        raise StanceError(f"{file}: extends: {parent} extends this file again (a loop)")
    return _merged(_read_raw(base, (*chain, path.resolve())), raw)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (safe loading, no aliases), apply overrides, and validate it.

    A config may start from another: ``extends: base.yaml`` (relative to it) reads that one first
    and overrides only the keys given, so each experiment is a short file of differences.
    """
    path = Path(path)
    raw = apply_overrides(_read_raw(path), overrides or [], str(path))
    return config_from_dict(raw, str(path))


def save_config(cfg: Config, path: str | Path) -> None:
    from stance.io import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
