#!/usr/bin/env python3
"""Reference embeddings for all-MiniLM-L6-v2, independent of candle and of torch.

A float64 numpy BERT read straight from model.safetensors, a pure-Python BERT
WordPiece tokenizer read from vocab.txt, mean pooling over the tokens and L2
normalisation: the pipeline sentence-transformers runs. Only numpy is needed.

Usage: minilm_reference.py MODEL_DIR OUT_JSON
Writes {"embeddings": [[...384]...], "token_counts": [...], "token_ids": [[...]...]}
for the eight test sentences the Rust test uses (tests read it through
$REGATTA_MINILM_REFERENCE).
"""
import json
import math
import struct
import sys
import unicodedata

import numpy as np

MAX_TOKENS = 256
LONG = " ".join(["Streaming execution keeps memory bounded while GPUs stay busy."] * 60)
SENTENCES = [
    "A man is eating food.",
    "A man is riding a horse on a sunny beach.",
    "The quick brown fox jumps over the lazy dog.",
    "Multimodal data pipelines stream images, audio and text through models.",
    "Raft replicates a log across three servers so that a leader failure loses nothing.",
    "naïve café résumé — unicode survives tokenization",
    "",
    LONG,
]


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
        out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"])
    return out


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def basic_tokens(text):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if is_cjk(cp):
            cleaned.append(f" {ch} ")
        elif ch.isspace():
            cleaned.append(" ")
        else:
            cleaned.append(ch)
    words = []
    for word in "".join(cleaned).lower().split():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        cur = ""
        for ch in word:
            if is_punct(ch):
                if cur:
                    words.append(cur)
                    cur = ""
                words.append(ch)
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab["[UNK]"]]
        ids.append(found)
        start = end
    return ids


def tokenize(text, vocab):
    ids = []
    for w in basic_tokens(text):
        ids.extend(wordpiece(w, vocab))
    return [vocab["[CLS]"]] + ids[: MAX_TOKENS - 2] + [vocab["[SEP]"]]


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


ERF = np.vectorize(math.erf)


def embed(ids, t, heads=12, layers=6):
    g = lambda k: t[k].astype(np.float64)
    n = len(ids)
    x = g("embeddings.word_embeddings.weight")[ids]
    x = x + g("embeddings.position_embeddings.weight")[:n] + g("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
    d = x.shape[1] // heads
    for i in range(layers):
        p = f"encoder.layer.{i}."
        lin = lambda v, name: v @ g(p + name + ".weight").T + g(p + name + ".bias")
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, heads * d)
        a = layer_norm(
            lin(ctx, "attention.output.dense") + x,
            g(p + "attention.output.LayerNorm.weight"),
            g(p + "attention.output.LayerNorm.bias"),
        )
        h = lin(a, "intermediate.dense")
        h = 0.5 * h * (1.0 + ERF(h / math.sqrt(2.0)))
        x = layer_norm(lin(h, "output.dense") + a, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"))
    m = x.mean(0)
    return m / np.linalg.norm(m)


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    with open(f"{model_dir}/vocab.txt", encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    tensors = load_safetensors(f"{model_dir}/model.safetensors")
    token_ids = [tokenize(s, vocab) for s in SENTENCES]
    embeddings = [embed(ids, tensors).tolist() for ids in token_ids]
    with open(out, "w") as f:
        json.dump(
            {
                "source": "scripts/minilm_reference.py (numpy float64 BERT)",
                "embeddings": embeddings,
                "token_counts": [len(i) for i in token_ids],
                "token_ids": token_ids,
            },
            f,
        )


if __name__ == "__main__":
    main()
