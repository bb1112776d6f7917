"""Compare baselines and fine-tuning recipes on the shipped splits; write docs/results.md.

The command line of the `experiments` package.  The settings, the learning curve and the
cross-validation plan are data, in experiments/settings.yaml: adding an experiment is adding
an entry there.

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
                (experiments/crossval.py), seed 42: 24 models, ~3.5 hours.  bf16+round2 and the
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

from experiments.baselines import cached_baselines, data_fingerprint, run_baselines
from experiments.crossval import run_plan, story_groups
from experiments.loso import GROUPS, loso_section
from experiments.report import render_report
from experiments.sections_more import teacher_section
from experiments.settings import load_plan
from experiments.sweep import adopt_model, matching_setting, run_sweep
from stance.config import load_config
from stance.data import read_labeled
from stance.errors import StanceError

ROOT = Path(__file__).resolve().parents[1]


def _raw_story_groups(raw: Path) -> dict[str, str]:
    if not raw.is_dir():
        raise StanceError(f"{raw}: raw sources not found (needed once for the story groups); pass --raw")
    from corpus import build_corpus  # the story union-find the splits were made with

    return build_corpus.story_groups(raw)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "base.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "models" / "compare",
                    help="where models are trained (deleted after each run is recorded)")
    ap.add_argument("--only", nargs="+", metavar="SETTING", help="train only these settings (names as in the table)")
    ap.add_argument("--report-only", action="store_true", help="train nothing; render from the cached runs")
    ap.add_argument("--rebaseline", action="store_true",
                    help="retrain the baselines even when docs/results/baselines.json holds them for these rows")
    ap.add_argument("--adopt", type=Path, metavar="MODEL",
                    help="record this already-trained model (e.g. models/stance-minilm from `stance train "
                         "configs/base.yaml`) as the default setting's seed-42 run instead of training it again; "
                         "refused unless its saved config matches")
    ap.add_argument("--crossval", action="store_true",
                    help="with --only: also run the cross-validation (a full run always does)")
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw",
                    help="raw sources, for the story groups of the cross-validation folds (read once, then "
                         "cached in docs/results/crossval/story_groups.json)")
    ap.add_argument("--curve-train",
                    help="the rows whose fractions TF-IDF's learning curve trains on (default: the file the "
                         "transformer's curve takes fractions of, in experiments/settings.yaml)")
    ap.add_argument("--quiet", action="store_true")
    return ap


def _read_extras(results_dir: Path) -> tuple[dict[str, str], str]:
    """The readings of the errors and the commentary, where they exist."""
    notes_path = results_dir / "error_notes.yaml"
    notes = yaml.safe_load(notes_path.read_text(encoding="utf-8")) if notes_path.is_file() else {}
    commentary_path = results_dir / "commentary.md"
    return notes, commentary_path.read_text(encoding="utf-8") if commentary_path.is_file() else ""


def run(args: argparse.Namespace) -> dict:
    """Train what is missing (unless --report-only), then render the report; its headline facts."""
    plan = load_plan()
    settings = plan.sweep_settings()
    runs_dir = args.out.with_suffix("") / "runs"
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
    cv_dir = runs_dir.parent / "crossval"
    group_of = story_groups(cv_dir / "story_groups.json", plan.crossval.documents,
                            lambda: _raw_story_groups(args.raw))
    crossval = run_plan(args.config, plan.crossval, settings, group_of, cv_dir, args.work_dir,
                        train_missing=not args.report_only and (not args.only or args.crossval), quiet=args.quiet)
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(runs_dir.glob("*.json"))]
    if not any(r["setting"] == "default" for r in records):
        raise StanceError(f"{runs_dir}: no run of the default setting yet; run without --report-only")
    # TF-IDF is trained on the same rows as the shipped model; its curve on round-1 fractions.
    curve_train = read(args.curve_train or plan.curve_train)
    fingerprint = data_fingerprint(train, dev, test, curve_train, fractions=list(plan.curve_fractions))
    baselines = cached_baselines(runs_dir.parent / "baselines.json", fingerprint, refresh=args.rebaseline,
                                 compute=lambda: run_baselines(train, dev, test, cfg.labels,
                                                               fractions=plan.curve_fractions, curve_train=curve_train))
    notes, commentary = _read_extras(runs_dir.parent)
    return render_report(settings, records, baselines, dev, test, cfg.labels, args.out, budget_s=plan.time_budget_s,
                         notes=notes, commentary=commentary,
                         machine=f"{platform.machine()}, {os.cpu_count()} CPU cores",
                         shipped=shipped.name if shipped else None, crossval=crossval,
                         appendix=_appendix(runs_dir.parent, records, settings, cfg.labels),
                         extra_gold={Path(p).stem: read(p).labels for p in cfg.data.extra_test})


def _appendix(results_dir: Path, records: list[dict], settings: list, labels: list[str]) -> list[str]:
    """Sections from other runs: teachers and students (data/distill/*.json), leave one source out."""
    by_name: dict[str, list[dict]] = {}
    for r in records:
        by_name.setdefault(r["setting"], []).append(r)
    cards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "data" / "distill").glob("*.json"))]

    def notes(name: str) -> str:
        path = results_dir / name
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    students = ["spans+round6", *(s.name for s in settings if s.name.startswith("distill"))]
    loso = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((results_dir / "loso").glob("*.json"))]
    return [*teacher_section(students, by_name, cards, labels, notes("teacher_notes.md")),
            *loso_section(sorted(loso, key=lambda r: list(GROUPS).index(r["group"])), labels,
                          notes=notes("loso_notes.md"))]


def main() -> int:
    args = _parser().parse_args()
    os.chdir(ROOT)  # the config's relative data paths are relative to the repository
    try:
        facts = run(args)
    except StanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: winner {facts['winner']}, test macro-F1 {facts['test_f1'][0]:.3f} "
          f"± {facts['test_f1'][1]:.3f} (TF-IDF + LR {facts['tfidf_test_f1']:.3f}), "
          f"train {facts['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
