#!/usr/bin/env python3
"""bench.py: time run on model files and print tables (called by bench/bench.sh).

Usage:
    bench/bench.py [options] [--run CC=RUN ...] LABEL=FILE.bin [LABEL=FILE.bin ...]

For every thread count (OMP_NUM_THREADS), file and run binary (one per compiler, say
--run gcc=bench/build/run-gcc --run clang=bench/build/run-clang; default ./run) it runs
    RUN FILE -m generate --stats json -t 0 --ignore-eos -c CTX -i PROMPT -n N
and reads the JSON line run prints on stderr:
    prefill128  prompt of exactly 128 tokens, -n 1: prefill_tok_s, ttft_ms
    prefill512  prompt of exactly 512 tokens, -n 128: prefill_tok_s
    gen128      prompt of 4 tokens, -n 128: gen_tok_s
    gen@512     the prefill512 runs with -n 128: gen_tok_s at positions 512..639
each the best of --runs runs, and peak_rss_mb as the maximum over all of them. To keep
the benchmark short on a busy machine, a measurement stops repeating once it has taken
--budget seconds, and after --deadline seconds of timings every measurement is one run.

The memory read bandwidth for the roofline comes from --bandwidth-bin (bench/bandwidth),
run before the timings, between each file's timings and after them; the best pass counts
(a momentarily busy machine lowers some of them). Generation reads every weight once
per token, so its ceiling is bandwidth / weight bytes.

Prefill is limited by arithmetic instead: --peak gives the multiply-add peak measured by
bench/peak, as "CC:THREADS:GMACs,...": CC a compiler (the peak with run's own flags) or
"*" (with the widest vectors; the machine's peak is the best of all entries). A prompt
token costs the multiply-adds of every layer matrix, plus attention over the positions
before it, plus the classifier once per prompt (see macs_per_token).

It is a benchmark, not a test: a speed never makes it fail. It exits 1 only when
something is broken (run fails, prints no statistics, or a prompt cannot be made).
Python 3 standard library only.
"""

import argparse
import collections
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time

MB = 1e6            # sizes and bandwidth in decimal units: MB = 10^6 bytes, GB/s = 10^9 B/s
MIB = 1024 * 1024   # run's peak_rss_mb is ru_maxrss / 1024, i.e. MiB
RSS_SLACK_MB = 32   # allowance for code, heap, activations, tokenizer tables


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def read_header(path):
    """The model file's header fields the table needs (see FORMAT.md)."""
    with open(path, "rb") as f:
        h = f.read(256)
    if len(h) < 256 or h[:4] != b"RUNC":
        die(f"{path}: not a run.c model file")
    u32 = lambda off: struct.unpack_from("<I", h, off)[0]
    u64 = lambda off: struct.unpack_from("<Q", h, off)[0]
    return {
        "dim": u32(16), "hidden_dim": u32(20), "n_layers": u32(24), "n_heads": u32(28), "n_kv_heads": u32(32),
        "head_dim": u32(36), "vocab_size": u32(40), "weight_type": u32(84),
        "group_size": u32(88), "weights_offset": u64(208), "file_bytes": u64(216),
    }


def run_cmd(args, threads, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        return subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        die(f"timed out after {timeout} s: {' '.join(args[:4])} ...")


def tokenize(run, model, text):
    p = run_cmd([run, model, "-m", "tokenize", "-i", text], 1)
    if p.returncode != 0:
        die(f"{run} -m tokenize failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout.split()


def make_prompt(run, model, n):
    """A text that `run -m tokenize` turns into exactly n tokens.

    Starts from n pseudo-random digits (the pre-tokenizer splits digits individually,
    and the synthetic tokenizer never merges them, so it is usually exact at once),
    then lengthens/shortens the text by the difference until the count is exact.
    """
    rng = random.Random(n)
    pool = "".join(rng.choice("0123456789") for _ in range(4 * n + 64))
    length = n
    for _ in range(20):
        text = pool[:length]
        c = len(tokenize(run, model, text))
        if c == n:
            return text
        length = max(1, min(len(pool), length + (n - c)))
    die(f"cannot make a prompt of exactly {n} tokens (last try: {c})")


def run_stats(run, model, threads, prompt, n_new, ctx):
    args = [run, model, "-m", "generate", "--stats", "json", "-t", "0", "--ignore-eos",
            "-c", str(ctx), "-n", str(n_new), "-i", prompt]
    p = run_cmd(args, threads)
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        die(f"run failed (exit {p.returncode}) on {model}, {threads} threads, "
            f"-n {n_new}:\n{err.strip()}")
    for line in reversed(err.splitlines()):
        line = line.strip()
        if line.startswith("{") and "prefill_tok_s" in line:
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    die(f"run printed no --stats json line on {model}:\n{err.strip()}")


KEYS = ("prompt_tokens", "prefill_tok_s", "new_tokens", "gen_tok_s", "ttft_ms", "peak_rss_mb")


def measure(run, model, threads, prompt, n_new, ctx, runs, budget, want_prompt, missing,
            deadline):
    """Best-of-runs stats: max of the rates, min of ttft, max of peak RSS."""
    best, t0, k = None, time.time(), 0
    while k < runs:
        s = run_stats(run, model, threads, prompt, n_new, ctx)
        k += 1
        for key in KEYS:
            if key not in s:
                missing.add(key)
        if s.get("prompt_tokens", want_prompt) != want_prompt:
            die(f"prompt is {s['prompt_tokens']} tokens in generate mode, expected "
                f"{want_prompt} (does run add BOS?)")
        if s.get("new_tokens", n_new) != n_new:
            die(f"run generated {s['new_tokens']} tokens, expected {n_new} (--ignore-eos)")
        if best is None:
            best = dict(s)
        else:
            for key in ("prefill_tok_s", "gen_tok_s", "peak_rss_mb"):
                if key in s:
                    best[key] = max(best.get(key, 0), s[key])
            if "ttft_ms" in s:
                best["ttft_ms"] = min(best.get("ttft_ms", s["ttft_ms"]), s["ttft_ms"])
        if time.time() - t0 > budget or time.time() > deadline:
            break
    best["runs"] = k
    return best


def read_bandwidth(binary, threads):
    """{threads: GB/s} from one run of bench/bandwidth, and its output lines."""
    p = run_cmd([binary, "1024", "5"], max(threads))
    if p.returncode != 0:
        die(f"{binary} failed: {p.stderr.decode(errors='replace').strip()}")
    out, lines = {}, p.stdout.decode().splitlines()
    for line in lines:
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "threads" in f and "read_GBps" in f:
            out[int(f["threads"])] = float(f["read_GBps"])
    return out, lines


def macs_per_token(h, prompt):
    """Multiply-adds per token of a prompt of `prompt` tokens (header fields h).

    Each layer: q, k, v, o projections dim * (2 q_dim + 2 kv_dim), MLP 3 dim * hidden;
    attention: the token at position p scores p + 1 keys and adds p + 1 values,
    2 (p + 1) head_dim per query head, (prompt + 1) head_dim per head on average over
    the prompt; the classifier (vocab * dim) runs for the last token only.
    SmolLM2-135M: 106.2 M (matrices) + 2.2 M (attention, 128 tokens) + 0.2 M.
    """
    q_dim, kv_dim = h["n_heads"] * h["head_dim"], h["n_kv_heads"] * h["head_dim"]
    matrices = h["dim"] * (2 * q_dim + 2 * kv_dim) + 3 * h["dim"] * h["hidden_dim"]
    attention = h["n_heads"] * h["head_dim"] * (prompt + 1)
    return h["n_layers"] * (matrices + attention) + h["vocab_size"] * h["dim"] / prompt


def parse_peaks(spec):
    """{(cc, threads): GMACs} from "gcc:1:63.2,*:1:117.0,..." (see --peak)."""
    out = {}
    for item in filter(None, spec.split(",")):
        cc, t, g = item.rsplit(":", 2)
        key = (cc, int(t))
        out[key] = max(out.get(key, 0.0), float(g))
    return out


def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{nd}f}"


def table(headers, rows, left=3):
    """Columns padded to their widest cell; the first `left` left-aligned, the rest right."""
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w[i]) if i < left else c.rjust(w[i])
                                   for i, c in enumerate(cells))
    out = [line(headers), line(["-" * x for x in w])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def drop_from_page_cache(path):
    """Asks the kernel to forget the file's cached pages (those no process maps).

    run maps the model file in 2 MB pages where Linux can (util.c map_file), but only
    when the file is read afresh: pages already cached in 4 KB pieces (by a copy, or
    any read) stay so, and generation is then slower than the bandwidth ceiling allows.
    """
    if hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def time_file(args, run, cc, label, path, hdr, t, prompts, deadline):
    """The measurements of one run binary on one file with t threads, as a result row."""
    t0 = time.time()
    missing = set()
    m = lambda n, n_new: measure(run, path, t, prompts[n], n_new, args.context,
                                 args.runs, args.budget, n, missing, deadline)
    p128 = m(128, 1)
    p512 = m(512, 128)   # also generation at a longer context
    g128 = m(4, 128)
    r = {"cc": cc, "label": label, "threads": t, "hdr": hdr, "path": path,
         "prefill128": p128.get("prefill_tok_s"), "prefill512": p512.get("prefill_tok_s"),
         "gen128": g128.get("gen_tok_s"), "gen_at512": p512.get("gen_tok_s"),
         "ttft128": p128.get("ttft_ms"),
         "ttft_short": g128.get("ttft_ms"),
         "rss_mib": max((x.get("peak_rss_mb", 0) for x in (p128, p512, g128)),
                        default=None) or None,
         "runs": (p128["runs"], p512["runs"], g128["runs"]), "missing": missing}
    print(f"  {cc:5s} {label:6s} threads={t}: prefill128 {fmt(r['prefill128'])} tok/s, "
          f"prefill512 {fmt(r['prefill512'])} tok/s, gen128 {fmt(r['gen128'])} tok/s "
          f"({fmt(r['gen_at512'])} after 512), "
          f"ttft128 {fmt(r['ttft128'], 0)} ms, runs {'/'.join(map(str, r['runs']))}, "
          f"{time.time() - t0:.0f} s")
    sys.stdout.flush()
    return r


def pct(x):
    return fmt(x) + "%" if x is not None else "-"


def print_tables(args, results, bw, bw_median, peaks, machine_peak):
    """The speed table, the shares of the peak and of the bandwidth ceiling, memory."""
    speed_rows, roof_rows, mem_rows = [], [], []
    for r in results:
        h, t = r["hdr"], r["threads"]
        file_mb = h["file_bytes"] / MB
        weights_mb = (h["file_bytes"] - h["weights_offset"]) / MB
        kv_mb = 2 * h["n_layers"] * args.context * h["n_kv_heads"] * h["head_dim"] * 4 / MB
        g, g_median = bw.get(t), bw_median.get(t)
        ceiling = g * 1e3 / weights_mb if g else None
        share = lambda a, b: 100 * a / b if a and b else None
        gmacs = r["prefill128"] * macs_per_token(h, 128) / 1e9 if r["prefill128"] else None
        ratio = lambda n: r[n] / r["gen128"] if r["gen128"] and r[n] else None
        rss_mb = r["rss_mib"] * MIB / MB if r["rss_mib"] else None
        expect = file_mb + kv_mb + RSS_SLACK_MB
        key = [r["cc"], r["label"], str(t)]
        speed_rows.append(key + [fmt(r["prefill128"]), fmt(r["prefill512"]), fmt(r["gen128"]),
                                 fmt(r["gen_at512"]), fmt(r["ttft128"], 0), fmt(r["ttft_short"], 0),
                                 fmt(ratio("prefill128"), 2), fmt(ratio("prefill512"), 2)])
        roof_rows.append(key + [fmt(gmacs), fmt(machine_peak.get(t)),
                                pct(share(gmacs, machine_peak.get(t))),
                                fmt(peaks.get((r["cc"].split("@")[0], t))),
                                pct(share(gmacs, peaks.get((r["cc"].split("@")[0], t)))),
                                fmt(weights_mb), fmt(g), fmt(ceiling), pct(share(r["gen128"], ceiling)),
                                fmt(g_median),
                                pct(share(r["gen128"] * weights_mb, g_median * 1e3 if g_median else None))])
        mem_rows.append(key + [fmt(file_mb), fmt(kv_mb), fmt(rss_mb), fmt(expect),
                               fmt(rss_mb / expect if rss_mb else None, 2)])

    print()
    print(table(["cc", "model", "thr", "prefill128", "prefill512", "gen128", "gen@512", "ttft128_ms",
                 "ttft4_ms", "prefill128/gen", "prefill512/gen"], speed_rows))
    print()
    print(table(["cc", "model", "thr", "prefill_GMACs", "peak", "of_peak", "cc_peak", "of_cc_peak",
                 "MB/token", "BW_GBps", "ceiling_tok/s", "of_ceiling", "BW_median", "of_median"],
                roof_rows))
    print()
    print(table(["cc", "model", "thr", "file_MB", "KV_MB", "peak_RSS_MB", "file+KV+32", "RSS/that"],
                mem_rows))
    h0 = results[0]["hdr"]
    kv_read = 2 * h0["n_layers"] * (4 + 64) * h0["n_kv_heads"] * h0["head_dim"] * 4 / MB
    print(f"""
  cc              the compiler that built run (bench/build/run-CC)
  prefill128/512  tok/s over a prompt of exactly 128/512 tokens, best of runs
  gen128          tok/s over 128 new tokens after a 4-token prompt (-n 128), best of runs
  gen@512         the same after the 512-token prompt: attention over a longer context
  ttft128_ms      time to first token after the 128-token prompt (ttft4_ms: 4-token prompt)
  prefill/gen     prefill128 (prefill512) / gen128 of the same file and thread count
  prefill_GMACs   prefill128 * multiply-adds per prompt token: {macs_per_token(h0, 128) / 1e6:.1f} M
                  (every layer matrix, attention over the positions before, the classifier
                  once per prompt; q8_0's integer multiply-adds count as one each)
  peak            multiply-add peak, same thread count: the best of bench/peak over
                  compilers and flags (-mprefer-vector-width=512 included where taken);
                  of_peak = prefill_GMACs / peak
  cc_peak         the same probe built like run (this compiler, run's flags); of_cc_peak
  MB/token        bytes read per generated token = file_bytes - weights_offset (the whole
                  weights section: every layer matrix once, plus the tied embedding read
                  whole as the classifier; norms are in it too; not in it: the embedding
                  row lookup and the KV cache reads, 2*n_layers*pos*kv_dim*4 bytes at
                  position pos: {kv_read:.1f} MB/token on average over gen128)
  BW_GBps         memory read bandwidth, same thread count (bench/bandwidth, the best of
                  its passes before, between and after the timings)
  ceiling_tok/s   BW_GBps * 1000 / MB/token; of_ceiling = gen128 / ceiling_tok/s
  BW_median       the median of those passes, and of_median gen128's share of its ceiling
  KV_MB           2 * n_layers * context * n_kv_heads*head_dim * 4 bytes, context = -c {args.context}
  peak_RSS_MB     max peak_rss_mb of all runs (run reports MiB; converted to MB here)
  RSS/that        peak RSS / (file_MB + KV_MB + {RSS_SLACK_MB})
  MB = 10^6 bytes, GB/s = 10^9 bytes/s""")
    missing = set().union(*(r["missing"] for r in results))
    if missing:
        print(f"\nnote: run's --stats json lacked: {', '.join(sorted(missing))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="LABEL=FILE.bin")
    ap.add_argument("--run", action="append", metavar="CC=RUN",
                    help="a run binary and its label (repeatable; default cc=./run)")
    ap.add_argument("--peak", default="",
                    help='multiply-add peaks, "CC:THREADS:GMACs,..." (from bench/peak)')
    ap.add_argument("--threads", default="1 2", help='thread counts (default "1 2")')
    ap.add_argument("--bandwidth-bin", help="bench/bandwidth, run before, between and after the timings")
    ap.add_argument("--bandwidth", default="",
                    help='read GB/s per thread count, "1:31.2,2:60.1" (instead of --bandwidth-bin)')
    ap.add_argument("--context", type=int, default=1024, help="-c passed to run")
    ap.add_argument("--runs", type=int, default=3, help="best of this many runs")
    ap.add_argument("--budget", type=float, default=20.0,
                    help="stop repeating a measurement once it has taken this many seconds")
    ap.add_argument("--deadline", type=float, default=150.0,
                    help="after this many seconds of timings, one run per measurement")
    args = ap.parse_args()

    files = []
    for spec in args.files:
        label, sep, path = spec.partition("=")
        if not sep:
            die(f"expected LABEL=FILE.bin, got {spec}")
        files.append((label, path, read_header(path)))
        drop_from_page_cache(path)
    threads = [int(t) for t in args.threads.split()]
    runs = []
    for spec in args.run or ["cc=./run"]:
        cc, sep, path = spec.partition("=")
        if not sep:
            die(f"expected --run CC=RUN, got {spec}")
        runs.append((cc, path))
    peaks = parse_peaks(args.peak)
    passes = collections.defaultdict(list)   # threads -> GB/s of every bandwidth pass
    for item in filter(None, args.bandwidth.split(",")):
        t, _, g = item.partition(":")
        passes[int(t)].append(float(g))

    def more_bandwidth():
        got, lines = read_bandwidth(args.bandwidth_bin, threads)
        for tt, g in got.items():
            passes[tt].append(g)
        return lines

    if args.bandwidth_bin and not passes:
        lines = more_bandwidth()
        print("memory read bandwidth (bench/bandwidth: 1 GiB of int64, best of 5 passes, "
              "kernels sum and xor8):")
        print("\n".join("  before: " + x for x in lines))
        sys.stdout.flush()

    ref = files[0][1]
    prompts = {n: make_prompt(runs[0][1], ref, n) for n in (128, 512, 4)}
    print(f"prompts: digit strings of exactly 128, 512 and 4 tokens (checked with "
          f"-m tokenize); -c {args.context}; best of {args.runs} runs")
    sys.stdout.flush()

    results = []
    deadline = time.time() + args.deadline
    for t in threads:
        for label, path, hdr in files:
            if args.bandwidth_bin and not args.bandwidth and results:
                # again between the timings: a neighbour's load comes and goes in seconds
                print("\n".join("  bandwidth: " + x for x in more_bandwidth()))
            # the compilers one after the other on the same file: their rows are as
            # close in time as they can be, so a neighbour's load skews both alike
            for cc, run in runs:
                results.append(time_file(args, run, cc, label, path, hdr, t, prompts, deadline))

    if args.bandwidth_bin and not args.bandwidth:
        print("\n".join("  bandwidth after: " + x for x in more_bandwidth()))
    # The ceiling uses the best pass. On a shared machine a pass can catch a moment when
    # the neighbours are quiet and read far faster than usual; the median pass says what
    # the machine gave most of the time, and the table shows the share of both.
    bw = {t: max(g) for t, g in passes.items()}
    bw_median = {t: statistics.median(g) for t, g in passes.items()}
    print("  bandwidth: best pass " + ", ".join(f"threads={t} {g:.1f} GB/s" for t, g in sorted(bw.items()))
          + "; median pass " + ", ".join(f"threads={t} {g:.1f} GB/s" for t, g in sorted(bw_median.items())))
    machine_peak = {}
    for (cc, t), g in peaks.items():
        machine_peak[t] = max(machine_peak.get(t, 0.0), g)
    if machine_peak:
        print("  multiply-add peak: " + ", ".join(f"threads={t} {g:.1f} GMAC/s"
                                                  for t, g in sorted(machine_peak.items())))
    print_tables(args, results, bw, bw_median, peaks, machine_peak)


if __name__ == "__main__":
    main()
