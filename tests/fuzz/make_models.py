#!/usr/bin/env python3
"""Makes the model files the fuzz targets need, from what is in the repository.

    python3 tests/fuzz/make_models.py OUTDIR [EXPORT]

Writes, into OUTDIR, small checkpoints with random weights and real tokenizers, and
exports each with ./export (or EXPORT) into a run.c model file:

  smollm2.bin      tiny-smollm2's byte-level BPE (SmolLM2/GPT-2 pre-tokenizer, ChatML)
  llama3.bin       tiny-llama3's (Llama 3 pre-tokenizer, ignore_merges, llama3 RoPE, Llama 3 chat)
  qwen2.bin        tiny-qwen2's (Qwen2 pre-tokenizer, NFC, q/k/v biases, ChatML)
  sp.bin           a SentencePiece vocab made here (sp_tokenizer.bin, llama2.c format:
                   pieces with scores and the 256 byte tokens <0x00>..<0xFF>), from a
                   llama2.c legacy checkpoint
  *-q8_0.bin       the same in q8_0 (group sizes 16 and 8: both dot-product paths)
  untied-q8_0.bin  a separate classifier, one KV head

The networks are as small as the format allows (dim 16, one or two layers), so that
the files are small (20 to 90 KB) and a fuzzer's mutations reach the header and the
tokenizer tables often. The fixtures' vocabularies (1024 tokens) are kept whole: the
tokenizer fuzzers need real ones.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures", "hf")

# Text for the SentencePiece vocabulary: English, some accents, some CJK and an emoji,
# so that its pieces include multi-byte characters (and most characters are not pieces
# at all, which exercises the byte fallback).
SP_TEXT = """Once upon a time, there was a little girl named Lily. She loved to play outside
in the sun. One day, she saw a big red ball in the park. She wanted to play with it,
but it was too high. Lily asked her mom for help. Her mom smiled and said, "Let's get
it together!" They were very happy. The end. Where is Groningen located? It is in the
north of the Netherlands. café naïve résumé über Straße façade 日本語 日本 東京 中文 你好
世界 😀 tokenizer tokens token the then there these those three thing think""".split()


def train_sentencepiece_vocab(words, n_merges=160):
    """A small BPE vocab the SentencePiece way: words carry their leading space."""
    seqs = [list(" " + w) for w in words]
    chars = sorted({c for s in seqs for c in s})
    merges = []
    for _ in range(n_merges):
        counts = {}
        for s in seqs:
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b), n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if n < 2:
            break
        merges.append(a + b)
        for s in seqs:
            i = 0
            while i + 1 < len(s):
                if s[i] == a and s[i + 1] == b:
                    s[i:i + 2] = [a + b]
                i += 1
    pieces = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)]
    pieces += [("<0x%02X>" % b, 0.0) for b in range(256)]
    seen = set()
    for i, m in enumerate(merges):          # higher score = merged first
        if m not in seen:
            seen.add(m)
            pieces.append((m, -float(i)))
    for i, c in enumerate(chars):            # single characters score lowest
        if c not in seen:
            seen.add(c)
            pieces.append((c, -1000.0 - i))
    return pieces


def write_llama2c_tokenizer(path, pieces):
    enc = [p.encode("utf-8") for p, _ in pieces]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(e) for e in enc)))
        for e, (_, score) in zip(enc, pieces):
            f.write(struct.pack("<fi", score, len(e)) + e)


def floats(rng, n, lo=-0.3, hi=0.3):
    return struct.pack(f"<{n}f", *(rng.uniform(lo, hi) for _ in range(n)))


def write_llama2c_checkpoint(path, rng, dim, hidden, n_layers, n_heads, n_kv, vocab, seq):
    """llama2.c's legacy format: 7 i32 header, then the f32 tensors (tied classifier)."""
    hd = dim // n_heads
    kv = n_kv * hd
    L = n_layers
    parts = [struct.pack("<7i", dim, hidden, n_layers, n_heads, n_kv, vocab, seq),
             floats(rng, vocab * dim),
             floats(rng, L * dim, 0.5, 1.5),
             floats(rng, L * dim * dim), floats(rng, L * kv * dim), floats(rng, L * kv * dim),
             floats(rng, L * dim * dim),
             floats(rng, L * dim, 0.5, 1.5),
             floats(rng, L * hidden * dim), floats(rng, L * dim * hidden), floats(rng, L * hidden * dim),
             floats(rng, dim, 0.5, 1.5),
             bytes(4 * seq * (hd // 2) * 2)]    # freq_cis_real, freq_cis_imag (unused)
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def write_safetensors(path, tensors):
    """tensors: [(name, shape, f32 bytes)]"""
    header, offset = {}, 0
    for name, shape, data in tensors:
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, data in tensors:
            f.write(data)


def mini_hf_checkpoint(out, fixture, rng, **shape):
    """A copy of a fixture checkpoint's tokenizer and config, with a smaller network."""
    src = os.path.join(FIX, fixture)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(src):
        if name.endswith(".json") and name not in ("config.json", "reference.json"):
            shutil.copy(os.path.join(src, name), os.path.join(out, name))
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(shape)
    if "head_dim" in cfg:
        cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    d, h, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg.get("head_dim") or d // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    bias = cfg.get("model_type") == "qwen2"
    t = [("model.embed_tokens.weight", (v, d), floats(rng, v * d))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t += [(p + "input_layernorm.weight", (d,), floats(rng, d, 0.5, 1.5)),
              (p + "self_attn.q_proj.weight", (q, d), floats(rng, q * d)),
              (p + "self_attn.k_proj.weight", (kv, d), floats(rng, kv * d)),
              (p + "self_attn.v_proj.weight", (kv, d), floats(rng, kv * d))]
        if bias:
            t += [(p + "self_attn.q_proj.bias", (q,), floats(rng, q)),
                  (p + "self_attn.k_proj.bias", (kv,), floats(rng, kv)),
                  (p + "self_attn.v_proj.bias", (kv,), floats(rng, kv))]
        t += [(p + "self_attn.o_proj.weight", (d, q), floats(rng, d * q)),
              (p + "post_attention_layernorm.weight", (d,), floats(rng, d, 0.5, 1.5)),
              (p + "mlp.gate_proj.weight", (h, d), floats(rng, h * d)),
              (p + "mlp.up_proj.weight", (h, d), floats(rng, h * d)),
              (p + "mlp.down_proj.weight", (d, h), floats(rng, d * h))]
    t.append(("model.norm.weight", (d,), floats(rng, d, 0.5, 1.5)))
    if not cfg.get("tie_word_embeddings", True):
        t.append(("lm_head.weight", (v, d), floats(rng, v * d)))
    write_safetensors(os.path.join(out, "model.safetensors"), t)


def export(exe, src, out, *options):
    r = subprocess.run([exe, "-q", *options, src, out], capture_output=True, text=True)
    if r.returncode != 0:   # (the untied fixture's chat template is not recognised: a warning)
        sys.exit(f"make_models.py: export {src} failed:\n{r.stderr}")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[1]
    exe = sys.argv[2] if len(sys.argv) == 3 else os.path.join(ROOT, "export")
    src = os.path.join(out, "src")
    os.makedirs(src, exist_ok=True)
    rng = random.Random(20241126)

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, max_position_embeddings=64)
    mini_hf_checkpoint(f"{src}/smollm2", "tiny-smollm2", rng, **small, num_attention_heads=2, num_key_value_heads=1)
    mini_hf_checkpoint(f"{src}/llama3", "tiny-llama3", rng, **small, num_attention_heads=2, num_key_value_heads=1)
    mini_hf_checkpoint(f"{src}/qwen2", "tiny-qwen2", rng, **dict(small, num_hidden_layers=2),
                       num_attention_heads=2, num_key_value_heads=2)
    mini_hf_checkpoint(f"{src}/untied", "tiny-untied-mha-f32", rng, **dict(small, hidden_size=8, intermediate_size=24),
                       num_attention_heads=2, num_key_value_heads=1)

    pieces = train_sentencepiece_vocab(SP_TEXT)
    tok = os.path.join(out, "sp_tokenizer.bin")
    write_llama2c_tokenizer(tok, pieces)
    write_llama2c_checkpoint(f"{src}/sp.llama2c", rng, dim=16, hidden=32, n_layers=1, n_heads=2,
                             n_kv=1, vocab=len(pieces), seq=64)

    for name in ("smollm2", "llama3", "qwen2"):
        export(exe, f"{src}/{name}", f"{out}/{name}.bin")
        export(exe, f"{src}/{name}", f"{out}/{name}-q8_0.bin", "--dtype", "q8_0")
    export(exe, f"{src}/untied", f"{out}/untied-q8_0.bin", "--dtype", "q8_0")
    export(exe, f"{src}/sp.llama2c", f"{out}/sp.bin", "--tokenizer", tok)
    export(exe, f"{src}/sp.llama2c", f"{out}/sp-q8_0.bin", "--tokenizer", tok, "--dtype", "q8_0")


if __name__ == "__main__":
    main()
