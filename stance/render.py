"""HTML report: prediction rows -> one self-contained page (inline CSS and a little JS, no network).

Each article is shown with every sentence in place: stance sentences highlighted by label in
a colour-blind-safe palette (Okabe-Ito) and preceded by a text marker such as ``[ACC]``, so
the page also reads in greyscale; the scores show on hover; holder and target, when rows carry
them, are marked inside their sentence.  The header has totals per label, a compact bar of
each article's labels in reading order (a link to the article), a label filter, and the model
name and threshold.  Articles sit in ``<details>`` (open only for small reports) with
``content-visibility: auto``, so 5,000 articles stay responsive.  Every piece of text goes
through ``html.escape``: an article holding ``<script>`` shows it as text.

``stance serve``'s page shows the same rendering: it inserts ``render_fragment``'s output
into a page that carries ``STYLE`` and ``SCRIPT``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies; the
# marker text and the underline style carry the label where colour cannot.
_COLOURS = {"accuse": "#D55E00", "deny": "#0072B2", "support": "#009E73"}
_MORE_COLOURS = ["#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
_UNDERLINES = ["solid", "double", "dashed", "dotted", "wavy"]
NONE_LABEL = "none"
# Above this many articles they start collapsed: opening them all makes the browser lay out
# every sentence of every article before it can scroll.
OPEN_UP_TO = 20


@dataclass
class Doc:
    """One article: its rows in reading order, and its text when it is at hand."""

    doc_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None


def group_rows(rows: Iterable[dict[str, Any]]) -> list[Doc]:
    """Rows into articles, in input order; a new article starts where doc_id changes or sent_idx goes back.

    Grouping by runs, not by id, keeps two inputs that share an id (the same file given twice) apart.
    """
    docs: list[Doc] = []
    for row in rows:
        last = docs[-1] if docs else None
        if last is None or last.doc_id != str(row["doc_id"]) or row["sent_idx"] <= last.rows[-1]["sent_idx"]:
            docs.append(Doc(str(row["doc_id"])))
        docs[-1].rows.append(row)
    return docs


def label_order(docs: Sequence[Doc], labels: Sequence[str] | None = None) -> list[str]:
    """The model's labels, or those the rows use in order of first use; ``none`` last; ones the rows add after."""
    order = list(labels or [])
    for doc in docs:
        for row in doc.rows:
            if row["label"] not in order:
                order.append(row["label"])
    if NONE_LABEL in order:
        order.remove(NONE_LABEL)
        order.append(NONE_LABEL)
    return order


def marker(label: str) -> str:
    return f"[{label[:3].upper()}]"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _label_css(labels: Sequence[str]) -> str:
    """Colours, underline styles and filter rules per label; classes are by index, since labels are free text."""
    extra = iter(_MORE_COLOURS)
    css = []
    for i, lab in enumerate(labels):
        if lab == NONE_LABEL:
            continue
        colour = _COLOURS.get(lab) or next(extra, "#000000")
        line = _UNDERLINES[i % len(_UNDERLINES)]
        css.append(f".stance-report .l{i}{{--c:{colour};text-decoration:underline {line} {colour};}}"
                   f".stance-report[data-filter=l{i}] .art:not(.has-l{i}),"
                   f".stance-report[data-filter=l{i}] .bars li:not(.has-l{i}){{display:none}}"
                   f".stance-report[data-filter=l{i}] .s:not(.l{i}){{background:none;text-decoration:none}}"
                   f".stance-report[data-filter=l{i}] .s:not(.l{i}) .tag{{display:none}}")
    return "".join(css)


def _title(row: dict[str, Any]) -> str:
    scores = row.get("scores") or {}
    detail = ", ".join(f"{k} {float(v):.2f}" for k, v in scores.items())
    return f"{row['label']} {float(row['score']):.2f}" + (f" ({detail})" if detail else "")


def _span(row: dict[str, Any], role: str) -> tuple[int, int] | None:
    """Where the row's holder or target sits inside its sentence; None when absent or not inside it."""
    span = row.get(role)
    if not isinstance(span, dict):
        return None
    try:
        a, b = int(span["start"]) - int(row["start"]), int(span["end"]) - int(row["start"])
    except (KeyError, TypeError, ValueError):
        return None
    text = row["text"]
    return (a, b) if 0 <= a < b <= len(text) and text[a:b] == span.get("text") else None


def _sentence_inner(row: dict[str, Any]) -> str:
    """The sentence text, escaped, with holder and target marked (the first of two overlapping spans wins)."""
    text = row["text"]
    marks = sorted((s, r) for r in ("holder", "target") if (s := _span(row, r)) is not None)
    out, pos = [], 0
    for (a, b), role in marks:
        if a < pos:
            continue
        out.append(_e(text[pos:a]))
        out.append(f'<span class="{role}">{_e(text[a:b])}<sub class="role">{role}</sub></span>')
        pos = b
    out.append(_e(text[pos:]))
    return "".join(out)


def _sentence(row: dict[str, Any], index: dict[str, int]) -> str:
    i = index[row["label"]]
    cls = "s ln" if row["label"] == NONE_LABEL else f"s l{i}"
    tag = "" if row["label"] == NONE_LABEL else f'<b class="tag">{_e(marker(row["label"]))}</b> '
    return (f'<span class="{cls}" data-label="{_e(row["label"])}" title="{_e(_title(row))}">'
            f"{tag}{_sentence_inner(row)}</span>")


def _in_place(doc: Doc) -> bool:
    """Whether the rows can be laid into the article text: each one where its offsets say, in order."""
    if doc.text is None:
        return False
    pos = 0
    for row in doc.rows:
        start, end = row["start"], row["end"]
        if not (isinstance(start, int) and isinstance(end, int) and pos <= start <= end):
            return False
        if doc.text[start:end] != row["text"]:
            return False
        pos = end
    return True


def _article_text(doc: Doc, index: dict[str, int]) -> str:
    """The full article with its sentences in place when the text is at hand, else the sentences in order."""
    if not _in_place(doc):
        return " ".join(_sentence(r, index) for r in doc.rows)
    assert doc.text is not None
    out, pos = [], 0
    for row in doc.rows:
        out.append(_e(doc.text[pos:row["start"]]))
        out.append(_sentence(row, index))
        pos = row["end"]
    out.append(_e(doc.text[pos:]))
    return "".join(out)


def _stance_rows(doc: Doc) -> list[dict[str, Any]]:
    return [r for r in doc.rows if r["label"] != NONE_LABEL]


def _has(doc: Doc, index: dict[str, int]) -> str:
    return " ".join(sorted({f"has-l{index[r['label']]}" for r in _stance_rows(doc)}))


def _article(n: int, doc: Doc, index: dict[str, int], open_: bool) -> str:
    counts: dict[str, int] = {}
    for r in _stance_rows(doc):
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    summary = ", ".join(f"{_e(marker(k))} {v}" for k, v in sorted(counts.items(), key=lambda kv: index[kv[0]]))
    summary = summary or "no stance"
    return (f'<details class="art {_has(doc, index)}" id="a{n}"{" open" if open_ else ""}>'
            f'<summary><span class="doc">{_e(doc.doc_id)}</span> '
            f'<span class="counts">{summary}; {len(doc.rows)} sentences</span></summary>'
            f'<div class="text">{_article_text(doc, index)}</div></details>')


def _bar(n: int, doc: Doc, index: dict[str, int]) -> str:
    cells = "".join(f'<i class="l{index[r["label"]]}">{_e(r["label"][:1].upper())}</i>' for r in _stance_rows(doc))
    names = ", ".join(r["label"] for r in _stance_rows(doc)) or "no stance sentences"
    return (f'<li class="{_has(doc, index)}"><a href="#a{n}" aria-label="{_e(doc.doc_id)}: {_e(names)}">'
            f'<span class="doc" title="{_e(doc.doc_id)}">{_e(_short_name(doc.doc_id))}</span>'
            f'<span class="bar" aria-hidden="true">{cells}</span></a></li>')


def _short_name(doc_id: str) -> str:
    # A file's name tells articles apart; a long folder path in front would fill the bar's label.
    return doc_id.rstrip("/").rsplit("/", 1)[-1] or doc_id


def _totals(docs: Sequence[Doc], labels: list[str], index: dict[str, int]) -> str:
    totals = {lab: 0 for lab in labels}
    for doc in docs:
        for r in doc.rows:
            totals[r["label"]] += 1
    items = []
    for lab in labels:
        none = lab == NONE_LABEL
        tag = "" if none else f'<b class="tag">{_e(marker(lab))}</b> '
        cls = "ln" if none else f"l{index[lab]}"
        items.append(f'<li class="{cls}">{tag}{_e(lab)} <strong>{totals[lab]}</strong></li>')
    return f'<ul class="totals" aria-label="sentences per label">{"".join(items)}</ul>'


def _filter(labels: list[str], index: dict[str, int], uid: str) -> str:
    choices = [("all", "all labels")] + [(f"l{index[lab]}", lab) for lab in labels if lab != NONE_LABEL]
    radios = "".join(f'<label><input type="radio" name="filter-{uid}" value="{v}"{" checked" if v == "all" else ""}>'
                     f" {_e(text)}</label>" for v, text in choices)
    return f'<fieldset class="filter"><legend>Show articles with</legend>{radios}</fieldset>'


def _header(docs: Sequence[Doc], labels: list[str], index: dict[str, int], model: str | None,
            threshold: float | None, uid: str) -> str:
    n_sent = sum(len(d.rows) for d in docs)
    thr = "not recorded" if threshold is None else f"{threshold:g}"
    bars = "".join(_bar(n, d, index) for n, d in enumerate(docs))
    return (f'<p class="meta">model <code>{_e(model or "unknown")}</code>; threshold {_e(thr)} (stance predictions '
            f"scoring under it are <code>none</code>); {len(docs)} articles, {n_sent} sentences</p>"
            f"{_totals(docs, labels, index)}{_filter(labels, index, uid)}"
            f'<details class="bars-box"{" open" if len(docs) <= 200 else ""}><summary>Articles, labels in reading '
            f'order</summary><ol class="bars">{bars}</ol></details>')


def render_fragment(docs: Sequence[Doc], model: str | None = None, threshold: float | None = None,
                    labels: Sequence[str] | None = None, uid: str = "r") -> str:
    """The report's body (header and articles), for a page that carries ``STYLE`` and ``SCRIPT``.

    ``uid`` keeps the filter's radio group apart from another report's on the same page.
    """
    order = label_order(docs, labels)
    index = {lab: i for i, lab in enumerate(order)}
    open_ = len(docs) <= OPEN_UP_TO
    articles = "".join(_article(n, d, index, open_) for n, d in enumerate(docs))
    return (f'<div class="stance-report" data-filter="all"><style>{_label_css(order)}</style>'
            f"{_header(docs, order, index, model, threshold, uid)}"
            f'<div class="articles">{articles or "<p>No sentences.</p>"}</div></div>')


def render_report(docs: Sequence[Doc], model: str | None = None, threshold: float | None = None,
                  labels: Sequence[str] | None = None, title: str = "stance report") -> str:
    """A standalone HTML page: one file, nothing fetched from the network."""
    return ("<!doctype html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><title>{_e(title)}</title><style>{STYLE}</style></head>'
            f"<body><main><h1>{_e(title)}</h1>{render_fragment(docs, model, threshold, labels)}</main>"
            f"<script>{SCRIPT}</script></body></html>\n")


STYLE = """
:root{color-scheme:light;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;background:#fff}
body{margin:0}main{max-width:60rem;margin:0 auto;padding:1rem}h1{font-size:1.5rem;margin:.2rem 0 .6rem}
:focus-visible{outline:3px solid #000;outline-offset:2px;box-shadow:0 0 0 5px #ffd400}
.stance-report .meta{color:#333;margin:.2rem 0}
.stance-report .totals li{text-decoration:none}
.stance-report .totals{display:flex;flex-wrap:wrap;gap:.4rem 1rem;list-style:none;padding:0;margin:.5rem 0}
.stance-report .filter{border:1px solid #999;border-radius:6px;display:flex;flex-wrap:wrap;gap:.3rem 1rem;
 margin:.5rem 0}
.stance-report .filter label{cursor:pointer;padding:.15rem 0}
.stance-report .bars{list-style:none;padding:0;margin:.3rem 0;max-height:40vh;overflow:auto}
.stance-report .bars li{margin:1px 0}.stance-report .bars a{display:flex;gap:.5rem;align-items:center;color:inherit}
.stance-report .bars .doc{flex:0 1 14rem;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.stance-report .bar{display:flex;flex-wrap:wrap;gap:1px}
.stance-report .bar i{font:bold 10px/14px monospace;width:12px;text-align:center;color:#fff;background:var(--c);
 text-decoration:none}
.stance-report .art{border-top:1px solid #ccc;padding:.4rem 0;content-visibility:auto;contain-intrinsic-size:auto 3rem}
.stance-report .art>summary{cursor:pointer;font-weight:600}.stance-report .counts{font-weight:400;color:#333}
.stance-report .text{white-space:pre-wrap;overflow-wrap:anywhere;margin:.4rem 0}
.stance-report .s:not(.ln){background:#eee;background:color-mix(in srgb,var(--c) 16%,#fff);
 text-decoration-thickness:2px;text-underline-offset:3px;border-radius:3px}
.stance-report .tag{font:bold .72em monospace;color:#fff;background:var(--c);padding:0 .2em;border-radius:3px}
.stance-report .holder,.stance-report .target{font-weight:700}
.stance-report .holder{border-bottom:3px solid #000}.stance-report .target{border-bottom:3px dotted #000}
.stance-report .role{font:italic .7em sans-serif;color:#333;margin-left:1px}
@media print{.stance-report .art{content-visibility:visible}}
"""

# Event delegation on the document, so the filter also works on fragments inserted later (the serve page);
# opening an article's <details> when a bar links to it.
SCRIPT = """
document.addEventListener('change',function(e){var t=e.target;
 if(t.matches&&t.matches('.stance-report .filter input')){t.closest('.stance-report').dataset.filter=t.value}});
function stanceOpen(id){var d=document.getElementById(id);if(d&&d.tagName==='DETAILS'){d.open=true}}
document.addEventListener('click',function(e){var a=e.target.closest&&e.target.closest('.stance-report .bars a');
 if(a){stanceOpen(a.getAttribute('href').slice(1))}});
if(location.hash){stanceOpen(location.hash.slice(1))}
"""
