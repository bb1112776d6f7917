"""Issue 18, items 1-7: no output option can delete data, two runs cannot collide, a resume
cannot mix runs, outputs are readable and durable, a full disk or SIGTERM loses nothing,
and an interrupted `stance predict` continues where it stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stance.config import config_from_dict
from stance.errors import StanceError
from stance.train import train
from tests.conftest import tiny_config_dict
from tests.test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["Police praised the mayor.", "Critics blamed the council.", "The minister denied it.",
             "They met on Monday."]


def stance_cmd(*args: object, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **kw.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "stance.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=kw.pop("timeout", 300), **kw)


def write_articles(path: Path, n: int, per_article: int = 5) -> Path:
    rows = [{"id": f"a{i}", "text": " ".join(SENTENCES[(i + j) % 4] for j in range(per_article))} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old", ".lock")))


# -- 1. output directories ----------------------------------------------------------------


def test_train_refuses_an_output_dir_that_holds_other_files(tiny_config, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious.jsonl").write_text("mine\n")
    assert_one_line_error(run("train", tiny_config, "--output-dir", data, "--overwrite"),
                          "not empty and not a stance model directory")
    assert (data / "precious.jsonl").read_text() == "mine\n"


def test_train_replaces_a_model_directory_only_with_overwrite(tiny_config, trained_model, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(trained_model, out)
    assert_one_line_error(run("train", tiny_config, "--output-dir", out, "--quiet"), "pass --overwrite")
    r = run("train", tiny_config, "--output-dir", out, "--quiet", "--overwrite", "--set", "train.epochs=1")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "train_results.json").read_text())["log_history"][-1]["epoch"] == 1


def test_evaluate_and_export_refuse_folders_they_did_not_write(trained_model, tiny_data, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    assert_one_line_error(run("evaluate", trained_model, tiny_data["dev"], "--out", folder, "--overwrite"),
                          "not empty and not a stance evaluate report")
    r = run("evaluate", trained_model, tiny_data["dev"], "--out", tmp_path / "ev", "--quiet")
    assert r.exit_code == 0, r.output
    assert_one_line_error(run("evaluate", trained_model, tiny_data["dev"], "--out", tmp_path / "ev"),
                          "pass --overwrite")
    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    (model / "onnx").mkdir()
    (model / "onnx" / "mine.txt").write_text("keep me")
    assert_one_line_error(run("export", model, "--onnx", "--overwrite"), "not a stance ONNX export")
    assert (folder / "todo.txt").read_text() == "keep me" and (model / "onnx" / "mine.txt").is_file()


# -- 2. one writer per output ----------------------------------------------------------


def test_a_second_run_on_a_locked_output_gets_one_line(tiny_config, tmp_path):
    out = tmp_path / "model"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from stance.io import output_lock\n"
         f"with output_lock({str(out)!r}):\n    print('locked', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert_one_line_error(run("train", tiny_config, "--output-dir", out, "--quiet"),
                              f"another stance run (pid {holder.pid}")
    finally:
        holder.communicate("done\n", timeout=30)
    assert not (tmp_path / ".model.lock").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(trained_model, tmp_path):
    art = write_articles(tmp_path / "a.jsonl", 3)
    out = tmp_path / "p.jsonl"
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (tmp_path / ".p.jsonl.lock").write_text(json.dumps({"pid": dead.pid, "host": "here"}))
    dead.kill()
    dead.wait()
    r = run("predict", trained_model, art, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 15


# -- 3. resume only the same run -----------------------------------------------------------


def _interrupted_after_first_checkpoint(cfg_dict: dict, tmp_path: Path) -> None:
    cfg_dict["train"]["epochs"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg_dict))
    r = stance_cmd("train", path, "--quiet", env={"STANCE_FAULT_AT": "step-11"})  # 10 steps per epoch
    assert r.returncode == -signal.SIGKILL, r.stderr


def test_resume_refuses_checkpoints_of_another_config(tiny_backbone, tiny_data, tmp_path):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    _interrupted_after_first_checkpoint(d, tmp_path)
    d["labels"] = ["deny", "accuse", "support", "none"]
    with pytest.raises(StanceError, match=r"checkpoints come from another run \(differs in labels\)"):
        train(config_from_dict(d), resume=True, quiet=True)
    d["labels"] = tiny_config_dict(tiny_backbone, tiny_data, tmp_path)["labels"]
    metrics = train(config_from_dict(d), resume=True, quiet=True)
    assert metrics["dev"]["n"] == 40


def test_a_fresh_run_averages_only_its_own_checkpoints(tiny_backbone, tiny_data, tmp_path):
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")
    _interrupted_after_first_checkpoint(d, tmp_path)
    ckpts = tmp_path / "model.checkpoints"
    shutil.copytree(ckpts / "checkpoint-10", ckpts / "checkpoint-999")  # as an aborted longer run left it
    d["train"].update(epochs=2, average_last=2)
    metrics = train(config_from_dict(d), quiet=True)
    assert metrics["averaged_checkpoints"] == ["checkpoint-10", "checkpoint-20"]


# -- 4. and 5. readable, durable outputs ---------------------------------------------------


def test_outputs_follow_the_umask_like_any_file(trained_model, tiny_data, tmp_path):
    old = os.umask(0o022)
    try:
        art = write_articles(tmp_path / "a.jsonl", 2)
        assert run("predict", trained_model, art, "--out", tmp_path / "p.jsonl", "--quiet").exit_code == 0
        assert run("evaluate", trained_model, tiny_data["dev"], "--out", tmp_path / "ev", "--quiet").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.jsonl").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "ev").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "ev" / "metrics.json").stat().st_mode) == 0o644


def test_files_and_their_folder_are_fsynced_before_the_rename_publishes_them(tmp_path, monkeypatch):
    from stance import io

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    io.write_json(tmp_path / "m.json", {"a": 1})
    with io.atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights.bin").write_bytes(b"x" * 10)
    tmp_file = next(src for kind, src in events if kind == "replace" and src.endswith(".tmp")
                    and "m.json" in src)
    assert events.index(("fsync", tmp_file)) < events.index(("replace", tmp_file))
    weights = next(i for i, (k, p) in enumerate(events) if k == "fsync" and p.endswith("weights.bin"))
    swap = next(i for i, (k, p) in enumerate(events) if k == "replace" and ".model." in p)
    assert weights < swap
    assert ("fsync", str(tmp_path)) in events[swap:]


# -- 6. full disk, permissions, SIGTERM ---------------------------------------------------


def _limit_file_size(limit: int):
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_keeps_the_previous_output_and_leaves_no_tmp(trained_model, tiny_data, tmp_path):
    art = write_articles(tmp_path / "a.jsonl", 400)
    out = tmp_path / "p.jsonl"
    out.write_text("previous\n")
    r = stance_cmd("predict", trained_model, art, "--out", out, "--quiet", preexec_fn=_limit_file_size(20_000))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {out}: cannot write: File too large")
    assert out.read_text() == "previous\n" and leftovers(tmp_path) == []
    r = stance_cmd("evaluate", trained_model, tiny_data["dev"], "--out", tmp_path / "ev2", "--quiet",
                   preexec_fn=_limit_file_size(2_000))
    assert r.returncode == 2 and "cannot write: File too large" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ev2").exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_a_read_only_folder_gives_one_line(trained_model, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode:
        pytest.skip("mount not permitted here")
    try:
        art = write_articles(tmp_path / "a.jsonl", 2)
        r = stance_cmd("predict", trained_model, art, "--out", ro / "p.jsonl", "--quiet")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "cannot write: Read-only file system" in r.stderr
    finally:
        subprocess.run(["umount", str(ro)])


def test_sigterm_is_handled_like_ctrl_c_and_the_run_resumes(trained_model, tmp_path):
    art = write_articles(tmp_path / "a.jsonl", 3000)
    out = tmp_path / "p.jsonl"
    out.write_text("previous\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "stance.cli", "predict", str(trained_model), str(art),
                             "--out", str(out), "--quiet", "--batch-size", "8"],
                            stderr=subprocess.PIPE, text=True, env=env)
    progress = tmp_path / ".p.jsonl.progress.json"
    deadline = time.monotonic() + 120
    while not progress.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    assert out.read_text() == "previous\n" and leftovers(tmp_path) == []
    r = stance_cmd("predict", trained_model, art, "--out", out, "--quiet", "--batch-size", "8", "--resume")
    assert r.returncode == 0, r.stderr
    full = stance_cmd("predict", trained_model, art, "--out", tmp_path / "full.jsonl", "--quiet",
                      "--batch-size", "8")
    assert full.returncode == 0
    assert out.read_text() == (tmp_path / "full.jsonl").read_text()


# -- 7. predict --resume --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_predict_killed_mid_run_resumes_without_lost_or_repeated_rows(trained_model, tmp_path, fmt):
    art = write_articles(tmp_path / "a.jsonl", 700)  # 3,500 sentences: 4 windows of >= 1,024
    out = tmp_path / f"p.{fmt}"
    r = stance_cmd("predict", trained_model, art, "--out", out, "--quiet",
                   env={"STANCE_FAULT_AT": "predict-window-3"})
    assert r.returncode == -signal.SIGKILL
    assert not out.exists()
    r = stance_cmd("predict", trained_model, art, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed after 410 articles" in r.stderr  # windows end between articles: 205 per window
    full = tmp_path / f"full.{fmt}"
    assert stance_cmd("predict", trained_model, art, "--out", full, "--quiet").returncode == 0
    assert out.read_text() == full.read_text()
    assert leftovers(tmp_path) == [] and not (tmp_path / f".p.{fmt}.partial").exists()


def test_predict_resume_refuses_other_inputs(trained_model, tmp_path):
    art = write_articles(tmp_path / "a.jsonl", 700)
    out = tmp_path / "p.jsonl"
    stance_cmd("predict", trained_model, art, "--out", out, "--quiet", env={"STANCE_FAULT_AT": "predict-window-2"})
    write_articles(art, 701)
    assert_one_line_error(run("predict", trained_model, art, "--out", out, "--resume", "--quiet"),
                          "the interrupted run had other inputs")
