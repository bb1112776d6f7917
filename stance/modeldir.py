"""A model directory is untrusted input: check what its files claim before anything relies on them.

Both loaders (torch via transformers, and the light ONNX path that imports
neither) call these, so a hand-edited config.json or a corrupt file gives the
same one-line error whichever backend was asked for.  Nothing here imports
torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

from stance.errors import StanceError, reason, short

# The output layer of a sequence-classification head: BERT, DistilBERT, DeBERTa and ALBERT
# call it `classifier`, RoBERTa and ELECTRA `classifier.out_proj`, decoder models `score`.
HEAD_WEIGHTS = ("classifier.out_proj.weight", "classifier.weight", "score.weight")
# safetensors refuses headers over 100 MB too; a corrupt length must not make us read gigabytes.
MAX_HEADER_BYTES = 100 * 1024 * 1024


def read_model_config(path: Path) -> dict[str, Any]:
    """config.json as a dict, after checking the keys stance reads from it (and stance_config.yaml's labels)."""
    file = path / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError covers bad JSON and bad UTF-8
        raise StanceError(f"{file}: not valid JSON: {reason(e)}") from None
    if not isinstance(config, dict):
        raise StanceError(f"{file}: expected a JSON object, got {type(config).__name__}")
    labels = _labels(file, config)
    _number(file, config, "stance_temperature", 1.0, "a finite number > 0", lambda v: v > 0)
    _number(file, config, "stance_min_score", 0.0, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    _number(file, config, "stance_max_length", 128, "a positive integer", lambda v: v >= 1 and v == int(v))
    _check_stance_config(path, labels)
    return config


def _labels(file: Path, config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise StanceError(f"{file}: id2label: expected a mapping from 0..n-1 to label names")
    n = len(id2label)
    if set(id2label) != {str(i) for i in range(n)}:
        raise StanceError(f"{file}: id2label: keys must be 0..{n - 1}, got {short(list(id2label))}")
    labels = [id2label[str(i)] for i in range(n)]
    if not all(isinstance(x, str) and x.strip() for x in labels) or len(set(labels)) < n:
        raise StanceError(f"{file}: id2label: names must be distinct non-empty strings, got {short(labels)}")
    if "num_labels" in config and config["num_labels"] != n:
        raise StanceError(f"{file}: num_labels: {short(config['num_labels'])} but id2label has {n} labels")
    return labels


def _number(file: Path, config: dict[str, Any], key: str, default: float, rule: str, ok: Any) -> None:
    v = config.get(key, default)
    # bool is an int to Python, and NaN/inf pass every comparison check that matters here.
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
        raise StanceError(f"{file}: {key}: must be {rule}, got {short(v)}")


def _check_stance_config(path: Path, labels: list[str]) -> None:
    """stance_config.yaml, where present, must list the labels in config.json's order."""
    file = path / "stance_config.yaml"
    if not file.is_file():
        return  # a plain Hugging Face model directory
    import yaml

    try:
        saved = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise StanceError(f"{file}: not valid YAML: {reason(e)}") from None
    wanted = saved.get("labels") if isinstance(saved, dict) else None
    if wanted is not None and wanted != labels:
        raise StanceError(f"{file}: labels: {short(wanted)} differ from config.json id2label {short(labels)}")


def head_size(path: Path) -> int | None:
    """Outputs of the classification head in model.safetensors (from its header); None if no known head."""
    file = path / "model.safetensors"
    try:
        with open(file, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > MAX_HEADER_BYTES:
                raise ValueError(f"header length {size} is implausible")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as e:
        raise StanceError(f"{file}: not a valid safetensors file: {reason(e)}") from None
    for key in HEAD_WEIGHTS:
        shape = header.get(key, {}).get("shape") if isinstance(header, dict) else None
        if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[0], int):
            return shape[0]
    return None


def check_head(path: Path, n_labels: int) -> None:
    """The weights must score as many classes as config.json names (transformers would print a table and raise)."""
    outputs = head_size(path)
    if outputs is not None and outputs != n_labels:
        raise StanceError(f"{path / 'config.json'}: id2label: {n_labels} labels, but the classifier in "
                          f"model.safetensors has {outputs} outputs")


def read_tokenizer_json(path: Path) -> Any | None:
    """The fast tokenizer in tokenizer.json; None where the directory has none."""
    file = path / "tokenizer.json"
    if not file.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception for every malformed file
        raise StanceError(f"{file}: not a valid tokenizer file: {reason(e)}") from None


def read_span_config(path: Path) -> dict[str, Any] | None:
    """span_head.json, checked, where the model has a span head (span_head.safetensors beside it); else None."""
    from stance.spans import TAGS

    file, weights = path / "span_head.json", path / "span_head.safetensors"
    if not file.is_file() and not weights.is_file():
        return None
    if not (file.is_file() and weights.is_file()):
        missing, other = (file, weights) if not file.is_file() else (weights, file)
        raise StanceError(f"{missing}: not found, but {other.name} is there (a span head needs both)")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StanceError(f"{file}: not valid JSON: {reason(e)}") from None
    if not isinstance(config, dict) or config.get("tags") != list(TAGS):
        got = config.get("tags") if isinstance(config, dict) else config
        raise StanceError(f"{file}: tags: expected {list(TAGS)} (what this stance decodes), got {short(got)}")
    size = config.get("hidden_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise StanceError(f"{file}: hidden_size: expected a positive integer, got {short(size)}")
    return config


def weights_sha256(path: Path) -> str:
    """sha256 of model.safetensors (then span_head.safetensors, where there is one): ties an ONNX export
    to the weights it was made from."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "span_head.safetensors"):
        if name == "model.safetensors" or (path / name).is_file():
            with open(path / name, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()
