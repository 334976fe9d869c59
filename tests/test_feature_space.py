"""Feature-space digests: the same folder or file gives the same digest on the local disk and on a remote
(``scheme://``) file system (TensorFlow's in-memory ``ram://`` stands in for gs:// or s3://)."""

from __future__ import annotations

import hashlib
import uuid

import tensorflow as tf

from vidpipe import feature_space

PCA_FILES = {"mean.npy": b"mean" * 100, "eigen/vals.npy": b"\x00\x01" * 3000, "eigen/vecs.npy": b"v",
             "sub.npy": b""}


def _expected_digest(files: dict[str, bytes]) -> str:
    """The documented definition: sha256 over each file's relative path, NUL, contents, paths in part order."""
    digest = hashlib.sha256()
    for name in sorted(files, key=lambda name: name.split("/")):
        digest.update(name.encode() + b"\0" + files[name])
    return f"sha256:{digest.hexdigest()}"


def test_a_folder_digests_alike_on_the_local_disk_and_a_remote_file_system(tmp_path):
    remote = f"ram://vidpipe-test-{uuid.uuid4().hex}/pca"
    for name, content in PCA_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
        tf.io.gfile.makedirs(f"{remote}/{name}".rpartition("/")[0])
        with tf.io.gfile.GFile(f"{remote}/{name}", "wb") as handle:
            handle.write(content)

    expected = _expected_digest(PCA_FILES)
    assert feature_space.digest_folder(tmp_path) == expected
    assert feature_space.digest_folder(remote) == expected
    assert feature_space.digest_folder(remote + "/") == expected


def test_a_file_digests_alike_on_the_local_disk_and_a_remote_file_system(tmp_path):
    content = bytes(range(256)) * 5000
    local = tmp_path / "weights.pth"
    local.write_bytes(content)
    remote = f"ram://vidpipe-test-{uuid.uuid4().hex}/weights.pth"
    with tf.io.gfile.GFile(remote, "wb") as handle:
        handle.write(content)

    expected = f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert feature_space.digest_file(local) == feature_space.digest_file(str(local)) == expected
    assert feature_space.digest_file(remote) == expected


def test_folder_order_follows_path_parts_not_characters(tmp_path):
    """'a/b' comes before 'a.b' ('a' < 'a.b' as parts, although '/' > '.' as characters)."""
    files = {"a/b": b"1", "a.b": b"2"}
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    in_part_order = hashlib.sha256(b"a/b\x001" + b"a.b\x002").hexdigest()
    assert feature_space.digest_folder(tmp_path) == f"sha256:{in_part_order}"
