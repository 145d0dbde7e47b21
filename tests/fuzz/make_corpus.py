#!/usr/bin/env python3
"""Writes the seed corpora of the text fuzz targets into tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/make_corpus.py

The seeds are the reference texts of tests/fixtures/tokenizers/*/encode.tsv and the
chat renderings of chat.tsv, in each target's input format (see the targets' heads):
  fuzz_encode  tokenizer byte + text
  fuzz_decode  tokenizer byte + (u16 id, chunking byte) per token: the reference ids
  fuzz_chat    flags byte + system NUL user NUL user
Files are named by the SHA-1 of their content, as libFuzzer names its own. Files named
regression-* are inputs that once found a bug (kept, so that every run tries them
again). fuzz_load's seeds are model files: tests/fuzz/run.sh exports them at fuzz time
(make_models.py); its corpus folder holds only regressions.
The output is committed; rerun this when the fixtures change.
"""
import hashlib
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
TOK = os.path.join(os.path.dirname(HERE), "fixtures", "tokenizers")
KINDS = {"tiny-gpt2": 0, "tiny-llama3": 1, "tiny-qwen2": 2}   # fuzz_common.h's order


def read_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                rows.append(line.rstrip("\n").split("\t"))
    return rows


def write(target, data, out):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
    out.add((target, data))


def main():
    for target in ("fuzz_encode", "fuzz_decode", "fuzz_chat"):   # its own seeds, not regression-*
        d = os.path.join(HERE, "corpus", target)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if re.fullmatch(r"[0-9a-f]{40}", name):
                os.remove(os.path.join(d, name))
    written = set()
    texts = []
    for name, kind in KINDS.items():
        for row in read_tsv(os.path.join(TOK, name, "encode.tsv")):
            text = bytes.fromhex(row[0])
            ids = [int(x) for x in row[1].split()] if len(row) > 1 else []
            if text not in texts:
                texts.append(text)
            write("fuzz_decode", bytes([kind]) + b"".join(i.to_bytes(2, "little") + b"\x55" for i in ids), written)
        for row in read_tsv(os.path.join(TOK, name, "chat.tsv")):
            write("fuzz_encode", bytes([kind]) + bytes.fromhex(row[1]), written)
    for i, text in enumerate(texts):
        write("fuzz_encode", bytes([i % 4]) + text, written)
        nxt = texts[(i + 1) % len(texts)]
        write("fuzz_chat", bytes([i % 16]) + text.replace(b"\0", b"") + b"\0" + nxt.replace(b"\0", b""), written)
    print(f"{len(written)} seeds written")


if __name__ == "__main__":
    main()
