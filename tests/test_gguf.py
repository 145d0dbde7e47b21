#!/usr/bin/env python3
"""Tests of GGUF import (`./export MODEL.gguf OUT.bin`) and of `models/fetch ollama:NAME`.

    python3 tests/test_gguf.py [BUILD_DIR]

BUILD_DIR, if given, holds tests/test_model.c and tests/test_tokenizer.c built (as
tests/run_tests.sh builds them); without it they are built here.

Every expected value comes from somewhere ./export has no say in:
- tests/fixtures/gguf: GGUF files that llama.cpp made from the checkpoints in
  tests/fixtures/hf, whose Hugging Face references (logits, greedy ids) they must give;
- the Hugging Face folders themselves, exported by the safetensors path: a float GGUF must
  give the same weights, tokenizer and logits;
- the block layouts of the quantized types, decoded here value by value from the raw
  bytes (ref_block below, written from the published layouts, not from export's code);
- tests/fixtures/tokenizers: the ids Hugging Face tokenizers / SentencePiece give;
- an Ollama models folder laid out as Ollama lays it out.
GGUF files that no fixture provides (the llama-bpe and qwen2 pre-tokenizers, Llama 3's
rope_freqs, a SentencePiece vocabulary, random blocks of every type) are written here
from the Hugging Face folders, as llama.cpp's converter writes them.

Prints one line per check, "ok ..." or "FAIL ...", then "N passed, N failed"; exits 1 if
any check failed. tests/test_export.sh imports the GGUF reader and writer for its
damaged-file cases.
"""
import hashlib
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
import header  # noqa: E402  (the run.c header, through export's table)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
GG = os.path.join(FIX, "gguf")
HF = os.path.join(FIX, "hf")
EXPORT = os.path.join(ROOT, "export")
RUN = os.path.join(ROOT, "run")

# ----------------------------------------------------------------------------------
# GGUF files: read and write (the layout is in tests/fixtures/gguf/README.md)

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
U32, I32, F32V, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
TYPE_ID = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
           "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
TYPE_NAME = {v: k for k, v in TYPE_ID.items()}
# values per block, bytes per block
BLOCK = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34), "Q4_0": (32, 18),
         "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q4_K": (256, 144),
         "Q5_K": (256, 176), "Q6_K": (256, 210)}


class Gguf:
    """kv: [[key, value type, value]] (an array value is (element type, [values]));
    tensors: [{"name", "ne", "type" (a name, or an int if unknown), "data"}]."""

    def __init__(self, kv, tensors, version=3):
        self.kv, self.tensors, self.version = kv, tensors, version

    def get(self, key):
        v = [x for k, t, x in self.kv if k == key]
        return (v[0][1] if isinstance(v[0], tuple) else v[0]) if v else None

    def set(self, key, vtype, value):
        self.kv = [e for e in self.kv if e[0] != key] + [[key, vtype, value]]

    def tensor(self, name):
        return next(t for t in self.tensors if t["name"] == name)


def read_gguf(path):
    b = open(path, "rb").read()
    pos = 4

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, b, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return b[pos - n:pos].decode("utf-8")

    def value(t):
        if t == STRING:
            return string()
        if t == ARRAY:
            et, n = take("I"), take("Q")
            return et, [value(et) for _ in range(n)]
        return take(SCALAR[t])

    version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    kv = []
    for _ in range(n_kv):
        key = string()
        t = take("I")
        kv.append([key, t, value(t)])
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        infos.append((name, ne, take("I"), take("Q")))
    align = dict((k, v) for k, _, v in kv).get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    tensors = []
    for name, ne, t, off in infos:
        per, size = BLOCK[TYPE_NAME[t]]
        n = size * math.prod(ne) // per
        tensors.append({"name": name, "ne": ne, "type": TYPE_NAME[t], "data": b[data + off:data + off + n]})
    return Gguf(kv, tensors, version)


def gguf_bytes(g, alignment=32):
    out = bytearray(b"GGUF" + struct.pack("<IQQ", g.version, len(g.tensors), len(g.kv)))

    def string(s):
        raw = s.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw

    def value(t, v):
        if t == STRING:
            return string(v)
        if t == ARRAY:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(value(et, x) for x in items)
        return struct.pack("<" + SCALAR[t], v)

    for key, t, v in g.kv:
        out += string(key) + struct.pack("<I", t) + value(t, v)
    offset = 0
    for t in g.tensors:     # t["offset"], if there, is written instead of the real offset
        tid = t["type"] if isinstance(t["type"], int) else TYPE_ID[t["type"]]
        out += string(t["name"]) + struct.pack(f"<I{len(t['ne'])}QIQ", len(t["ne"]), *t["ne"], tid,
                                               t.get("offset", offset))
        offset += (len(t["data"]) + alignment - 1) // alignment * alignment
    out += bytes(-len(out) % alignment)
    for t in g.tensors:
        out += t["data"] + bytes(-len(t["data"]) % alignment)
    return bytes(out)


def write_gguf(g, path):
    with open(path, "wb") as f:
        f.write(gguf_bytes(g))


# ----------------------------------------------------------------------------------
# The quantized types, value by value, as their layouts define them. C computes in
# float32: every product and sum is rounded to float32 where llama.cpp's code rounds it.

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def half(b, o):
    return struct.unpack_from("<e", b, o)[0]


def ref_32(t, b):
    """Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: one block of 32 values."""
    if t == "Q8_0":
        return [f32(half(b, 0) * q) for q in struct.unpack_from("<32b", b, 2)]
    d = half(b, 0)
    m = half(b, 2) if t in ("Q4_1", "Q5_1") else 0.0
    qs = {"Q4_0": 2, "Q4_1": 4, "Q5_0": 6, "Q5_1": 8}[t]
    qh = struct.unpack_from("<I", b, qs - 4)[0] if t in ("Q5_0", "Q5_1") else 0
    out = []
    for j in range(32):
        byte = b[qs + j % 16]
        q = (byte & 15 if j < 16 else byte >> 4) | (((qh >> j) & 1) << 4)
        if t == "Q4_0":
            out.append(f32(d * (q - 8)))
        elif t == "Q5_0":
            out.append(f32(d * (q - 16)))
        else:
            out.append(f32(f32(d * q) + m))
    return out


def ref_k(t, b):
    """Q4_K, Q5_K: one super-block of 256 values."""
    d, dmin, s = half(b, 0), half(b, 2), b[4:16]
    sc = [s[j] & 63 for j in range(4)] + [(s[j + 8] & 15) | ((s[j] >> 6) << 4) for j in range(4)]
    mn = [s[j + 4] & 63 for j in range(4)] + [(s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4) for j in range(4)]
    qs, qh = (b[16:144], None) if t == "Q4_K" else (b[48:176], b[16:48])
    out = [0.0] * 256
    for r in range(4):
        for l in range(32):
            for half_, q in ((0, qs[32 * r + l] & 15), (1, qs[32 * r + l] >> 4)):
                j = 2 * r + half_
                if qh is not None:
                    q += 16 * ((qh[l] >> j) & 1)
                out[64 * r + 32 * half_ + l] = f32(f32(f32(d * sc[j]) * q) - f32(dmin * mn[j]))
    return out


def ref_q6_k(b):
    ql, qh, sc, d = b[0:128], b[128:192], struct.unpack_from("<16b", b, 192), half(b, 208)
    out = [0.0] * 256
    for h in range(2):
        for l in range(32):
            hb = qh[32 * h + l]
            lows = (ql[64 * h + l] & 15, ql[64 * h + l + 32] & 15, ql[64 * h + l] >> 4, ql[64 * h + l + 32] >> 4)
            for k in range(4):
                q = (lows[k] | (((hb >> (2 * k)) & 3) << 4)) - 32
                out[128 * h + 32 * k + l] = f32(f32(d * sc[8 * h + l // 16 + 2 * k]) * q)
    return out


def ref_values(t, data):
    """All values of a tensor of quantized type t (or F16 / BF16 / F32)."""
    if t == "F32":
        return list(struct.unpack(f"<{len(data) // 4}f", data))
    if t == "F16":
        return list(struct.unpack(f"<{len(data) // 2}e", data))
    if t == "BF16":
        return [f32(struct.unpack("<f", struct.pack("<I", x << 16))[0])
                for x in struct.unpack(f"<{len(data) // 2}H", data)]
    per, size = BLOCK[t]
    out = []
    for o in range(0, len(data), size):
        blk = data[o:o + size]
        out += ref_32(t, blk) if per == 32 else ref_q6_k(blk) if t == "Q6_K" else ref_k(t, blk)
    return out


def hf_rows(values, rows, n_heads):
    """Undo llama.cpp's q/k permutation (per head of D rows, HF row j*D/2 + i is GGUF row
    2i + j): the values in Hugging Face's row order."""
    cols, d = len(values) // rows, rows // n_heads
    out = []
    for h in range(n_heads):
        for j in range(2):
            for i in range(d // 2):
                r = h * d + 2 * i + j
                out += values[r * cols:(r + 1) * cols]
    return out


# ----------------------------------------------------------------------------------
# run.c model files (FORMAT.md)

# The fields that say where the parts of the file lie, and the checksums: they follow
# from the rest, and the comparisons of two exports below leave them out.
LAYOUT = ("tokens_offset", "merges_offset", "strings_offset", "strings_bytes",
          "default_system_offset", "file_bytes", "meta_crc32", "weights_crc32")


def runc_header(b):
    """The header's fields (read through export's table, tests/header.py) but LAYOUT;
    stop_ids: the n_stop in use."""
    h = {k: v for k, v in header.read(b).items() if k not in LAYOUT}
    h["stop_ids"] = h["stop_ids"][:h["n_stop"]]
    return h


def runc_tensors(path):
    """{HF name: float values} of a run.c file's matrices and vectors (q8_0 matrices
    as (int8 values, scales))."""
    b = open(path, "rb").read()
    h = runc_header(b)
    d, f, v = h["dim"], h["hidden_dim"], h["vocab_size"]
    q, kv = h["n_heads"] * h["head_dim"], h["n_kv_heads"] * h["head_dim"]
    order = [("model.embed_tokens.weight", v * d, 1)]
    for i in range(h["n_layers"]):
        p = f"model.layers.{i}."
        order += [(p + "input_layernorm.weight", d, 0), (p + "self_attn.q_proj.weight", q * d, 1),
                  (p + "self_attn.k_proj.weight", kv * d, 1), (p + "self_attn.v_proj.weight", kv * d, 1)]
        if h["qkv_bias"]:
            order += [(p + "self_attn.q_proj.bias", q, 0), (p + "self_attn.k_proj.bias", kv, 0),
                      (p + "self_attn.v_proj.bias", kv, 0)]
        order += [(p + "self_attn.o_proj.weight", d * q, 1), (p + "post_attention_layernorm.weight", d, 0),
                  (p + "mlp.gate_proj.weight", f * d, 1), (p + "mlp.up_proj.weight", f * d, 1),
                  (p + "mlp.down_proj.weight", d * f, 1)]
    order.append(("model.norm.weight", d, 0))
    if not h["tied_embeddings"]:
        order.append(("lm_head.weight", v * d, 1))
    pos, out, gs = h["weights_offset"], {}, h["group_size"]
    for name, n, matrix in order:
        pos = (pos + 63) // 64 * 64
        if matrix and h["weight_type"] == 1:
            qv = struct.unpack_from(f"<{n}b", b, pos)
            pos = (pos + n + 63) // 64 * 64
            out[name] = (qv, struct.unpack_from(f"<{n // gs}f", b, pos))
            pos += 4 * (n // gs)
        else:
            out[name] = struct.unpack_from(f"<{n}f", b, pos)
            pos += 4 * n
    return out


GGUF_TO_HF = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
              "output.weight": "lm_head.weight", "attn_norm.weight": "input_layernorm.weight",
              "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
              "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
              "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
              "attn_v.bias": "self_attn.v_proj.bias",
              "ffn_norm.weight": "post_attention_layernorm.weight", "ffn_gate.weight": "mlp.gate_proj.weight",
              "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight"}


def hf_name(gguf_name):
    if gguf_name.startswith("blk."):
        _, layer, rest = gguf_name.split(".", 2)
        return f"model.layers.{layer}.{GGUF_TO_HF[rest]}"
    return GGUF_TO_HF[gguf_name]


# ----------------------------------------------------------------------------------
# A Hugging Face folder as llama.cpp's converter writes it (its keys, tensor names, q/k
# permutation, vocabulary and Llama 3 rope_freqs; the layout facts are in
# tests/fixtures/gguf/README.md), with every tensor F32.

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = range(1, 7)


def safetensors_f32(path):
    """{name: (shape, float32 bytes)}."""
    b = open(path, "rb").read()
    n = struct.unpack_from("<Q", b)[0]
    out = {}
    for name, t in json.loads(b[8:8 + n]).items():
        if name == "__metadata__":
            continue
        raw = b[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
        if t["dtype"] == "BF16":
            raw = struct.pack(f"<{len(raw) // 2}I", *[x << 16 for x in struct.unpack(f"<{len(raw) // 2}H", raw)])
        elif t["dtype"] == "F16":
            raw = struct.pack(f"<{len(raw) // 2}f", *struct.unpack(f"<{len(raw) // 2}e", raw))
        out[name] = (t["shape"], raw)
    return out


def permute_rows(raw, rows, n_heads):
    """llama.cpp's permutation: per head of D rows, HF row j*D/2 + i goes to row 2i + j."""
    cols, d = len(raw) // 4 // rows, rows // n_heads
    out = bytearray(len(raw))
    for h in range(n_heads):
        for j in range(2):
            for i in range(d // 2):
                src, dst = h * d + j * d // 2 + i, h * d + 2 * i + j
                out[4 * dst * cols:4 * (dst + 1) * cols] = raw[4 * src * cols:4 * (src + 1) * cols]
    return bytes(out)


def llama3_rope_freqs(head_dim, theta, factor, low, high, orig):
    """llama.cpp's LlamaModel converter: one divisor per frequency."""
    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * theta ** (i / head_dim)
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            s = (orig / wavelen - low) / (high - low)
            out.append(1 / ((1 - s) / factor + s))
    return out


def model_kv(cfg, arch):
    p = arch + "."
    kv = [["general.architecture", STRING, arch],
          [p + "block_count", U32, cfg["num_hidden_layers"]],
          [p + "context_length", U32, cfg["max_position_embeddings"]],
          [p + "embedding_length", U32, cfg["hidden_size"]],
          [p + "feed_forward_length", U32, cfg["intermediate_size"]],
          [p + "attention.head_count", U32, cfg["num_attention_heads"]],
          [p + "attention.head_count_kv", U32, cfg.get("num_key_value_heads") or cfg["num_attention_heads"]],
          [p + "rope.freq_base", F32V, cfg.get("rope_theta", 10000.0)],
          [p + "attention.layer_norm_rms_epsilon", F32V, cfg["rms_norm_eps"]]]
    if cfg.get("head_dim"):
        kv += [[p + "attention.key_length", U32, cfg["head_dim"]], [p + "attention.value_length", U32, cfg["head_dim"]]]
    if arch == "llama":
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        kv += [[p + "vocab_size", U32, cfg["vocab_size"]], [p + "rope.dimension_count", U32, head_dim]]
    return kv


def model_tensors(folder, cfg, arch, rope_orig=None):
    """GGUF tensors (all F32) of the folder's model.safetensors; rope_orig: the original
    context for rope_freqs (default: rope_scaling's, as transformers reads it)."""
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    hf_to_gguf = {v: k for k, v in GGUF_TO_HF.items()}
    tensors = []
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        freqs = llama3_rope_freqs(head_dim, cfg["rope_theta"], rs["factor"], rs["low_freq_factor"],
                                  rs["high_freq_factor"], rope_orig or rs["original_max_position_embeddings"])
        tensors.append({"name": "rope_freqs.weight", "ne": [len(freqs)], "type": "F32",
                        "data": struct.pack(f"<{len(freqs)}f", *freqs)})
    for name, (shape, raw) in safetensors_f32(os.path.join(folder, "model.safetensors")).items():
        if name.startswith("model.layers."):
            _, _, layer, rest = name.split(".", 3)
            gname = f"blk.{layer}.{hf_to_gguf[rest]}"
        else:
            gname = hf_to_gguf[name]
        if arch == "llama" and gname.endswith(("attn_q.weight", "attn_k.weight")):
            raw = permute_rows(raw, shape[0], heads if "attn_q" in gname else kv_heads)
        tensors.append({"name": gname, "ne": list(reversed(shape)), "type": "F32", "data": raw})
    return tensors


def bpe_vocab_kv(folder, pre, vocab_size):
    """tokenizer.ggml.* of a tokenizer.json, as llama.cpp's converter writes a gpt2 vocabulary."""
    tj = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    tc = json.load(open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8"))
    added = {a["id"]: a for a in tj["added_tokens"]}
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    by_id.update({i: a["content"] for i, a in added.items()})
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(TOKEN_UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(TOKEN_NORMAL if i not in added else TOKEN_CONTROL if added[i]["special"] else TOKEN_USER_DEFINED)
    ids = {t: i for i, t in enumerate(tokens)}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    kv = [["tokenizer.ggml.model", STRING, "gpt2"], ["tokenizer.ggml.pre", STRING, pre],
          ["tokenizer.ggml.tokens", ARRAY, (STRING, tokens)], ["tokenizer.ggml.token_type", ARRAY, (I32, types)],
          ["tokenizer.ggml.merges", ARRAY, (STRING, merges)]]
    for key in ("bos", "eos", "unk", "pad"):
        text = tc.get(f"{key}_token")
        text = text.get("content") if isinstance(text, dict) else text
        if text in ids:
            kv.append([f"tokenizer.ggml.{'unknown' if key == 'unk' else 'padding' if key == 'pad' else key}_token_id",
                       U32, ids[text]])
    # The converter writes add_bos_token from the post-processor: these have none, so no BOS.
    assert tj.get("post_processor") is None, "a post_processor: write add_bos_token from it"
    kv.append(["tokenizer.ggml.add_bos_token", BOOL, False])
    if tc.get("chat_template"):
        kv.append(["tokenizer.chat_template", STRING, tc["chat_template"]])
    return kv


def hf_to_gguf(folder, arch, pre, path, rope_orig=None):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    kv = model_kv(cfg, arch) + bpe_vocab_kv(folder, pre, cfg["vocab_size"])
    write_gguf(Gguf(kv, model_tensors(folder, cfg, arch, rope_orig)), path)


def sentencepiece_kv(tokenizer_bin):
    """A llama2.c tokenizer.bin (SentencePiece pieces with ' ' for U+2581, scores; <s> and
    </s> written as "\\n<s>\\n", "\\n</s>\\n") as llama.cpp's "llama" vocabulary."""
    b = open(tokenizer_bin, "rb").read()
    pos, tokens, scores, types = 4, [], [], []
    while pos < len(b):
        score, n = struct.unpack_from("<fi", b, pos)
        piece = b[pos + 8:pos + 8 + n].decode("utf-8")
        pos += 8 + n
        i = len(tokens)
        piece = {1: "<s>", 2: "</s>"}.get(i, piece.replace(" ", "\u2581"))
        tokens.append(piece)
        scores.append(score)
        byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")
        types.append(TOKEN_UNKNOWN if i == 0 else TOKEN_CONTROL if i < 3 else TOKEN_BYTE if byte else TOKEN_NORMAL)
    return [["tokenizer.ggml.model", STRING, "llama"], ["tokenizer.ggml.tokens", ARRAY, (STRING, tokens)],
            ["tokenizer.ggml.scores", ARRAY, (F32V, scores)], ["tokenizer.ggml.token_type", ARRAY, (I32, types)],
            ["tokenizer.ggml.bos_token_id", U32, 1], ["tokenizer.ggml.eos_token_id", U32, 2],
            ["tokenizer.ggml.unknown_token_id", U32, 0], ["tokenizer.ggml.add_bos_token", BOOL, True],
            ["tokenizer.ggml.add_space_prefix", BOOL, True]], len(tokens)


# ----------------------------------------------------------------------------------
# Checks

PASSED, FAILED = 0, 0


def check(ok, what, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok {what}")
    else:
        FAILED += 1
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))
    return ok


def export(src, out, *opts):
    """(exit status, stderr) of ./export -q [opts] src out."""
    p = subprocess.run([EXPORT, "-q", *opts, src, out], capture_output=True, text=True)
    return p.returncode, p.stderr.strip()


def exported(what, src, out, *opts):
    rc, err = export(src, out, *opts)
    return check(rc == 0 and os.path.isfile(out), f"export {what}", err)


def forward(cmd, what):
    """Runs a test program that prints ok / FAIL lines: one check here."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = p.stdout.splitlines()
    fails = [x for x in lines if x.startswith("FAIL")]
    oks = [x for x in lines if x.startswith("ok")]
    said = oks[0][3:] if len(oks) == 1 else f"{len(oks)} ok lines"
    return check(p.returncode == 0 and not fails and oks, f"{what}: {said}",
                 "; ".join(fails[:3]) or (p.stdout + p.stderr)[-400:])


def build_harnesses(tmp, build_dir):
    """tests/test_model.c and tests/test_tokenizer.c: from build_dir, else built here as
    tests/run_tests.sh builds them."""
    if build_dir and all(os.access(os.path.join(build_dir, t), os.X_OK) for t in ("test_model", "test_tokenizer")):
        return {t: os.path.join(build_dir, t) for t in ("test_model", "test_tokenizer")}
    cc = os.environ.get("CC", "cc")
    flags = ["-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-fopenmp", "-Wno-unused-function"]
    out = {}
    for name in ("test_model", "test_tokenizer"):
        exe = os.path.join(tmp, name)
        p = subprocess.run([cc, *flags, "-o", exe, os.path.join(ROOT, "tests", name + ".c"), "-lm"],
                           capture_output=True, text=True)
        check(p.returncode == 0, f"build tests/{name}.c", p.stderr[-400:])
        out[name] = exe
    return out


def floats(path):
    b = open(path, "rb").read()
    return struct.unpack(f"<{len(b) // 4}f", b)


def prompt_logits(model, case, tmp):
    """The logits ./run gives at every position of the case's prompt (None if its
    tokenization differs from the reference's prompt ids), as rows."""
    ids = subprocess.run([RUN, model, "-m", "tokenize", "-i", case["prompt_text"]],
                         capture_output=True, text=True).stdout.split()
    if [int(x) for x in ids] != case["prompt_ids"]:
        return None
    dump = os.path.join(tmp, "logits.f32")
    subprocess.run([RUN, model, "-m", "generate", "-t", "0", "-n", "0", "--stats", "off",
                    "-i", case["prompt_text"], "--dump-logits", dump], capture_output=True)
    x = floats(dump)
    vocab = len(x) // len(ids)
    return [x[r * vocab:(r + 1) * vocab] for r in range(len(ids))]


def compare_to_reference(model, ref_dir, tmp):
    """(max |logit - reference|, top-1 agreement, mean KL(reference || model)) over every
    prompt position of the reference's cases; None if a prompt tokenizes differently."""
    worst, agree, kl, rows = 0.0, 0, 0.0, 0
    for case in json.load(open(os.path.join(ref_dir, "reference.json")))["cases"]:
        ours = prompt_logits(model, case, tmp)
        if ours is None:
            return None
        ref = floats(os.path.join(ref_dir, case["logits_file"]))
        vocab = case["logits_shape"][1]
        for row, pos in enumerate(case["logits_positions"]):
            if pos >= len(ours):
                continue
            a, b = ref[row * vocab:(row + 1) * vocab], ours[pos]
            worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
            agree += a.index(max(a)) == b.index(max(b))
            la, lb = (math.log(sum(math.exp(v - max(r)) for v in r)) + max(r) for r in (a, b))
            kl += sum(math.exp(x - la) * ((x - la) - (y - lb)) for x, y in zip(a, b))
            rows += 1
    return worst, agree / rows, kl / rows


def same_logits(a, b, prompt, tmp):
    """Max difference of the two models' logits on the prompt and 4 greedy tokens,
    relative to the largest logit."""
    out = []
    for m in (a, b):
        dump = os.path.join(tmp, "same.f32")
        subprocess.run([RUN, m, "-m", "generate", "-t", "0", "-n", "4", "--ignore-eos", "--stats", "off",
                        "-i", prompt, "--dump-logits", dump], capture_output=True)
        out.append(floats(dump))
    if len(out[0]) != len(out[1]) or not out[0]:
        return math.inf
    return max(abs(x - y) for x, y in zip(*out)) / max(max(map(abs, out[0])), 1e-30)


def check_float_import(tmp, tools, gguf, hf):
    """A GGUF holding a checkpoint's weights as they are (F32, F16 or BF16) exports to
    what the checkpoint's folder exports to, but for the stop ids (llama.cpp also stops
    at <|endoftext|>): the same weights, bit for bit, so the same logits."""
    a, b = os.path.join(tmp, gguf + ".bin"), os.path.join(tmp, hf + "-hf.bin")
    if not (exported(gguf + ".gguf", os.path.join(GG, gguf + ".gguf"), a)
            and exported(f"{hf} (Hugging Face folder)", os.path.join(HF, hf), b)):
        return
    A, B = open(a, "rb").read(), open(b, "rb").read()
    ha, hb = runc_header(A), runc_header(B)
    check(A[ha["weights_offset"]:] == B[hb["weights_offset"]:],
          f"{gguf}: weights bit-identical to those exported from hf/{hf}")
    differ = [k for k in ha if k not in ("stop_ids", "n_stop") and ha[k] != hb[k]]
    check(not differ and A[256:ha["weights_offset"]] == B[256:hb["weights_offset"]],
          f"{gguf}: hyperparameters, tokenizer and chat template as exported from hf/{hf}",
          f"fields {differ} differ")
    check(set(hb["stop_ids"]) <= set(ha["stop_ids"]),
          f"{gguf}: stop ids {ha['stop_ids']} include hf/{hf}'s {hb['stop_ids']}")
    forward([tools["test_model"], a, os.path.join(HF, hf)],
            f"{gguf}: logits within 1e-4 of the Hugging Face reference, greedy ids identical (test_model)")
    rel = same_logits(a, b, "Once upon a time, in a small village", tmp)
    check(rel <= 1e-6, f"{gguf}: ./run's logits equal those of hf/{hf}'s export "
                       f"(max difference {rel:.1e} of the largest logit, <= 1e-6)")


def check_q8_0_import(tmp, tools, gguf, hf, gs):
    """Q8_0 goes over without requantizing: the same int8 values, each block's f16 scale
    widened to f32 for each of its 32 / gs groups."""
    out = os.path.join(tmp, gguf + ".bin")
    if not exported(f"{gguf}.gguf (default: q8_0)", os.path.join(GG, gguf + ".gguf"), out):
        return
    h = runc_header(open(out, "rb").read())
    check(h["weight_type"] == 1 and h["group_size"] == gs,
          f"{gguf}: q8_0 with group size {gs}", f"weight_type {h['weight_type']}, group {h['group_size']}")
    got, g, bad, n = runc_tensors(out), read_gguf(os.path.join(GG, gguf + ".gguf")), 0, 0
    for t in (t for t in g.tensors if t["type"] == "Q8_0"):
        data, rows = t["data"], t["ne"][1]
        q = [v for k in range(0, len(data), 34) for v in struct.unpack_from("<32b", data, k + 2)]
        d = [f32(half(data, k)) for k in range(0, len(data), 34) for _ in range(32 // gs)]
        heads = {"attn_q.weight": h["n_heads"], "attn_k.weight": h["n_kv_heads"]}.get(t["name"].split(".", 2)[-1])
        if heads:
            q, d = hf_rows(q, rows, heads), hf_rows(d, rows, heads)
        have_q, have_d = got[hf_name(t["name"])]
        bad += (list(have_q) != q) + (list(have_d) != d)
        n += 1
    check(bad == 0 and n > 0, f"{gguf}: the int8 values of its {n} Q8_0 tensors are the GGUF's, "
                              f"their scales its f16 scales", f"{bad} tensors differ")
    f32_model = os.path.join(tmp, hf + "-hf.bin")
    if os.path.exists(f32_model) or exported(f"{hf} (Hugging Face folder)", os.path.join(HF, hf), f32_model):
        forward([sys.executable, os.path.join(ROOT, "tests", "quant_accuracy.py"), RUN, f32_model, out,
                 os.path.join(HF, hf), tmp, "0.95", "2e-3"],
                f"{gguf}: logits within q8_0 tolerance of hf/{hf} in f32 (quant_accuracy.py)")
    forward([tools["test_model"], out, os.path.join(HF, hf), "consistency"],
            f"{gguf}: prefill in blocks = token by token (test_model consistency)")


def check_dequantized(tmp, path, what, types):
    """Every value of the GGUF's tensors of these types, exported with --dtype f32, is
    the value its block layout defines (ref_values), bit for bit."""
    out = os.path.join(tmp, "dequantized.bin")
    if not exported(f"{what} --dtype f32", path, out, "--dtype", "f32"):
        return
    got, g, h = runc_tensors(out), read_gguf(path), runc_header(open(out, "rb").read())
    heads = {"attn_q.weight": h["n_heads"], "attn_k.weight": h["n_kv_heads"]}
    for t in types:
        tensors = [x for x in g.tensors if x["type"] == t]
        n, bad = 0, 0
        for x in tensors:
            want = ref_values(t, x["data"])
            if x["name"].split(".", 2)[-1] in heads:
                want = hf_rows(want, x["ne"][1], heads[x["name"].split(".", 2)[-1]])
            have = got[hf_name(x["name"])]
            n += len(want)
            bad += sum(a != b for a, b in zip(struct.iter_unpack("<I", struct.pack(f"<{len(want)}f", *want)),
                                              struct.iter_unpack("<I", struct.pack(f"<{len(have)}f", *have))))
        check(n > 0 and bad == 0, f"{what}: the {n} values of its {len(tensors)} {t} tensors are exactly "
                                  f"those of the {t} block layout", f"{bad} differ")


def random_blocks(t, n_blocks, rng):
    """Random quants and sign bits, with finite scales (f16 of |x| < 0.05)."""
    per, size = BLOCK[t]
    scales = {"Q8_0": (0,), "Q4_0": (0,), "Q5_0": (0,), "Q4_1": (0, 2), "Q5_1": (0, 2),
              "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}[t]
    out = bytearray(rng.randbytes(size * n_blocks))
    for k in range(n_blocks):
        for o in scales:
            struct.pack_into("<e", out, k * size + o, rng.uniform(-0.05, 0.05))
    return bytes(out)


def random_block_file(path):
    """The 256-wide Q4_K_M file with some tensors replaced by random blocks of each type
    (one of them a q projection, whose rows export permutes)."""
    g = read_gguf(os.path.join(GG, "tiny-smollm2-256-q4_k_m.gguf"))
    rng = random.Random(1234)
    plan = {"blk.0.attn_q.weight": "Q4_0", "blk.0.attn_k.weight": "Q4_1", "blk.0.attn_v.weight": "Q5_0",
            "blk.0.attn_output.weight": "Q5_1", "blk.0.ffn_gate.weight": "Q8_0", "blk.0.ffn_up.weight": "Q4_K",
            "blk.0.ffn_down.weight": "Q5_K", "blk.1.attn_q.weight": "Q6_K"}
    for name, t in plan.items():
        x = g.tensor(name)
        x["type"], x["data"] = t, random_blocks(t, x["ne"][0] * x["ne"][1] // BLOCK[t][0], rng)
    write_gguf(g, path)
    return sorted(set(plan.values()))


def check_quantized_logits(tmp, gguf, ref_dir, llama_cpp, top1, max_kl):
    """A quantized GGUF is a different model from the reference: on these random weights
    4-bit quantization moves logits by 1 to 4. Exported exactly (--dtype f32) or to q8_0,
    the logits must stay within 1.25 x the largest deviation llama.cpp itself shows on the
    same file (tests/fixtures/gguf/README.md; llama.cpp also rounds activations, which
    moves its logits by 0.04 to 0.36), far below what a wrong dequantization or a
    misplaced tensor gives. The q8_0 export against the exact one: top-1 agreement >= top1
    and mean KL <= max_kl (for Q8_0 files the project's q8_0 tolerance; quantizing 4-bit
    values again costs more on these small-gap logits)."""
    bound = round(1.25 * llama_cpp, 3)
    exact, q8 = os.path.join(tmp, gguf + "-f32.bin"), os.path.join(tmp, gguf + "-q8_0.bin")
    path = os.path.join(GG, gguf + ".gguf")
    if not (exported(f"{gguf}.gguf --dtype f32", path, exact, "--dtype", "f32")
            and exported(f"{gguf}.gguf (default: q8_0)", path, q8)):
        return
    for model, label in ((exact, "exact"), (q8, "q8_0")):
        r = compare_to_reference(model, ref_dir, tmp)
        if r is None:
            check(False, f"{gguf} ({label}): prompts tokenize as the reference")
            continue
        worst, agree, kl = r
        check(worst <= bound, f"{gguf} ({label}): max |logit - reference| {worst:.3f} <= {bound} "
                              f"(llama.cpp: {llama_cpp}; top-1 agreement {100 * agree:.0f}%, mean KL {kl:.2e})")
    forward([sys.executable, os.path.join(ROOT, "tests", "quant_accuracy.py"), RUN, exact, q8,
             ref_dir, tmp, str(top1), str(max_kl)], f"{gguf}: q8_0 export vs exact export (quant_accuracy.py)")


def token_records(b):
    """[(bytes, score, flags)] of a run.c model file's vocabulary."""
    h = header.read(b)
    strings, tokens = h["strings_offset"], h["tokens_offset"]
    out = []
    for i in range(h["vocab_size"]):
        off, n, score, flags = struct.unpack_from("<IIfI", b, tokens + 16 * i)
        out.append((b[strings + off:strings + off + n], score, flags))
    return out


def check_made_gguf(tmp, tools, hf, arch, pre, tok_dir):
    """A GGUF written here as llama.cpp's converter writes hf/HF (F32 tensors): the same
    file as exported from the folder but for the stop ids, the Hugging Face reference's
    logits and greedy ids, and the tokenizer's reference ids."""
    path, out, ref = (os.path.join(tmp, hf + x) for x in (".gguf", "-gguf.bin", "-hf.bin"))
    hf_to_gguf(os.path.join(HF, hf), arch, pre, path)
    if not (exported(f"{hf} as a GGUF file ({arch}, pre-tokenizer {pre})", path, out)
            and exported(f"{hf} (Hugging Face folder)", os.path.join(HF, hf), ref)):
        return
    A, B = open(out, "rb").read(), open(ref, "rb").read()
    ha, hb = runc_header(A), runc_header(B)
    differ = [k for k in ha if k not in ("stop_ids", "n_stop") and ha[k] != hb[k]]
    check(not differ and A[256:] == B[256:], f"{hf} GGUF: the file exported from the folder, but for the stop ids "
                                             f"{ha['stop_ids']} (folder: {hb['stop_ids']})", f"fields {differ} differ")
    forward([tools["test_model"], out, os.path.join(HF, hf)],
            f"{hf} GGUF: logits within 1e-4 of the Hugging Face reference, greedy ids identical (test_model)")
    forward([tools["test_tokenizer"], out, os.path.join(FIX, "tokenizers", tok_dir)],
            f"{hf} GGUF: tokenization from the GGUF metadata = Hugging Face's ids (test_tokenizer {tok_dir})")


def check_llama3_rope(tmp):
    """Llama 3's rope_freqs divisors become the four parameters that give them. A file
    whose divisors a converter computed from another original context (llama.cpp's
    converter reads it from the top level of config.json, default 8192) must give the
    model with that context: llama.cpp's answer for the file, not the folder's."""
    path, out = os.path.join(tmp, "l3-8192.gguf"), os.path.join(tmp, "l3-8192.bin")
    hf_to_gguf(os.path.join(HF, "tiny-llama3"), "llama", "llama-bpe", path, rope_orig=8192)
    folder = os.path.join(tmp, "tiny-llama3-8192")
    shutil.copytree(os.path.join(HF, "tiny-llama3"), folder)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    cfg["rope_scaling"]["original_max_position_embeddings"] = 8192
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
    ref = os.path.join(tmp, "l3-8192-hf.bin")
    if exported("tiny-llama3 GGUF, rope_freqs for an original context of 8192", path, out) and \
            exported("tiny-llama3 folder with original_max_position_embeddings 8192", folder, ref):
        h = runc_header(open(out, "rb").read())
        rope = tuple(h[k] for k in ("rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
                                   "rope_original_max_pos"))
        check(rope == (32.0, 1.0, 4.0, 8192), f"rope_freqs of context 8192: factor, low, high, context {rope}")
        rel = same_logits(out, ref, "Once upon a time, in a small village", tmp)
        check(rel <= 1e-6, f"rope_freqs of context 8192: the logits of the folder with context 8192 ({rel:.1e})")
    # Llama 3.1 and 3.2's own settings, at their head size 64 and rope_theta 5e5: the
    # divisors as the converter computes them in float64 and as torch does in float32
    g = read_gguf(os.path.join(GG, "tiny-smollm2-256-q4_k_m.gguf"))
    g.set("llama.rope.freq_base", F32V, 500000.0)
    for factor, rounding in ((32.0, "float64"), (8.0, "float64"), (32.0, "float32")):
        div = llama3_rope_freqs(64, 500000.0, factor, 1.0, 4.0, 8192) if rounding == "float64" \
            else llama3_rope_freqs_f32(64, 500000.0, factor, 1.0, 4.0, 8192)
        g.tensors = [t for t in g.tensors if t["name"] != "rope_freqs.weight"] + [
            {"name": "rope_freqs.weight", "ne": [32], "type": "F32", "data": struct.pack("<32f", *div)}]
        write_gguf(g, path)
        if exported(f"rope_freqs of factor {factor}, low 1, high 4, context 8192 ({rounding})", path, out):
            h = runc_header(open(out, "rb").read())
            rope = tuple(h[k] for k in ("rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
                                       "rope_original_max_pos", "rope_type"))
            check(rope == (factor, 1.0, 4.0, 8192, 1), f"... read back as factor, low, high, context {rope[:4]}")


def llama3_rope_freqs_f32(head_dim, theta, factor, low, high, orig):
    """The same divisors with every step rounded to float32, as torch computes them."""
    out = []
    for i in range(0, head_dim, 2):
        freq = f32(1 / f32(f32(theta) ** f32(i / head_dim)))
        wavelen = f32(f32(2 * math.pi) / freq)
        if wavelen < f32(orig / high):
            out.append(1.0)
        elif wavelen > f32(orig / low):
            out.append(factor)
        else:
            s = f32(f32(f32(orig / wavelen) - low) / (high - low))
            out.append(f32(1 / f32(f32(f32(1 - s) / factor) + s)))
    return out


def check_sentencepiece(tmp, tools):
    """llama.cpp's "llama" vocabulary (SentencePiece): llama2.c's stories260K with its
    tok512 vocabulary against the folder exported with --tokenizer, and the real Llama 2
    vocabulary against SentencePiece's ids."""
    hf, tok = os.path.join(HF, "stories260K-hf"), os.path.join(FIX, "stories260K", "tok512.bin")
    cfg = json.load(open(os.path.join(hf, "config.json")))
    tok_kv, _ = sentencepiece_kv(tok)
    path, out, ref = (os.path.join(tmp, "s260" + x) for x in (".gguf", "-gguf.bin", "-hf.bin"))
    write_gguf(Gguf(model_kv(cfg, "llama") + tok_kv, model_tensors(hf, cfg, "llama")), path)
    if exported("stories260K as a GGUF file (SentencePiece vocabulary)", path, out) and \
            exported("stories260K-hf --tokenizer tok512.bin", hf, ref, "--tokenizer", tok):
        A, B = open(out, "rb").read(), open(ref, "rb").read()
        ha, hb = runc_header(A), runc_header(B)
        differ = [k for k in ha if k not in ("weights_offset",) and ha[k] != hb[k]]
        ta, tb = token_records(A), token_records(B)
        check(not differ and A[ha["weights_offset"]:] == B[hb["weights_offset"]:] and ta[3:] == tb[3:]
              and [t[1:] for t in ta[:3]] == [t[1:] for t in tb[:3]],
              "stories260K GGUF: weights, header and pieces as exported with --tokenizer tok512.bin "
              "(but <s> and </s>, which tokenizer.bin spells \\n<s>\\n, \\n</s>\\n)", f"fields {differ} differ")
        forward([tools["test_model"], out, hf], "stories260K GGUF: logits and greedy ids of the reference (test_model)")
    tok_kv, n = sentencepiece_kv(os.path.join(FIX, "tokenizers", "real-llama2", "tokenizer.bin"))
    cfg = {"num_hidden_layers": 1, "max_position_embeddings": 64, "hidden_size": 8, "intermediate_size": 8,
           "num_attention_heads": 1, "rms_norm_eps": 1e-5, "vocab_size": n}
    names = ["token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"] + \
        [f"blk.0.{x}.weight" for x in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")]
    tensors = [{"name": x, "ne": [8, n] if x == "token_embd.weight" else [8] if "norm" in x else [8, 8],
                "type": "F32", "data": bytes(4 * (8 * n if x == "token_embd.weight" else 8 if "norm" in x else 64))}
               for x in names]
    write_gguf(Gguf(model_kv(cfg, "llama") + tok_kv, tensors), path)
    if exported("a GGUF file with the Llama 2 vocabulary (32000 SentencePiece pieces)", path, out):
        forward([tools["test_tokenizer"], out, os.path.join(FIX, "tokenizers", "real-llama2"), "--no-chat"],
                "Llama 2 vocabulary from GGUF metadata: SentencePiece's ids (test_tokenizer real-llama2)")


def fetch(args, **env):
    """(exit status, output) of models/fetch ARGS with the environment changed by env
    (a value None removes the variable)."""
    e = dict(os.environ)
    for k, v in env.items():
        e.pop(k, None) if v is None else e.__setitem__(k, v)
    p = subprocess.run([os.path.join(ROOT, "models", "fetch"), *args], capture_output=True, text=True, env=e)
    return p.returncode, p.stdout + p.stderr


def check_fetch_refuses(what, word, args, **env):
    """models/fetch must exit 1 saying word, and write no model file."""
    out_dir = env.setdefault("MODELS_DIR", tempfile.mkdtemp(prefix="fetched."))
    rc, text = fetch(args, **env)
    left = os.listdir(out_dir) if os.path.isdir(out_dir) else []
    check(rc == 1 and word in text and not left, f"models/fetch {' '.join(args)}, {what}: exit 1, says '{word}'",
          f"exit {rc}, left {left}: {text.strip()[-300:]}")
    shutil.rmtree(out_dir, ignore_errors=True)


def check_ollama(tmp):
    """models/fetch ollama:NAME[:TAG] on a copy of the Ollama models folder."""
    models = os.path.join(tmp, "ollama", "models")
    shutil.copytree(os.path.join(GG, "ollama", "models"), models)
    for folder, _, files in os.walk(models):
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)
    out_dir = os.path.join(tmp, "fetched")
    out = os.path.join(out_dir, "tiny-smollm2-latest.bin")
    rc, text = fetch(["ollama:tiny-smollm2"], OLLAMA_MODELS=models, MODELS_DIR=out_dir)
    check(rc == 0 and os.path.isfile(out) and out in text.splitlines()[-1],
          "models/fetch ollama:tiny-smollm2 writes and names models/tiny-smollm2-latest.bin", text[-300:])
    ref = os.path.join(tmp, "blob-ref.bin")
    if exported("tiny-smollm2-q8_0.gguf (the model blob's GGUF)", os.path.join(GG, "tiny-smollm2-q8_0.gguf"), ref):
        check(os.path.isfile(out) and open(out, "rb").read() == open(ref, "rb").read(),
              "... the file ./export makes of the blob's GGUF")
    rc, text = fetch(["ollama:tiny-smollm2:latest"], OLLAMA_MODELS=models, MODELS_DIR=out_dir)
    check(rc == 0 and "up to date" in text, "models/fetch ollama:tiny-smollm2:latest: the same model, up to date", text)
    rc, text = fetch(["ollama:tiny-smollm2", "--dtype", "f32"], OLLAMA_MODELS=models, MODELS_DIR=out_dir)
    f32_out = os.path.join(out_dir, "tiny-smollm2-latest-f32.bin")
    check(rc == 0 and os.path.isfile(f32_out) and runc_header(open(f32_out, "rb").read())["weight_type"] == 0,
          "models/fetch ollama:tiny-smollm2 --dtype f32 writes tiny-smollm2-latest-f32.bin in f32", text[-300:])
    manifests = os.path.join(models, "manifests", "registry.ollama.ai", "library", "tiny-smollm2")
    check_fetch_refuses("a tag Ollama does not have", os.path.join(manifests, "7b"), ["ollama:tiny-smollm2:7b"],
                        OLLAMA_MODELS=models)
    check_fetch_refuses("no such folder", os.path.join(tmp, "nowhere"), ["ollama:tiny-smollm2"],
                        OLLAMA_MODELS=os.path.join(tmp, "nowhere"))
    check_fetch_refuses("OLLAMA_MODELS unset, no ~/.ollama", os.path.join(tmp, ".ollama", "models"),
                        ["ollama:tiny-smollm2"], OLLAMA_MODELS=None, HOME=tmp)
    check_fetch_refuses("a name that is not one", "not a model name", ["ollama:../tiny-smollm2"], OLLAMA_MODELS=models)
    manifest = json.load(open(os.path.join(manifests, "latest")))
    blob = os.path.join(models, "blobs", manifest["layers"][0]["digest"].replace(":", "-"))
    data = open(blob, "rb").read()
    open(blob, "wb").write(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    check_fetch_refuses("a damaged blob", "sha256 mismatch", ["ollama:tiny-smollm2"], OLLAMA_MODELS=models)
    open(blob, "wb").write(data[:-1])
    check_fetch_refuses("a truncated blob", "the manifest says 279616", ["ollama:tiny-smollm2"], OLLAMA_MODELS=models)
    open(blob, "wb").write(data)
    manifest["layers"] = manifest["layers"][1:]
    json.dump(manifest, open(os.path.join(manifests, "latest"), "w"))
    check_fetch_refuses("a manifest without a model layer", "model layer", ["ollama:tiny-smollm2"], OLLAMA_MODELS=models)


def main():
    tmp = tempfile.mkdtemp(prefix="test_gguf.")
    try:
        tools = build_harnesses(tmp, sys.argv[1] if len(sys.argv) > 1 else None)
        print("== float GGUF files: the same model as the Hugging Face folder")
        for gguf, hf in (("tiny-smollm2-bf16", "tiny-smollm2"), ("tiny-untied-mha-f32-f32", "tiny-untied-mha-f32"),
                         ("tiny-mqa-f16-f16", "tiny-mqa-f16")):
            check_float_import(tmp, tools, gguf, hf)
        print("== Q8_0 GGUF files: int8 values taken over")
        check_q8_0_import(tmp, tools, "tiny-smollm2-q8_0", "tiny-smollm2", 16)
        check_q8_0_import(tmp, tools, "tiny-mqa-f16-q8_0", "tiny-mqa-f16", 32)
        print("== dequantization: every value as the block layouts define it")
        for gguf, types in (("tiny-smollm2-q8_0", ["Q8_0", "F16"]), ("tiny-smollm2-q4_0", ["Q4_0"]),
                            ("tiny-smollm2-q4_k_m", ["Q5_0"]), ("tiny-smollm2-256-q4_k_m", ["Q4_K", "Q6_K"]),
                            ("tiny-smollm2-bf16", ["BF16"])):
            check_dequantized(tmp, os.path.join(GG, gguf + ".gguf"), gguf, types)
        path = os.path.join(tmp, "random-blocks.gguf")
        check_dequantized(tmp, path, "random blocks", random_block_file(path))
        print("== GGUF files of the other families and tokenizers, written here as llama.cpp's converter writes them")
        check_made_gguf(tmp, tools, "tiny-llama3", "llama", "llama-bpe", "tiny-llama3")
        check_made_gguf(tmp, tools, "tiny-qwen2", "qwen2", "qwen2", "tiny-qwen2")
        check_llama3_rope(tmp)
        check_sentencepiece(tmp, tools)
        print("== models/fetch ollama:NAME[:TAG]")
        check_ollama(tmp)
        print("== quantized GGUF files: logits")
        for gguf, ref, llama_cpp, top1, max_kl in (
                ("tiny-smollm2-q8_0", "hf/tiny-smollm2", 0.13, 0.95, 2e-3),
                ("tiny-smollm2-q4_0", "hf/tiny-smollm2", 1.4, 0.85, 5e-3),
                ("tiny-smollm2-q4_k_m", "hf/tiny-smollm2", 0.80, 0.85, 5e-3),
                ("tiny-smollm2-256-q4_k_m", "gguf/tiny-smollm2-256-reference", 3.1, 0.85, 5e-3)):
            check_quantized_logits(tmp, gguf, os.path.join(FIX, ref), llama_cpp, top1, max_kl)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
