import pytest

from experiments.summaries import Summary
from experiments.winner import pick_winner

BUDGET = 900


def summary(name: str, dev: float, train_seconds: float = 600.0, seeds: int = 3) -> Summary:
    return Summary(name, name, seeds, (dev, 0.01), (0.7, 0.01), 0.8, {}, train_seconds, 100.0)


def crossval(scores: dict[str, float], baseline: str, stands_for: str) -> dict:
    """A cross-validation result as run_crossval returns it: the baseline first."""
    order = [baseline, *(n for n in scores if n != baseline)]
    return {"k": 3, "seed": 42, "baseline": baseline, "stands_for": stands_for,
            "settings": {n: {"macro_f1": scores[n], "n": 99} for n in order}}


def names(choice) -> tuple:
    return (choice.winner.name, choice.dev_winner.name, choice.runner_up and choice.runner_up.name, choice.cv_best)


def test_the_winner_is_the_best_on_dev_and_the_runner_up_the_next_best():
    choice = pick_winner([summary("a", 0.70), summary("b", 0.75), summary("c", 0.72)], BUDGET)
    assert names(choice) == ("b", "b", "c", None)


def test_a_setting_over_the_time_budget_is_neither_winner_nor_runner_up_however_good_on_dev():
    slow = summary("slow", 0.99, train_seconds=BUDGET + 1)
    choice = pick_winner([summary("a", 0.70), slow, summary("b", 0.75)], BUDGET)
    assert names(choice) == ("b", "b", "a", None)
    assert choice.over_budget.name == "slow"
    # Exactly the budget still fits.
    assert pick_winner([summary("a", 0.70), summary("edge", 0.8, BUDGET)], BUDGET).winner.name == "edge"


def test_a_setting_over_the_budget_is_named_only_when_it_beats_the_winner_on_dev():
    behind = pick_winner([summary("a", 0.70), summary("slow", 0.69, BUDGET + 1)], BUDGET)
    assert behind.winner.name == "a" and behind.over_budget is None
    ahead = pick_winner([summary("a", 0.70), summary("slow", 0.71, BUDGET + 1), summary("slower", 0.72, BUDGET + 9)],
                        BUDGET)
    assert ahead.winner.name == "a" and ahead.over_budget.name == "slower"


def test_a_setting_run_on_fewer_seeds_is_neither_winner_nor_runner_up_however_good_on_dev():
    choice = pick_winner([summary("a", 0.70), summary("one-seed", 0.99, seeds=1), summary("b", 0.75)], BUDGET)
    assert names(choice) == ("b", "b", "a", None)


def test_when_every_setting_is_over_the_budget_the_best_on_dev_still_wins():
    choice = pick_winner([summary("a", 0.70, 2000), summary("b", 0.75, 2000)], BUDGET)
    assert names(choice) == ("b", "b", "a", None)
    assert choice.over_budget is None


def test_a_tie_on_dev_goes_to_the_setting_listed_first():
    assert pick_winner([summary("first", 0.75), summary("second", 0.75)], BUDGET).winner.name == "first"
    assert pick_winner([summary("second", 0.75), summary("first", 0.75)], BUDGET).winner.name == "second"


def test_a_lone_setting_wins_with_no_runner_up():
    assert names(pick_winner([summary("only", 0.5)], BUDGET)) == ("only", "only", None, None)


def test_no_setting_to_choose_from_is_an_error():
    with pytest.raises(ValueError, match="no settings"):
        pick_winner([], BUDGET)


def test_the_crossval_overrules_dev_when_a_challenger_beats_the_dev_winners_stand_in():
    cv = crossval({"stand-in": 0.70, "b": 0.72}, baseline="stand-in", stands_for="a")
    choice = pick_winner([summary("a", 0.75), summary("b", 0.74)], BUDGET, cv)
    # The runner-up is then the best other setting on dev: the dev winner itself.
    assert names(choice) == ("b", "a", "a", "b")


def test_the_crossval_overrules_dev_when_the_dev_winner_is_cross_validated_as_itself():
    cv = crossval({"a": 0.70, "b": 0.72}, baseline="a", stands_for="a")
    assert pick_winner([summary("a", 0.75), summary("b", 0.74)], BUDGET, cv).winner.name == "b"


def test_a_tie_in_the_crossval_keeps_the_dev_winner():
    cv = crossval({"a": 0.72, "b": 0.72}, baseline="a", stands_for="a")
    assert names(pick_winner([summary("a", 0.75), summary("b", 0.74)], BUDGET, cv)) == ("a", "a", "b", "a")


def test_a_crossval_lost_by_the_challenger_keeps_the_dev_winner():
    cv = crossval({"a": 0.72, "b": 0.70}, baseline="a", stands_for="a")
    assert pick_winner([summary("a", 0.75), summary("b", 0.74)], BUDGET, cv).winner.name == "a"


def test_a_crossval_whose_baseline_stands_for_another_recipe_changes_nothing():
    cv = crossval({"c": 0.70, "b": 0.72}, baseline="c", stands_for="c")
    choice = pick_winner([summary("a", 0.75), summary("b", 0.74), summary("c", 0.73)], BUDGET, cv)
    assert names(choice) == ("a", "a", "b", "b")


def test_a_crossval_winner_over_the_budget_or_never_run_on_the_full_data_does_not_win():
    settings = [summary("a", 0.75), summary("slow", 0.74, BUDGET + 1)]
    over = crossval({"a": 0.70, "slow": 0.72}, baseline="a", stands_for="a")
    assert pick_winner(settings, BUDGET, over).winner.name == "a"
    # Only the best of the cross-validation may overrule dev: a second-best challenger that
    # was run on the full data does not step in for one that was not.
    unrun = crossval({"a": 0.70, "b": 0.71, "cv-only": 0.72}, baseline="a", stands_for="a")
    assert pick_winner([summary("a", 0.75), summary("b", 0.74)], BUDGET, unrun).winner.name == "a"


def test_a_stand_in_that_wins_the_crossval_keeps_the_recipe_it_stands_for():
    cv = crossval({"stand-in": 0.72, "b": 0.70}, baseline="stand-in", stands_for="a")
    settings = [summary("a", 0.75), summary("b", 0.74), summary("stand-in", 0.73)]
    assert names(pick_winner(settings, BUDGET, cv)) == ("a", "a", "b", "stand-in")
