"""Safe file I/O for the CLI: atomic writes, `-` for stdin/stdout, one-line errors.

A failed or interrupted run must never leave a half-written output nor clobber a good file, so
every output is written to a temporary file in the target directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vatcodec.errors import VatError

STDIO = "-"


def _describe(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def read_input_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole input file; `-` reads stdin.

    Raises:
        VatError: the file is missing, a directory or unreadable.
    """
    if str(path) == STDIO:
        return sys.stdin.buffer.read()
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise VatError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise VatError(f"input is a directory, not a file: {path}") from None
    except PermissionError:
        raise VatError(f"permission denied reading {path}") from None
    except OSError as exc:
        raise VatError(f"cannot read {path}: {_describe(exc)}") from None


def _check_output_dir(path: Path) -> Path:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise VatError(f"cannot write {path}: directory {directory} does not exist")
    if path.is_dir():
        raise VatError(f"cannot write {path}: it is a directory")
    return directory


def _output_mode(target: Path) -> int:
    # mkstemp creates 0600 files: keep the mode of the file being replaced, else the umask default.
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _publish(tmp: Path, path: str | os.PathLike, target: Path | None) -> None:
    """Move a finished temp file into place (or copy it to stdout when target is None)."""
    if not tmp.exists():
        raise VatError(f"writing {path} produced no output")
    try:
        if target is None:
            with tmp.open("rb") as src:
                shutil.copyfileobj(src, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            os.chmod(tmp, _output_mode(target))
            os.replace(tmp, target)
    except OSError as exc:
        raise VatError(f"cannot write {path}: {_describe(exc)}") from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write, renamed to `path` only if the block succeeds.

    For writers that insist on a file name (e.g. mesh exporters that pick the format from
    `suffix`). With `path == "-"` the finished file is copied to stdout instead. On any
    exception (Ctrl-C included) the temporary file is removed and `path` is left untouched.

    Raises:
        VatError: the output location is unusable, or the writer removed its file.
    """
    target = None if str(path) == STDIO else Path(path)
    directory = Path(tempfile.gettempdir()) if target is None else _check_output_dir(target)
    name = "stdout" if target is None else target.name
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=suffix)
    except OSError as exc:
        raise VatError(f"cannot create a file in {directory}: {_describe(exc)}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publish(tmp, path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file + rename); `-` writes to stdout.

    Raises:
        VatError: the directory is missing or not writable, or the disk is full.
    """
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with atomic_output(path) as tmp:
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise VatError(f"cannot write {path}: {_describe(exc)}") from None
