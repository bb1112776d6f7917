"""Inference backends: the same model run by torch fp32, torch int8, or ONNX Runtime.

A backend turns padded token arrays into logits.  ``stance export`` writes the
ONNX files into ``MODEL/onnx/`` and measures each backend's label agreement
with torch fp32 and its speed on held-out sentences (``onnx/backends.json``);
``backend="auto"`` then picks the fastest backend that agrees with fp32 on at
least :data:`MIN_AGREEMENT` of them, and plain torch fp32 when nothing was
measured.  Faster-but-unfaithful backends stay opt-in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stance.errors import StanceError

BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")
MIN_AGREEMENT = 0.99
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
REPORT = "backends.json"


class Backend(Protocol):
    name: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class TorchBackend:
    def __init__(self, model: Any, name: str = "torch") -> None:
        import torch

        self.model, self.name, self._torch = model.eval(), name, torch

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            device = next(self.model.parameters(), torch.empty(0)).device
            out = self.model(input_ids=torch.from_numpy(input_ids).to(device),
                             attention_mask=torch.from_numpy(attention_mask).to(device))
            return out.logits.float().cpu().numpy()


def keep_fp32(name: str) -> bool:
    """Layers left in fp32 by the int8 backends.

    The projections back into the residual stream (attention output and FFN
    output, "*.output.dense") and the pooler/classifier head are where int8
    error flips labels: on our first MiniLM model, quantizing everything kept
    97.0% of test labels equal to fp32, keeping these in fp32 kept 99.0%.
    """
    return any(k in name for k in ("output.dense", "output/dense", "pooler", "classifier"))


def torch_int8(model: Any) -> TorchBackend:
    """Dynamic int8 quantization of the Linear layers that int8 does not hurt (see :func:`keep_fp32`)."""
    import copy

    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    model = copy.deepcopy(model).cpu().eval()
    spec = {name: default_dynamic_qconfig for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and not keep_fp32(name)}
    return TorchBackend(quantize_dynamic(model, spec, dtype=torch.qint8), "torch-int8")


class OnnxBackend:
    def __init__(self, path: Path, name: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = _threads()
        opts.inter_op_num_threads = 1
        self.name = name
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]


def read_report(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / "onnx" / REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def choose_auto(model_dir: Path) -> str:
    """The fastest measured backend whose labels agree with fp32 often enough."""
    report = read_report(model_dir)
    if not report:
        return "torch"
    ok = [(m["sentences_per_second"], name) for name, m in report["backends"].items()
          if m.get("agreement") is not None and m["agreement"] >= MIN_AGREEMENT
          and (name not in ONNX_FILES or (Path(model_dir) / "onnx" / ONNX_FILES[name]).is_file())]
    return max(ok)[1] if ok else "torch"


def make_backend(name: str, model_dir: Path, torch_model: Any | None) -> Backend:
    if name == "torch":
        return TorchBackend(torch_model)
    if name == "torch-int8":
        return torch_int8(torch_model)
    if name in ONNX_FILES:
        path = Path(model_dir) / "onnx" / ONNX_FILES[name]
        if not path.is_file():
            raise StanceError(f"{path}: not found; run `stance export {model_dir} --onnx"
                              f"{' --int8' if name == 'onnx-int8' else ''}` first")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise StanceError("backend onnx needs onnxruntime: pip install onnxruntime") from None
        return OnnxBackend(path, name)
    raise StanceError(f"--backend: must be one of auto, {', '.join(BACKENDS)}; got {name!r}")
