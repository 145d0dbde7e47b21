#!/usr/bin/env python3
"""End-to-end tests of the evaluation workflows: classify, --batch, perplexity.

    test_eval.py RUN MODEL.bin

MODEL.bin is tests/build/suite/tiny-smollm2.bin: a random tiny model with SmolLM2's ChatML
template and default system prompt. Its answers are nonsense, so the tests check what
must hold whatever the weights are:

- classify (constrained): one row per example, predictions among the labels,
  probabilities that sum to 1, the same output twice, and the probabilities are the
  softmax over the labels of log P(label tokens + <|im_end|> | prompt), recomputed here
  independently with `run -m perplexity` on the rendered conversation;
  --labels (another label set than the file's) and --output FILE;
- classify --free: rows are a label or "invalid", exactly as the answer matches a label
  (case, whitespace and punctuation around it aside), the same output twice;
- the report after the rows agrees with the rows (accuracy, supports, confusion matrix);
- --batch: one JSON object per non-empty line, errors for broken lines, temperature 0
  equals chat mode with -t 0, a seed repeats its answer, max_new_tokens is respected,
  \\u escapes (surrogate pairs too) arrive as the right UTF-8;
- perplexity: its summary is exp(mean NLL) and the mean of the printed log-probabilities;
- hostile input: more than 1000 classes (a file with swapped columns), repeated or empty
  --labels, a gold label outside --labels, a row too long for the context (refused before
  an --output file exists), 1000 classes (the report without its confusion matrix), a
  NUL byte or a CR inside a line of the TSV (CR LF line ends are fine), a row that gives
  no token (an empty text for a model without a chat template or BOS), -y or --template
  not UTF-8 (not blamed on the row); batch
  lines that RFC 8259 or the keys' types and ranges refuse (Python's json decides which),
  with the key and value named, a byte-order mark, NUL bytes, a folder, the seed of every
  answer; -t 1e-40 is greedy; a 50 MB or 300 MB perplexity file is refused as too long in
  bounded memory, and one with a NUL byte (from a file or a pipe); every output path on a
  full disk (/dev/full) fails with exit 1.
One ok/FAIL line per check; the exit status is 1 if any failed.
"""
import concurrent.futures
import json
import math
import os
import string
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import check, exit_status  # noqa: E402  (tests/oracle.py)

HERE = os.path.dirname(os.path.abspath(__file__))
SENTIMENT = os.path.join(HERE, "data", "sentiment.tsv")
PROBES = os.path.join(HERE, "data", "probes.jsonl")
SYSTEM = ("Classify the sentiment of the following text as POSITIVE, NEGATIVE or NEUTRAL. "
          "Just return the label, nothing else!")
TEMPLATE = "Text: {text}\nSentiment:"

class Runner:
    """Runs ./run on the model. One OpenMP thread unless threads=None (the default number):
    the results are the same with any number of threads. Idle OpenMP threads sleep instead
    of spinning: on a busy machine spinning threads make a run of this tiny model take
    seconds instead of a tenth of a second."""

    def __init__(self, run, model):
        self.run, self.model = run, model

    def __call__(self, *args, stdin=None, threads=1):
        """Runs `run MODEL args...`; returns (status, stdout bytes, stderr text)."""
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "passive")
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        proc = subprocess.run([self.run, self.model, *args], capture_output=True, check=False, env=env,
                              stdin=subprocess.DEVNULL if stdin is None else None, input=stdin)
        return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")

    def ok(self, *args, threads=1):
        status, out, err = self(*args, threads=threads)
        if status != 0:
            raise RuntimeError(f"run {' '.join(args)} exited with {status}: {err}")
        return out

    def tokenize(self, text):
        return [int(x) for x in self.ok("-m", "tokenize", "-i", text).split()]


def chatml(system, user):
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def subset(tmp, rows=10):
    """The header and the first rows of sentiment.tsv, for the checks that need no more
    (a sanitizer build of run is slow)."""
    path = os.path.join(tmp, f"sentiment-{rows}.tsv")
    with open(SENTIMENT, encoding="utf-8") as f:
        lines = f.read().splitlines()[: rows + 1]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    return [tuple(line.rsplit("\t", 1)) for line in lines[1:] if line]


def unescape(b):
    """Undoes run's write_escaped (\\t, \\n, \\r, \\\\) on bytes."""
    out, i = bytearray(), 0
    while i < len(b):
        if b[i:i + 1] == b"\\" and i + 1 < len(b):
            out += {b"t": b"\t", b"n": b"\n", b"r": b"\r", b"\\": b"\\"}.get(b[i + 1:i + 2], b[i:i + 2])
            i += 2
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def normalise(b):
    """run's normalise_label: ASCII whitespace and punctuation stripped from both ends
    (C's isspace/ispunct), ASCII letters upper-cased."""
    strip = (string.whitespace + string.punctuation).encode()
    return b.strip(strip).upper()


def split_classify_output(out):
    """(rows as lists of byte fields, report text) of a classify run's stdout."""
    head, _, report = out.partition(b"\n\n")
    rows = [line.split(b"\t") for line in head.split(b"\n")] if head else []
    return rows, report.decode("utf-8")


def parse_report(report):
    """{'classes': {name: support}, 'accuracy': (value, n), 'matrix': {gold: {pred: count}}}"""
    lines = report.split("\n")
    parsed = {"classes": {}, "matrix": {}}
    i = 2  # the header, a blank line
    while lines[i].strip():
        fields = lines[i].rsplit(None, 4)
        parsed["classes"][fields[0].strip()] = fields[4]
        i += 1
    acc = lines[i + 1].split()
    parsed["accuracy"] = (float(acc[1]), acc[2])
    m = lines.index("confusion matrix (rows: gold, columns: predicted)")
    columns = lines[m + 1].split()
    for line in lines[m + 2:]:
        if not line.strip():
            continue
        fields = line.rsplit(None, len(columns))
        parsed["matrix"][fields[0].strip()] = dict(zip(columns, map(int, fields[1:])))
    return parsed


def check_report(what, rows, report, classes):
    """The report agrees with the rows: accuracy, supports, confusion matrix, classes."""
    gold = [r[1].decode() for r in rows]
    pred = [r[0].decode() for r in rows]
    try:
        p = parse_report(report)
    except (ValueError, IndexError) as e:
        return check(False, f"{what}: the report parses", f"{e}\n{report}")
    n = len(rows)
    correct = sum(g == q for g, q in zip(gold, pred))
    expected_classes = sorted(set(gold) | set(pred))
    ok = (abs(p["accuracy"][0] - correct / n) <= 0.005 + 1e-9 and p["accuracy"][1] in (str(n), f"{n}.0")
          and list(p["classes"]) == expected_classes
          and all(float(p["classes"][c]) == gold.count(c) for c in expected_classes)
          and all(p["matrix"][g][q] == sum(1 for a, b in zip(gold, pred) if a == g and b == q)
                  for g in expected_classes for q in expected_classes)
          and set(pred) <= set(classes) | {"invalid"})
    return check(ok, f"{what}: report (accuracy {p['accuracy'][0]:.2f} = {correct}/{n}, supports, "
                 f"confusion matrix) agrees with the rows", report)


# ---------------------------------------------------------------------------- classify

def test_classify_constrained(run, tmp):
    data = read_rows(SENTIMENT)
    labels = list(dict.fromkeys(label for _, label in data))
    args = ["-m", "classify", "-i", SENTIMENT, "-y", SYSTEM, "--template", TEMPLATE]
    out = run.ok(*args)
    rows, report = split_classify_output(out)
    ok = len(rows) == len(data) and all(len(r) == 2 + len(labels) for r in rows)
    if not check(ok, f"classify: {len(rows)} rows of pred, gold and {len(labels)} probabilities "
                 f"for the {len(data)} examples", out[:500]):
        return
    probs, bad = [], []
    for (text, gold), r in zip(data, rows):
        pred, g = r[0].decode(), r[1].decode()
        ps = {}
        for field, label in zip(r[2:], labels):
            name, _, value = field.decode().partition("=")
            if name != label:
                bad.append(f"probability field {field!r}, expected {label}=...")
            ps[name] = float(value)
        probs.append(ps)
        if g != gold or pred not in labels or abs(sum(ps.values()) - 1) > 1e-3 or pred != max(ps, key=ps.get):
            bad.append(f"{r}")
    check(not bad, "classify: gold labels in file order, predictions among the labels, "
          "probabilities sum to 1 and the prediction is the most probable label", "\n".join(bad[:5]))
    check(run.ok(*args, threads=None) == out,
          "classify: a second run (with the default number of threads) prints exactly the same")
    check_report("classify", rows, report, labels)

    # The probabilities, independently: score every label as a continuation of the
    # rendered conversation with perplexity mode, then softmax over the labels.
    eot = run.tokenize("<|im_end|>")
    label_ids = {label: run.tokenize(label) for label in labels}
    jobs = []  # (row, label, file)
    tokenization = []
    for i, (text, _) in enumerate(data):
        prompt = chatml(SYSTEM, TEMPLATE.replace("{text}", text))
        prompt_ids = run.tokenize(prompt) if i < 3 else None
        for j, label in enumerate(labels):
            full = prompt + label + "<|im_end|>"
            if prompt_ids is not None and run.tokenize(full) != prompt_ids + label_ids[label] + eot:
                tokenization.append(f"row {i + 1} {label}")
            path = os.path.join(tmp, f"scored-{i}-{j}.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(full)
            jobs.append((i, label, path))

    def score(job):
        i, label, path = job
        lines = run.ok("-m", "perplexity", "-i", path).decode("utf-8", "replace").splitlines()
        logprobs = [float(line.split("\t")[1]) for line in lines[:-1]]
        return i, label, sum(logprobs[-(len(label_ids[label]) + 1):])

    scores = [{} for _ in data]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, label, value in pool.map(score, jobs):
            scores[i][label] = value
    worst, mismatches = 0.0, []
    for i, (row_scores, ps) in enumerate(zip(scores, probs)):
        top = max(row_scores.values())
        total = sum(math.exp(v - top) for v in row_scores.values())
        for label in labels:
            p = math.exp(row_scores[label] - top) / total
            worst = max(worst, abs(p - ps[label]))
            if abs(p - ps[label]) > 1e-3:
                mismatches.append(f"row {i + 1} {label}: perplexity mode {p:.4f}, classify {ps[label]:.4f}")
        best = max(row_scores, key=row_scores.get)
        if best != rows[i][0].decode():
            mismatches.append(f"row {i + 1}: argmax of the scores {best}, classify predicted {rows[i][0].decode()}")
    check(not tokenization, "classify: the rendered prompt + label + <|im_end|> tokenizes as "
          "prompt, label and end-of-turn tokens (so the two scorings are comparable)", tokenization)
    check(not mismatches, f"classify: probabilities = softmax of log P(label + <|im_end|>) from "
          f"perplexity mode for all {len(data)} x {len(labels)} (max |diff| {worst:.1e}), "
          f"prediction = argmax", "\n".join(mismatches[:5]))

    # Another label set than the file's (another order, and a class no row has): the
    # predictions and probabilities come from it, the report has the union of the gold
    # and predicted classes.
    other = ["NEUTRAL", "MIXED", "POSITIVE", "NEGATIVE"]
    small = subset(tmp)
    small_args = ["-m", "classify", "-i", small, "-y", SYSTEM, "--template", TEMPLATE]
    out = run.ok(*small_args, "--labels", ",".join(other))
    rows, report = split_classify_output(out)
    ok = (len(rows) == len(read_rows(small)) and all(r[0].decode() in other for r in rows)
          and all([f.decode().partition("=")[0] for f in r[2:]] == other for r in rows))
    check(ok, f"classify --labels {','.join(other)}: predictions and probabilities over those labels", out[:500])
    check_report("classify --labels", rows, report, other)

    # --output: the rows go to the file, the report stays on stdout.
    rows_path = os.path.join(tmp, "rows.tsv")
    out_full = run.ok(*small_args)
    out_rows = run.ok(*small_args, "--output", rows_path)
    with open(rows_path, "rb") as f:
        written = f.read()
    head, _, report = out_full.partition(b"\n\n")
    check(written == head + b"\n" and out_rows == b"\n" + report,
          "classify --output FILE: the rows in FILE, only the report on stdout",
          f"file {written[:200]!r}\nstdout {out_rows[:200]!r}")


def test_classify_free(run, tmp):
    data = read_rows(SENTIMENT)
    labels = list(dict.fromkeys(label for _, label in data))
    args = ["-m", "classify", "-i", SENTIMENT, "-y", SYSTEM, "--free", "-n", "4"]
    out = run.ok(*args)
    rows, report = split_classify_output(out)
    bad = [r for r, (_, gold) in zip(rows, data)
           if len(r) != 3 or r[1].decode() != gold or r[0].decode() not in labels + ["invalid"]
           or (r[0].decode() != "invalid") != (normalise(unescape(r[2])) in [normalise(l.encode()) for l in labels])]
    check(len(rows) == len(data) and not bad,
          "classify --free -n 4: one row per example (pred, gold, answer), pred a label or 'invalid' "
          "as the answer matches", bad[:3])
    check(run.ok(*args, threads=None) == out,
          "classify --free: a second run (with the default number of threads) prints exactly the same")
    check_report("classify --free", rows, report, labels)

    # A label that the model does answer: take a printable answer of one row and make it
    # a label, spelled in another case with punctuation around it; every row whose answer
    # normalises to it must now be predicted as that label, and only those.
    # The answers are greedy, so the same for any correct program: this fixture model gives
    # printable ones, and none would mean that the answers changed.
    answers = [normalise(unescape(r[2])) for r in rows]
    usable = [a for a in answers if a and all(32 <= c < 127 for c in a) and b"," not in a]
    if not check(usable, "classify --free: some answer is printable ASCII without a comma (to make it a label)",
                 answers[:5]):
        return
    # Every gold label must be among --labels, so the file's labels come too; an answer
    # that matches several labels gets the last of them.
    label = "  " + usable[0].decode().lower() + "!"
    chosen = [label] + labels
    out = run.ok(*args, "--labels", ",".join(chosen))
    rows2, _ = split_classify_output(out)
    expect = [next((c for c in reversed(chosen) if normalise(c.encode()) == a), "invalid") for a in answers]
    got = [r[0].decode() for r in rows2]
    check(got == expect and [r[2] for r in rows2] == [r[2] for r in rows],
          f"classify --free: an answer matches the label {label!r} (case, spaces and punctuation aside) "
          f"in {got.count(label)} rows, as expected", f"got {got}\nexpected {expect}")


# ---------------------------------------------------------------------------- batch

def test_batch(run, tmp):
    lines = [
        "Where is Groningen located?",                                                        # 1 plain
        json.dumps({"prompt": "Name a colour.", "temperature": 0, "max_new_tokens": 12}),     # 2
        json.dumps({"prompt": "Tell me a story.", "system": "You are a storyteller.",
                    "temperature": 0.9, "top_k": 40, "top_p": 0.9, "seed": 42, "max_new_tokens": 10}),
        json.dumps({"prompt": "Tell me a story.", "system": "You are a storyteller.",
                    "temperature": 0.9, "top_k": 40, "top_p": 0.9, "seed": 42, "max_new_tokens": 10}),
        json.dumps({"prompt": "Tell me a story.", "system": "You are a storyteller.",
                    "temperature": 0.9, "top_k": 40, "top_p": 0.9, "seed": 43, "max_new_tokens": 10}),
        "",                                                                                   # 6 skipped
        '{"prompt": "Caf\\u00e9 and a smile \\ud83d\\ude00?", "temperature": 0, "max_new_tokens": 6}',
        '{"prompt": "unterminated',                                                           # 8 broken
        '{"prompt": "x", "temperature": "hot"}',                                              # 9 broken
        '{"system": "there is no prompt"}',                                                   # 10 broken
        '{"prompt": "x", "colour": 3}',                                                       # 11 broken
        '{"prompt": "a lone \\ud800 surrogate"}',                                             # 12 broken
        '{ "prompt" : "Say nothing." , "max_new_tokens" : 0 }',                               # 13
        '{"prompt": "quote \\" backslash \\\\ tab \\t newline \\n end", "temperature": 0, "max_new_tokens": 3}',
        # 15: this fixture model answers it with cut-off 4-byte characters (F0 9F F0 9F ...)
        json.dumps({"prompt": "Prompt number 15: tell me about 🙂", "temperature": 0, "max_new_tokens": 20}),
        '{"prompt": "a short escape \\u1"}',                                                 # 16 broken
        '{"prompt": "a spaced escape \\u 41x"}',                                             # 17 broken
        '{"prompt": "a C-style escape \\u0x41"}',                                            # 18 broken
    ]
    broken = {8, 9, 10, 11, 12, 16, 17, 18}
    path = os.path.join(tmp, "batch.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    default_n = 16
    status, out, err = run("--batch", path, "-t", "1.0", "-s", "7", "-n", str(default_n))
    objects, unparsable = [], []
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            objects.append(json.loads(line))
        except ValueError:
            unparsable.append(line)
    nonempty = [i + 1 for i, line in enumerate(lines) if line]
    check(status == 0 and not unparsable and [o.get("line") for o in objects] == nonempty,
          f"batch: exit 0, every output line is JSON, one per non-empty input line ({len(nonempty)})",
          f"status {status}; {err[-300:]}\nunparsable: {unparsable[:3]}\nlines: {[o.get('line') for o in objects]}")
    by_line = {o.get("line"): o for o in objects}
    bad = [o for o in objects if ("error" in o) != (o["line"] in broken)
           or ("error" not in o and not {"prompt", "answer", "new_tokens", "prompt_tokens"} <= set(o))]
    check(not bad, f"batch: an error object for each broken line ({sorted(broken)}: unterminated string, "
          "a string as a number, no prompt, unknown key, lone surrogate, \\u escapes with fewer than 4 hex "
          "digits, a space or 0x), an answer for the others", bad[:3])

    expected_prompts = {1: lines[0], 2: "Name a colour.", 7: "Café and a smile 😀?", 13: "Say nothing.",
                        14: "quote \" backslash \\ tab \t newline \n end"}
    bad = {k: by_line.get(k, {}).get("prompt") for k, v in expected_prompts.items()
           if by_line.get(k, {}).get("prompt") != v}
    check(not bad, "batch: JSON escapes in the input (\\u00e9, the surrogate pair \\ud83d\\ude00, \\\", \\\\, "
          "\\t, \\n) arrive as the right text", bad)

    limits = {1: default_n, 2: 12, 3: 10, 4: 10, 5: 10, 7: 6, 13: 0, 14: 3, 15: 20}
    bad = {k: by_line.get(k, {}).get("new_tokens") for k, m in limits.items()
           if not (isinstance(by_line.get(k, {}).get("new_tokens"), int) and by_line[k]["new_tokens"] <= m)}
    check(not bad and by_line.get(13, {}).get("answer") == "",
          "batch: new_tokens <= max_new_tokens (the line's, else -n); max_new_tokens 0 answers nothing", bad)

    a3, a4, a5 = (by_line.get(k, {}).get("answer") for k in (3, 4, 5))
    check(a3 is not None and a3 == a4, "batch: the same seed (and sampling settings) gives the same answer",
          f"{a3!r} vs {a4!r}")
    check(a3 != a5, "batch: another seed gives another answer (temperature 0.9)", f"{a3!r} vs {a5!r}")

    # Temperature 0 in a JSON line = chat mode with -t 0, the same model and system prompt.
    # Line 15's answer has bytes that are not UTF-8: both must print one U+FFFD for each
    # maximal invalid subsequence, as Python's decode(errors="replace") does.
    for k, prompt, n in ((2, "Name a colour.", 12), (7, "Café and a smile 😀?", 6),
                         (14, expected_prompts[14], 3), (15, "Prompt number 15: tell me about 🙂", 20)):
        status, chat_out, err = run("-m", "chat", "-i", prompt, "-t", "0", "-n", str(n), "--stats", "off")
        chat_answer = chat_out.decode("utf-8", "replace")
        if chat_answer.endswith("\n"):
            chat_answer = chat_answer[:-1]
        got = by_line.get(k, {}).get("answer")
        check(status == 0 and got == chat_answer,
              f"batch line {k}: temperature 0 answers what `run -m chat -t 0 -n {n}` prints",
              f"batch {got!r}\nchat  {chat_answer!r}")

    # The whole batch again: the same answers (every line's sampler starts from its seed).
    _, out2, _ = run("--batch", path, "-t", "1.0", "-s", "7", "-n", str(default_n))
    again = [json.loads(line) for line in out2.decode("utf-8", "replace").splitlines()]
    check([o.get("answer", o.get("error")) for o in again] == [o.get("answer", o.get("error")) for o in objects],
          "batch: a second run gives the same answers and errors")

    # The probe file of the examples parses and runs (every line an answer, no error).
    with open(PROBES, encoding="utf-8") as f:
        probes = [json.loads(line) for line in f if line.strip()]
    status, out, err = run("--batch", PROBES, "-n", "4")
    objects = [json.loads(line) for line in out.decode("utf-8", "replace").splitlines()]
    check(status == 0 and len(objects) == len(probes) and all("answer" in o for o in objects)
          and [o["prompt"] for o in objects] == [p["prompt"] for p in probes],
          f"batch: tests/data/probes.jsonl ({len(probes)} probes) runs without errors",
          [o for o in objects if "answer" not in o][:3] or err[-300:])


# ---------------------------------------------------------------------------- perplexity

def test_perplexity(run, tmp):
    path = os.path.join(tmp, "text.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("Groningen is a city in the north of the Netherlands.\nIt has a large university. Ünïcödé too.")
    # the third field is the token's bytes, which may be part of a character
    lines = run.ok("-m", "perplexity", "-i", path).decode("utf-8", "replace").splitlines()
    ids = run.tokenize(open(path, encoding="utf-8").read())
    rows = [line.split("\t") for line in lines[:-1]]
    summary = lines[-1].replace(",", "").split()
    # "tokens N predicted N-1 mean NLL X perplexity Y"
    n, predicted, nll, ppl = int(summary[1]), int(summary[3]), float(summary[6]), float(summary[8])
    logprobs = [float(r[1]) for r in rows]
    ok = (n == len(ids) and predicted == n - 1 == len(rows) and [int(r[0]) for r in rows] == ids[1:]
          and all(lp <= 0 for lp in logprobs))
    check(ok, f"perplexity: one line per predicted token ({len(rows)}), ids = the text's tokens after the first",
          lines[-1])
    mean = -sum(logprobs) / len(logprobs)
    check(abs(mean - nll) <= 1e-5 and abs(math.exp(nll) - ppl) <= 1e-5 * ppl,
          f"perplexity: mean NLL {nll:.6f} = -mean of the printed log-probabilities ({mean:.6f}), "
          f"perplexity {ppl:.4f} = exp(mean NLL) ({math.exp(nll):.4f})")


# ---------------------------------------------------------------------------- hostile input

def run_to(run, args, stdout_path):
    """Runs `run MODEL args...` with stdout going to stdout_path (e.g. /dev/full)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    with open(stdout_path, "wb") as out:
        proc = subprocess.run([run.run, run.model, *args], stdout=out, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=env, check=False)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def refused(run, what, args, *fragments):
    """run exits with status 1 (not a crash), prints nothing on stdout and one line on
    stderr that holds every fragment."""
    status, out, err = run(*args)
    ok = status == 1 and out == b"" and len(err.strip().splitlines()) == 1 and all(f in err for f in fragments)
    return check(ok, f"{what}: exit 1, {' '.join(fragments)!r} in {err.strip()[:150]!r}",
                 f"status {status}, stdout {out[:200]!r}, stderr {err[:500]!r}")


def write_tsv(tmp, name, rows, header="text\tlabel"):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join([header] + [f"{t}\t{g}" for t, g in rows]) + "\n")
    return path


def test_classify_limits(run, tmp):
    # A file whose columns are swapped: every text becomes a label, 1,001 of them.
    swapped = write_tsv(tmp, "swapped.tsv", [("POSITIVE", f"review number {i}") for i in range(1001)],
                        header="label\ttext")
    refused(run, "classify: 1,001 distinct labels (the columns swapped)", ["-m", "classify", "-i", swapped],
            "more than 1000 distinct labels", "text<TAB>label")
    many = ",".join(["POSITIVE", "NEGATIVE"] + [f"L{i}" for i in range(999)])
    small = subset(tmp, 2)
    refused(run, "classify: --labels with 1,001 labels", ["-m", "classify", "-i", small, "--labels", many],
            "more than 1000")
    refused(run, "classify: --labels POS,POS (a label twice)", ["-m", "classify", "-i", small, "--labels", "POS,POS"],
            "'POS' twice")
    ambiguous = write_tsv(tmp, "ambiguous.tsv", [("fine", "pos"), ("bad", "POS.")])
    refused(run, "classify --free: labels that differ only in case and punctuation (pos, POS.)",
            ["-m", "classify", "-i", ambiguous, "--free"], "cannot tell the labels 'pos' and 'POS.' apart")
    for labels in ("POSITIVE,,NEGATIVE", "POSITIVE,NEGATIVE,", ",POSITIVE,NEGATIVE"):
        refused(run, f"classify: --labels {labels} (an empty label)", ["-m", "classify", "-i", small, "--labels", labels],
                "empty label")
    data = read_rows(SENTIMENT)
    first = next(i for i, (_, g) in enumerate(data) if g == "NEUTRAL") + 1
    refused(run, "classify: a gold label that is not one of --labels", ["-m", "classify", "-i", SENTIMENT, "--labels",
            "POSITIVE,NEGATIVE"], f"row {first} has the label 'NEUTRAL'", "POSITIVE,NEGATIVE")
    empty = write_tsv(tmp, "empty-label.tsv", [("fine", "POSITIVE"), ("no label", ""), ("bad", "NEGATIVE")])
    refused(run, "classify: a row with an empty label", ["-m", "classify", "-i", empty], "empty-label.tsv:3", "empty")

    # A NUL byte (a UTF-16 file) or a CR that does not end a line used to cut the line
    # short, and the rows after it were lost without a word; a CR LF line end is fine.
    for name, data, fragments in (("nul.tsv", b"text\tlabel\nfine\tPOSITIVE\n\x00bad\tNEGATIVE\n", ["nul.tsv:3", "NUL"]),
                                  ("cr.tsv", b"text\tlabel\nfine\tPOSITIVE\rbad\tNEGATIVE\n", ["cr.tsv:2", "carriage return"])):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        refused(run, f"classify: {name}", ["-m", "classify", "-i", path], *fragments)
    # A row that gives no token at all: an empty text, on a model without a chat template
    # that adds no BOS (tiny-llama3, beside MODEL.bin). Scoring read the token before the
    # prompt (heap overflow), --free generated from nothing.
    llama3 = os.path.join(os.path.dirname(run.model), "tiny-llama3.bin")
    empty_text = write_tsv(tmp, "empty-text.tsv", [("fine", "POSITIVE"), ("", "NEGATIVE")])
    for free in ([], ["--free", "-n", "1"]):
        refused(Runner(run.run, llama3), f"{' '.join(['classify', *free])}: an empty prompt (tiny-llama3)",
                ["-m", "classify", "-i", empty_text, *free], "row 2 is an empty prompt")
    # Text that is not UTF-8 is named where it is: the row, or -y / --template.
    refused(run, "classify: -y that is not UTF-8", ["-m", "classify", "-i", small, "-y", b"\xff"],
            "the system prompt (-y) or --template is not valid UTF-8")
    refused(run, "classify: --template that is not UTF-8", ["-m", "classify", "-i", small, "--template", b"\xff{text}"],
            "the system prompt (-y) or --template is not valid UTF-8")
    crlf = os.path.join(tmp, "crlf.tsv")
    with open(crlf, "wb") as f:
        f.write(b"text\tlabel\r\nfine\tPOSITIVE\r\nbad\tNEGATIVE\r\n")
    status, out, err = run("-m", "classify", "-i", crlf)
    rows, _ = split_classify_output(out)
    check(status == 0 and [r[1] for r in rows] == [b"POSITIVE", b"NEGATIVE"], "classify: CR LF line ends",
          f"status {status}, {err[-300:]}")

    # A row too long for the context is found before any row runs: no --output file.
    long_row = write_tsv(tmp, "long-row.tsv", [("fine", "POSITIVE"), ("bad", "NEGATIVE"), ("word " * 600, "POSITIVE")])
    rows_path = os.path.join(tmp, "never-written.tsv")
    refused(run, "classify: row 3 longer than the context", ["-m", "classify", "-i", long_row, "--output", rows_path],
            "row 3 needs")
    check(not os.path.exists(rows_path), "classify: a refused run leaves no --output file")

    # Full disks: the rows (--output), the rows and the report (stdout).
    refused(run, "classify --output /dev/full", ["-m", "classify", "-i", small, "--output", "/dev/full"],
            "cannot write /dev/full")
    status, err = run_to(run, ["-m", "classify", "-i", small], "/dev/full")
    check(status == 1 and "cannot write" in err, "classify > /dev/full: exit 1, 'cannot write'", f"{status} {err}")
    status, err = run_to(run, ["-m", "classify", "-i", small, "--output", os.path.join(tmp, "r.tsv")], "/dev/full")
    check(status == 1 and "cannot write" in err, "classify --output FILE, the report > /dev/full: exit 1",
          f"{status} {err}")


def test_classify_many_classes(run, tmp):
    # 1,000 classes (the most): accepted; with the predicted "invalid" the report has
    # 1,001 classes, one line each, and leaves the confusion matrix out (over 100).
    gold = [f"c{i:04d}" for i in range(1000)]
    path = write_tsv(tmp, "classes-1000.tsv", [(f"item {i}", g) for i, g in enumerate(gold)])
    status, out, err = run("-m", "classify", "-i", path, "--free", "-n", "1")
    rows, report = split_classify_output(out)
    pred = [r[0].decode() for r in rows]
    classes = sorted(set(gold) | set(pred))
    lines = report.split("\n")
    class_lines = [line.split() for line in lines[2:2 + len(classes)]]
    ok = (status == 0 and [r[1].decode() for r in rows] == gold and [c[0] for c in class_lines] == classes
          and all(float(c[4]) == gold.count(c[0]) for c in class_lines)
          and f"confusion matrix left out: {len(classes)} classes (it is printed up to 100)" in lines)
    check(ok, f"classify: 1,000 classes run; the report has {len(classes)} class lines with their supports and "
          "no confusion matrix", f"status {status} {err[-300:]}\n{report[:300]}...{report[-300:]}")


def batch_rule_error(line):
    """Whether the rules make a JSON batch line an error: RFC 8259 (Python's json, without
    its NaN/Infinity extension), each key once, the documented keys, a string prompt,
    numbers of the documented types and ranges, text that is UTF-8 without NUL."""
    keys = {"prompt": None, "system": None, "temperature": (0, 100, False), "top_k": (0, 1 << 22, True),
            "top_p": (0, 1, False), "seed": (0, 2 ** 53 - 1, True), "max_new_tokens": (-1, 1 << 22, True)}

    def no_constant(name):
        raise ValueError(name)

    def pairs(items):
        if len({k for k, _ in items}) != len(items):
            raise ValueError("a key twice")
        return dict(items)

    try:
        obj = json.loads(line, parse_constant=no_constant, object_pairs_hook=pairs)
    except ValueError:
        return True
    if not isinstance(obj, dict) or "prompt" not in obj or set(obj) - set(keys):
        return True
    for k, v in obj.items():
        if keys[k] is None:
            if not isinstance(v, str) or "\0" in v:
                return True
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate
                return True
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return True
        elif not keys[k][0] <= v <= keys[k][1] or (keys[k][2] and v != int(v)):
            return True
    return False


# Lines with what their error must say (the key and the value), or None: answered.
BATCH_LINES = [
    ('{"prompt": "a"}', None),
    (' \t{"prompt": "b"} \t', None),
    ('{"prompt":"c","top_p":1}', None),
    ('{"prompt": "d", "top_k": 2.0, "seed": 1E1}', None),
    ('{"prompt": "e", "temperature": -0, "max_new_tokens": 0}', None),
    ('{"prompt": "f", "temperature": 0.5e-1, "seed": 9007199254740991}', None),
    ('{"prompt": "g\\/h \\b\\f\\r", "system": ""}', None),
    ('{"prompt": "x", "temperature": -1}', ['"temperature": -1', "range"]),
    ('{"prompt": "x", "foo": 1}', ['"foo": 1', "unknown key"]),
    ('{"prompt": "x", "top_k": 2.7}', ['"top_k": 2.7', "whole number"]),
    ('{"prompt": "x", "seed": 1.5}', ['"seed": 1.5', "whole number"]),
    ('{"prompt": "x", "max_new_tokens": 0.5}', ['"max_new_tokens": 0.5', "whole number"]),
    ('{"prompt": "a\\u0000b"}', ['"prompt"', "\\u0000"]),
    ('{"prompt": "x", "top_k": 0x10}', ['"top_k": 0x10', "not a JSON number"]),
    ('{"prompt": "x", "top_k": +3}', ['"top_k": +3', "not a JSON number"]),
    ('{"prompt": "x", "top_k": 0003}', ['"top_k": 0003', "not a JSON number"]),
    ('{"prompt": "x", "temperature": .5}', ['"temperature": .5']),
    ('{"prompt": "x", "temperature": 1.}', ['"temperature": 1.']),
    ('{"prompt": "x", "temperature": 1e}', ['"temperature": 1e']),
    ('{"prompt": "x", "temperature": NaN}', ['"temperature": NaN']),
    ('{"prompt": "x", "temperature": Infinity}', ['"temperature": Infinity']),
    ('{"prompt": "x", "temperature": - 1}', ['"temperature"']),
    ('{"prompt": "x", "temperature": 1e999}', ['"temperature": 1e999', "range"]),
    ('{"prompt": "x", "temperature": null}', ['"temperature"', "null"]),
    ('{"prompt": "x", "temperature": true}', ['"temperature"', "true"]),
    ('{"prompt": "x", "temperature": "0.5"}', ['"temperature"', '"0.5"']),
    ('{"prompt": 3}', ['"prompt"', "3"]),
    ('{"prompt": ["x"]}', ['"prompt"', "["]),
    ('{"prompt": "x", "seed": -1}', ['"seed": -1', "range"]),
    ('{"prompt": "x", "seed": 9007199254740992}', ['"seed": 9007199254740992', "range"]),
    ('{"prompt": "x", "top_p": 1.01}', ['"top_p": 1.01', "range"]),
    ('{"prompt": "x", "prompt": "y"}', ['"prompt"', "twice"]),
    ('{"prompt": "x", "top_k": 3,}', ["column 28"]),
    ('{"prompt": "x",, "top_k": 3}', ["column 16"]),
    ('{"prompt": "x" "top_k": 3}', ["column 16"]),
    ('{"prompt": "x"} junk', ["column 17", "after the object"]),
    ('{"prompt": "x"}}', ["column 16"]),
    ('{"prompt": "x"', ["column 15"]),
    ("{'prompt': 'x'}", ["column 2"]),
    ('{prompt: "x"}', ["column 2"]),
    ('{"prompt": "tab\there"}', ['"prompt"', "control character"]),
    ('{"prompt": "a \\x escape"}', ['"prompt"', "escape"]),
    ('{"prompt": "a lone \\udc00"}', ['"prompt"', "surrogate"]),
    ('{"system": "s"}', ['"prompt"']),
    ('{}', ['"prompt"']),
]


def test_batch_strict(run, tmp):
    path = os.path.join(tmp, "strict.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(line for line, _ in BATCH_LINES) + "\n")
    status, out, err = run("--batch", path, "-n", "1", "-s", "7")
    objects = [json.loads(line) for line in out.decode("utf-8").splitlines()]
    by_line = {o["line"]: o for o in objects}
    disagree = [f"line {i}: {line!r}: rules say {'error' if batch_rule_error(line) else 'answer'}, "
                f"run gives {by_line.get(i)}" for i, (line, _) in enumerate(BATCH_LINES, 1)
                if ("error" in by_line.get(i, {})) != batch_rule_error(line) or i not in by_line]
    check(status == 0 and not disagree, f"batch: each of {len(BATCH_LINES)} lines is an error exactly when "
          "RFC 8259 (Python's json, no NaN) and the keys' types and ranges make it one", "\n".join(disagree[:5]))
    unnamed = [f"line {i}: {by_line.get(i, {}).get('error')!r} lacks {want}" for i, (_, want) in enumerate(BATCH_LINES, 1)
               if want and not all(w in by_line.get(i, {}).get("error", "") for w in want)]
    check(not unnamed, "batch: each error names the key and the value (or the column) and the reason",
          "\n".join(unnamed[:6]))
    seeds = {i: o.get("seed") for i, o in by_line.items() if "answer" in o}
    check(seeds and all(s == (10 if i == 4 else 9007199254740991 if i == 6 else 7) for i, s in seeds.items()),
          "batch: every answer has its seed (the line's, else -s 7)", seeds)

    # Bytes that are no JSON text: a NUL byte, invalid UTF-8; a byte-order mark begins the
    # file (skipped) but not a later line (a plain prompt that starts with U+FEFF).
    raw = os.path.join(tmp, "raw.jsonl")
    with open(raw, "wb") as f:
        f.write(b'\xef\xbb\xbf{"prompt": "with a BOM"}\n\xef\xbb\xbfplain\n{"prompt": "a\x00b"}\nbad \xff byte\n')
    status, out, err = run("--batch", raw, "-n", "1")
    got = [json.loads(line) for line in out.decode("utf-8").splitlines()]
    ok = (status == 0 and len(got) == 4 and got[0].get("prompt") == "with a BOM" and got[1].get("prompt") == "\ufeffplain"
          and "NUL" in got[2].get("error", "") and "UTF-8" in got[3].get("error", ""))
    check(ok, "batch: a byte-order mark at the start of the file is skipped, on line 2 it is text; a NUL byte "
          "and invalid UTF-8 are errors", got)

    refused(run, "batch: --batch on a folder", ["--batch", tmp], "is a folder")
    status, err = run_to(run, ["--batch", path, "-n", "1"], "/dev/full")
    check(status == 1 and "cannot write" in err, "batch > /dev/full: exit 1, 'cannot write'", f"{status} {err}")

    # The seed printed reproduces a sampled answer (the default seed is the time).
    line = {"prompt": "Tell me a story.", "temperature": 1.0, "max_new_tokens": 12}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    first = json.loads(run.ok("--batch", path).decode("utf-8"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(dict(line, seed=first.get("seed"))) + "\n")
    again = json.loads(run.ok("--batch", path).decode("utf-8"))
    check(isinstance(first.get("seed"), int) and again.get("answer") == first.get("answer"),
          f"batch: the printed seed ({first.get('seed')}) gives the same sampled answer again", (first, again))


def test_tiny_temperature(run, tmp):
    # logits / 1e-40 overflows a float: such a temperature is greedy decoding.
    greedy = run.ok("-m", "generate", "-i", "Once upon a time", "-t", "0", "-n", "12", "--stats", "off")
    tiny = run.ok("-m", "generate", "-i", "Once upon a time", "-t", "1e-40", "-n", "12", "--stats", "off")
    check(tiny == greedy and len(greedy) > 1, "-t 1e-40 generates the greedy text (-t 0)", f"{tiny!r}\n{greedy!r}")
    path = os.path.join(tmp, "tiny-t.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for t in ("0", "1e-40", "1e-30"):
            f.write(f'{{"prompt": "Once upon a time", "temperature": {t}, "max_new_tokens": 12}}\n')
    answers = [json.loads(line).get("answer") for line in run.ok("--batch", path).decode("utf-8").splitlines()]
    check(len(answers) == 3 and answers[0] and answers[1] == answers[0] == answers[2],
          "batch: temperature 1e-40 and 1e-30 answer what temperature 0 does", answers)


def peak_rss_kb(run, args):
    """The peak memory of one `run` (the child of a fresh Python, which measures only it)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, run.run, run.model, *args], capture_output=True, check=True)
    return int(out.stdout)


def test_perplexity_limits(run, tmp):
    small = os.path.join(tmp, "small.txt")
    with open(small, "w", encoding="utf-8") as f:
        f.write("Groningen is a city in the north of the Netherlands.")
    big = os.path.join(tmp, "one-word.txt")
    with open(big, "w", encoding="ascii") as f:
        f.write("word" * 12_500_000)  # 50 MB, one word
    refused(run, "perplexity: a 50 MB one-word file", ["-m", "perplexity", "-i", big], "too long", "context")
    base, peak = peak_rss_kb(run, ["-m", "perplexity", "-i", small]), peak_rss_kb(run, ["-m", "perplexity", "-i", big])
    check(peak < base + 16 * 1024, f"perplexity: refusing the 50 MB file takes {peak // 1024} MB at most, "
          f"a 52-byte file {base // 1024} MB (the file is not read whole)")
    os.remove(big)
    sparse = os.path.join(tmp, "sparse.txt")
    with open(sparse, "wb") as f:
        f.truncate(300 << 20)
    refused(run, "perplexity: a 300 MB file is too long (not 'not valid UTF-8')", ["-m", "perplexity", "-i", sparse],
            "too long")
    os.remove(sparse)
    nul = os.path.join(tmp, "nul.txt")
    with open(nul, "wb") as f:
        f.write(b"some text\x00more text")
    refused(run, "perplexity: a NUL byte", ["-m", "perplexity", "-i", nul], "NUL byte")
    status, out, err = run("-m", "perplexity", "-i", "/dev/stdin", stdin=b"some text\x00more text")
    check(status == 1 and "NUL byte" in err, "perplexity: a NUL byte in a pipe (its size is the bytes read)",
          f"status {status}, {err[-300:]}")
    refused(run, "perplexity: a folder", ["-m", "perplexity", "-i", tmp], "cannot read")
    refused(run, "perplexity without -i", ["-m", "perplexity"], "needs -i FILE")
    status, err = run_to(run, ["-m", "perplexity", "-i", small], "/dev/full")
    check(status == 1 and "cannot write" in err, "perplexity > /dev/full: exit 1, 'cannot write'", f"{status} {err}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run = Runner(sys.argv[1], sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        for test in (test_classify_constrained, test_classify_free, test_batch, test_perplexity, test_classify_limits,
                     test_classify_many_classes, test_batch_strict, test_tiny_temperature, test_perplexity_limits):
            try:
                test(run, tmp)
            except Exception as e:  # a crash of one group is one failure, the others still run
                check(False, f"{test.__name__} raised {type(e).__name__}", e)
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
