"""The report's sections on the second test domain and on holder/target: means over the runs that measured them."""

from experiments.sections_more import extra_test_section, spans_section

LABELS = ["accuse", "deny", "support", "none"]


def _extra(f1):
    return {"test_polnear": {"n": 10, "accuracy": 0.5, "macro_f1": f1,
                             "per_class": {lab: {"f1": f1} for lab in LABELS}}}


def _spans(h, t):
    role = lambda x: {"f1_given_label": x, "exact_given_label": x - 0.1, "f1_end_to_end": x - 0.2}  # noqa: E731
    return {"test": {"n": 591, "holder": role(h), "target": role(t)}}


def test_the_second_domain_table_averages_the_runs_that_measured_it_and_skips_older_settings():
    by_name = {"old": [{"seed": 42}], "new": [{"seed": 42, "extra_test": _extra(0.5)},
                                             {"seed": 43, "extra_test": _extra(0.7)}]}
    lines = extra_test_section(["old", "new"], by_name, LABELS)
    rows = [x for x in lines if x.startswith("| new") or x.startswith("| old")]
    assert rows == ["| new | 2 | 0.600 ± 0.100 | – | 0.600 | 0.600 | 0.600 | 0.600 |"]


def test_the_second_domain_interval_resamples_the_sentences_of_runs_that_kept_their_probabilities():
    gold = ["accuse", "deny", "support", "none"] * 25
    right = [[float(lab == g) for lab in LABELS] for g in gold]
    # Every fourth sentence wrong (a stance read as none): never a perfect score on any resample.
    noisy = [[0.0, 0.0, 0.0, 1.0] if i % 4 == 0 else p for i, p in enumerate(right)]
    by_name = {"perfect": [{"extra_test": _extra(1.0), "extra_test_probs": {"test_polnear": right}, "min_score": 0.5}],
               "noisy": [{"extra_test": _extra(0.7), "extra_test_probs": {"test_polnear": noisy}, "min_score": 0.5}],
               "one-old": [{"extra_test": _extra(0.7), "extra_test_probs": {"test_polnear": noisy}},
                           {"extra_test": _extra(0.7)}]}
    lines = extra_test_section(["perfect", "noisy", "one-old"], by_name, LABELS, gold={"test_polnear": gold})
    cells = {x.split(" | ")[0][2:]: x.split(" | ")[3] for x in lines if x.startswith("| ") and "---" not in x}
    assert cells["perfect"] == "1.000–1.000"
    lo, hi = (float(v) for v in cells["noisy"].split("–"))
    assert 0.5 < lo < hi < 1.0
    assert cells["one-old"] == "–"  # a seed without probabilities: no interval rather than a partial one


def test_the_spans_table_gives_given_label_and_end_to_end_figures_per_split():
    by_name = {"spans": [{"spans": _spans(0.8, 0.6)}, {"spans": _spans(0.9, 0.8)}], "plain": [{}]}
    rows = [x for x in spans_section(["plain", "spans"], by_name) if x.startswith("| spans")]
    assert rows == ["| spans | test | 2 | 591 | 0.850 ± 0.050 | 0.750 ± 0.050 | 0.650 ± 0.050 "
                    "| 0.700 ± 0.100 | 0.600 ± 0.100 | 0.500 ± 0.100 |"]


def test_no_run_with_the_measure_means_no_section():
    assert extra_test_section(["a"], {"a": [{}]}, LABELS) == [] and spans_section(["a"], {"a": [{}]}) == []


def _split(f1):
    return {"macro_f1": f1, "per_class": {lab: {"f1": f1} for lab in LABELS}}


def test_the_teacher_table_puts_students_beside_teachers_and_dashes_what_was_not_measured():
    from experiments.sections_more import teacher_section

    by_name = {"base": [{"dev": _split(0.8), "test": _split(0.7)}],
               "student": [{"dev": _split(0.7), "test": _split(0.6), "extra_test": _extra(0.5)},
                           {"dev": _split(0.9), "test": _split(0.8), "extra_test": _extra(0.7)}]}
    card = {"teacher": "ens", "models": [1, 2, 3], "dev": {"macro_f1": 0.81, "per_class": dict.fromkeys(LABELS, 0.8)},
            "test": {"macro_f1": 0.71, "per_class": dict.fromkeys(LABELS, 0.7)}}
    rows = [x for x in teacher_section(["base", "student", "missing"], by_name, [card], LABELS, default="base")
            if x.startswith("| ") and "macro-F1" not in x]
    assert rows == [
        "| base (the default recipe without a teacher, 1 seed) | 0.800 | 0.80 | 0.80 | 0.80 | 0.80 | 0.700 | 0.70 "
        "| 0.70 | 0.70 | 0.70 | – | – | – | – | – |",
        "| student (student, 2 seeds) | 0.800 ± 0.100 | 0.80 | 0.80 | 0.80 | 0.80 | 0.700 ± 0.100 | 0.70 | 0.70 "
        "| 0.70 | 0.70 | 0.600 ± 0.100 | 0.60 | 0.60 | 0.60 | 0.60 |",
        "| ens (teacher, 3 models) | 0.810 | 0.80 | 0.80 | 0.80 | 0.80 | 0.710 | 0.70 | 0.70 | 0.70 | 0.70 | – | – "
        "| – | – | – |",
    ]
