"""The HTML report: `stance predict --format html`, `stance render`, and stance.render itself."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from stance.render import OPEN_UP_TO, Doc, group_rows, render_report
from tests.test_cli import assert_one_line_error, run

LABELS = ["accuse", "deny", "support", "none"]


def row(doc: str, i: int, article: str, sentence: str, label: str, score: float = 0.9, **extra) -> dict:
    start = article.index(sentence)
    rest = (1 - score) / 3
    scores = {lab: round(score if lab == label else rest, 4) for lab in LABELS}
    return {"doc_id": doc, "sent_idx": i, "start": start, "end": start + len(sentence), "text": sentence,
            "label": label, "score": score, "scores": scores, **extra}


class Elements(HTMLParser):
    """What a browser's parser makes of the page: elements, their attributes and text, and comments."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.comments: list[str] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_comment(self, data):
        self.comments.append(data)

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str, **attrs) -> int:
        return sum(t == tag and all(a.get(k) == v for k, v in attrs.items()) for t, a in self.tags)


ARTICLE = ("Minister quits <script>alert('x')</script>\n\n"
           "The minister accused the opposition of lying. <!-- hidden? --> Police met the mayor. "
           "The union denied it.")


def article_rows(doc: str = "a.txt") -> list[dict]:
    return [row(doc, 0, ARTICLE, "The minister accused the opposition of lying.", "accuse", 0.93),
            row(doc, 1, ARTICLE, "Police met the mayor.", "none", 0.8),
            row(doc, 2, ARTICLE, "The union denied it.", "deny", 0.7)]


def test_script_tags_and_html_comments_in_an_article_show_as_text():
    rows = article_rows()
    rows.append(row("a.txt", 3, ARTICLE + " <b>x</b>", "<b>x</b>", "support"))
    page = render_report([Doc("<i>doc</i>", rows, ARTICLE + " <b>x</b>")], model="<m>", title="<t>")
    parsed = Elements(page)
    assert parsed.count("script") == 1  # the report's own filter script, nothing from the article
    assert parsed.comments == []
    assert all(a == {"class": "tag"} for t, a in parsed.tags if t == "b")  # label markers only, no <b>x</b>
    assert all(a.get("class", "").startswith("l") for t, a in parsed.tags if t == "i")  # bar cells only
    text = "".join(parsed.text)
    for shown in ("<script>alert('x')</script>", "<!-- hidden? -->", "<b>x</b>", "<i>doc</i>", "<m>", "<t>"):
        assert shown in text


def test_every_sentence_is_highlighted_by_label_with_a_text_marker_and_its_scores_on_hover():
    parsed = Elements(render_report([Doc("a.txt", article_rows(), ARTICLE)], labels=LABELS))
    spans = {a["data-label"]: a for t, a in parsed.tags if t == "span" and "data-label" in a}
    assert spans["accuse"]["class"] == "s l0" and spans["deny"]["class"] == "s l1" and spans["none"]["class"] == "s ln"
    assert spans["accuse"]["title"] == "accuse 0.93 (accuse 0.93, deny 0.02, support 0.02, none 0.02)"
    text = "".join(parsed.text)
    assert "[ACC] The minister accused" in text and "[DEN] The union denied it." in text
    assert "[NON]" not in text  # none sentences are plain text


def test_the_whole_article_is_shown_with_its_sentences_in_place_when_its_text_is_at_hand():
    with_text = "".join(Elements(render_report([Doc("a.txt", article_rows(), ARTICLE)])).text)
    assert "Minister quits" in with_text and "<!-- hidden? --> Police met" in with_text
    without = "".join(Elements(render_report([Doc("a.txt", article_rows())])).text)
    assert "Minister quits" not in without and "of lying. Police met the mayor. [DEN] The union" in without
    # A text the offsets do not fit (another version of the article) falls back to the sentences.
    other = "".join(Elements(render_report([Doc("a.txt", article_rows(), "Another text altogether.")])).text)
    assert "Another text" not in other and "Police met the mayor." in other


def test_holder_and_target_are_marked_inside_their_sentence_and_rows_without_them_still_render():
    s = "The minister accused the opposition of lying."
    start = ARTICLE.index(s)
    holder = {"text": "The minister", "start": start, "end": start + 12}
    target = {"text": "the opposition", "start": start + 21, "end": start + 35}
    rows = article_rows()
    rows[0] |= {"holder": holder, "target": target}
    rows[1] |= {"holder": None, "target": None}
    page = render_report([Doc("a.txt", rows, ARTICLE)])
    assert ('<span class="holder">The minister<sub class="role">holder</sub></span> accused '
            '<span class="target">the opposition<sub class="role">target</sub></span> of lying.') in page
    assert page.count('class="holder"') == 1 and page.count('class="target"') == 1


def test_the_header_has_totals_a_bar_per_article_in_reading_order_a_filter_and_the_model_and_threshold():
    docs = [Doc("a.txt", article_rows("a.txt"), ARTICLE), Doc("b.txt", article_rows("b.txt")[1:])]
    page = render_report(docs, model="stance-minilm", threshold=0.45, labels=LABELS)
    parsed = Elements(page)
    assert "model stance-minilm; threshold 0.45" in "".join(parsed.text)
    assert '<li class="l0"><b class="tag">[ACC]</b> accuse <strong>1</strong></li>' in page
    assert '<li class="ln">none <strong>2</strong></li>' in page
    # Bars: a's labels in reading order (accuse, deny; none left out), each linking to its article.
    assert ('<a href="#a0" aria-label="a.txt: accuse, deny"><span class="doc" title="a.txt">a.txt</span>'
            '<span class="bar" aria-hidden="true"><i class="l0">A</i><i class="l1">D</i></span></a>') in page
    assert parsed.count("details", id="a1", **{"class": "art has-l1"}) == 1
    radios = [a["value"] for t, a in parsed.tags if t == "input" and a.get("type") == "radio"]
    assert radios == ["all", "l0", "l1", "l2"]


def test_rows_are_grouped_into_articles_by_runs_so_two_inputs_with_one_id_stay_apart():
    rows = article_rows("x") + article_rows("x") + article_rows("y")
    assert [(d.doc_id, len(d.rows)) for d in group_rows(rows)] == [("x", 3), ("x", 3), ("y", 3)]


def test_a_large_report_starts_with_its_articles_collapsed():
    small = [Doc(f"d{i}", article_rows(f"d{i}")) for i in range(OPEN_UP_TO)]
    assert render_report(small).count("<details class=\"art") == render_report(small).count(" open>") - 1
    large = small + [Doc("one more", article_rows("one more"))]
    page = render_report(large)
    assert page.count("<details class=\"art") == OPEN_UP_TO + 1
    assert all(" open" not in part.split(">", 1)[0] for part in page.split("<details class=\"art")[1:])


def test_predict_format_html_writes_one_self_contained_report_from_the_out_suffix(trained_model, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("Breaking <script>x()</script>\n\nThe minister accused the "
                                           "opposition on Monday. Police met the mayor on Monday.")
    (tmp_path / "in" / "b.txt").write_text("The union denied the council on Monday.")
    r = run("predict", trained_model, tmp_path / "in", "--out", tmp_path / "r.html", "--quiet")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    parsed = Elements(page)
    assert parsed.count("script") == 1 and not any(a.get("src") or a.get("href", "#").startswith("http")
                                                   for _, a in parsed.tags)
    text = "".join(parsed.text)
    assert f"model {trained_model.name} (torch); threshold 0" in text
    assert "Breaking <script>x()</script>" in text and "[ACC] The minister accused the opposition" in text
    assert "[DEN] The union denied the council on Monday." in text
    assert [p for p in (tmp_path).iterdir() if p.name.startswith(".")] == []  # no lock or temporary left
    to_stdout = run("predict", trained_model, tmp_path / "in" / "b.txt", "--format", "html", "--quiet")
    assert to_stdout.exit_code == 0 and to_stdout.stdout.startswith("<!doctype html>")
    assert "[DEN] The union denied the council on Monday." in "".join(Elements(to_stdout.stdout).text)


def test_render_of_predict_jsonl_with_the_articles_and_model_equals_predict_format_html(trained_model, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text("Headline\n\nCritics blamed the council on Monday. The mayor praised the union on Monday.")
    assert run("predict", trained_model, art, "--out", tmp_path / "p.jsonl", "--quiet").exit_code == 0
    assert run("predict", trained_model, art, "--format", "html", "--out", tmp_path / "p.out", "--quiet").exit_code == 0
    r = run("render", tmp_path / "p.jsonl", "--out", tmp_path / "r.html", "--articles", art, "--model", trained_model)
    assert r.exit_code == 0, r.output
    assert "1 articles, 3 sentences" in r.stderr
    expected = (tmp_path / "p.out").read_text().replace(f"{trained_model.name} (torch)", trained_model.name)
    assert (tmp_path / "r.html").read_text() == expected


def test_predict_format_html_cannot_resume(trained_model, tmp_path):
    art = tmp_path / "a.txt"
    art.write_text("Police met the mayor.")
    r = run("predict", trained_model, art, "--out", tmp_path / "r.html", "--resume")
    assert_one_line_error(r, "--resume: not available with --format html")


def test_render_names_the_line_and_key_of_a_bad_row_and_keeps_the_previous_report(tmp_path):
    good = json.dumps(article_rows()[0])
    out = tmp_path / "r.html"
    out.write_text("previous report")
    start = ARTICLE.index("The minister")
    cases = {
        "{broken": "p.jsonl:2: not a JSON line",
        json.dumps({k: v for k, v in article_rows()[0].items() if k != "label"}): "p.jsonl:2: missing key 'label'",
        json.dumps(article_rows()[0] | {"start": "7"}): "p.jsonl:2: start: unexpected value '7'",
        json.dumps(article_rows()[0] | {"holder": {"text": "The minister", "start": start + 1, "end": start + 13}}):
            "p.jsonl:2: holder: offsets",
        json.dumps(article_rows()[0] | {"target": "the opposition"}): "p.jsonl:2: target: expected null or",
    }
    for line, message in cases.items():
        (tmp_path / "p.jsonl").write_text(good + "\n" + line + "\n")
        assert_one_line_error(run("render", tmp_path / "p.jsonl", "--out", out), message)
        assert out.read_text() == "previous report"
    missing = run("render", tmp_path / "nope.jsonl", "--out", out)
    assert_one_line_error(missing, "nope.jsonl: predictions file not found")
