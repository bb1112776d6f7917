"""Leave one source out: the split files it trains and scores on, and its table row."""

import json

import numpy as np
import pytest

from experiments.loso import loso_row, split_files
from stance.config import config_from_dict
from stance.errors import StanceError

LABELS = ["accuse", "deny", "support", "none"]


def _write(path, sources):
    path.write_text("".join(json.dumps({"text": f"{s} {i}", "label": "none", "source": s}) + "\n"
                            for i, s in enumerate(sources)))
    return str(path)


def test_the_group_leaves_train_and_dev_and_alone_makes_the_test_set(tmp_path):
    cfg = config_from_dict({"data": {"train": [_write(tmp_path / "r1.jsonl", ["bbc", "plover", "fnc1"]),
                                               _write(tmp_path / "r2.jsonl", ["conflibert", "bbc"])],
                                     "dev": _write(tmp_path / "dev.jsonl", ["cameo_annot", "bbc"]),
                                     "test": _write(tmp_path / "test.jsonl", ["plover", "bbc", "conflibert"])}})
    extra = _write(tmp_path / "test_other.jsonl", ["polnear", "plover"])
    files = split_files(cfg, "cameo", [extra], tmp_path / "work")
    sources = {k: [json.loads(line)["source"] for line in open(v)] for k, v in files.items()}
    assert sources == {"train": ["bbc", "fnc1", "bbc"], "dev": ["bbc"], "test": ["plover", "conflibert", "plover"]}
    with pytest.raises(StanceError, match="no test sentence comes from emergent"):
        split_files(cfg, "emergent", [], tmp_path / "work2")


def test_a_row_gives_with_without_and_their_gap():
    gold = [0, 1, 2, 3] * 5
    record = {"group": "bbc", "sources": ["bbc"], "train_rows": 1234, "gold": gold,
              "included": {"seed-42": gold, "seed-43": gold}, "without": [3] * 20}
    row = loso_row(record, LABELS)
    # With: every sentence right (1.000). Without: all `none`, so F1 0 on three labels and 0.4 on none.
    assert row.startswith("| bbc (bbc) | 20 | 1,234 | 1.000 [1.000, 1.000] | 0.100 [")
    assert "| -0.900 [" in row and row.endswith("| 0.00 / 0.00 / 0.00 / 0.40 |")
    assert np.isclose(float(row.split("|")[5].split()[0]), 0.1)
