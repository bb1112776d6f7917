"""Knowledge distillation (``train.distill``): a teacher's probabilities as soft targets beside gold labels.

The teacher file is JSONL, one sentence per row: ``{"text": ..., "probs": {label: p, ...}}``
(``scripts/distill_data.py`` writes it from a larger model or a seed ensemble, so a user
trains the student without ever running the teacher).  A row whose text is a training
sentence gives that sentence a teacher distribution; with ``unlabeled``, the other rows
train on the teacher alone.  The loss (Hinton et al., 2015) is

    alpha * CE(gold) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

where ``_T`` means softened by temperature T; rows without a gold label have only the
second term.  A teacher row may not be a dev or test sentence: the student would learn
held-out labels second-hand, so such a file is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stance.data import LabeledData, iter_rows
from stance.errors import StanceError, short

NO_TEACHER = -1.0  # fills the teacher column of a training row the teacher file does not cover


@dataclass
class DistillRows:
    """What a teacher file adds to a run: a distribution per training row (or None), and rows without gold."""

    train_targets: list[list[float] | None]
    unlabeled_texts: list[str]
    unlabeled_targets: list[list[float]]

    @property
    def covered(self) -> int:
        return sum(t is not None for t in self.train_targets)

    def train_column(self, k: int) -> list[list[float]]:
        return [t if t is not None else [NO_TEACHER] * k for t in self.train_targets]


def _probs(row: dict[str, Any], labels: Sequence[str], where: str) -> list[float]:
    probs = row.get("probs")
    if not isinstance(probs, dict) or set(probs) != set(labels):
        raise StanceError(f"{where}: probs: expected an object with one probability per label "
                          f"({', '.join(labels)}), got {short(probs)}")
    values = [probs[lab] for lab in labels]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in values):
        raise StanceError(f"{where}: probs: every probability must be a number >= 0, got {short(probs)}")
    total = sum(values)
    # Stored rounded (a few decimals), so the sum is near 1, not exactly 1.
    if abs(total - 1.0) > 1e-3:
        raise StanceError(f"{where}: probs: the probabilities sum to {total:.4f}, not 1")
    return [float(v) / total for v in values]


def read_teacher(path: str | Path, labels: Sequence[str]) -> list[tuple[int, str, list[float]]]:
    """(line, text, probabilities in label order) per row of a teacher file; a bad row is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise StanceError(f"{path}: train.distill.teacher: file not found")
    rows = []
    for lineno, row in iter_rows(path):
        where = f"{path}:{lineno}"
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise StanceError(f"{where}: expected an object with a non-empty 'text'")
        rows.append((lineno, row["text"], _probs(row, labels, where)))
    if not rows:
        raise StanceError(f"{path}: train.distill.teacher: no rows")
    return rows


def distill_rows(path: str | Path, labels: Sequence[str], train: LabeledData,
                 held_out: Sequence[tuple[str, LabeledData]], unlabeled: bool) -> DistillRows:
    """Match a teacher file to the training rows; refuse any of its sentences that is held out."""
    rows = read_teacher(path, labels)
    train_texts = set(train.texts)
    # A held-out sentence that is also a training row teaches nothing the gold label does not.
    held = {text: (name, data.path) for name, data in held_out for text in data.texts if text not in train_texts}
    for lineno, text, _ in rows:
        if text in held:
            name, file = held[text]
            raise StanceError(f"{path}:{lineno}: this sentence is in {name} ({file}); a teacher file must not "
                              "hold held-out sentences (the student would learn their labels second-hand)")
    by_text = {text: probs for _, text, probs in rows}
    extra = [(text, probs) for _, text, probs in rows if text not in train_texts] if unlabeled else []
    # A sentence listed twice in the file trains once.
    extra = list({text: probs for text, probs in extra}.items())
    return DistillRows([by_text.get(t) for t in train.texts], [t for t, _ in extra], [p for _, p in extra])


def distill_loss(logits: Any, teacher: Any, temperature: float) -> Any:
    """T^2 * KL(teacher_T || student_T), averaged over the rows that have a teacher (0 for none).

    ``teacher`` holds probabilities at temperature 1 (rows of ``NO_TEACHER`` have none):
    softened as p^(1/T), renormalized, which is softmax(z/T) for the teacher's logits z.
    """
    import torch

    has = teacher[:, 0] >= 0
    if not bool(has.any()):
        return logits.sum() * 0.0  # still in the graph
    t = teacher[has].float().clamp_min(1e-8).pow(1.0 / temperature)
    t = t / t.sum(dim=-1, keepdim=True)
    log_q = torch.nn.functional.log_softmax(logits[has].float() / temperature, dim=-1)
    kl = (t * (t.log() - log_q)).sum(dim=-1).mean()
    return kl * temperature * temperature
