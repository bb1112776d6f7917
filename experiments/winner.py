"""The rule that picks the winning recipe, apart from the report that prints it.

Choices are made on dev only: the winner is the setting with the best mean dev
macro-F1 among those that train within the time budget; test is reported, never
used to choose.  Where dev cannot tell recipes apart, the cross-validation on
round-1 train (seven times dev's sentences) may overrule it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from experiments.summaries import Summary


@dataclass(frozen=True)
class Choice:
    """The winner, and what the report says about how it was chosen."""

    winner: Summary
    dev_winner: Summary            # the winner on dev alone; the winner unless the cross-validation overrules it
    runner_up: Summary | None      # the best other setting on dev within the budget
    cv_best: str | None            # the best setting of the cross-validation, if one ran
    over_budget: Summary | None = None  # the best setting on dev past the budget, when it beats the winner there


def pick_winner(summaries: Sequence[Summary], budget_s: float, crossval: dict[str, Any] | None = None) -> Choice:
    """Pick the winning recipe among ``summaries`` (the report's order; the first wins a tie).

    The dev winner is the best mean dev macro-F1 among the settings run on the most seeds
    that train within ``budget_s`` (among all of those if none does).  ``crossval`` (``run_crossval``'s
    result plus ``stands_for``): when its baseline stands for the dev winner, and its best
    setting is another one that was run on the full data within the budget, that setting
    wins.  Its baseline is listed first, so a tie there keeps the dev winner.
    """
    if not summaries:
        raise ValueError("pick_winner: no settings to choose from")
    # One seed's dev score moves by about a point (seed spread, docs/results.md), so a setting
    # run on fewer seeds than the best-covered one is reported but not a candidate.
    seeds = max(s.n for s in summaries)
    covered = [s for s in summaries if s.n == seeds]
    eligible = [s for s in covered if s.train_seconds <= budget_s]
    pool = eligible or covered
    winner = dev_winner = max(pool, key=lambda s: s.dev_f1[0])
    cv = (crossval or {}).get("settings", {})
    cv_best = max(cv, key=lambda n: cv[n]["macro_f1"]) if cv else None
    if cv_best is not None and crossval.get("stands_for") == dev_winner.name and cv_best != crossval["baseline"]:
        winner = next((s for s in eligible if s.name == cv_best), dev_winner)
    # A setting over the time budget was never a candidate, so it is not the runner-up either.
    others = [s for s in pool if s.name != winner.name]
    runner_up = max(others, key=lambda s: s.dev_f1[0]) if others else None
    # Reported so that a reader sees what the budget cost on dev, never chosen.
    slow = [s for s in covered if s.train_seconds > budget_s and s.dev_f1[0] > winner.dev_f1[0]]
    over_budget = max(slow, key=lambda s: s.dev_f1[0]) if slow and eligible else None
    return Choice(winner, dev_winner, runner_up, cv_best, over_budget)
