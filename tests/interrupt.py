#!/usr/bin/env python3
"""Ctrl-C in chat, a closed stdout, and the context limits, end to end.

    interrupt.py RUN LONG_CONTEXT_MODEL.bin SHORT_MODEL.bin

LONG_CONTEXT_MODEL has a context long enough that an answer with --ignore-eos -n -1 takes
seconds, so a SIGINT surely arrives in the middle of it.
"""
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import check, exit_status  # noqa: E402  (tests/oracle.py)


def wait_for_output(proc, n_bytes):
    """Reads until n_bytes of answer have arrived (the answer is under way)."""
    got = b""
    while len(got) < n_bytes:
        chunk = proc.stdout.read1(4096)
        if not chunk:
            break
        got += chunk
    return got


def interrupt_chat(run, model):
    # Two turns; each answer would run for a long time; Ctrl-C stops each one.
    proc = subprocess.Popen([run, model, "-m", "chat", "-i", "Hello", "-n", "-1", "--ignore-eos", "-t", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_output(proc, 20)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.stdin.write(b"How are you?\n")
    proc.stdin.flush()
    wait_for_output(proc, 20)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.stdin.close()
    proc.stdin = None  # communicate() must not touch it again
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    err = err.decode(errors="replace")
    check(proc.returncode == 130 and err.count("[interrupted]") == 2 and err.count("[prompt:") == 2,
          "chat: Ctrl-C stops the answer and returns to the prompt (twice); at EOF the exit status is 130",
          f"status {proc.returncode}, stderr: {err}")

    proc = subprocess.Popen([run, model, "-m", "chat", "-i", "Hello", "-n", "-1", "--ignore-eos", "-t", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_output(proc, 20)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)  # two signals sent at once may arrive as one
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    check(proc.returncode == 130, "chat: a second Ctrl-C exits (status 130)", f"status {proc.returncode}")


def closed_stdout(run, model):
    proc = subprocess.run(f"'{run}' '{model}' -m generate -i Once -n 400 --ignore-eos -t 0 | head -c 10",
                          shell=True, capture_output=True, executable="/bin/bash")
    check(len(proc.stdout) == 10 and proc.stderr == b"", "a closed stdout (| head -c 10) ends the program quietly",
          f"stdout {proc.stdout!r} stderr {proc.stderr[:300]!r}")


def context_limits(run, model):
    proc = subprocess.run([run, model, "-m", "generate", "-i", "Once upon a time", "-c", "24", "-n", "100",
                           "--ignore-eos", "-t", "0"], capture_output=True)
    err = proc.stderr.decode()
    check(proc.returncode == 0 and "context full" in err, "generation that reaches the context end stops cleanly with a notice",
          f"status {proc.returncode}, stderr {err}")

    # 1st turn fits; the 2nd is far too long and is refused with advice; the 3rd fits again;
    # the refused turn makes the exit status 1.
    turns = "What is a very long question? " * 40 + "\nAnd a short one?\n"
    proc = subprocess.run([run, model, "-m", "chat", "-i", "Hi", "-c", "120", "-n", "4", "--ignore-eos", "-t", "0"],
                          input=turns.encode(), capture_output=True)
    err = proc.stderr.decode()
    check(proc.returncode == 1 and "turn ignored" in err and "-c" in err and err.count("[prompt:") == 2,
          "chat: a turn that would overflow the context is refused, the conversation goes on, exit status 1",
          f"status {proc.returncode}, stderr {err}")


def main():
    run, long_model, short_model = sys.argv[1:4]
    interrupt_chat(run, long_model)
    closed_stdout(run, short_model)
    context_limits(run, short_model)
    return exit_status()


sys.exit(main())
