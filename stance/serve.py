"""`stance serve`: an HTTP API over the model, and a page to paste articles into.

``POST /v1/predict`` splits articles and builds rows with the code `stance predict` uses
(``predict.iter_sentences``, ``predict.make_row``), so both answer alike.  Requests are
micro-batched: one consumer gathers the token ids of every request waiting (up to a window
of sentences, after waiting a few milliseconds for company when there are fewer than a
forward pass's worth) and runs the model once for all of them in a single thread, then hands
each request its rows.  Many small requests thus share forward passes, and the event loop
stays free while the model runs (its kernels release the GIL).

Limits answer with a status and ``{"detail": "one line naming the field or limit"}``:
413 for a body or a sentence count over the limit, 422 for bad JSON or wrong fields, 503
when a request waits longer than the timeout.  uvicorn finishes in-flight requests on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stance.errors import StanceError

SETTINGS_ENV = "STANCE_SERVE_SETTINGS"  # how --workers N hands the settings to each worker process


@dataclass(frozen=True)
class ServeSettings:
    model: str
    backend: str = "auto"
    batch_size: int = 64  # rows per forward pass
    window: int = 1024  # most sentences gathered into one model call (as `stance predict`'s windows)
    max_wait_ms: float = 5.0  # how long a lone small request waits for others to share its forward pass
    max_body_bytes: int = 2_000_000
    max_sentences: int = 2000  # per request
    timeout_s: float = 30.0

    def check(self) -> None:
        for name in ("batch_size", "window", "max_body_bytes", "max_sentences"):
            if getattr(self, name) < 1:
                raise StanceError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(self, name)}")
        if not self.timeout_s > 0:
            raise StanceError(f"--timeout: must be above 0 seconds, got {self.timeout_s}")
        if not self.max_wait_ms >= 0:
            raise StanceError(f"--max-wait-ms: must be 0 or more, got {self.max_wait_ms}")


class MicroBatcher:
    """Gathers the sentences of concurrent requests into shared model calls, run in one thread."""

    def __init__(self, clf: Any, batch_size: int, window: int, max_wait_s: float) -> None:
        self.clf, self.batch_size, self.window, self.max_wait_s = clf, batch_size, window, max_wait_s
        # One thread: the model uses every core for one call; two calls at once would only contend.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stance-model")
        # And one for the requests' splitting and tokenizing, as `stance predict` has one reader thread:
        # more Python threads would hold the GIL against the model's thread between its kernels.
        self.prep = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stance-prep")
        self.calls = self.submitted = 0  # model calls run, and requests handed in
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def prepare(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the preparation thread (splitting, tokenizing), off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.prep, fn, *args)

    async def scores(self, ids: list[list[int]]) -> tuple[np.ndarray, list | None]:
        """Class probabilities for these token ids, computed together with other waiting requests', and
        each row's span logits when the model has a span head (else None)."""
        if not ids:
            return np.empty((0, len(self.clf.labels)), dtype=np.float32), [] if self.clf.has_spans else None
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # started lazily, in the loop that serves (a test client may bring its own)
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._consume())
        assert self._queue is not None
        fut = loop.create_future()
        self._queue.put_nowait((ids, fut))
        self.submitted += 1
        return await fut

    async def _gather(self, queue: asyncio.Queue) -> list[tuple[list[list[int]], asyncio.Future]]:
        jobs = [await queue.get()]
        if len(jobs[0][0]) < self.batch_size and self.max_wait_s > 0:
            await asyncio.sleep(self.max_wait_s)  # a moment for concurrent requests to join
        n = len(jobs[0][0])
        while n < self.window and not queue.empty():
            jobs.append(queue.get_nowait())
            n += len(jobs[-1][0])
        return [j for j in jobs if not j[1].done()]  # a request that timed out costs nothing

    async def _consume(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather(self._queue)
            if not jobs:
                continue
            ids = [x for job_ids, _ in jobs for x in job_ids]
            try:
                probs, spans = await loop.run_in_executor(self.executor, self._forward, ids)
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error, the consumer lives on
                for _, fut in jobs:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.calls += 1
            pos = 0
            for job_ids, fut in jobs:
                if not fut.done():
                    end = pos + len(job_ids)
                    fut.set_result((probs[pos:end], None if spans is None else spans[pos:end]))
                pos += len(job_ids)

    def _forward(self, ids: list[list[int]]) -> tuple[np.ndarray, list | None]:
        # The same batching by token length as `stance predict` (StanceClassifier.iter_outputs).
        probs = np.empty((len(ids), len(self.clf.labels)), dtype=np.float32)
        spans: list | None = [None] * len(ids) if self.clf.has_spans else None
        for rows, p, logits in self.clf.iter_outputs(ids, batch_size=self.batch_size):
            probs[rows] = p
            if spans is not None and logits is not None:  # one row's tag logits each, padding included
                for k, i in enumerate(rows):
                    spans[i] = logits[k]
        return probs, spans

    async def close(self) -> None:
        """Stop the consumer and wait for a model call in progress; the next request starts them again."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._loop = self._queue = self._task = None
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stance-model")


def model_info(clf: Any, model_dir: Path) -> dict[str, Any]:
    """What GET /v1/model answers: labels, threshold, temperature, backend, and the model card's metadata."""
    return {"name": model_dir.name, "labels": clf.labels, "threshold": clf.min_score,
            "temperature": clf.temperature, "backend": clf.backend.name, "max_length": clf.max_length,
            "card": _card_metadata(model_dir / "README.md"), "metrics": _metrics(model_dir / "all_results.json")}


def _card_metadata(path: Path) -> dict[str, Any] | None:
    """The YAML front matter of the model card (Hugging Face's metadata block), or None."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        if not text.startswith("---\n") or "\n---" not in text[4:]:
            return None
        meta = yaml.safe_load(text[4:text.index("\n---", 4)])
    except (OSError, ValueError, yaml.YAMLError):
        return None  # a model directory is untrusted input: a broken card costs only its metadata
    return meta if isinstance(meta, dict) else None


def _metrics(path: Path) -> dict[str, Any] | None:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict):
        return None
    out = {}
    for split in ("dev", "test"):
        m = results.get(split)
        if isinstance(m, dict):
            out[split] = {k: m[k] for k in ("macro_f1", "accuracy", "n") if isinstance(m.get(k), (int, float))}
    return out


def _serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise StanceError(f"stance serve needs {e.name}: pip install 'stance[serve]'") from None


def create_app(model_dir: str | Path, backend: str = "auto", **settings: Any) -> Any:
    """The FastAPI app for one model directory (loaded now, so a bad directory fails before serving)."""
    _serve_extra()
    from stance.modeling import StanceClassifier
    from stance.serve_api import build_app

    s = ServeSettings(str(model_dir), backend, **settings)
    s.check()
    clf = StanceClassifier.load(model_dir, backend=backend)
    batcher = MicroBatcher(clf, s.batch_size, s.window, s.max_wait_ms / 1000)
    return build_app(clf, batcher, s, model_info(clf, Path(model_dir)))


def app_from_env() -> Any:
    """uvicorn's factory in each worker process of ``--workers N``: the settings come in ``SETTINGS_ENV``."""
    settings = json.loads(os.environ[SETTINGS_ENV])
    return create_app(settings.pop("model"), **settings)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one line, not uvicorn's exit 1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StanceError(f"--host {host} --port {port}: cannot listen there: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          access_log: bool = True, max_body_mb: float = 2.0, root_path: str = "", **settings: Any) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM; in-flight requests are answered before it returns."""
    _serve_extra()
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from stance.modeling import check_model_dir

    if not math.isfinite(max_body_mb) or max_body_mb <= 0:
        raise StanceError(f"--max-body-mb: must be a number above 0, got {max_body_mb}")
    s = ServeSettings(str(check_model_dir(model_dir)), max_body_bytes=max(1, int(max_body_mb * 1_000_000)),
                      **settings)
    s.check()
    if workers < 1:
        raise StanceError(f"--workers: must be at least 1, got {workers}")
    if not 0 <= port <= 65535:
        raise StanceError(f"--port: must be between 0 and 65535, got {port}")
    common = {"host": host, "port": port, "access_log": access_log, "log_level": "info", "root_path": root_path,
              # A request never runs longer than its timeout, so this bound only cuts off a stuck one.
              "timeout_graceful_shutdown": int(s.timeout_s) + 5}
    sock = _bind(host, port)  # first: a port in use fails at once, not after the model has loaded
    try:
        if workers == 1:
            app = create_app(model_dir, **{k: v for k, v in asdict(s).items() if k != "model"})
            _until_stopped(lambda: uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock]))
        else:
            os.environ[SETTINGS_ENV] = json.dumps(asdict(s))
            config = uvicorn.Config("stance.serve:app_from_env", factory=True, workers=workers, **common)
            _until_stopped(lambda: Multiprocess(config, sockets=[sock]).run())
    finally:
        sock.close()


def _until_stopped(run: Any) -> None:
    try:
        run()
    except KeyboardInterrupt:
        # uvicorn raises the SIGTERM/SIGINT it caught again once it has shut down gracefully; the
        # requests in flight were answered, so this is a normal end, not an interruption.
        pass
