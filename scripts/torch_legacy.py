"""Reads legacy (non-zip) PyTorch checkpoints without torch or numpy, and writes
safetensors deterministically. Used by the model converters in this directory.

A legacy checkpoint is five pickles in a row: magic number, protocol version,
system info, the state dict (tensors as persistent references to storages), the
storage keys; then each storage's element count and raw little-endian data.
"""

import collections
import pickle
import struct
import sys
from array import array

import safetensors_file


class _TensorRef:
    """A tensor as the pickle describes it: storage key, offset, size, stride."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild(storage, offset, size, stride, *_rest):
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "_rebuild_tensor_v2":
            return _rebuild
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        # Storage classes (torch.FloatStorage, ...) only need to be named.
        return name

    def persistent_load(self, pid):
        # ('storage', storage_class_name, key, location, numel)
        return pid


_ELEMENT_BYTES = {"FloatStorage": 4, "LongStorage": 8}


def _gather(flat, offset, size, stride):
    """The elements of a strided view of `flat`, in row-major order."""
    index = [offset]
    for dim, step in zip(size, stride):
        index = [i + k * step for i in index for k in range(dim)]
    return array("f", [flat[i] for i in index])


def read_checkpoint(path):
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        state = _Unpickler(f).load()
        keys = pickle.load(f)
        kinds = {}
        for t in state.values():
            kinds[t.storage[2]] = t.storage[1]
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            raw = f.read(count * _ELEMENT_BYTES[kinds[key]])
            if kinds[key] == "FloatStorage":
                floats = array("f")
                floats.frombytes(raw)
                if sys.byteorder != "little":
                    floats.byteswap()
                storages[key] = floats
    tensors = {}
    for name, t in state.items():
        if kinds[t.storage[2]] != "FloatStorage":
            continue  # num_batches_tracked counters
        values = _gather(storages[t.storage[2]], t.offset, t.size, t.stride)
        if sys.byteorder != "little":
            values.byteswap()
        tensors[name] = (t.size, values)
    return tensors


def write_safetensors(tensors, path):
    """The tensors `read_checkpoint` returns, as an F32 safetensors file."""
    safetensors_file.write_safetensors(
        path, {name: ("F32", shape, values.tobytes()) for name, (shape, values) in tensors.items()}
    )
