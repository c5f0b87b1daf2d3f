#!/usr/bin/env python3
"""Daft 0.7.26 peers of W8 (image classification) and W9 (video face detection),
the steps Daft's own benchmarks run (benchmarking/ai/{image_classification,
video_object_detection}) on the data benches/data/gen_vision.py makes, with the
same networks and weights regatta uses, run by PyTorch. Prints one JSON line last,
like regatta-bench.

  daft_vision.py --workload classify --data DIR --efficientnet MODEL_DIR
  daft_vision.py --workload video --data DIR

W8: url.download() -> decode_image (RGB) -> a batch UDF (32 images): Pillow
resize of the shorter side to 256 (bilinear), centre crop 224, (x - 127) / 128,
EfficientNet-Lite0 in PyTorch built from regatta's model.safetensors -> top-1
label and probability -> Parquet.
W9: frames decoded by PyAV at the videos' own 320x240 in a Daft UDF (one row per
video, exploded) -> MTCNN from the
facenet-pytorch package (the weights regatta converts) per frame -> explode the
boxes -> crop -> PNG -> Parquet. facenet-pytorch imports torchvision for one
function (batched_nms); no torchvision wheel here matches this torch, so this
script supplies that function in plain PyTorch. Daft's own read_video_frames
(--frames daft) deadlocks here over six videos: a Python thread blocks in
PyFileReference.exists() on Daft's IO runtime while holding the GIL, and that
runtime's thread waits for the GIL (seen with gdb on 2026-12-01); it finishes one
video but not six.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
import types

import daft
from tree_rss import print_daft_record
from daft import DataType, col
import daft.functions as F

STRIDE_TWO = {1, 3, 5, 11}


def lite0(weights):
    import torch
    import torch.nn.functional as nnf
    from safetensors.torch import load_file

    W = load_file(weights)

    def pad_same(x, k, s):
        def amount(n):
            o = -(-n // s)
            t = max((o - 1) * s + k - n, 0)
            return t // 2, t - t // 2

        (t, b), (l, r) = amount(x.shape[-2]), amount(x.shape[-1])
        return nnf.pad(x, (l, r, t, b))

    def bn(x, p):
        return nnf.batch_norm(x, W[p + ".running_mean"], W[p + ".running_var"], W[p + ".weight"], W[p + ".bias"], False, 0.0, 1e-3)

    def conv(x, w, s=1, groups=1):
        return nnf.conv2d(pad_same(x, w.shape[-1], s), w, stride=s, groups=groups)

    def forward(x):
        x = nnf.relu6(bn(conv(x, W["_conv_stem.weight"], 2), "_bn0"))
        b = 0
        while f"_blocks.{b}._depthwise_conv.weight" in W:
            p, inp = f"_blocks.{b}.", x
            if p + "_expand_conv.weight" in W:
                x = nnf.relu6(bn(conv(x, W[p + "_expand_conv.weight"]), p + "_bn0"))
            dw = W[p + "_depthwise_conv.weight"]
            x = nnf.relu6(bn(conv(x, dw, 2 if b in STRIDE_TWO else 1, groups=dw.shape[0]), p + "_bn1"))
            x = bn(conv(x, W[p + "_project_conv.weight"]), p + "_bn2")
            if x.shape == inp.shape:
                x = x + inp
            b += 1
        x = nnf.relu6(bn(conv(x, W["_conv_head.weight"]), "_bn1"))
        return nnf.linear(x.mean(dim=(2, 3)), W["_fc.weight"], W["_fc.bias"])

    return forward


def classify(args):
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    labels = open(os.path.join(args.efficientnet, "labels.txt"), encoding="utf-8").read().splitlines()
    top1 = DataType.struct({"label": DataType.string(), "score": DataType.float32()})

    @daft.udf(return_dtype=top1, batch_size=32, concurrency=1)
    class Classify:
        def __init__(self):
            self.net = lite0(os.path.join(args.efficientnet, "model.safetensors"))

        def __call__(self, images):
            xs = []
            for a in images.to_pylist():
                im = Image.fromarray(np.asarray(a))
                w, h = im.size
                s = 256 / min(w, h)
                im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
                w, h = im.size
                l, t = (w - 224) // 2, (h - 224) // 2
                im = im.crop((l, t, l + 224, t + 224))
                xs.append((np.asarray(im, np.float32).transpose(2, 0, 1) - 127.0) / 128.0)
            with torch.inference_mode():
                p = torch.softmax(self.net(torch.from_numpy(np.stack(xs))), dim=1)
            best = p.argmax(dim=1)
            return [{"label": labels[i], "score": float(p[r, i])} for r, i in enumerate(best.tolist())]

    src = os.path.join(args.data, "classify", "images.parquet")
    out = tempfile.mkdtemp(prefix="daft_w8_")
    t0 = time.time()
    df = daft.read_parquet(src)
    df = df.with_column("c", Classify(F.decode_image(col("url").download(), mode="RGB")))
    df = df.select("id", "source", col("c")["label"].alias("label"), col("c")["score"].alias("score"))
    df.write_parquet(out)
    secs = time.time() - t0
    rows = len(daft.read_parquet(out).to_pylist())
    shutil.rmtree(out, ignore_errors=True)
    return rows, secs, {}


def torchvision_stand_in():
    """facenet-pytorch's one torchvision import, batched_nms, in plain PyTorch."""
    import torch

    def batched_nms(boxes, scores, idxs, iou_threshold):
        if boxes.numel() == 0:
            return torch.empty((0,), dtype=torch.int64)
        b = boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None]
        x1, y1, x2, y2 = b.unbind(1)
        area = (x2 - x1) * (y2 - y1)
        suppressed = torch.zeros(len(b), dtype=torch.bool)
        keep = []
        for i in scores.argsort(descending=True).tolist():
            if suppressed[i]:
                continue
            keep.append(i)
            inter = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0) * (
                torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)
            ).clamp(min=0)
            suppressed |= inter / (area[i] + area - inter) > iou_threshold
        return torch.tensor(keep, dtype=torch.int64)

    mods = {n: types.ModuleType(n) for n in ["torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops", "torchvision.ops.boxes"]}
    mods["torchvision"].transforms = mods["torchvision.transforms"]
    mods["torchvision.transforms"].functional = mods["torchvision.transforms.functional"]
    mods["torchvision"].ops = mods["torchvision.ops"]
    mods["torchvision.ops"].boxes = mods["torchvision.ops.boxes"]
    mods["torchvision.ops.boxes"].batched_nms = batched_nms
    for n, m in mods.items():
        sys.modules.setdefault(n, m)


def video(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torchvision_stand_in()
    box = DataType.struct({k: DataType.float32() for k in ("x", "y", "w", "h", "score")})

    @daft.udf(return_dtype=DataType.list(box), batch_size=8, concurrency=1)
    class Faces:
        def __init__(self):
            # The UDF may run in a process of its own: the stand-in goes there too.
            torchvision_stand_in()
            torch.set_num_threads(args.threads)
            from facenet_pytorch import MTCNN

            self.mtcnn = MTCNN(keep_all=True, device="cpu")

        def __call__(self, frames):
            out = []
            for a in frames.to_pylist():
                img = as_rgb(a)
                boxes, probs = self.mtcnn.detect(img)
                faces = []
                h, w = img.shape[:2]
                for b, p in zip(boxes if boxes is not None else [], probs if probs is not None else []):
                    x0, y0 = max(0.0, float(b[0])), max(0.0, float(b[1]))
                    x1, y1 = min(float(w), float(b[2])), min(float(h), float(b[3]))
                    if x1 - x0 >= 1 and y1 - y0 >= 1:
                        faces.append({"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0, "score": float(p)})
                out.append(faces)
            return out

    @daft.udf(return_dtype=DataType.binary())
    def crop_png(frames, faces):
        import io
        from PIL import Image

        out = []
        for a, f in zip(frames.to_pylist(), faces.to_pylist()):
            x, y = int(f["x"]), int(f["y"])
            im = Image.fromarray(as_rgb(a)).crop((x, y, x + int(f["w"]), y + int(f["h"])))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            out.append(buf.getvalue())
        return out

    def as_rgb(a):
        # read_video_frames gives an image array; the PyAV UDF raw 240x320 RGB bytes.
        if isinstance(a, (bytes, bytearray)):
            return np.frombuffer(a, dtype=np.uint8).reshape(240, 320, 3)
        return np.asarray(a)

    frame = DataType.struct({"frame_index": DataType.int64(), "data": DataType.binary()})

    @daft.udf(return_dtype=DataType.list(frame))
    def pyav_frames(paths):
        import av

        out = []
        for path in paths.to_pylist():
            rows = []
            with av.open(path) as container:
                for i, f in enumerate(container.decode(video=0)):
                    rgb = f.to_ndarray(format="rgb24", width=320, height=240)
                    rows.append({"frame_index": i, "data": rgb.tobytes()})
            out.append(rows)
        return out

    src = os.path.join(args.data, "video", "videos")
    files = sorted(os.path.join(src, f) for f in os.listdir(src))
    out = tempfile.mkdtemp(prefix="daft_w9_")
    t0 = time.time()
    if args.frames == "daft":
        df = daft.read_video_frames(files, image_height=240, image_width=320)
    else:
        df = daft.from_pydict({"path": files}).into_partitions(len(files))
        df = df.with_column("f", pyav_frames(col("path"))).explode("f")
        df = df.select("path", col("f")["frame_index"].alias("frame_index"), col("f")["data"].alias("data"))
    df = df.with_column("faces", Faces(col("data"))).explode("faces").where(col("faces").not_null())
    df = df.with_column("png", crop_png(col("data"), col("faces")))
    df = df.select("path", "frame_index", col("faces")["score"].alias("score"), "png")
    df.write_parquet(out)
    secs = time.time() - t0
    done = daft.read_parquet(out).select("path", "frame_index").to_pylist()
    shutil.rmtree(out, ignore_errors=True)
    frames = len({(r["path"], r["frame_index"]) for r in done})
    return len(done), secs, {"frames_with_a_face": frames}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True, choices=["classify", "video", "w8", "w9"])
    ap.add_argument("--data", default="/tmp/regatta-bench-data")
    ap.add_argument("--efficientnet", default=os.environ.get("REGATTA_EFFICIENTNET_DIR", "models/efficientnet-lite0"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", choices=["pyav", "daft"], default="pyav",
                    help="W9's frames: PyAV in a Daft UDF (default), or daft.read_video_frames, "
                         "which in Daft 0.7.26 deadlocks over several files (see the module doc)")
    args = ap.parse_args()
    name = {"w8": "classify", "w9": "video"}.get(args.workload, args.workload)
    # The whole process tree's memory: Daft runs class UDFs (the models) in
    # processes of their own, outside this one's ru_maxrss (tree_rss.py).
    print_daft_record(name, classify if name == "classify" else video, args, daft.__version__)


if __name__ == "__main__":
    main()
