"""Atomic file and directory writes, output-directory guards and locks.

A failed or interrupted run must never leave a half-written output or clobber
the previous one, so everything is written to a temporary sibling, flushed to
disk (``fsync``, so a power cut cannot publish an empty file) and renamed into
place (rename is atomic within one filesystem).  A model directory is swapped
in with one atomic exchange where Linux offers it, so no instant exists at
which the path holds nothing.  Outputs get the user's umask like any other
file (``tempfile`` alone would leave them 0600/0700, unreadable to a server
running as another account).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stance.errors import StanceError

# OS errors that mean "the user's disk or permissions", reported as one line rather than a traceback.
USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG,
                  errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG}


def os_error(path: str | Path, err: OSError) -> StanceError | OSError:
    """A one-line StanceError for disk-full/permission errors; anything else stays a bug."""
    if err.errno in USER_OS_ERRORS:
        return StanceError(f"{path}: cannot write: {err.strerror or err}")
    return err


def current_umask() -> int:
    # os.umask can only be read by setting it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL at a named point when ``STANCE_FAULT_AT`` names it.

    Used by ``scripts/fault_drill.py`` to prove that an abrupt death at the worst
    moment (mid-save, mid-swap) loses nothing; a no-op otherwise.
    """
    if os.environ.get("STANCE_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def world_size() -> int:
    """How many processes a ``torchrun`` or ``accelerate launch`` started (1 outside one)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def is_rank_zero() -> bool:
    """True outside a launcher, and in its rank 0: the one process that writes outputs."""
    return os.environ.get("RANK", "0") == "0"


def fsync_dir(path: str | Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    with contextlib.suppress(OSError):  # some filesystems refuse to open directories
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below ``root`` (bottom-up), then ``root`` itself."""
    for dirpath, _, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; fsync and rename it onto ``path`` only on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise os_error(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        kwargs = {"encoding": encoding, "newline": ""} if "b" not in mode else {}
        with open(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise os_error(path, e) from None
        raise


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported.

    ``STANCE_NO_RENAME_EXCHANGE=1`` forces the two-rename fallback (for the fault drill).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # filesystem cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, path: Path) -> None:
    """Put the finished ``tmp`` at ``path``; the old ``path`` (if any) is deleted afterwards."""
    if not path.exists():
        os.replace(tmp, path)
        return
    fault_point("dir-swap")
    if not os.environ.get("STANCE_NO_RENAME_EXCHANGE") and _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old directory
        return
    # Fallback: two renames.  The old directory waits under a unique name that
    # clean_stale_siblings recognises, so a death between them is recoverable.
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / path.name)
    fault_point("dir-swap-half")  # the path holds nothing until clean_stale_siblings puts the old one back
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it in whole on success.

    An existing directory at ``path`` is replaced only once the new one is
    complete and on disk; on failure the temporary directory is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise os_error(path, e) from None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        yield tmp
        fsync_tree(tmp)
        _swap_in(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise os_error(path, e) from None
        raise


def clean_stale_siblings(path: str | Path) -> None:
    """Remove temporaries a killed run left beside ``path`` (``output_lock`` calls it once it holds the lock).

    A run killed between the two renames of the fallback swap leaves the old
    directory in ``.NAME.*.old/NAME``: put it back first if ``path`` is missing.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    # tempfile's 8 random characters: ".model.x.1a2b3c4d.tmp" belongs to "model.x", not to "model".
    rand = "?" * 8
    for old in sorted(path.parent.glob(f".{path.name}.{rand}.old")):
        if not path.exists() and (old / path.name).exists():
            os.replace(old / path.name, path)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in path.parent.glob(f".{path.name}.{rand}.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


# -- guarding what may be replaced ---------------------------------------------------------

# How to recognise each kind of output directory: all files of any one set must be there.
# Only a directory recognised as the command's own earlier output may be replaced.
OUTPUT_KINDS: dict[str, tuple[tuple[tuple[str, ...], ...], str]] = {
    "model": ((("config.json", "stance_config.yaml"),), "a stance model directory"),
    "report": ((("metrics.json",), ("summary.json",)), "a stance evaluate report"),
    # model.onnx alone: an export killed before it wrote backends.json.
    "onnx": ((("backends.json",), ("model.onnx",)), "a stance ONNX export"),
    "network": ((("edges.csv", "actors.csv"),), "a stance network"),
    # Written last by `stance predict --engine ray`, after every part file.
    "predictions": ((("_SUCCESS",),), "a stance predict --engine ray output"),
}


def is_kind(path: Path, kind: str) -> bool:
    alternatives, _ = OUTPUT_KINDS[kind]
    return any(all((path / f).is_file() for f in files) for files in alternatives)


def check_output_dir(path: str | Path, kinds: tuple[str, ...], overwrite: bool, option: str) -> None:
    """Refuse to write a directory over anything but an empty folder or an earlier output of ``kinds``.

    Replacing an earlier output also needs ``overwrite``; nothing else is ever replaced, so a
    mistyped ``--output-dir data`` cannot delete the user's data.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise StanceError(f"{option} {path}: exists and is not a directory; choose another path")
    if not any(path.iterdir()):
        return
    names = " or ".join(sorted({OUTPUT_KINDS[k][1] for k in kinds}))
    if not any(is_kind(path, k) for k in kinds):
        raise StanceError(f"{option} {path}: not empty and not {names}; refusing to replace it "
                          "(choose a new or empty directory)")
    if not overwrite:
        raise StanceError(f"{option} {path}: already holds {names}; pass --overwrite to replace it")


# -- one writer per output -----------------------------------------------------------------


def _lock_owner(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def output_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on an output path (``.NAME.lock`` beside it) for the block.

    The lock is an ``flock`` on a file holding our pid: the kernel drops it when
    the process dies, however it dies, so a lock left by a killed run is stale
    by construction and the next run takes it over, and with it cleans up what
    that run left beside the path (``clean_stale_siblings``).  Under ``torchrun``
    only rank 0 writes, so only rank 0 locks.
    """
    import fcntl

    path = Path(path)
    if not is_rank_zero():
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StanceError(f"{path}: another stance run ({_lock_owner(lock)}) is writing here; "
                                  "wait for it to finish") from None
            # The previous holder may have unlinked the file between our open and flock.
            if os.path.exists(lock) and os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
    except OSError as e:
        raise os_error(lock, e) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        clean_stale_siblings(path)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
