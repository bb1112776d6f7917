"""`stance train` under torchrun: two CPU processes (gloo) train one model, as one process would.

The claim checked: with the same global batch size, two processes of batch 8 take the same
steps on the same sentences as one process of batch 16, and only rank 0 writes.

Why the numbers must agree, and how closely: accelerate shards the seeded random batches of
size 8 by turns (rank 0 gets batches 0, 2, 4..., rank 1 gets 1, 3, 5...), so step k of the
two ranks together sees exactly batch k of size 16 of the single run.  DDP averages the two
ranks' mean gradients, which for two halves of equal size is the mean over all 16.  Dropout
is off (it draws other random masks on two processes), and the tiny data has equal class
counts, so the balanced class weights are all 1 (with unequal counts, DDP's mean of per-rank
weighted means is not the global weighted mean).  What is left is float32 summation order
(gloo's all-reduce, matmuls over 8 rows instead of 16, eval batches split across ranks):
about 1e-7 relative per step, measured at most 6e-5 on the dev loss after 60 Adam steps.
The test allows 1e-3 relative on every logged train and dev loss, 20 times that, while a
run that is not data parallel (each rank alone on all the data: twice the steps) is off by
more than 10% from the third epoch on; and the labels (dev and test macro-F1, accuracy)
must be equal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_config_dict

ROOT = Path(__file__).resolve().parents[1]


def _stance_train(launcher: list[str], config: Path, out: Path, batch_size: int) -> subprocess.CompletedProcess:
    cmd = [*launcher, "-m", "stance.cli", "train", str(config), "--quiet", "--output-dir", str(out),
           "--set", f"train.batch_size={batch_size}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _logged_losses(model_dir: Path) -> list[float]:
    history = json.loads((model_dir / "train_results.json").read_text())["log_history"]
    return [h[k] for h in history for k in ("loss", "eval_loss") if k in h]


@pytest.fixture(scope="module")
def no_dropout_config(tmp_path_factory, tiny_backbone, tiny_data) -> Path:
    work = tmp_path_factory.mktemp("torchrun")
    backbone = work / "backbone"
    shutil.copytree(tiny_backbone, backbone)
    config = json.loads((backbone / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(config))
    path = work / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict(backbone, tiny_data, work / "unused")))
    return path


def test_torchrun_on_two_cpu_processes_trains_the_model_one_process_would_and_only_rank_0_writes(
        no_dropout_config, tmp_path):
    # --standalone: a free port, so runs beside each other (or another session's) do not collide.
    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2"]
    ddp_root, single_root = tmp_path / "ddp", tmp_path / "single"
    proc = _stance_train(torchrun, no_dropout_config, ddp_root / "model", batch_size=8)
    _stance_train([sys.executable], no_dropout_config, single_root / "model", batch_size=16)

    # One summary from rank 0, one line from rank 1; one model directory and nothing beside it
    # (no second copy, no temporary, lock or checkpoint folder left over).
    lines = proc.stdout.splitlines()
    assert [x for x in lines if x.startswith("saved ")] == [next(x for x in lines if x.startswith("saved "))]
    assert f"rank 1: trained; rank 0 evaluates and saves {ddp_root / 'model'}" in lines, proc.stdout
    assert sorted(p.name for p in ddp_root.iterdir()) == ["model"]

    ddp, single = (json.loads((root / "model" / "all_results.json").read_text()) for root in (ddp_root, single_root))
    ddp_losses, single_losses = _logged_losses(ddp_root / "model"), _logged_losses(single_root / "model")
    assert len(ddp_losses) == len(single_losses) == 12  # 6 epochs: one train and one dev loss each
    assert ddp_losses == pytest.approx(single_losses, rel=1e-3)
    for split in ("dev", "test"):
        assert (ddp[split]["macro_f1"], ddp[split]["accuracy"]) == (single[split]["macro_f1"],
                                                                    single[split]["accuracy"])
