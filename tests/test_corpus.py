"""The shipped corpus keeps its invariants: valid rows, no leakage between splits."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from stance.config import load_config
from stance.data import read_labeled

ROOT = Path(__file__).parents[1]
DATA = ROOT / "data"
SPLITS = ("train", "dev", "test")
# Round 1 made all three splits; every later round only adds a data/train/roundN.jsonl.
SPLIT_FILES = {"train": DATA / "train" / "round1.jsonl", "dev": DATA / "dev.jsonl", "test": DATA / "test.jsonl"}
FIELDS = {"id", "text", "label", "source", "doc_id", "confidence"}
# Every number ever reported was measured on these bytes: a held-out file that changes,
# even by reordering or re-serialising its rows, breaks comparability with all of them.
HELD_OUT_SHA256 = {
    "dev.jsonl": "8a71cc805ead1b7a2430fdbdda7cca932bc9197adfcfa7b3459fcb4298237c92",
    "test.jsonl": "b5fde9aedcf468e4fe444e2d918760dc5de557f4d60a517819567ec3e4ca4ea3",
    "test_polnear.jsonl": "ab5f38a0c298bf368d0730df14d98c479f7834ba2c9d1d5f1a4a0535b95c216b",
}


@pytest.fixture(scope="module")
def rows():
    return {s: [json.loads(x) for x in SPLIT_FILES[s].read_text().splitlines()] for s in SPLITS}


def without_spans(path: Path) -> bytes:
    """The file as it was before holder/target spans were added to its rows (corpus/spans.py apply)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return "".join(json.dumps({k: v for k, v in r.items() if k not in ("holder", "target")}, ensure_ascii=False)
                   + "\n" for r in rows).encode()


def test_dev_and_test_keep_their_exact_bytes_apart_from_the_added_spans():
    assert {name: hashlib.sha256(without_spans(DATA / name)).hexdigest() for name in HELD_OUT_SHA256} \
        == HELD_OUT_SHA256


def test_every_shipped_span_is_the_text_at_its_offsets_and_only_on_stance_rows():
    for path in [DATA / "dev.jsonl", DATA / "test.jsonl", *sorted((DATA / "train").glob("*.jsonl"))]:
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip() and "holder" in (r := json.loads(line)):
                assert r["label"] != "none", (path, r["id"])
                for span in (r["holder"], r["target"]):
                    assert span is None or r["text"][span["start"]:span["end"]] == span["text"], (path, r["id"])


def test_every_round_is_a_folder_of_annotation_and_a_file_of_training_rows():
    rounds = sorted(p.stem for p in (DATA / "train").glob("*.jsonl"))
    assert rounds == [f"round{n}" for n in range(1, 7)]
    for name in rounds:
        ann = DATA / "annotation" / name
        assert (ann / "candidates.jsonl").is_file() and (ann / "gold.jsonl").is_file() and (ann / "labels").is_dir()
    # A round being labeled has its candidates and blind batches, and no training rows yet.
    labeling = sorted(p.name for p in (DATA / "annotation").glob("round*") if p.name not in rounds)
    for name in labeling:
        ann = DATA / "annotation" / name
        assert (ann / "candidates.jsonl").is_file() and (ann / "assignment.json").is_file(), name
        assert sorted(p.name for p in (ann / "batches").glob("batch_*.jsonl")), name
    # Nothing of a round is left beside the rounds' folders.
    assert sorted(p.name for p in (DATA / "annotation").iterdir()) == sorted(
        ["polnear_test", *rounds, *labeling, "spans"])
    assert sorted(p.name for p in DATA.glob("*.jsonl")) == sorted(HELD_OUT_SHA256)


def test_the_default_recipe_trains_on_every_round_and_the_bare_default_on_round_1():
    from stance.config import DataConfig

    assert load_config(ROOT / "configs" / "base.yaml").data.train == [
        f"data/train/{p.name}" for p in sorted((DATA / "train").glob("*.jsonl"))]
    assert DataConfig().train == "data/train/round1.jsonl" and (ROOT / DataConfig().train).is_file()


def test_rows_are_complete_and_valid(rows):
    labels = load_config(ROOT / "configs" / "base.yaml").labels
    for split in SPLITS:
        read_labeled(SPLIT_FILES[split], labels)  # raises on any bad row
        for r in rows[split]:
            assert set(r) - {"holder", "target"} == FIELDS and r["confidence"] in ("high", "low") and r["doc_id"]


def test_no_document_or_sentence_in_two_splits(rows):
    def norm(t):
        return " ".join(t.lower().split())

    seen_docs, seen_texts, seen_ids = {}, {}, set()
    for split in SPLITS:
        for r in rows[split]:
            assert seen_docs.setdefault(r["doc_id"], split) == split, r["doc_id"]
            assert seen_texts.setdefault(norm(r["text"]), split) == split, r["text"]
            assert r["id"] not in seen_ids
            seen_ids.add(r["id"])


def test_sizes(rows):
    n = {s: len(rows[s]) for s in SPLITS}
    assert n["dev"] >= 600 and n["test"] >= 1000 and sum(n.values()) >= 6000
    counts = Counter(r["label"] for s in SPLITS for r in rows[s])
    assert counts["accuse"] >= 700 and counts["deny"] >= 700 and counts["none"] >= 2000
    # Support is the scarce label (see data/README.md); guard against it shrinking.
    assert counts["support"] >= 450


def test_every_gold_label_has_an_annotation():
    ann = DATA / "annotation" / "round1"
    labeled = set()
    for p in (ann / "labels").glob("batch_*.jsonl"):
        labeled.update(json.loads(x)["id"] for x in p.read_text().splitlines())
    for split in SPLITS:
        for line in SPLIT_FILES[split].read_text().splitlines():
            assert json.loads(line)["id"] in labeled


def test_later_rounds_add_train_rows_only(rows):
    """train/roundN.jsonl (N > 1): valid rows, each annotated in its round, none in dev/test or any other file."""
    labels = load_config(ROOT / "configs" / "base.yaml").labels
    held_docs = {r["doc_id"] for s in ("dev", "test") for r in rows[s]}
    held_texts = {" ".join(r["text"].lower().split()) for s in ("dev", "test") for r in rows[s]}
    seen_ids = {r["id"] for s in SPLITS for r in rows[s]}
    files = [f for f in sorted((DATA / "train").glob("round*.jsonl")) if f != SPLIT_FILES["train"]]
    assert files
    for f in files:
        read_labeled(f, labels)  # raises on any bad row
        ann = DATA / "annotation" / f.stem / "labels"
        labeled = {json.loads(x)["id"] for p in ann.glob("*.jsonl") for x in p.read_text().splitlines()}
        for line in f.read_text().splitlines():
            r = json.loads(line)
            assert set(r) - {"holder", "target"} == FIELDS and r["id"] in labeled
            assert r["doc_id"] not in held_docs and " ".join(r["text"].lower().split()) not in held_texts
            assert r["id"] not in seen_ids, r["id"]
            seen_ids.add(r["id"])
