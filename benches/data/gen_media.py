#!/usr/bin/env python3
"""Makes the data of the W6 (documents) and W7 (audio) workloads, with known text.

    python3 benches/data/gen_media.py --out /tmp/regatta-bench-data [--docs 300] [--clips 200]

W6: DOCS PDFs in DIR/documents/pdfs/ (docN.pdf, and docN.txt with the text it
was made from), by four producers and ten fonts: fpdf2 (core Helvetica, Times,
Courier; embedded DejaVu Sans, Serif, Mono), cairo (pango-view) and Ghostscript
(enscript | ps2pdf), 1 to 5 pages each; DIR/documents/documents.parquet lists
(id, url, producer, font).
W7: CLIPS clips of one to three Harvard sentences spoken by flite (voice slt),
FLAC at 22050 Hz, in DIR/audio/audio.parquet as (id, audio BINARY, text).

Needs: fpdf2 in this Python, pango-view, enscript, ps2pdf, flite, ffmpeg (see
scripts/setup.sh), and the regatta binary (--regatta, default
$CARGO_TARGET_DIR/release/regatta), which writes the Parquet files.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# The Harvard sentences (lists 1 and 2) the tests speak, read from their one
# copy in tests/src/speech.rs.
HARVARD = re.findall(
    r'^    "(.*)",$',
    (Path(__file__).resolve().parents[2] / "tests" / "src" / "speech.rs").read_text(),
    re.M,
)
assert len(HARVARD) == 20, "tests/src/speech.rs: expected the 20 Harvard sentences"

FONTS = {
    "fpdf2": ["Helvetica", "Times", "Courier", "DejaVuSans", "DejaVuSerif", "DejaVuSansMono"],
    "cairo": ["DejaVu Serif 10", "DejaVu Sans 11", "DejaVu Sans Mono 9"],
    "ghostscript": ["Courier10", "Times-Roman11", "Helvetica10"],
}
DEJAVU = "/usr/share/fonts/truetype/dejavu/{}.ttf"

FPDF = r"""
import sys
from fpdf import FPDF
src, out, font = sys.argv[1:4]
pdf = FPDF()
pdf.add_page()
if font in ("Helvetica", "Times", "Courier"):
    pdf.set_font(font, size=10)
else:
    pdf.add_font("body", fname=font)
    pdf.set_font("body", size=10)
pdf.multi_cell(0, 5, open(src, encoding="utf-8").read())
pdf.output(out)
"""


def corpus():
    """ASCII lines of prose: Debian's licence texts, rewrapped."""
    lines = []
    base = "/usr/share/common-licenses"
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        if not os.path.isfile(path):
            continue
        text = open(path, encoding="utf-8", errors="ignore").read()
        text = "".join(c for c in text if 32 <= ord(c) < 127 or c == "\n")
        for para in text.split("\n\n"):
            words = para.split()
            if len(words) > 3:
                lines.extend(textwrap.wrap(" ".join(words), 72))
    if not lines:
        sys.exit("gen_media: no text under /usr/share/common-licenses")
    return lines


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def make_pdf(producer, font, src, out, tmp):
    if producer == "fpdf2":
        f = font if font in ("Helvetica", "Times", "Courier") else DEJAVU.format(font)
        run([sys.executable, "-c", FPDF, src, out, f])
    elif producer == "cairo":
        run(["pango-view", "--no-display", f"--font={font}", "--output", out, src])
    else:
        ps = os.path.join(tmp, "doc.ps")
        run(["enscript", "-q", "-B", "-f", font, "-p", ps, src])
        run(["ps2pdf", ps, out])


def regatta_sql(regatta, table, sql):
    run([regatta, "sql", "-t", table, sql])


def documents(out, n, regatta, rng):
    lines = corpus()
    pdfs = os.path.join(out, "documents", "pdfs")
    os.makedirs(pdfs, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            producer = ["fpdf2", "cairo", "ghostscript"][i % 3]
            font = FONTS[producer][(i // 3) % len(FONTS[producer])]
            count = rng.randint(40, 250)  # about 1 to 5 pages
            start = rng.randrange(0, max(1, len(lines) - count))
            text = "\n".join(lines[start:start + count]) + "\n"
            src = os.path.join(pdfs, f"doc{i}.txt")
            with open(src, "w") as f:
                f.write(text)
            pdf = os.path.join(pdfs, f"doc{i}.pdf")
            make_pdf(producer, font, src, pdf, tmp)
            manifest.append({"id": i, "url": pdf, "producer": producer, "font": font})
            if (i + 1) % 50 == 0:
                print(f"gen_media: {i + 1}/{n} PDFs", file=sys.stderr)
    jl = os.path.join(out, "documents", "documents.jsonl")
    with open(jl, "w") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")
    dest = os.path.join(out, "documents", "documents.parquet")
    regatta_sql(regatta, f"m={jl}", f"COPY (SELECT id, url, producer, font FROM m ORDER BY id) TO '{dest}' STORED AS PARQUET")


def audio(out, n, regatta, rng):
    adir = os.path.join(out, "audio", "flac")
    os.makedirs(adir, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            text = " ".join(rng.sample(HARVARD, rng.randint(1, 3)))
            wav = os.path.join(tmp, "x.wav")
            flac = os.path.join(adir, f"clip{i}.flac")
            run(["flite", "-voice", "slt", "-t", text, "-o", wav])
            run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-ar", "22050", "-c:a", "flac", flac])
            manifest.append({"id": i, "path": flac, "text": text})
            if (i + 1) % 50 == 0:
                print(f"gen_media: {i + 1}/{n} clips", file=sys.stderr)
    jl = os.path.join(out, "audio", "audio.jsonl")
    with open(jl, "w") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")
    dest = os.path.join(out, "audio", "audio.parquet")
    # FLAC bytes inside the Parquet file, as Common Voice ships them.
    regatta_sql(regatta, f"m={jl}", f"COPY (SELECT id, url_download(path) AS audio, text FROM m ORDER BY id) TO '{dest}' STORED AS PARQUET")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/regatta-bench-data")
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--clips", type=int, default=200)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "target"))
    ap.add_argument("--regatta", default=os.path.join(target, "release", "regatta"))
    ap.add_argument("--only", choices=["documents", "audio"])
    a = ap.parse_args()
    rng = random.Random(17)
    if a.only in (None, "documents"):
        documents(a.out, a.docs, a.regatta, rng)
    if a.only in (None, "audio"):
        audio(a.out, a.clips, a.regatta, rng)
    print(f"gen_media: done in {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
