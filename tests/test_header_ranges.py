#!/usr/bin/env python3
"""The model file's header: every range of FORMAT.md's table is enforced by run, and
--verify accepts an intact file.

    test_header_ranges.py RUN MODEL.bin BUILD_DIR

MODEL.bin is an f32 model with the default RoPE (tiny-smollm2). The fields and their
ranges are read through tests/header.py (export's table, which tests/test_format.py
holds equal to FORMAT.md's and to format.c's). For every u32, i32 and f32 field with a
range lo .. hi, a copy of the file gets the value just above hi and the one just below
lo, where the type can hold them, with the header checksum recomputed (so that the
range check itself is what is tested): run must refuse it, exit 1 and name the field as
out of range. Left out: the fields read only in some files (llama3 RoPE, q8_0's
group_size, the stop ids past n_stop) and the fixed ones (magic, version,
header_bytes), which have messages of their own.
Then --verify: the weights' CRC-32, computed here with zlib over [weights_offset,
file_bytes) as FORMAT.md says, is the header's weights_crc32, and run --verify says the
file is intact.
One ok/FAIL line per check; exit status 1 if any failed.
"""
import os
import struct
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
import header  # noqa: E402  (export's table of the header fields)
from oracle import check, exit_status  # noqa: E402

NOT_ALWAYS_READ = {"magic", "version", "header_bytes", "rope_factor", "rope_low_freq_factor",
                   "rope_high_freq_factor", "rope_original_max_pos", "group_size", "stop_ids"}
LIMITS = {"I": (0, 2 ** 32 - 1), "i": (-2 ** 31, 2 ** 31 - 1)}


def outside(fmt, lo, hi):
    """Values just outside [lo, hi] that the field's type can hold."""
    if fmt == "f":
        return [hi * 2 if hi > 0 else 1.0, lo - 1 if lo <= 0 else lo / 2]
    tmin, tmax = LIMITS[fmt]
    return [v for v in (hi + 1, lo - 1) if tmin <= v <= tmax]


def main():
    run, model, build = sys.argv[1:4]
    data = open(model, "rb").read()
    fields = [f for f in header.FIELDS.values() if f.fmt in ("I", "i", "f") and f.name not in NOT_ALWAYS_READ
              and f.name != "reserved" and (f.lo, f.hi) != LIMITS.get(f.fmt)]
    check(len(fields) >= 25, f"the header has {len(fields)} fields with a range to test")
    path = os.path.join(build, "header-range.bin")
    for f in fields:
        for value in outside(f.fmt, f.lo, f.hi):
            header.patch_file(model, path, f.name, value if f.fmt == "f" else int(value))
            p = subprocess.run([run, path, "-m", "tokenize", "-i", "hi"], capture_output=True, timeout=60)
            err = p.stderr.decode(errors="replace")
            check(p.returncode == 1 and f"header field {f.name} = " in err and "out of range" in err,
                  f"header {f.name} = {value:.10g} (FORMAT.md: {f.lo:.10g} .. {f.hi:.10g}) is refused as out of range",
                  f"status {p.returncode}: {err}")

    weights, size = struct.unpack_from("<QQ", data, header.FIELDS["weights_offset"].offset)
    crc = header.get(data, "weights_crc32")
    check(size == len(data) and zlib.crc32(data[weights:]) == crc,
          "the weights' CRC-32 (zlib, [weights_offset, file_bytes)) is the header's weights_crc32")
    p = subprocess.run([run, model, "--verify"], capture_output=True, timeout=60)
    check(p.returncode == 0 and b"checksums OK" in p.stderr, "--verify accepts the intact file",
          p.stderr.decode(errors="replace"))
    return exit_status()


sys.exit(main())
