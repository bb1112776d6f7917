"""The simple alternatives a user tries first, on the shipped dev and test splits.

  keyword rule     first cue kind found (corpus.cues.CUES), else none
  TF-IDF + LR      word and character n-grams, logistic regression; C and
                   class_weight chosen on dev macro-F1

    python scripts/baselines.py [--json results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from corpus.cues import keyword_rule
from experiments.baselines import tfidf_logreg
from stance.config import load_config
from stance.data import read_labeled
from stance.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "base.yaml")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = load_config(args.config)
    # data.train may be a list of files (read and concatenated); relative paths are the repository's.
    data = {}
    for s in ("train", "dev", "test"):
        paths = getattr(cfg.data, s)
        paths = [ROOT / p for p in paths] if isinstance(paths, list) else ROOT / paths
        data[s] = read_labeled(paths, cfg.labels, cfg.data.text_column, cfg.data.label_column)
    results = {}
    for split in ("dev", "test"):
        d = data[split]
        results[f"keyword rule/{split}"] = compute_metrics(d.labels, [keyword_rule(t) for t in d.texts], cfg.labels)
    pipe, chosen = tfidf_logreg(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels,
                                cfg.labels)
    for split in ("dev", "test"):
        d = data[split]
        results[f"tfidf+logreg/{split}"] = compute_metrics(d.labels, list(pipe.predict(d.texts)), cfg.labels)
    print(f"TF-IDF + LR settings chosen on dev: {chosen}")
    print(f"{'model/split':<22}{'macro-F1':>9}{'acc':>7}" + "".join(f"{lab:>9}" for lab in cfg.labels))
    for name, m in results.items():
        print(f"{name:<22}{m['macro_f1']:>9.3f}{m['accuracy']:>7.3f}"
              + "".join(f"{m['per_class'][lab]['f1']:>9.3f}" for lab in cfg.labels))
    if args.json:
        args.json.write_text(json.dumps({"tfidf_settings": chosen, "results": results}, indent=2))


if __name__ == "__main__":
    main()
