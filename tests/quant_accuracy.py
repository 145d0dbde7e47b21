#!/usr/bin/env python3
"""How far q8_0 moves the logits from f32, on the same text (teacher-forced).

    quant_accuracy.py RUN F32.bin Q8.bin FIXTURE_DIR BUILD_DIR MIN_TOP1 MAX_KL
    quant_accuracy.py RUN F32.bin Q8.bin FIXTURE_DIR BUILD_DIR --measured

Runs `run -m perplexity --dump-logits` with both files on the same texts (the prompts and
greedy continuations of the fixture's reference.json), then reports the share of
positions whose most likely token is the same (top-1 agreement) and the mean KL
divergence KL(p_f32 || p_q8) of the next-token distributions, against the thresholds.

--measured takes the thresholds from MEASURED below, the values of the fixture (named by
FIXTURE_DIR) as they were measured, with a margin: the KL may grow by half (x 1.5) and
the top-1 agreement may drop by 2 points (one position in 50). q8_0 is not exact, so
the bounds cannot be zero; they are this tight so that a quantizer that rounds wrong is
caught: quantize_q8 truncating instead of rounding gives 2.0-2.6 times the KL on every
fixture (and 1-2 points less top-1 agreement). If a deliberate change moves the
baseline, measure again (thresholds 0 1 print the values) and update the table.
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


# fixture: (top-1 agreement, mean KL), measured with run.c at d67ea36 on x86-64 (gcc,
# -O3 -march=native; `make reference` measures within 1% of these).
MEASURED = {
    "tiny-smollm2": (0.957, 1.20e-4),
    "tiny-untied-mha-f32": (0.961, 5.68e-5),
    "tiny-mqa-f16": (0.980, 7.31e-5),
    "tiny-llama3": (0.962, 2.23e-4),
    "tiny-qwen2": (0.956, 1.11e-4),
}
KL_MARGIN, TOP1_MARGIN = 1.5, 0.02


def log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def main():
    run, f32, q8, fixture, build = sys.argv[1:6]
    if sys.argv[6:] == ["--measured"]:
        key = os.path.basename(os.path.normpath(fixture))
        if key not in MEASURED:
            print(f"FAIL q8_0 vs f32: no measured baseline for {key} in tests/quant_accuracy.py")
            return 1
        top1_0, kl_0 = MEASURED[key]
        min_top1, max_kl = top1_0 - TOP1_MARGIN, kl_0 * KL_MARGIN
    else:
        min_top1, max_kl = sys.argv[6:8]
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
    print(f"{'ok' if ok else 'FAIL'} q8_0 vs f32 {name}: top-1 agreement {100 * top1:.1f}% (>= {100 * float(min_top1):.1f}%), "
          f"mean KL {kl:.3g} (<= {float(max_kl):.3g}) over {rows} positions; " + "; ".join(ppl))
    return 0 if ok else 1


sys.exit(main())
