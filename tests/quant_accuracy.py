#!/usr/bin/env python3
"""How far q8_0 moves the logits from f32, on the same text (teacher-forced).

    quant_accuracy.py RUN F32.bin Q8.bin FIXTURE_DIR BUILD_DIR MIN_TOP1 MAX_KL

Runs `run -m perplexity --dump-logits` with both files on the same texts (the prompts and
greedy continuations of the fixture's reference.json), then reports the share of
positions whose most likely token is the same (top-1 agreement) and the mean KL
divergence KL(p_f32 || p_q8) of the next-token distributions, against the thresholds.
"""
import json
import math
import os
import struct
import subprocess
import sys


def logits(run, model, text_file, dump):
    out = subprocess.run([run, model, "-m", "perplexity", "-i", text_file, "--dump-logits", dump],
                         capture_output=True, check=True).stdout.decode().splitlines()[-1]
    return open(dump, "rb").read(), out


def log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def main():
    run, f32, q8, fixture, build, min_top1, max_kl = sys.argv[1:8]
    name = os.path.basename(f32).removesuffix(".bin")
    vocab = json.load(open(os.path.join(fixture, "config.json")))["vocab_size"]
    agree, kl, rows, ppl = 0, 0.0, 0, []
    for case in json.load(open(os.path.join(fixture, "reference.json")))["cases"]:
        text_file = os.path.join(build, f"{name}-{case['name']}.txt")
        open(text_file, "w").write(case["prompt_text"] + case["greedy_text"].replace("\ufffd", ""))
        raw32, ppl32 = logits(run, f32, text_file, os.path.join(build, name + "-f32.ppl.logits"))
        raw8, ppl8 = logits(run, q8, text_file, os.path.join(build, name + "-q8.ppl.logits"))
        ppl.append(f"{case['name']} perplexity f32 {ppl32.split()[-1]} q8_0 {ppl8.split()[-1]}")
        n = len(raw32) // 4
        a, b = struct.unpack(f"<{n}f", raw32), struct.unpack(f"<{n}f", raw8)
        for r in range(n // vocab):
            p, q = log_softmax(a[r * vocab:(r + 1) * vocab]), log_softmax(b[r * vocab:(r + 1) * vocab])
            agree += p.index(max(p)) == q.index(max(q))
            kl += sum(math.exp(lp) * (lp - lq) for lp, lq in zip(p, q))
            rows += 1
    top1, kl = agree / rows, kl / rows
    ok = top1 >= float(min_top1) and kl <= float(max_kl)
    print(f"{'ok' if ok else 'FAIL'} q8_0 vs f32 {name}: top-1 agreement {100 * top1:.1f}% (>= {100 * float(min_top1):.0f}%), "
          f"mean KL {kl:.2e} (<= {float(max_kl):.0e}) over {rows} positions; " + "; ".join(ppl))
    return 0 if ok else 1


sys.exit(main())
