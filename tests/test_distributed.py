"""`stance predict --engine ray` on a real local Ray (2 CPUs, started once for this module).

Every run is compared with `stance predict` (the local engine) on the same articles: the
rows must be the same, each exactly once, whatever order Ray writes them in.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from tests.conftest import make_rows
from tests.test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # Workers start from the raylet's environment: an absolute path, whatever directory they run in.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)
    # Workers' output stays in Ray's logs: printed here, it could land in a later test's captured stderr.
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()
    os.environ.pop("PYTHONPATH") if old is None else os.environ.update(PYTHONPATH=old)


@pytest.fixture(scope="module")
def onnx_model(trained_model, tmp_path_factory):
    """The tiny model with its ONNX export, so that --backend auto has a choice to make (as in production)."""
    from stance.export import export

    m = tmp_path_factory.mktemp("ray-model") / "model"
    shutil.copytree(trained_model, m)
    export(m, onnx=True, int8=False)
    return m


def _articles(n: int, seed: int) -> list[dict]:
    """``n`` articles of 1-8 synthetic news sentences (a paragraph break now and then)."""
    rng, rows = random.Random(seed), make_rows(8 * n, seed)
    out = []
    for i in range(n):
        sentences = [r["text"] for r in rows[8 * i: 8 * i + rng.randint(1, 8)]]
        out.append({"id": f"a{seed}-{i}", "text": " ".join(sentences[:3]) + "\n\n" + " ".join(sentences[3:])})
    return out


def _write_jsonl(path: Path, rows: list[dict], extra_lines: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra_lines, encoding="utf-8")
    return path


def _local_rows(model: Path, jsonl: Path, tmp_path: Path) -> tuple[list[str], str]:
    """`stance predict` (local engine) on a clean JSONL file: its output lines and its summary line."""
    out = tmp_path / "local.jsonl"
    r = run("predict", model, jsonl, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    return out.read_text(encoding="utf-8").splitlines(), r.stderr.strip()


def _key(row: dict) -> tuple:
    return row["doc_id"], row["sent_idx"]


def _assert_same_rows(lines: list[str], expected: list[str]) -> None:
    """Equal rows: every field exactly, except that a score may differ by one unit of its 4th decimal.

    Small windows batch the sentences differently from the local engine, so their padding differs,
    and ONNX Runtime's fp32 kernels then round a probability's last bits differently: now and then
    that moves the 4th printed decimal.  Labels, offsets and spans must still match exactly.
    """
    got, want = sorted(map(json.loads, lines), key=_key), sorted(map(json.loads, expected), key=_key)
    assert [_key(r) for r in got] == [_key(r) for r in want]
    for a, b in zip(got, want):
        sa, sb = a.pop("scores"), b.pop("scores")
        assert abs(a.pop("score") - b.pop("score")) <= 1.5e-4 and a == b, (a, b)
        assert sa.keys() == sb.keys() and all(abs(sa[k] - sb[k]) <= 1.5e-4 for k in sa), (sa, sb)


def _without_rate(summary: str) -> str:
    """The summary line without its sentences/s (the one part that differs between runs)."""
    head, _, rest = summary.partition(" sentences/s")
    return head.rsplit(",", 1)[0] + rest


def test_ray_engine_writes_the_rows_and_summary_of_stance_predict_from_jsonl_and_parquet(onnx_model, tmp_path):
    arts = _articles(60, 1)
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    # Half the articles as JSONL (with a broken line and a NUL line, skipped and counted), half as Parquet
    # (with a null text, skipped and counted), in a nested folder.
    _write_jsonl(inputs / "a.jsonl", arts[:30], '{"id": "broken", "text": \n{"id": "nul", "text": "a\\u0000b"}\n')
    pq.write_table(pa.Table.from_pylist(arts[30:] + [{"id": "empty", "text": None}]), inputs / "sub" / "b.parquet")
    local_lines, local_summary = _local_rows(onnx_model, _write_jsonl(tmp_path / "all.jsonl", arts), tmp_path)

    r = run("predict", onnx_model, inputs, "--engine", "ray", "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(["_SUCCESS", *manifest["files"]])
    rows = pq.read_table(out).to_pylist()
    assert sorted(rows, key=_key) == sorted(map(json.loads, local_lines), key=_key)
    summary = r.stderr.strip().splitlines()[-1]
    skips = "; skipped 1 binary, 1 broken JSON, 1 no 'text' string"
    assert _without_rate(summary) == _without_rate(local_summary) + skips
    assert manifest["sentences"] == len(rows) and manifest["articles"] == 60
    # No temporary, lock or partial left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.jsonl", "in", "local.jsonl", "out"]


def _kill_first_actor(pid_file: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_an_actor_killed_mid_run_is_replaced_and_every_row_is_written_exactly_once(onnx_model, tmp_path):
    from stance.ray_predict import predict_with_ray

    arts = _articles(80, 2)
    local_lines, _ = _local_rows(onnx_model, _write_jsonl(tmp_path / "in.jsonl", arts), tmp_path)
    pid_file = tmp_path / "actor.pid"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_actor, args=(pid_file, killed), daemon=True)
    killer.start()
    # The first actor to get a batch writes its pid and waits to be killed, with that batch in flight;
    # small windows give the pool many batches, so the kill lands mid-run.
    summary = predict_with_ray(onnx_model, [str(tmp_path / "in.jsonl")], str(tmp_path / "out"), fmt="jsonl",
                               quiet=True, window=48, runtime_env={"env_vars": {"STANCE_RAY_KILL_ME": str(pid_file)}})
    killer.join(5)
    assert killed, "no actor reached the fault hook"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    lines = [line for part in sorted((tmp_path / "out").glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    # The rows `stance predict` writes, none lost, none twice.
    assert len(set(lines)) == len(lines)
    _assert_same_rows(lines, local_lines)
    assert summary.sentences == len(local_lines) and summary.articles == 80


def test_predict_dataset_turns_a_ray_dataset_of_articles_into_prediction_rows(onnx_model, tmp_path):
    from stance.distributed import predict_dataset

    arts = _articles(12, 3)
    local_lines, _ = _local_rows(onnx_model, _write_jsonl(tmp_path / "in.jsonl", arts), tmp_path)
    ds = ray.data.from_items(arts + [{"id": "no-text", "text": None}])  # skipped, as stance predict would
    # ship=True: the model reaches the actor through Ray's object store, as on a cluster of several nodes.
    rows = predict_dataset(ds, onnx_model, actors=1, ship=True).take_all()
    assert sorted(rows, key=_key) == sorted(map(json.loads, local_lines), key=_key)


def test_each_actor_runs_onnx_runtime_on_the_cpus_ray_gave_it(onnx_model):
    from stance.distributed import ClassifyBatch

    actor = ray.remote(ClassifyBatch).options(num_cpus=1).remote(str(onnx_model), "onnx", 64, None, 1)
    # Two CPUs here: without the limit, ONNX Runtime would start one thread per core in each actor.
    assert ray.get(actor.threads.remote(), timeout=120) == ("onnx", 1, 1)
    ray.kill(actor)


def test_a_corrupt_parquet_input_is_one_error_line_and_leaves_no_output(onnx_model, tmp_path):
    path = tmp_path / "in" / "a.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(_articles(20, 4)), path)
    data = bytearray(path.read_bytes())
    data[4:200] = b"\xff" * 196  # the first data page: the footer (schema) still reads
    path.write_bytes(bytes(data))
    r = run("predict", onnx_model, path.parent, "--engine", "ray", "--out", tmp_path / "out", "--quiet")
    assert_one_line_error(r, f"error: {path}: cannot read: ", f"; nothing was written to {tmp_path / 'out'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "ray"], "--engine ray: needs --out DIR"),
    (["--engine", "ray", "--out", "o", "--resume"], "--resume: only with --engine local"),
    (["--engine", "ray", "--out", "o", "--format", "csv"], "--format: --engine ray writes parquet or jsonl"),
    (["--actors", "2"], "--actors: only with --engine ray"),
    (["--engine", "spark"], "--engine: must be local or ray"),
])
def test_engine_options_out_of_place_are_one_error_line(onnx_model, tmp_path, args, message):
    _write_jsonl(tmp_path / "a.jsonl", _articles(1, 5))
    assert_one_line_error(run("predict", onnx_model, tmp_path / "a.jsonl", *args), message)


def test_inputs_and_outputs_the_ray_engine_cannot_use_are_one_error_line_before_ray_runs(onnx_model, tmp_path):
    (tmp_path / "a.txt").write_text("The minister denied it.")
    assert_one_line_error(run("predict", onnx_model, tmp_path / "a.txt", "--engine", "ray", "--out", tmp_path / "o"),
                          "a.txt: --engine ray reads .jsonl and .parquet files")
    assert_one_line_error(run("predict", onnx_model, tmp_path / "nope", "--engine", "ray", "--out", tmp_path / "o"),
                          "nope: not found")
    pq.write_table(pa.Table.from_pylist([{"id": "x", "body": "y"}]), tmp_path / "b.parquet")
    assert_one_line_error(run("predict", onnx_model, tmp_path / "b.parquet", "--engine", "ray", "--out",
                              tmp_path / "o"), "b.parquet: no text column")
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("not a stance output")
    _write_jsonl(tmp_path / "a.jsonl", _articles(1, 6))
    assert_one_line_error(run("predict", onnx_model, tmp_path / "a.jsonl", "--engine", "ray", "--out", keep),
                          "not empty and not a stance predict --engine ray output")
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]


def test_fields_a_classifier_adds_to_its_rows_flow_into_the_table_with_their_type():
    from stance.distributed import _row_schema, _to_table

    base = {"doc_id": "d", "sent_idx": 0, "start": 0, "end": 9, "text": "He denied", "label": "deny", "score": 0.9,
            "scores": {"deny": 0.9, "none": 0.1}, "_skip": None, "_cut": 0, "_truncated": False}
    span = {"text": "He", "start": 0, "end": 2}
    schema = _row_schema(["deny", "none"])
    table = _to_table([{**base, "holder": span, "target": None, "cue": "denied"}], schema)
    assert table.column_names[-3:] == ["holder", "target", "cue"]
    assert table.to_pylist()[0] == {**base, "holder": span, "target": None, "cue": "denied"}
    # A batch whose holders and targets are all null still types them as spans, as every other part file does.
    nulls = _to_table([{**base, "holder": None, "target": None}], schema)
    assert nulls.schema.field("holder").type == table.schema.field("holder").type == nulls.schema.field("target").type


def test_on_object_storage_the_output_must_be_new_or_empty_and_a_failed_run_deletes_its_parts(tmp_path):
    from pyarrow import fs as pafs

    from stance.distributed_io import remote_output_dir
    from stance.errors import StanceError

    # A real filesystem that is not the local one, as S3 or GCS are to pyarrow (nothing is renamed).
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "theirs.txt").write_text("keep")
    with pytest.raises(StanceError, match="s3://b/full: not empty"), remote_output_dir(fs, "full", "s3://b/full"):
        pass
    assert (tmp_path / "full" / "theirs.txt").read_text() == "keep"
    with pytest.raises(RuntimeError), remote_output_dir(fs, "failed", "s3://b/failed") as directory:
        with fs.open_output_stream(f"{directory}/part-00000-0000.jsonl") as fh:
            fh.write(b"{}\n")
        raise RuntimeError("a worker died for good")
    assert not (tmp_path / "failed").exists()
    with remote_output_dir(fs, "done", "s3://b/done") as directory:
        with fs.open_output_stream(f"{directory}/part-00000-0000.jsonl") as fh:
            fh.write(b"{}\n")
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["part-00000-0000.jsonl"]
