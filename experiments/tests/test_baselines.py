"""The baselines are cached per set of rows, so re-rendering the report writes the same bytes."""

import numpy as np

from experiments.baselines import cached_baselines, data_fingerprint
from stance.data import LabeledData


def data(*labels: str) -> LabeledData:
    return LabeledData("x.jsonl", [f"sentence {i}" for i in range(len(labels))], list(labels))


def test_cached_baselines_are_computed_once_for_the_same_rows_and_read_back_unchanged(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"tfidf+logreg": {"sentences_per_second": np.float64(1234.5678), "settings": {"C": 1.0}},
                "tfidf_curve": {0.1: 0.5, 1.0: 0.6}}

    key = data_fingerprint(data("deny", "none"), fractions=[0.1])
    first = cached_baselines(tmp_path / "b.json", key, compute)
    again = cached_baselines(tmp_path / "b.json", key, compute)
    assert calls == [1] and first == again
    assert first["tfidf+logreg"]["sentences_per_second"] == 1234.5678


def test_other_rows_or_refresh_retrain_the_baselines(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    path = tmp_path / "b.json"
    cached_baselines(path, data_fingerprint(data("deny", "none")), compute)
    assert cached_baselines(path, data_fingerprint(data("deny", "deny")), compute) == {"n": 2}
    assert cached_baselines(path, data_fingerprint(data("deny", "deny")), compute, refresh=True) == {"n": 3}
    assert data_fingerprint(data("deny")) != data_fingerprint(data("deny"), fractions=[0.5])
