"""PyTorch checkpoints written without torch, laid out the way ``torch.save`` writes them (for tests).

The pickles name the same globals torch's do (``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``,
``collections.OrderedDict``, protocol 2) and refer to storages by persistent id: ``('storage', type, key,
location, numel)`` in the zip format (PyTorch >= 1.6), the same plus a view slot in the legacy format.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
LEGACY_SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage"}


class PickledName:
    """A global as a pickle names it (``GLOBAL module name``), standing in for a torch object that is not installed."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise TypeError(f"{self.module}.{self.name} is only a name written into a pickle")


REBUILD_TENSOR = PickledName("torch._utils", "_rebuild_tensor_v2")


@dataclass(eq=False)
class Storage:
    """A flat typed buffer [numel], saved once however many tensors view it."""

    key: str
    data: np.ndarray


@dataclass(eq=False)
class Tensor:
    """A strided view (element offset, shape, element strides) into a storage, pickled as torch pickles tensors."""

    storage: Storage
    offset: int
    shape: tuple
    stride: tuple

    def __reduce_ex__(self, protocol):
        return REBUILD_TENSOR, (self.storage, self.offset, self.shape, self.stride, False, OrderedDict())


def contiguous_tensors(arrays: dict[str, np.ndarray]) -> OrderedDict:
    """{name: array} -> {name: Tensor}, each in its own C-contiguous storage (keys "0", "1", ...)."""
    tensors = OrderedDict()
    for index, (name, array) in enumerate(arrays.items()):
        array = np.array(array, order="C")
        stride = tuple(s // array.itemsize for s in array.strides)
        tensors[name] = Tensor(Storage(str(index), array.reshape(-1)), 0, array.shape, stride)
    return tensors


class TorchStylePickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``PickledName``s as GLOBAL opcodes and storages as persistent ids."""

    def __init__(self, file, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages: dict[str, Storage] = {}

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        self.storages[obj.key] = obj
        pid = ("storage", PickledName("torch", STORAGE_TYPES[obj.data.dtype]), obj.key, "cpu", obj.data.size)
        return pid + (None,) if self.legacy else pid

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, PickledName):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def pickle_state(state, legacy: bool = False) -> tuple[bytes, dict[str, Storage]]:
    """The state pickle (data.pkl) and the storages it refers to."""
    buffer = io.BytesIO()
    pickler = TorchStylePickler(buffer, legacy)
    pickler.dump(state)
    return buffer.getvalue(), pickler.storages


def write_zip_checkpoint(path, state, prefix: str = "archive", data_pkl: bytes | None = None) -> None:
    """``torch.save`` zip format: <prefix>/data.pkl, <prefix>/byteorder, <prefix>/data/<key>, <prefix>/version."""
    pickled, storages = pickle_state(state)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", pickled if data_pkl is None else data_pkl)
        archive.writestr(f"{prefix}/.format_version", "1")
        archive.writestr(f"{prefix}/.storage_alignment", "64")
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, storage in storages.items():
            archive.writestr(f"{prefix}/data/{key}", storage.data.tobytes())
        archive.writestr(f"{prefix}/version", "3\n")
        archive.writestr(f"{prefix}/.data/serialization_id", "1234567890")


def write_legacy_checkpoint(path, state, replace: dict[str, bytes] | None = None) -> None:
    """``torch.save(_use_new_zipfile_serialization=False)``: magic, protocol, sys_info, state, keys, raw storages.

    ``replace`` swaps one of the five pickles ("magic", "protocol", "sys_info", "state", "keys") for given bytes.
    """
    replace = replace or {}
    pickled, storages = pickle_state(state, legacy=True)
    keys = sorted(storages)
    parts = {"magic": pickle.dumps(LEGACY_MAGIC, protocol=2),
             "protocol": pickle.dumps(LEGACY_PROTOCOL_VERSION, protocol=2),
             "sys_info": pickle.dumps(LEGACY_SYS_INFO, protocol=2), "state": pickled,
             "keys": pickle.dumps(keys, protocol=2)}
    with open(path, "wb") as handle:
        handle.writelines(replace.get(part, data) for part, data in parts.items())
        for key in keys:
            data = storages[key].data
            handle.write(int(data.size).to_bytes(8, "little", signed=True) + data.tobytes())
