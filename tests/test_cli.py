#!/usr/bin/env python3
"""The command line as a newcomer meets it: errors for the usual mistakes, exit codes a
script can trust, chat commands, the settings in effect, and the learners' views.

    test_cli.py RUN CHAT_MODEL.bin FIXTURE_DIR BUILD_DIR

CHAT_MODEL is a model with a ChatML template (tiny-smollm2) exported from FIXTURE_DIR.
The repetition penalty is checked against transformers' rule written out here
(RepetitionPenaltyLogitsProcessor: the logit of every id in the input so far divided by
the penalty when positive, multiplied when negative, before the argmax), applied to the
raw logits that --dump-logits writes. One ok/FAIL line per check; exit 1 if any failed.
"""
import json
import os
import struct
import subprocess
import sys

RUN, MODEL, FIXTURE, BUILD = sys.argv[1:5]
sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import check, decode, exit_status  # noqa: E402  (tests/oracle.py)


def run(*args, stdin=b""):
    return subprocess.run([RUN, *args], input=stdin, capture_output=True, check=False, timeout=120)


def refused(what, args, needle, stdin=b""):
    p = run(*args, stdin=stdin)
    err = p.stderr.decode(errors="replace")
    first = err.splitlines()[0] if err else ""
    check(p.returncode == 1 and needle in first, f"{what}: exit 1, '{first}'",
          f"status {p.returncode}, stderr {err!r}")


def options():
    for opt in ["--verbose", "--do-sample"]:
        refused(f"{opt} with a value after it is unknown", [MODEL, "-i", "hi", opt, "x"], f"unknown option {opt}")
        refused(f"{opt} last is unknown", [MODEL, "-i", "hi", opt], f"unknown option {opt}")
    refused("-n without its value", [MODEL, "-n"], "option -n needs a value")
    refused("no model file", ["-i", "hi"], "no model file given")
    refused("no arguments at all", [], "no model file given")
    refused("a folder as the model", [FIXTURE], "is a folder, not a model file")
    fifo = os.path.join(BUILD, "cli.fifo")
    if os.path.exists(fifo):
        os.remove(fifo)
    os.mkfifo(fifo)
    refused("a FIFO as the model (no hang)", [fifo, "-i", "hi"], "not a regular file")
    refused("--output in generate", [MODEL, "-m", "generate", "-i", "hi", "--output", "x"], "--output does not apply")
    refused("--dump-logits in tokenize", [MODEL, "-m", "tokenize", "-i", "hi", "--dump-logits", "x"],
            "--dump-logits does not apply")
    refused("--batch with tokenize", [MODEL, "-m", "tokenize", "--batch", "x"], "--batch does not apply")
    refused("--pieces in generate", [MODEL, "-m", "generate", "-i", "hi", "--pieces"], "--pieces does not apply")
    p = run("--version")
    out = p.stdout.decode()
    check(p.returncode == 0 and "compiler:" in out and "OpenMP:" in out and "flags:" in out,
          "--version names the compiler, OpenMP and the build flags", out)
    p = run(MODEL, "-m", "generate", "-i", "Once", "-n", "4", "-t", "0", "--threads", "1")
    q = run(MODEL, "-m", "generate", "-i", "Once", "-n", "4", "-t", "0")
    check(p.returncode == 0 and p.stdout == q.stdout, "--threads 1 gives the same text as the default threads")


def exit_codes():
    long = "word " * 200
    p = run(MODEL, "-c", "32", "-i", long)
    err = p.stderr.decode()
    check(p.returncode == 1 and "turn ignored" in err and "/clear" in err,
          "chat: a first turn longer than the context fails (exit 1) and names /clear", f"{p.returncode} {err}")
    check("larger -c" in err, "... and, since the model allows more than -c 32, suggests a larger -c", err)
    p = run(MODEL, "-i", long)
    err = p.stderr.decode()
    check(p.returncode == 1 and "larger -c" not in err,
          "... with the whole context of the model, no larger -c is suggested", err)
    p = subprocess.run([RUN, MODEL, "-i", b"abc\xff"], capture_output=True, check=False)
    check(p.returncode == 1 and b"UTF-8" in p.stderr, "chat: a first turn that is not UTF-8 fails (exit 1)")
    p = subprocess.run([RUN, MODEL, "-m", "generate", "-i", b"abc\xff"], capture_output=True, check=False)
    check(p.returncode == 1, "generate: the same input fails too")


def chat_commands():
    base = ["-t", "0", "-n", "6", "--stats", "off"]
    one = run(MODEL, *base, "-i", "hello").stdout
    # /clear: the second conversation starts afresh, so it answers "hello" as the first did
    p = run(MODEL, *base, "-i", "something else", stdin=b"/clear\nhello\n")
    lines = p.stdout.split(b"\n")
    check(p.returncode == 0 and len(lines) >= 2 and lines[1] + b"\n" == one,
          "/clear starts a new conversation (its answer equals a fresh chat's)", repr(p.stdout))
    p = run(MODEL, *base, "-i", "hello", stdin=b"/bye\nnot read\n")
    check(p.returncode == 0 and p.stdout == one, "/bye ends the chat; the lines after it are not read", repr(p.stdout))
    p = run(MODEL, *base, stdin=b"")
    check(p.returncode == 0 and p.stdout == b"", "the end of input ends the chat")


def settings():
    p = run(MODEL, "-m", "generate", "-i", "Once", "-n", "3", "-s", "12345")
    check(b"seed 12345" in p.stderr, "the seed is in the statistics", p.stderr.decode())
    p = run(MODEL, "-m", "generate", "-i", "Once", "-n", "3", "--stats", "json")
    try:
        stats = json.loads(p.stderr.decode().strip().splitlines()[-1])
        ok = isinstance(stats.get("seed"), int) and stats["seed"] > 0
    except (ValueError, IndexError):
        ok = False
    check(ok, "the seed (the time, by default) is in the JSON statistics", p.stderr.decode())


def learners():
    cfg = json.load(open(os.path.join(FIXTURE, "config.json")))
    p = run(MODEL, "--info")
    out = p.stdout.decode()
    want = [f"dim {cfg['hidden_size']}", f"n_layers {cfg['num_hidden_layers']}",
            f"n_kv_heads {cfg['num_key_value_heads']}", f"vocab_size {cfg['vocab_size']}", "chat format: ChatML",
            f"({cfg['vocab_size']}, {cfg['hidden_size']})"]
    missing = [w for w in want if w not in out]
    check(p.returncode == 0 and not missing, "--info shows the hyperparameters of config.json and the tensors",
          f"missing {missing} in\n{out}")
    # parameter count from config.json: embedding + per layer (q, k, v, o, gate, up, down,
    # two norms) + final norm; tied, so no classifier
    d, h, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    hd = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    params = V * d + L * (d * d * 2 + 2 * d * kv + 3 * d * h + 2 * d) + d
    check(f"parameters: {params} " in out, f"--info counts {params} parameters, as config.json implies", out[-300:])
    cases = json.load(open(os.path.join(FIXTURE, "..", "..", "tokenizers", "tiny-gpt2", "cases.json")))
    case = next(c for c in cases["encode"] if " " in c["text"] and c["text"].isascii())
    p = run(MODEL, "-m", "tokenize", "--pieces", "-i", case["text"])
    rows = [line.split("\t") for line in p.stdout.decode().splitlines()]
    ids = [int(r[0]) for r in rows]
    text = "".join(json.loads(r[1]) for r in rows)
    check(p.returncode == 0 and ids == case["ids"] and text == case["text"],
          "tokenize --pieces: Hugging Face's ids, and the pieces (JSON strings) spell the text",
          p.stdout.decode()[:300])
    p = run(MODEL, "-m", "generate", "-i", "Once", "-n", "3", "-t", "0", "--top-logprobs", "3", "--stats", "off")
    lines = [line for line in p.stderr.decode().splitlines() if line.startswith("  candidates:")]
    check(p.returncode == 0 and len(lines) == 3, "--top-logprobs 3: one line of candidates per token on stderr",
          p.stderr.decode())


def logits_rows(path, vocab):
    raw = open(path, "rb").read()
    n = len(raw) // (4 * vocab)
    vals = struct.unpack(f"<{n * vocab}f", raw[: n * vocab * 4])
    return [vals[i * vocab:(i + 1) * vocab] for i in range(n)]


def repetition_penalty():
    vocab = json.load(open(os.path.join(FIXTURE, "config.json")))["vocab_size"]
    prompt = "Once upon a time, in a small village"
    ids = [int(x) for x in run(MODEL, "-m", "tokenize", "-i", prompt).stdout.split()]
    dump = os.path.join(BUILD, "cli-penalty.f32")
    plain = run(MODEL, "-m", "generate", "-i", prompt, "-n", "12", "-t", "0", "--ignore-eos", "--stats", "off")
    for penalty in (1.3, 0.8):
        p = run(MODEL, "-m", "generate", "-i", prompt, "-n", "12", "-t", "0", "--ignore-eos", "--stats", "off",
                "--repeat-penalty", str(penalty), "--dump-logits", dump)
        rows = logits_rows(dump, vocab)
        seq = list(ids)
        bos = len(rows) - 12 - len(ids)   # a BOS row first when the model adds one
        expected = []
        for step in range(12):
            row = list(rows[bos + len(ids) - 1 + step])
            for t in set(seq):  # transformers' RepetitionPenaltyLogitsProcessor, then argmax
                row[t] = row[t] * penalty if row[t] < 0 else row[t] / penalty
            best = max(range(vocab), key=lambda i: (row[i], -i))
            expected.append(best)
            seq.append(best)
        text = decode(os.path.join(FIXTURE, "tokenizer.json"), expected) + "\n"
        check(p.returncode == 0 and p.stdout.decode("utf-8", errors="replace") == text,
              f"--repeat-penalty {penalty}: each greedy token is the argmax of transformers' penalised logits",
              f"got {p.stdout!r}\nexpected {text!r} ({expected})")
        check(p.stdout != plain.stdout, f"--repeat-penalty {penalty} changes this text (the check can fail)")
        line = json.dumps({"prompt": prompt, "max_new_tokens": 12, "temperature": 0, "repetition_penalty": penalty})
        b = subprocess.run([RUN, MODEL, "-m", "generate", "--ignore-eos", "--batch", "-"], input=line.encode() + b"\n",
                           capture_output=True, check=False)
        try:
            answer = json.loads(b.stdout.decode().splitlines()[0])["answer"] + "\n"
        except (ValueError, IndexError, KeyError):
            answer = None
        check(answer == p.stdout.decode("utf-8", errors="replace"),
              f"--batch \"repetition_penalty\": {penalty} gives the same answer", b.stdout.decode()[:300])


options()
exit_codes()
chat_commands()
settings()
learners()
repetition_penalty()
sys.exit(exit_status())
