#!/usr/bin/env python3
"""make_random_model.py: write a Hugging Face checkpoint folder with RANDOM weights.

Usage:
    bench/make_random_model.py OUT_DIR [--config CONFIG.json] [--seed N]

The default shapes are exactly SmolLM2-135M's (LlamaForCausalLM: hidden 576,
intermediate 1536, 30 layers, 9 heads, 3 kv heads, head_dim 64, vocab 49152,
max_position_embeddings 8192, rope_theta 100000, rms_norm_eps 1e-5, tied embeddings,
bf16). --config CONFIG.json overrides any of config.json's keys (e.g. other shapes).

Writes OUT_DIR/{model.safetensors, config.json, generation_config.json,
tokenizer.json, tokenizer_config.json, special_tokens_map.json}.

Weights: random bf16 values +-[2^-6, 2^-5) (no NaN/inf, realistic magnitudes), built
from os.urandom + bytes.translate; norm weights are 1.0. The tokenizer is a synthetic
byte-level BPE with SmolLM2's structure: ids 0..2 are <|endoftext|>, <|im_start|>,
<|im_end|>, then the 256 GPT-2 byte-level symbols, then filler tokens that are the
results of merges of pairs of symbols. Digits never take part in a merge (and the
pre-tokenizer splits digits individually), so a string of N digits is N tokens.

--seed N makes the weights deterministic (random.Random(N).randbytes instead of
os.urandom; just as fast). Python 3 standard library only.
"""

import argparse
import json
import os
import random
import struct
import sys
import time

SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rope_scaling": None,
    "rms_norm_eps": 1e-05,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.041666666666666664,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
    "use_cache": True,
    "torch_dtype": "bfloat16",
}

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# SmolLM2's ChatML chat template (as in SmolLM2-135M-Instruct's tokenizer_config.json).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# bf16 little-endian: byte 1 = sign | exponent[7:1], byte 0 = exponent[0] | mantissa.
# Exponent 121 (= 127 - 6) -> |value| in [2^-6, 2^-5).
EXP = 127 - 6
HI_TABLE = bytes((b & 0x80) | (EXP >> 1) for b in range(256))
LO_TABLE = bytes(((EXP & 1) << 7) | (b & 0x7F) for b in range(256))
ONE_BF16 = b"\x80\x3f"  # 0x3F80 = 1.0


def bytes_to_unicode():
    """GPT-2's byte -> printable unicode character map."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def make_tokenizer(vocab_size):
    """vocab {str: id} and merges [[a, b]] for a vocab of exactly vocab_size entries."""
    b2u = bytes_to_unicode()
    symbols = sorted(b2u.values())              # the fixture's order (by code point)
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for s in symbols:
        vocab[s] = len(vocab)
    if vocab_size < len(vocab):
        sys.exit(f"make_random_model: vocab_size {vocab_size} < {len(vocab)}")
    digits = {b2u[b] for b in b"0123456789"}
    mergeable = [s for s in symbols if s not in digits]
    merges = []
    # Level 1: pairs of single symbols; level k+1: level-k tokens + one symbol. Every
    # merge result is the concatenation of its parts and is a vocab entry.
    prev = mergeable
    while len(vocab) < vocab_size:
        cur = []
        for a in prev:
            for b in mergeable:
                if len(vocab) >= vocab_size:
                    break
                t = a + b
                if t in vocab:
                    continue
                vocab[t] = len(vocab)
                merges.append([a, b])
                cur.append(t)
            if len(vocab) >= vocab_size:
                break
        prev = cur
    return vocab, merges


def tokenizer_json(vocab_size):
    vocab, merges = make_tokenizer(vocab_size)
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, s in enumerate(SPECIALS)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def tokenizer_config(vocab_size, max_len):
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False,
                                          "special": True}
                                 for i, s in enumerate(SPECIALS)},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": vocab_size,
    }


def tensor_list(cfg):
    """[(name, shape, is_norm)] in the order they are written."""
    d, f = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // nh
    v = cfg["vocab_size"]
    out = [("model.embed_tokens.weight", [v, d], False)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", [d], True),
            (p + "self_attn.q_proj.weight", [nh * hd, d], False),
            (p + "self_attn.k_proj.weight", [nkv * hd, d], False),
            (p + "self_attn.v_proj.weight", [nkv * hd, d], False),
            (p + "self_attn.o_proj.weight", [d, nh * hd], False),
            (p + "post_attention_layernorm.weight", [d], True),
            (p + "mlp.gate_proj.weight", [f, d], False),
            (p + "mlp.up_proj.weight", [f, d], False),
            (p + "mlp.down_proj.weight", [d, f], False),
        ]
    out.append(("model.norm.weight", [d], True))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", [v, d], False))
    return out


def random_bf16(n, randbytes):
    """n random bf16 values +-[2^-6, 2^-5) as 2n little-endian bytes."""
    buf = bytearray(randbytes(2 * n))
    buf[1::2] = buf[1::2].translate(HI_TABLE)
    buf[0::2] = buf[0::2].translate(LO_TABLE)
    return buf


def write_safetensors(path, cfg, randbytes):
    tensors = tensor_list(cfg)
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape, _ in tensors:
        n = 1
        for s in shape:
            n *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape, is_norm in tensors:
            n = 1
            for s in shape:
                n *= s
            f.write(ONE_BF16 * n if is_norm else random_bf16(n, randbytes))
    os.replace(tmp, path)
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--config", help="JSON file whose keys override SmolLM2-135M's config")
    ap.add_argument("--seed", type=int, help="deterministic weights")
    args = ap.parse_args()

    t0 = time.time()
    cfg = dict(SMOLLM2_135M)
    if args.config:
        with open(args.config) as f:
            cfg.update(json.load(f))
    randbytes = random.Random(args.seed).randbytes if args.seed is not None else os.urandom

    os.makedirs(args.out_dir, exist_ok=True)
    j = lambda name: os.path.join(args.out_dir, name)

    def dump(name, obj):
        with open(j(name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")

    dump("config.json", cfg)
    dump("generation_config.json", {"_from_model_config": True,
                                    "bos_token_id": cfg.get("bos_token_id", 1),
                                    "eos_token_id": cfg.get("eos_token_id", 2),
                                    "pad_token_id": cfg.get("pad_token_id", 2)})
    tok = tokenizer_json(cfg["vocab_size"])
    with open(j("tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    dump("tokenizer_config.json",
         tokenizer_config(cfg["vocab_size"], min(cfg["max_position_embeddings"], 8192)))
    dump("special_tokens_map.json", {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                                     "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>",
                                     "additional_special_tokens": ["<|im_start|>",
                                                                   "<|im_end|>"]})
    nbytes = write_safetensors(j("model.safetensors"), cfg, randbytes)
    print(f"make_random_model: wrote {args.out_dir}: {nbytes // 2 / 1e6:.1f}M bf16 parameters, "
          f"vocab {cfg['vocab_size']} ({len(tok['model']['merges'])} merges) "
          f"in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
