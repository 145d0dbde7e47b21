#!/usr/bin/python3
"""run.c's classification report against scikit-learn's, character for character.

    /usr/bin/python3 tests/report_sklearn.py TEST_REPORT_BINARY

Run it with a Python that has scikit-learn (tests/report_sklearn.sh runs this with
/usr/bin/python3 when Debian's python3-sklearn is installed, and reports a SKIP when not).

For every fixed, seeded set of (gold, predicted) labels below, TEST_REPORT_BINARY
(tests/test_report.c) prints run.c's classification_report(); its report part must be
exactly sklearn.metrics.classification_report(gold, pred, zero_division=0), and its
confusion matrix must hold the numbers of sklearn.metrics.confusion_matrix(gold, pred,
labels=the sorted classes), in that order. One ok/FAIL line per set.
"""
import os
import random
import subprocess
import sys
import tempfile
import warnings

import sklearn
from sklearn.metrics import classification_report, confusion_matrix

warnings.simplefilter("ignore")  # zero_division=0 is asked for; nothing to warn about

SENTIMENT = ["POSITIVE", "NEGATIVE", "NEUTRAL"]


def noisy(seed, classes, n, accuracy, wrong=None):
    """n gold labels drawn from classes; each prediction is right with probability
    accuracy, else drawn from wrong (default: classes)."""
    rng = random.Random(seed)
    gold = [rng.choice(classes) for _ in range(n)]
    pred = [g if rng.random() < accuracy else rng.choice(wrong or classes) for g in gold]
    return gold, pred


def from_matrix(classes, matrix):
    """The (gold, pred) lists whose confusion matrix (rows gold, columns predicted) is
    matrix, in a seeded random order."""
    pairs = [(g, p) for i, g in enumerate(classes) for j, p in enumerate(classes) for _ in range(matrix[i][j])]
    random.Random(len(pairs)).shuffle(pairs)
    return [g for g, _ in pairs], [p for _, p in pairs]


def all_wrong(seed, classes, n):
    rng = random.Random(seed)
    gold = [rng.choice(classes) for _ in range(n)]
    return gold, [rng.choice([c for c in classes if c != g]) for g in gold]


def sets():
    yield "2 classes, n=20", noisy(1, ["POSITIVE", "NEGATIVE"], 20, 0.7)
    yield "3 classes, n=100, some predictions 'invalid' (a class absent from gold)", \
        noisy(2, SENTIMENT, 100, 0.6, SENTIMENT + ["invalid"])
    yield "4 classes with labels of 1 to 20 characters (one longer than 'weighted avg'), n=500", \
        noisy(3, ["a", "cat", "NEUTRAL", "VERY_LONG_LABEL_NAME"], 500, 0.55)
    yield "3 classes, one never predicted (precision 0/0 -> 0), n=60", \
        noisy(4, SENTIMENT, 60, 0.5, ["POSITIVE", "NEGATIVE"])
    gold = [c for c in noisy(5, SENTIMENT, 37, 1.0)[0]]
    yield "perfect predictions, 3 classes, n=37", (gold, list(gold))
    yield "all predictions wrong, 3 classes, n=50", all_wrong(6, SENTIMENT, 50)
    yield "all predictions wrong, 2 classes, n=9", all_wrong(7, ["yes", "no"], 9)
    yield "n=1, right", (["POSITIVE"], ["POSITIVE"])
    yield "n=1, wrong", (["POSITIVE"], ["NEGATIVE"])
    yield "n=2, every prediction 'invalid'", (["POSITIVE", "NEGATIVE"], ["invalid", "invalid"])
    yield "a long predicted label absent from gold ('I cannot answer that'), n=40", \
        noisy(8, SENTIMENT, 40, 0.5, SENTIMENT + ["I cannot answer that"])
    yield "labels with spaces and digits, 4 classes, n=150", \
        noisy(9, ["1 star", "2 stars", "3 stars", "4 stars"], 150, 0.45)
    yield "9 classes (numpy sums 8 or more values pairwise), n=300", \
        noisy(10, [f"class_{c}" for c in "ABCDEFGHI"], 300, 0.5)
    # Values that land exactly on a rounding tie (x.xx5): the last bit decides the printed
    # digit, so the report must add and divide in sklearn's (numpy's) order. The classes
    # are named so that their sorted order is the order of the matrix rows.
    yield "macro avg on a rounding tie, 3 classes (numpy: sum, then divide)", \
        from_matrix(["a", "b", "c"], [[8, 0, 2], [2, 2, 0], [1, 0, 7]])
    yield "weighted avg on a rounding tie, 4 classes (numpy: sum of value * support, then divide)", \
        from_matrix(["a", "b", "c", "d"], [[6, 1, 2, 0], [2, 7, 1, 1], [0, 2, 9, 0], [0, 3, 1, 5]])
    yield "macro avg on a rounding tie, 9 classes (numpy sums 8 or more values pairwise)", \
        from_matrix(list("abcdefghi"), [[1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 6, 1, 1, 0, 0, 0, 0, 0],
                                        [0, 0, 5, 0, 0, 0, 0, 1, 0], [0, 0, 1, 7, 0, 0, 0, 0, 0],
                                        [0, 0, 0, 1, 2, 0, 0, 0, 0], [1, 0, 1, 0, 0, 6, 0, 0, 0],
                                        [0, 0, 1, 0, 0, 0, 4, 0, 0], [0, 0, 0, 0, 0, 0, 0, 3, 1],
                                        [0, 0, 0, 0, 0, 0, 0, 0, 5]])
    # sklearn changed these two formulas in 1.3: f1 was 2pr / (p + r), now 2tp / (support +
    # predicted); the accuracy line (micro-averaged f1) was 2pr / (p + r) with p = r =
    # correct / n, now correct / n. They differ only on such ties.
    yield "per-class f1 on a rounding tie (sklearn < 1.3: 2pr/(p+r); >= 1.3: 2tp/(support+predicted))", \
        from_matrix(["a", "b", "c"], [[38, 24, 24], [15, 47, 32], [21, 22, 50]])
    yield "accuracy on a rounding tie, 174/240 (sklearn < 1.3: 2pr/(p+r) = 0.73; >= 1.3: correct/n = 0.72)", \
        from_matrix(["NEG", "POS"], [[89, 38], [28, 85]])
    yield "non-ASCII labels (the columns are aligned in characters, not bytes)", \
        noisy(11, ["POSITIEF", "NEGATIEF", "NEUTRAAL", "ÉÉN"], 80, 0.6)
    # A sweep: many small random sets of every shape.
    rng = random.Random(12)
    sweep = []
    for i in range(300):
        k = rng.choice([2, 3, 4])
        classes = ["POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"][:k]
        sweep.append(noisy(1000 + i, classes, rng.randint(1, 500), rng.random(),
                           classes + (["invalid"] if rng.random() < 0.5 else [])))
    yield "300 random sets (2-4 classes, n 1-500, with and without 'invalid')", sweep


def sklearn_report(gold, pred):
    return classification_report(gold, pred, zero_division=0)


def check(binary, tmp, gold, pred):
    """None if run.c's report and matrix are sklearn's, else a description of the difference."""
    path = os.path.join(tmp, "labels.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{g}\t{p}\n" for g, p in zip(gold, pred))
    proc = subprocess.run([binary, path], capture_output=True, check=False)
    if proc.returncode != 0:
        return f"test_report exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    out = proc.stdout.decode("utf-8")
    report, sep, matrix_text = out.partition("\nconfusion matrix (rows: gold, columns: predicted)\n")
    expected = sklearn_report(gold, pred)
    if report != expected:
        ours, theirs = report.split("\n"), expected.split("\n")
        for i in range(max(len(ours), len(theirs))):
            a = ours[i] if i < len(ours) else "<missing>"
            b = theirs[i] if i < len(theirs) else "<missing>"
            if a != b:
                return f"report line {i + 1}:\n      run.c:   {a!r}\n      sklearn: {b!r}"
    if not sep:
        return "no confusion matrix after the report"
    classes = sorted(set(gold) | set(pred))
    lines = matrix_text.rstrip("\n").split("\n")
    if len(lines) != len(classes) + 1:
        return f"the confusion matrix has {len(lines) - 1} rows, expected {len(classes)}"
    if lines[0].split() != " ".join(classes).split():
        return f"confusion matrix columns {lines[0]!r}, expected {classes}"
    cm = confusion_matrix(gold, pred, labels=classes)
    for i, (line, name) in enumerate(zip(lines[1:], classes)):
        fields = line.split()
        numbers = fields[-len(classes):]
        if " ".join(fields[: -len(classes)]) != name:
            return f"confusion matrix row {i + 1} is labelled {line!r}, expected {name!r}"
        if numbers != [str(x) for x in cm[i]]:
            return f"confusion matrix row {name!r}: {numbers}, sklearn: {list(cm[i])}"
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in sets():
            cases = data if isinstance(data, list) else [data]
            problems = []
            for gold, pred in cases:
                problem = check(binary, tmp, gold, pred)
                if problem:
                    problems.append(f"n={len(gold)}, {problem}")
            if problems:
                failed += 1
                print(f"FAIL report vs sklearn {sklearn.__version__}: {name}: {len(problems)} of {len(cases)} differ")
                for p in problems[:3]:
                    print("    " + p.replace("\n", "\n    "))
            else:
                print(f"ok report vs sklearn {sklearn.__version__}: {name}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
