"""A real browser on the serve page and on an HTML report: Debian's chromium, driven by Playwright.

Not skipped when chromium is missing: it fails, and .ci/run installs it.  Screenshots go to the
test's tmp folder; with ``STANCE_SCREENSHOTS=docs`` they are also written to docs/ (the README's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from stance.modeling import StanceClassifier
from stance.testing import running_server
from tests.test_cli import run

CHROMIUM = "/usr/bin/chromium"
ACCUSATION = "The minister accused the opposition on Monday."
DENIAL = "The union denied the council on Monday."
HEADLINE = "The mayor met the council"
ARTICLE = f"{HEADLINE}\n\n{ACCUSATION} Police met the mayor on Monday. {DENIAL}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def model(trained_model, tmp_path_factory):
    # The tiny model is trained on these verbs; check it labels our sentences, so a failure below is the page's.
    sentences = [ACCUSATION, DENIAL, "Police met the mayor on Monday.", HEADLINE, "Critics met the union"]
    assert StanceClassifier.load(trained_model).predict(sentences) == ["accuse", "deny", "none", "none", "none"]
    named = tmp_path_factory.mktemp("models") / "stance-tiny-test-model"  # the name the pages show
    shutil.copytree(trained_model, named)
    return named


# Resolved now: a test below changes the working directory.
SHOTS = Path(os.environ["STANCE_SCREENSHOTS"]).resolve() if os.environ.get("STANCE_SCREENSHOTS") else None


def screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, SHOTS / name)


def test_the_page_highlights_an_accusation_and_a_denial_pasted_and_sent_with_the_keyboard_alone(
        browser, model, tmp_path):
    with running_server(model) as (_, url):
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(url)
        page.get_by_label("Article text").focus()
        page.keyboard.insert_text(ARTICLE)  # what a paste does
        for _ in range(6):  # Tab through the form to the button: the checkbox and file input come first
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "go":
                break
        assert page.evaluate("document.activeElement.textContent") == "Find stances"
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # visible focus
        page.keyboard.press("Enter")
        accuse = page.locator('#result .s[data-label="accuse"]')
        accuse.wait_for(timeout=30_000)
        deny = page.locator('#result .s[data-label="deny"]')
        assert accuse.count() == 1 and deny.count() == 1
        assert accuse.inner_text() == f"[ACC] {ACCUSATION}" and deny.inner_text() == f"[DEN] {DENIAL}"
        colours = {s.evaluate("e => getComputedStyle(e).backgroundColor") for s in (accuse, deny)}
        assert len(colours) == 2 and "rgba(0, 0, 0, 0)" not in colours  # two different highlights
        none = page.locator('#result .s[data-label="none"]').first
        assert none.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
        assert page.evaluate("document.activeElement.id") == "result"  # focus moves to the answer
        assert page.locator("#result .text").inner_text().startswith(HEADLINE)  # the article in full
        screenshot(page, tmp_path, "serve.png")
        page.set_viewport_size({"width": 360, "height": 740})  # a phone
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.get_by_role("button", name="Find stances").is_visible()
        # A web page chosen as a file: its main text is extracted on the server, menus dropped.
        html = tmp_path / "page.html"
        html.write_text(f"<html><body><nav>Home | Sport | Weather</nav><article><h1>{HEADLINE}</h1><p>{ACCUSATION} "
                        f"It came after a long and bitter week of talks in the city.</p></article></body></html>")
        page.get_by_label("Or choose a .txt or .html file").set_input_files(str(html))
        page.get_by_text("Loaded page.html").wait_for(timeout=10_000)
        assert page.get_by_label("The text is an HTML page").is_checked()
        page.get_by_role("button", name="Find stances").click()
        page.locator('#result .doc', has_text="page.html").first.wait_for(timeout=30_000)
        shown = page.locator("#result .text").inner_text()
        assert ACCUSATION in shown and "Home | Sport" not in shown
        page.close()


def test_the_report_filters_articles_by_label(browser, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative inputs: the report names articles/accusation.txt, not a tmp path
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "accusation.txt").write_text(f"{HEADLINE}\n\n{ACCUSATION} Police met the mayor on Monday.")
    (folder / "denial.txt").write_text(f"Critics met the union\n\n{DENIAL}")
    (folder / "quiet.txt").write_text("Police met the mayor on Monday.")
    r = run("predict", model, "articles", "--out", tmp_path / "report.html", "--quiet")
    assert r.exit_code == 0, r.output
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto((tmp_path / "report.html").as_uri())
    articles = page.locator(".art")
    assert articles.count() == 3 and all(articles.nth(i).is_visible() for i in range(3))
    page.get_by_label("deny", exact=True).check()
    assert [articles.nth(i).is_visible() for i in range(3)] == [False, True, False]
    assert page.locator(".bars li:visible").count() == 1
    # Inside what is shown, only the chosen label keeps its highlight.
    page.get_by_label("accuse", exact=True).check()
    assert [articles.nth(i).is_visible() for i in range(3)] == [True, False, False]
    assert page.locator('.s[data-label="accuse"] .tag').is_visible()
    page.get_by_label("all labels").check()
    assert all(articles.nth(i).is_visible() for i in range(3))
    screenshot(page, tmp_path, "report.png")
    page.close()
