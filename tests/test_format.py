"""One set of limits for the model file's header: FORMAT.md's table (the spec), export's
HEADER_FIELDS and run.c's HEADER (format.c, printed by tests/header_fields.c) name the
same fields at the same offsets, of the same types, with the same accepted ranges; and
export refuses exactly what run refuses: a value outside a range is refused by export
(one line naming the key, the value and the range, exit 1, no output file) and by run
(the same value in a file), and the values at the edges of the ranges are exported and
run.

    test_format.py RUN HEADER_FIELDS BUILD_DIR

Prints one line per check, "ok ..." or "FAIL ...", and exits 1 if any check failed.
"""
import ast
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in tests/
import header  # noqa: E402  (export's table, through which the tests read the header)
from oracle import check, exit_status  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORT = os.path.join(ROOT, "export")
HF = os.path.join(ROOT, "tests", "fixtures", "hf")
S260 = os.path.join(ROOT, "tests", "fixtures", "stories260K")
TYPES = {"I": "u32", "i": "i32", "f": "f32", "Q": "u64", "8i": "i32[8]"}
SIZES = {"u32": 4, "i32": 4, "f32": 4, "u64": 8, "i32[8]": 32, "u8[8]": 8}


# ----------------------------------------------------------------------------------
# The three tables

def number(text):
    """A number of FORMAT.md's range column: 12, -1, 1e-6, 0x434E5552, 2^16, 2^22 - 1."""
    text = text.strip()
    m = re.fullmatch(r"2\^(\d+)(?: - (\d+))?", text)
    if m:
        return 2 ** int(m[1]) - int(m[2] or 0)
    if text.startswith("0x"):
        return int(text, 16)
    return float(text) if re.search(r"[.e]", text) else int(text)


def format_md_table():
    """[(field, offset, type, lo, hi)] of FORMAT.md's header table, and its rows'
    (offset, type) including the reserved ones."""
    text = open(os.path.join(ROOT, "FORMAT.md"), encoding="utf-8").read()
    section = text.split("## Header", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    if rows[0][:4] != ["offset", "type", "field", "range"]:
        return [], []
    fields, spans = [], []
    for offset, kind, name, limits, _ in rows[1:]:
        spans.append((int(offset), kind))
        if name != "reserved":
            lo, _, hi = limits.partition("..")
            fields.append((name, int(offset), kind, number(lo), number(hi or lo)))
    return fields, spans


def export_table():
    return [(f.name, f.offset, TYPES[f.fmt], f.lo, f.hi) for f in header.EXPORT.HEADER_FIELDS]


def run_table(header_fields):
    """format.c's HEADER, as tests/header_fields.c prints it; stop_ids is an array of
    MAX_STOP there too."""
    out = subprocess.run([header_fields], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        name, offset, kind, lo, hi = line.split("\t")
        rows.append((name, int(offset), kind + "[8]" if name == "stop_ids" else kind, float(lo), float(hi)))
    return rows


def check_tables(header_fields):
    spec, spans = format_md_table()
    check(spec, "FORMAT.md has a header table with a range column")
    at = 0
    for offset, kind in spans:
        if offset != at:
            break
        at = offset + SIZES.get(kind, 0)
    check(at == 256, "FORMAT.md's header rows follow one another without gap or overlap up to 256 bytes",
          f"the rows stop fitting at offset {at}")
    tables = {"FORMAT.md": spec, "export": export_table(), "run.c": run_table(header_fields)}
    names = {k: [row[0] for row in t] for k, t in tables.items()}
    check(names["FORMAT.md"] == names["export"] == names["run.c"] and len(spec) > 40,
          f"FORMAT.md, export and run.c name the same {len(spec)} header fields in the same order",
          json.dumps(names))
    for row in spec:
        same = [t[names[k].index(row[0])] if row[0] in names[k] else None for k, t in tables.items()]
        ok = all(r is not None and r[1:3] == row[1:3] and float(r[3]) == float(row[3])
                 and float(r[4]) == float(row[4]) for r in same)
        check(ok, f"{row[0]}: offset {row[1]}, {row[2]}, range [{row[3]:.9g}, {row[4]:.9g}] "
                  f"in FORMAT.md, export and run.c", str(same))


def check_importable():
    """export runs nothing when imported: its top level only defines (tests/header.py
    imports it for its table)."""
    tree = ast.parse(open(EXPORT, encoding="utf-8").read())
    guard = [n for n in tree.body if isinstance(n, ast.If)
             and ast.unparse(n.test).replace("'", '"') == '__name__ == "__main__"']
    other = [ast.unparse(n)[:60] for n in tree.body
             if not isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign))
             and n not in guard and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    check(len(guard) == 1 and not other, "export's program runs under `if __name__ == \"__main__\"` only "
                                         "(importing it has no side effects)", f"top level: {other}")


# ----------------------------------------------------------------------------------
# Refusals and boundaries

def export(args, out):
    return subprocess.run([EXPORT, "-q", *args, out], capture_output=True, text=True, timeout=300)


def damaged(fixture, tmp, name, damage):
    """A copy of the fixture folder, changed by damage(folder)."""
    folder = os.path.join(tmp, name)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(HF, fixture), folder)
    damage(folder)
    return folder


def edit_json(folder, file, change):
    path = os.path.join(folder, file)
    obj = json.load(open(path))
    change(obj)
    json.dump(obj, open(path, "w"))


def set_key(file, key, value, sub=None):
    """damage(): file's key (or sub[key]) set to value."""
    def change(obj):
        (obj[sub] if sub else obj)[key] = value
    return lambda folder: edit_json(folder, file, change)


def expect_refusal(what, args, out, words):
    p = export(args, out)
    lines = p.stderr.strip().splitlines()
    ok = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("export: ")
          and all(w in lines[0] for w in words) and not os.path.exists(out))
    check(ok, f"export refuses {what}: {lines[0] if lines else ''}",
          f"exit {p.returncode}, want 1, one line naming {words}, no {out}: {p.stderr}")


def run_refuses(run, what, model, field, value, words, tmp):
    """run refuses model with header field (or a token record: field "token N") set."""
    path = os.path.join(tmp, "patched.bin")
    if field.startswith("token "):
        data = bytearray(open(model, "rb").read())
        i, record = int(field.split()[1]), value
        struct.pack_into("<IIfI", data, header.get(data, "tokens_offset") + 16 * i,
                         *record(struct.unpack_from("<IIfI", data, header.get(data, "tokens_offset") + 16 * i)))
        header.fix_checksum(data)
        open(path, "wb").write(data)
    else:
        header.patch_file(model, path, field, value)
    p = subprocess.run([run, path, "-m", "generate", "-i", "hi", "-n", "1"], capture_output=True, text=True)
    ok = p.returncode == 1 and all(w in p.stderr for w in words)
    check(ok, f"... and run refuses it in a model file: {p.stderr.strip()[:160]}",
          f"exit {p.returncode}: {p.stderr}")


def expect_accepted(run, what, args, out):
    """export writes the file, and run loads it and generates with it."""
    p = export(args, out)
    ok = p.returncode == 0 and os.path.isfile(out)
    check(ok, f"export accepts {what}", p.stderr)
    if not ok:
        return
    g = subprocess.run([run, out, "-m", "generate", "-i", "Once upon a time", "-n", "2", "-t", "0",
                        "-c", "64", "--stats", "json"], capture_output=True, text=True)
    stats = re.search(r'"prompt_tokens": (\d+), .*"new_tokens": (\d+)', g.stderr)
    check(g.returncode == 0 and stats and int(stats[1]) > 0 and int(stats[2]) > 0,
          f"... and run loads it and generates with it ({what})", f"exit {g.returncode}: {g.stderr}")
    os.remove(out)


def nan_tokenizer(tmp):
    """llama2.c's tok512.bin with token 300's score NaN."""
    data = bytearray(open(os.path.join(S260, "tok512.bin"), "rb").read())
    pos = 4
    for _ in range(300):                  # per token: f32 score, i32 length, the bytes
        pos += 8 + struct.unpack_from("<i", data, pos + 4)[0]
    struct.pack_into("<f", data, pos, math.nan)
    path = os.path.join(tmp, "tok512-nan.bin")
    open(path, "wb").write(data)
    return path


def add_token(folder, content, i):
    def change(t):
        t["added_tokens"].append(dict(t["added_tokens"][0], id=i, content=content))
    edit_json(folder, "tokenizer.json", change)


def shared_id(folder):
    """A second vocab entry "zzz" with the id of "ion"."""
    def change(t):
        t["model"]["vocab"]["zzz"] = t["model"]["vocab"]["ion"]
    edit_json(folder, "tokenizer.json", change)


def refusals(tmp, models):
    """(what, fixture, damage, words export's message holds, the same in a file for run:
    (model, header field or "token N", value, words run's message holds) or None)."""
    smol, llama3, s260 = models
    v = json.load(open(os.path.join(HF, "tiny-smollm2", "config.json")))["vocab_size"]
    cfg, gen = "config.json", "generation_config.json"
    rope = set_key(cfg, "factor", 0.5, sub="rope_scaling")
    sampling = {"do_sample": True, "top_k": 2 ** 22 + 1}
    return [
        ("max_position_embeddings 10^9", "tiny-smollm2", set_key(cfg, "max_position_embeddings", 10 ** 9),
         ["config.json: max_position_embeddings = 1000000000", "1 to 4194304"], (smol, "max_seq_len", 10 ** 9, ["max_seq_len"])),
        ("max_position_embeddings 2^22 + 1", "tiny-smollm2", set_key(cfg, "max_position_embeddings", 2 ** 22 + 1),
         ["4194305", "1 to 4194304"], (smol, "max_seq_len", 2 ** 22 + 1, ["max_seq_len"])),
        ("num_hidden_layers 10^9", "tiny-smollm2", set_key(cfg, "num_hidden_layers", 10 ** 9),
         ["config.json: num_hidden_layers = 1000000000", "1 to 1024"], (smol, "n_layers", 10 ** 9, ["n_layers"])),
        ("rms_norm_eps 2", "tiny-smollm2", set_key(cfg, "rms_norm_eps", 2),
         ["config.json: rms_norm_eps = 2 ", "0 to 1"], (smol, "norm_eps", 2.0, ["norm_eps"])),
        ("rms_norm_eps 1.0000001 (above 1 as a float32 too)", "tiny-smollm2", set_key(cfg, "rms_norm_eps", 1.0000001),
         ["rms_norm_eps = 1.0000001", "0 to 1"], (smol, "norm_eps", 1.0000001, ["norm_eps"])),
        ("rope_theta 0.5", "tiny-smollm2", set_key(cfg, "rope_theta", 0.5),
         ["config.json: rope_theta = 0.5", "1 to 1e+12"], (smol, "rope_theta", 0.5, ["rope_theta"])),
        ("rope_theta 1e20", "tiny-smollm2", set_key(cfg, "rope_theta", 1e20),
         ["config.json: rope_theta = 1e+20", "1 to 1e+12"], (smol, "rope_theta", 1e20, ["rope_theta"])),
        ("rope_theta 1.000001e12", "tiny-smollm2", set_key(cfg, "rope_theta", 1.000001e12),
         ["rope_theta = 1000001000000", "1 to 1e+12"], (smol, "rope_theta", 1.000001e12, ["rope_theta"])),
        ("a llama3 rope factor 0.5", "tiny-llama3", rope,
         ["config.json: rope_scaling.factor = 0.5", "1 to 1000000"], (llama3, "rope_factor", 0.5, ["rope_factor"])),
        ("eos_token_id -1", "tiny-smollm2", set_key(gen, "eos_token_id", -1),
         ["generation_config.json: eos_token_id = -1", "not a token id"],
         (smol, "stop_ids", [-1] * 8, ["stop_ids = -1"])),
        (f"eos_token_id {v} (= vocab_size)", "tiny-smollm2", set_key(gen, "eos_token_id", v),
         [f"generation_config.json: eos_token_id = {v}", f"0 to {v - 1}"],
         (smol, "stop_ids", [v] + [-1] * 7, ["not below vocab_size"])),
        ("an added token with empty content", "tiny-smollm2", lambda d: add_token(d, "", 100),
         ["tokenizer.json: added token 100 is empty"],
         (smol, "token 100", lambda r: (r[0], 0, r[2], 3), ["an added token is empty"])),
        ("two vocab entries with the same id (naming both)", "tiny-smollm2", shared_id,
         ['tokenizer.json: vocab entries "ion" and "zzz" have the same id'], None),
        ("repetition_penalty 101", "tiny-smollm2", set_key(gen, "repetition_penalty", 101),
         ["generation_config.json: repetition_penalty = 101", "0 to 100"],
         (smol, "default_repetition_penalty", 101.0, ["default_repetition_penalty"])),
        ("top_k 2^22 + 1", "tiny-smollm2", lambda d: edit_json(d, gen, lambda g: g.update(sampling)),
         ["generation_config.json: top_k = 4194305", "0 to 4194304"],
         (smol, "default_top_k", 2 ** 22 + 1, ["default_top_k"])),
        ("NaN scores in a llama2.c tokenizer", None, None,
         ["tok512-nan.bin: token 300 has the score nan, not a finite number"],
         (s260, "token 300", lambda r: (r[0], r[1], math.nan, r[3]), ["not a finite number"])),
    ]


def boundaries():
    """(what, fixture, damage): values at the edges of the ranges."""
    cfg, gen = "config.json", "generation_config.json"
    sampling = {"do_sample": True, "temperature": 100, "top_k": 2 ** 22, "top_p": 1.0}
    v = json.load(open(os.path.join(HF, "tiny-smollm2", "config.json")))["vocab_size"]
    return [
        ("max_position_embeddings 2^22", "tiny-smollm2", set_key(cfg, "max_position_embeddings", 2 ** 22)),
        ("rms_norm_eps 0", "tiny-smollm2", set_key(cfg, "rms_norm_eps", 0)),
        ("rms_norm_eps 1", "tiny-smollm2", set_key(cfg, "rms_norm_eps", 1)),
        ("rms_norm_eps 1.00000001 (1 as a float32)", "tiny-smollm2", set_key(cfg, "rms_norm_eps", 1.00000001)),
        ("rope_theta 1", "tiny-smollm2", set_key(cfg, "rope_theta", 1)),
        ("rope_theta 0.99999999 (1 as a float32)", "tiny-smollm2", set_key(cfg, "rope_theta", 0.99999999)),
        ("rope_theta 1e12", "tiny-smollm2", set_key(cfg, "rope_theta", 1e12)),
        ("a llama3 rope factor 1", "tiny-llama3", set_key(cfg, "factor", 1, sub="rope_scaling")),
        (f"eos_token_id {v - 1} (the last id)", "tiny-smollm2", set_key(gen, "eos_token_id", v - 1)),
        ("repetition_penalty 100", "tiny-smollm2", set_key(gen, "repetition_penalty", 100)),
        ("do_sample with temperature 100, top_k 2^22, top_p 1", "tiny-smollm2",
         lambda d: edit_json(d, gen, lambda g: g.update(sampling))),
    ]


def check_limits(run, tmp):
    models = [os.path.join(tmp, n) for n in ("smollm2.bin", "llama3.bin", "s260.bin")]
    made = [export([os.path.join(HF, "tiny-smollm2")], models[0]), export([os.path.join(HF, "tiny-llama3")], models[1]),
            export(["--tokenizer", os.path.join(S260, "tok512.bin"), os.path.join(S260, "stories260K.bin")], models[2])]
    check(all(p.returncode == 0 for p in made), "export tiny-smollm2, tiny-llama3 and stories260K",
          " ".join(p.stderr for p in made))
    out = os.path.join(tmp, "out.bin")
    for what, fixture, damage, words, in_file in refusals(tmp, models):
        if fixture:
            args = [damaged(fixture, tmp, "src", damage)]
        else:
            args = ["--tokenizer", nan_tokenizer(tmp), os.path.join(S260, "stories260K.bin")]
        expect_refusal(what, args, out, words)
        if in_file:
            run_refuses(run, what, *in_file, tmp)
    for what, fixture, damage in boundaries():
        expect_accepted(run, what, [damaged(fixture, tmp, "src", damage)], out)


def main():
    run, header_fields, build = sys.argv[1:4]
    check_tables(header_fields)
    check_importable()
    tmp = os.path.join(build, "format")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    check_limits(run, tmp)
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
