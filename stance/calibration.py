"""Calibration: the softmax temperature and the `none` threshold, both fitted on dev.

`stance calibrate` maps here; `stance train` calls the same steps after fitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.data import LabeledData
from stance.errors import StanceError
from stance.io import write_json
from stance.metrics import compute_metrics, expected_calibration_error
from stance.modeling import decide_labels


def fit_temperature(probs: np.ndarray, gold_ids: np.ndarray) -> float:
    """Softmax temperature minimising dev log-loss (Guo et al., 2017).

    Takes probabilities computed at temperature 1: their logs equal the logits
    up to a per-row constant, which the softmax ignores.  Labels (argmax) do not
    change; only how far `score` can be trusted as a probability.
    """
    from scipy.optimize import minimize_scalar

    z = np.log(np.clip(probs, 1e-12, 1.0))
    rows = np.arange(len(gold_ids))

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(-(s[rows, gold_ids] - np.log(np.exp(s).sum(axis=1))).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def calibrate(clf: Any, dev: LabeledData, batch_size: int = 64) -> dict[str, float]:
    """Fit ``clf.temperature`` on labeled dev data; returns ECE and log-loss before and after."""
    index = {lab: i for i, lab in enumerate(clf.labels)}
    gold = np.array([index[g] for g in dev.labels])
    clf.temperature = 1.0
    probs = clf.predict_proba(dev.texts, batch_size=batch_size)
    t = fit_temperature(probs, gold)
    clf.temperature = t
    after = clf.scores(np.log(np.clip(probs, 1e-12, 1.0)))

    def logloss(p: np.ndarray) -> float:
        return float(-np.log(np.clip(p[np.arange(len(gold)), gold], 1e-12, 1.0)).mean())

    return {"temperature": round(t, 4), "dev_ece_before": expected_calibration_error(probs, gold),
            "dev_ece_after": expected_calibration_error(after, gold),
            "dev_logloss_before": logloss(probs), "dev_logloss_after": logloss(after)}


# Candidate thresholds for ``fit_min_score``; 0 (plain argmax) comes first so it wins ties.
# With four labels the top score is never below 0.25, so 0.30 is the first that can change a label.
MIN_SCORE_GRID: tuple[float, ...] = (0.0, *np.round(np.arange(0.30, 0.96, 0.05), 2).tolist())


def fit_min_score(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str],
                  fallback: str = "none") -> dict[str, float]:
    """The score under which a stance prediction becomes ``fallback``, chosen to maximise macro-F1.

    Fit on dev (calibrated probabilities).  Class weighting makes the model
    call minority stances generously; the rare labels then pay in precision,
    which a threshold buys back where the model is unsure.  0 means argmax
    is best and nothing changes.
    """
    labels = list(labels)
    if fallback not in labels:
        return {"min_score": 0.0, "macro_f1_before": float("nan"), "macro_f1_after": float("nan")}
    scores = [compute_metrics(list(gold), decide_labels(probs, labels, t, fallback), labels)["macro_f1"]
              for t in MIN_SCORE_GRID]
    i = int(np.argmax(scores))
    return {"min_score": float(MIN_SCORE_GRID[i]), "macro_f1_before": scores[0], "macro_f1_after": scores[i]}


def choose_min_score(clf: Any, dev: LabeledData, batch_size: int = 64) -> dict[str, float]:
    """Fit ``clf.min_score`` on labeled dev data (after calibration, so it is a probability)."""
    probs = clf.predict_proba(dev.texts, batch_size=batch_size)
    result = fit_min_score(probs, dev.labels, clf.labels)
    clf.min_score = result["min_score"]
    return result


def calibrate_model_dir(model_dir: str | Path, data: str | Path | None = None) -> dict[str, float]:
    """Fit and store the temperature of a saved model (``stance_temperature`` in config.json).

    A model with a dev-chosen ``none`` threshold (``stance_min_score``) gets it chosen again.

    ``data`` defaults to the dev split named in the model's ``stance_config.yaml``.
    """
    import json

    from stance.data import read_model_split
    from stance.modeling import StanceClassifier, check_model_dir

    model_dir = check_model_dir(model_dir)
    clf = StanceClassifier.load(model_dir)
    dev = read_model_split(model_dir, clf.labels, data, "dev")
    if dev is None:
        raise StanceError(f"{model_dir}: no dev split found from stance_config.yaml; pass --data FILE")
    result = calibrate(clf, dev)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config["stance_temperature"] = result["temperature"]
    if "stance_min_score" in config:
        # The threshold is a probability under the old temperature: choose it again under the new one.
        result["min_score"] = choose_min_score(clf, dev)["min_score"]
        config["stance_min_score"] = result["min_score"]
    write_json(model_dir / "config.json", config)
    return {**result, "data": dev.path}
