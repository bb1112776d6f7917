"""backends.json: what `stance export` measured of each backend, read and checked, and the rule
by which ``backend="auto"`` picks one from it.

The report lives in ``MODEL/onnx/`` beside the ONNX files; it records each backend's label
agreement with torch fp32 on the held-out sets and its speed, the cascade margin fitted on dev,
and the sha256 of the weights the files were exported from (see stance.backends).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from stance.errors import StanceError, reason, short
from stance.modeldir import weights_sha256

BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-cascade")
MIN_AGREEMENT = 0.99
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "onnx-cascade": "model.int8.onnx"}
REPORT = "backends.json"
# One int8 activation scale per batch: a sentence's scores depend on its batch mates, so `auto` never picks these.
BATCH_DEPENDENT = ("torch-int8",)
# Cascade: sentences whose int8 top-2 probability margin is below this are re-run in fp32.
# `stance export` fits it on the dev split and stores it in backends.json.
DEFAULT_CASCADE_MARGIN = 0.3


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _report_problem(report: Any) -> str | None:
    """What is wrong with a parsed backends.json, or None."""
    if not isinstance(report, dict):
        return f"expected a JSON object, got {type(report).__name__}"
    backends = report.get("backends", {})
    if not isinstance(backends, dict):
        return "backends: expected a mapping of backend names"
    for name, m in backends.items():
        if name not in BACKENDS:
            return f"backends: unknown backend {short(name)}"
        if not (isinstance(m, dict) and _is_number(m.get("sentences_per_second"))
                and (m.get("agreement") is None or _is_number(m["agreement"]))):
            return f"backends.{name}: expected numbers agreement and sentences_per_second, got {short(m)}"
        other = m.get("agreement_other", {})
        if not (isinstance(other, dict) and all(_is_number(v) for v in other.values())):
            return f"backends.{name}.agreement_other: expected a mapping of test sets to numbers, got {short(other)}"
    margin = report.get("cascade_margin", DEFAULT_CASCADE_MARGIN)
    if not (_is_number(margin) and 0 <= margin <= 1):
        return f"cascade_margin: must be a number in [0, 1], got {short(margin)}"
    sha = report.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha)):
        return f"weights_sha256: expected 64 hex digits, got {short(sha)}"
    return None


def read_report(model_dir: Path) -> dict[str, Any] | None:
    """``MODEL/onnx/backends.json``, checked; None when nothing was exported."""
    path = Path(model_dir) / "onnx" / REPORT
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError covers bad JSON and bad UTF-8
        problem = f"not valid JSON: {reason(e)}"
    else:
        problem = _report_problem(report)
    if problem:
        raise StanceError(f"{path}: {problem}; re-run `stance export {model_dir} --onnx --int8`")
    return report


def check_exported_from_weights(model_dir: Path, report: dict[str, Any] | None, required: bool) -> None:
    """Refuse ONNX files that backends.json says were exported from other weights.

    ``required``: also refuse an export that recorded no weights hash (older stance).
    """
    hint = f"re-run `stance export {model_dir} --onnx --int8`"
    recorded = (report or {}).get("weights_sha256")
    if recorded is None:
        if required:
            raise StanceError(f"{Path(model_dir) / 'onnx' / REPORT}: no weights_sha256, so the ONNX files may come "
                              f"from other weights; {hint}")
        return
    if recorded != weights_sha256(Path(model_dir)):
        raise StanceError(f"{Path(model_dir) / 'onnx' / REPORT}: weights_sha256 does not match model.safetensors "
                          f"(the ONNX files were exported from other weights); {hint}")


def other_sets(backends: dict[str, Any]) -> list[str]:
    """The held-out sets besides the main one that the backends' agreement was measured on, sorted."""
    return sorted({path for m in backends.values() for path in m.get("agreement_other", {})})


def worst_agreement(measured: dict[str, Any]) -> float:
    """A backend's lowest agreement with fp32 over the held-out sets it was measured on."""
    return min([measured["agreement"], *measured.get("agreement_other", {}).values()])


def choose_auto(model_dir: Path) -> str:
    """The fastest measured backend whose labels agree with fp32 often enough on every held-out set
    measured (and not BATCH_DEPENDENT)."""
    report = read_report(model_dir)
    if not report:
        return "torch"
    ok = [(m["sentences_per_second"], name) for name, m in report.get("backends", {}).items()
          if m.get("agreement") is not None and worst_agreement(m) >= MIN_AGREEMENT and name not in BATCH_DEPENDENT
          and (name not in ONNX_FILES or (Path(model_dir) / "onnx" / ONNX_FILES[name]).is_file())]
    return max(ok)[1] if ok else "torch"
