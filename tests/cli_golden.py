#!/usr/bin/env python3
"""End-to-end golden tests through the command line.

    cli_golden.py RUN MODEL.bin FIXTURE_DIR BUILD_DIR

For every case of FIXTURE_DIR/reference.json that has a prompt_text:
- `run -m tokenize` gives exactly the reference prompt ids;
- `run -m generate -t 0 --ignore-eos -n N --dump-logits F` prints exactly the text that
  transformers decodes from its greedy ids, and the dumped logits (one row per processed
  position) match the reference logits within 1e-4;
- `run -m perplexity` of the prompt gives the mean NLL that the reference logits give;
- when the prompt is a ChatML system + user conversation, `run -m chat -y SYSTEM -i USER`
  renders it, prints the same greedy text and dumps the same logits.
Then, for models with a chat template, a two-turn chat (answers cut to 0 tokens) dumps
the same logits as generating from the whole rendered conversation: the KV cache kept
across turns holds exactly what processing the transcript from scratch would.
"""
import math
import re
import json
import os
import struct
import subprocess
import sys

TOLERANCE = 1e-4
CHATML = re.compile(r"<\|im_start\|>system\n(.*)<\|im_end\|>\n<\|im_start\|>user\n(.*)<\|im_end\|>\n"
                    r"<\|im_start\|>assistant\n", re.S)


def read_logits(path, vocab):
    raw = open(path, "rb").read()
    rows = len(raw) // (4 * vocab)
    return rows, struct.unpack(f"<{rows * vocab}f", raw[: rows * vocab * 4])


def check_generation(label, cmd, case, fixture, vocab, dump):
    """Runs cmd (greedy, --dump-logits dump); checks its text and logits. Returns failures."""
    failed = 0
    proc = subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    text = proc.stdout.decode("utf-8", errors="strict")
    ok = proc.returncode == 0 and text == case["greedy_text"] + "\n"
    print(f"{'ok' if ok else 'FAIL'} {label}: prints the reference greedy text")
    if not ok:
        print(f"    got {text!r}\n    expected {case['greedy_text']!r}\n    {proc.stderr.decode()[:300]}")
    failed += not ok
    rows, ours = read_logits(dump, vocab)
    _, expected = read_logits(os.path.join(fixture, case["logits_file"]), vocab)
    n_rows = len(case["prompt_ids"]) + len(case["greedy_ids"])
    diff = float("inf")
    if rows == n_rows:
        diff = max(abs(ours[p * vocab + j] - expected[r * vocab + j])
                   for r, p in enumerate(case["logits_positions"]) for j in range(vocab))
    ok = diff <= TOLERANCE
    print(f"{'ok' if ok else 'FAIL'} {label}: --dump-logits wrote {rows} rows (expected {n_rows}), "
          f"max |diff| {diff:.2e} at the reference positions")
    return failed + (not ok)


def check_perplexity(label, run, model, case, fixture, vocab, build):
    """run -m perplexity on the prompt == the mean NLL of the prompt under the reference logits."""
    text_file = os.path.join(build, label.replace("/", "-") + ".txt")
    open(text_file, "w").write(case["prompt_text"])
    proc = subprocess.run([run, model, "-m", "perplexity", "-i", text_file], capture_output=True, check=False)
    last = proc.stdout.decode().splitlines()[-1] if proc.returncode == 0 else proc.stderr.decode()
    _, ref = read_logits(os.path.join(fixture, case["logits_file"]), vocab)
    ids, nll = case["prompt_ids"], 0.0
    for p in range(len(ids) - 1):  # the reference rows at the prompt positions
        row = ref[case["logits_positions"].index(p) * vocab:][:vocab]
        m = max(row)
        nll -= row[ids[p + 1]] - m - math.log(sum(math.exp(x - m) for x in row))
    expected = nll / (len(ids) - 1)
    ours = float(last.split("mean NLL ")[1].split(",")[0]) if "mean NLL" in last else float("inf")
    ok = abs(ours - expected) <= 1e-4
    print(f"{'ok' if ok else 'FAIL'} {label}: -m perplexity mean NLL {ours:.6f}, from the reference logits {expected:.6f}")
    return not ok


def multi_turn(run, model, build, name, vocab):
    """Two chat turns with the cache kept == one generate over the whole transcript."""
    turns = ["Where is Groningen located?", "And what about Utrecht?"]
    chat_dump, gen_dump = os.path.join(build, f"{name}-chat2.logits"), os.path.join(build, f"{name}-gen2.logits")
    chat = subprocess.run([run, model, "-m", "chat", "-y", "Be brief.", "-i", turns[0], "-n", "0",
                           "--dump-logits", chat_dump, "--stats", "off"],
                          input=(turns[1] + "\n").encode(), capture_output=True, check=False)
    transcript = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" + turns[0] +
                  "<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>user\n" + turns[1] +
                  "<|im_end|>\n<|im_start|>assistant\n")
    gen = subprocess.run([run, model, "-m", "generate", "-i", transcript, "-n", "0",
                          "--dump-logits", gen_dump, "--stats", "off"], capture_output=True, check=False)
    ok = chat.returncode == 0 and gen.returncode == 0
    if ok:
        a, b = read_logits(chat_dump, vocab), read_logits(gen_dump, vocab)
        ok = a[0] == b[0] and a[0] > 0 and max(abs(x - y) for x, y in zip(a[1], b[1])) <= 1e-5
    print(f"{'ok' if ok else 'FAIL'} {name}: a two-turn chat keeps its KV cache exactly "
          f"(same logits as the whole transcript at once)")
    return not ok


def main():
    run, model, fixture, build = sys.argv[1:5]
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    name = os.path.basename(os.path.normpath(fixture))
    failed = 0
    has_chat = subprocess.run([run, model, "-m", "chat", "-n", "0", "--stats", "off"], capture_output=True,
                              stdin=subprocess.DEVNULL, check=False).returncode == 0
    for case in ref["cases"]:
        if "prompt_text" not in case:
            continue
        label = f"{name}/{case['name']}"
        ids = subprocess.run([run, model, "-m", "tokenize", "-i", case["prompt_text"]],
                             capture_output=True, check=False).stdout.split()
        ok = [int(x) for x in ids] == case["prompt_ids"]
        print(f"{'ok' if ok else 'FAIL'} {label}: ./run -m tokenize gives the reference prompt ids")
        failed += not ok

        vocab = ref.get("config", {}).get("vocab_size") or case["logits_shape"][1]
        dump = os.path.join(build, f"{name}-{case['name']}.logits")
        greedy = ["-t", "0", "-n", str(len(case["greedy_ids"])), "--ignore-eos", "--dump-logits", dump,
                  "--stats", "off"]
        failed += check_generation(f"{label} ./run -m generate -t 0", [run, model, "-m", "generate", "-i",
                                   case["prompt_text"]] + greedy, case, fixture, vocab, dump)
        if all(p in case["logits_positions"] for p in range(len(case["prompt_ids"]))):
            failed += check_perplexity(label, run, model, case, fixture, vocab, build)
        conversation = CHATML.fullmatch(case["prompt_text"])
        if conversation and has_chat:
            system, user = conversation.groups()
            failed += check_generation(f"{label} ./run -m chat -y SYSTEM -i USER",
                                       [run, model, "-m", "chat", "-y", system, "-i", user] + greedy,
                                       case, fixture, vocab, dump)
    if has_chat:
        failed += multi_turn(run, model, build, name, ref["config"]["vocab_size"])
    return 1 if failed else 0


sys.exit(main())
