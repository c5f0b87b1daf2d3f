#!/usr/bin/env python3
"""Makes the data of the W8 (image classification) and W9 (video) workloads.

    python benches/data/gen_vision.py --out /tmp/regatta-bench-data [--images 2000] [--videos 6]

W8: IMAGES photographs with known content in DIR/classify/images/, each one of
scikit-image's sample photos (chelsea the cat, coffee, the rocket, the motorcycle,
the cameraman, the astronaut; scripts/fetch_photos.sh fetches them) cut to a
random 70-100 % crop, flipped half the time and re-encoded as JPEG (quality 70-95)
or PNG; DIR/classify/images.parquet lists (id, url, source).
W9: VIDEOS videos of the astronaut portrait in DIR/video/videos/: slow zooms and
pans (so the face moves in a known way), 320x240, 24 fps, 48 frames each
(--frames: more, for the memory check of benches/video_memory.sh); even
ones H.264 MP4, odd ones MPEG-4 AVI (as Hollywood2's files are).

Needs Pillow in this Python, ffmpeg, and the regatta binary (--regatta, default
$CARGO_TARGET_DIR/release/regatta), which writes the Parquet file.
"""
import argparse
import json
import os
import random
import subprocess
import tempfile

from PIL import Image, ImageOps

PHOTOS = ["chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png", "astronaut.png"]


def classify(out, n, photos, regatta, rng):
    d = os.path.join(out, "classify", "images")
    os.makedirs(d, exist_ok=True)
    sources = {p: Image.open(os.path.join(photos, p)).convert("RGB") for p in PHOTOS}
    rows = []
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        img = sources[name]
        w, h = img.size
        f = rng.uniform(0.7, 1.0)
        cw, ch = int(w * f), int(h * f)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        if rng.random() < 0.1:
            path = os.path.join(d, f"img{i}.png")
            img.save(path)
        else:
            path = os.path.join(d, f"img{i}.jpg")
            img.save(path, quality=rng.randint(70, 95))
        rows.append({"id": i, "url": path, "source": name.rsplit(".", 1)[0]})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as jl:
        for r in rows:
            jl.write(json.dumps(r) + "\n")
    dest = os.path.join(out, "classify", "images.parquet")
    subprocess.run(
        [regatta, "sql", "-t", f"m={jl.name}",
         f"COPY (SELECT id, url, source FROM m ORDER BY id) TO '{dest}' STORED AS PARQUET"],
        check=True, stdout=subprocess.DEVNULL,
    )
    os.unlink(jl.name)
    print(f"gen_vision: {n} images in {d}")


def videos(out, n, photos, rng, frames=48):
    d = os.path.join(out, "video", "videos")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(photos, "astronaut.png")
    for v in range(n):
        # Longer videos (--frames) make the same motion, slower.
        speed = rng.uniform(0.003, 0.008) * 48 / frames
        # Zoom towards the face (upper middle), drifting left or right.
        drift = rng.choice(["-", "+"])
        zoom = (
            f"zoompan=z='min(zoom+{speed:.4f},1.6)':"
            f"x='iw/2-(iw/zoom/2){drift}on*{96 / frames:.4f}':y='ih/4-(ih/zoom/4)':d={frames}:s=320x240:fps=24"
        )
        if v % 2 == 0:
            path, codec = os.path.join(d, f"vid{v}.mp4"), ["-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p"]
        else:
            path, codec = os.path.join(d, f"vid{v}.avi"), ["-c:v", "mpeg4", "-q:v", "5"]
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", src, "-vf", zoom, "-frames:v", str(frames), "-g", "12", *codec, path],
            check=True,
        )
    print(f"gen_vision: {n} videos in {d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/regatta-bench-data")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=48, help="frames per video (24 fps)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--photos", default=os.environ.get("REGATTA_PHOTOS_DIR", os.path.join(here, "..", "..", "models", "sample-photos")))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(here, "..", "..", "target"))
    ap.add_argument("--regatta", default=os.path.join(target, "release", "regatta"))
    ap.add_argument("--only", choices=["classify", "video"])
    ap.add_argument("--seed", type=int, default=8)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    if a.only in (None, "classify"):
        classify(a.out, a.images, a.photos, a.regatta, rng)
    if a.only in (None, "video"):
        videos(a.out, a.videos, a.photos, rng, a.frames)


if __name__ == "__main__":
    main()
