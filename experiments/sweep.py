"""The sweep: train every (setting, seed) not cached yet and record its outcome as one JSON file.

A run's record holds its metrics, dev/test probabilities, train time and speed, so an
interrupted sweep continues where it stopped and the report re-renders without
retraining.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.settings import Setting
from stance.config import load_config
from stance.data import read_labeled
from stance.errors import StanceError
from stance.io import write_json
from stance.metrics import compute_metrics


def run_file(runs_dir: str | Path, setting: Setting, seed: int) -> Path:
    """Where the record of one (setting, seed) run is cached."""
    return Path(runs_dir) / f"{setting.name}-s{seed}.json"


def _rounded(probs: np.ndarray) -> list[list[float]]:
    return np.round(probs.astype(float), 5).tolist()


def run_config(config: str | Path, setting: Setting, seed: int, out: Path) -> Any:
    """The resolved config of one (setting, seed) run writing to ``out``."""
    # Export is off: it changes no label, and its speed is the benchmark's job.
    return load_config(config, [*setting.overrides, f"train.seed={seed}", "model.export_onnx=false",
                                f"output_dir={out}"])


def record_model(model_dir: Path, cfg: Any, setting: Setting, seed: int) -> dict[str, Any]:
    """The cached record of one trained model: metrics and probabilities on dev and test, speed."""
    from stance.modeling import StanceClassifier

    trained = json.loads((model_dir / "all_results.json").read_text(encoding="utf-8"))
    clf = StanceClassifier.load(model_dir)
    record: dict[str, Any] = {
        "setting": setting.name, "seed": seed, "overrides": list(setting.overrides),
        "train_seconds": trained["train_seconds"], "train_rows": trained["train_rows"],
        "best_epoch": trained.get("best_epoch"), "temperature": clf.temperature,
        "min_score": clf.min_score,
    }
    for split in ("dev", "test"):
        data = read_labeled(getattr(cfg.data, split), cfg.labels, cfg.data.text_column, cfg.data.label_column)
        clf.predict_proba(data.texts[:64])  # warm-up: first calls allocate
        t0 = time.perf_counter()
        probs = clf.predict_proba(data.texts, batch_size=cfg.train.eval_batch_size)
        if split == "test":
            # In-process torch fp32: the same measurement for every setting.
            record["sentences_per_second"] = len(data) / (time.perf_counter() - t0)
        # Plain argmax, so every setting is compared alike; the dev-chosen
        # threshold is applied on top in the report (threshold_to_none).
        record[split] = compute_metrics(data.labels, clf.decide(probs, 0.0), clf.labels, probs)
        record[f"{split}_probs"] = _rounded(probs)
    # As `stance train` measured them (its dev-chosen threshold applied, as shipped): the extra test
    # sets (e.g. PolNeAR) and, for a model with a span head, holder/target agreement.  Runs recorded
    # before these existed simply lack them.
    extra = {name: {k: trained[name][k] for k in ("n", "accuracy", "macro_f1", "per_class")}
             for name in trained.get("extra_test", []) if name in trained}
    if extra:
        record["extra_test"] = extra
        # Their probabilities too, so the report can resample sentences for an interval.
        paths = {Path(p).stem: p for p in cfg.data.extra_test}
        record["extra_test_probs"] = {
            name: _rounded(clf.predict_proba(read_labeled(paths[name], cfg.labels, cfg.data.text_column,
                                                          cfg.data.label_column).texts,
                                             batch_size=cfg.train.eval_batch_size))
            for name in extra if name in paths}
    spans = {split: trained[split]["spans"] for split in ("dev", "test") if "spans" in trained.get(split, {})}
    if spans:
        record["spans"] = spans
    return record


def comparable_config(cfg: Any) -> dict[str, Any]:
    # Output location and ONNX export change no weight.
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in d.items()}
    d.pop("output_dir", None)
    d["model"].pop("export_onnx", None)
    d["data"].pop("extra_test", None)  # reported only; older saved configs lack it
    # Models saved before train.precision existed trained in fp32; `auto` is compared
    # as what it means on this machine.
    from stance.train import resolve_precision

    d["train"] = {**d.get("train", {})}
    d["train"]["precision"] = resolve_precision(d["train"].get("precision", "fp32"))
    # Models saved before model.spans existed trained without spans, and without them the
    # span loss weight changes no weight.
    d["model"]["spans"] = d["model"].get("spans", False)
    if not d["model"]["spans"]:
        d["train"].pop("span_loss_weight", None)
    # Models saved before train.distill existed trained without a teacher, as does a null teacher.
    if not (d["train"].get("distill") or {}).get("teacher"):
        d["train"].pop("distill", None)
    return d


def matching_setting(config: str | Path, saved: dict[str, Any], settings: Sequence[Setting],
                     seed: int) -> Setting | None:
    """The setting whose run config (at ``seed``) equals a saved resolved config, if any."""
    want = comparable_config(saved)
    return next((s for s in settings if comparable_config(run_config(config, s, seed, Path("unused"))) == want), None)


def _differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    out = []
    for sec in sorted(set(a) | set(b)):
        x, y = a.get(sec), b.get(sec)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{sec}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            out.append(sec)
    return out


def adopt_model(config: str | Path, model_dir: str | Path, runs_dir: str | Path, settings: Sequence[Setting],
                seed: int = 42) -> Path:
    """Record an already-trained model as its setting's run instead of training it again.

    Only when its saved config equals the one the sweep would train for some
    setting (output location and ONNX export aside): same config and seed give
    the same weights on CPU.
    """
    import yaml

    model_dir = Path(model_dir)
    saved = yaml.safe_load((model_dir / "stance_config.yaml").read_text(encoding="utf-8"))
    setting = matching_setting(config, saved, settings, seed)
    if setting is None:
        want = comparable_config(saved)
        diffs = {s.name: _differing_keys(want, comparable_config(run_config(config, s, seed, model_dir)))
                 for s in settings}
        near = min(diffs, key=lambda n: len(diffs[n]))
        raise StanceError(f"{model_dir}: its config matches no setting at seed {seed}; "
                          f"closest is {near}, which differs in {diffs[near]}")
    cfg = run_config(config, setting, seed, model_dir)
    path = run_file(runs_dir, setting, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record_model(model_dir, cfg, setting, seed))
    return path


def run_one(config: str | Path, setting: Setting, seed: int, runs_dir: Path, work_dir: Path,
            quiet: bool = True) -> dict[str, Any]:
    """Train one (setting, seed), or return its cached record."""
    cache = run_file(runs_dir, setting, seed)
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    from stance.train import train

    out = work_dir / f"{setting.name}-s{seed}"
    cfg = run_config(config, setting, seed, out)
    train(cfg, quiet=quiet)
    record = record_model(out, cfg, setting, seed)
    write_json(cache, record)
    shutil.rmtree(out, ignore_errors=True)
    return record


def sweep_jobs(settings: Sequence[Setting]) -> list[tuple[Setting, int]]:
    """The (setting, seed) pairs in training order."""
    # Round-robin over seeds (every setting's first seed, then every second...), so
    # a sweep cut short still covers every setting.
    return sorted(((s, seed) for s in settings for seed in s.seeds), key=lambda job: job[0].seeds.index(job[1]))


def run_sweep(config: str | Path, settings: Sequence[Setting], runs_dir: str | Path, work_dir: str | Path,
              quiet: bool = True, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every (setting, seed) pair, cached ones reused; returns the records in order."""
    runs_dir, work_dir = Path(runs_dir), Path(work_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = sweep_jobs(settings)
    records = []
    for i, (s, seed) in enumerate(jobs, start=1):
        cached = run_file(runs_dir, s, seed).is_file()
        rec = run_one(config, s, seed, runs_dir, work_dir, quiet)
        log(f"[{i}/{len(jobs)}] {s.name} seed {seed}: dev {rec['dev']['macro_f1']:.3f} "
            f"test {rec['test']['macro_f1']:.3f}, train {rec['train_seconds']:.0f}s" + (" (cached)" if cached else ""))
        records.append(rec)
    return records
