"""scripts/polnear_round.py draws round 6 from PolNeAR train articles, as a real process on tiny data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.conftest import write_jsonl
from tests.test_scripts import read_rows, run_failing_script, run_script

LONG = "The senator spoke " + " ".join(["at length"] * 40) + " about the economy."  # 83 words
TRAIN = {
    "t1": ("Obama endorsed Clinton for president at a rally in Philadelphia. Trump denied that he had mocked a "
           "disabled reporter. Clinton accused Trump of insulting the families of fallen soldiers. Too short here. "
           "The governor defended the plan and denied any wrongdoing by his staff.\n\n"
           f"The rally began at noon on a sunny day. {LONG}\n"),
    "t2": ("Voters queued for hours in the rain outside the school. The debate moderators asked about taxes and "
           "trade policy. Reporters waited outside the hotel for the candidate to arrive.\n\n"
           "The rally began at noon on a sunny day. The crowd cheered as the candidate arrived at the stage. "
           "The campaign said the candidate would speak on Tuesday.\n"),
}
DEV = {"d1": "Pence defended Trump against the charges in an interview. "
             "The crowd cheered as the candidate arrived at the stage.\n"}
# What the pool must hold: 6-80 words, labeled nowhere, no dev sentence, each text once.
ELIGIBLE = {
    "Obama endorsed Clinton for president at a rally in Philadelphia.": ["support"],
    "Trump denied that he had mocked a disabled reporter.": ["deny"],
    "Clinton accused Trump of insulting the families of fallen soldiers.": ["accuse"],
    "The governor defended the plan and denied any wrongdoing by his staff.": ["deny", "support"],
    "The rally began at noon on a sunny day.": [],
    "Voters queued for hours in the rain outside the school.": [],
    "The campaign said the candidate would speak on Tuesday.": [],
}


def tiny_polnear(root: Path, train: dict[str, str] = TRAIN, dev: dict[str, str] = DEV) -> Path:
    """A PolNeAR copy in its own layout: <compartment>/text/<article>.txt and metadata.tsv."""
    lines = ["compartment\tfilename\tpublisher"]
    for comp, articles in (("train", train), ("dev", dev)):
        (root / comp / "text").mkdir(parents=True, exist_ok=True)
        for stem, text in articles.items():
            (root / comp / "text" / f"{stem}.txt").write_text(text, encoding="utf-8")
            lines.append(f"{comp}\t{stem}\t{'nyt' if stem == 't1' else 'breitbart'}")
    (root / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tiny_data_dir(root: Path) -> Path:
    """Labeled files and an earlier round, each holding one sentence the train articles repeat."""
    def row(i: str, text: str, doc: str = "bbc-politics-001") -> dict:
        return {"id": i, "text": text, "label": "none", "source": "x", "doc_id": doc, "confidence": "high"}

    (root / "train").mkdir(parents=True)
    write_jsonl(root / "train" / "round1.jsonl", [row("a", "Ministers met union leaders in London on Tuesday.")])
    write_jsonl(root / "dev.jsonl", [row("b", "Officials rejected reports that the soldier was captured.")])
    write_jsonl(root / "test.jsonl", [row("c", "Reporters waited outside the hotel for the candidate to arrive.")])
    write_jsonl(root / "test_polnear.jsonl", [row("d", DEV["d1"].split(". ")[0] + ".", "d1")])
    (root / "annotation" / "round3").mkdir(parents=True)
    write_jsonl(root / "annotation" / "round3" / "candidates.jsonl",
                [row("e", "the debate  moderators asked about TAXES and trade policy.")])  # same text, normalised
    return root


def test_round6_draws_random_then_model_strata_from_train_articles_only_and_reproducibly(tmp_path, trained_model):
    raw, data = tiny_polnear(tmp_path / "polnear"), tiny_data_dir(tmp_path / "data")
    args = ("--model", trained_model, "--raw", raw, "--data-dir", data, "--quota", "random=3")
    proc = run_script("polnear_round.py", *args)
    out = data / "annotation" / "round6" / "candidates.jsonl"
    rows = read_rows(out)
    assert sorted(r["text"] for r in rows) == sorted(ELIGIBLE)
    assert "13 train sentences; left out: length 2, labeled before 2, repeated in train 1, dev sentence 1; " \
           "pool: 7 sentences of 2 articles" in proc.stdout, proc.stdout
    strata = Counter(r["stratum"] for r in rows)
    assert strata["random"] == 3 and not any(s.startswith("cue_") for s in strata)
    for r in rows:  # the quotas exceed what the random draw left, so the model strata take all of it
        if r["stratum"] != "random":
            want = "active_uncertain" if r["model_pred"] == "none" else f"active_{r['model_pred']}"
            assert r["stratum"] == want
        text = (raw / r["article"]).read_text(encoding="utf-8")
        assert text[r["start"]:r["end"]] == r["text"] and r["article"] == f"train/text/{r['doc_id']}.txt"
        assert r["publisher"] == ("nyt" if r["doc_id"] == "t1" else "breitbart") and r["source"] == "polnear"
        assert r["cues"] == ELIGIBLE[r["text"]] and 0 <= r["model_score"] <= 1 and r["orig_label"] is None
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert f"7 candidates -> {out}" in proc.stdout
    assert all(f"  {k:18s} {v}" in proc.stdout for k, v in strata.items())
    first = out.read_bytes()
    run_script("polnear_round.py", *args)
    assert out.read_bytes() == first

    # What annotators get: build_corpus batches reads the file and shows id, source and text only.
    run_script("build_corpus.py", "--data-dir", data, "--round", "round6", "batches", "--n-batches", 2, "--double", 1)
    batches = [read_rows(p) for p in sorted((data / "annotation" / "round6" / "batches").glob("*.jsonl"))]
    assert sorted(len(b) for b in batches) == [4, 5]  # 7 own items in two batches, one second-pass item each
    assert all(set(r) == {"id", "source", "text"} for b in batches for r in b)


def test_round6_cue_strata_take_what_the_model_strata_left_under_the_rarest_cue(tmp_path, trained_model):
    raw, data = tiny_polnear(tmp_path / "polnear"), tiny_data_dir(tmp_path / "data")
    no_model = [a for s in ("support", "deny", "accuse", "uncertain") for a in ("--quota", f"active_{s}=0")]
    run_script("polnear_round.py", "--model", trained_model, "--raw", raw, "--data-dir", data,
               "--quota", "random=1", *no_model)
    rows = read_rows(data / "annotation" / "round6" / "candidates.jsonl")
    [random_text] = [r["text"] for r in rows if r["stratum"] == "random"]
    want = {t: f"cue_{'support' if 'support' in kinds else kinds[0]}" for t, kinds in ELIGIBLE.items()
            if kinds and t != random_text}
    assert {r["text"]: r["stratum"] for r in rows if r["stratum"] != "random"} == want


def test_a_train_article_that_is_also_in_the_dev_compartment_is_one_error_line_and_nothing_is_written(
        tmp_path, trained_model):
    raw = tiny_polnear(tmp_path / "polnear", dev={**DEV, "t2": TRAIN["t2"]})
    data = tiny_data_dir(tmp_path / "data")
    proc = run_failing_script("polnear_round.py", "--model", trained_model, "--raw", raw, "--data-dir", data)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"error: {raw / 'train' / 'text'}: article t2 is in PolNeAR train and in the test set's "
                          "compartment (dev)"), err
    assert not (data / "annotation" / "round6").exists()
