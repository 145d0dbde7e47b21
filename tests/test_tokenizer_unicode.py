#!/usr/bin/env python3
"""Numbers beyond ASCII and NFC through `run -m tokenize`, against independent oracles.

    test_tokenizer_unicode.py RUN BUILD_DIR FIXTURES

BUILD_DIR holds the exported tiny-llama3, tiny-qwen2 and smollm2-vocab-tiny models;
FIXTURES is tests/fixtures/hf (their tokenizer.json files).

- \\p{N} is every Unicode number (Nd, Nl, No: Arabic-Indic digits, superscripts), not
  only 0-9. The expected pre-tokens of each text are worked out by hand below from the
  model's pre-tokenizer regex (the reasoning is beside each), and the expected ids are
  those pre-tokens put through byte-level BPE here, in Python, from the model's own
  tokenizer.json (vocabulary and merge ranks; Llama 3's ignore_merges).
- NFC (Qwen2's normalizer) orders combining marks by class and blocks a mark from its
  starter when a mark of the same class stands between them (UAX #15, D109 and D115):
  the text that the ids decode to must be Python's unicodedata.normalize("NFC", text). Every character used is in
  Unicode 9.0, whose NFC tables Hugging Face uses, with the same data in Python's
  (newer) Unicode database.
One ok/FAIL line per check; exit status 1 if any failed.
"""
import json
import os
import subprocess
import sys
import unicodedata

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import byte_level_alphabet, check, decode, exit_status

class Bpe:
    """Byte-level BPE as Hugging Face's BPE model applies it to one pre-token: the
    adjacent pair of lowest merge rank merges first (the leftmost of equal ones)."""

    def __init__(self, tokenizer_json):
        tok = json.load(open(tokenizer_json))
        model = tok["model"]
        self.vocab = model["vocab"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        self.rank = {tuple(m): r for r, m in enumerate(merges)}
        self.ignore_merges = bool(model.get("ignore_merges"))
        self.alphabet = byte_level_alphabet()

    def encode(self, pretoken):
        word = "".join(self.alphabet[b] for b in pretoken.encode("utf-8"))
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        symbols = list(word)
        while len(symbols) > 1:
            pairs = [(self.rank.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
            rank, i = min(pairs)
            if rank == float("inf"):
                break
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        return [self.vocab[s] for s in symbols]


def tokenize(run, model, text):
    try:
        p = subprocess.run([run, model, "-m", "tokenize", "-i", text], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None, "run -m tokenize did not finish in 30 s"
    if p.returncode != 0:
        return None, p.stderr.decode()[-200:]
    return [int(x) for x in p.stdout.split()], ""


# (model, text, the pre-tokens by hand, why)
NUMBER_CASES = [
    ("tiny-llama3", "x\u0661\u0662\u0663\u0664y \u00b22",
     ["x", "\u0661\u0662\u0663", "\u0664", "y", " ", "\u00b22"],
     "Llama 3's \\p{N}{1,3}: ARABIC-INDIC DIGITs ONE..FOUR (Nd) are three, then one; at ' ' no"
     " alternative before \\s+ matches (' ' is not before a letter or punctuation, and \\s+(?!\\S)"
     " backtracks to nothing), then SUPERSCRIPT TWO (No) and 2 are one \\p{N}{1,3}"),
    ("tiny-qwen2", "x\u0661\u0662\u0663\u0664y \u00b22",
     ["x", "\u0661", "\u0662", "\u0663", "\u0664", "y", " ", "\u00b2", "2"],
     "Qwen2's \\p{N}: every Arabic-Indic digit, the superscript two and 2 alone"),
    ("smollm2-vocab-tiny", "Page \u0663 and \u00b2",
     ["Page", " ", "\u0663", " and", " ", "\u00b2"],
     "SmolLM2's Digits(individual_digits) isolates ARABIC-INDIC DIGIT THREE and SUPERSCRIPT TWO"
     " (Rust's is_numeric, \\p{N}) before the GPT-2 regex, so the spaces before them stay alone"),
    ("smollm2-vocab-tiny", "\u0968\u0966\u0968\u096a",
     ["\u0968", "\u0966", "\u0968", "\u096a"],
     "SmolLM2: DEVANAGARI DIGITs 2024 one by one"),
]

# Texts whose NFC keeps a mark from composing because an earlier mark has its class.
NFC_CASES = [
    ("a\u0346\u0301", "a + BRIDGE ABOVE (230, composes with nothing) + ACUTE (230): the acute is blocked, stays"),
    ("e\u0301\u0301", "e + ACUTE + ACUTE: the first composes to U+00E9, the second stays"),
    ("a\u0323\u0302\u0301", "a + DOT BELOW (220) + CIRCUMFLEX (230) + ACUTE (230): U+1EAD, then the acute stays"),
    ("a\u0301\u0323", "a + ACUTE (230) + DOT BELOW (220): reordered to dot below first, U+1EA1, then the acute"),
    ("o\u031b\u0301\u0301", "o + HORN (216) + ACUTE + ACUTE: U+01A1, then U+1EDB, then the second acute stays"),
]


def main():
    run, build, fixtures = sys.argv[1:4]
    for model, text, pretokens, why in NUMBER_CASES:
        bpe = Bpe(os.path.join(fixtures, model, "tokenizer.json"))
        expect = [i for p in pretokens for i in bpe.encode(p)]
        got, err = tokenize(run, os.path.join(build, model + ".bin"), text)
        check(got == expect, f"{model}: {ascii(text)} -> {expect}: {why}", f"got {got} {err}")

    tj = os.path.join(fixtures, "tiny-qwen2", "tokenizer.json")
    check(json.load(open(tj)).get("normalizer", {}).get("type") == "NFC", "tiny-qwen2's tokenizer.json normalizes to NFC")
    for text, why in NFC_CASES:
        expect = unicodedata.normalize("NFC", text)
        got, err = tokenize(run, os.path.join(build, "tiny-qwen2.bin"), text)
        text_of_ids = decode(tj, got) if got is not None else None
        check(text_of_ids == expect, f"tiny-qwen2 NFC: {why}: the ids decode to Python's NFC {ascii(expect)}",
              f"got {ascii(text_of_ids)} {err}")
    return exit_status()


sys.exit(main())
