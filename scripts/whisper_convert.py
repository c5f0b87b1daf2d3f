"""Converts a CTranslate2 Whisper model (model.bin, spec v6) into the safetensors
layout and config.json that candle's Whisper reads (Hugging Face names).

    python3 scripts/whisper_convert.py CT2_DIR OUT_DIR

Pure Python (struct, json): weights are copied as fp16 bytes, fused projections
are split by rows (row-major, so a row range is a byte range). Deterministic: the
same input gives the same bytes, so the output can be checksummed.
"""
import json
import os
import struct
import sys

from safetensors_file import write_safetensors

DTYPES = {0: ("F32", 4), 1: ("I8", 1), 2: ("I16", 2), 3: ("I32", 4), 4: ("F16", 2), 5: ("BF16", 2)}


def read_ct2(path):
    """Variables of a CTranslate2 model.bin: name -> (dtype, dims, bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize("<" + fmt)
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += size
        return value[0] if len(value) == 1 else value

    def string():
        nonlocal pos
        n = take("H")
        s = data[pos:pos + n - 1].decode()
        pos += n
        return s

    version = take("I")
    if version != 6:
        sys.exit(f"whisper_convert: {path}: CTranslate2 format {version}, expected 6")
    spec = string()
    take("I")  # spec revision
    if spec != "WhisperSpec":
        sys.exit(f"whisper_convert: {path}: a {spec}, not a WhisperSpec")
    out = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        dims = [take("I") for _ in range(rank)]
        dtype, width = DTYPES[take("B")]
        nbytes = take("I")
        out[name] = (dtype, dims, data[pos:pos + nbytes], width)
        pos += nbytes
    return out


def rows(var, start, stop):
    dtype, dims, raw, width = var
    row = width
    for d in dims[1:]:
        row *= d
    return (dtype, [stop - start] + dims[1:], raw[start * row:stop * row], width)


def convert(ct2):
    t = {}

    def put(name, var):
        if var[0] != "F16":
            sys.exit(f"whisper_convert: {name}: expected fp16 weights, got {var[0]}")
        t[name] = var

    def attention(prefix, src, fused_qkv):
        w, b = ct2[src + "/linear_0/weight"], ct2[src + "/linear_0/bias"]
        n = w[1][1]
        if fused_qkv:
            put(prefix + ".q_proj.weight", rows(w, 0, n))
            put(prefix + ".q_proj.bias", rows(b, 0, n))
            # Whisper's key projection has no bias (CTranslate2 stores zeros).
            put(prefix + ".k_proj.weight", rows(w, n, 2 * n))
            put(prefix + ".v_proj.weight", rows(w, 2 * n, 3 * n))
            put(prefix + ".v_proj.bias", rows(b, 2 * n, 3 * n))
            out = src + "/linear_1"
        else:
            put(prefix + ".q_proj.weight", w)
            put(prefix + ".q_proj.bias", b)
            kv_w, kv_b = ct2[src + "/linear_1/weight"], ct2[src + "/linear_1/bias"]
            put(prefix + ".k_proj.weight", rows(kv_w, 0, n))
            put(prefix + ".v_proj.weight", rows(kv_w, n, 2 * n))
            put(prefix + ".v_proj.bias", rows(kv_b, n, 2 * n))
            out = src + "/linear_2"
        put(prefix + ".out_proj.weight", ct2[out + "/weight"])
        put(prefix + ".out_proj.bias", ct2[out + "/bias"])

    def norm(dst, src):
        put(dst + ".weight", ct2[src + "/gamma"])
        put(dst + ".bias", ct2[src + "/beta"])

    def ffn(dst, src):
        norm(dst + ".final_layer_norm", src + "/layer_norm")
        for i, fc in ((0, "fc1"), (1, "fc2")):
            put(f"{dst}.{fc}.weight", ct2[f"{src}/linear_{i}/weight"])
            put(f"{dst}.{fc}.bias", ct2[f"{src}/linear_{i}/bias"])

    def layers(side):
        n = 0
        while f"{side}/layer_{n}/ffn/linear_0/weight" in ct2:
            n += 1
        return n

    enc_layers, dec_layers = layers("encoder"), layers("decoder")
    for conv in ("conv1", "conv2"):
        put(f"model.encoder.{conv}.weight", ct2[f"encoder/{conv}/weight"])
        put(f"model.encoder.{conv}.bias", ct2[f"encoder/{conv}/bias"])
    for i in range(enc_layers):
        dst, src = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        attention(dst + ".self_attn", src + "/self_attention", True)
        norm(dst + ".self_attn_layer_norm", src + "/self_attention/layer_norm")
        ffn(dst, src + "/ffn")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    put("model.decoder.embed_tokens.weight", ct2["decoder/embeddings/weight"])
    put("model.decoder.embed_positions.weight", ct2["decoder/position_encodings/encodings"])
    for i in range(dec_layers):
        dst, src = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        attention(dst + ".self_attn", src + "/self_attention", True)
        norm(dst + ".self_attn_layer_norm", src + "/self_attention/layer_norm")
        attention(dst + ".encoder_attn", src + "/attention", False)
        norm(dst + ".encoder_attn_layer_norm", src + "/attention/layer_norm")
        ffn(dst, src + "/ffn")
    norm("model.decoder.layer_norm", "decoder/layer_norm")

    def heads(side):
        dtype, _, raw, _ = ct2[f"{side}/num_heads"]
        return struct.unpack("<h" if dtype == "I16" else "<i", raw)[0]

    vocab, d_model = ct2["decoder/embeddings/weight"][1]
    config = {
        "num_mel_bins": ct2["encoder/conv1/weight"][1][1],
        "max_source_positions": ct2["encoder/position_encodings/encodings"][1][0],
        "d_model": d_model,
        "encoder_attention_heads": heads("encoder"),
        "encoder_layers": enc_layers,
        "vocab_size": vocab,
        "max_target_positions": ct2["decoder/position_encodings/encodings"][1][0],
        "decoder_attention_heads": heads("decoder"),
        "decoder_layers": dec_layers,
    }
    return t, config


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    tensors, config = convert(read_ct2(os.path.join(src, "model.bin")))
    with open(os.path.join(src, "config.json")) as f:
        ct2_config = json.load(f)
    config["suppress_tokens"] = ct2_config.get("suppress_ids", [])
    write_safetensors(
        os.path.join(dst, "model.safetensors"), {k: v[:3] for k, v in tensors.items()}
    )
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    print(f"whisper_convert: {len(tensors)} tensors into {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
