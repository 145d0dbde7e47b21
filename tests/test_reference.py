#!/usr/bin/env python3
"""The plain build (`make reference`: only the loops of run.c's sections 2 and 3) against
the fast build (section 7), and both against Hugging Face.

    test_reference.py RUN_FAST RUN_REFERENCE MODEL.bin FIXTURE_DIR BUILD_DIR [q8_0]

For every case of FIXTURE_DIR/reference.json, both programs run the prompt greedily with
--ignore-eos and --dump-logits. Checked, one ok/FAIL line each:
- both print the same text (the same greedy ids);
- the logits differ by float rounding only, at most BOUND relative to the largest logit
  of the row: the fast kernels add a single token's f32 dot products (the f32 weights,
  and the attention scores of both f32 and q8_0 models) in 16 lanes, the plain loops in
  one running sum. q8_0's int8 sums are exact integers, but its activations are rounded to
  int8 after f32 steps, and a value that lands within rounding of a .5 boundary can
  round one way in one build and the other way in the other: one int8 step in one
  activation moves the logits by up to a few % (measured on the fixtures with the
  Makefile's flags: at most 9.1e-3, in 2 cases of 14, the rest within 6e-7; 2.0e-2 when
  the reference build has no fused multiply-add). So q8_0 is held to Q8_BOUND, and to
  the same greedy text.
- f32: the reference build's logits are within 1e-4 of Hugging Face's, as the fast
  build's are (tests/test_model.c, cli_golden.py).
Exit status 1 if any check failed.
"""
import json
import os
import struct
import subprocess
import sys

BOUND = 1e-5       # f32 fast vs reference, relative to the row's largest |logit|
Q8_BOUND = 5e-2    # q8_0 (see above)
HF_TOLERANCE = 1e-4


def logits(path, vocab):
    raw = open(path, "rb").read() if os.path.exists(path) else b""
    rows = len(raw) // (4 * vocab)
    values = struct.unpack(f"<{rows * vocab}f", raw[: rows * vocab * 4])
    return [values[r * vocab:(r + 1) * vocab] for r in range(rows)]


def generate(run, model, case, dump):
    if os.path.exists(dump):
        os.remove(dump)
    cmd = [run, model, "-m", "generate", "-t", "0", "--ignore-eos", "-n", str(case["n_new"]),
           "--stats", "off", "--dump-logits", dump, "-i", case["prompt_text"]]
    proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    return proc.returncode, proc.stdout


def main():
    fast, ref, model, fixture, build = sys.argv[1:6]
    quantized = len(sys.argv) > 6 and sys.argv[6] == "q8_0"
    spec = json.load(open(os.path.join(fixture, "reference.json")))
    vocab = spec["config"]["vocab_size"]
    name = f"{os.path.basename(model)}"
    failed = 0
    cases = [c for c in spec["cases"] if c.get("prompt_text")]
    if not cases:
        print(f"FAIL {name}: no case with a prompt text in {fixture}")
        return 1

    def check(ok, what):
        nonlocal failed
        print(f"{'ok' if ok else 'FAIL'} {name} {what}")
        failed += not ok

    for case in cases:
        label = f"case {case['name']}"
        rc_f, text_f = generate(fast, model, case, os.path.join(build, "ref-fast.f32"))
        rc_r, text_r = generate(ref, model, case, os.path.join(build, "ref-plain.f32"))
        check(rc_f == 0 and rc_r == 0 and text_f == text_r,
              f"{label}: the reference build prints the same greedy text as the fast one")
        a = logits(os.path.join(build, "ref-fast.f32"), vocab)
        b = logits(os.path.join(build, "ref-plain.f32"), vocab)
        n_rows = len(case["prompt_ids"]) + case["n_new"]
        worst = max((max(abs(x - y) for x, y in zip(ra, rb)) / max(max(abs(x) for x in ra), 1e-30)
                     for ra, rb in zip(a, b)), default=float("inf"))
        bound = Q8_BOUND if quantized else BOUND
        check(len(a) == n_rows == len(b) and worst <= bound,
              f"{label}: logits of both builds within {bound:g} of each other (largest relative difference {worst:.2e})")
        if quantized:
            continue
        expected = logits(os.path.join(fixture, case["logits_file"]), vocab)
        positions = case["logits_positions"]
        hf = max((max(abs(x - y) for x, y in zip(b[p], expected[i]))
                  for i, p in enumerate(positions) if p < len(b)), default=float("inf"))
        check(hf <= HF_TOLERANCE, f"{label}: the reference build within {HF_TOLERANCE:g} of Hugging Face "
              f"at {len(positions)} positions (largest difference {hf:.2e})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
