"""Measure the HTML report for many articles: file size, render time, and Chromium's first paint.

Articles are built from the labeled corpus (data/: real news sentences, gold labels standing in for
predictions), --sentences per article in paragraphs of five, so no model is needed and the page
holds what a real report holds.  The page is opened from disk in Debian's chromium (headless,
driven by Playwright) --rounds times; first paint, first contentful paint and the load event are
read from the browser's Performance API, and so is the time a label filter takes to show.

    python scripts/bench_report.py --articles 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stance.render import Doc, render_report

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["accuse", "deny", "support", "none"]

# Time from a click on the filter to the frame after it: how long the page is busy applying it.
FILTER_MS = """async () => {
  const input = document.querySelector('.stance-report .filter input[value="l1"]');
  const t0 = performance.now();
  input.click();
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""


def corpus_rows() -> list[dict]:
    rows = []
    for path in sorted((ROOT / "data").glob("**/*.jsonl")):
        if "annotation" in path.parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if isinstance(r.get("text"), str) and r.get("label") in LABELS:
                rows.append(r)
    return rows


def build_docs(n_articles: int, per_article: int, seed: int = 0) -> list[Doc]:
    pool = corpus_rows()
    rng = random.Random(seed)
    docs = []
    for a in range(n_articles):
        picked = rng.sample(pool, per_article)
        text, rows = f"Article {a}\n\n", []
        for i, r in enumerate(picked):
            if i and i % 5 == 0:
                text += "\n\n"
            elif i:
                text += " "
            start = len(text)
            text += r["text"]
            score = round(rng.uniform(0.5, 1.0), 4)
            rest = round((1 - score) / 3, 4)
            rows.append({"doc_id": f"article-{a:05d}.txt", "sent_idx": i, "start": start, "end": len(text),
                         "text": r["text"], "label": r["label"], "score": score,
                         "scores": {lab: score if lab == r["label"] else rest for lab in LABELS}})
        docs.append(Doc(f"article-{a:05d}.txt", rows, text))
    return docs


def paint_times(page_path: Path, rounds: int, chromium: str) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri(), wait_until="load", timeout=300_000)
            # A small page can finish loading before its first paint is recorded.
            page.wait_for_function("performance.getEntriesByType('paint').length >= 2", timeout=60_000)
            paints = {e["name"]: e["startTime"] for e in page.evaluate(
                "performance.getEntriesByType('paint').map(e => ({name: e.name, startTime: e.startTime}))")}
            load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            out.append({"first_paint_ms": paints.get("first-paint", float("nan")),
                        "first_contentful_paint_ms": paints.get("first-contentful-paint", float("nan")),
                        "load_ms": load, "filter_ms": page.evaluate(FILTER_MS)})
            page.close()
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=5000)
    ap.add_argument("--sentences", type=int, default=30, help="sentences per article")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    docs = build_docs(args.articles, args.sentences)
    t0 = time.perf_counter()
    page = render_report(docs, model="gold labels (no model)", threshold=None, labels=LABELS)
    render_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="stance-bench-report-") as tmp:
        path = Path(tmp) / "report.html"
        path.write_text(page, encoding="utf-8")
        size = path.stat().st_size
        runs = paint_times(path, args.rounds, args.chromium)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    load = os.getloadavg()
    print(f"{args.articles} articles x {args.sentences} sentences = {args.articles * args.sentences} rows; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPU cores")
    print(f"file size: {size / 1e6:.1f} MB ({size} bytes); rendered in {render_s:.2f} s")
    print(f"chromium, median of {args.rounds}: first paint {med['first_paint_ms']:.0f} ms, first contentful paint "
          f"{med['first_contentful_paint_ms']:.0f} ms, load event {med['load_ms']:.0f} ms, "
          f"label filter {med['filter_ms']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps({"articles": args.articles, "sentences": args.sentences, "bytes": size,
                                         "render_s": render_s, "runs": runs, "median": med}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
