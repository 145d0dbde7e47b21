#!/usr/bin/env python3
"""The model file's header against FORMAT.md: every range it states is enforced, and
--verify accepts an intact file.

    test_header_ranges.py RUN MODEL.bin FORMAT.md BUILD_DIR

MODEL.bin is an f32 model with the default RoPE (tiny-smollm2). For every u32, i32 and
f32 field of FORMAT.md's header table with a range `lo .. hi`, a copy of the file gets
the value just above hi (and just below lo where the type can hold it), with the header
checksum recomputed as FORMAT.md says (CRC-32 of [0, weights_offset) with bytes 224..231
as zero) so that the range check itself is what is tested: ./run must refuse it, exit
1 and name the field as out of range. Fields that are read only in some files (llama3
RoPE, q8_0's group_size, the stop ids past n_stop) and the fixed ones (magic, version,
header_bytes, with messages of their own) are left out.
Then --verify: the weights' CRC-32, computed here with zlib over [weights_offset,
file_bytes), is the header's weights_crc32, and ./run --verify says the file is intact.
One ok/FAIL line per check; exit status 1 if any failed.
"""
import os
import re
import struct
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
from oracle import check, exit_status

NOT_ALWAYS_READ = {"magic", "version", "header_bytes", "rope_factor", "rope_low_freq_factor",
                   "rope_high_freq_factor", "rope_original_max_pos", "group_size", "stop_ids"}
LIMITS = {"u32": (0, 2 ** 32 - 1), "i32": (-2 ** 31, 2 ** 31 - 1)}


def number(text):
    """'1024', '2^22', '2^22 - 1', '1e-6', '-1' -> a number, else None."""
    m = re.fullmatch(r"(-?[0-9.e+-]+|2\^([0-9]+))( - 1)?", text.strip())
    if not m:
        return None
    v = 2 ** int(m.group(2)) if m.group(2) else float(m.group(1))
    return v - 1 if m.group(3) else v


def header_fields(format_md):
    """(offset, type, name, lo, hi) of the header table's fields with a numeric range."""
    out = []
    for line in open(format_md, encoding="utf-8"):
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) < 4 or not cells[0].isdigit() or " .. " not in cells[3]:
            continue
        lo, hi = (number(x) for x in cells[3].split(" .. "))
        if cells[1] in ("u32", "i32", "f32") and lo is not None and hi is not None:
            out.append((int(cells[0]), cells[1], cells[2], lo, hi))
    return out


def patched(data, offset, kind, value):
    b = bytearray(data)
    struct.pack_into("<f" if kind == "f32" else "<i" if kind == "i32" else "<I", b, offset,
                     value if kind == "f32" else int(value))
    weights = struct.unpack_from("<Q", b, 208)[0]
    head = bytearray(b[:weights])
    head[224:232] = bytes(8)
    struct.pack_into("<I", b, 224, zlib.crc32(head))
    return bytes(b)


def outside(kind, lo, hi):
    """Values just outside [lo, hi] that the field's type can hold."""
    if kind == "f32":
        return [hi * 2 if hi > 0 else 1.0, lo - 1 if lo <= 0 else lo / 2]
    tmin, tmax = LIMITS[kind]
    return [v for v in (hi + 1, lo - 1) if tmin <= v <= tmax]


def main():
    run, model, format_md, build = sys.argv[1:5]
    data = open(model, "rb").read()
    fields = [f for f in header_fields(format_md) if f[2] not in NOT_ALWAYS_READ]
    check(len(fields) >= 30, f"FORMAT.md's header table gives {len(fields)} fields with a range to test")
    path = os.path.join(build, "header-range.bin")
    for offset, kind, name, lo, hi in fields:
        for value in outside(kind, lo, hi):
            open(path, "wb").write(patched(data, offset, kind, value))
            p = subprocess.run([run, path, "-m", "tokenize", "-i", "hi"], capture_output=True, timeout=60)
            err = p.stderr.decode(errors="replace")
            check(p.returncode == 1 and f"header field {name} = " in err and "out of range" in err,
                  f"header {name} = {value:.10g} (FORMAT.md: {lo:.10g} .. {hi:.10g}) is refused as out of range",
                  f"status {p.returncode}: {err}")

    weights, size = struct.unpack_from("<QQ", data, 208)
    crc = struct.unpack_from("<I", data, 228)[0]
    check(size == len(data) and zlib.crc32(data[weights:]) == crc,
          "the weights' CRC-32 (zlib, [weights_offset, file_bytes)) is the header's weights_crc32")
    p = subprocess.run([run, model, "--verify"], capture_output=True, timeout=60)
    check(p.returncode == 0 and b"checksums OK" in p.stderr, "--verify accepts the intact file",
          p.stderr.decode(errors="replace"))
    return exit_status()


sys.exit(main())
