"""`stance predict --engine ray`: check the options, join (or start) Ray, run the pipeline into part files.

The pipeline is ``stance.distributed``'s; the files in and out are ``stance.distributed_io``'s.
Ray Data prints progress (unless --quiet) but no tracebacks: a failure reaches the caller,
as one error line when an input is to blame, with its traceback otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stance.articles import DEFAULT_MAX_ARTICLE_BYTES
from stance.distributed import check_model, classified, pool_size, require_ray
from stance.distributed_io import FORMATS, list_inputs, make_sink, output_dir, publish, read_articles, summarize
from stance.errors import StanceError, reason
from stance.predict import PredictSummary


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local Ray on this machine's cores; True if we started one."""
    import logging

    if ray.is_initialized():  # a notebook or a test already holds one
        return False
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise StanceError(f"--address {address or '(local)'}: cannot start or reach Ray: {reason(e)}") from None
    return True


class _Console:
    """What Ray Data may print for `stance predict`: progress, unless --quiet, and no errors: the error
    reaches us, to be one line or re-raised with its traceback.  Ray Data's log file keeps everything."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def filter(self, record: Any) -> bool:
        return not self.quiet and record.levelno < 40  # logging.ERROR


@contextlib.contextmanager
def _ray_console(quiet: bool) -> Iterator[None]:
    import logging

    from ray.data import DataContext

    ctx = DataContext.get_current()
    bars, ctx.enable_progress_bars = ctx.enable_progress_bars, not quiet
    handlers = [h for h in logging.getLogger("ray.data").handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    console = _Console(quiet)
    for h in handlers:
        h.addFilter(console)
    try:
        yield
    finally:
        ctx.enable_progress_bars = bars
        for h in handlers:
            h.removeFilter(console)


def predict_with_ray(model: str | Path, inputs: list[str], out: str | None, fmt: str | None = None,
                     address: str | None = None, backend: str = "auto", batch_size: int = 64,
                     min_score: float | None = None, actors: int | None = None, cpus_per_actor: int = 1,
                     gpus_per_actor: float = 0, max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
                     quiet: bool = False, window: int = 1024, runtime_env: dict | None = None) -> PredictSummary:
    """`stance predict --engine ray`: classify every article of ``inputs`` on Ray, write part files into ``out``.

    ``window``: sentences per actor call; ``runtime_env``: Ray's, for the actors (environment variables).
    """
    fmt = fmt or "parquet"
    _check_options(out, fmt, batch_size, min_score, actors, cpus_per_actor, gpus_per_actor)
    check_model(model, backend)
    groups = [g for g in list_inputs(inputs) if g.jsonl or g.parquet]
    ray = require_ray()
    started = _connect(ray, address)
    try:
        with _ray_console(quiet), output_dir(str(out)) as (fs, directory):
            t0, returns = time.perf_counter(), []
            if groups:
                actors = pool_size(actors, cpus_per_actor, gpus_per_actor)
                rows = classified(read_articles(groups, max_article_bytes, actors), model, backend, batch_size,
                                  min_score, actors, cpus_per_actor, gpus_per_actor, window, runtime_env)
                returns = _write(ray, rows, make_sink(fs, directory, fmt), out)
            summary, files = summarize(returns, time.perf_counter() - t0)
            publish(fs, directory, summary, files, fmt)
    finally:
        if started:
            ray.shutdown()
    return summary


def _write(ray: Any, rows: Any, sink: Any, out: str | None) -> list[dict[str, Any]]:
    """Run the pipeline into ``sink``.  A user error in a task (an input that cannot be read) is
    one error line; any other failure keeps its traceback."""
    try:
        rows.write_datasink(sink, ray_remote_args={"num_cpus": 0})  # the actors hold every CPU
    except ray.exceptions.RayTaskError as e:
        if isinstance(getattr(e, "cause", None), StanceError):
            raise StanceError(f"{e.cause}; nothing was written to {out}") from None
        raise
    return sink.returns


def check_engine(engine: str, resume: bool, address: str | None, actors: int | None, cpus_per_actor: int,
                 gpus_per_actor: float) -> None:
    """`stance predict --engine`: a known engine, and no option of the other one."""
    if engine not in ("local", "ray"):
        raise StanceError(f"--engine: must be local or ray, got {engine!r}")
    if engine == "ray" and resume:
        raise StanceError("--resume: only with --engine local (a Ray run that fails leaves no output; run it again)")
    given = [name for name, v in (("--address", address), ("--actors", actors)) if v is not None]
    given += [name for name, v in (("--cpus-per-actor", cpus_per_actor != 1), ("--gpus-per-actor", gpus_per_actor))
              if v]
    if engine == "local" and given:
        raise StanceError(f"{given[0]}: only with --engine ray")


def _check_options(out: str | None, fmt: str, batch_size: int, min_score: float | None, actors: int | None,
                   cpus_per_actor: int, gpus_per_actor: float) -> None:
    if not out:
        raise StanceError("--engine ray: needs --out DIR (part files go there)")
    if fmt not in FORMATS:
        raise StanceError(f"--format: --engine ray writes parquet or jsonl, got {fmt!r}")
    if batch_size < 1:
        raise StanceError(f"--batch-size: must be at least 1, got {batch_size}")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise StanceError(f"--min-score: must be between 0 and 1, got {min_score}")
    if actors is not None and actors < 1:
        raise StanceError(f"--actors: must be at least 1, got {actors}")
    if cpus_per_actor < 1:
        raise StanceError(f"--cpus-per-actor: must be at least 1, got {cpus_per_actor}")
    if gpus_per_actor < 0:
        raise StanceError(f"--gpus-per-actor: must be 0 or more, got {gpus_per_actor}")
