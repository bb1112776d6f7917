"""Holder/target spans in labeled data: read, checked row by row, carried through concatenation."""

import json

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
