#!/usr/bin/env python3
"""Sampling and stopping through the command line, against transformers' rules.

    test_generation.py RUN EXPORT FIXTURES BUILD_DIR

FIXTURES is tests/fixtures/hf. Every expected value comes from the Hugging Face
references there (greedy ids, logits) or from transformers' documented rules, never from
./run's own output:
- a low temperature is greedy: with T at most 1/30 of the smallest top-2 logit gap along
  the reference's greedy path, every other token has probability below e^-30 at every
  step, so sampling must print exactly the reference's greedy text (a softmax that
  overflows at logits / T ~ 1e3 does not);
- -s reaches the sampler: the same seed gives the same text, three seeds three texts;
- generation stops at ANY of the model's stop ids (transformers' eos_token_id list;
  Llama 3 has three): tiny-llama3 with a third stop id that the reference's greedy path
  reaches at step k prints exactly the first k greedy tokens;
- a chat answer that ends with the model's own end-of-turn token leaves the KV cache
  holding exactly what processing the transcript from scratch holds: the model is
  tiny-untied-mha-f32 with its <|im_end|> row of lm_head made to win at the second
  answer step (chosen from the reference logits), and the transcript is the ChatML
  template's rendering of the history, whose assistant message is the answer followed
  by <|im_end|>\\n, once.
One ok/FAIL line per check; exit status 1 if any failed.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import check, decode, exit_status

def run(*args, stdin=b""):
    return subprocess.run([str(a) for a in args], input=stdin, capture_output=True, timeout=120)


def case(fixture, name):
    return next(c for c in json.load(open(os.path.join(fixture, "reference.json")))["cases"] if c["name"] == name)


def read_rows(path, vocab):
    raw = open(path, "rb").read() if os.path.exists(path) else b""
    n = len(raw) // (4 * vocab)
    flat = struct.unpack(f"<{n * vocab}f", raw[:n * vocab * 4])
    return [flat[r * vocab:(r + 1) * vocab] for r in range(n)]


def low_temperature(run_bin, build, fixtures):
    for model, name in (("tiny-smollm2", "chat"), ("tiny-llama3", "story"), ("tiny-mqa-f16", "story")):
        c = case(os.path.join(fixtures, model), name)
        t = c["min_top2_gap"] / 30
        for extra in ([], ["-k", "5", "-p", "0.9"]):
            p = run(run_bin, os.path.join(build, model + ".bin"), "-m", "generate", "-i", c["prompt_text"],
                    "-t", f"{t:.6g}", *extra, "-s", "7", "-n", len(c["greedy_ids"]), "--ignore-eos", "--stats", "off")
            out = p.stdout.decode("utf-8", errors="replace")
            check(p.returncode == 0 and out == c["greedy_text"] + "\n",
                  f"{model}/{name}: -t {t:.3g}{''.join(' ' + x for x in extra)} (1/30 of the smallest top-2 gap, "
                  f"{c['min_top2_gap']:.3g}) prints transformers' greedy text",
                  f"got {out!r}\nexpected {c['greedy_text']!r}\n{p.stderr.decode()[-300:]}")


def seeds(run_bin, build):
    model = os.path.join(build, "tiny-smollm2.bin")
    texts = {}
    for seed in (11, 11, 12, 13):
        p = run(run_bin, model, "-m", "generate", "-i", "Once upon a time", "-t", "1", "-s", seed,
                "-n", "24", "--ignore-eos", "--stats", "off")
        texts.setdefault(seed, []).append(p.stdout if p.returncode == 0 else None)
    a, b = texts[11]
    check(a is not None and a == b, "-t 1 -s 11 twice prints the same text", f"{a!r}\n{b!r}")
    distinct = {texts[s][0] for s in (11, 12, 13)}
    check(None not in distinct and len(distinct) == 3, "-t 1 with seeds 11, 12, 13 prints three different texts",
          "\n".join(repr(x) for x in distinct))


def multiple_stop_ids(export, run_bin, build, fixtures):
    src = os.path.join(fixtures, "tiny-llama3")
    c = case(src, "chat")
    greedy = c["greedy_ids"]
    k = 12  # the first step at which the greedy path reaches token greedy[k]
    stop = greedy[k]
    check(greedy.index(stop) == k and not {0, 2} & set(greedy[:k]),
          f"tiny-llama3/chat: greedy step {k} is the first {stop} and no stop id comes before (fixture)")
    model_dir = os.path.join(build, "tiny-llama3-stops")
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(src, model_dir)
    gen_path = os.path.join(model_dir, "generation_config.json")
    gen = json.load(open(gen_path))
    gen["eos_token_id"] = [0, 2, stop]  # as Llama 3's [<|end_of_text|>, <|eom_id|>, <|eot_id|>]
    json.dump(gen, open(gen_path, "w"))
    model = os.path.join(build, "tiny-llama3-stops.bin")
    p = run(export, "-q", model_dir, model)
    check(p.returncode == 0, "export tiny-llama3 with eos_token_id [0, 2, %d]" % stop, p.stderr.decode())
    dump = os.path.join(build, "tiny-llama3-stops.logits")
    p = run(run_bin, model, "-m", "generate", "-i", c["prompt_text"], "-t", "0", "-n", "30", "--stats", "json",
            "--dump-logits", dump)
    out = p.stdout.decode("utf-8", errors="replace")
    expect = decode(os.path.join(src, "tokenizer.json"), greedy[:k])
    stats = [json.loads(x) for x in p.stderr.decode().splitlines() if x.startswith("{")]
    check(p.returncode == 0 and out == expect + "\n" and stats and stats[-1]["new_tokens"] == k,
          f"tiny-llama3: generation stops at the third stop id ({stop}) after exactly the {k} greedy tokens before it",
          f"got {out!r}\nexpected {expect!r}\n{p.stderr.decode()[-300:]}")
    rows = len(read_rows(dump, 1024))
    check(rows == len(c["prompt_ids"]) + k, f"... and runs {len(c['prompt_ids'])} + {k} positions, "
          f"not the stop token (--dump-logits rows: {rows})")


def patch_lm_head_row(path, row, values):
    """Overwrites one row of the float32 tensor lm_head.weight in a safetensors file."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header["lm_head.weight"]
        assert t["dtype"] == "F32"
        dim = t["shape"][1]
        f.seek(8 + n + t["data_offsets"][0] + row * dim * 4)
        f.write(struct.pack(f"<{dim}f", *values))


def lm_head_row(path, row):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        t = json.loads(f.read(n))["lm_head.weight"]
        dim = t["shape"][1]
        f.seek(8 + n + t["data_offsets"][0] + row * dim * 4)
        return struct.unpack(f"<{dim}f", f.read(dim * 4))


def chat_stops_on_eot(export, run_bin, build, fixtures):
    src = os.path.join(fixtures, "tiny-untied-mha-f32")
    c = case(src, "chat")
    vocab, eot = 1024, 2  # <|im_end|>
    g0, g1 = c["greedy_ids"][:2]
    ref = read_rows(os.path.join(src, c["logits_file"]), vocab)
    p0, p1 = (c["logits_positions"].index(len(c["prompt_ids"]) - 1 + j) for j in (0, 1))
    # lm_head's <|im_end|> row becomes alpha times g1's: its logit is alpha * logit(g1)
    # (lm_head is untied: nothing else changes). It must lose at step 0 and win at step 1.
    l0, l1 = ref[p0][g1], ref[p1][g1]
    alpha = 1.5
    ok = l1 > 0 and alpha * l1 > ref[p1][g1] + 0.05 and alpha * l0 < ref[p0][g0] - 0.05
    check(ok, f"tiny-untied-mha-f32/chat: <|im_end|> = 1.5 x lm_head[{g1}] loses at answer step 0 "
          f"({alpha * l0:.3f} < {ref[p0][g0]:.3f}) and wins at step 1 ({alpha * l1:.3f} > {l1:.3f}) (reference logits)")
    model_dir = os.path.join(build, "eot-chat")
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(src, model_dir)
    st = os.path.join(model_dir, "model.safetensors")
    patch_lm_head_row(st, eot, [alpha * x for x in lm_head_row(st, g1)])
    model = os.path.join(build, "eot-chat.bin")
    p = run(export, "-q", model_dir, model)
    check(p.returncode == 0, "export tiny-untied-mha-f32 with the patched lm_head", p.stderr.decode())

    system = "You are a helpful assistant. Give short straight answers"
    user, user2 = "Where is Groningen located?", "Thanks"
    dump = os.path.join(build, "eot-chat.logits")
    p = run(run_bin, model, "-m", "chat", "-y", system, "-i", user, "-t", "0", "-n", "6", "--stats", "json",
            "--dump-logits", dump, stdin=(user2 + "\n").encode())
    answers = p.stdout.decode("utf-8", errors="replace").split("\n")
    stats = [json.loads(x) for x in p.stderr.decode().splitlines() if x.startswith("{")]
    answer = decode(os.path.join(src, "tokenizer.json"), [g0])
    check(p.returncode == 0 and answers[0] == answer and len(stats) == 2 and stats[0]["new_tokens"] == 1,
          f"chat: the first answer is transformers' greedy token {answer!r}, then the model's own <|im_end|> ends it",
          f"stdout {p.stdout!r}\nstderr {p.stderr.decode()[-400:]}")

    # The ChatML template renders every message as <|im_start|>role\ncontent<|im_end|>\n,
    # then <|im_start|>assistant\n for the answer to come.
    transcript = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                  f"<|im_start|>assistant\n{answer}<|im_end|>\n<|im_start|>user\n{user2}<|im_end|>\n"
                  f"<|im_start|>assistant\n")
    check(transcript.startswith(c["prompt_text"]), "the transcript starts with transformers' rendering of the first turn")
    text_file = os.path.join(build, "eot-chat.txt")
    open(text_file, "w").write(transcript)
    scratch_dump = os.path.join(build, "eot-chat.scratch.logits")
    p = run(run_bin, model, "-m", "perplexity", "-i", text_file, "--dump-logits", scratch_dump)
    ours, scratch = read_rows(dump, vocab), read_rows(scratch_dump, vocab)
    n = len(scratch)
    diff = max((abs(a - b) for r in range(min(n, len(ours))) for a, b in zip(ours[r], scratch[r])), default=float("inf"))
    check(p.returncode == 0 and n > len(c["prompt_ids"]) + 1 and len(ours) > n and diff <= 1e-5,
          f"chat: the second turn's KV cache holds the transcript (answer, one <|im_end|>): its {n} positions "
          f"give the logits of processing it from scratch (max |diff| {diff:.1e}; chat ran {len(ours)} positions)",
          p.stderr.decode()[-300:])


def main():
    run_bin, export, fixtures, build = sys.argv[1:5]
    low_temperature(run_bin, build, fixtures)
    seeds(run_bin, build)
    multiple_stop_ids(export, run_bin, build, fixtures)
    chat_stops_on_eot(export, run_bin, build, fixtures)
    return exit_status()


sys.exit(main())
