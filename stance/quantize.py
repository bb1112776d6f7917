"""The int8 ONNX model: per-channel int8 weights, and activations quantized token by token.

ONNX Runtime's dynamic quantization gives each matmul input one scale for the whole
tensor, computed at run time over the batch: padding and the other sentences in the
batch then move a sentence's int8 scale, so its probabilities and sometimes its label
depended on its neighbours (on the shipped model's test split, 32 of 1,439 int8 labels
and 5-10 cascade labels changed between batches of 64 and of 1; docs/speed.md).  Here
every token gets a scale of its own (its largest absolute value / 127), so a sentence
scores the same alone, in any batch, in `stance predict`, `stance serve` and on Ray.
Per-token scales are also closer to fp32 than one scale per batch.

How: `quantize_dynamic` writes the per-channel int8 weights and a
``DynamicQuantizeLinear`` before each quantized matmul; each of those becomes a
per-token symmetric ``QuantizeLinear`` (opset 21 blocked quantization, one block per
token), stored as uint8 with zero point 128 so that ONNX Runtime keeps its fast
u8 x s8 kernels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stance.errors import warn

OPSET = 21  # QuantizeLinear's blocked (per-token) scales need opset 21
# What backends.json records for int8 files written here (`stance export`).
INT8_ACTIVATIONS = "per-token"
_PREFIX = "stance_pt_"  # names of what this module adds to the graph


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Write the int8 model of ``fp32_path`` to ``int8_path`` (see the module docstring)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weight scales keep more labels equal to fp32 than per-tensor (97% vs 94% measured).
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)
    model = version_converter.convert_version(onnx.load(str(int8_path)), OPSET)
    per_token_activations(model.graph)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    onnx.save(model, str(int8_path))


def warn_if_per_batch_scales(model_dir: Path, report: dict[str, Any] | None, uses_int8: bool) -> None:
    """int8 ONNX files exported before per-token scales still work, but a sentence's scores
    there depend on its batch: say so, once per load."""
    if uses_int8 and (report or {}).get("int8_activations") != INT8_ACTIVATIONS:
        warn(f"{Path(model_dir) / 'onnx' / 'model.int8.onnx'}: exported with one int8 scale per batch, so a "
             f"sentence's scores depend on the sentences batched with it; re-run `stance export {model_dir} "
             f"--onnx --int8 --overwrite`")


def per_token_activations(graph) -> int:
    """Replace every ``DynamicQuantizeLinear`` of ``graph`` by per-token quantization; how many."""
    from onnx import helper, numpy_helper

    _add_constants(graph)
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    width = {n.input[0]: inits[n.input[1]][0] for n in graph.node
             if n.op_type == "MatMulInteger" and n.input[1] in inits}
    nodes, scales = [], set()
    for n in graph.node:
        if n.op_type == "DynamicQuantizeLinear":
            nodes += _per_token_nodes(helper, numpy_helper, n, width[n.output[0]])
            scales.add(n.output[1])
        else:
            nodes.append(n)
    nodes = _integer_matmuls_to_float(helper, nodes, scales, inits)
    # quantize_dynamic recorded these outputs as scalars; ONNX Runtime warns on every load if they stay.
    redefined = {out for n in graph.node if n.op_type == "DynamicQuantizeLinear" for out in n.output}
    stale = [v for v in graph.value_info if v.name in redefined]
    for v in stale:
        graph.value_info.remove(v)
    left = sorted({n.op_type for n in nodes} & {"DynamicQuantizeLinear", "MatMulInteger"})
    if left:  # quantize_dynamic wrote a pattern this module does not know: refuse rather than export it
        raise RuntimeError(f"int8 export: {', '.join(left)} left after per-token quantization")
    del graph.node[:]
    graph.node.extend(nodes)
    return len(scales)


def _add_constants(graph) -> None:
    from onnx import numpy_helper

    values = {"inv127": np.float32(1 / 127), "eps": np.float32(1e-12), "zero": np.float32(0), "one": np.float32(1),
              "z128": np.float32(128), "last_axis": np.array([-1], np.int64)}
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), _PREFIX + k) for k, v in values.items())


def _per_token_nodes(helper, numpy_helper, dql, width: int) -> list:
    """x -> (x_q uint8, per-token scale (..., 1), zero point 128): what ``dql`` outputs, per token."""
    from onnx import TensorProto

    x, (xq, scale, zp) = dql.input[0], dql.output
    p, c = dql.name + "_per_token", _PREFIX
    return [
        helper.make_node("Abs", [x], [p + "_abs"]),
        helper.make_node("ReduceMax", [p + "_abs", c + "last_axis"], [p + "_absmax"], keepdims=1),
        helper.make_node("Max", [p + "_absmax", c + "eps"], [p + "_range"]),  # an all-zero token
        helper.make_node("Mul", [p + "_range", c + "inv127"], [scale]),
        # The zero point must have the scale's shape: 128 for every token.
        helper.make_node("Mul", [scale, c + "zero"], [p + "_zeros"]),
        helper.make_node("Add", [p + "_zeros", c + "z128"], [p + "_z128"]),
        helper.make_node("Cast", [p + "_z128"], [p + "_zp"], to=TensorProto.UINT8),
        helper.make_node("QuantizeLinear", [x, scale, p + "_zp"], [xq], axis=-1, block_size=width),
        helper.make_node("Constant", [], [zp], value=numpy_helper.from_array(np.array(128, np.uint8))),
    ]


def _integer_matmuls_to_float(helper, nodes: list, scales: set[str], inits: dict) -> list:
    """``y = Cast(MatMulInteger(x_q, w_q)) * (x_scale * w_scale)`` becomes
    ``y = MatMulIntegerToFloat(x_q, w_q, 1, w_scale) * x_scale``.

    Same value.  Left as it was, ONNX Runtime fuses the chain into one kernel that takes
    x_scale to be one number, and with per-token scales it then computes wrong logits
    (measured: 76% of labels equal to fp32 instead of 99%); unfused, the int32 product
    costs a cast and a multiply of its own.  ``MatMulIntegerToFloat`` applies the
    per-channel weight scale itself, and the per-token scale is one multiply after it.
    """
    made = {out: n for n in nodes for out in n.output}
    weight_scales = {name for name in inits if not name.startswith(_PREFIX)}
    drop, out = set(), []
    for n in nodes:
        cast = made.get(n.input[0]) if n.op_type == "Mul" and len(n.input) == 2 else None
        product = made.get(n.input[1]) if cast is not None else None
        matmul = made.get(cast.input[0]) if cast is not None and cast.op_type == "Cast" else None
        if matmul is None or matmul.op_type != "MatMulInteger" or product is None or product.op_type != "Mul":
            out.append(n)
            continue
        x_scale, w_scale = sorted(product.input, key=lambda name: name not in scales)
        if x_scale not in scales or w_scale not in weight_scales:
            raise RuntimeError(f"int8 export: {n.name}: not the scale pattern quantize_dynamic writes")
        xq, wq, x_zp, w_zp = matmul.input
        out += [helper.make_node("MatMulIntegerToFloat", [xq, wq, _PREFIX + "one", w_scale, x_zp, w_zp],
                                 [n.output[0] + "_w"], domain="com.microsoft"),
                helper.make_node("Mul", [n.output[0] + "_w", x_scale], [n.output[0]])]
        drop.update(id(m) for m in (cast, product, matmul))
    return [n for n in out if id(n) not in drop]
