"""Fault drill: kill `stance train` and `stance predict` with SIGKILL at the worst moments.

Each drill starts from a previous, complete output at the same path, kills a run
that would replace it (``STANCE_FAULT_AT`` names the point, see
``stance.io.fault_point``), checks that the previous output is still intact and
loadable, then runs the same command with ``--resume`` and checks that it
completes.  The predict drill also checks that the resumed predictions equal an
uninterrupted run's, row for row.

Training uses a tiny random 2-layer BERT (``stance.testing``), so the drill
takes a minute or two on 2 cores and needs no real weights:

    python scripts/fault_drill.py [--sentences 20000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from stance.testing import build_tiny_backbone, tiny_config_dict, write_tiny_data

SENTENCES = ["Police praised the mayor.", "Critics blamed the council over the delays.",
             "The minister denied the report.", "They met on Monday.", "Labour backed the plan."]
# train: 160 rows in batches of 16 = 10 steps per epoch, 2 epochs.
TRAIN_DRILLS = [
    ("train: mid-epoch (step 15 of 20)", "step-15", {}),
    ("train: during a checkpoint save (epoch 2)", "checkpoint-save-20", {}),
    ("train: during the final directory swap", "dir-swap", {}),
    ("train: between the two renames of the fallback swap", "dir-swap-half", {"STANCE_NO_RENAME_EXCHANGE": "1"}),
]


def stance(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stance.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def loads(model: Path) -> bool:
    """The directory loads and classifies (the same check a user's first call makes)."""
    r = subprocess.run([sys.executable, "-c", "import sys; from stance import StanceClassifier; "
                        "print(StanceClassifier.load(sys.argv[1]).predict(['Police praised the mayor.']))",
                        str(model)], capture_output=True, text=True, timeout=300)
    return r.returncode == 0


def train_drill(work: Path, name: str, point: str, env: dict[str, str], config: Path) -> dict[str, str]:
    out = work / "model"
    before = digest(out / "model.safetensors")
    killed = stance("train", config, "--output-dir", out, "--overwrite", "--quiet",
                    env={"STANCE_FAULT_AT": point, **env})
    row = {"drill": name, "killed": "yes" if killed.returncode == -signal.SIGKILL else f"no (rc {killed.returncode})"}
    at_path = (out / "model.safetensors").is_file() and digest(out / "model.safetensors") == before and loads(out)
    # The fallback swap, killed between its renames, leaves the old model beside the path; the next
    # stance run on that output puts it back before writing anything (io.clean_stale_siblings).
    old = next(work.glob(".model.*.old/model"), None)
    beside = old is not None and digest(old / "model.safetensors") == before and loads(old)
    row["previous intact"] = ("yes" if at_path else "yes, beside the path until the next run restores it"
                              if beside else "NO")
    resumed = stance("train", config, "--output-dir", out, "--overwrite", "--resume", "--quiet", env=env)
    row["--resume"] = "completed" if resumed.returncode == 0 and loads(out) else f"FAILED: {resumed.stderr[-200:]}"
    row["leftovers"] = ", ".join(sorted(p.name for p in work.iterdir() if p.name.startswith(".model"))) or "none"
    return row


def predict_drill(work: Path, model: Path, n_sentences: int) -> dict[str, str]:
    per = len(SENTENCES)
    articles = work / "articles.jsonl"
    with articles.open("w") as fh:
        for i in range(n_sentences // per):
            fh.write(json.dumps({"id": f"a{i}", "text": " ".join(SENTENCES[(i + j) % per] for j in range(per))}) + "\n")
    full, out = work / "full.jsonl", work / "predictions.jsonl"
    assert stance("predict", model, articles, "--out", full, "--quiet").returncode == 0
    shutil.copy(full, out)  # the previous prediction file the killed run would replace
    windows = -(-n_sentences // 1025)
    killed = stance("predict", model, articles, "--out", out, "--quiet",
                    env={"STANCE_FAULT_AT": f"predict-window-{windows // 2 + 1}"})
    rows_ok = all(json.loads(line) for line in out.read_text().splitlines())
    row = {"drill": f"predict: {n_sentences:,} sentences, at 50%",
           "killed": "yes" if killed.returncode == -signal.SIGKILL else f"no (rc {killed.returncode})",
           "previous intact": "yes" if out.read_bytes() == full.read_bytes() and rows_ok else "NO"}
    resumed = stance("predict", model, articles, "--out", out, "--resume")
    same = resumed.returncode == 0 and out.read_bytes() == full.read_bytes()
    note = next((p.strip() for p in resumed.stderr.split("; ") if p.startswith("resumed after")), "")
    row["--resume"] = f"completed, {note}, rows equal to uninterrupted" if same else f"FAILED: {resumed.stderr[-200:]}"
    row["leftovers"] = ", ".join(sorted(p.name for p in work.iterdir() if p.name.startswith(".predictions"))) or "none"
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=20_000, help="size of the predict drill's input")
    ap.add_argument("--workdir", type=Path, help="keep files here (default: a temporary folder)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stance-drill-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config_dict(build_tiny_backbone(work / "backbone"), write_tiny_data(work / "data"), work / "model")
    cfg["train"]["epochs"] = 2
    config = work / "drill.yaml"
    config.write_text(yaml.safe_dump(cfg))
    first = stance("train", config, "--quiet")
    if first.returncode:
        print(first.stderr, file=sys.stderr)
        return 1
    rows = [train_drill(work, name, point, env, config) for name, point, env in TRAIN_DRILLS]
    rows.append(predict_drill(work, work / "model", args.sentences))
    cols = ["drill", "killed", "previous intact", "--resume", "leftovers"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(row[c] for c in cols) + " |")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(r["killed"] == "yes" and r["previous intact"].startswith("yes") and not r["--resume"].startswith("FAIL")
             and r["leftovers"] == "none" for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
