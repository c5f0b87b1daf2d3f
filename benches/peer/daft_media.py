#!/usr/bin/env python3
"""Daft 0.7.26 peers of W6 (documents) and W7 (audio), the steps Daft's own
benchmarks run (benchmarking/ai/{document_embedding,audio_transcription}), on the
data benches/data/gen_media.py makes and the same model weights regatta uses.
Prints one JSON line last, like regatta-bench.

  daft_media.py --workload documents --data DIR --minilm MODEL_DIR
  daft_media.py --workload audio --data DIR --ct2 CT2_WHISPER_DIR

W6: url.download() -> pypdfium2 text per page (PDFs over 100 pages skipped) ->
explode -> langchain RecursiveCharacterTextSplitter(2048, 200) -> explode ->
sentence-transformers all-MiniLM-L6-v2 (batch 10, as Daft's benchmark) -> Lance.
W7: FLAC bytes -> faster-whisper's decode_audio (PyAV, resampled to 16 kHz mono)
-> faster-whisper with the CTranslate2 tiny.en weights regatta converts, greedy,
no timestamps -> Parquet.
"""
import argparse
import io
import os
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import daft
from tree_rss import print_daft_record
from daft import DataType, col


def documents(args):
    import pypdfium2 as pdfium
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    page_type = DataType.list(DataType.struct({"page": DataType.int32(), "text": DataType.string()}))

    @daft.udf(return_dtype=page_type)
    def pages(pdf_bytes):
        out = []
        for b in pdf_bytes.to_pylist():
            try:
                doc = pdfium.PdfDocument(b)
            except Exception:
                out.append(None)
                continue
            if len(doc) > 100:
                out.append(None)
                continue
            out.append([{"page": i + 1, "text": doc[i].get_textpage().get_text_range()} for i in range(len(doc))])
        return out

    splitter = RecursiveCharacterTextSplitter(chunk_size=2048, chunk_overlap=200)

    @daft.udf(return_dtype=DataType.list(DataType.string()))
    def split(texts):
        return [splitter.split_text(t or "") for t in texts.to_pylist()]

    @daft.udf(return_dtype=DataType.embedding(DataType.float32(), 384), batch_size=10, concurrency=1)
    class Embed:
        def __init__(self):
            from sentence_transformers import SentenceTransformer
            self.model = SentenceTransformer(args.minilm, device="cpu")

        def __call__(self, texts):
            return list(self.model.encode(texts.to_pylist(), batch_size=10, convert_to_numpy=True, normalize_embeddings=True))

    src = os.path.join(args.data, "documents", "documents.parquet")
    out = tempfile.mkdtemp(prefix="daft_w6_")
    t0 = time.time()
    df = daft.read_parquet(src)
    df = df.with_column("pages", pages(col("url").download()))
    df = df.explode("pages")
    df = df.with_column("page", col("pages")["page"]).with_column("text", col("pages")["text"])
    df = df.with_column("chunk", split(col("text"))).explode("chunk")
    df = df.where(col("chunk").not_null())
    df = df.with_column("embedding", Embed(col("chunk"))).select("id", "page", "chunk", "embedding")
    df.write_lance(os.path.join(out, "chunks.lance"))
    secs = time.time() - t0
    import lance
    rows = lance.dataset(os.path.join(out, "chunks.lance")).count_rows()
    shutil.rmtree(out, ignore_errors=True)
    return rows, secs, {}


def audio(args):
    from faster_whisper import WhisperModel, decode_audio

    @daft.udf(return_dtype=DataType.string(), concurrency=1)
    class Transcribe:
        def __init__(self):
            self.model = WhisperModel(args.ct2, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)

        def __call__(self, flac):
            out = []
            for b in flac.to_pylist():
                pcm = decode_audio(io.BytesIO(b), sampling_rate=16000)
                segs, _ = self.model.transcribe(pcm, beam_size=1, language="en", without_timestamps=True, vad_filter=False, condition_on_previous_text=False)
                out.append(" ".join(s.text.strip() for s in segs).strip())
            return out

    src = os.path.join(args.data, "audio", "audio.parquet")
    out = tempfile.mkdtemp(prefix="daft_w7_")
    t0 = time.time()
    df = daft.read_parquet(src)
    df = df.with_column("transcript", Transcribe(col("audio"))).select("id", col("text").alias("reference"), "transcript")
    df.write_parquet(out)
    secs = time.time() - t0
    done = daft.read_parquet(out).to_pylist()
    shutil.rmtree(out, ignore_errors=True)
    errors = words = 0
    for r in done:
        ref, hyp = normalised(r["reference"]), normalised(r["transcript"] or "")
        errors += edit_distance(ref, hyp)
        words += len(ref)
    return len(done), secs, {"clips": len(done), "wer": round(errors / max(words, 1), 4)}


def normalised(text):
    """Lower-case words without punctuation (apostrophes kept), as regatta-bench's W7 check."""
    out = ["".join(c for c in w if c.isalnum() or c == "'").lower() for w in text.split()]
    return [w for w in out if w]


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a):
        row = [i + 1] * (len(b) + 1)
        for j, y in enumerate(b):
            row[j + 1] = min(prev[j] + (x != y), prev[j + 1] + 1, row[j] + 1)
        prev = row
    return prev[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True, choices=["documents", "audio", "w6", "w7"])
    ap.add_argument("--data", default="/tmp/regatta-bench-data")
    ap.add_argument("--minilm", default=os.environ.get("REGATTA_MINILM_DIR", "models/all-MiniLM-L6-v2"))
    ap.add_argument("--ct2", help="the CTranslate2 Whisper tiny.en directory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-type", default="float32", choices=["float32", "int8"],
                    help="faster-whisper's compute type (W7; W6's sentence-transformers stays float32)")
    args = ap.parse_args()
    name = {"w6": "documents", "w7": "audio"}.get(args.workload, args.workload)
    # The whole process tree's memory: Daft runs class UDFs (the models) in
    # processes of their own, outside this one's ru_maxrss (tree_rss.py).
    print_daft_record(name, documents if name == "documents" else audio, args, daft.__version__)


if __name__ == "__main__":
    main()
