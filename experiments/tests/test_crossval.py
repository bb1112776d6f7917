import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from experiments.crossval import fold_settings, paired_diff, run_crossval, story_folds
from experiments.settings import Setting
from stance.errors import StanceError
from stance.testing import make_rows, tiny_config_dict, write_jsonl


def test_story_folds_keep_stories_whole_and_balance_rows():
    # 30 documents in 12 stories of uneven size; doc d{i} belongs to story s{i % 12}.
    doc_ids = [f"d{i}" for i in range(30) for _ in range(1 + i % 4)]
    group_of = {f"d{i}": f"s{i % 12}" for i in range(30)}
    fold_of = story_folds(doc_ids, group_of, k=3, seed=1)
    assert set(fold_of) == set(group_of.values()) and set(fold_of.values()) == {0, 1, 2}
    rows_per_story = Counter(group_of[d] for d in doc_ids)
    load = Counter()
    for story, fold in fold_of.items():
        load[fold] += rows_per_story[story]
    assert max(load.values()) - min(load.values()) <= max(rows_per_story.values())
    assert story_folds(doc_ids, group_of, k=3, seed=1) == fold_of  # seeded
    # A document missing from the map is its own story.
    assert "lonely" in story_folds([*doc_ids, "lonely"], group_of, k=3, seed=1)
    with pytest.raises(StanceError, match="k >= 2"):
        story_folds(doc_ids, group_of, k=1, seed=1)
    with pytest.raises(StanceError, match="2 stories cannot fill 3 folds"):
        story_folds(["a", "b"], {}, k=3, seed=1)


def _corpus(tmp_path):
    """Round-1 train in 20 stories (two documents each), and a later round partly from those stories."""
    r1 = make_rows(160, 1)
    for i, r in enumerate(r1):
        r["doc_id"] = f"doc{i % 40}"
    r2 = make_rows(40, 5)
    for i, r in enumerate(r2):
        r["doc_id"] = f"doc{i % 10}" if i < 20 else f"new{i}"  # half from round-1 stories, half from no split
    group_of = {f"doc{i}": f"story{i % 20}" for i in range(40)}
    return write_jsonl(tmp_path / "r1.jsonl", r1), write_jsonl(tmp_path / "r2.jsonl", r2), group_of


def test_folds_hold_out_whole_stories_from_every_training_file(tmp_path, tiny_backbone, tiny_data):
    r1, r2, group_of = _corpus(tmp_path)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "unused")))
    setting = Setting("more", "r1 + r2", (f"data.train=[{r1}, {r2}]",))
    folds = fold_settings(cfg, setting, str(r1), group_of, k=2, seed=3, work_dir=tmp_path / "cv")
    story = lambda r: group_of.get(r["doc_id"], r["doc_id"])  # noqa: E731
    read = lambda p: [json.loads(line) for line in p.read_text().splitlines()]  # noqa: E731
    held = [read(test_path) for _, test_path in folds]
    # The held-out files partition round-1 train.
    assert sorted(r["id"] for h in held for r in h) == sorted(r["id"] for r in read(r1))
    for (fs, _), h in zip(folds, held):
        out_stories = {story(r) for r in h}
        train_files = [p.strip() for p in next(o for o in fs.overrides[1:] if o.startswith("data.train="))
                       .removeprefix("data.train=[").removesuffix("]").split(",")]
        trained = [r for p in train_files for r in read(Path(p))]
        assert not {story(r) for r in trained} & out_stories
        # Rows of stories in no fold always train.
        assert {r["id"] for r in read(r2) if r["doc_id"].startswith("new")} <= {r["id"] for r in trained}
    with pytest.raises(StanceError, match="does not train on"):
        fold_settings(cfg, Setting("other", "r2 only", (f"data.train={r2}",)), str(r1), group_of, 2, 3, tmp_path)


def test_crossval_pools_out_of_fold_predictions_and_reuses_cached_folds(tmp_path, tiny_backbone, tiny_data,
                                                                       monkeypatch):
    r1, r2, group_of = _corpus(tmp_path)
    d = tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "unused")
    d["train"]["epochs"] = 2
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(d))
    settings = [Setting("base", "r1", (f"data.train=[{r1}]",)),
                Setting("more", "r1 + r2", (f"data.train=[{r1}, {r2}]",))]
    args = (cfg, settings, str(r1), group_of, tmp_path / "runs", tmp_path / "work")
    result = run_crossval(*args, k=2, seed=3, log=lambda _: None)
    assert result["baseline"] == "base" and set(result["settings"]) == {"base", "more"}
    for r in result["settings"].values():
        assert r["n"] == 160 and 0 <= r["macro_f1"] <= 1
    assert "diff" in result["settings"]["more"] and "diff" not in result["settings"]["base"]
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    # Every fold cached: the same result without training again.
    monkeypatch.setattr("stance.train.train", lambda *a, **k: pytest.fail("retrained a cached fold"))
    assert run_crossval(*args, k=2, seed=3, log=lambda _: None, train_missing=False) == result
    # A fold not run yet: None, not training.
    assert run_crossval(*args, k=3, seed=3, log=lambda _: None, train_missing=False) is None


def test_paired_diff_sees_a_better_predictor():
    gold = ["accuse", "deny", "none", "support"] * 50
    worse = ["none"] * len(gold)
    r = paired_diff(gold, worse, gold, ["accuse", "deny", "support", "none"])
    assert r["diff"] > 0.5 and r["diff_sd"] < 0.1
    same = paired_diff(gold, gold, gold, ["accuse", "deny", "support", "none"])
    assert same == {"diff": 0.0, "diff_sd": 0.0}
