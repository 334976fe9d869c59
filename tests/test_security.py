"""Untrusted files are parsed, never run.

Backbone weights: PyTorch checkpoints are unpickled only through a restricted unpickler (torch's tensor-rebuilding
names, nothing else), Keras weights are loaded with ``load_weights`` (a .keras file's code is never read), and a
bad weights file stops ``vidpipe ingest`` before any pipeline starts with one line naming it (exit 2).
"""

from __future__ import annotations

import copyreg
import os
import pathlib
import pickle
import shlex
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from beam_pipelines import efficientnet_lite
from beam_pipelines.features import BackboneConfig, build_backbone
from tests import torch_checkpoints
from tests.conftest import make_clip

# --- Backbone weights files ---------------------------------------------------------------------------------


class WritesMarkerWithPath:
    """Unpickling this calls ``Path(marker).write_text("pwned")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned")


class WritesMarkerWithShell(WritesMarkerWithPath):
    """Unpickling this calls ``os.system("touch marker")``."""

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


class WritesMarkerWithExec(WritesMarkerWithPath):
    """Unpickling this calls ``exec("open(marker, 'w').write('pwned')")``."""

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


PAYLOADS = [WritesMarkerWithPath, WritesMarkerWithShell, WritesMarkerWithExec]
LEGACY_PICKLES = ["magic", "protocol", "sys_info", "state", "keys"]


def small_state() -> OrderedDict:
    return torch_checkpoints.contiguous_tensors({"_bn0.weight": np.ones(4, np.float32)})


def assert_one_line_error(error: pytest.ExceptionInfo, path, reason: str) -> None:
    message = str(error.value)
    assert message.startswith(f"weights file {path}: {reason}"), message
    assert "\n" not in message


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda payload: payload.__name__)
def test_the_payloads_run_code_when_plainly_unpickled(tmp_path, payload):
    """The payloads are live: ``pickle.loads`` (what the reader used to call first) writes the marker."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(payload(marker), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("part", [*LEGACY_PICKLES, "tensor_entry"])
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda payload: payload.__name__)
def test_legacy_checkpoint_with_a_pickle_payload_is_refused_not_run(tmp_path, payload, part):
    marker, path = tmp_path / "marker", tmp_path / "evil.pth"
    if part == "tensor_entry":
        torch_checkpoints.write_legacy_checkpoint(path, OrderedDict(small_state(), evil=payload(marker)))
    else:
        evil = pickle.dumps(payload(marker), protocol=2)
        torch_checkpoints.write_legacy_checkpoint(path, small_state(), replace={part: evil})

    with pytest.raises(ValueError) as error:
        efficientnet_lite.read_torch_state_dict(str(path))
    assert_one_line_error(error, path, "refused global ")
    assert "would run code" in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("inside", [False, True], ids=["whole_data_pkl", "tensor_entry"])
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda payload: payload.__name__)
def test_zip_checkpoint_with_a_pickle_payload_is_refused_not_run(tmp_path, payload, inside):
    marker, path = tmp_path / "marker", tmp_path / "evil.pth"
    if inside:
        torch_checkpoints.write_zip_checkpoint(path, OrderedDict(small_state(), evil=payload(marker)))
    else:
        torch_checkpoints.write_zip_checkpoint(path, small_state(), data_pkl=pickle.dumps(payload(marker), protocol=2))

    with pytest.raises(ValueError) as error:
        efficientnet_lite.read_torch_state_dict(str(path))
    assert_one_line_error(error, path, "refused global ")
    assert not marker.exists()


def test_refused_global_is_named(tmp_path):
    path = tmp_path / "evil.pth"
    torch_checkpoints.write_zip_checkpoint(
        path, small_state(), data_pkl=pickle.dumps(WritesMarkerWithShell(tmp_path / "marker"), protocol=2))
    with pytest.raises(ValueError, match=f"^weights file {path}: refused global posix.system;"):
        efficientnet_lite.read_torch_state_dict(str(path))


def test_legacy_header_pickles_allow_no_global_at_all(tmp_path):
    """Even the names a state dict may use are refused where the format has plain data (magic, sys_info, keys)."""
    path = tmp_path / "odd.pth"
    torch_checkpoints.write_legacy_checkpoint(path, small_state(), replace={"sys_info": pickle.dumps(OrderedDict())})
    with pytest.raises(ValueError, match="refused global collections.OrderedDict"):
        efficientnet_lite.read_torch_state_dict(str(path))


def handcrafted_pickles(marker) -> dict[str, bytes]:
    """Opcode sequences that reach a callable some other way than GLOBAL + REDUCE, or misuse the allowed names."""
    command = f"touch {shlex.quote(str(marker))}".encode()
    return {
        "dotted_name": b"\x80\x02ctorch._utils\n_rebuild_tensor_v2.__globals__\n.",
        "dotted_builtin": b"\x80\x02ccollections\nOrderedDict.__init__.__globals__\n.",
        "stack_global": pickle.dumps(WritesMarkerWithExec(marker), protocol=4),
        "inst": b"(S'" + command + b"'\nios\nsystem\n.",
        "obj": b"\x80\x02(cos\nsystem\nX" + len(command).to_bytes(4, "little") + command + b"o.",
        "reduce_storage_type": b"\x80\x02ctorch\nFloatStorage\n)R.",
        "storage_type_as_tensor_storage":
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(ctorch\nFloatStorage\nK\x00))tR.",
        "malformed_storage_reference":
            b"\x80\x02ccollections\nOrderedDict\n)RX\x01\x00\x00\x00aX\x03\x00\x00\x00abcQs.",
    }


@pytest.mark.parametrize("name", list(handcrafted_pickles("marker")))
def test_handcrafted_opcodes_cannot_reach_other_code(tmp_path, name):
    marker, path = tmp_path / "marker", tmp_path / f"{name}.pth"
    torch_checkpoints.write_zip_checkpoint(path, small_state(), data_pkl=handcrafted_pickles(marker)[name])
    with pytest.raises(ValueError) as error:
        efficientnet_lite.read_torch_state_dict(str(path))
    refused = name in ("dotted_name", "dotted_builtin", "stack_global", "inst", "obj")
    assert_one_line_error(error, path, "refused global " if refused else "not a PyTorch checkpoint (")
    assert not marker.exists()


def test_copyreg_extension_codes_go_through_the_same_check(tmp_path):
    """EXT opcodes name a global by a registered number; the unpickler still has to ask find_class for it."""
    marker, path = tmp_path / "marker", tmp_path / "ext.pth"
    code = 0xF1
    assert code not in copyreg._inverted_registry
    copyreg.add_extension("posix", "system", code)
    try:
        data_pkl = pickle.dumps(WritesMarkerWithShell(marker), protocol=2)
        assert pickle.EXT1 + bytes([code]) in data_pkl
        torch_checkpoints.write_zip_checkpoint(path, small_state(), data_pkl=data_pkl)
        with pytest.raises(ValueError, match="refused global posix.system"):
            efficientnet_lite.read_torch_state_dict(str(path))
    finally:
        copyreg.remove_extension("posix", "system", code)
    assert not marker.exists()


def corrupt_checkpoints(directory: pathlib.Path) -> dict[str, tuple[pathlib.Path, str]]:
    """Broken weights files -> (path, the reason the error gives)."""
    files = {}

    def add(name, data: bytes, reason: str):
        path = directory / f"{name}.pth"
        path.write_bytes(data)
        files[name] = (path, reason)

    packaged = pathlib.Path(efficientnet_lite.packaged_weights_path()).read_bytes()
    zip_path = directory / "good_zip.pth"
    torch_checkpoints.write_zip_checkpoint(zip_path, small_state())
    good_zip = zip_path.read_bytes()
    add("empty", b"", "empty file")
    add("random", np.random.default_rng(6).bytes(4096), "neither a zip archive nor a legacy checkpoint pickle")
    add("text", b"these are not the weights you are looking for\n", "neither a zip archive nor a legacy")
    add("legacy_cut_in_storages", packaged[:1_000_000], "truncated in storage")
    add("legacy_cut_in_state", packaged[:3000], "pickle data was truncated")
    add("zip_cut", good_zip[: len(good_zip) // 2], "damaged zip archive")
    with zipfile.ZipFile(zip_path) as archive:
        without_storage = directory / "zip_without_storage.pth"
        with zipfile.ZipFile(without_storage, "w") as target:
            for name in archive.namelist():
                if name != "archive/data/0":
                    target.writestr(name, archive.read(name))
        files["zip_without_storage"] = (without_storage, "storage 0 is missing")
        short_storage = directory / "zip_short_storage.pth"
        with zipfile.ZipFile(short_storage, "w") as target:
            for name in archive.namelist():
                target.writestr(name, archive.read(name)[:-4] if name == "archive/data/0" else archive.read(name))
        files["zip_short_storage"] = (short_storage, "storage 0 holds 12 bytes, its tensors expect 16")
    past_end = torch_checkpoints.Tensor(torch_checkpoints.Storage("0", np.ones(4, np.float32)), 2, (3,), (1,))
    torch_checkpoints.write_legacy_checkpoint(directory / "view_past_end.pth", OrderedDict(w=past_end))
    files["view_past_end"] = (directory / "view_past_end.pth", "tensor w does not fit in storage 0")
    torch_checkpoints.write_zip_checkpoint(directory / "not_a_dict.pth", [past_end])
    files["not_a_dict"] = (directory / "not_a_dict.pth", "expected a state dict, got list")
    return files


def test_corrupt_checkpoints_give_one_line_naming_the_file_and_the_reason(tmp_path):
    for name, (path, reason) in corrupt_checkpoints(tmp_path).items():
        with pytest.raises(ValueError) as error:
            efficientnet_lite.read_torch_state_dict(str(path))
        assert_one_line_error(error, path, "not a PyTorch checkpoint (")
        assert reason in str(error.value), name
        with pytest.raises(ValueError, match=f"^weights file {path}: not a PyTorch checkpoint"):
            BackboneConfig(name="efficientnet_lite0", weights_path=str(path)).validate_weights()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> tuple[pathlib.Path, list[np.ndarray]]:
    """InceptionV3 weights (.weights.h5) with non-initial values, and the arrays."""
    model = build_backbone(BackboneConfig(input_size=75))
    model.layers[1].set_weights([w + 0.25 for w in model.layers[1].get_weights()])
    path = tmp_path_factory.mktemp("inception") / "inception.weights.h5"
    model.save_weights(path)
    return path, model.get_weights()


def evil_keras_archive(path, marker, weights_h5) -> None:
    """A .keras archive: real InceptionV3 weights, and a config whose Lambda layer writes ``marker`` when deserialized.

    Building the payload model runs the Lambda once; that marker is removed.
    """
    import keras

    function = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), x)[1]")
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(function)(inputs)).save(path.with_suffix(".lambda.keras"))
    marker.unlink()
    with zipfile.ZipFile(path.with_suffix(".lambda.keras")) as source, zipfile.ZipFile(path, "w") as target:
        target.writestr("metadata.json", source.read("metadata.json"))
        target.writestr("config.json", source.read("config.json"))
        target.write(weights_h5, "model.weights.h5")


def test_keras_archive_gives_only_its_weights_never_its_code(tmp_path, inception_weights):
    import keras

    weights_h5, arrays = inception_weights
    marker, path = tmp_path / "marker", tmp_path / "evil.keras"
    evil_keras_archive(path, marker, weights_h5)

    config = BackboneConfig(weights_path=str(path), input_size=75)
    config.validate_weights()
    loaded = build_backbone(config)
    assert not marker.exists()
    for actual, expected in zip(loaded.get_weights(), arrays, strict=True):
        np.testing.assert_array_equal(actual, expected)
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists(), "the archive's Lambda runs code when a whole model is deserialized unsafely"


def test_bad_keras_weights_files_give_one_line_naming_the_file(tmp_path, inception_weights):
    weights_h5, _ = inception_weights
    cases = {
        "empty.weights.h5": (b"", "empty file"),
        "random.weights.h5": (np.random.default_rng(3).bytes(4096), "not an HDF5 file"),
        "random.h5": (b"\x89HDF\r\n", "not an HDF5 file"),
        "notzip.keras": (b"PK but not really", "not a .keras archive"),
        "cut.weights.h5": (weights_h5.read_bytes()[:2_000_000], "does not load into inception_v3 ("),
        "weights.pth": (b"x", "expected a Keras weights file"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as error:
            BackboneConfig(weights_path=str(path)).validate_weights()
        assert_one_line_error(error, path, reason)
    lite = tmp_path / "lite.weights.h5"
    efficientnet_lite.build_model(input_size=32).save_weights(lite)
    with pytest.raises(ValueError) as error:
        BackboneConfig(weights_path=str(lite)).validate_weights()
    assert_one_line_error(error, lite, "does not load into inception_v3 (")
    with pytest.raises(FileNotFoundError, match="missing.h5: not found"):
        BackboneConfig(weights_path=str(tmp_path / "missing.h5")).validate_weights()


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("one_clip")
    make_clip(str(directory / "bars.mp4"), "testsrc", 1, size="64x64")
    return directory


def run_ingest_cli(inputs, output, *options) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "beam_pipelines.ingest", "--input", str(inputs), "--output", str(output),
               *options]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def assert_refused_up_front(result: subprocess.CompletedProcess, weights, output, reason: str) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidpipe: error:")]
    assert result.returncode == 2, result.stderr
    assert errors == [line for line in result.stderr.splitlines() if str(weights) in line]
    assert len(errors) == 1 and errors[0].startswith(f"vidpipe: error: weights file {weights}: {reason}")
    assert "Traceback" not in result.stderr
    assert not output.exists()


@pytest.mark.parametrize("kind", ["legacy_payload", "zip_payload", "random", "legacy_cut_in_storages", "empty"])
def test_ingest_cli_refuses_a_bad_efficientnet_checkpoint_before_any_pipeline(tmp_path, one_clip, kind):
    marker, weights, output = tmp_path / "marker", tmp_path / "evil.pth", tmp_path / "out"
    if kind == "legacy_payload":
        torch_checkpoints.write_legacy_checkpoint(weights, small_state(), replace={
            "magic": pickle.dumps(WritesMarkerWithShell(marker), protocol=2)})
    elif kind == "zip_payload":
        torch_checkpoints.write_zip_checkpoint(weights, OrderedDict(small_state(), evil=WritesMarkerWithPath(marker)))
    else:
        (tmp_path / "corrupt").mkdir()
        weights.write_bytes(corrupt_checkpoints(tmp_path / "corrupt")[kind][0].read_bytes())

    result = run_ingest_cli(one_clip, output, "--backbone", "efficientnet_lite0", "--backbone-weights", str(weights))

    reason = "refused global " if kind.endswith("payload") else "not a PyTorch checkpoint ("
    assert_refused_up_front(result, weights, output, reason)
    assert not marker.exists()
    assert [p.name for p in one_clip.iterdir()] == ["bars.mp4"]


def test_ingest_cli_refuses_a_bad_inception_weights_file_before_any_pipeline(tmp_path, one_clip):
    weights, output = tmp_path / "inception.weights.h5", tmp_path / "out"
    weights.write_bytes(np.random.default_rng(4).bytes(2048))
    result = run_ingest_cli(one_clip, output, "--backbone-weights", str(weights))
    assert_refused_up_front(result, weights, output, "not an HDF5 file")


# --- output injection and path parameters ---
# Trigger-form parameters reach the stages' command lines: beam_options may hold only Beam options that tune
# the runner (never a stage option such as --output, never an option that runs code or reaches another host),
# and path parameters must be absolute, single-line paths of the right kind.


@pytest.mark.parametrize("option, reason", [
    ("--output=/home/user", "--output is a stage option that the DAG sets itself"),
    ("--output", "--output is a stage option"),
    ("--model-dir=/models/champion", "--model-dir is a stage option"),
    ("--model_dir=/models/champion", "--model_dir is a stage option"),
    ("--transform-dir=/tmp/evil", "--transform-dir is a stage option"),
    ("--labels=/tmp/labels.csv", "--labels is a stage option"),
    ("--data=/", "--data is a stage option"),
    ("--backbone-weights=/tmp/evil.pth", "--backbone-weights is a stage option"),
    ("--catalog-url=sqlite:////tmp/x.db", "--catalog-url is a stage option"),
    ("--out=/home/user", "--out is not one of the Beam options a run may set"),
    ("--setup_file=/tmp/setup.py", "--setup_file is not one of the Beam options"),
    ("--requirements_file=/tmp/r.txt", "--requirements_file is not one of the Beam options"),
    ("--extra_package=/tmp/evil.tar.gz", "--extra_package is not one of the Beam options"),
    ("--environment_type=PROCESS", "--environment_type is not one of the Beam options"),
    ("--environment_config={\"command\": \"/bin/sh\"}", "--environment_config is not one of the Beam options"),
    ("--job_endpoint=attacker:8099", "--job_endpoint is not one of the Beam options"),
    ("--flink_master=attacker:8081", "--flink_master is not one of the Beam options"),
    ("--runner=PortableRunner", "'--runner=PortableRunner' needs a value of the form"),
    ("--runner", "'--runner' needs a value"),
    ("DirectRunner", "'DirectRunner' is not --name or --name=value"),
    ("-o=/home/user", "is not --name or --name=value"),
    ("--direct_num_workers=2 --output=/x", "needs a value of the form"),
    ("--temp_location=relative/tmp", "needs a value of the form"),
    ("--temp_location=/tmp/a\n--output=/x", "holds a NUL or line break"),
    ("--save_main_session=yes", "--save_main_session is a flag and takes no value"),
])
def test_beam_options_cannot_inject_stage_options_or_code(option, reason):
    import re

    from vidpipe.apps import orchestration

    with pytest.raises(orchestration.ParameterError, match=re.escape(reason)):
        orchestration.beam_options([option])


def test_beam_options_as_one_string_are_split_then_checked():
    from vidpipe.apps import orchestration

    with pytest.raises(orchestration.ParameterError, match="--output is a stage option"):
        orchestration.beam_options("--direct_num_workers=2 --output=/home/user")
    with pytest.raises(orchestration.ParameterError, match="No closing quotation"):
        orchestration.beam_options("--job_name='unbalanced")


def test_path_parameters_are_absolute_single_line_paths_of_the_right_kind(tmp_path):
    import re

    from vidpipe.apps import orchestration

    weights = tmp_path / "inception.weights.h5"
    weights.write_bytes(b"\x89HDF")
    corpus = tmp_path / "x" / ".." / "corpus"
    assert orchestration.checked_path(str(corpus), "work_root") == tmp_path.resolve() / "corpus"
    assert orchestration.checked_path(str(tmp_path), "corpus_dir", "dir") == tmp_path.resolve()
    assert orchestration.checked_path(str(weights), "backbone_weights", "file") == weights.resolve()
    refused = [
        ("corpus", "corpus_dir", "dir", "not an absolute path"),
        ("", "work_root", None, "not an absolute path"),
        (f"{tmp_path}\0/etc", "work_root", None, "holds a NUL or line break"),
        (f"{tmp_path}\n--output=/etc", "corpus_dir", "dir", "holds a NUL or line break"),
        (str(weights), "corpus_dir", "dir", "not a directory"),
        (str(tmp_path), "backbone_weights", "file", "not a regular file"),
        ("/dev/null", "backbone_weights", "file", "not a regular file"),
    ]
    for value, name, kind, reason in refused:
        with pytest.raises(orchestration.ParameterError, match=f"^{name} .*{re.escape(reason)}"):
            orchestration.checked_path(value, name, kind)
