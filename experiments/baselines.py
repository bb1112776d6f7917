"""The baselines the transformer recipes are measured against: a keyword rule and TF-IDF + LR.

Trained once per set of training and held-out rows and cached beside the runs
(``baselines.json``), so a re-render from the same cached runs writes the same bytes; their
speed columns are the machine's at the time they were trained.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from corpus.cues import keyword_rule
from stance.data import LabeledData
from stance.io import write_text
from stance.metrics import compute_metrics


def run_baselines(train: LabeledData, dev: LabeledData, test: LabeledData, labels: list[str],
                  fractions: Sequence[float], seed: int = 42,
                  curve_train: LabeledData | None = None) -> dict[str, Any]:
    """Keyword rule and TF-IDF + LR on dev/test, plus TF-IDF learning-curve points.

    The curve takes fractions of ``curve_train`` (default: ``train``) and is
    keyed by share of its rows; TF-IDF on all of ``train`` sits at
    ``len(train) / len(curve_train)``, so a larger shipped train shows as a
    point past 100%.
    """
    if curve_train is None:
        curve_train = train
    from stance.train import subsample

    out: dict[str, Any] = {}
    for name, predict in (("keyword rule", lambda texts: [keyword_rule(t) for t in texts]),):
        t0 = time.perf_counter()
        out[name] = {"test": compute_metrics(test.labels, predict(test.texts), labels)}
        out[name]["sentences_per_second"] = len(test) / (time.perf_counter() - t0)
        out[name]["dev"] = compute_metrics(dev.labels, predict(dev.texts), labels)
    t0 = time.perf_counter()
    pipe, chosen = tfidf_logreg(train.texts, train.labels, dev.texts, dev.labels, labels)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    test_pred = list(pipe.predict(test.texts))
    out["tfidf+logreg"] = {
        "test": compute_metrics(test.labels, test_pred, labels),
        "sentences_per_second": len(test) / (time.perf_counter() - t0),
        "dev": compute_metrics(dev.labels, list(pipe.predict(dev.texts)), labels),
        "train_seconds": fit_s, "settings": chosen,
    }
    curve = {}
    for f in [*fractions, *([1.0] if len(curve_train) != len(train) else [])]:
        sub = subsample(curve_train, f, seed)
        p, _ = tfidf_logreg(sub.texts, sub.labels, dev.texts, dev.labels, labels)
        curve[f] = compute_metrics(test.labels, list(p.predict(test.texts)), labels)["macro_f1"]
    curve[round(len(train) / len(curve_train), 2)] = out["tfidf+logreg"]["test"]["macro_f1"]
    out["tfidf_curve"] = curve
    return out


def data_fingerprint(*datasets: LabeledData, **extra: Any) -> str:
    """sha256 of every text and label of the given sets, in order, and of ``extra``."""
    h = hashlib.sha256()
    for d in datasets:
        h.update(json.dumps([d.texts, d.labels], ensure_ascii=False).encode())
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()


def cached_baselines(path: Path, fingerprint: str, compute: Callable[[], dict[str, Any]],
                     refresh: bool = False) -> dict[str, Any]:
    """The baselines stored at ``path`` for these rows, else computed now and stored."""
    if not refresh and path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("fingerprint") == fingerprint:
            return cached["baselines"]
    baselines = compute()
    # A float key (curve fraction) becomes a string in JSON; the report reads both.
    stored = json.loads(json.dumps({"fingerprint": fingerprint, "baselines": baselines}, default=lambda o: o.item()))
    write_text(path, json.dumps(stored, indent=1) + "\n")
    return stored["baselines"]


def tfidf_logreg(train_texts: list[str], train_labels: list[str], dev_texts: list[str], dev_labels: list[str],
                 labels: list[str], seed: int = 0):
    """TF-IDF (word 1-2grams + char 2-5grams) + logistic regression, class_weight and C tuned on dev.

    Returns the fitted scikit-learn pipeline and the chosen settings.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline, make_union

    best = None
    for class_weight in (None, "balanced"):
        for c in (1.0, 4.0, 16.0):
            pipe = make_pipeline(
                make_union(
                    TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
                ),
                LogisticRegression(C=c, class_weight=class_weight, max_iter=2000, random_state=seed),
            )
            pipe.fit(train_texts, train_labels)
            f1 = f1_score(dev_labels, pipe.predict(dev_texts), labels=labels, average="macro", zero_division=0)
            if best is None or f1 > best[0]:
                best = (f1, pipe, {"class_weight": class_weight, "C": c})
    return best[1], best[2]
