"""Every script the README names runs, as a real process, on tiny data made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import make_rows, tiny_config_dict, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: object, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run scripts/NAME from the repository root as a user would; it must exit 0."""
    proc = subprocess.run([sys.executable, f"scripts/{name}", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_baselines_script_trains_on_a_list_of_training_files(tmp_path, tiny_backbone, tiny_data):
    # Two files with two labels each: read as one list, TF-IDF sees all four labels; either
    # file alone would leave two labels unpredictable (macro-F1 <= 0.5).
    rows = make_rows(160, 1)
    first = write_jsonl(tmp_path / "a.jsonl", [r for r in rows if r["label"] in ("accuse", "deny")])
    second = write_jsonl(tmp_path / "b.jsonl", [r for r in rows if r["label"] in ("support", "none")])
    cfg = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "unused")
    cfg["data"]["train"] = [str(first), str(second)]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_script("baselines.py", "--config", tmp_path / "c.yaml", "--json", tmp_path / "b.json")
    results = json.loads((tmp_path / "b.json").read_text())["results"]
    assert set(results) == {f"{m}/{s}" for m in ("keyword rule", "tfidf+logreg") for s in ("dev", "test")}
    assert results["tfidf+logreg/test"]["macro_f1"] > 0.8, results["tfidf+logreg/test"]
    table = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[2:]}
    assert table["tfidf+logreg/test"] == f"{results['tfidf+logreg/test']['macro_f1']:.3f}"
