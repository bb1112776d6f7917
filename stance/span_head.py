"""The span-tagging head beside the sentence head: one encoder pass for both, and its own files.

``SpanTagger`` wraps a Hugging Face sequence-classification model and adds a
linear BIO tagger (``stance.spans.TAGS``) on the encoder's last hidden states,
so the sentence label and the holder/target tags come from the same pass.  The
head is saved apart from the sentence model (``span_head.safetensors`` and
``span_head.json``): ``model.safetensors`` stays exactly what
``transformers.pipeline("text-classification")`` expects, with no unused
weights for it to warn about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stance.errors import StanceError, reason
from stance.io import write_json
from stance.spans import TAGS

HEAD_WEIGHTS = "span_head.safetensors"
HEAD_CONFIG = "span_head.json"


class SpanTagger(torch.nn.Module):
    """Sentence logits and per-token tag logits from one encoder pass.

    ``forward`` returns ``(logits, span_logits)``: (batch, labels) and (batch, tokens, tags).
    """

    def __init__(self, model: Any, head: torch.nn.Linear | None = None) -> None:
        super().__init__()
        self.model = model
        self.span_head = head if head is not None else torch.nn.Linear(model.config.hidden_size, len(TAGS))
        self.dropout = torch.nn.Dropout(getattr(model.config, "hidden_dropout_prob", 0.1))

    # The Trainer and stance.trainer read these from the model they are given.
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def base_model(self) -> Any:
        return self.model.base_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                span_tags: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # labels and span_tags are named so the Trainer keeps those columns; the loss is stance.trainer's.
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **extra)
        return out.logits, self.span_head(self.dropout(out.hidden_states[-1]))


class PadSpanTags:
    """A collator that pads ``span_tags`` (ignored past each row's tokens) beside what ``pad`` pads."""

    def __init__(self, pad: Any) -> None:
        self.pad = pad  # e.g. DataCollatorWithPadding, for the token ids, mask and label

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        tags = [f["span_tags"] for f in features]
        batch = self.pad([{k: v for k, v in f.items() if k != "span_tags"} for f in features])
        width = batch["input_ids"].shape[1]
        left = getattr(getattr(self.pad, "tokenizer", None), "padding_side", "right") == "left"
        batch["span_tags"] = torch.tensor([[-100] * (width - len(t)) + t if left else t + [-100] * (width - len(t))
                                           for t in tags], dtype=torch.long)
        return batch


def span_loss(span_logits: torch.Tensor, span_tags: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over tagged tokens; 0 (still in the graph) for a batch with none."""
    flat = span_logits.float().reshape(-1, span_logits.shape[-1])
    tags = span_tags.reshape(-1)
    total = torch.nn.functional.cross_entropy(flat, tags, ignore_index=-100, reduction="sum")
    # A batch of unannotated rows gives 0, not NaN, and keeps the head in the graph (DDP expects every parameter).
    return total / (tags != -100).sum().clamp(min=1)


def save_span_head(head: torch.nn.Linear, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu().contiguous()},
              str(Path(path) / HEAD_WEIGHTS), metadata={"format": "pt"})
    write_json(Path(path) / HEAD_CONFIG, {"tags": list(TAGS), "hidden_size": int(head.in_features)})


def load_span_head(path: Path, hidden_size: int) -> torch.nn.Linear:
    """The head saved in ``path`` (its span_head.json already checked by ``modeldir.read_span_config``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(path) / HEAD_WEIGHTS
    try:
        state = load_file(str(file))
    except (OSError, SafetensorError) as e:
        raise StanceError(f"{file}: not a valid safetensors file: {reason(e)}") from None
    want = {"weight": (len(TAGS), hidden_size), "bias": (len(TAGS),)}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != want:
        raise StanceError(f"{file}: expected tensors {want} for {len(TAGS)} tags on a {hidden_size}-wide encoder, "
                          f"got {got}")
    head = torch.nn.Linear(hidden_size, len(TAGS))
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head
