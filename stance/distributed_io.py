"""Files in and out of `stance predict --engine ray`: JSONL / Parquet inputs, part files and ``_SUCCESS``.

Inputs are local paths or any URI pyarrow's filesystems accept (``s3://``, ``gs://``,
``hdfs://``, ``file://``).  Ray tasks read them, one per file and streaming: JSONL line by
line with the rules of `stance predict` (a broken or oversized line is skipped and counted,
never read whole), Parquet record batch by record batch (columns ``id`` and ``text``).

The output directory holds ``part-*.parquet`` (or ``.jsonl``) files and, written last,
``_SUCCESS``: the summary and the list of part files.  A local directory is built under a
temporary name beside it and renamed into place whole (``io.atomic_dir``), under the same
lock as every other output; on object storage, where nothing renames, a directory without
``_SUCCESS`` is an unfinished run.  Every write task names its files after its task index,
so a task Ray re-runs overwrites its own files instead of adding copies.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stance.articles import JSONL_SUFFIXES, jsonl_articles
from stance.distributed import INTERNAL, require_ray
from stance.errors import StanceError, reason, warn
from stance.io import atomic_dir, check_output_dir, output_lock
from stance.predict import PredictSummary

PARQUET_SUFFIXES = {".parquet", ".pq"}
SUCCESS = "_SUCCESS"
FORMATS = ("parquet", "jsonl")


@dataclass
class Inputs:
    """Input files of one filesystem: (path the filesystem knows, name the user gave) per file."""

    fs: Any
    jsonl: list[tuple[str, str]] = field(default_factory=list)
    parquet: list[tuple[str, str]] = field(default_factory=list)


def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) for a local path or a URI."""
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), str(Path(uri).resolve())
    try:
        return fs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as e:  # pyarrow: unknown scheme, missing credentials, bad bucket
        raise StanceError(f"{uri}: cannot open: {reason(e)}") from None


def list_inputs(inputs: list[str]) -> list[Inputs]:
    """The .jsonl/.parquet files of every input (folders searched recursively, sorted); a missing one fails."""
    from pyarrow import fs as pafs

    found = []
    for item in inputs:
        fs, path = _filesystem(item)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise StanceError(f"{item}: not found")
        group = Inputs(fs)
        if info.type == pafs.FileType.Directory:
            files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                           if i.type == pafs.FileType.File)
            named = [(f, item.rstrip("/") + "/" + os.path.relpath(f, path)) for f in files]
        else:
            named = [(path, item)]
        for f, name in named:
            suffix = Path(f).suffix.lower()
            if suffix in JSONL_SUFFIXES:
                group.jsonl.append((f, name))
            elif suffix in PARQUET_SUFFIXES:
                group.parquet.append((f, name))
            elif info.type != pafs.FileType.Directory:
                raise StanceError(f"{item}: --engine ray reads .jsonl and .parquet files, not {suffix or 'this'}")
        if not group.jsonl and not group.parquet:
            warn(f"{item}: folder holds no .jsonl or .parquet files")
        found.append(group)
    return found


def _check_parquet(group: Inputs) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path, name in group.parquet:
        try:
            with group.fs.open_input_file(path) as fh:
                schema = pq.read_schema(fh)
        except (OSError, pa.ArrowException) as e:
            raise StanceError(f"{name}: not a Parquet file ({reason(e)})") from None
        missing = [c for c in ("id", "text") if c not in schema.names]
        if missing:
            raise StanceError(f"{name}: no {' or '.join(missing)} column (articles need id and text)")


def read_jsonl(batch: Any, fs: Any, max_article_bytes: int) -> Any:
    """A Ray task: stream the articles of JSONL files as (doc_id, text, _skip) tables."""
    for path, name in zip(batch.column("path").to_pylist(), batch.column("name").to_pylist()):
        yield from _jsonl_tables(fs, path, name, max_article_bytes)


def _jsonl_tables(fs: Any, path: str, name: str, max_article_bytes: int, per_table: int = 256) -> Any:
    import pyarrow as pa

    from stance.distributed import article_schema

    rows: list[dict[str, Any]] = []

    def skipped(_path: str, _line: int | None, why: str) -> None:
        rows.append({"doc_id": None, "text": None, "_skip": why})

    with _read_errors(name), fs.open_input_stream(path) as raw:
        for art in jsonl_articles(io.BufferedReader(raw, 1 << 20), name, max_article_bytes, skipped, strict=False):
            rows.append({"doc_id": art.doc_id, "text": art.text, "_skip": None})
            if len(rows) >= per_table:
                yield pa.Table.from_pylist(rows, schema=article_schema())
                rows.clear()
    yield pa.Table.from_pylist(rows, schema=article_schema())


def read_parquet(batch: Any, fs: Any, max_article_bytes: int) -> Any:
    """A Ray task: stream the (id, text) rows of Parquet files, record batch by record batch, checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stance.distributed import check_articles

    for path, name in zip(batch.column("path").to_pylist(), batch.column("name").to_pylist()):
        with _read_errors(name), fs.open_input_file(path) as fh:
            for record_batch in pq.ParquetFile(fh).iter_batches(batch_size=256, columns=["id", "text"]):
                yield check_articles(pa.Table.from_batches([record_batch]), max_article_bytes, name)


@contextlib.contextmanager
def _read_errors(name: str) -> Iterator[None]:
    """A file that breaks while read (a corrupt Parquet page, a file gone, storage refusing) as a user error."""
    import pyarrow as pa

    try:
        yield
    except (OSError, pa.ArrowException) as e:
        raise StanceError(f"{name}: cannot read: {reason(e)}") from None


def read_articles(groups: list[Inputs], max_article_bytes: int, actors: int) -> Any:
    """One Ray Dataset of article rows (doc_id, text, _skip) from every input file, one read task per file.

    Read tasks reserve no CPU: the classifying actors hold them all (``ray.data.read_parquet``
    would first list files in a task that waits for a free CPU, and so forever).
    """
    ray = require_ray()
    from stance.distributed import helper_tasks

    parts = []
    for group in groups:
        _check_parquet(group)
        for read, files in ((read_jsonl, group.jsonl), (read_parquet, group.parquet)):
            if files:
                listed = ray.data.from_items([{"path": p, "name": n} for p, n in files], override_num_blocks=len(files))
                parts.append(listed.map_batches(read, batch_format="pyarrow", batch_size=1, **helper_tasks(actors),
                                                fn_kwargs={"fs": group.fs, "max_article_bytes": max_article_bytes}))
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


# -- writing ----------------------------------------------------------------------------------


def _count(table: Any, counts: Counter) -> Any:
    """Add a block's marker and sentence rows to ``counts``; return its sentence rows, output columns only."""
    import pyarrow.compute as pc

    is_marker = pc.less(table.column("sent_idx"), 0)
    markers, rows = table.filter(is_marker), table.filter(pc.invert(is_marker))
    for why in markers.column("_skip").to_pylist():
        counts["skip " + why if why else "articles"] += 1
    counts["cut"] += sum(markers.column("_cut").to_pylist())
    counts["truncated"] += sum(rows.column("_truncated").to_pylist())
    counts["sentences"] += rows.num_rows
    counts.update("label " + lab for lab in rows.column("label").to_pylist())
    return rows.drop_columns(INTERNAL)


def _write_part(fs: Any, path: str, rows: Any, fmt: str) -> None:
    import pyarrow.parquet as pq

    with fs.open_output_stream(path) as fh:
        if fmt == "parquet":
            pq.write_table(rows, fh)
        else:  # the bytes `stance predict --format jsonl` writes for these rows
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.to_pylist()).encode("utf-8"))


def make_sink(fs: Any, directory: str, fmt: str) -> Any:
    """A Ray Datasink writing part files into ``directory`` and counting what the summary needs."""
    from ray.data import Datasink

    class PartSink(Datasink):
        def __init__(self) -> None:
            self.returns: list[dict[str, Any]] = []

        def write(self, blocks: Any, ctx: Any) -> dict[str, Any]:
            from ray.data.block import BlockAccessor

            counts: Counter = Counter()
            files = []
            for i, block in enumerate(blocks):
                table = BlockAccessor.for_block(block).to_arrow()
                if not table.num_rows:  # Ray passes empty blocks on, without columns
                    continue
                rows = _count(table, counts)
                if rows.num_rows:
                    # Named after the task: a task Ray runs again writes over its own files.
                    name = f"part-{ctx.task_idx:05d}-{i:04d}.{fmt}"
                    _write_part(fs, f"{directory}/{name}", rows, fmt)
                    files.append(name)
            return {"counts": dict(counts), "files": files}

        def on_write_complete(self, write_result: Any) -> None:
            self.returns = list(write_result.write_returns)

    return PartSink()


def summarize(returns: list[dict[str, Any]], seconds: float) -> tuple[PredictSummary, list[str]]:
    """The summary `stance predict` prints, and the part files, from what the write tasks returned."""
    counts: Counter = Counter()
    files: list[str] = []
    for r in returns:
        counts.update(r["counts"])
        files.extend(r["files"])
    summary = PredictSummary(articles=counts["articles"], sentences=counts["sentences"], truncated=counts["truncated"],
                             cut=counts["cut"], seconds=seconds)
    for key, n in counts.items():
        kind, _, name = key.partition(" ")
        if kind == "skip":
            summary.skipped[name] += n
        elif kind == "label":
            summary.labels[name] += n
    return summary, sorted(files)


@contextlib.contextmanager
def output_dir(out: str) -> Iterator[tuple[Any, str]]:
    """(filesystem, directory) to write the parts and ``_SUCCESS`` into, published whole when the block succeeds.

    Locally: an empty folder or an earlier output of this command is replaced, nothing else.
    """
    fs, path = _filesystem(out)
    if fs.type_name != "local":
        with remote_output_dir(fs, path, out) as directory:
            yield fs, directory
        return
    check_output_dir(path, ("predictions",), True, "--out")
    with output_lock(path), atomic_dir(path) as tmp:
        yield fs, str(tmp)


@contextlib.contextmanager
def remote_output_dir(fs: Any, path: str, out: str) -> Iterator[str]:
    """On object storage, which renames nothing, the directory must be new or empty; a failed run
    deletes what it wrote (and without ``_SUCCESS`` it reads as unfinished even where that fails)."""
    from pyarrow import fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        raise StanceError(f"--out {out}: exists and is not a directory; choose another path")
    if info.type == pafs.FileType.Directory and fs.get_file_info(pafs.FileSelector(path)):
        raise StanceError(f"--out {out}: not empty; choose a new or empty directory")
    fs.create_dir(path)
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_dir(path)
        raise


def publish(fs: Any, directory: str, summary: PredictSummary, files: list[str], fmt: str) -> None:
    """Check every part file is where the driver can see it, then write ``_SUCCESS`` (last)."""
    from pyarrow import fs as pafs

    present = {Path(i.path).name for i in fs.get_file_info(pafs.FileSelector(directory))}
    missing = [f for f in files if f not in present]
    if missing:  # a local --out on a cluster: each node wrote into its own disk
        raise StanceError(f"--out: {len(missing)} part files written by Ray workers are not in {directory} "
                          "(on a cluster, write to storage every node shares, e.g. s3://bucket/dir)")
    manifest = {"format": fmt, "files": files, "articles": summary.articles, "sentences": summary.sentences,
                "labels": dict(sorted(summary.labels.items())), "skipped": dict(sorted(summary.skipped.items())),
                "truncated": summary.truncated, "cut": summary.cut, "seconds": round(summary.seconds, 3)}
    with fs.open_output_stream(f"{directory}/{SUCCESS}") as fh:
        fh.write((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
