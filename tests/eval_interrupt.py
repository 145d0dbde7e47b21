#!/usr/bin/env python3
"""Ctrl-C in --batch and in classify --free, end to end.

    eval_interrupt.py RUN LONG_CONTEXT_MODEL.bin

LONG_CONTEXT_MODEL has a context long enough that an answer with --ignore-eos and no
token limit takes many seconds, so a SIGINT surely arrives in the middle of it. What
must hold: the run ends with status 130, the lines or rows done before are kept whole,
and the one that was cut is marked as interrupted, never written as if complete.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import check, exit_status  # noqa: E402  (tests/oracle.py)


def finish(proc):
    """Waits for proc (killing it after 60 s); returns (stdout, stderr) as text."""
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def interrupt_batch(run, model, tmp):
    # Line 1 answers at once; line 2 would run for a long time; line 3 must never run.
    path = os.path.join(tmp, "batch.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"prompt": "Hi", "max_new_tokens": 2}\n{"prompt": "Go on", "max_new_tokens": -1}\n'
                '{"prompt": "Never", "max_new_tokens": 2}\n')
    proc = subprocess.Popen([run, model, "--batch", path, "-c", "16384", "--ignore-eos", "-t", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # line 1 is done: line 2 is under way
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc)
    try:
        objects = [json.loads(first)] + [json.loads(line) for line in out.splitlines()]
    except ValueError:
        objects = []
    ok = (proc.returncode == 130 and [o.get("line") for o in objects] == [1, 2]
          and "interrupted" not in objects[0] and "answer" in objects[0]
          and objects[1].get("interrupted") is True and isinstance(objects[1].get("answer"), str))
    check(ok, "batch: Ctrl-C during line 2 prints line 2 with \"interrupted\": true, keeps line 1 whole, "
          "runs no more lines and exits 130", f"status {proc.returncode}\nstdout {first!r} {out[:600]!r}\n"
          f"stderr {err[-300:]!r}")


def interrupt_classify(run, model, tmp, wait):
    # --free with no token limit: the first row's answer runs for a long time.
    data = os.path.join(tmp, "rows.tsv")
    with open(data, "w", encoding="utf-8") as f:
        f.write("text\tlabel\nI loved it.\tPOSITIVE\nI hated it.\tNEGATIVE\n")
    rows = os.path.join(tmp, "out.tsv")
    proc = subprocess.Popen([run, model, "-m", "classify", "-i", data, "--free", "-n", "-1", "--ignore-eos",
                             "-c", "16384", "--output", rows], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(wait)
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc)
    written = open(rows, encoding="utf-8", errors="replace").read() if os.path.exists(rows) else ""
    return proc.returncode, written, out, err


def interrupt_classify_checked(run, model, tmp):
    # The signal must arrive while the answer runs, not while the model loads: a run that
    # ended before its first row started is tried again with a longer wait.
    for wait in (1, 4, 10):
        status, written, out, err = interrupt_classify(run, model, tmp, wait)
        if written:
            break
    lines = written.splitlines()
    fields = lines[0].split("\t") if lines else []
    ok = (status == 130 and len(lines) == 1 and fields[:2] == ["interrupted", "POSITIVE"] and len(fields) == 3
          and out == "")
    check(ok, "classify --free: Ctrl-C during row 1 writes it as 'interrupted<TAB>POSITIVE<TAB>answer so far', "
          "no report, exit 130", f"status {status}\nrows {written[:300]!r}\nstdout {out[:300]!r}\nstderr {err[-300:]!r}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, model = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        interrupt_batch(run, model, tmp)
        interrupt_classify_checked(run, model, tmp)
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
