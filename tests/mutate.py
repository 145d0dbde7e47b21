#!/usr/bin/env python3
"""Mutation testing: does the test suite fail when the program is wrong?

    python3 tests/mutate.py [--only NAME,NAME] [--timeout SECONDS] [--keep] [--working-tree]
    python3 tests/mutate.py --check     (only: is every mutant's text still in the code?)
    (make mutate)

Applies the mutants of tests/mutants.txt one at a time to a copy of the repository in a
temporary folder (the checkout itself is never changed), builds ./run there and runs
the suite (tests/run_tests.sh) on each. A mutant is killed when the build fails, the
suite fails or the suite runs past the timeout; it survives when the suite passes.
The copy is the last commit (git archive HEAD), or with --working-tree the files that
git tracks as they are in the working tree, uncommitted edits included. The suite runs once unmutated first and should pass; if some of its
checks fail there, the run goes on with a warning, and a mutant is then killed only by
a FAIL line that the unmutated suite does not print (compared with the digits taken out,
as timings and seeds vary).

A mutant's suite stops at its first FAIL line (one is enough). Prints one line per
mutant, then the score (killed / mutants run) and the survivors.
A mutant whose original text does not occur exactly once is stale (the code moved on:
update tests/mutants.txt); one marked `equivalent:` is listed and not run. Logs are in
the copy's tests/build/mutate/ (kept with --keep). Exit status: 0 if no mutant
survived and none is stale, else 1.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_mutants(path):
    """The blocks of mutants.txt as dicts (name, file, from, to, why, equivalent)."""
    mutants, current = [], None
    for number, line in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = {"name": line.strip()[1:-1], "line": number}
            mutants.append(current)
            continue
        key, sep, value = line.partition(": ")
        if current is None or not sep or key not in ("file", "from", "to", "why", "equivalent"):
            sys.exit(f"{path}:{number}: expected '[name]' or 'key: value', got {line!r}")
        current[key] = value
    for m in mutants:
        missing = [k for k in ("file", "from", "to", "why") if k not in m]
        if missing:
            sys.exit(f"{path}:{m['line']}: mutant {m['name']} has no {', '.join(missing)}")
    names = [m["name"] for m in mutants]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: mutant names are not unique")
    return mutants


def copy_tree(dest, working_tree):
    """The last commit, or the tracked files as they are in the working tree, into dest."""
    if not working_tree:
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        return
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = os.path.join(ROOT, f)
        if not os.path.lexists(src):
            continue  # deleted in the working tree
        os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, f), follow_symlinks=False)


def stop_group(proc):
    """Ends the suite and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_suite(tree, log_path, timeout, known_fails=None):
    """'pass', 'build' (./run did not build), 'fail' or 'timeout'; output to log_path.

    With known_fails (a mutant's run), the suite is stopped at its first FAIL line that
    is not among them: one is enough to kill the mutant, and the rest of the suite would
    only take time. The unmutated run (known_fails None) goes to the end."""
    with open(log_path, "w") as log:
        build = subprocess.run(["make", "-s", "run"], cwd=tree, stdout=log, stderr=subprocess.STDOUT)
        if build.returncode != 0:
            return "build"
        proc = subprocess.Popen(["bash", "tests/run_tests.sh"], cwd=tree, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(timeout, stop_group, [proc])
        timer.start()
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace")
                log.write(line)
                if known_fails is not None and line.startswith("FAIL") and normalise(line) not in known_fails:
                    log.write("(stopped at the first new FAIL)\n")
                    stop_group(proc)
                    return "fail"
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                stop_group(proc)
        if proc.returncode == -signal.SIGKILL:
            return "timeout"
    return "pass" if proc.returncode == 0 else "fail"


def normalise(line):
    return re.sub(r"[0-9]", "", line.rstrip("\n"))


def fail_lines(path):
    """The FAIL lines of a suite log, digits removed (timings and seeds vary)."""
    return {normalise(x) for x in open(path, errors="replace").read().splitlines() if x.startswith("FAIL")}


def last_line(path):
    lines = [x for x in open(path, errors="replace").read().splitlines() if x.strip()]
    return lines[-1] if lines else ""


def first_fail(path, known=frozenset()):
    for x in open(path, errors="replace").read().splitlines():
        if x.startswith("FAIL") and normalise(x) not in known:
            return x[:150]
    return ""


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated mutant names to run")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per suite run (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--working-tree", action="store_true",
                    help="mutate the working tree's files (uncommitted edits too), not the last commit")
    ap.add_argument("--mutants", default=os.path.join(ROOT, "tests", "mutants.txt"))
    ap.add_argument("--check", action="store_true", help="only report stale mutants")
    return ap.parse_args()


def check_stale(mutants, working_tree):
    """--check: is every mutant's text in what a run would mutate?"""
    def text(path):  # the last commit's file, or the working tree's
        if working_tree:
            return open(os.path.join(ROOT, path), encoding="utf-8").read()
        return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True,
                              check=True).stdout.decode("utf-8")
    stale = [m for m in mutants if text(m["file"]).count(m["from"]) != 1]
    for m in stale:
        print(f"stale {m['name']} ({m['file']}): its text does not occur exactly once")
    print(f"{len(mutants)} mutants, {len(stale)} stale")
    return 1 if stale else 0


def run_baseline(tree, logs, timeout):
    """Runs the unmutated suite; returns the FAIL lines it already has, or None if the tree
    does not build or the suite hangs (then nothing can be measured)."""
    t0 = time.time()
    status = run_suite(tree, os.path.join(logs, "baseline.log"), timeout)
    print(f"baseline ({time.time() - t0:.0f} s): {last_line(os.path.join(logs, 'baseline.log'))}", flush=True)
    if status in ("build", "timeout"):
        print(f"the unmutated tree does not build or the suite hangs ({status}): see {logs}/baseline.log")
        return None
    known = fail_lines(os.path.join(logs, "baseline.log")) if status == "fail" else set()
    if known:
        print(f"WARNING: the unmutated suite fails {len(known)} check(s); a mutant is killed only "
              f"by a FAIL line not among these:", flush=True)
        for x in sorted(known):
            print(f"    {x[:150]}", flush=True)
    return known


def run_mutant(tree, logs, m, timeout, known):
    """Applies mutant m, runs the suite and restores the file, whatever happens.
    Returns (result, detail): result is 'killed', 'survived' or 'stale'."""
    path = os.path.join(tree, m["file"])
    original = open(path, encoding="utf-8").read()
    if original.count(m["from"]) != 1:
        return "stale", f"its text occurs {original.count(m['from'])} times in {m['file']}"
    log = os.path.join(logs, m["name"] + ".log")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original.replace(m["from"], m["to"]))
        status = run_suite(tree, log, timeout, known)
    finally:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)
    if status == "pass" or (status == "fail" and known and not fail_lines(log) - known):
        return "survived", m["why"]
    return "killed", {"build": "the build fails", "timeout": "the suite timed out"}.get(status) or first_fail(log, known)


def report(results):
    """The score and the survivors; results: (mutant, result) pairs."""
    count = {r: [m for m, x in results if x == r] for r in ("killed", "survived", "stale", "equivalent")}
    ran = len(count["killed"]) + len(count["survived"])
    print()
    if ran:
        print(f"mutation score: {len(count['killed'])} of {ran} killed ({100 * len(count['killed']) / ran:.1f}%)"
              f"; {len(count['equivalent'])} equivalent (not run), {len(count['stale'])} stale")
    for m in count["survived"]:
        print(f"survivor {m['name']} ({m['file']}): {m['why']}")
    for m in count["stale"]:
        print(f"stale {m['name']} ({m['file']}): update tests/mutants.txt")
    return 0 if not count["survived"] and not count["stale"] else 1


def main():
    args = parse_args()
    mutants = parse_mutants(args.mutants)
    if args.check:
        return check_stale(mutants, args.working_tree)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m["name"] for m in mutants}
        if unknown:
            sys.exit(f"no such mutant: {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m["name"] in wanted]

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: clean up
    tree = tempfile.mkdtemp(prefix="runc-mutate-")
    try:
        copy_tree(tree, args.working_tree)
        logs = os.path.join(tree, "tests", "build", "mutate")
        os.makedirs(logs)
        print(f"copy of the checkout: {tree}", flush=True)
        known = run_baseline(tree, logs, args.timeout)
        if known is None:
            args.keep = True
            return 1
        results = []
        for i, m in enumerate(mutants, 1):
            t0 = time.time()
            if "equivalent" in m:
                result, detail = "equivalent", f"not run: {m['equivalent']}"
            else:
                result, detail = run_mutant(tree, logs, m, args.timeout, known)
            results.append((m, result))
            print(f"[{i}/{len(mutants)}] {m['name']}: {result.upper() if result != 'killed' else result} "
                  f"({time.time() - t0:.0f} s): {detail}", flush=True)
        return report(results)
    except KeyboardInterrupt:
        print("\ninterrupted (the checkout was never changed)")
        return 130
    finally:
        if args.keep:
            print(f"kept {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


sys.exit(main())
