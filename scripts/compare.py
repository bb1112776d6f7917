"""Compare baselines and fine-tuning recipes on the shipped splits; write docs/results.md.

  baselines     keyword rule; TF-IDF (word + char n-grams) + logistic regression tuned on dev
  settings      MiniLM-L6 with configs/base.yaml and one change each (class weights,
                frozen embeddings, max_length, learning rate, epochs) on the round-1
                train split, and the default recipe on rounds 1 + 2 and 1-3; seeds 42/43/44.
                Rounds 1-4 in 4 epochs (3 seeds), and four single-seed probes: frozen lower
                layers on rounds 1-3, rounds 1-4 in 5 epochs (over budget), checkpoint averaging;
                bf16 (train.precision) on rounds 1-4 and 1-5 (3 seeds)
  post-hoc      confidence threshold -> none (chosen on dev, as `stance train` ships it),
                mean of the seeds, paired bootstrap of the winner against the runner-up
  curve         default recipe on 10/25/50% of round-1 train (seed 42), on all of it and
                on rounds 1 + 2 and 1-3 (mean of seeds 42/43/44), TF-IDF beside it
  crossval      where dev cannot decide: the winner's recipe (bf16+round5) against fewer
                annotation rounds (bf16+round2), and, on rounds 1-5, frozen embeddings,
                learning rates 5e-5 and 2e-4, label smoothing 0.1, layer-wise learning-rate
                decay and no class weights; 3 folds of round-1 train held out by story
                (stance/crossval.py), seed 42: 24 models, ~3.5 hours.  bf16+round2 and the
                six recipe variants run only here (no seeds): none beat the winner's recipe

Each transformer run is cached as docs/results/runs/<setting>-s<seed>.json, so an
interrupted sweep continues and the report re-renders without training
(--report-only).  A full sweep trains 39 models and the 24 cross-validation folds: about
11.5 hours on 2 CPU cores.

    python scripts/compare.py                       # train what is missing, write the report
    python scripts/compare.py --only default        # just these settings (then the report)
    python scripts/compare.py --report-only         # re-render from the cached runs
    python scripts/compare.py --only bf16+round5 --crossval   # these settings and the cross-validation
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stance.compare import (  # noqa: E402
    CROSSVAL,
    ROUND1_TRAIN,
    SETTINGS,
    adopt_model,
    curve_settings,
    matching_setting,
    render_report,
    run_baselines,
    run_sweep,
)
from stance.config import load_config  # noqa: E402
from stance.data import read_labeled  # noqa: E402
from stance.errors import StanceError  # noqa: E402


def _crossval(args: argparse.Namespace, settings: list, cv_dir: Path, train_missing: bool) -> dict | None:
    """Run (or read back) the cross-validation of CROSSVAL; None while any fold is missing."""
    from stance.crossval import run_crossval
    from stance.io import write_json

    groups_path = cv_dir / "story_groups.json"
    if groups_path.is_file():
        group_of = json.loads(groups_path.read_text(encoding="utf-8"))
    else:
        import build_corpus  # scripts/, for the story union-find the splits were made with

        if not args.raw.is_dir():
            raise StanceError(f"{args.raw}: raw sources not found (needed once for the story groups); pass --raw")
        groups = build_corpus.story_groups(args.raw)
        docs = {json.loads(line)["doc_id"] for f in sorted((ROOT / "data").glob("train*.jsonl"))
                for line in f.open(encoding="utf-8") if line.strip()}
        group_of = {d: groups.get(d, d) for d in sorted(docs)}
        write_json(groups_path, group_of)
    by_name = {s.name: s for s in settings}
    plan = [by_name[n] for n in (CROSSVAL.baseline, *CROSSVAL.others)]
    # Relative paths, so the cached records name the fold files the same on every machine.
    work_dir = Path(os.path.relpath(args.work_dir.resolve(), ROOT))
    result = run_crossval(args.config, plan, ROUND1_TRAIN, group_of, cv_dir / "runs", work_dir,
                          k=CROSSVAL.k, seed=CROSSVAL.seed, quiet=args.quiet, train_missing=train_missing)
    if result is not None:
        result["stands_for"] = CROSSVAL.stands_for
        write_json(cv_dir / "summary.json", result)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "base.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "models" / "compare",
                    help="where models are trained (deleted after each run is recorded)")
    ap.add_argument("--only", nargs="+", metavar="SETTING", help="train only these settings (names as in the table)")
    ap.add_argument("--report-only", action="store_true", help="train nothing; render from the cached runs")
    ap.add_argument("--adopt", type=Path, metavar="MODEL",
                    help="record this already-trained model (e.g. models/stance-minilm from `stance train "
                         "configs/base.yaml`) as the default setting's seed-42 run instead of training it again; "
                         "refused unless its saved config matches")
    ap.add_argument("--crossval", action="store_true",
                    help="with --only: also run the cross-validation (a full run always does)")
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw",
                    help="raw sources, for the story groups of the cross-validation folds (read once, then "
                         "cached in docs/results/crossval/story_groups.json)")
    ap.add_argument("--curve-train", default=ROUND1_TRAIN,
                    help="the rows whose fractions TF-IDF's learning curve trains on (round-1 train, as the "
                         "transformer's curve settings)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)  # the config's relative data paths are relative to the repository
    runs_dir = args.out.with_suffix("") / "runs"
    # The learning curve is cheap and the report needs it, so it runs right after the default.
    settings = [SETTINGS[0], *curve_settings(), *SETTINGS[1:]]
    try:
        cfg = load_config(args.config)
        read = lambda p: read_labeled(p, cfg.labels, cfg.data.text_column, cfg.data.label_column)  # noqa: E731
        train, dev, test = read(cfg.data.train), read(cfg.data.dev), read(cfg.data.test)
        shipped = matching_setting(args.config, cfg.to_dict(), settings, cfg.train.seed)
        if args.adopt:
            print(f"adopted {args.adopt} as {adopt_model(args.config, args.adopt, runs_dir, settings=settings)}")
        if not args.report_only:
            todo = [s for s in settings if not args.only or s.name in args.only]
            unknown = set(args.only or []) - {s.name for s in settings}
            if unknown:
                raise StanceError(f"--only: unknown settings {sorted(unknown)} (known: {[s.name for s in settings]})")
            run_sweep(args.config, todo, runs_dir, args.work_dir, quiet=args.quiet)
        crossval = _crossval(args, settings, runs_dir.parent / "crossval",
                             train_missing=not args.report_only and (not args.only or args.crossval))
        records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(runs_dir.glob("*.json"))]
        if not any(r["setting"] == "default" for r in records):
            raise StanceError(f"{runs_dir}: no run of the default setting yet; run without --report-only")
        print("baselines ...", flush=True)
        # TF-IDF is trained on the same rows as the shipped model; its curve on round-1 fractions.
        baselines = run_baselines(train, dev, test, cfg.labels, curve_train=read(args.curve_train))
        notes_path = runs_dir.parent / "error_notes.yaml"
        notes = yaml.safe_load(notes_path.read_text(encoding="utf-8")) if notes_path.is_file() else {}
        commentary_path = runs_dir.parent / "commentary.md"
        commentary = commentary_path.read_text(encoding="utf-8") if commentary_path.is_file() else ""
        facts = render_report(settings, records, baselines, dev, test, cfg.labels, args.out, notes=notes,
                              commentary=commentary, machine=f"{platform.machine()}, {os.cpu_count()} CPU cores",
                              shipped=shipped.name if shipped else None, crossval=crossval)
    except StanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: winner {facts['winner']}, test macro-F1 {facts['test_f1'][0]:.3f} "
          f"± {facts['test_f1'][1]:.3f} (TF-IDF + LR {facts['tfidf_test_f1']:.3f}), "
          f"train {facts['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
