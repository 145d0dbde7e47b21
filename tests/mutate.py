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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated mutant names to run")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per suite run (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--working-tree", action="store_true",
                    help="mutate the working tree's files (uncommitted edits too), not the last commit")
    ap.add_argument("--mutants", default=os.path.join(ROOT, "tests", "mutants.txt"))
    ap.add_argument("--check", action="store_true", help="only report stale mutants")
    args = ap.parse_args()

    mutants = parse_mutants(args.mutants)
    if args.check:
        def text(path):  # what a run would mutate: the last commit's file, or the working tree's
            if args.working_tree:
                return open(os.path.join(ROOT, path), encoding="utf-8").read()
            return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True,
                                  check=True).stdout.decode("utf-8")
        stale = [m for m in mutants if text(m["file"]).count(m["from"]) != 1]
        for m in stale:
            print(f"stale {m['name']} ({m['file']}): its text does not occur exactly once")
        print(f"{len(mutants)} mutants, {len(stale)} stale")
        return 1 if stale else 0
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
        t0 = time.time()
        status = run_suite(tree, os.path.join(logs, "baseline.log"), args.timeout)
        print(f"baseline ({time.time() - t0:.0f} s): {last_line(os.path.join(logs, 'baseline.log'))}", flush=True)
        baseline_fails = set()
        if status in ("build", "timeout"):
            print(f"the unmutated tree does not build or the suite hangs ({status}): see {logs}/baseline.log")
            args.keep = True
            return 1
        if status == "fail":
            baseline_fails = fail_lines(os.path.join(logs, "baseline.log"))
            print(f"WARNING: the unmutated suite fails {len(baseline_fails)} check(s); a mutant is killed only "
                  f"by a FAIL line not among these:", flush=True)
            for x in sorted(baseline_fails):
                print(f"    {x[:150]}", flush=True)

        killed, survived, stale, equivalent = [], [], [], []
        for i, m in enumerate(mutants, 1):
            tag = f"[{i}/{len(mutants)}] {m['name']}"
            if "equivalent" in m:
                equivalent.append(m)
                print(f"{tag}: equivalent, not run ({m['equivalent']})", flush=True)
                continue
            path = os.path.join(tree, m["file"])
            original = open(path, encoding="utf-8").read()
            if original.count(m["from"]) != 1:
                stale.append(m)
                print(f"{tag}: STALE: its text occurs {original.count(m['from'])} times in {m['file']}", flush=True)
                continue
            log = os.path.join(logs, m["name"] + ".log")
            t0 = time.time()
            try:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(original.replace(m["from"], m["to"]))
                status = run_suite(tree, log, args.timeout, baseline_fails)
            finally:
                with open(path, "w", encoding="utf-8") as f:  # restored, whatever happened
                    f.write(original)
            took = f"{time.time() - t0:.0f} s"
            if status == "fail" and baseline_fails and not fail_lines(log) - baseline_fails:
                status = "pass"  # no failure beyond those of the unmutated suite
            if status == "pass":
                survived.append(m)
                print(f"{tag}: SURVIVED ({took}): {m['why']}", flush=True)
            else:
                killed.append(m)
                detail = {"build": "the build fails", "timeout": "the suite timed out"}.get(status) or first_fail(log, baseline_fails)
                print(f"{tag}: killed ({took}): {detail}", flush=True)

        ran = len(killed) + len(survived)
        print()
        if ran:
            print(f"mutation score: {len(killed)} of {ran} killed ({100 * len(killed) / ran:.1f}%)"
                  f"; {len(equivalent)} equivalent (not run), {len(stale)} stale")
        for m in survived:
            print(f"survivor {m['name']} ({m['file']}): {m['why']}")
        for m in stale:
            print(f"stale {m['name']} ({m['file']}): update tests/mutants.txt")
        return 0 if not survived and not stale else 1
    except KeyboardInterrupt:
        print("\ninterrupted (the checkout was never changed)")
        return 130
    finally:
        if args.keep:
            print(f"kept {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


sys.exit(main())
