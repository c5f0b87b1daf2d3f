#!/usr/bin/env python3
"""sentence-transformers on a JSON list of texts (the file examples/embed_timing
reads), batch 64, CPU, THREADS threads, best of ROUNDS after a warm-up; prints one
JSON line, and with --out writes the embeddings (for the cosine check).

Usage: st_embed_file.py TEXTS.json MODEL_DIR [--threads 2] [--rounds 3] [--out EMB.json]
"""
import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("texts")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    texts = json.load(open(a.texts))
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(texts[:8], normalize_embeddings=True)
    best = float("inf")
    for _ in range(max(1, a.rounds)):
        t0 = time.perf_counter()
        emb = model.encode(texts, batch_size=64, normalize_embeddings=True)
        best = min(best, time.perf_counter() - t0)
    tokens = sum(len(model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts)
    print(json.dumps({"engine": "sentence-transformers", "torch": torch.__version__, "texts": len(texts),
                      "tokens": tokens, "best_s": round(best, 4), "texts_per_s": round(len(texts) / best, 1)}))
    if a.out:
        json.dump(emb.tolist(), open(a.out, "w"))


if __name__ == "__main__":
    main()
