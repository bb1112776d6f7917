"""Holder/target spans in labeled data: read, checked row by row, carried through concatenation."""

import json

import numpy as np
import pytest

from stance.data import read_labeled
from stance.errors import StanceError
from tests.test_cli import assert_one_line_error, run

LABELS = ["accuse", "deny", "support", "none"]
TEXT = "Kerry accused Russia of grandstanding."
HOLDER = {"text": "Kerry", "start": 0, "end": 5}
TARGET = {"text": "Russia", "start": 14, "end": 20}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_spans_are_read_and_rows_without_the_fields_are_not_annotated(tmp_path):
    p = write(tmp_path / "d.jsonl", [
        {"text": TEXT, "label": "accuse", "holder": HOLDER, "target": TARGET},
        {"text": "He was accused of fraud.", "label": "accuse", "holder": None,
         "target": {"text": "He", "start": 0, "end": 2}},
        {"text": "They met.", "label": "none", "holder": None, "target": None},
        {"text": "They met again.", "label": "none"},
    ])
    d = read_labeled(p, LABELS)
    assert d.spans == [{"holder": HOLDER, "target": TARGET},
                       {"holder": None, "target": {"text": "He", "start": 0, "end": 2}},
                       {"holder": None, "target": None},
                       None]
    assert d.has_spans


def test_data_without_spans_has_none_and_concatenation_keeps_rows_aligned(tmp_path):
    plain = write(tmp_path / "a.jsonl", [{"text": "They met.", "label": "none"}])
    assert read_labeled(plain, LABELS).spans is None and not read_labeled(plain, LABELS).has_spans
    spans = write(tmp_path / "b.jsonl", [{"text": TEXT, "label": "accuse", "holder": HOLDER, "target": TARGET}])
    d = read_labeled([plain, spans], LABELS)
    assert d.spans == [None, {"holder": HOLDER, "target": TARGET}] and d.texts[1] == TEXT


def test_csv_spans_are_flat_columns_and_empty_cells_are_null(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label,holder,holder_start,holder_end,target,target_start,target_end\n"
                 f"{TEXT},accuse,Kerry,0,5,Russia,14,20\n"
                 "He was accused.,accuse,,,,He,0,2\n"
                 "They met.,none,,,,,,\n")
    d = read_labeled(p, LABELS)
    assert d.spans == [{"holder": HOLDER, "target": TARGET},
                       {"holder": None, "target": {"text": "He", "start": 0, "end": 2}},
                       None]


@pytest.mark.parametrize("row, expected", [
    ({"holder": {"text": "Kerry", "start": 1, "end": 6}, "target": None},
     "holder: 'Kerry' is not the text at 1:6"),
    ({"holder": {"text": "Kerry", "start": 0, "end": 99}, "target": None}, "holder: offsets 0:99"),
    ({"holder": {"text": "Kerry", "start": "0", "end": 5}, "target": None}, "holder: start and end must be integers"),
    ({"holder": {"text": "Kerry", "start": True, "end": 5}, "target": None}, "holder: start and end must be integers"),
    ({"holder": "Kerry", "target": None}, "holder: expected null or an object with text, start, end"),
    ({"holder": {"start": 0, "end": 5}, "target": None}, "holder: expected null or an object with text, start, end"),
    ({"holder": HOLDER}, "has 'holder' but no 'target'"),
    ({"holder": HOLDER, "target": {"text": "Kerry accused", "start": 0, "end": 13}},
     "holder 0:5 and target 0:13 overlap"),
])
def test_bad_span_rows_name_file_and_row(tmp_path, row, expected):
    p = write(tmp_path / "d.jsonl", [{"text": "ok", "label": "none"}, {"text": TEXT, "label": "accuse", **row}])
    with pytest.raises(StanceError) as e:
        read_labeled(p, LABELS)
    assert f"d.jsonl:2: {expected}" in str(e.value)


def test_a_span_on_a_none_row_is_an_error(tmp_path):
    p = write(tmp_path / "d.jsonl", [{"text": TEXT, "label": "none", "holder": HOLDER, "target": None}])
    with pytest.raises(StanceError, match="d.jsonl:1: a 'none' row has no holder or target"):
        read_labeled(p, LABELS)


@pytest.mark.parametrize("cells, expected", [
    ("Kerry,x,5,,,", "d.csv:2: holder: start and end must be integers"),
    ("Kerry,,5,,,", "d.csv:2: holder: give text, start and end, or leave all three empty"),
    ("Kery,0,5,,,", "d.csv:2: holder: 'Kery' is not the text at 0:5"),
])
def test_bad_csv_span_cells_name_file_and_row(tmp_path, cells, expected):
    p = tmp_path / "d.csv"
    p.write_text(f"text,label,holder,holder_start,holder_end,target,target_start,target_end\n{TEXT},accuse,{cells}\n")
    with pytest.raises(StanceError, match=expected):
        read_labeled(p, LABELS)


def test_train_on_a_bad_span_row_is_a_one_line_error_with_exit_2(tiny_config, tmp_path):
    bad = write(tmp_path / "bad.jsonl", [{"text": TEXT, "label": "accuse", "holder": HOLDER,
                                          "target": {"text": "Russia", "start": 15, "end": 21}}])
    r = run("train", tiny_config, "--quiet", "--set", f"data.train={bad}", "--output-dir", tmp_path / "m")
    assert_one_line_error(r, "bad.jsonl:1: target: 'Russia' is not the text at 15:21")
    assert not (tmp_path / "m").exists()


# -- BIO tags: gold spans to tokens and token logits back to spans ------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_backbone / "tokenizer.json"))
    tok.no_padding()  # tokenizer.json pads to 128, as StanceClassifier turns off too
    return tok


def one_hot(tags, strength=8.0):
    from stance.spans import TAGS

    logits = np.zeros((len(tags), len(TAGS)))
    for k, t in enumerate(tags):
        logits[k, max(t, 0)] = strength
    return logits


def test_gold_spans_become_bio_tags_on_word_pieces(tokenizer):
    from stance.spans import IGNORE, TAGS, bio_tags

    text = "Secretary Kerryson accused Russia of grandstanding."
    enc = tokenizer.encode(text)
    tags = bio_tags(enc.offsets, {"holder": {"text": "Secretary Kerryson", "start": 0, "end": 18},
                                  "target": {"text": "Russia", "start": 27, "end": 33}})
    named = [TAGS[t] if t != IGNORE else "-" for t in tags]
    pieces = dict(zip(enc.tokens, named))
    assert named[0] == named[-1] == "-"  # [CLS] and [SEP]
    assert pieces["secretary"] == "B-HOLDER" and pieces["russia"] == "B-TARGET" and pieces["accused"] == "O"
    assert named[2:enc.tokens.index("accused")] == ["I-HOLDER"] * (enc.tokens.index("accused") - 2)
    assert bio_tags(enc.offsets, None) == [IGNORE] * len(enc.offsets)
    assert set(bio_tags(enc.offsets, {"holder": None, "target": None})[1:-1]) == {0}


def test_decoding_the_gold_tags_gives_back_the_gold_spans(tokenizer):
    from stance.spans import bio_tags, decode

    text = "\"It is a lie,\" said Secretary of State John Kerry, denying the U.S. report."
    holder = {"text": "Secretary of State John Kerry", "start": text.index("Secretary"), "end": text.index(",", 20)}
    target = {"text": "the U.S. report", "start": text.index("the U.S."), "end": len(text) - 1}
    enc = tokenizer.encode(text)
    spans = decode(one_hot(bio_tags(enc.offsets, {"holder": holder, "target": target})), enc.offsets, text)
    assert spans == {"holder": holder, "target": target}
    assert decode(np.zeros((len(enc.offsets), 5)) + [3, 0, 0, 0, 0], enc.offsets, text) == {
        "holder": None, "target": None}


def test_decoding_widens_to_whole_words_and_trims_punctuation(tokenizer):
    from stance.spans import TAGS, decode

    text = "Kerryson, angrily, accused (Russia)."
    enc = tokenizer.encode(text)
    tags = [0] * len(enc.tokens)
    tags[1] = TAGS.index("I-HOLDER")  # the first piece of "Kerryson" only, tagged I
    tags[enc.tokens.index(",")] = TAGS.index("I-HOLDER")
    k = enc.tokens.index("russia")
    tags[k - 1:k + 2] = [TAGS.index("B-TARGET"), TAGS.index("I-TARGET"), TAGS.index("I-TARGET")]
    spans = decode(one_hot(tags), enc.offsets, text)
    assert spans["holder"] == {"text": "Kerryson", "start": 0, "end": 8}
    assert spans["target"] == {"text": "Russia", "start": 28, "end": 34}


def test_decoding_takes_the_likelier_of_two_spans_and_never_overlaps_roles(tokenizer):
    from stance.spans import TAGS, decode

    text = "Police blamed the mayor and the council."
    enc = tokenizer.encode(text)
    logits = one_hot([0] * len(enc.tokens))
    mayor, council, police = (enc.tokens.index(w) for w in ("mayor", "council", "police"))
    logits[mayor, TAGS.index("B-TARGET")] = 9.0
    logits[council, TAGS.index("B-TARGET")] = 12.0
    # "police" looks like a holder and, less so, a target: the holder keeps it.
    logits[police, TAGS.index("B-HOLDER")] = 12.0
    logits[police, TAGS.index("B-TARGET")] = 11.0
    spans = decode(logits, enc.offsets, text)
    assert spans["holder"]["text"] == "Police" and spans["target"]["text"] == "council"
    logits[council, TAGS.index("B-TARGET")] = 0.0
    assert decode(logits, enc.offsets, text)["target"]["text"] == "mayor"


def test_span_metrics_by_hand_given_the_label_and_end_to_end():
    from stance.metrics import span_metrics

    def sp(text):
        return None if text is None else {"text": text, "start": 0, "end": len(text)}

    golds = ["accuse", "accuse", "deny", "support", "none", "deny"]
    preds = ["accuse", "accuse", "none", "support", "none", "deny"]
    gold = [{"holder": sp("Kerry"), "target": sp("Russia")},
            {"holder": sp("the senior official"), "target": sp("the plan")},
            {"holder": sp("He"), "target": sp("that")},
            {"holder": None, "target": sp("Brown")},
            {"holder": None, "target": None},  # a none row: not scored
            None]  # not annotated: not scored
    pred = [{"holder": sp("Kerry"), "target": sp("russia.")},  # normalised: both exact
            {"holder": sp("official"), "target": None},  # holder F1 2*(1/1*1/2)/(1.5) = 2/3; target missed
            {"holder": None, "target": None},  # wrong label: 0 end to end, not in "given the label"
            {"holder": None, "target": sp("Gordon Brown")},  # null == null; target F1 2/3
            {"holder": None, "target": None},
            {"holder": sp("x"), "target": sp("y")}]
    m = span_metrics(golds, preds, gold, pred)
    assert m["n"] == 4 and m["n_label_correct"] == 3
    assert m["holder"]["exact_given_label"] == pytest.approx(2 / 3)
    assert m["holder"]["f1_given_label"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert m["holder"]["f1_end_to_end"] == pytest.approx((1 + 2 / 3 + 1) / 4)
    assert m["target"]["exact_given_label"] == pytest.approx(1 / 3)
    assert m["target"]["f1_end_to_end"] == pytest.approx((1 + 0 + 2 / 3) / 4)
    assert span_metrics(["none"], ["none"], [None], [{"holder": None, "target": None}]) is None


def test_the_best_run_is_the_highest_scoring_span_by_brute_force():
    from stance.spans import _best_run

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 12))
        start, cont = rng.normal(size=n), rng.normal(size=n)
        start[0] = cont[0] = -1e4  # a barred token, like [CLS]
        best = max((start[i] + cont[i + 1:j + 1].sum(), i, j) for i in range(n) for j in range(i, n))
        score, i, j = _best_run(start, cont)
        assert score == pytest.approx(best[0]) and start[i] + cont[i + 1:j + 1].sum() == pytest.approx(score)


@pytest.mark.parametrize("text, span, expected", [
    ("Sen. Jane Roe (D-Mass.) accused him.", "Sen. Jane Roe (D-Mass.) ", "Sen. Jane Roe (D-Mass.)"),
    ("They backed (the plan).", "(the plan).", "the plan"),
    ("He blamed Smith Jr. for it.", "Smith Jr", "Smith Jr."),
    ("He blamed the U.S.", "the U.S", "the U.S."),
    ("He blamed \"the elite\", again.", "\"the elite\",", "the elite"),
])
def test_decoded_spans_keep_brackets_and_abbreviations_they_need(text, span, expected):
    from stance.spans import _to_chars

    start = text.index(span)
    assert _to_chars(text, start, start + len(span))["text"] == expected
