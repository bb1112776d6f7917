import json

import pytest

from stance.errors import StanceError
from stance.modeling import StanceClassifier
from stance.predict import predict_articles

ARTICLE = ('Opposition Slams Budget\n\nThe U.S. Sen. Jane Roe (D-Mass.) accused the minister of lying on Jan. 5. '
           '"It is false," the spokesman said.\n\nLabour backed the plan. Dr. Smith met the mayor.')


@pytest.fixture(scope="module")
def clf(trained_model):
    return StanceClassifier.load(trained_model)


def read_jsonl(p):
    return [json.loads(x) for x in p.read_text().splitlines()]


def test_rows_have_offsets_and_scores(clf, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text(ARTICLE)
    summary = predict_articles(clf, [str(art)], out=tmp_path / "o.jsonl", quiet=True)
    rows = read_jsonl(tmp_path / "o.jsonl")
    assert summary.sentences == len(rows) == 5 and summary.articles == 1
    for i, r in enumerate(rows):
        assert ARTICLE[r["start"]:r["end"]] == r["text"]
        assert r["sent_idx"] == i and r["doc_id"] == str(art)
        assert set(r["scores"]) == set(clf.labels)
        top = max(r["scores"], key=r["scores"].get)
        # Argmax, unless the model's own dev-chosen threshold sends an unsure stance to none.
        assert r["label"] == top or (r["label"] == "none" and r["scores"][top] < clf.min_score)
        assert r["score"] == pytest.approx(max(r["scores"].values()), abs=1e-4)
    assert rows[1]["text"].startswith("The U.S. Sen. Jane Roe (D-Mass.)")


def test_predictions_match_direct_classification(clf, tmp_path):
    """Streaming with small windows and batches gives the same labels as one call."""
    arts = tmp_path / "arts"
    arts.mkdir()
    for i in range(7):
        (arts / f"{i}.txt").write_text(ARTICLE.replace("Jan. 5", f"Jan. {i}") * (i % 3 + 1))
    predict_articles(clf, [str(arts)], out=tmp_path / "o.jsonl", batch_size=3, window=5, quiet=True)
    rows = read_jsonl(tmp_path / "o.jsonl")
    assert [r["label"] for r in rows] == clf.predict([r["text"] for r in rows])
    assert [r["doc_id"] for r in rows] == sorted((r["doc_id"] for r in rows), key=lambda d: int(d[-5]))


def test_csv_jsonl_input_and_min_score(clf, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "x1", "text": ARTICLE}) + "\n" + json.dumps({"id": "empty", "text": ""}) + "\n")
    predict_articles(clf, [str(src)], out=tmp_path / "o.csv", min_score=1.0, quiet=True)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    assert len(rows) == 5 and {r["doc_id"] for r in rows} == {"x1"}
    assert {r["label"] for r in rows} == {"none"}  # every score < 1.0 falls back to none
    assert {f"score_{lab}" for lab in clf.labels} <= set(rows[0])


def test_long_sentences_are_truncated_and_counted(clf, tmp_path):
    art = tmp_path / "long.txt"
    art.write_text("The minister " + "really " * 200 + "denied it. Short one here.")
    summary = predict_articles(clf, [str(art)], out=tmp_path / "o.jsonl", quiet=True)
    assert summary.truncated == 1 and summary.sentences == 2


def test_html_main_text(clf, tmp_path):
    page = tmp_path / "p.html"
    body = " ".join(["The minister accused the union of lying about the strike figures."] * 3)
    page.write_text(f"<html><head><title>t</title></head><body><nav>Home | News | Sport</nav>"
                    f"<article><h1>Row over strike</h1><p>{body}</p><p>The union denied the claims "
                    f"on Tuesday and said its figures were correct.</p></article>"
                    f"<footer>Copyright 2024 Example News. All rights reserved.</footer></body></html>")
    predict_articles(clf, [str(page)], out=tmp_path / "o.jsonl", quiet=True)
    texts = [r["text"] for r in read_jsonl(tmp_path / "o.jsonl")]
    assert any("denied the claims" in t for t in texts)
    assert not any("Home | News" in t or "Copyright" in t for t in texts)


def test_empty_binary_and_undecodable_files(clf, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02PNG")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "ok.txt").write_text("Labour backed the plan.")
    summary = predict_articles(clf, [str(tmp_path)], out=tmp_path / "o.jsonl", quiet=True)
    assert summary.sentences == 1 and len(summary.skipped_files) == 2
    err = capsys.readouterr().err
    assert "bin.txt: binary file skipped" in err and "latin.txt: not UTF-8" in err


def test_missing_input_and_broken_jsonl_do_not_clobber_output(clf, tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("previous results\n")
    with pytest.raises(StanceError, match="nope.txt: article file not found"):
        predict_articles(clf, [str(tmp_path / "nope.txt")], out=out, quiet=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "text": "Fine. Ok then."}) + "\n{broken\n")
    with pytest.raises(StanceError, match="bad.jsonl:2: broken JSON"):
        predict_articles(clf, [str(bad)], out=out, quiet=True)
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "o.jsonl"]


def test_the_models_own_threshold_applies_unless_overridden(trained_model, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text(ARTICLE)
    clf = StanceClassifier.load(trained_model)
    clf.min_score = 1.0  # as if dev had chosen a threshold nothing reaches
    predict_articles(clf, [str(art)], out=tmp_path / "own.jsonl", quiet=True)
    assert {r["label"] for r in read_jsonl(tmp_path / "own.jsonl")} == {"none"}
    predict_articles(clf, [str(art)], out=tmp_path / "argmax.jsonl", min_score=0.0, quiet=True)
    rows = read_jsonl(tmp_path / "argmax.jsonl")
    assert [r["label"] for r in rows] == [max(r["scores"], key=r["scores"].get) for r in rows]
