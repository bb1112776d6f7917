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

BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-cascade")
MIN_AGREEMENT = 0.99
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "onnx-cascade": "model.int8.onnx"}
REPORT = "backends.json"
# Cascade: sentences whose int8 top-2 probability margin is below this are re-run in fp32.
# `stance export` fits it on the dev split and stores it in backends.json.
DEFAULT_CASCADE_MARGIN = 0.3


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def top2_margin(probs: np.ndarray) -> np.ndarray:
    """Per row: top probability minus the runner-up (small = unsure)."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise StanceError(f"--backend: must be one of auto, {', '.join(BACKENDS)}; got {name!r}")


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


def torch_int8(model: Any) -> TorchBackend:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized on the fly)."""
    import copy

    import torch
    from torch.ao.quantization import quantize_dynamic

    q = quantize_dynamic(copy.deepcopy(model).cpu().eval(), {torch.nn.Linear}, dtype=torch.qint8)
    return TorchBackend(q, "torch-int8")


_SHARED_ARENA: bool | None = None  # None = not tried yet


def _shared_cpu_arena() -> bool:
    """Register one CPU memory arena for every ONNX session of this process.

    Each session otherwise grows an arena of its own, and the cascade holds two
    sessions.  Sharing one cut peak RSS of `stance predict` on 50,000 sentences
    from 388 to 331 MiB, and its growth from 1k to 50k sentences from 1.13x to
    1.09x (measured).  False if ONNX Runtime refused (e.g. the host application
    registered its own): sessions then keep their own arenas.
    """
    global _SHARED_ARENA
    if _SHARED_ARENA is None:
        import onnxruntime as ort

        mem = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        try:
            # Default extension strategy (next power of two); "same as requested" measured far worse.
            ort.create_and_register_allocator(mem, ort.OrtArenaCfg({}))
            _SHARED_ARENA = True
        except Exception:  # noqa: BLE001 - any refusal just means no sharing
            _SHARED_ARENA = False
    return _SHARED_ARENA


class OnnxBackend:
    def __init__(self, path: Path, name: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if _shared_cpu_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = _threads()
        opts.inter_op_num_threads = 1
        # Batch shapes vary with every window; a cached allocation plan per shape
        # made peak memory creep up with input size (measured: +10% at 12k sentences).
        opts.enable_mem_pattern = False
        self.name = name
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]


class CascadeBackend:
    """int8 for every sentence, fp32 again for the few where int8 is unsure.

    int8 flips labels mostly where the top two classes are close, so re-running
    only those (top-2 probability margin < ``margin``) in fp32 recovers nearly
    all of fp32's labels for a few percent of fp32's cost.
    """

    def __init__(self, fast: OnnxBackend, exact: OnnxBackend, margin: float) -> None:
        self.name, self.fast, self.exact, self.margin = "onnx-cascade", fast, exact, margin

    def unsure(self, logits: np.ndarray) -> np.ndarray:
        """Indices of rows whose int8 top-2 probability margin is below ``margin``.

        Judged at temperature 1 (raw logits), so calibration does not move it."""
        return np.flatnonzero(top2_margin(softmax(logits)) < self.margin)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # Per-batch form; StanceClassifier gathers the unsure rows of a whole
        # window instead, so the fp32 re-runs come in full batches.
        logits = self.fast.logits(input_ids, attention_mask)
        unsure = self.unsure(logits)
        if len(unsure):
            width = int(attention_mask[unsure].sum(axis=1).max())
            logits[unsure] = self.exact.logits(input_ids[unsure, :width], attention_mask[unsure, :width])
        return logits


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
    check_backend(name)
    if name == "torch":
        return TorchBackend(torch_model)
    if name == "torch-int8":
        return torch_int8(torch_model)
    if name in ONNX_FILES:
        onnx_dir = Path(model_dir) / "onnx"
        needed = [ONNX_FILES[name]] + (["model.onnx"] if name == "onnx-cascade" else [])
        for f in needed:
            if not (onnx_dir / f).is_file():
                raise StanceError(f"{onnx_dir / f}: not found; run `stance export {model_dir} --onnx"
                                  f"{'' if f == 'model.onnx' else ' --int8'}` first")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise StanceError("backend onnx needs onnxruntime: pip install onnxruntime") from None
        if name == "onnx-cascade":
            margin = float((read_report(model_dir) or {}).get("cascade_margin", DEFAULT_CASCADE_MARGIN))
            return CascadeBackend(OnnxBackend(onnx_dir / ONNX_FILES["onnx-int8"], "onnx-int8"),
                                  OnnxBackend(onnx_dir / "model.onnx", "onnx"), margin)
        return OnnxBackend(onnx_dir / ONNX_FILES[name], name)
    raise AssertionError(f"backend {name!r} is listed in BACKENDS but not built here")
