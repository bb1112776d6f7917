"""Training checkpoints that belong to one run, and resuming only that run.

``<output_dir>.checkpoints/`` holds the Trainer's epoch checkpoints and
``stance_run.json``: a fingerprint of what the run trains (the resolved config,
and the size and mtime of every data file).  ``--resume`` continues only when
the fingerprint matches, since a checkpoint of another config (labels in
another order, say) would silently give a wrong model.  A fresh run clears the
folder, so checkpoint averaging can never mix two runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from stance.config import Config
from stance.errors import StanceError
from stance.io import is_rank_zero, write_json

RUN_FILE = "stance_run.json"
# A checkpoint is complete once the Trainer has written its state, which it does last.
COMPLETE_MARKER = "trainer_state.json"


def checkpoint_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


def _data_files(cfg: Config) -> list[str]:
    train = [cfg.data.train] if isinstance(cfg.data.train, str) else list(cfg.data.train)
    return [p for p in (*train, cfg.data.dev, cfg.data.test, *cfg.data.extra_test) if p]


def run_fingerprint(cfg: Config) -> dict[str, Any]:
    """Flat ``key -> value`` of everything that decides what the checkpoints mean."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix.rstrip(".")] = node

    settings = cfg.to_dict()
    settings.pop("output_dir")  # where the model lands does not change what is trained
    if not cfg.model.spans:
        # Without spans these change nothing, and a run started before they existed must still resume.
        settings["model"].pop("spans")
        settings["train"].pop("span_loss_weight")
    walk("", settings)
    for path in _data_files(cfg):
        p = Path(path)
        st = p.stat() if p.is_file() else None
        flat[f"file {path}"] = [st.st_size, st.st_mtime_ns] if st else None
    return flat


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def _differing_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def complete_checkpoints(ckpt_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first (one killed mid-save is left out)."""
    found = [p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
             and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _verify(ckpt_dir: Path, fingerprint: dict[str, Any]) -> None:
    run_file = ckpt_dir / RUN_FILE
    try:
        saved = json.loads(run_file.read_text(encoding="utf-8"))
        old = saved["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StanceError(f"{run_file}: missing or unreadable, so these checkpoints cannot be matched to "
                          "this config; train again without --resume") from None
    if saved.get("hash") != fingerprint_hash(fingerprint):
        keys = _differing_keys(old, fingerprint)
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise StanceError(f"{ckpt_dir}: checkpoints come from another run (differs in {shown}); "
                          "train again without --resume, or resume with the same config and data")


def prepare(ckpt_dir: Path, cfg: Config, resume: bool) -> str | None:
    """Set up the checkpoints folder for a run; return the checkpoint to resume from (or None).

    Fresh run: clear what an earlier run left and record this run's fingerprint.
    Resume: refuse a fingerprint that differs, and pick the last complete checkpoint.
    """
    fingerprint = run_fingerprint(cfg)
    done = complete_checkpoints(ckpt_dir) if resume else []
    if not is_rank_zero():
        # Under torchrun only rank 0 clears and records; the others only read.
        return str(done[-1]) if done else None
    if resume:
        if not done:
            raise StanceError(f"{ckpt_dir}: no complete checkpoint to resume from")
        _verify(ckpt_dir, fingerprint)
        return str(done[-1])
    if ckpt_dir.exists():
        stray = [p.name for p in ckpt_dir.iterdir()
                 if p.name != RUN_FILE and not p.name.startswith(("checkpoint-", "."))]
        if stray:  # never delete a folder we did not make
            raise StanceError(f"{ckpt_dir}: holds files that are not stance checkpoints ({stray[0]}); "
                              "move it away or choose another --output-dir")
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True)
    write_json(ckpt_dir / RUN_FILE, {"hash": fingerprint_hash(fingerprint), "fingerprint": fingerprint})
    return None
