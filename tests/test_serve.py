"""`stance serve`: the API in process (tiny trained model), its limits, micro-batching, and SIGTERM on a real server."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import urllib.request

import httpx
import pytest
from fastapi.testclient import TestClient

from stance.modeling import StanceClassifier
from stance.predict import predict_articles
from stance.serve import create_app
from stance.testing import running_server
from tests.test_cli import assert_one_line_error, run

ARTICLE = "Headline\n\nThe minister accused the opposition on Monday. Police met the mayor.  The union denied it."


@pytest.fixture(scope="module")
def client(trained_model):
    with TestClient(create_app(trained_model)) as c:
        yield c


def test_predict_returns_the_rows_stance_predict_writes_for_the_same_article(client, trained_model, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "doc-1", "text": ARTICLE}) + "\n")
    predict_articles(StanceClassifier.load(trained_model, backend="auto"), [str(tmp_path / "in.jsonl")],
                     out=tmp_path / "out.jsonl", quiet=True)
    expected = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    r = client.post("/v1/predict", json={"articles": [{"id": "doc-1", "text": ARTICLE}]})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert len(rows) == 4 and [ARTICLE[x["start"]:x["end"]] for x in rows] == [x["text"] for x in rows]
    for got, want in zip(rows, expected):
        assert {k: v for k, v in got.items() if k not in ("score", "scores")} == \
               {k: v for k, v in want.items() if k not in ("score", "scores")}
        assert got["scores"] == pytest.approx(want["scores"], abs=2e-4)  # other batch mates, other padding


def test_sentences_are_classified_as_given_and_min_score_overrides_the_threshold(client):
    sentences = ["The minister accused the opposition on Monday. Police met the mayor.", "The union denied it."]
    rows = client.post("/v1/predict", json={"sentences": sentences}).json()["rows"]
    assert [(x["doc_id"], x["sent_idx"], x["start"], x["end"], x["text"]) for x in rows] == \
           [(None, 0, 0, len(sentences[0]), sentences[0]), (None, 1, 0, len(sentences[1]), sentences[1])]
    strict = client.post("/v1/predict", json={"sentences": sentences, "min_score": 1.0}).json()["rows"]
    assert [x["label"] for x in strict] == ["none", "none"]


def test_an_html_page_is_reduced_to_its_main_text_as_stance_predict_does(client):
    page = ("<html><body><nav>Home | News | Sport</nav><article><h1>Row</h1><p>The minister accused the "
            "opposition of lying about the budget on Monday evening in parliament.</p></article></body></html>")
    rows = client.post("/v1/predict", json={"articles": [{"id": 1, "text": page, "format": "html"}]}).json()["rows"]
    assert "Home | News" not in " ".join(x["text"] for x in rows) and rows[-1]["text"].startswith("The minister")
    assert rows[0]["doc_id"] == "1"


def test_model_describes_labels_threshold_temperature_backend_and_the_model_card(client, trained_model):
    info = client.get("/v1/model").json()
    clf = StanceClassifier.load(trained_model)
    assert info["labels"] == ["accuse", "deny", "support", "none"] and info["backend"] == "torch"
    assert info["threshold"] == clf.min_score and info["temperature"] == pytest.approx(clf.temperature)
    assert info["card"]["pipeline_tag"] == "text-classification" and info["metrics"]["test"]["macro_f1"] > 0.5


def test_healthz_the_page_and_the_openapi_docs_answer(client):
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and '<label for="text">Article text</label>' in page.text
    assert client.get("/docs").status_code == 200
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(("body", "message"), [
    ('{"articles": [', "body: not valid JSON at character 14"),
    ('{"articles": [{"id": "a", "txt": "x"}]}',
     "articles[0].text: Field required; articles[0].txt: Extra inputs are not permitted"),
    ('{"articles": [{"id": "a", "text": "x"}], "sentences": ["y"]}', "give either 'articles' or 'sentences'"),
    ('{"sentences": ["ok", 3]}', "sentences[1]: Input should be a valid string"),
    ('{"articles": [{"id": "a", "text": "a\\u0000b"}]}', "articles[0].text: holds a NUL character"),
    ('{"sentences": ["\\ud800"]}', "sentences: not UTF-8 text (lone surrogate at character 0)"),
    ('{"sentences": ["x"], "min_score": 2}', "min_score: Input should be less than or equal to 1"),
])
def test_bad_json_and_wrong_fields_get_422_naming_the_field(client, body, message):
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_a_body_over_the_limit_gets_413_whether_or_not_it_announces_its_length(trained_model):
    with TestClient(create_app(trained_model, max_body_bytes=1000)) as c:
        body = json.dumps({"sentences": ["x" * 1200]}).encode()
        announced = c.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        chunked = c.post("/v1/predict", content=iter([body[:600], body[600:]]),
                         headers={"content-type": "application/json"})
        small = c.post("/v1/predict", json={"sentences": ["x" * 900]})
    assert chunked.request.headers.get("content-length") is None  # really streamed
    for r in (announced, chunked):
        assert r.status_code == 413 and r.json()["detail"].startswith("request body over the limit of 1000 bytes")
    assert small.status_code == 200


def test_more_sentences_than_the_limit_get_413(trained_model):
    with TestClient(create_app(trained_model, max_sentences=3)) as c:
        r = c.post("/v1/predict", json={"articles": [{"id": "a", "text": "A b. C d. E f. G h."}]})
        assert r.status_code == 413 and r.json()["detail"] == "articles: 4 sentences, over the limit of 3 per request"
        assert c.post("/v1/predict", json={"sentences": ["A b.", "C d.", "E f."]}).status_code == 200


async def _while_the_model_is_busy(app, requests: list[dict], release: bool = True) -> list[httpx.Response]:
    """Send ``requests`` concurrently while the model thread is held busy, as under load.

    With ``release``, the model is let go once every request has reached the batcher; without,
    only after every request has been answered (which then takes their timeout).
    """
    batcher = app.state.batcher
    gate = threading.Event()
    batcher.executor.submit(gate.wait, 60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://stance") as client:
        tasks = [asyncio.create_task(client.post("/v1/predict", json=body)) for body in requests]
        for _ in range(3000 if release else 0):  # bounded: until every request has reached the batcher (30 s)
            if batcher.submitted == len(requests):
                break
            await asyncio.sleep(0.01)
        try:
            if release:
                gate.set()
            return await asyncio.gather(*tasks)
        finally:
            gate.set()
            await batcher.close()


def test_concurrent_requests_share_model_calls(trained_model):
    app = create_app(trained_model, max_wait_ms=0)
    texts = [f"The minister accused the opposition on day {i}. The union denied it." for i in range(8)]
    responses = asyncio.run(_while_the_model_is_busy(app, [{"articles": [{"id": i, "text": t}]}
                                                          for i, t in enumerate(texts)]))
    assert [r.status_code for r in responses] == [200] * 8
    # Each request got its own rows back, not a neighbour's.
    assert [[x["text"] for x in r.json()["rows"]] for r in responses] == \
           [[f"The minister accused the opposition on day {i}.", "The union denied it."] for i in range(8)]
    stats = app.state.stats
    assert stats["requests"] == 8 and app.state.batcher.calls <= 2, (stats, app.state.batcher.calls)


def test_a_request_waiting_longer_than_the_timeout_gets_503_and_the_server_goes_on(trained_model):
    app = create_app(trained_model, timeout_s=0.3)
    [late] = asyncio.run(_while_the_model_is_busy(app, [{"sentences": ["The union denied it."]}], release=False))
    assert late.status_code == 503 and late.json()["detail"].startswith("no answer within 0.3 s (--timeout)")
    assert late.headers["retry-after"] == "1"
    with TestClient(app) as c:
        assert c.post("/v1/predict", json={"sentences": ["The union denied it."]}).status_code == 200


def test_sigterm_lets_the_request_in_flight_finish_before_the_server_exits(trained_model, tmp_path):
    # 1,500 sentences one per forward pass: seconds of work, so SIGTERM lands while it runs.
    article = " ".join(f"Critics blamed the council on day {i}." for i in range(1500))
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - the server writes it until it exits
    result: dict = {}
    with running_server(trained_model, "--batch-size", "1", "--max-sentences", "2000", stderr=log) as (proc, url):
        def post() -> None:
            req = urllib.request.Request(f"{url}/v1/predict", data=json.dumps(
                {"articles": [{"id": "long", "text": article}]}).encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                result["status"], result["rows"] = r.status, json.loads(r.read())["rows"]

        client = threading.Thread(target=post)
        client.start()
        for _ in range(3000):  # bounded: until the server holds the request (at most 30 s)
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:
                if json.loads(r.read())["in_flight"] == 1:
                    break
        proc.send_signal(signal.SIGTERM)
        client.join(120)
        code = proc.wait(60)
    log.close()
    assert result.get("status") == 200 and len(result["rows"]) == 1500
    assert code == 0
    text = (tmp_path / "server.log").read_text()
    assert "Waiting for connections to close" in text  # the request was still in flight at SIGTERM


def test_serve_errors_are_one_line(tmp_path, trained_model):
    assert_one_line_error(run("serve", tmp_path / "nope"), "nope: model directory not found")
    assert_one_line_error(run("serve", trained_model, "--workers", "0"), "--workers: must be at least 1")
    assert_one_line_error(run("serve", trained_model, "--max-body-mb", "0"), "--max-body-mb: must be a number above 0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(run("serve", trained_model, "--port", port), f"--port {port}: cannot listen there")


def test_serve_without_the_serve_extra_says_what_to_install(trained_model):
    import subprocess
    import sys

    # As on an install without `stance[serve]`: importing fastapi fails.
    code = ("import sys; sys.modules['fastapi'] = None; from stance.cli import main; "
            f"sys.argv = ['stance', 'serve', {str(trained_model)!r}]; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: stance serve needs fastapi: pip install 'stance[serve]'"


def test_two_worker_processes_answer_and_docs_know_the_proxy_prefix(trained_model):
    body = json.dumps({"sentences": ["The union denied it."]}).encode()
    with running_server(trained_model, "--workers", "2", "--root-path", "/stance") as (_, url):
        for _ in range(4):
            req = urllib.request.Request(f"{url}/v1/predict", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                assert r.status == 200 and json.loads(r.read())["rows"][0]["label"] == "deny"
        with urllib.request.urlopen(f"{url}/docs", timeout=60) as r:
            assert "'/stance/openapi.json'" in r.read().decode()
