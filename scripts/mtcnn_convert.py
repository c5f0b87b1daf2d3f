#!/usr/bin/env python3
"""Converts MTCNN's three networks (facenet-pytorch's pnet.pt, rnet.pt, onet.pt)
into one safetensors file regatta reads.

usage: mtcnn_convert.py DATA_DIR OUT_DIR

DATA_DIR holds the three legacy PyTorch checkpoints from PyPI's facenet-pytorch
wheel (MIT). OUT_DIR/model.safetensors gets every tensor, its name prefixed with
the network (`pnet.conv1.weight`, ...), f32, keys sorted: byte-for-byte
deterministic. Standard library only.
"""

import os
import sys

from torch_legacy import read_checkpoint, write_safetensors


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    data, out = sys.argv[1:]
    tensors = {}
    for net in ("pnet", "rnet", "onet"):
        for name, t in read_checkpoint(os.path.join(data, f"{net}.pt")).items():
            tensors[f"{net}.{name}"] = t
    os.makedirs(out, exist_ok=True)
    write_safetensors(tensors, os.path.join(out, "model.safetensors"))
    print(f"mtcnn_convert: {len(tensors)} tensors written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
