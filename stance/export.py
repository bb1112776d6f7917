"""``stance export``: write ONNX (and int8 ONNX) next to a model, and measure every backend.

The measurement is what makes ``--backend auto`` honest: each backend's labels
are compared with torch fp32 on held-out sentences (by default the test split
named in the model's ``stance_config.yaml``), and its throughput is timed on
the same sentences.  Results go to ``MODEL/onnx/backends.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stance.backends import BACKENDS, MIN_AGREEMENT, ONNX_FILES, REPORT, choose_auto, keep_fp32
from stance.errors import StanceError
from stance.io import atomic_dir, write_json
from stance.modeling import StanceClassifier, check_model_dir


def _onnx_export(clf: StanceClassifier, path: Path) -> None:
    import torch

    class LogitsOnly(torch.nn.Module):
        # ONNX wants plain tensors out, not a ModelOutput.
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    enc = clf.tokenizer(["A short one.", "A somewhat longer sentence for the export trace."],
                        padding=True, return_tensors="pt")
    with torch.inference_mode():
        torch.onnx.export(
            LogitsOnly(clf.model.cpu().eval()),
            (enc["input_ids"], enc["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _check_texts(model_dir: Path, labels: list[str], data: str | Path | None) -> tuple[list[str], str | None]:
    """Held-out sentences to measure on: ``data``, else the model's configured test split."""
    from stance.data import read_labeled

    cfg_path = model_dir / "stance_config.yaml"
    cfg = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else {}
    columns = cfg.get("data") or {}
    if data is None:
        data = columns.get("test")
        if not data or not Path(data).is_file():
            return [], None
    texts = read_labeled(data, labels, columns.get("text_column", "text"), columns.get("label_column", "label")).texts
    return texts, str(data)


def measure(model_dir: Path, texts: list[str], batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Label agreement with torch fp32, and sentences/s, for every backend present in ``model_dir``."""
    results: dict[str, dict[str, float]] = {}
    ref_probs = None
    for name in BACKENDS:  # "torch" comes first and is the reference
        if name in ONNX_FILES and not (model_dir / "onnx" / ONNX_FILES[name]).is_file():
            continue
        clf = StanceClassifier.load(model_dir, backend=name)
        clf.predict_proba(texts[:batch_size], batch_size)  # warm-up: first calls allocate
        t0 = time.perf_counter()
        probs = clf.predict_proba(texts, batch_size)
        seconds = time.perf_counter() - t0
        if ref_probs is None:
            ref_probs = probs
        results[name] = {
            "agreement": float((probs.argmax(1) == ref_probs.argmax(1)).mean()),
            "sentences_per_second": round(len(texts) / seconds, 1),
            "max_abs_prob_diff": round(float(np.abs(probs - ref_probs).max()), 5),
        }
    return results


def export(
    model_dir: str | Path,
    onnx: bool = True,
    int8: bool = False,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``MODEL/onnx/`` (model.onnx, model.int8.onnx) and ``backends.json``."""
    model_dir = check_model_dir(model_dir)
    if not onnx:
        raise StanceError("stance export: nothing to do; pass --onnx")
    try:
        import onnxruntime  # noqa: F401
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise StanceError("stance export needs onnx and onnxruntime: pip install onnx onnxruntime") from None
    clf = StanceClassifier.load(model_dir)
    texts, source = _check_texts(model_dir, clf.labels, data)
    with atomic_dir(model_dir / "onnx") as tmp:
        _onnx_export(clf, tmp / ONNX_FILES["onnx"])
        if int8:
            # Per-channel scales keep more labels equal to fp32 than per-tensor (97% vs 94% measured),
            # and so does leaving the residual-stream projections in fp32 (see keep_fp32).
            import onnx as onnx_lib

            graph = onnx_lib.load(str(tmp / ONNX_FILES["onnx"]), load_external_data=False).graph
            exclude = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and keep_fp32(n.name)]
            quantize_dynamic(str(tmp / ONNX_FILES["onnx"]), str(tmp / ONNX_FILES["onnx-int8"]),
                             weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude)
    report: dict[str, Any] = {"check_data": source, "n": len(texts), "min_agreement": MIN_AGREEMENT,
                              "backends": measure(model_dir, texts) if texts else {}}
    write_json(model_dir / "onnx" / REPORT, report)
    report["auto"] = choose_auto(model_dir)
    return report


def format_report(report: dict[str, Any]) -> str:
    if not report["backends"]:
        return "exported; no held-out data found to measure agreement, so --backend auto stays on torch"
    lines = [f"measured on {report['n']} sentences of {report['check_data']}",
             f"{'backend':<12}{'agreement':>11}{'sent/s':>9}"]
    for name, m in report["backends"].items():
        lines.append(f"{name:<12}{m['agreement']:>11.2%}{m['sentences_per_second']:>9.0f}")
    lines.append(f"--backend auto -> {report['auto']} (fastest with agreement >= {report['min_agreement']:.0%})")
    return "\n".join(lines)
