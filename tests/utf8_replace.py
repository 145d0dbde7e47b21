#!/usr/bin/env python3
"""Byte strings and what Python's decode(errors="replace") makes of them, for test_units.

    utf8_replace.py > utf8.tsv

One line per case: the bytes in hex, a tab, the expected output in hex. Python replaces
each maximal subpart of an ill-formed sequence with one U+FFFD, as Unicode recommends
("U+FFFD substitution of maximal subparts", chapter 3 of the standard), which is what
Hugging Face's decode does and what run's streamed output must print.
"""

CASES = [
    b"\xe0\x80\x80",                  # overlong: E0 must be followed by A0..BF
    b"\xe0\x9f\xbf",                  # overlong, the largest
    b"\xed\xa0\x80",                  # UTF-16 surrogate U+D800: ED must be followed by 80..9F
    b"\xed\xbf\xbf",                  # surrogate U+DFFF
    b"\xf0\x80\x80\x80",              # overlong four-byte form
    b"\xf0\x8f\xbf\xbf",              # overlong, the largest
    b"\xf4\x90\x80\x80",              # above U+10FFFF: F4 must be followed by 80..8F
    b"\xc0\xaf",                      # C0, C1 never start a character
    b"\xc1\xbf",
    b"\xf5\x80\x80\x80",              # F5..FF never start a character
    b"\xff",
    b"a\xf1\x80\x80\xe1\x80\xc2b\x80c\x80\xbfd",  # the Unicode standard's example (table 3-8)
    b"x\xc3",                         # a lone lead byte at the end
    b"\xf0",
    b"x\xe2\x82",                     # cut short at the end
    b"x\xf0\x9f\x98",
    b"\xe2\x82x\xe2\x82\xac",         # cut short, then a whole character
    b"\xed\x9f\xbf\xee\x80\x80",      # U+D7FF, U+E000: around the surrogates, valid
    b"\xf4\x8f\xbf\xbf\xf0\x90\x80\x80",  # U+10FFFF, U+10000: valid
    b"\xe0\xa0\x80\xc2\x80",          # U+0800, U+0080: the smallest of their lengths, valid
]

for case in CASES:
    print(case.hex() + "\t" + case.decode("utf-8", errors="replace").encode("utf-8").hex())
