#!/usr/bin/env python3
"""End-to-end golden test through the command line.

    cli_golden.py RUN MODEL.bin FIXTURE_DIR BUILD_DIR

For every case of FIXTURE_DIR/reference.json that has a prompt_text:
- `run -m tokenize` gives exactly the reference prompt ids;
- `run -m generate -t 0 --ignore-eos -n N --dump-logits F` prints exactly the text that
  transformers decodes from its greedy ids, and the dumped logits (one row per processed
  position) match the reference logits within 1e-4.
"""
import json
import os
import struct
import subprocess
import sys

TOLERANCE = 1e-4


def main():
    run, model, fixture, build = sys.argv[1:5]
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    name = os.path.basename(os.path.normpath(fixture))
    failed = 0
    for case in ref["cases"]:
        if "prompt_text" not in case:
            continue
        label = f"{name}/{case['name']}"
        ids = subprocess.run([run, model, "-m", "tokenize", "-i", case["prompt_text"]],
                             capture_output=True, check=False).stdout.split()
        ok = [int(x) for x in ids] == case["prompt_ids"]
        print(f"{'ok' if ok else 'FAIL'} {label}: ./run -m tokenize gives the reference prompt ids")
        failed += not ok

        dump = os.path.join(build, f"{name}-{case['name']}.logits")
        n_new = len(case["greedy_ids"])
        proc = subprocess.run([run, model, "-m", "generate", "-i", case["prompt_text"], "-t", "0",
                               "-n", str(n_new), "--ignore-eos", "--dump-logits", dump, "--stats", "off"],
                              capture_output=True, check=False)
        text = proc.stdout.decode("utf-8", errors="strict")
        ok = proc.returncode == 0 and text == case["greedy_text"] + "\n"
        print(f"{'ok' if ok else 'FAIL'} {label}: ./run -t 0 prints the reference greedy text")
        if not ok:
            print(f"    got {text!r}\n    expected {case['greedy_text']!r}\n    {proc.stderr.decode()[:300]}")
        failed += not ok

        vocab = ref.get("config", {}).get("vocab_size") or case["logits_shape"][1]
        raw = open(dump, "rb").read()
        rows = len(raw) // (4 * vocab)
        ours = struct.unpack(f"<{rows * vocab}f", raw[: rows * vocab * 4])
        expected_raw = open(os.path.join(fixture, case["logits_file"]), "rb").read()
        expected = struct.unpack(f"<{len(expected_raw) // 4}f", expected_raw)
        positions = case["logits_positions"]
        n_rows = len(case["prompt_ids"]) + n_new
        diff = float("inf")
        if rows == n_rows:
            diff = max(abs(ours[p * vocab + j] - expected[r * vocab + j])
                       for r, p in enumerate(positions) for j in range(vocab))
        ok = diff <= TOLERANCE
        print(f"{'ok' if ok else 'FAIL'} {label}: --dump-logits wrote {rows} rows (expected {n_rows}), "
              f"max |diff| {diff:.2e} at the reference positions")
        failed += not ok
    return 1 if failed else 0


sys.exit(main())
