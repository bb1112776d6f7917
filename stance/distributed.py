"""Batch inference on a Ray cluster: a Ray Dataset of articles in, a Ray Dataset of prediction rows out.

The rows are exactly those `stance predict` writes (``stance.predict.FIELDS``, built by
the same ``classify_items``), in no particular order.  Sentence splitting is a stateless
``map_batches`` (any CPU may run it); classification runs in a fixed pool of actors, each
of which loads the model once, picks the backend as ``--backend auto`` does, and runs it
on the CPUs Ray gave it (``backends.limit_threads``), so actors sharing a node do not
oversubscribe it.  Ray restarts an actor that dies and re-runs its unfinished batches
(Ray Data's actor pools retry without limit), and a re-run batch yields the same rows.

Between the steps each article also travels as one *marker* row (``sent_idx`` -1) with
what the summary counts: skipped articles by reason, sentences cut.  ``predict_dataset``
drops them; ``stance.distributed_io`` counts them while writing.  Nothing here imports
ray at module level, so ``import stance`` never needs it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from stance.articles import DEFAULT_MAX_ARTICLE_BYTES, Article
from stance.errors import StanceError, warn
from stance.predict import Pending, PredictSummary, classify_items, iter_sentences

INTERNAL = ["_skip", "_cut", "_truncated"]  # marker and count columns, never in the output
# Model files an actor never reads: shipping them to every node would only cost time.
_NOT_SHIPPED = {".png", ".jsonl", ".md"}


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise StanceError("--engine ray needs Ray Data: pip install 'stance[ray]'") from None
    return ray


# -- articles -> sentences (stateless) --------------------------------------------------------


def article_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("_skip", pa.string())])


def check_articles(batch: Any, max_article_bytes: int, source: str = "dataset") -> Any:
    """(id, text) rows -> (doc_id, text, _skip): a row that cannot be an article keeps only its reason.

    The reasons of a JSONL line in `stance predict` (binary: a NUL; oversized article; no text
    string), and a missing id, which a typed table can hold.  Arrow strings are valid UTF-8.
    """
    import pyarrow as pa

    rows = []
    for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
        reason = None
        if doc_id is None:
            reason = "no id"
        elif not isinstance(text, str):
            reason = "no 'text' string"
        elif "\x00" in text:
            reason = "binary"
        elif len(text.encode("utf-8")) > max_article_bytes:
            reason = "oversized article"
        if reason:
            warn(f"{source}: article {doc_id}: {reason}, skipped")
        rows.append({"doc_id": None if doc_id is None else str(doc_id), "text": None if reason else text,
                     "_skip": reason})
    return pa.Table.from_pylist(rows, schema=article_schema())


def _sentence_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("doc_id", pa.string()), ("sent_idx", pa.int64()), ("start", pa.int64()), ("end", pa.int64()),
                      ("text", pa.string()), ("_skip", pa.string()), ("_cut", pa.int64())])


def split_articles(batch: Any) -> Any:
    """Article rows -> one marker row per article, then its sentences (``predict.iter_sentences``)."""
    import pyarrow as pa

    rows = []
    for doc_id, text, skip in zip(*(batch.column(c).to_pylist() for c in ("doc_id", "text", "_skip"))):
        summary = PredictSummary()
        items = [] if skip else list(iter_sentences([Article(doc_id, text)], summary))
        rows.append({"doc_id": doc_id, "sent_idx": -1, "start": -1, "end": -1, "text": "", "_skip": skip,
                     "_cut": summary.cut})
        rows.extend({"doc_id": p.doc_id, "sent_idx": p.sent_idx, "start": p.start, "end": p.end, "text": p.text,
                     "_skip": None, "_cut": 0} for p in items)
    return pa.Table.from_pylist(rows, schema=_sentence_schema())


# -- sentences -> predictions (actor pool) ----------------------------------------------------


def _row_schema(labels: list[str]) -> Any:
    import pyarrow as pa

    scores = pa.struct([(lab, pa.float64()) for lab in labels])
    return pa.schema([("doc_id", pa.string()), ("sent_idx", pa.int64()), ("start", pa.int64()), ("end", pa.int64()),
                      ("text", pa.string()), ("label", pa.string()), ("score", pa.float64()), ("scores", scores),
                      ("_skip", pa.string()), ("_cut", pa.int64()), ("_truncated", pa.bool_())])


def _span_type() -> Any:
    import pyarrow as pa

    return pa.struct([("text", pa.string()), ("start", pa.int64()), ("end", pa.int64())])


# Fields a classifier may add to its rows, typed here so that a batch where all are null still
# writes the type every other part file has (holder and target: null or a span of the article).
EXTRA_TYPES = {"holder": _span_type, "target": _span_type}


def _to_table(rows: list[dict[str, Any]], schema: Any) -> Any:
    """Rows as a table of ``schema``; fields the classifier added beyond it follow as further columns."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows, schema=schema)
    extra = [k for k in (rows[0] if rows else {}) if k not in schema.names]
    for key in extra:
        kind = EXTRA_TYPES[key]() if key in EXTRA_TYPES else None
        table = table.append_column(key, pa.array([r.get(key) for r in rows], type=kind))
    return table


def ship_model(model_dir: str | Path) -> dict[str, bytes]:
    """The files of a model directory an actor needs, as bytes: put once in Ray's object store,
    they reach every node, so the model need not sit on a shared filesystem."""
    root = Path(model_dir)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix not in _NOT_SHIPPED and len(p.relative_to(root).parts) <= 2}


def _unpack_model(files: dict[str, bytes]) -> Path:
    """The shipped files in a folder of this node, written once per node and content (actors share it)."""
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    target = Path(tempfile.gettempdir()) / "stance-models" / digest.hexdigest()[:16]
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent))
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        try:
            os.rename(tmp, target)
        except OSError:  # another actor of this node got there first: use its copy
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target


class ClassifyBatch:
    """A Ray Data actor: loads the model once, then turns batches of sentence rows into prediction rows."""

    def __init__(self, model: Any, backend: str, batch_size: int, min_score: float | None,
                 threads: int, gpus: float = 0) -> None:
        """``model``: a model directory this node can read, or a Ray reference to ``ship_model``'s files."""
        from stance.backends import limit_threads
        from stance.modeling import StanceClassifier

        limit_threads(threads)
        if not isinstance(model, (str, Path)):
            import ray

            model = _unpack_model(ray.get(model))
        self.clf = StanceClassifier.load(model, backend=backend)
        if gpus and self.clf.model is not None:
            self.clf.model.to("cuda")
        self.batch_size, self.min_score = batch_size, min_score
        self.schema = _row_schema(self.clf.labels)

    def threads(self) -> tuple[str, int, int]:
        """(backend, torch threads, ONNX Runtime intra-op threads or 0): what this actor runs on."""
        import torch

        session = getattr(self.clf.backend, "session", None)
        return (self.clf.backend.name, torch.get_num_threads(),
                session.get_session_options().intra_op_num_threads if session else 0)

    def __call__(self, batch: Any) -> Any:
        _fault_hook()
        cols = batch.to_pydict()
        marker = [i for i, k in enumerate(cols["sent_idx"]) if k < 0]
        items = [Pending(cols["doc_id"][i], k, cols["start"][i], cols["end"][i], cols["text"][i])
                 for i, k in enumerate(cols["sent_idx"]) if k >= 0]
        rows: list[dict[str, Any]] = []
        if items:
            # Token offsets only for a span model, whose rows get holder and target as `stance predict`'s do.
            ids, truncated, offsets = self.clf.encode([p.text for p in items], offsets=self.clf.has_spans)
            rows = classify_items(self.clf, items, ids, self.batch_size, self.min_score, offsets)
            for row, cut in zip(rows, truncated):
                row.update(_skip=None, _cut=0, _truncated=bool(cut))
        rows.extend({"doc_id": cols["doc_id"][i], "sent_idx": -1, "start": -1, "end": -1, "text": "",
                     "_skip": cols["_skip"][i], "_cut": cols["_cut"][i], "_truncated": False} for i in marker)
        return _to_table(rows, self.schema)


def _fault_hook() -> None:
    """For the killed-actor test: with ``STANCE_RAY_KILL_ME`` naming a file, the first actor to get
    here writes its pid there and waits to be killed (bounded), so a batch is surely in flight."""
    path = os.environ.get("STANCE_RAY_KILL_ME")
    if not path:
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # the restarted actor, or another one: carry on
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    import time

    time.sleep(120)


# -- the pipeline ---------------------------------------------------------------------------------


def check_model(model_dir: str | Path, backend: str) -> None:
    """What the actors will load, checked here first: a bad model is one error line, not a dying actor pool."""
    from stance.backends import check_backend
    from stance.modeldir import check_head, read_model_config
    from stance.modeling import check_model_dir

    path = check_model_dir(model_dir)
    check_head(path, len(read_model_config(path)["id2label"]))
    if backend != "auto":
        check_backend(backend)


def pool_size(actors: int | None, cpus_per_actor: int = 1, gpus_per_actor: float = 0, spare_cpus: int = 0) -> int:
    """``actors``, or as many as the cluster's CPUs (less ``spare_cpus``; or its GPUs, with ``gpus_per_actor``) hold."""
    import ray

    if actors is not None:
        return actors
    resources = ray.cluster_resources()
    if gpus_per_actor:
        return max(1, int(resources.get("GPU", 0) // gpus_per_actor))
    return max(1, int((resources.get("CPU", 1) - spare_cpus) // cpus_per_actor))


def helper_tasks(actors: int) -> Any:
    """The task pool for reading and splitting: one task per 8 actors, reserving no CPU.

    The actors hold every CPU (a task waiting for one would wait forever), and reading and
    splitting cost a tenth of what the model does per sentence, so these run on the actors'
    cores, as the reader thread of `stance predict` does beside its model.
    """
    from ray.data import TaskPoolStrategy

    return {"num_cpus": 0, "compute": TaskPoolStrategy(size=max(1, -(-actors // 8)))}


def classified(ds: Any, model_dir: str | Path, backend: str = "auto", batch_size: int = 64,
               min_score: float | None = None, actors: int | None = None, cpus_per_actor: int = 1,
               gpus_per_actor: float = 0, window: int = 1024, runtime_env: dict | None = None,
               ship: bool | None = None) -> Any:
    """Article rows (doc_id, text, _skip) -> prediction rows and marker rows (see the module docstring).

    ``ship``: send the model's files through the object store (default: when the cluster has
    more than this node, whose folders the others may not see); else actors read ``model_dir``.
    """
    ray = require_ray()
    from ray.data import ActorPoolStrategy

    if gpus_per_actor and backend != "torch":
        raise StanceError("--gpus-per-actor: needs --backend torch (the ONNX backends run on CPUs)")
    actors = pool_size(actors, cpus_per_actor, gpus_per_actor)
    # An actor takes a block whole, and a task merges its outputs into blocks of up to 128 MiB: one
    # block could hold every sentence, for one actor.  Blocks of about a window spread them out.
    ds.context.target_max_block_size = min(ds.context.target_max_block_size or 1 << 62, window * 256)
    split = ds.map_batches(split_articles, batch_format="pyarrow", batch_size=16, **helper_tasks(actors))
    if ship is None:
        ship = len([n for n in ray.nodes() if n.get("Alive")]) > 1
    model = ray.put(ship_model(model_dir)) if ship else str(Path(model_dir).resolve())
    return split.map_batches(
        ClassifyBatch, batch_format="pyarrow", batch_size=window, compute=ActorPoolStrategy(size=actors),
        fn_constructor_args=(model, backend, batch_size, min_score, cpus_per_actor, gpus_per_actor),
        num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None, runtime_env=runtime_env)


def _public(batch: Any) -> Any:
    import pyarrow.compute as pc

    return batch.filter(pc.greater_equal(batch.column("sent_idx"), 0)).drop_columns(INTERNAL)


def predict_dataset(ds: Any, model_dir: str | Path, backend: str = "auto", batch_size: int = 64,
                    min_score: float | None = None, actors: int | None = None, cpus_per_actor: int = 1,
                    gpus_per_actor: float = 0, max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
                    window: int = 1024, ship: bool | None = None) -> Any:
    """A Ray Dataset of articles (columns ``id``, ``text``) -> a Ray Dataset of `stance predict` rows.

    ``actors`` each load the model once and hold ``cpus_per_actor`` CPUs (``gpus_per_actor`` GPUs)
    for the whole run.  By default there are as many as the cluster's GPUs allow, or its CPUs
    less one: ``ds``'s own reads and whatever consumes the result run in Ray tasks that wait for
    a free CPU (``ray.data.read_parquet`` lists files in one), and with every CPU held by an
    actor they would wait forever.  ``batch_size`` is sentences per forward pass, ``window``
    sentences per actor call (``ds.context.target_max_block_size`` is lowered to about a window
    of rows, so that the actors share the work).  ``ship``: see :func:`classified`.  Articles
    that cannot be read (no text, NUL, over ``max_article_bytes``) are skipped with a warning.
    Lazy, like every Ray Dataset: nothing runs until the result is consumed.
    """
    check_model(model_dir, backend)
    actors = pool_size(actors, cpus_per_actor, gpus_per_actor, spare_cpus=1)
    missing = {"id", "text"} - set(ds.schema().names)
    if missing:
        raise StanceError(f"dataset: no {' or '.join(sorted(missing))} column (articles need id and text)")
    cap = {"max_article_bytes": max_article_bytes}
    articles = ds.map_batches(check_articles, batch_format="pyarrow", fn_kwargs=cap, **helper_tasks(actors))
    rows = classified(articles, model_dir, backend, batch_size, min_score, actors, cpus_per_actor, gpus_per_actor,
                      window, ship=ship)
    return rows.map_batches(_public, batch_format="pyarrow", **helper_tasks(actors))
