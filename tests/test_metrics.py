"""Span metrics: SQuAD-style exact match and token-F1 for holder and target."""

import pytest

from stance.metrics import span_exact, span_token_f1


def test_span_token_f1_ignores_case_punctuation_and_articles_as_squad_does():
    assert span_token_f1("The Kremlin.", "kremlin") == 1.0
    assert span_exact("Secretary of State John Kerry", "John Kerry") == 0.0
    assert span_token_f1("Secretary of State John Kerry", "John Kerry") == pytest.approx(2 * (2 / 5) * 1 / (2 / 5 + 1))


def test_two_null_spans_agree_and_a_null_against_a_span_scores_zero():
    assert span_exact(None, None) == span_token_f1(None, None) == 1.0
    assert span_exact(None, "Russia") == span_token_f1("Russia", None) == 0.0
