#!/usr/bin/env python3
"""Writes the seeds of the text fuzz targets into tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/make_corpus.py

The seeds are the reference texts of tests/fixtures/tokenizers/*/encode.tsv, the chat
renderings of chat.tsv, tests/data/sentiment.tsv and probes.jsonl, in each target's
input format (see the targets' heads), and long inputs made of them (several KB: the
fuzzer grows an input's length slowly, so it would take hours to try long messages):
  fuzz_encode    tokenizer byte + text
  fuzz_decode    tokenizer byte + (u16 id, chunking byte) per token: the reference ids
  fuzz_chat      flags byte + system NUL user NUL user
  fuzz_batch     a batch file: JSON Lines and plain prompts
  fuzz_classify  flags byte + [--labels NUL] [--template NUL] [system NUL] + a TSV file
Files are named by the SHA-1 of their content, as libFuzzer names its own. The same
folders hold the corpus that fuzzing grew, minimised (tests/fuzz/run.sh --merge), and
files named regression-*: inputs that once found a bug, kept so that every run tries
them again. This script only adds files; run.sh --merge drops those that add no
coverage. fuzz_load's seeds are model files: tests/fuzz/run.sh exports them at fuzz
time (make_models.py).
"""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TOK = os.path.join(os.path.dirname(HERE), "fixtures", "tokenizers")
DATA = os.path.join(os.path.dirname(HERE), "data")
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


def long_text(texts, size):
    """The texts (without NUL bytes) one after another, repeated up to size bytes."""
    parts = [t.replace(b"\0", b"") for t in texts if t.replace(b"\0", b"")]
    out = b""
    while len(out) < size:
        for t in parts:
            out += t + b" "
    return out[:size].decode("utf-8", "ignore").encode("utf-8")


def chat_seeds(texts, written):
    for i, text in enumerate(texts):
        nxt = texts[(i + 1) % len(texts)]
        write("fuzz_chat", bytes([i % 16]) + text.replace(b"\0", b"") + b"\0" + nxt.replace(b"\0", b""), written)
    # long messages: a 4 KB system prompt and user turns of 1 to 6 KB, for each template
    # and tokenizer (flags 0..15), up to 16 KB in all
    for flags in range(16):
        system = long_text(texts[flags:], 4096) if flags & 4 else b""
        turns = [long_text(texts[flags + k:], size) for k, size in enumerate((6000, 1000, 3000))]
        write("fuzz_chat", bytes([flags]) + (system + b"\0" if flags & 4 else b"") + b"\0".join(turns), written)


def batch_seeds(texts, written):
    with open(os.path.join(DATA, "probes.jsonl"), "rb") as f:
        write("fuzz_batch", f.read(), written)
    long_prompt = long_text(texts, 6000).decode("utf-8")
    lines = [
        {"prompt": "Where is Groningen?"},
        {"prompt": "Say hi", "system": "Be brief.", "temperature": 0.7, "top_k": 40, "top_p": 0.95,
         "repetition_penalty": 1.1, "seed": 42, "max_new_tokens": 16},
        {"prompt": "caf\u00e9 \U0001F600 \n\t\"quoted\" \\ /", "temperature": 0, "max_new_tokens": -1},
        {"prompt": long_prompt, "seed": 9007199254740991},
    ]
    text = "".join(json.dumps(line, ensure_ascii=ascii) + "\n" for line in lines for ascii in (False, True))
    text += ('{ "prompt" : "spaces" , "top_k" : 2.0 , "temperature" : 1e-2 }\r\n'
             "a plain prompt, not JSON\n\n  {\"prompt\": \"leading spaces\"}\n"
             '{"prompt": "\\ud83d\\ude00 \\u00E9 \\/ \\b\\f\\r"}\n'
             '{"prompt": "x", "top_k": 0003}\n{"prompt": "x",}\n{"prompt": "\\u0000"}\n{"prompt": "\\ud800"}\n'
             '{"prompt": "x", "seed": 1.5}\n{"prompt": "x", "top_p": 2}\n{"prompt": "x", "prompt": "y"}\n'
             '{"prompt": "x", "temp": 1}\n{"system": "no prompt"}\n{"prompt": 3}\n{"prompt": "x"} trailing\n')
    write("fuzz_batch", text.encode("utf-8"), written)
    write("fuzz_batch", b"\xef\xbb\xbf" + json.dumps(lines[1]).encode() + b"\n", written)
    write("fuzz_batch", json.dumps({"prompt": long_prompt, "system": long_text(texts[3:], 4000).decode()}).encode(),
          written)


def classify_seeds(texts, written):
    with open(os.path.join(DATA, "sentiment.tsv"), "rb") as f:
        tsv = f.read()
    for flags in range(0, 32, 3):   # every option, model and prediction kind, some together
        options = b""
        if flags & 1:
            options += b"POSITIVE,NEGATIVE,NEUTRAL\0"
        if flags & 2:
            options += b"Text: {text}\nLabel?\0"
        if flags & 4:
            options += b"Answer POSITIVE, NEGATIVE or NEUTRAL.\0"
        write("fuzz_classify", bytes([flags]) + options + tsv, written)
    write("fuzz_classify", b"\x08" + tsv.replace(b"\n", b"\r\n"), written)
    # long texts: rows of 1 to 6 KB, labels among a few, and answers that match a label
    rows = [b"text\tlabel"] + [long_text(texts[i:], 1000 * (i % 6 + 1)).replace(b"\t", b" ").replace(b"\n", b" ")
                                 .replace(b"\r", b" ") + b"\t" + [b"A", b"B", b"C"][i % 3] for i in range(3)]
    rows += [b" positive.\tPOSITIVE", b"\"Negative\"\tNEGATIVE", b"neutral!\tPOSITIVE"]
    write("fuzz_classify", b"\x00" + b"\n".join(rows) + b"\n", written)


def main():
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
    for kind in range(4):
        write("fuzz_encode", bytes([kind]) + long_text(texts[kind:], 4000), written)
    chat_seeds(texts, written)
    batch_seeds(texts, written)
    classify_seeds(texts, written)
    print(f"{len(written)} seeds written")


if __name__ == "__main__":
    main()
