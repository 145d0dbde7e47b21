#!/usr/bin/env python3
"""End-to-end golden tests through the command line.

    cli_golden.py RUN MODEL.bin FIXTURE_DIR BUILD_DIR

For every case of FIXTURE_DIR/reference.json (each must have a prompt_text):
- `run -m tokenize` gives exactly the reference prompt ids;
- `run -m generate -t 0 --ignore-eos -n N --dump-logits F` prints exactly the text that
  transformers decodes from its greedy ids, and the dumped logits (one row per processed
  position) match the reference logits within 1e-4;
- `run -m perplexity` of the prompt prints, at every prompt position that has reference
  logits, the log-probability of the next prompt token that those logits give, and the
  mean NLL they give when every prompt position has them;
- when the prompt is a ChatML system + user conversation, `run -m chat -y SYSTEM -i USER`
  renders it, prints the same greedy text and dumps the same logits.
Whether the model has a chat template is read from the fixture (its tokenizer_config.json),
not from ./run, so a broken chat mode fails here instead of removing its checks. For a
ChatML model, a two-turn chat (answers cut to 0 tokens) dumps the same logits as
generating from the whole rendered conversation: the KV cache kept across turns holds
exactly what processing the transcript from scratch would. A model whose template is not
ChatML (tiny-llama3's stand-in) must refuse chat mode with a message.
One ok/FAIL line per check; exit status 1 if any failed.
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
    """(rows, floats) of a --dump-logits file; (0, ()) when ./run did not write it."""
    if not os.path.exists(path):
        return 0, ()
    raw = open(path, "rb").read()
    rows = len(raw) // (4 * vocab)
    return rows, struct.unpack(f"<{rows * vocab}f", raw[: rows * vocab * 4])


def check_generation(label, cmd, case, fixture, vocab, dump):
    """Runs cmd (greedy, --dump-logits dump); checks its text and logits. Returns failures."""
    failed = 0
    if os.path.exists(dump):  # a file left by an earlier check must not pass for this one
        os.remove(dump)
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


def reference_logprobs(case, fixture, vocab):
    """{position p: log P(prompt token p + 1) from the reference logits at p}, for the
    prompt positions that have reference logits."""
    _, ref = read_logits(os.path.join(fixture, case["logits_file"]), vocab)
    ids, out = case["prompt_ids"], {}
    for r, p in enumerate(case["logits_positions"]):
        if p < len(ids) - 1:
            row = ref[r * vocab:(r + 1) * vocab]
            m = max(row)
            out[p] = row[ids[p + 1]] - m - math.log(sum(math.exp(x - m) for x in row))
    return out


def check_perplexity(label, run, model, case, fixture, vocab, build):
    """run -m perplexity on the prompt: its log-probability lines (one per predicted token,
    "id TAB logprob TAB bytes") at the reference positions, and its mean NLL when the
    reference has every prompt position."""
    text_file = os.path.join(build, label.replace("/", "-") + ".txt")
    open(text_file, "w").write(case["prompt_text"])
    proc = subprocess.run([run, model, "-m", "perplexity", "-i", text_file], capture_output=True, check=False)
    lines = proc.stdout.decode("utf-8", "replace").splitlines() if proc.returncode == 0 else []
    expected, predicted = reference_logprobs(case, fixture, vocab), len(case["prompt_ids"]) - 1
    ours = {}
    for p, line in enumerate(lines[:-1]):
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] == str(case["prompt_ids"][p + 1]):
            ours[p] = float(fields[1])
    diff = max((abs(ours[p] - v) if p in ours else math.inf for p, v in expected.items()), default=math.inf)
    ok = len(lines) == predicted + 1 and diff <= 1e-4
    what = f"log P(next prompt token) at {len(expected)} reference positions, max |diff| {diff:.1e}"
    if len(expected) == predicted:
        last = lines[-1] if lines else proc.stderr.decode()
        nll = float(last.split("mean NLL ")[1].split(",")[0]) if "mean NLL" in last else math.inf
        mean = -sum(expected.values()) / predicted
        ok = ok and abs(nll - mean) <= 1e-4
        what += f"; mean NLL {nll:.6f}, from the reference logits {mean:.6f}"
    print(f"{'ok' if ok else 'FAIL'} {label}: -m perplexity {what}")
    if not lines:
        print(f"    exit {proc.returncode}: {proc.stderr.decode()[:300]}")
    return not ok


def multi_turn(run, model, build, name, vocab):
    """Two chat turns with the cache kept == one generate over the whole transcript."""
    turns = ["Where is Groningen located?", "And what about Utrecht?"]
    chat_dump, gen_dump = os.path.join(build, f"{name}-chat2.logits"), os.path.join(build, f"{name}-gen2.logits")
    for dump in (chat_dump, gen_dump):
        if os.path.exists(dump):
            os.remove(dump)
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


def chatml_template(fixture):
    """Whether the fixture's chat template is ChatML: it ends a prompt with
    "<|im_start|>assistant" and a newline (in the Jinja source a newline or a \\n)."""
    with open(os.path.join(fixture, "tokenizer_config.json"), encoding="utf-8") as f:
        template = json.load(f).get("chat_template") or ""
    return re.search(r"<\|im_start\|>assistant(\n|\\n)", template) is not None


def check_refuses_chat(run, model, name):
    """A model without a chat template that ./run knows: chat mode is an error, not a guess."""
    proc = subprocess.run([run, model, "-m", "chat", "-i", "hi", "-n", "1", "--stats", "off"],
                          capture_output=True, stdin=subprocess.DEVNULL, check=False)
    err = proc.stderr.decode("utf-8", "replace")
    ok = 0 < proc.returncode < 128 and "chat template" in err and not proc.stdout
    print(f"{'ok' if ok else 'FAIL'} {name}: a template that is not ChatML: -m chat refuses "
          f"(exit {proc.returncode}: {err.strip()[:80]})")
    return not ok


def check_case(run, model, fixture, name, case, vocab, build, has_chat):
    """The checks of one reference case; returns the number of failures."""
    label = f"{name}/{case['name']}"
    if "prompt_text" not in case:
        print(f"FAIL {label}: the case has no prompt_text, so nothing of it can be checked through the CLI")
        return 1
    ids = subprocess.run([run, model, "-m", "tokenize", "-i", case["prompt_text"]],
                         capture_output=True, check=False).stdout.split()
    ok = [int(x) for x in ids] == case["prompt_ids"]
    print(f"{'ok' if ok else 'FAIL'} {label}: ./run -m tokenize gives the reference prompt ids")
    failed = not ok
    dump = os.path.join(build, f"{name}-{case['name']}.logits")
    greedy = ["-t", "0", "-n", str(len(case["greedy_ids"])), "--ignore-eos", "--dump-logits", dump,
              "--stats", "off"]
    failed += check_generation(f"{label} ./run -m generate -t 0", [run, model, "-m", "generate", "-i",
                               case["prompt_text"]] + greedy, case, fixture, vocab, dump)
    failed += check_perplexity(label, run, model, case, fixture, vocab, build)
    conversation = CHATML.fullmatch(case["prompt_text"])
    if conversation and has_chat:
        system, user = conversation.groups()
        failed += check_generation(f"{label} ./run -m chat -y SYSTEM -i USER",
                                   [run, model, "-m", "chat", "-y", system, "-i", user] + greedy,
                                   case, fixture, vocab, dump)
    elif conversation:
        print(f"FAIL {label}: a ChatML conversation, but the fixture's chat template is not ChatML")
        failed += 1
    return failed


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    run, model, fixture, build = sys.argv[1:5]
    name = os.path.basename(os.path.normpath(fixture))
    try:
        ref = json.load(open(os.path.join(fixture, "reference.json")))
        has_chat = chatml_template(fixture)
    except (OSError, ValueError) as e:
        print(f"FAIL {name}: cannot read the fixture: {e}")
        return 1
    vocab = ref["config"]["vocab_size"]
    failed = 0
    if not ref["cases"]:
        print(f"FAIL {name}: reference.json has no case")
        failed += 1
    for case in ref["cases"]:
        failed += check_case(run, model, fixture, name, case, vocab, build, has_chat)
    if has_chat:
        failed += multi_turn(run, model, build, name, vocab)
    else:
        failed += check_refuses_chat(run, model, name)
    return 1 if failed else 0


sys.exit(main())
