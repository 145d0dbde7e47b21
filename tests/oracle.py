"""Helpers shared by the Python test scripts written against Hugging Face's rules.

check() prints one "ok ..." or "FAIL ..." line (the suite counts them) and remembers the
failures; byte_level_alphabet() and decode() are GPT-2's byte-level BPE alphabet and
Hugging Face's byte-level decoder, written out here so that a test can turn ids into
text without this project's tokenizer.
"""
import json

failed = 0


def check(ok, what, detail=""):
    """Prints the check's line and returns ok, so that a test can go on from it."""
    global failed
    print(f"{'ok' if ok else 'FAIL'} {what}")
    if not ok:
        failed += 1
        if detail:
            print("    " + str(detail)[-600:].replace("\n", "\n    "))
    return ok


def exit_status():
    return 1 if failed else 0


def byte_level_alphabet():
    """GPT-2's byte -> character map: printable bytes stand for themselves, the others
    for the characters from U+0100 on, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def decode(tokenizer_json, ids):
    """The text of ids as Hugging Face's byte-level decoder gives it (specials as text)."""
    tok = json.load(open(tokenizer_json))
    pieces = {i: s for s, i in tok["model"]["vocab"].items()}
    added = {t["id"]: t["content"] for t in tok["added_tokens"]}
    back = {c: b for b, c in byte_level_alphabet().items()}
    out = b""
    for i in ids:
        out += added[i].encode() if i in added else bytes(back[c] for c in pieces[i])
    return out.decode("utf-8", errors="replace")
