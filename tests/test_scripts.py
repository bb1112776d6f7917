"""Every script the README names runs, as a real process, on tiny data made here."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import LABELS, make_rows, tiny_config_dict, write_jsonl

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


def test_bench_train_times_both_precisions_on_a_tiny_backbone(tiny_backbone, tiny_data):
    proc = run_script("bench_train.py", "--model", tiny_backbone, "--data", tiny_data["train"], "--steps", 3,
                      "--warmup", 1, "--batch-size", 4)
    m = re.search(r"^fp32 ([\d.]+) s/step, bf16 ([\d.]+) s/step \(median of 3, batch 4\)$", proc.stdout, re.M)
    assert m, proc.stdout
    fp32, bf16 = float(m[1]), float(m[2])
    ratio = float(re.search(r"^ratio fp32/bf16: ([\d.]+)x$", proc.stdout, re.M)[1])
    # The printed seconds are rounded to 3 decimals, the ratio comes from the unrounded medians.
    assert fp32 > 0 and bf16 > 0 and ratio == pytest.approx(fp32 / bf16, rel=0.1, abs=0.01), proc.stdout


def test_bench_train_compares_two_backbones_in_the_same_run(tmp_path, tiny_backbone, tiny_data):
    from stance.testing import build_tiny_backbone

    wide = build_tiny_backbone(tmp_path / "wide", hidden_size=128)
    proc = run_script("bench_train.py", "--model", wide, "--against", tiny_backbone, "--precision", "fp32",
                      "--data", tiny_data["train"], "--steps", 3, "--warmup", 1, "--batch-size", 4)
    assert re.search(rf"^{re.escape(str(wide))} \(fp32\) [\d.]+ s/step, {re.escape(str(tiny_backbone))} \(fp32\) "
                     r"[\d.]+ s/step \(median of 3, batch 4\)$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^ratio .*/.*: [\d.]+x$", proc.stdout, re.M), proc.stdout


def test_compare_report_only_renders_the_report_from_cached_runs(tmp_path, trained_model, tiny_backbone, tiny_data):
    from experiments.settings import load_plan
    from experiments.sweep import record_model
    from stance.config import load_config

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_backbone, tiny_data, tmp_path / "unused")))
    cfg = load_config(config)
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    # One model recorded as two settings: the report needs a default run, and a runner-up to compare with.
    for setting in load_plan().settings[:2]:
        (runs / f"{setting.name}-s42.json").write_text(json.dumps(record_model(trained_model, cfg, setting, 42)))
    # Cached story groups, so the cross-validation step needs no raw sources (its folds are not run: skipped).
    (tmp_path / "results" / "crossval").mkdir()
    (tmp_path / "results" / "crossval" / "story_groups.json").write_text("{}")
    out = tmp_path / "results.md"
    proc = run_script("compare.py", "--report-only", "--config", config, "--out", out, "--work-dir", tmp_path / "w",
                      "--curve-train", tiny_data["train"])
    assert "cross-validation: bf16+round5@fold0of3 not run yet" in proc.stdout
    # Equal runs: the first setting on the table wins the tie.
    assert re.search(r"^wrote .*results.md: winner default, test macro-F1 ", proc.stdout, re.M), proc.stdout
    report = out.read_text()
    assert "| MiniLM-L6 default **(winner)**" in report and "| MiniLM-L6 no-class-weights" in report
    assert "| TF-IDF + LR (" in report and "The runner-up on dev among recipes" in report
    assert (tmp_path / "results" / "confusion_test.png").stat().st_size > 0
    assert (tmp_path / "w" / "crossval").is_dir()  # fold files go under --work-dir, not the repository


def three_articles(folder: Path) -> Path:
    """Three two-sentence articles, for the benchmark scripts' smoke tests."""
    folder.mkdir()
    for i, text in enumerate(["The minister denied the report. Critics accused the council of lying.",
                              "The union praised the mayor. Police met the senator in London.",
                              "Labour backed the plan. Russia rejected claims by the company."]):
        (folder / f"{i}.txt").write_text(text + "\n")
    return folder


def test_bench_predict_compares_pipeline_stance_and_torch_on_the_same_sentences(tmp_path, trained_model):
    articles = three_articles(tmp_path / "articles")
    proc = run_script("bench_predict.py", "--model", trained_model, "--articles", articles, "--min-sentences", 3,
                      "--rounds", 1, "--backends", "torch", "--rss-sizes", 3, "--json", tmp_path / "b.json",
                      "--baseline-model", trained_model)
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["n"] == 4  # whole articles until at least 3 sentences
    assert set(result["results"]) == {"A pipeline", "B stance predict (default)", "C --backend torch",
                                      "D baseline model (default)"}
    # One model, argmax everywhere: every run labels every sentence as the torch run does.
    assert all(r["agreement_with_fp32"] == 1.0 for k, r in result["results"].items() if not k.startswith("D"))
    assert result["rss"]["3"]["peak_rss_mib"] > 0 and "B/A throughput ratio" in proc.stdout
    assert "B/D throughput ratio" in proc.stdout


def _csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


# One story across sources: two FNC-1 bodies share a related headline, and an Emergent
# claim's headline is that headline too (build_corpus.story_groups joins all three).
STORY = ("fnc1-body-1", "fnc1-body-2", "emergent-claim-c1")


def tiny_raw(root: Path) -> Path:
    """A few rows of every raw source the corpus scripts read, in the sources' own formats."""
    bbc = root / "articles-bbc" / "politics"
    bbc.mkdir(parents=True)
    (bbc / "001.txt").write_text("Blair denied claims that he misled parliament over the war. The opposition accused "
                                 "the government of hiding the true cost of the plan. Too short here.\n",
                                 encoding="latin-1")
    (bbc / "002.txt").write_text("The Liberal Democrats welcomed the new proposals for local councils. Ministers met "
                                 "union leaders in London on Tuesday afternoon.\n", encoding="latin-1")
    _csv(root / "fnc-1" / "train_bodies.csv", ["Body ID", "articleBody"], [
        ["1", "Officials rejected reports that the soldier had been captured alive."],
        ["2", "Local people praised the rescue teams for their work in the mountains."],
        ["3", "The company announced record profits for the third quarter this year."]])
    _csv(root / "fnc-1" / "train_stances.csv", ["Headline", "Body ID", "Stance"], [
        ["Soldier captured alive", "1", "discuss"], ["Soldier captured alive", "2", "agree"],
        ["Soldier captured alive", "3", "unrelated"]])
    _csv(root / "emergent" / "url-versions-2015-06-14-clean.csv",
         ["", "claimHeadline", "articleHeadline", "articleHeadlineStance", "articleId", "claimId"], [
             ["0", "Soldier captured alive", "Police deny that the missing soldier was found in a cave",
              "against", "a1", "c1"],
             ["1", "Giant spider found", "Reports say a giant spider was found in a house in Ohio", "for", "a2", "c2"]])
    cameo = root / "conflibert-cameo-pentaclass"
    cameo.mkdir()
    (cameo / "train.tsv").write_text("Protesters clashed with police outside the parliament building today\t3\n"
                                     "The two countries signed a trade agreement in Geneva yesterday\t1\n",
                                     encoding="utf-8")
    (cameo / "test.tsv").write_text("Rebels attacked a convoy carrying supplies to the city\t4\n", encoding="utf-8")
    (root / "plover-gsr").mkdir()
    (root / "plover-gsr" / "PLOVER_GSR_CAMEO.txt").write_text(json.dumps([
        {"id": "d1", "event": "DOCUMENT", "text": "Documentation, not an event sentence at all here."},
        {"id": "p1", "event": "ASSAULT", "text": "Troops fired on demonstrators in the capital on Sunday morning"}]))
    for rnd in (7, 10):
        _csv(root / "cameo-conflibert-annot" / f"training_round_{rnd}_summary.csv", ["ids", "No", "sentences"],
             [[f"a{rnd}", "1", f"Government forces shelled rebel positions for the {rnd}th night in a row"]])
    _csv(root / "rumoureval2017" / "rumoureval2017_subtaskA_traindev.tsv", ["thread_id", "label", "text"], [
        ["t1", "deny", "This is not true, the gunman was never inside the building"],
        ["t2", "deny", "@user no way this is real at all my friend"],
        ["t3", "comment", "Breaking news: shots fired near the parliament in Ottawa today"]], delimiter="\t")
    return root


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_mine_candidates_draws_each_stratum_reproducibly_from_the_raw_sources(tmp_path):
    raw = tiny_raw(tmp_path / "raw")
    proc = run_script("mine_candidates.py", "--raw", raw, "--out", tmp_path / "c.jsonl")
    rows = read_rows(tmp_path / "c.jsonl")
    stratum = {r["text"]: r["stratum"] for r in rows}
    assert stratum == {
        "Police deny that the missing soldier was found in a cave": "pool_emergent_against",
        "Blair denied claims that he misled parliament over the war.": "cue_deny",
        "Officials rejected reports that the soldier had been captured alive.": "cue_deny",
        "The opposition accused the government of hiding the true cost of the plan.": "cue_accuse",
        "The Liberal Democrats welcomed the new proposals for local councils.": "cue_support",
        "Local people praised the rescue teams for their work in the mountains.": "cue_support",
        "Protesters clashed with police outside the parliament building today": "pool_cameo_conflict",
        "The two countries signed a trade agreement in Geneva yesterday": "pool_cameo_cooperation",
        "This is not true, the gunman was never inside the building": "pool_rumoureval_deny",
        "Ministers met union leaders in London on Tuesday afternoon.": "random",
        "The company announced record profits for the third quarter this year.": "random",
        "Reports say a giant spider was found in a house in Ohio": "random_headline",
        "Troops fired on demonstrators in the capital on Sunday morning": "hardneg",
        "Government forces shelled rebel positions for the 7th night in a row": "hardneg",
        "Government forces shelled rebel positions for the 10th night in a row": "hardneg",
        "Rebels attacked a convoy carrying supplies to the city": "hardneg",
    }
    first = next(r for r in rows if r["text"].startswith("Blair"))
    assert first["source"] == "bbc" and first["doc_id"] == "bbc-politics-001" and first["cues"] == ["deny"]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert f"{len(rows)} candidates -> {tmp_path / 'c.jsonl'}" in proc.stdout
    run_script("mine_candidates.py", "--raw", raw, "--out", tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes()


def test_build_corpus_batches_merges_splits_and_extends_in_a_given_data_folder(tmp_path):
    raw, data = tiny_raw(tmp_path / "raw"), tmp_path / "data"
    # 24 candidates of known labels, three of them from one story (which must stay in one split).
    truth = {}
    cands = []
    for i, r in enumerate(make_rows(24, 5)):
        doc = STORY[i] if i < len(STORY) else f"bbc-politics-{i:03d}"
        cands.append({"id": f"c{i:02d}", "text": r["text"], "source": doc.split("-")[0], "doc_id": doc, "sent_idx": 0,
                      "orig_label": None, "stratum": "random", "cues": []})
        truth[f"c{i:02d}"] = "skip" if i == 23 else r["label"]
    ann = data / "annotation" / "round1"  # round 1 is a round like the others, and the default
    ann.mkdir(parents=True)
    write_jsonl(ann / "candidates.jsonl", cands)

    proc = run_script("build_corpus.py", "--data-dir", data, "batches", "--n-batches", 2, "--double", 3)
    batches = {b: read_rows(ann / "batches" / f"batch_{b:02d}.jsonl") for b in (0, 1)}
    assert [len(rows) for rows in batches.values()] == [15, 15] and "batch_01: 15 items (12 own + 3 second-pass)" \
        in proc.stdout
    assignment = json.loads((ann / "assignment.json").read_text())
    assert sorted(assignment) == sorted(truth) and set(assignment.values()) == {0, 1}
    assert set(batches[0][0]) == {"id", "source", "text"}  # annotators never see a model guess or a stratum

    # Each batch's annotator labels it right, except one second-pass label that disagrees.
    disputed = next(r["id"] for r in batches[1] if assignment[r["id"]] == 0 and truth[r["id"]] != "skip")
    wrong = next(lab for lab in LABELS if lab != truth[disputed])
    (ann / "labels").mkdir()
    for b, rows in batches.items():
        write_jsonl(ann / "labels" / f"batch_{b:02d}.jsonl", [
            {"id": r["id"], "label": wrong if (b, r["id"]) == (1, disputed) else truth[r["id"]], "confidence": "high"}
            for r in rows])
    proc = run_script("build_corpus.py", "--data-dir", data, "merge")
    report = json.loads((ann / "agreement.json").read_text())
    assert report["n_double"] == 6 and report["disagreements"] == 1 and report["adjudicated"] == 0
    assert report["skipped"] == 1 and sum(report["gold_counts"].values()) == 23
    assert "1 disagreements not yet adjudicated" in proc.stdout
    gold = {r["id"]: r for r in read_rows(ann / "gold.jsonl")}
    assert gold[disputed]["agreement"] == "unadjudicated" and gold[disputed]["confidence"] == "low"
    assert all(g["label"] == truth[i] for i, g in gold.items())  # the first pass stands until adjudicated

    run_script("build_corpus.py", "--data-dir", data, "split", "--raw", raw)
    splits = {s: read_rows(data / f"{s}.jsonl") for s in ("dev", "test")} | {"train": read_rows(
        data / "train" / "round1.jsonl")}
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*.jsonl") if "annotation" not in p.parts) \
        == ["dev.jsonl", "test.jsonl", "train/round1.jsonl"]
    assert sorted(r["id"] for rows in splits.values() for r in rows) == sorted(gold)
    assert all(set(r) == {"id", "text", "label", "source", "doc_id", "confidence"} for rows in splits.values()
               for r in rows)
    story_split = {s for s, rows in splits.items() for r in rows if r["doc_id"] in STORY}
    assert len(story_split) == 1

    # A later round adds train rows only, and refuses a row from a dev/test story.
    held_out = next(s for s in ("dev", "test") if splits[s] and s not in story_split)
    new = {"id": "n1", "text": "The council blamed the company for the floods.", "label": "accuse",
           "source": "bbc", "doc_id": "bbc-politics-900", "confidence": "high"}
    round2 = data / "annotation" / "round2"
    round2.mkdir()
    write_jsonl(round2 / "gold.jsonl", [new])
    proc = run_script("build_corpus.py", "--data-dir", data, "--round", "round2", "extend", "--raw", raw)
    assert read_rows(data / "train" / "round2.jsonl") == [new] and "1 rows -> " in proc.stdout
    write_jsonl(round2 / "gold.jsonl", [new, {**new, "id": "n2", "doc_id": splits[held_out][0]["doc_id"]}])
    refused = subprocess.run([sys.executable, "scripts/build_corpus.py", "--data-dir", str(data), "--round", "round2",
                              "extend", "--raw", str(raw)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert refused.returncode == 1 and "1 rows from dev/test stories (e.g. ['n2'])" in refused.stderr
    assert read_rows(data / "train" / "round2.jsonl") == [new]


def test_a_round_whose_labelers_mark_spans_carries_the_winning_passes_holder_and_target_into_train(tmp_path):
    raw, data = tiny_raw(tmp_path / "raw"), tmp_path / "data"
    texts = {"a": "The mayor accused the council of lying.", "b": "He denied it.", "c": "It rained in Leeds."}
    ann = data / "annotation" / "round6"
    (ann / "labels").mkdir(parents=True)
    write_jsonl(ann / "candidates.jsonl", [{"id": i, "text": t, "source": "polnear", "doc_id": f"polnear-{i}",
                                            "orig_label": None, "stratum": "random"} for i, t in texts.items()])
    (ann / "assignment.json").write_text(json.dumps({"a": 0, "b": 0, "c": 1}))
    mayor = {"label": "accuse", "confidence": "high", "holder": "The mayor", "target": "the council"}
    write_jsonl(ann / "labels" / "batch_00.jsonl", [
        {"id": "a", **mayor}, {"id": "b", "label": "none", "confidence": "low", "holder": None, "target": None}])
    write_jsonl(ann / "labels" / "batch_01.jsonl", [  # second passes: "a" agrees (other span), "b" disagrees
        {"id": "c", "label": "none", "confidence": "high", "holder": None, "target": None},
        {"id": "a", **mayor, "holder": "The mayor accused"},
        {"id": "b", "label": "deny", "confidence": "high", "holder": "He", "target": "it"}])
    write_jsonl(ann / "adjudication.jsonl", [{"id": "b", "label": "deny", "confidence": "high", "holder": "He",
                                              "target": "it", "by": "adjudicator", "why": "a denial"}])
    run_script("build_corpus.py", "--data-dir", data, "--round", "round6", "merge")
    report = json.loads((ann / "agreement.json").read_text())
    assert report["spans"]["n_double"] == 1 and report["spans"]["holder"]["exact_match"] == 0.0
    assert report["spans"]["target"]["exact_match"] == 1.0
    for split in ("dev", "test"):
        write_jsonl(data / f"{split}.jsonl", [])
    run_script("build_corpus.py", "--data-dir", data, "--round", "round6", "extend", "--raw", raw)
    rows = {r["id"]: r for r in read_rows(data / "train" / "round6.jsonl")}
    assert rows["a"]["holder"] == {"text": "The mayor", "start": 0, "end": 9}  # the first pass's, as agreed
    assert rows["a"]["target"] == {"text": "the council", "start": 18, "end": 29}
    assert rows["b"]["label"] == "deny" and rows["b"]["holder"] == {"text": "He", "start": 0, "end": 2}
    assert "holder" not in rows["c"] and "target" not in rows["c"]  # none rows stay unmarked


def test_active_round_scores_the_unlabeled_pool_outside_dev_test_and_earlier_rounds(tmp_path, trained_model):
    from stance.export import export

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    export(model, onnx=True)  # the script scores with the ONNX backend (`stance export --onnx` first)
    raw, data = tiny_raw(tmp_path / "raw"), tmp_path / "data"

    def row(doc_id: str, text: str = "A sentence that is long enough to keep.") -> dict:
        return {"id": doc_id, "text": text, "label": "none", "source": "x", "doc_id": doc_id, "confidence": "high"}

    # The soldier story is in dev, so none of its sentences may be drawn; train stories may be.
    (data / "train").mkdir(parents=True)
    write_jsonl(data / "train" / "round1.jsonl", [row("bbc-politics-002")])
    write_jsonl(data / "dev.jsonl", [row("fnc1-body-2")])
    write_jsonl(data / "test.jsonl", [row("rumoureval-thread-t1")])
    # Drawn by round 1 and round 2: left out of round 3.  Drawn by round 4 only: still in the pool.
    for rnd, text in (("round1", "Blair denied claims that he misled parliament over the war."),
                      ("round2", "The company announced record profits for the third quarter this year."),
                      ("round4", "Ministers met union leaders in London on Tuesday afternoon.")):
        (data / "annotation" / rnd).mkdir(parents=True)
        write_jsonl(data / "annotation" / rnd / "candidates.jsonl", [row(rnd, text)])

    proc = run_script("active_round.py", "--model", model, "--round", "round3", "--raw", raw, "--data-dir", data)
    rows = read_rows(data / "annotation" / "round3" / "candidates.jsonl")
    # The quotas exceed the pool, so every pool sentence is drawn once, in the stratum of its prediction.
    assert sorted(r["text"] for r in rows) == sorted([
        "The opposition accused the government of hiding the true cost of the plan.",
        "The Liberal Democrats welcomed the new proposals for local councils.",
        "Ministers met union leaders in London on Tuesday afternoon.",
        "Reports say a giant spider was found in a house in Ohio",
        "Protesters clashed with police outside the parliament building today",
        "The two countries signed a trade agreement in Geneva yesterday",
        "Rebels attacked a convoy carrying supplies to the city",
    ])
    assert "pool: 7 sentences" in proc.stdout and f"7 candidates -> {data}" in proc.stdout
    for r in rows:
        want = "active_uncertain" if r["model_pred"] == "none" else f"active_{r['model_pred']}"
        assert r["stratum"] == want and 0 <= r["model_score"] <= 1 and r["id"].startswith(r["source"] + "-")


def test_fault_drill_kills_train_and_predict_and_everything_survives(tmp_path):
    proc = run_script("fault_drill.py", "--sentences", "3000", "--workdir", tmp_path / "drill", timeout=600)
    table = [line for line in proc.stdout.splitlines() if line.startswith("| train") or line.startswith("| predict")]
    assert len(table) == 5, proc.stdout
    assert all("| yes |" in row and "| none |" in row and "completed" in row for row in table), proc.stdout
    assert "rows equal to uninterrupted" in table[-1]


def test_no_script_or_corpus_module_edits_sys_path():
    files = [p for d in ("scripts", "corpus", "experiments") for p in sorted((ROOT / d).glob("*.py"))]
    assert len(files) > 10 and [p.name for p in files if "sys.path" in p.read_text(encoding="utf-8")] == []


def test_the_corpus_package_is_installed_beside_stance():
    from setuptools.config.pyprojecttoml import read_configuration

    # What `pip install .` installs: setuptools expands packages.find into this list.
    packages = read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"]
    assert {"stance", "corpus", "experiments"} <= set(packages)


def test_the_corpus_tools_read_and_write_jsonl_through_one_helper():
    import ast
    import importlib

    from corpus import jsonl

    defined = {p.name: [n.name for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                        if isinstance(n, ast.FunctionDef) and "jsonl" in n.name]
               for p in sorted((ROOT / "corpus").glob("*.py"))}
    assert {name: fns for name, fns in defined.items() if fns} == {"jsonl.py": ["read_jsonl", "write_jsonl"]}
    for tool in ("build_corpus", "active_round", "polnear_test", "mine_candidates"):
        module = importlib.import_module(f"corpus.{tool}")
        assert getattr(module, "write_jsonl", jsonl.write_jsonl) is jsonl.write_jsonl, tool


def run_failing_script(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{name}", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_broken_label_line_is_one_error_line_naming_the_file_and_line(tmp_path):
    ann = tmp_path / "data" / "annotation" / "round1"
    cands = [{"id": f"c{i}", "text": r["text"], "source": "bbc", "doc_id": f"bbc-politics-{i:03d}",
              "orig_label": None, "stratum": "random"} for i, r in enumerate(make_rows(2, 5))]
    ann.mkdir(parents=True)
    write_jsonl(ann / "candidates.jsonl", cands)
    (ann / "assignment.json").write_text(json.dumps({"c0": 0, "c1": 0}))
    (ann / "labels").mkdir()
    # An annotator's file cut off in the middle of its second row.
    (ann / "labels" / "batch_00.jsonl").write_text('{"id": "c0", "label": "none", "confidence": "high"}\n'
                                                   '{"id": "c1", "label": "de\n', encoding="utf-8")
    proc = run_failing_script("build_corpus.py", "--data-dir", tmp_path / "data", "merge")
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"error: {ann / 'labels' / 'batch_00.jsonl'}:2: "), err
    assert not (ann / "gold.jsonl").exists()


def test_a_label_outside_the_label_set_is_one_error_line_naming_the_file_and_row(tmp_path):
    ann = tmp_path / "data" / "annotation" / "round1"
    ann.mkdir(parents=True)
    write_jsonl(ann / "candidates.jsonl", [{"id": "c0", "text": "Blair denied it.", "source": "bbc",
                                            "doc_id": "bbc-politics-001", "orig_label": None, "stratum": "random"}])
    (ann / "assignment.json").write_text(json.dumps({"c0": 0}))
    (ann / "labels").mkdir()
    write_jsonl(ann / "labels" / "batch_00.jsonl", [{"id": "c0", "label": "acuse", "confidence": "high"}])
    proc = run_failing_script("build_corpus.py", "--data-dir", tmp_path / "data", "merge")
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"error: {ann / 'labels' / 'batch_00.jsonl'}: c0: label 'acuse'"), err


def test_a_round_with_no_folder_is_one_error_line_naming_the_missing_file(tmp_path):
    proc = run_failing_script("build_corpus.py", "--data-dir", tmp_path, "--round", "round9", "merge")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == f"error: {tmp_path / 'annotation' / 'round9' / 'candidates.jsonl'}: no such file\n"


def test_polnear_test_samples_articles_and_finalizes_the_merged_labels(tmp_path):
    raw, data = tmp_path / "polnear", tmp_path / "data"
    (raw / "dev" / "text").mkdir(parents=True)
    (raw / "metadata.tsv").write_text("filename\tpublisher\na1\tnyt\n", encoding="utf-8")
    (raw / "dev" / "text" / "a1.txt").write_text("Trump denied the report on Monday. Clinton accused him of lying. "
                                                 "The rally began at noon.\n", encoding="utf-8")
    (raw / "dev" / "text" / "b2.txt").write_text("Voters queued for hours in the rain.\n", encoding="utf-8")
    proc = run_script("polnear_test.py", "--raw", raw, "--data-dir", data, "sample", "--n", 3)
    ann = data / "annotation" / "polnear_test"
    cands = read_rows(ann / "candidates.jsonl")
    assert len(cands) == 3 and "3 of 4 sentences from 2 articles" in proc.stdout
    assert all(r["publisher"] == ("nyt" if r["doc_id"] == "a1" else "unknown") for r in cands)
    assert [(r["doc_id"], r["start"]) for r in cands] == sorted((r["doc_id"], r["start"]) for r in cands)
    write_jsonl(ann / "gold.jsonl", [{"id": r["id"], "text": r["text"], "label": "none", "source": r["source"],
                                      "doc_id": r["doc_id"], "confidence": "high"} for r in cands])
    run_script("polnear_test.py", "--raw", raw, "--data-dir", data, "finalize")
    rows = read_rows(data / "test_polnear.jsonl")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in cands)
    assert all(set(r) == {"id", "text", "label", "source", "doc_id", "confidence", "publisher"} for r in rows)


def test_bench_distributed_compares_the_ray_engine_with_local_predict_on_the_same_articles(tmp_path, trained_model):
    articles = three_articles(tmp_path / "articles")
    proc = run_script("bench_distributed.py", "--model", trained_model, "--articles", articles, "--sentences", 3,
                      "--backends", "torch", "--actors", "1", "--json", tmp_path / "b.json", timeout=300)
    result = json.loads((tmp_path / "b.json").read_text())
    assert (result["articles"], result["sentences"]) == (2, 4)  # whole articles until at least 3 sentences
    runs = result["runs"]
    assert set(runs) == {"torch local", "torch local w2048", "torch ray-1"}
    assert all(r["summary"].startswith("2 articles, 4 sentences") for r in runs.values())
    assert [r["same_labels_as_local"] for r in runs.values()] == [4, 4, 4]  # fp32: the same labels everywhere
    ratio = runs["torch ray-1"]["sentences_per_second"] / runs["torch local"]["sentences_per_second"]
    assert result["ratio_to_local"] == {"torch ray-1": pytest.approx(ratio, rel=0.01)}
    assert f"torch ray-1 / local throughput: {result['ratio_to_local']['torch ray-1']:.2f}x" in proc.stdout
    assert all(result["bytes"][k] > 0 for k in ("input_per_article", "jsonl_per_sentence", "parquet_per_sentence"))
