"""Writing files so that an interruption never leaves half of one.

Every output of the project (weights, sidecars, result logs, reports, figures) is written to a
temporary file in the target's folder and renamed onto the target, which is atomic on one file
system: a kill at any moment leaves the old file or the new one. The temporary names are hidden
and carry ``.partial-<pid>-`` so that leftovers of a killed process can be found and removed
without touching the files another running process is writing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

PARTIAL_MARKER = ".partial-"


def temporary_sibling(path: Path, suffix: str) -> Path:
    """A fresh, unused file name in ``path``'s folder, with the usual permissions."""
    handle, name = tempfile.mkstemp(
        prefix=f".{path.name}{PARTIAL_MARKER}{os.getpid()}-", suffix=suffix, dir=path.parent
    )
    os.close(handle)
    # mkstemp creates the file private (0600); give the final file the usual permissions
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, rename it onto ``path``.

    ``suffix`` (default: ``path``'s own) matters to writers that check it, e.g. Keras wants
    ``.weights.h5`` and matplotlib infers the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path, path.suffix if suffix is None else suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    with replacing(path, ".tmp") as temporary:
        temporary.write_text(text, encoding="utf-8")


def check_writable_folder(folder: str | os.PathLike, what: str) -> None:
    """Raise ``ConfigurationError`` naming ``what`` (e.g. ``--weights-dir``) unless a file can
    be created in ``folder`` (created if missing): checked before any training, so that a
    read-only or missing output folder is found in a second, not after hours of work."""
    from utils.errors import ConfigurationError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary_sibling(folder / "write-check", ".tmp")
        probe.unlink()
    except OSError as error:
        raise ConfigurationError(
            f"{what} {folder}: cannot write there ({error.strerror or error}); choose a folder "
            "you can write to"
        ) from error


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_partial_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left under ``folder`` by processes killed mid-write.

    Only files named by :func:`temporary_sibling` whose writing process is gone are touched
    (another loop process may be writing into the same folder); the finished files they were
    meant to replace are either the old version or absent.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = []
    for path in folder.rglob(f".*{PARTIAL_MARKER}*"):
        writer = path.name.split(PARTIAL_MARKER, 1)[1].split("-", 1)[0]
        if path.is_file() and not (writer.isdigit() and _process_alive(int(writer))):
            path.unlink(missing_ok=True)
            stale.append(path)
    return stale
