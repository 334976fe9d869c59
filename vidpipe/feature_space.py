"""The feature space a set of records lives in, and the check that two sides share it.

Records are only comparable when they come from the same backbone (name, weights, frame size), the same
frame sampling and audio front end, and the same PCA. Ingest writes ``feature_space.json`` beside its
records; training copies it into the model's export; prediction and evaluation refuse a model whose
space differs from the records'.

    {"id": "3f9c0a...", "backbone": "efficientnet_lite0", "weights": "sha256:...", "frame_size": 224,
     "fps": 1.0, "max_frames": 300, "audio": "logmel64-meanstd", "pca": "sha256:..."}

Standard library only; ``tf.io.gfile`` is imported lazily for remote (``scheme://``) paths.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vidpipe.layout import FEATURE_SPACE_FILE
from vidpipe.outputs import is_remote

ID_LENGTH = 16
_IDENTITY_FIELDS = ("backbone", "weights", "frame_size", "fps", "max_frames", "audio", "pca")


def _files_below(folder: str) -> list[tuple[tuple[str, ...], str]]:
    """(relative path as parts, full path) of every file below ``folder``, in order of the parts."""
    if is_remote(folder):
        import tensorflow as tf

        paths = [os.path.join(root, name) for root, _, names in tf.io.gfile.walk(folder) for name in names]
        return sorted((tuple(os.path.relpath(path, folder).split(os.sep)), path) for path in paths)
    root = Path(folder)
    return sorted((path.relative_to(root).parts, str(path)) for path in root.rglob("*") if path.is_file())


def _update(digest, path: str) -> None:
    with _open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def digest_folder(folder: str | os.PathLike) -> str:
    """sha256 over the relative paths and contents of every file below ``folder`` (local or ``scheme://``)."""
    digest = hashlib.sha256()
    for parts, path in _files_below(os.fspath(folder)):
        digest.update("/".join(parts).encode() + b"\0")
        _update(digest, path)
    return f"sha256:{digest.hexdigest()}"


def digest_file(path: str | os.PathLike) -> str:
    """sha256 of the file at ``path`` (local or ``scheme://``)."""
    digest = hashlib.sha256()
    _update(digest, os.fspath(path))
    return f"sha256:{digest.hexdigest()}"


def describe(**fields: object) -> dict:
    """The space's description with its ``id``: a hash of the identity fields (all of them required)."""
    missing = [name for name in _IDENTITY_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"feature space description lacks {missing}")
    identity = json.dumps({name: fields[name] for name in _IDENTITY_FIELDS}, sort_keys=True, default=str)
    return {"id": hashlib.sha256(identity.encode()).hexdigest()[:ID_LENGTH], **fields}


def _open(path: str, mode: str):
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)


def write(folder: str, space: dict) -> None:
    """Writes ``<folder>/feature_space.json`` (the folder is a stage's staging folder)."""
    with _open(os.path.join(folder, FEATURE_SPACE_FILE), "w") as handle:
        handle.write(json.dumps(space, indent=2, sort_keys=True))


def read(folder: str) -> dict | None:
    """The space recorded in ``<folder>/feature_space.json``, or None when the folder has none."""
    path = os.path.join(folder, FEATURE_SPACE_FILE)
    try:
        with _open(path, "r") as handle:
            space = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise ValueError(f"{path}: not a feature space description ({error})") from None
    if not isinstance(space, dict) or "id" not in space:
        raise ValueError(f"{path}: not a feature space description (no 'id')")
    return space


def check_same(expected: dict | None, actual: dict | None, expected_name: str, actual_name: str) -> None:
    """ValueError naming both spaces when both are known and differ; an unknown side passes."""
    if expected is None or actual is None or expected["id"] == actual["id"]:
        return
    differing = [name for name in _IDENTITY_FIELDS if expected.get(name) != actual.get(name)]
    raise ValueError(f"feature space mismatch: {expected_name} is in space {expected['id']} but {actual_name} "
                     f"is in space {actual['id']} (they differ in {', '.join(differing) or 'id'})")
