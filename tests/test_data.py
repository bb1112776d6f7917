import pytest

from stance.data import read_labeled
from stance.errors import StanceError

LABELS = ["accuse", "deny", "support", "none"]


def test_jsonl_extra_columns_ignored(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "A said B lied.", "label": "accuse", "source": "x", "id": 1}\n\n'
                 '{"text": "B denied it.", "label": "deny"}\n')
    d = read_labeled(p, LABELS)
    assert d.texts == ["A said B lied.", "B denied it."] and d.labels == ["accuse", "deny"]


def test_csv_with_custom_columns(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('sentence,gold,other\n"Hi, there.",none,1\n"They backed him.",support,2\n')
    d = read_labeled(p, LABELS, text_column="sentence", label_column="gold")
    assert d.labels == ["none", "support"] and d.texts[0] == "Hi, there."


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("d.jsonl", '{"text": "ok", "label": "none"}\n{"text": "x", "label": "acuse"}\n',
         "d.jsonl:2: unknown label 'acuse'"),
        ("d.jsonl", '{"text": "ok", "label": "none"}\n{"text": "x", "label": \n', "d.jsonl:2: broken JSON"),
        ("d.jsonl", '{"label": "none"}\n', "d.jsonl:1: missing column 'text'"),
        ("d.jsonl", '{"text": "", "label": "none"}\n', "d.jsonl:1: empty or non-text 'text'"),
        ("d.jsonl", '[1, 2]\n', "d.jsonl:1: expected a JSON object"),
        ("d.csv", "text,label\nok,none\nbad,blame\n", "d.csv:3: unknown label 'blame'"),
        ("d.csv", "sentence,label\nok,none\n", "d.csv:2: missing column 'text'"),
        ("d.parquet", "x", "unsupported data format"),
        ("d.jsonl", "", "d.jsonl: no rows"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path, name, content, expected):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(StanceError) as e:
        read_labeled(p, LABELS)
    assert expected in str(e.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(StanceError, match="data file not found"):
        read_labeled(tmp_path / "none.jsonl", LABELS)
    p = tmp_path / "bin.jsonl"
    p.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(StanceError, match="not a UTF-8 text file"):
        read_labeled(p, LABELS)


def test_list_of_files_is_concatenated_and_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.csv"
    a.write_text('{"text": "A said B lied.", "label": "accuse"}\n')
    b.write_text("text,label\nB denied it.,deny\nThey backed him.,support\n")
    d = read_labeled([a, b], LABELS)
    assert d.texts == ["A said B lied.", "B denied it.", "They backed him."]
    assert d.labels == ["accuse", "deny", "support"] and d.path == f"{a} + {b}"
    b.write_text("text,label\nok,none\nbad,blame\n")
    with pytest.raises(StanceError, match="b.csv:3: unknown label 'blame'"):
        read_labeled([a, b], LABELS)
    with pytest.raises(StanceError, match="empty list"):
        read_labeled([], LABELS)


@pytest.mark.parametrize("label", ["x" * 50_000, ["accuse"] * 5_000, {"accuse": 1}])
def test_a_long_or_non_text_label_is_quoted_cut_short(tmp_path, label):
    import json

    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"text": "ok", "label": label}) + "\n")
    with pytest.raises(StanceError) as e:
        read_labeled(p, LABELS)
    message = str(e.value).replace(str(p), "d.jsonl")
    assert message.startswith("d.jsonl:1: unknown label ") and len(message) < 200, message[:300]
