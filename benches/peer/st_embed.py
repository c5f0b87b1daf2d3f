#!/usr/bin/env python3
"""The Python side of the embed_minilm benchmark: sentence-transformers on the same
texts as `regatta-bench --workload embed_minilm` (64-word chunks of the first DOCS
documents of docs.parquet, split on single spaces), the same model files, CPU, the
same thread count. The model is loaded before the clock starts. Prints one JSON line.

Usage: st_embed.py --data DIR --model MODEL_DIR [--docs 500] [--threads 2] [--batch 64]
"""
import argparse
import json
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def chunks(texts, words=64):
    for t in texts:
        w = t.split(" ")
        for i in range(0, len(w), words):
            yield " ".join(w[i : i + words])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/regatta-bench-data")
    ap.add_argument("--model", required=True)
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()

    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(["warm up"], normalize_embeddings=True)

    t0 = time.perf_counter()
    table = pq.read_table(os.path.join(a.data, "docs.parquet"), columns=["id", "text"])
    ids = table.column("id").to_pylist()
    texts = [t for i, t in zip(ids, table.column("text").to_pylist()) if i < a.docs]
    texts = list(chunks(texts))
    emb = model.encode(texts, batch_size=a.batch, normalize_embeddings=True)
    secs = time.perf_counter() - t0
    norms = np.linalg.norm(emb, axis=1)
    print(
        json.dumps(
            {
                "engine": "sentence-transformers",
                "workload": "embed_minilm",
                "rows": len(texts),
                "seconds": round(secs, 3),
                "chunks_per_s": round(len(texts) / secs, 1),
                "threads": a.threads,
                "unit_vectors": bool(np.all(np.abs(norms - 1) < 1e-3)),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
