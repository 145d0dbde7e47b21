"""The run.c model file's header (FORMAT.md) for the Python tests, read and written by
field name through export's own table, HEADER_FIELDS: the layout is written down once
for Python (and once for C, in format.c; tests/test_format.py holds the two together).

    import header                       # with tests/ on sys.path
    h = header.read(data)               # {field: value}; stop_ids: all 8
    header.put(data, "n_kv_heads", 3)   # data: a bytearray of the file
    header.fix_checksum(data)           # meta_crc32 again valid for the changed header
"""
import importlib.machinery
import importlib.util
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_export(path=os.path.join(ROOT, "export")):
    """The export program as a module: its main() runs only as a program."""
    loader = importlib.machinery.SourceFileLoader("export_module", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    keep = sys.dont_write_bytecode
    sys.dont_write_bytecode = True      # no __pycache__ beside export
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = keep
    return module


EXPORT = load_export()
FIELDS = EXPORT.FIELDS                  # name -> Field(offset, fmt, name, lo, hi)


def get(data, name):
    f = FIELDS[name]
    v = struct.unpack_from("<" + f.fmt, data, f.offset)
    return list(v) if len(v) > 1 else v[0]


def read(data):
    """Every field of the header at the start of data."""
    return {name: get(data, name) for name in FIELDS}


def read_file(path):
    with open(path, "rb") as f:
        return read(f.read(EXPORT.HEADER_BYTES))


def put(data, name, value):
    f = FIELDS[name]
    struct.pack_into("<" + f.fmt, data, f.offset, *(value if isinstance(value, list) else [value]))


def fix_checksum(data):
    """meta_crc32 recomputed (FORMAT.md: bytes [0, weights_offset) with the two CRC
    fields taken as zero), so that a test of a changed field is not a checksum test."""
    meta = bytearray(data[:get(data, "weights_offset")])
    for name in ("meta_crc32", "weights_crc32"):
        put(meta, name, 0)
    put(data, "meta_crc32", zlib.crc32(meta))


def patch_file(src, out, name, value):
    """A copy of the model file src with one header field changed, checksum fixed."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    put(data, name, value)
    if name != "meta_crc32":
        fix_checksum(data)
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    # python3 tests/header.py SRC OUT FIELD VALUE: patch_file, for the shell scripts
    src, out, name, text = sys.argv[1:5]
    patch_file(src, out, name, float(text) if FIELDS[name].fmt == "f" else int(text, 0))
