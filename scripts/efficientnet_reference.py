#!/usr/bin/env python3
"""An independent EfficientNet-Lite0 in numpy, to check regatta's against.

usage: efficientnet_reference.py MODEL_DIR CROP.png...

Reads MODEL_DIR/model.safetensors (as scripts/efficientnet_convert.py writes it)
with numpy alone, runs each 224x224 RGB crop through the network written out
plainly (full convolutions as sums over kernel taps, batch norm applied as such,
not folded) and prints one JSON object: {"CROP.png": [1000 logits], ...}.
Input pixels are normalised as (x - 127) / 128.
"""

import json
import struct
import sys

import numpy as np
from PIL import Image

BN_EPS = 1e-3
STRIDE_TWO = {1, 3, 5, 11}


def load(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[start:end], "<f4").reshape(meta["shape"])
    return out


def pad_same(x, k, stride):
    def amount(n):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        return total // 2, total - total // 2

    return np.pad(x, ((0, 0), amount(x.shape[1]), amount(x.shape[2])))


def taps(x, k, stride):
    """Yields (i, j, view) for each kernel tap over the padded input."""
    x = pad_same(x, k, stride)
    oh = (x.shape[1] - k) // stride + 1
    ow = (x.shape[2] - k) // stride + 1
    for i in range(k):
        for j in range(k):
            yield i, j, x[:, i : i + stride * oh : stride, j : j + stride * ow : stride]


def conv(x, w, stride=1):
    k = w.shape[-1]
    return sum(np.einsum("oc,chw->ohw", w[:, :, i, j], v) for i, j, v in taps(x, k, stride))


def depthwise(x, w, stride):
    k = w.shape[-1]
    return sum(w[:, 0, i, j][:, None, None] * v for i, j, v in taps(x, k, stride))


def forward(W, x):
    def bn(x, p):
        scale = W[p + ".weight"] / np.sqrt(W[p + ".running_var"] + BN_EPS)
        return (x - W[p + ".running_mean"][:, None, None]) * scale[:, None, None] + W[
            p + ".bias"
        ][:, None, None]

    relu6 = lambda v: np.clip(v, 0, 6)
    x = relu6(bn(conv(x, W["_conv_stem.weight"], 2), "_bn0"))
    b = 0
    while f"_blocks.{b}._depthwise_conv.weight" in W:
        p = f"_blocks.{b}."
        inp = x
        if p + "_expand_conv.weight" in W:
            x = relu6(bn(conv(x, W[p + "_expand_conv.weight"]), p + "_bn0"))
        stride = 2 if b in STRIDE_TWO else 1
        x = relu6(bn(depthwise(x, W[p + "_depthwise_conv.weight"], stride), p + "_bn1"))
        x = bn(conv(x, W[p + "_project_conv.weight"]), p + "_bn2")
        if x.shape == inp.shape:
            x = x + inp
        b += 1
    x = relu6(bn(conv(x, W["_conv_head.weight"]), "_bn1"))
    return W["_fc.weight"] @ x.mean(axis=(1, 2)) + W["_fc.bias"]


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    W = {k: v.astype(np.float64) for k, v in load(sys.argv[1] + "/model.safetensors").items()}
    out = {}
    for path in sys.argv[2:]:
        img = np.asarray(Image.open(path).convert("RGB"), np.float64)
        if img.shape != (224, 224, 3):
            raise SystemExit(f"{path}: {img.shape}, expected a 224x224 RGB crop")
        x = (img.transpose(2, 0, 1) - 127.0) / 128.0
        out[path] = [float(v) for v in forward(W, x)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
