"""Stage outputs that are safe to re-run: a stage owns what it writes, builds it aside and swaps it in whole.

Every stage that writes a folder or a file goes through this module:

- ``staged_dir(final, stage)`` yields an empty temporary sibling folder ``.<name>.tmp-<id>``. When the block
  ends without an error the folder is marked as the stage's (``.vidpipe-output.json``) and swapped into
  place, so a reader sees the old output or the new one, never a mix. On an error, or after a crash, the
  old output stays as it was and the next run removes the leftovers.
- ``staged_file(final, stage)`` does the same for one file (``os.replace``).
- Both hold an exclusive lock (``.<name>.lock`` beside the output, ``flock``: released by the kernel when
  the process dies), so a second run into the same output is refused, naming the run that holds it.
- A folder that exists, is not empty, and was not written by the same stage is refused: a stage never
  deletes files it does not own.

Standard library only (the DAG files import it at parse time). Local filesystems only: a remote output
(``gs://``, ``s3://``) is written in place by the stage, without the swap or the lock.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

MARKER_FILE = ".vidpipe-output.json"
_TMP_INFIX = ".tmp-"
_OLD_INFIX = ".old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputError(ValueError):
    """An output that this stage may not write (not its own, or locked by another run)."""


def is_remote(path: str) -> bool:
    return "://" in str(path)


def _owner_record(stage: str, run: str | None) -> dict:
    return {"stage": stage, "run": run, "pid": os.getpid(), "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds")}


def read_marker(folder: Path) -> dict | None:
    """The owner record of a folder written by a stage, or None."""
    try:
        return json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def check_owned(final: Path, stage: str, legacy_names: Iterable[str] = ()) -> None:
    """Raises OutputError unless ``final`` is absent, an empty folder, or a folder this stage wrote.

    ``legacy_names``: entries that only this stage writes; a folder holding nothing else counts as its own
    (outputs written before the marker existed).
    """
    if not final.exists() and not final.is_symlink():
        return
    if not final.is_dir() or final.is_symlink():
        raise OutputError(f"output {final}: exists and is not a folder; choose another output path")
    marker = read_marker(final)
    if marker is not None:
        if marker.get("stage") != stage:
            raise OutputError(f"output {final}: written by the {marker.get('stage')!r} stage, not by {stage!r}; "
                              f"choose another output folder")
        return
    entries = {entry.name for entry in final.iterdir()}
    foreign = sorted(entries - set(legacy_names))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"output {final}: holds files that vidpipe did not write ({shown}); "
                          f"choose an empty or new folder")


@contextmanager
def output_lock(final: Path, stage: str, run: str | None = None) -> Iterator[None]:
    """Exclusive lock on ``final`` for the duration of the block; OutputError naming the holder if taken."""
    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f".{final.name}.lock"
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise OutputError(f"output {final}: another run is writing it ({holder}); "
                              f"wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        owner = _owner_record(stage, run)
        handle.write(f"{owner['stage']} run {owner['run'] or '-'}, pid {owner['pid']} on {owner['host']} "
                     f"since {owner['started_at']}")
        handle.flush()
        yield
    finally:
        handle.close()


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swaps two paths with renameat2(RENAME_EXCHANGE); False where the system lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), f"{first} <-> {second}")


def _swap_in(staged: Path, final: Path) -> None:
    """Moves ``staged`` to ``final``, replacing what was there; the old content is removed afterwards."""
    if not final.exists():
        os.rename(staged, final)
        return
    if _exchange(staged, final):
        shutil.rmtree(staged)
        return
    old = final.parent / f".{final.name}{_OLD_INFIX}{uuid.uuid4().hex[:12]}"
    os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old)


def _recover(final: Path) -> None:
    """Under the lock: restores an output moved aside by a crashed swap and removes stale temp folders."""
    siblings = sorted(final.parent.glob(f".{final.name}.*"))
    olds = [path for path in siblings if _OLD_INFIX in path.name[len(final.name) + 1:]]
    if olds and not final.exists():
        os.rename(olds.pop(), final)
    for path in siblings:
        suffix = path.name[len(final.name) + 1:]
        if path.exists() and (suffix.startswith(_TMP_INFIX) or suffix.startswith(_OLD_INFIX)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@contextmanager
def staged_dir(final: str | os.PathLike, stage: str, *, run: str | None = None,
               legacy_names: Iterable[str] = ()) -> Iterator[Path]:
    """Yields an empty temporary folder that replaces ``final`` whole when the block succeeds.

    Raises OutputError before anything is written when ``final`` is not this stage's to replace or another
    run holds it.
    """
    final = Path(final).expanduser().absolute()
    legacy_names = frozenset(legacy_names)
    check_owned(final, stage, legacy_names)  # refuses a foreign output before the lock file is created beside it
    with output_lock(final, stage, run):
        _recover(final)
        check_owned(final, stage, legacy_names)
        staged = final.parent / f".{final.name}{_TMP_INFIX}{uuid.uuid4().hex[:12]}"
        staged.mkdir()
        try:
            yield staged
            (staged / MARKER_FILE).write_text(json.dumps(_owner_record(stage, run), sort_keys=True))
            _swap_in(staged, final)
        finally:
            if staged.exists():
                shutil.rmtree(staged)


@contextmanager
def staged_file(final: str | os.PathLike, stage: str, *, run: str | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``final``; it replaces ``final`` (os.replace) when the block succeeds."""
    final = Path(final).expanduser().absolute()
    if final.is_dir():
        raise OutputError(f"output {final}: is a folder, expected a file path")
    with output_lock(final, stage, run):
        _recover(final)
        staged = final.parent / f".{final.name}{_TMP_INFIX}{uuid.uuid4().hex[:12]}"
        try:
            yield staged
            if not staged.exists():
                raise OutputError(f"output {final}: the {stage} stage wrote nothing")
            os.replace(staged, final)
        finally:
            if staged.exists():
                staged.unlink()


def write_text_atomically(final: str | os.PathLike, text: str, stage: str) -> None:
    """Writes a small text file (a report, a manifest) through staged_file."""
    with staged_file(final, stage) as staged:
        staged.write_text(text)
