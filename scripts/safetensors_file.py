"""Writes a safetensors file (the header's JSON, then the tensors' bytes), as
the model converters need it; no dependency beyond the standard library."""
import json
import os
import struct


def write_safetensors(path, tensors):
    """`tensors`: name -> (dtype, shape, raw little-endian bytes). Written to
    `path + ".part"` first, then renamed, so a reader never sees half a file."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(path + ".part", path)
