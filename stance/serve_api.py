"""The HTTP routes of `stance serve`: request models, limits, errors, and the rows they return."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from stance.articles import Article, html_to_text
from stance.predict import Pending, PredictSummary, iter_sentences, make_row
from stance.sentences import MAX_SENTENCE_CHARS


def _clean(text: str) -> str:
    # What `stance predict` skips as binary or not UTF-8, refused by name here (JSON can carry both).
    if "\x00" in text:
        raise ValueError("holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"not UTF-8 text (lone surrogate at character {e.start})") from None
    return text


class ArticleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int = Field(description="Becomes doc_id in the rows.")
    text: str = Field(description="The article; with format 'html', a web page whose main text is extracted.")
    format: Literal["text", "html"] = "text"

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _clean(v)


class PredictIn(BaseModel):
    """Either articles (split into sentences, as `stance predict` does) or sentences (classified as given)."""

    model_config = ConfigDict(extra="forbid")
    articles: list[ArticleIn] | None = None
    sentences: list[str] | None = Field(None, description="Each is one row: doc_id null, offsets into itself.")
    min_score: float | None = Field(None, ge=0, le=1, description="Threshold [default: the model's; 0 = argmax].")

    @field_validator("sentences")
    @classmethod
    def _sentences(cls, v: list[str] | None) -> list[str] | None:
        for s in v or []:
            _clean(s)
            if len(s) > MAX_SENTENCE_CHARS:
                raise ValueError(f"a sentence is over {MAX_SENTENCE_CHARS} characters; send long text as an "
                                 "article, which is cut into pieces")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> PredictIn:
        if (self.articles is None) == (self.sentences is None):
            raise ValueError("give either 'articles' or 'sentences'")
        return self


def _articles(req: PredictIn) -> list[Article]:
    """The request's articles, HTML pages reduced to their main text as `stance predict` does."""
    return [Article(str(a.id), html_to_text(a.text) if a.format == "html" else a.text) for a in req.articles or []]


def _items(req: PredictIn, articles: list[Article]) -> list[Pending]:
    """Sentences with their offsets, split as `stance predict` splits them; ``sentences`` are taken as given."""
    if req.sentences is not None:
        return [Pending(None, i, 0, len(s), s, i) for i, s in enumerate(req.sentences)]  # type: ignore[arg-type]
    return list(iter_sentences(articles, PredictSummary()))


def _field(loc: tuple) -> str:
    """('body', 'articles', 0, 'text') -> 'articles[0].text'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "body"


def _validation_message(exc: RequestValidationError) -> str:
    """One line naming each wrong field (the first three), e.g. "articles[0].text: Field required"."""
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        pos = errors[0].get("loc", ("body", "?"))[-1]
        return f"body: not valid JSON at character {pos} ({errors[0].get('ctx', {}).get('error', 'decode error')})"
    parts = [f"{_field(tuple(e.get('loc', ())))}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}"
             for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


class _BodyLimit:
    """413 for a body over the limit: at once when Content-Length says so, else when the bytes read pass it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        detail = f"request body over the limit of {self.max_bytes} bytes (--max-body-mb)"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # chunked: no length announced; FastAPI re-raises HTTPException as is
                raise HTTPException(413, detail)
            return message

        await self.app(scope, limited, send)


def _rows(clf: Any, items: list[Pending], probs: Any, spans: list | None, offsets: list | None,
          min_score: float | None) -> list[dict[str, Any]]:
    """The rows of one request; a span model's carry holder and target, as `stance predict` writes them."""
    labels = clf.decide(probs, min_score)
    roles = clf.roles(labels, spans, offsets, [p.text for p in items]) if spans is not None else [None] * len(items)
    return [make_row(p, lab, pr, clf.labels, r) for p, lab, pr, r in zip(items, labels, probs, roles)]


def build_app(clf: Any, batcher: Any, settings: Any, info: dict[str, Any]) -> FastAPI:
    """Routes over a loaded classifier and its MicroBatcher (``serve.create_app`` builds both)."""
    from stance.page import render_page
    from stance.render import Doc, group_rows, render_fragment

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        await batcher.close()

    app = FastAPI(title="stance", version="1", lifespan=lifespan,
                  description="Find who accuses, who denies and who supports in news sentences.")
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    stats = {"requests": 0, "in_flight": 0, "sentences": 0}
    app.state.batcher, app.state.stats = batcher, stats

    async def rows_for(req: PredictIn, articles: list[Article]) -> list[dict[str, Any]]:
        items = await batcher.prepare(_items, req, articles)
        if len(items) > settings.max_sentences:
            raise HTTPException(413, f"{'articles' if req.articles is not None else 'sentences'}: {len(items)} "
                                     f"sentences, over the limit of {settings.max_sentences} per request")
        ids, _, offsets = await batcher.prepare(clf.encode, [p.text for p in items], clf.has_spans)
        probs, spans = await batcher.scores(ids)
        stats["sentences"] += len(items)
        return _rows(clf, items, probs, spans, offsets, req.min_score)

    async def answer(req: PredictIn) -> tuple[list[dict[str, Any]], list[Article]]:
        stats["requests"] += 1
        stats["in_flight"] += 1
        async def work() -> tuple[list[dict[str, Any]], list[Article]]:
            articles = await batcher.prepare(_articles, req)
            return await rows_for(req, articles), articles

        try:
            return await asyncio.wait_for(work(), settings.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(503, f"no answer within {settings.timeout_s:g} s (--timeout): the server is busy; "
                                     "retry later", headers={"Retry-After": "1"}) from None
        finally:
            stats["in_flight"] -= 1

    @app.post("/v1/predict", summary="Classify the sentences of articles, or sentences as given")
    async def predict(req: PredictIn) -> dict[str, Any]:
        """The same rows as `stance predict` writes (doc_id, sent_idx, start, end, text, label, score, scores; and
        holder, target for a model trained with spans)."""
        return {"rows": (await answer(req))[0]}

    @app.post("/v1/report", response_class=HTMLResponse, summary="The HTML report's rendering of the rows")
    async def report(req: PredictIn) -> HTMLResponse:
        """What GET / shows: the rows rendered as in `stance predict --format html` (a fragment, no <html>)."""
        rows, articles = await answer(req)
        texts = {a.doc_id: a.text for a in articles}
        docs = [Doc(d.doc_id, d.rows, texts.get(d.doc_id)) for d in group_rows(rows)]
        threshold = clf.min_score if req.min_score is None else req.min_score
        return HTMLResponse(render_fragment(docs, model=f"{info['name']} ({info['backend']})", threshold=threshold,
                                            labels=clf.labels))

    @app.get("/v1/model", summary="Labels, threshold, temperature, backend and model-card metadata")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/healthz", summary="Liveness, with counters (requests, model calls, sentences)")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **stats, "model_calls": batcher.calls}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(render_page(info))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    return app
