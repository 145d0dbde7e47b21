#!/usr/bin/env python3
"""export with config.json keys left out: transformers' defaults, not guesses.

    test_export_defaults.py EXPORT TEST_MODEL FIXTURES BUILD_DIR

FIXTURES is tests/fixtures/hf; TEST_MODEL is the built tests/test_model.c. What
transformers does when a key is absent is in its configuration classes (LlamaConfig,
Qwen2Config in transformers 5): tie_word_embeddings defaults to False in both;
LlamaConfig's num_key_value_heads defaults to num_attention_heads; head_dim to
hidden_size // num_attention_heads.
- tiny-untied-mha-f32 (Llama, lm_head of its own, 3 heads, 3 key/value heads) without
  tie_word_embeddings and num_key_value_heads exports to a file whose header says
  untied and 3 key/value heads, and whose logits are the Hugging Face reference's
  (test_model: every logit within 1e-4, every greedy id);
- tiny-llama3 without generation_config.json stops at config.json's eos_token_id [0, 2]
  (transformers then builds the generation config from config.json);
- tiny-qwen2 and tiny-smollm2 (tied: they have no lm_head.weight) without
  tie_word_embeddings are untied models missing their lm_head for transformers (it would
  initialise one at random): export refuses them, naming lm_head.weight, instead of
  tying them.
One ok/FAIL line per check; exit status 1 if any failed.
"""
import json
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
import header  # tests/header.py: the header read through export's table
from oracle import check, exit_status

def without_keys(fixtures, name, build, keys):
    """A copy of fixture name in build with keys removed from its config.json."""
    out = os.path.join(build, f"{name}-defaults")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(os.path.join(fixtures, name), out)
    path = os.path.join(out, "config.json")
    cfg = json.load(open(path))
    for k in keys:
        cfg.pop(k, None)
    json.dump(cfg, open(path, "w"), indent=2)
    return out


def header_field(path, name):  # FORMAT.md's header, read through export's table (tests/header.py)
    return header.read(open(path, "rb").read(256))[name]


def main():
    export, test_model, fixtures, build = sys.argv[1:5]
    src = without_keys(fixtures, "tiny-untied-mha-f32", build, ["tie_word_embeddings", "num_key_value_heads", "head_dim"])
    out = src + ".bin"
    p = subprocess.run([export, "-q", src, out], capture_output=True, timeout=300)
    check(p.returncode == 0, "export tiny-untied-mha-f32 without tie_word_embeddings, num_key_value_heads, head_dim",
          p.stderr.decode())
    if p.returncode == 0:
        tied, kv, hd = header_field(out, "tied_embeddings"), header_field(out, "n_kv_heads"), header_field(out, "head_dim")
        check((tied, kv, hd) == (0, 3, 16), f"... header: tied_embeddings {tied} (False), n_kv_heads {kv} (= 3 heads), "
              f"head_dim {hd} (= 48 // 3)")
        p = subprocess.run([test_model, out, os.path.join(fixtures, "tiny-untied-mha-f32")], capture_output=True,
                           timeout=300)
        lines = p.stdout.decode().splitlines()
        check(p.returncode == 0 and any(x.startswith("ok ") for x in lines),
              "... and its logits and greedy ids are the Hugging Face reference's (test_model)",
              "\n".join(lines[-6:]))
    # Without generation_config.json, transformers' GenerationConfig comes from config.json
    # (GenerationConfig.from_model_config): its eos_token_id [0, 2] ends generation.
    src = without_keys(fixtures, "tiny-llama3", build, [])
    os.remove(os.path.join(src, "generation_config.json"))
    out = src + ".bin"
    p = subprocess.run([export, "-q", src, out], capture_output=True, timeout=300)
    stops = set()
    if p.returncode == 0:
        n_stop = header_field(out, "n_stop")
        stops = set(header_field(out, "stop_ids")[:min(n_stop, 8)])
    check({0, 2} <= stops, f"tiny-llama3 without generation_config.json: the stop ids {sorted(stops)} hold config.json's "
          "eos_token_id [0, 2]", p.stderr.decode())
    for name in ("tiny-qwen2", "tiny-smollm2"):
        src = without_keys(fixtures, name, build, ["tie_word_embeddings"])
        out = src + ".bin"
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([export, "-q", src, out], capture_output=True, timeout=300)
        err = p.stderr.decode()
        check(p.returncode == 1 and "lm_head.weight" in err and not os.path.exists(out),
              f"export refuses {name} without tie_word_embeddings (transformers: untied, and it has no lm_head): "
              f"{err.strip()[:120]}", err)
    return exit_status()


sys.exit(main())
