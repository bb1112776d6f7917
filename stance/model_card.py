"""The model card (``README.md`` of a model directory), rendered from ``model_card.md``.

The template holds the prose and layout; this module only computes the tables
and values that fill it, as SetFit's ``model_card.py`` does.
"""

from __future__ import annotations

import platform
from pathlib import Path
from string import Template
from typing import Any

from stance.backend_report import other_sets, worst_agreement
from stance.config import Config

TEMPLATE = Path(__file__).with_name("model_card.md")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("stance", "torch", "transformers", "tokenizers", "datasets", "accelerate", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def held_out_names(cfg: Config) -> list[str]:
    """dev, test and the extra test sets by file stem, in the order they are reported."""
    return ["dev", "test", *(Path(p).stem for p in cfg.data.extra_test)]


def _data_table(cfg: Config, counts: dict[str, dict[str, int]]) -> str:
    labels = cfg.labels
    files = {"train": cfg.data.train, "dev": cfg.data.dev, "test": cfg.data.test,
             **{Path(p).stem: p for p in cfg.data.extra_test}}
    lines = ["| split | file | " + " | ".join(labels) + " | total |", "|---|---|" + "---|" * (len(labels) + 1)]
    for split, c in counts.items():
        name = files[split] if isinstance(files[split], str) else "` + `".join(files[split])
        lines.append(f"| {split} | `{name}` | " + " | ".join(str(c.get(lab, 0)) for lab in labels)
                     + f" | {sum(c.values())} |")
    return "\n".join(lines)


def _metrics(cfg: Config, metrics: dict[str, Any]) -> str:
    lines = []
    for split in held_out_names(cfg):
        m = metrics.get(split)
        if not m:
            continue
        lines += [f"**{split}**: macro-F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f} (n={m['n']})", "",
                  "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {lab} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |"
                  for lab, pc in m["per_class"].items()]
        lines.append("")
        if m.get("spans"):
            lines += _span_lines(m["spans"])
    return "".join(line + "\n" for line in lines)


def _span_lines(spans: dict[str, Any]) -> list[str]:
    """Holder/target exact match and token-F1 of one split, as a table."""
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [f"Holder and target on the {spans['n']} gold stance sentences with spans "
             f"({spans['n_label_correct']} labeled right): given the right label, and end to end "
             "(a wrong label or a missed span scores 0).", "",
             "| span | exact, label right | token-F1, label right | exact, end to end | token-F1, end to end |",
             "|---|---|---|---|---|"]
    for role in ("holder", "target"):
        m = spans[role]
        lines.append(f"| {role} | {num(m['exact_given_label'])} | {num(m['f1_given_label'])} | "
                     f"{num(m['exact_end_to_end'])} | {num(m['f1_end_to_end'])} |")
    return lines + [""]


def _backends(metrics: dict[str, Any]) -> str:
    if not metrics.get("backends"):
        return ""
    others = other_sets(metrics["backends"])
    lines = ["## Inference backends", "",
             f"Measured on the test split{' and on ' + ', '.join(others) if others else ''}; `stance predict` "
             f"uses **{metrics['default_backend']}** by default (the fastest whose labels agree with torch fp32 on "
             ">= 99% of the sentences of every one of these sets).", "",
             "| backend | agreement with fp32 (test) | lowest over the sets | sentences/s |", "|---|---|---|---|"]
    lines += [f"| {name} | {m['agreement']:.2%} | {worst_agreement(m):.2%} | {m['sentences_per_second']:.0f} |"
              for name, m in metrics["backends"].items()]
    return "".join(line + "\n" for line in lines) + "\n"


def _distill(cfg: Config, metrics: dict[str, Any]) -> str:
    d, got = cfg.train.distill, metrics.get("distill")
    if not got:
        return "none"
    return (f"teacher probabilities from `{d.teacher}` (alpha {d.alpha}, temperature {d.temperature}) on "
            f"{got['train_rows_with_teacher']} training rows, and {got['unlabeled_rows']} rows without a gold label")


def render(cfg: Config, counts: dict[str, dict[str, int]], metrics: dict[str, Any]) -> str:
    """The model card for a run with config ``cfg``, row ``counts`` per split and its ``metrics``."""
    t, averaged = cfg.train, metrics.get("averaged_checkpoints")
    kept = (f"weights averaged over {', '.join(averaged)}" if averaged
            else f"best epoch by dev macro-F1: {metrics.get('best_epoch')}")
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        labels=", ".join(f"`{lab}`" for lab in cfg.labels),
        data_table=_data_table(cfg, counts), metrics=_metrics(cfg, metrics), backends=_backends(metrics),
        backbone=cfg.model.name_or_path, max_length=cfg.model.max_length,
        freeze_embeddings=cfg.model.freeze_embeddings, freeze_layers=cfg.model.freeze_layers,
        epochs=t.epochs, kept=kept, batch_size=t.batch_size, learning_rate=t.learning_rate,
        layer_lr_decay=t.layer_lr_decay, warmup_ratio=t.warmup_ratio, weight_decay=t.weight_decay,
        class_weighting=t.class_weighting, label_smoothing=t.label_smoothing, seed=t.seed,
        precision=metrics.get("precision", "fp32"), train_seconds=f"{metrics.get('train_seconds', 0):.0f}",
        temperature=metrics.get("calibration", {}).get("temperature", 1.0),
        min_score=metrics.get("min_score", {}).get("min_score", 0.0), distill=_distill(cfg, metrics),
        versions="\n".join(f"- {k} {v}" for k, v in versions().items()),
    )
