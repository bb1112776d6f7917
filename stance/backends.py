"""Inference backends: the same model run by torch fp32, torch int8, or ONNX Runtime.

A backend turns padded token arrays into logits, and, for a model with a span
head, per-token span logits from the same pass.  ``stance export`` writes the
ONNX files into ``MODEL/onnx/`` and measures each backend's label agreement
with torch fp32 and its speed on held-out sentences (``onnx/backends.json``);
``backend="auto"`` then picks the fastest backend that agrees with fp32 on at
least :data:`stance.backend_report.MIN_AGREEMENT` of them, and plain torch fp32 when nothing was
measured.  Faster-but-unfaithful backends stay opt-in.  The report also records
the sha256 of ``model.safetensors``: ONNX files that are corrupt, or not known
to come from the weights beside them, make ``auto`` warn and serve torch fp32.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stance.backend_report import (
    BACKENDS,
    DEFAULT_CASCADE_MARGIN,
    ONNX_FILES,
    check_exported_from_weights,
    choose_auto,
    read_report,
)
from stance.batching import BatchPlan  # it lived here first: `from stance.backends import BatchPlan` still works
from stance.errors import StanceError, reason, short, warn
from stance.quantize import warn_if_per_batch_scales


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


# Per-token span logits of a batch, (rows, padded tokens, tags); None for a model without a span head.
SpanLogits = np.ndarray | None


class Backend(Protocol):
    name: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...

    def outputs(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, SpanLogits]: ...

    def run(self, plan: BatchPlan) -> Iterator[tuple[np.ndarray, np.ndarray, SpanLogits]]:
        """(row indices, logits, span logits) for every row of the plan, in any grouping."""
        ...


class PerBatch:
    """Backends that score each batch once and independently of the others."""

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.outputs(input_ids, attention_mask)[0]  # type: ignore[attr-defined]

    def run(self, plan: BatchPlan) -> Iterator[tuple[np.ndarray, np.ndarray, SpanLogits]]:
        for rows in plan.batches(plan.order):
            yield rows, *self.outputs(*plan.pad(rows))  # type: ignore[attr-defined]


_THREAD_LIMIT: int | None = None  # set by limit_threads


def limit_threads(n: int) -> None:
    """Run the backends built from now on in this process on ``n`` intra-op threads.

    A Ray actor given 1 of a node's 16 CPUs must not start 16 threads: with one actor
    per core, every core would run 16 threads and thrash.
    """
    global _THREAD_LIMIT
    _THREAD_LIMIT = max(1, int(n))


def _threads() -> int:
    if _THREAD_LIMIT:
        return _THREAD_LIMIT
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class TorchBackend(PerBatch):
    """``model``: a sequence-classification model, or a ``span_head.SpanTagger`` around one."""

    def __init__(self, model: Any, name: str = "torch") -> None:
        import torch

        if _THREAD_LIMIT:  # torch's pool is process-wide: only when asked, never behind a caller's back
            torch.set_num_threads(_THREAD_LIMIT)
        self.model, self.name, self._torch = model.eval(), name, torch

    def outputs(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, SpanLogits]:
        torch = self._torch
        with torch.inference_mode():
            device = next(self.model.parameters(), torch.empty(0)).device
            out = self.model(input_ids=torch.from_numpy(input_ids).to(device),
                             attention_mask=torch.from_numpy(attention_mask).to(device))
            if isinstance(out, tuple):  # SpanTagger
                return out[0].float().cpu().numpy(), out[1].float().cpu().numpy()
            return out.logits.float().cpu().numpy(), None


def torch_int8(model: Any) -> TorchBackend:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized on the fly)."""
    import copy

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao's own deprecation notes (torchao replaces it); torch-int8 is opt-in and measured, never auto.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                                category=UserWarning)
        q = quantize_dynamic(copy.deepcopy(model).cpu().eval(), {torch.nn.Linear}, dtype=torch.qint8)
    return TorchBackend(q, "torch-int8")


_SHARED_ARENA: bool | None = None  # None = not tried yet


def _shared_cpu_arena() -> bool:
    """Register one CPU memory arena for every ONNX session of this process.

    Each session otherwise grows an arena of its own, and the cascade holds two
    sessions.  Sharing one lowers peak RSS of `stance predict` and its growth with the
    number of sentences (docs/speed.md).  False if ONNX Runtime refused (e.g. the host application
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


def _ort_errors() -> tuple[type[Exception], ...]:
    """What ONNX Runtime raises for a file that is not a usable model (none subclass a common base)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NoSuchFile",
             "NotImplemented", "RuntimeException")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


class OnnxBackend(PerBatch):
    """``spans``: the model has a span head, so the graph must output ``span_logits`` too."""

    def __init__(self, path: Path, name: str, n_labels: int | None = None, spans: bool = False) -> None:
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
        self.name, self.path, self.n_labels = name, Path(path), n_labels
        self.output_names = ["logits", "span_logits"] if spans else ["logits"]
        hint = f"re-run `stance export {self.path.parent.parent} --onnx --int8`"
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except _ort_errors() as e:
            raise StanceError(f"{path}: not a usable ONNX model ({reason(e).split('failed:')[-1]}); {hint}") from None
        inputs = sorted(i.name for i in self.session.get_inputs())
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if inputs != ["attention_mask", "input_ids"] or "logits" not in outputs:
            raise StanceError(f"{path}: expected inputs input_ids, attention_mask and output logits, "
                              f"got {short(inputs)} -> {short(sorted(outputs))}; {hint}")
        if spans and "span_logits" not in outputs:
            raise StanceError(f"{path}: no span_logits output, but the model has a span head "
                              f"(span_head.safetensors): exported before it was trained; {hint}")
        width = (outputs["logits"] or [None])[-1]
        if isinstance(width, int):  # static: check now, not after the first batch
            self._check_width(width)

    def _check_width(self, width: int) -> None:
        if self.n_labels is not None and width != self.n_labels:
            raise StanceError(f"{self.path}: logits has {width} columns, but config.json id2label has "
                              f"{self.n_labels} labels")

    def outputs(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, SpanLogits]:
        out = self.session.run(self.output_names, {"input_ids": input_ids, "attention_mask": attention_mask})
        self._check_width(out[0].shape[-1])  # for exports whose logits width is dynamic
        return out[0], out[1] if len(out) > 1 else None


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

    def run(self, plan: BatchPlan) -> Iterator[tuple[np.ndarray, np.ndarray, SpanLogits]]:
        """int8 for every row, then fp32 for the unsure rows of the whole plan, gathered so
        that the re-runs too come in full length-sorted batches.  A re-run row takes its span
        logits from the fp32 pass too, so its spans always go with the label it gets."""
        logits: np.ndarray | None = None
        spans: SpanLogits = None

        def put(rows: np.ndarray, out: np.ndarray, span: SpanLogits) -> None:
            logits[rows] = out
            if spans is not None:
                spans[rows, :span.shape[1]] = span

        for rows in plan.batches(plan.order):
            out, span = self.fast.outputs(*plan.pad(rows))
            if logits is None:
                logits = np.empty((len(plan.ids), out.shape[1]), dtype=np.float32)
                if span is not None:
                    spans = np.zeros((len(plan.ids), int(plan.lengths.max()), span.shape[2]), dtype=np.float32)
            put(rows, out, span)
        assert logits is not None
        again = plan.order[np.isin(plan.order, self.unsure(logits))]
        for rows in plan.batches(again):
            put(rows, *self.exact.outputs(*plan.pad(rows)))
        yield plan.order, logits[plan.order], None if spans is None else spans[plan.order]

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.outputs(input_ids, attention_mask)[0]

    def outputs(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, SpanLogits]:
        # One batch alone (``run`` is the fast path: it gathers the unsure rows of a whole plan).
        logits, spans = self.fast.outputs(input_ids, attention_mask)
        unsure = self.unsure(logits)
        if len(unsure):
            width = int(attention_mask[unsure].sum(axis=1).max())
            exact, exact_spans = self.exact.outputs(input_ids[unsure, :width], attention_mask[unsure, :width])
            logits[unsure] = exact
            if spans is not None:
                spans[unsure] = 0.0
                spans[unsure, :width] = exact_spans
        return logits, spans


def open_onnx(model_dir: Path, backend: str, n_labels: int | None = None,
              spans: bool = False) -> tuple[str, Backend | None]:
    """Resolve ``backend`` (``auto`` included) and open its ONNX sessions: (name, backend), or (name, None)
    for the torch backends, which the caller builds around its torch model.

    Under ``auto`` anything wrong with the ONNX files (a corrupt report or model, files exported
    from other weights, or not known to come from these) is a warning and torch fp32; asked for by
    name, it is an error.
    """
    if backend == "auto":
        try:
            name = choose_auto(model_dir)
            if name not in ONNX_FILES:
                return name, None
            report = read_report(model_dir)
            check_exported_from_weights(model_dir, report, required=True)
            warn_if_per_batch_scales(model_dir, report, ONNX_FILES[name] == ONNX_FILES["onnx-int8"])
            return name, make_backend(name, model_dir, None, n_labels, spans)
        except StanceError as e:
            warn(f"{e}; --backend auto uses torch")
            return "torch", None
    check_backend(backend)
    if backend not in ONNX_FILES:
        return backend, None
    report = read_report(model_dir)
    check_exported_from_weights(model_dir, report, required=False)
    warn_if_per_batch_scales(model_dir, report, ONNX_FILES[backend] == ONNX_FILES["onnx-int8"])
    return backend, make_backend(backend, model_dir, None, n_labels, spans)


def make_backend(name: str, model_dir: Path, torch_model: Any | None, n_labels: int | None = None,
                 spans: bool = False) -> Backend:
    """``n_labels``: the labels config.json names; an ONNX model scoring another number is refused.
    ``spans``: the model has a span head, which an ONNX graph must then output too."""
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
            return CascadeBackend(OnnxBackend(onnx_dir / ONNX_FILES["onnx-int8"], "onnx-int8", n_labels, spans),
                                  OnnxBackend(onnx_dir / "model.onnx", "onnx", n_labels, spans), margin)
        return OnnxBackend(onnx_dir / ONNX_FILES[name], name, n_labels, spans)
    raise AssertionError(f"backend {name!r} is listed in BACKENDS but not built here")
