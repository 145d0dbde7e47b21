#!/usr/bin/env bash
# Tests of ./export (run from the repo root: bash tests/test_export.sh).
# Prints one line per check ("ok ...", "FAIL ...", as tests/run_tests.sh counts them)
# and finally "N passed, N failed"; exits 1 on any failure.
#
# Reference data: tests/fixtures (the Hugging Face checkpoints in hf/, GGUF files in
# gguf/, llama2.c's stories260K and tokenizers, real chat templates); a missing one is a FAIL.

set -u
cd "$(dirname "$0")/.." || exit 1
EXPORT=./export
FIX=tests/fixtures/hf
S260=$PWD/tests/fixtures/stories260K
TOK32000=$PWD/tests/fixtures/tokenizers/real-llama2/tokenizer.bin
TEMPLATES=$PWD/tests/fixtures/chat_templates
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PASS=0
FAIL=0

pass() { echo "ok $1"; PASS=$((PASS + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; FAIL=$((FAIL + 1)); }

# ---------------------------------------------------------------------------------
# verify.py OUT.bin SRC [key=value ...]: checks an exported file independently of
# ./export's code: header vs config.json, CRCs, offsets, tokenizer records vs
# tokenizer.json (or tok=llama2.c tokenizer.bin), every weight vs the safetensors
# values (f32: bit-exact; q8_0: |q*scale - x| <= scale/2). key=value pairs are
# expected header fields (lists comma-separated, text as-is). The header's fields are
# read by name through export's table (tests/header.py), which tests/test_format.py
# holds to FORMAT.md's and run.c's.
cat > "$TMP/verify.py" <<'EOF'
import json, os, struct, sys, zlib
sys.dont_write_bytecode = True
sys.path.insert(0, "tests")
import header   # the header's fields by name, through export's table

out, src = sys.argv[1], sys.argv[2]
opts = dict(a.split("=", 1) for a in sys.argv[3:])
d = open(out, "rb").read()
h = header.read(d)
errors = []

def expect(what, got, want):
    if got != want:
        errors.append(f"{what}: got {got!r}, want {want!r}")

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]

# --- layout and CRCs
expect("magic", d[:4], b"RUNC"); expect("version", h["version"], 1)
expect("header_bytes", h["header_bytes"], 256)
expect("file_bytes", h["file_bytes"], len(d))
expect("weights_offset % 64", h["weights_offset"] % 64, 0)
expect("tokens_offset", h["tokens_offset"], 256)
expect("merges_offset", h["merges_offset"], 256 + 16 * h["vocab_size"])
expect("strings_offset", h["strings_offset"], h["merges_offset"] + 12 * h["n_merges"])
expect("weights after strings", h["strings_offset"] + h["strings_bytes"] <= h["weights_offset"], True)
meta = bytearray(d[:h["weights_offset"]]); header.put(meta, "meta_crc32", 0); header.put(meta, "weights_crc32", 0)
expect("meta_crc32", h["meta_crc32"], zlib.crc32(meta))
expect("weights_crc32", h["weights_crc32"], zlib.crc32(d[h["weights_offset"]:]))
covered = {f.offset + i for f in header.FIELDS.values() for i in range(struct.calcsize("<" + f.fmt))}
expect("reserved bytes", bytes(d[i] for i in range(256) if i not in covered), bytes(256 - len(covered)))
expect("sampling defaults (greedy, no repetition penalty)", [h[k] for k in
       ("default_temperature", "default_top_p", "default_top_k", "default_repetition_penalty")], [0, 0, 0, 0])
stops = h["stop_ids"][:h["n_stop"]]
expect("unused stop ids", h["stop_ids"][h["n_stop"]:], [-1] * (8 - h["n_stop"]))

# --- hyperparameters vs config.json
cfg = json.load(open(os.path.join(src, "config.json")))
heads = cfg["num_attention_heads"]
for field, key, default in [("dim", "hidden_size", None), ("hidden_dim", "intermediate_size", None),
        ("n_layers", "num_hidden_layers", None), ("n_heads", "num_attention_heads", None),
        ("n_kv_heads", "num_key_value_heads", heads), ("vocab_size", "vocab_size", None),
        ("max_seq_len", "max_position_embeddings", None),
        ("head_dim", "head_dim", cfg["hidden_size"] // heads)]:
    expect(field, h[field], cfg.get(key, default))
rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
expect("rope_theta", h["rope_theta"], f32(rp.get("rope_theta", cfg.get("rope_theta"))))
expect("norm_eps", h["norm_eps"], f32(cfg["rms_norm_eps"]))
llama3 = rp.get("rope_type") == "llama3"
expect("rope_type", h["rope_type"], int(llama3))
expect("rope_factor", h["rope_factor"], f32(rp["factor"]) if llama3 else 0.0)
expect("rope_low", h["rope_low_freq_factor"], f32(rp["low_freq_factor"]) if llama3 else 0.0)
expect("rope_high", h["rope_high_freq_factor"], f32(rp["high_freq_factor"]) if llama3 else 0.0)
expect("rope_orig", h["rope_original_max_pos"], rp["original_max_position_embeddings"] if llama3 else 0)
qwen = cfg["model_type"] == "qwen2"
expect("qkv_bias", h["qkv_bias"], int(qwen))
tied = cfg.get("tie_word_embeddings", False)
expect("tied_embeddings", h["tied_embeddings"], int(tied))

# --- expectations given on the command line
for k, v in opts.items():
    if k in ("tok", "src"):
        continue
    if k == "stop_ids":
        expect(k, stops, [int(x) for x in v.split(",")])
    elif k == "system":
        o = h["strings_offset"] + h["default_system_offset"]
        expect(k, d[o:o + h["default_system_bytes"]].decode(), v)
    else:
        expect(k, h[k], int(v))

# --- tokenizer records
V = h["vocab_size"]
rec = [struct.unpack_from("<IIfI", d, h["tokens_offset"] + 16 * i) for i in range(V)]
strings = d[h["strings_offset"]:h["strings_offset"] + h["strings_bytes"]]
piece = lambda i: strings[rec[i][0]:rec[i][0] + rec[i][1]]
if "tok" in opts:                 # llama2.c tokenizer.bin
    t = open(opts["tok"], "rb").read(); pos = 4
    for i in range(V):
        score, n = struct.unpack_from("<fi", t, pos); b = t[pos + 8:pos + 8 + n]; pos += 8 + n
        flags = 0
        if len(b) == 6 and b.startswith(b"<0x") and b.endswith(b">"):
            b, flags = bytes([int(b[3:5], 16)]), 4
        elif i < 3:
            flags = 2
        expect(f"token {i}", (piece(i), rec[i][2], rec[i][3]), (b, score, flags))
    expect("n_merges", h["n_merges"], 0)
else:
    tj = json.load(open(os.path.join(src, "tokenizer.json")))
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    u2b = {chr(c): b for b, c in zip(bs, cs)}
    want = {i: (bytes(u2b[c] for c in s), 0) for s, i in tj["model"]["vocab"].items()}
    for a in tj["added_tokens"]:
        want[a["id"]] = (a["content"].encode(), 1 | (2 if a["special"] else 0))
    for i in range(V):
        b, fl = want.get(i, (b"", 0))
        expect(f"token {i}", (piece(i), rec[i][2], rec[i][3]), (b, 0.0, fl))
    vocab = tj["model"]["vocab"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in tj["model"]["merges"]]
    expect("n_merges", h["n_merges"], len(merges))
    for r, (a, b) in enumerate(merges):
        got = struct.unpack_from("<III", d, h["merges_offset"] + 12 * r)
        expect(f"merge {r}", got, (vocab[a], vocab[b], vocab[a + b]))

# --- weights vs the safetensors values
st = open(os.path.join(opts.get("src", src), "model.safetensors"), "rb").read()
hn = struct.unpack_from("<Q", st)[0]; sh = json.loads(st[8:8 + hn]); base = 8 + hn
def source(name):
    t = sh[name]; raw = st[base + t["data_offsets"][0]:base + t["data_offsets"][1]]
    if t["dtype"] == "F32":
        return raw
    if t["dtype"] == "BF16":
        u = struct.unpack(f"<{len(raw) // 2}H", raw)
        return struct.pack(f"<{len(u)}I", *[x << 16 for x in u])
    return struct.pack(f"<{len(raw) // 2}f", *struct.unpack(f"<{len(raw) // 2}e", raw))
D, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
order = [("model.embed_tokens.weight", 1)]
for i in range(L):
    p = f"model.layers.{i}."
    order += [(p + "input_layernorm.weight", 0)] + [(p + f"self_attn.{x}_proj.weight", 1) for x in "qkv"]
    if qwen:
        order += [(p + f"self_attn.{x}_proj.bias", 0) for x in "qkv"]
    order += [(p + "self_attn.o_proj.weight", 1), (p + "post_attention_layernorm.weight", 0)]
    order += [(p + f"mlp.{x}_proj.weight", 1) for x in ("gate", "up", "down")]
order += [("model.norm.weight", 0)] + ([] if tied else [("lm_head.weight", 1)])
pos, gs, bad = h["weights_offset"], h["group_size"], 0
align = lambda n: (n + 63) // 64 * 64
for name, matrix in order:
    x = source(name); n = len(x) // 4
    pos = align(pos)
    if matrix and h["weight_type"] == 1:
        expect(f"{name} row length % group_size", sh[name]["shape"][1] % gs, 0)
        q = struct.unpack_from(f"<{n}b", d, pos); pos = align(pos + n)
        s = struct.unpack_from(f"<{n // gs}f", d, pos); pos += 4 * (n // gs)
        xv = struct.unpack(f"<{n}f", x)
        for g in range(n // gs):
            grp = xv[g * gs:(g + 1) * gs]
            if s[g] != f32(max(abs(v) for v in grp) / 127):
                bad += 1
            for j, v in enumerate(grp):
                qv = q[g * gs + j]
                if abs(qv) > 127 or abs(qv * s[g] - v) > s[g] / 2 * (1 + 1e-6) + 1e-30:
                    bad += 1
    else:
        if d[pos:pos + 4 * n] != x:
            errors.append(f"tensor {name} differs")
        pos += 4 * n
expect("q8_0 values outside scale/2 (or wrong scales)", bad, 0)
expect("end of weights", pos, len(d))
if errors:
    print("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
    sys.exit(1)
EOF

# check NAME OUT SRC [key=value ...]: verify.py on an exported file
verify() {
    local name=$1; shift
    local msg
    if msg=$(python3 "$TMP/verify.py" "$@" 2>&1); then pass "$name"; else fail "$name" "$msg"; fi
}

# export_ok NAME OUT [export args...]: ./export must succeed
export_ok() {
    local name=$1 out=$2; shift 2
    local msg
    if msg=$($EXPORT -q "$@" "$out" 2>&1) && [ -f "$out" ]; then pass "$name"
    else fail "$name" "$msg"; fi
}

# refuse NAME WORD OUT [export args...]: ./export must exit 1, say WORD on stderr,
# and leave neither OUT nor a temporary file behind.
refuse() {
    local name=$1 word=$2 out=$3; shift 3
    local err rc
    err=$($EXPORT -q "$@" "$out" 2>&1 >/dev/null); rc=$?
    local left
    left=$(ls "$(dirname "$out")" | grep -F "$(basename "$out")")
    if [ $rc -ne 1 ]; then fail "$name" "exit $rc, want 1 ($err)"
    elif ! grep -qiF -- "$word" <<<"$err"; then fail "$name" "stderr lacks '$word': $err"
    elif [ "$(grep -c . <<<"$err")" -ne 1 ] || ! grep -q '^export: ' <<<"$err"; then
        fail "$name" "want one line 'export: ...', got: $err"
    elif [ -n "$left" ]; then fail "$name" "left $left behind"
    else pass "$name (says '$word')"; fi
}

# damage DIR PYTHON: run PYTHON in DIR with helpers to rewrite JSON / safetensors files
damage() {
    (cd "$1" && python3 - "$2" <<'EOF'
import json, struct, sys
def load(p): return json.load(open(p))
def save(p, o): json.dump(o, open(p, "w"), indent=1)
def st_read(p="model.safetensors"):
    b = open(p, "rb").read(); n = struct.unpack_from("<Q", b)[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
def st_write(hdr, data, p="model.safetensors"):
    j = json.dumps(hdr).encode(); j += b" " * (-len(j) % 8)
    open(p, "wb").write(struct.pack("<Q", len(j)) + j + data)
exec(sys.argv[1])
EOF
    )
}

# copy FIXTURE NAME: a writable copy of a fixture folder in $TMP/NAME
copy() { rm -rf "$TMP/$2"; cp -r "$FIX/$1" "$TMP/$2"; chmod -R u+w "$TMP/$2"; }

# ---------------------------------------------------------------------------------
mkdir -p "$TMP/out"
echo "== options"
if $EXPORT -h | grep -q -- "--dtype"; then pass "-h lists the options"; else fail "-h lists the options"; fi
refuse "unknown option" "unrecognized" "$TMP/out/x.bin" --bogus "$FIX/tiny-smollm2"
refuse "bad group size" "4, 8, 16, 32 or 64" "$TMP/out/x.bin" --dtype q8_0 --group-size 48 "$FIX/tiny-smollm2"

if [ ! -d "$FIX" ]; then
    fail "fixtures" "$FIX not found"
else
echo "== every fixture (header vs config.json, CRCs, tokenizer, weights)"
for dir in "$FIX"/*/; do
    n=$(basename "$dir")
    case $n in
        stories260K-hf)
            export_ok "export $n" "$TMP/$n.bin" --tokenizer "$S260/tok512.bin" "$dir"
            verify "verify $n" "$TMP/$n.bin" "$dir" tok="$S260/tok512.bin" \
                tokenizer_type=2 pretokenizer=0 bos_id=1 add_bos=1 stop_ids=2 eot_id=-1 chat_template=0
            continue ;;
        tiny-smollm2|tiny-mqa-f16)
            want=(pretokenizer=1 normalizer=0 ignore_merges=0 bos_id=1 stop_ids=2 eot_id=2 chat_template=1
                  "system=You are a helpful AI assistant named SmolLM, trained by Hugging Face") ;;
        tiny-untied-mha-f32)
            want=(pretokenizer=1 bos_id=1 stop_ids=0,2 eot_id=2 chat_template=1) ;;
        tiny-llama3)
            want=(pretokenizer=2 normalizer=0 ignore_merges=1 bos_id=0 add_bos=0 stop_ids=0,2 eot_id=-1
                  chat_template=0 default_system_bytes=0) ;;
        tiny-qwen2)
            want=(pretokenizer=3 normalizer=1 ignore_merges=0 bos_id=0 stop_ids=2 eot_id=2 chat_template=1) ;;
        *) want=() ;;
    esac
    export_ok "export $n" "$TMP/$n.bin" "$dir"
    verify "verify $n" "$TMP/$n.bin" "$dir" tokenizer_type=1 weight_type=0 group_size=0 add_bos=0 "${want[@]}"
done
err=$($EXPORT -q "$FIX/tiny-llama3" "$TMP/l3.bin" 2>&1)
if grep -q "chat template not recognised" <<<"$err"; then pass "tiny-llama3 stand-in template: warning"
else fail "tiny-llama3 stand-in template: warning" "$err"; fi

echo "== llama2.c checkpoint"
if [ -f "$S260/stories260K.bin" ]; then
    export_ok "export stories260K.bin" "$TMP/s260.bin" --tokenizer "$S260/tok512.bin" "$S260/stories260K.bin"
    if python3 - "$TMP/s260.bin" "$TMP/stories260K-hf.bin" <<'EOF'
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, "tests")
import header
a, b = (open(p, "rb").read() for p in sys.argv[1:])
wa, wb = (header.get(x, "weights_offset") for x in (a, b))
sys.exit(0 if a[wa:] == b[wb:] and len(a[wa:]) > 0 else 1)
EOF
    then pass "stories260K.bin weights == stories260K-hf weights (q/k permuted to rotate_half)"
    else fail "stories260K.bin weights == stories260K-hf weights"; fi
    # The rest is identical too, but for the sampling defaults (llama2.c's temperature 1.0
    # and top-p 0.9 against transformers' greedy default) and so the header checksum.
    if python3 - "$TMP/s260.bin" "$TMP/stories260K-hf.bin" <<'EOF'
import struct, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "tests")
import header
a, b = (bytearray(open(p, "rb").read()) for p in sys.argv[1:])
SAMPLING = ("default_temperature", "default_top_p", "default_top_k", "default_repetition_penalty")
ok = [header.get(a, k) for k in SAMPLING] == [1.0, struct.unpack("<f", struct.pack("<f", 0.9))[0], 0, 0]
ok &= [header.get(b, k) for k in SAMPLING] == [0, 0, 0, 0]
for x in (a, b):
    for k in SAMPLING + ("meta_crc32",):
        header.put(x, k, 0)
sys.exit(0 if ok and a == b else 1)
EOF
    then pass "stories260K.bin export == stories260K-hf export (all but llama2.c's sampling defaults)"
    else fail "stories260K.bin export == stories260K-hf export (all but llama2.c's sampling defaults)"; fi
    # the same checkpoint in llama2.c's version-1 ("ak42") layout
    python3 - "$S260/stories260K.bin" "$TMP/s260v1.bin" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
dim, hid, L, H, KV, V, seq = struct.unpack_from("<7i", b)
sizes = {"emb": V * dim, "att": dim, "wq": dim * dim, "wk": KV * dim // H * dim, "wv": KV * dim // H * dim,
         "wo": dim * dim, "ffn": dim, "w1": hid * dim, "w2": dim * hid, "w3": hid * dim, "fin": dim}
pos, parts = 28, {}
for k in ["emb", "att", "wq", "wk", "wv", "wo", "ffn", "w1", "w2", "w3", "fin"]:
    n = 4 * sizes[k] * (1 if k in ("emb", "fin") else L)
    parts[k] = b[pos:pos + n]; pos += n
hdr = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hid, L, H, KV, V, seq, 1)
order = ["att", "ffn", "fin", "emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3"]
open(sys.argv[2], "wb").write(hdr + bytes(256 - len(hdr)) + b"".join(parts[k] for k in order))
EOF
    export_ok "export version-1 (ak42) stories260K" "$TMP/s260v1.out" --tokenizer "$S260/tok512.bin" "$TMP/s260v1.bin"
    if cmp -s "$TMP/s260v1.out" "$TMP/s260.bin"; then pass "version-1 export == legacy export"
    else fail "version-1 export == legacy export"; fi
    refuse "llama2.c checkpoint without --tokenizer" "--tokenizer" "$TMP/out/x.bin" "$S260/stories260K.bin"
    head -c 500000 "$S260/stories260K.bin" > "$TMP/s260cut.bin"
    refuse "truncated llama2.c checkpoint" "truncated" "$TMP/out/x.bin" --tokenizer "$S260/tok512.bin" "$TMP/s260cut.bin"
    refuse "tokenizer.bin of another vocab size" "vocab_size" "$TMP/out/x.bin" \
        --tokenizer "$TOK32000" "$S260/stories260K.bin"
else
    fail "llama2.c checkpoint" "$S260/stories260K.bin is missing"
fi

echo "== sharded checkpoint, rope_parameters"
copy tiny-smollm2 sharded
damage "$TMP/sharded" '
hdr, data = st_read(); hdr.pop("__metadata__", None)
names = sorted(hdr, key=lambda n: hdr[n]["data_offsets"][0]); half = len(names) // 2
wmap = {}
for k, part in enumerate((names[:half], names[half:])):
    fn = f"model-0000{k + 1}-of-00002.safetensors"; sub, out = {}, b""
    for n in part:
        b, e = hdr[n]["data_offsets"]; sub[n] = dict(hdr[n], data_offsets=[len(out), len(out) + e - b])
        out += data[b:e]; wmap[n] = fn
    st_write(sub, out, fn)
save("model.safetensors.index.json", {"metadata": {}, "weight_map": wmap})
import os; os.remove("model.safetensors")'
export_ok "export sharded tiny-smollm2" "$TMP/sharded.bin" "$TMP/sharded"
if cmp -s "$TMP/sharded.bin" "$TMP/tiny-smollm2.bin"; then pass "sharded export == unsharded export"
else fail "sharded export == unsharded export"; fi
rm "$TMP/sharded/model-00002-of-00002.safetensors"
refuse "index names a missing shard" "missing" "$TMP/out/x.bin" "$TMP/sharded"

copy tiny-llama3 ropep
damage "$TMP/ropep" '
c = load("config.json"); rs = c.pop("rope_scaling"); c["rope_parameters"] = dict(rs, rope_theta=c.pop("rope_theta"))
save("config.json", c)'
export_ok "export tiny-llama3 with rope_parameters" "$TMP/ropep.bin" "$TMP/ropep"
if cmp -s "$TMP/ropep.bin" "$TMP/tiny-llama3.bin"; then pass "rope_parameters (llama3) == rope_theta + rope_scaling"
else fail "rope_parameters (llama3) == rope_theta + rope_scaling"; fi
copy tiny-smollm2 ropep2
damage "$TMP/ropep2" '
c = load("config.json"); c.pop("rope_scaling"); c["rope_parameters"] = {"rope_type": "default", "rope_theta": c.pop("rope_theta")}
save("config.json", c)'
export_ok "export tiny-smollm2 with rope_parameters" "$TMP/ropep2.bin" "$TMP/ropep2"
if cmp -s "$TMP/ropep2.bin" "$TMP/tiny-smollm2.bin"; then pass "rope_parameters (default) == rope_theta"
else fail "rope_parameters (default) == rope_theta"; fi

echo "== q8_0"
for spec in "tiny-llama3 64" "tiny-llama3 32 --group-size 32" "tiny-qwen2 32" "tiny-mqa-f16 32" "tiny-smollm2 16"; do
    set -- $spec; n=$1 gs=$2; shift 2
    export_ok "export $n q8_0 $*" "$TMP/$n-q8-$gs.bin" --dtype q8_0 "$@" "$FIX/$n"
    verify "verify $n q8_0 (group_size $gs, dequantized within scale/2)" "$TMP/$n-q8-$gs.bin" "$FIX/$n" weight_type=1 group_size=$gs
done
refuse "q8_0 when the group size does not divide the rows (tiny-smollm2: hidden 176)" "group size" "$TMP/out/x.bin" --dtype q8_0 --group-size 32 "$FIX/tiny-smollm2"

echo "== refusals (exit 1, one line naming the problem, no output file)"
neg() {   # neg NAME WORD FIXTURE PYTHON-DAMAGE [export args]
    local name=$1 word=$2 fixture=$3 py=$4; shift 4
    copy "$fixture" neg
    damage "$TMP/neg" "$py"
    refuse "$name" "$word" "$TMP/out/neg.bin" "$@" "$TMP/neg"
}
mkdir -p "$TMP/out"
neg "architecture MistralForCausalLM" "architecture" tiny-smollm2 'c = load("config.json"); c["architectures"] = ["MistralForCausalLM"]; save("config.json", c)'
neg "architecture GPT2LMHeadModel" "architecture" tiny-smollm2 'c = load("config.json"); c["architectures"] = ["GPT2LMHeadModel"]; c["model_type"] = "gpt2"; save("config.json", c)'
neg "rope_type yarn" "yarn" tiny-smollm2 'c = load("config.json"); c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}; save("config.json", c)'
neg "rope type linear (old 'type' key)" "linear" tiny-smollm2 'c = load("config.json"); c["rope_scaling"] = {"type": "linear", "factor": 2.0}; save("config.json", c)'
neg "llama3 rope without low_freq_factor" "low_freq_factor" tiny-llama3 'c = load("config.json"); del c["rope_scaling"]["low_freq_factor"]; save("config.json", c)'
neg "sliding window" "sliding" tiny-qwen2 'c = load("config.json"); c["use_sliding_window"] = True; save("config.json", c)'
neg "MoE key" "experts" tiny-smollm2 'c = load("config.json"); c["num_local_experts"] = 8; save("config.json", c)'
neg "attention_bias true" "attention_bias" tiny-smollm2 'c = load("config.json"); c["attention_bias"] = True; save("config.json", c)'
neg "hidden_act gelu" "hidden_act" tiny-smollm2 'c = load("config.json"); c["hidden_act"] = "gelu"; save("config.json", c)'
neg "missing rms_norm_eps" "rms_norm_eps" tiny-smollm2 'c = load("config.json"); del c["rms_norm_eps"]; save("config.json", c)'
neg "missing rope_theta" "rope_theta" tiny-smollm2 'c = load("config.json"); del c["rope_theta"]; save("config.json", c)'
neg "bad JSON in config.json" "JSON" tiny-smollm2 'open("config.json", "a").write("{,")'
neg "config disagrees with a tensor shape" "gate_proj" tiny-smollm2 'c = load("config.json"); c["intermediate_size"] = 128; save("config.json", c)'
neg "missing tensor" "model.norm.weight" tiny-smollm2 'h, d = st_read(); del h["model.norm.weight"]; st_write(h, d)'
neg "unexpected tensor (a bias Llama does not use)" "o_proj.bias" tiny-smollm2 'h, d = st_read(); h["model.layers.0.self_attn.o_proj.bias"] = {"dtype": "BF16", "shape": [64], "data_offsets": [len(d), len(d) + 128]}; st_write(h, d + bytes(128))'
neg "truncated safetensors" "truncated" tiny-smollm2 'b = open("model.safetensors", "rb").read(); open("model.safetensors", "wb").write(b[:len(b) // 2])'
neg "header length past the end of file" "past the end" tiny-smollm2 'b = bytearray(open("model.safetensors", "rb").read()); b[0:8] = struct.pack("<Q", len(b) * 2); open("model.safetensors", "wb").write(b)'
neg "bad JSON safetensors header" "JSON" tiny-smollm2 'b = bytearray(open("model.safetensors", "rb").read()); b[8] = ord("["); b[9] = ord(","); open("model.safetensors", "wb").write(b)'
neg "out-of-range tensor offsets" "outside" tiny-smollm2 'h, d = st_read(); t = h["model.norm.weight"]; t["data_offsets"] = [len(d) - 64, len(d) + 64]; st_write(h, d)'
neg "overlapping tensors" "overlap" tiny-smollm2 'h, d = st_read(); a = h["model.embed_tokens.weight"]["data_offsets"][0]; h["model.norm.weight"]["data_offsets"] = [a + 2, a + 130]; st_write(h, d)'
neg "dtype I8" "I8" tiny-smollm2 'h, d = st_read(); t = h["model.norm.weight"]; t["dtype"] = "I8"; t["shape"] = [t["data_offsets"][1] - t["data_offsets"][0]]; st_write(h, d)'
neg "dtype F64" "F64" tiny-smollm2 'h, d = st_read(); t = h["model.norm.weight"]; t["dtype"] = "F64"; t["shape"] = [(t["data_offsets"][1] - t["data_offsets"][0]) // 8]; st_write(h, d)'
neg "shape / byte count mismatch" "needs" tiny-smollm2 'h, d = st_read(); h["model.norm.weight"]["shape"] = [65]; st_write(h, d)'
neg "NaN in a weight" "NaN" tiny-untied-mha-f32 'h, d = st_read(); o = h["model.norm.weight"]["data_offsets"][0]; d = d[:o] + struct.pack("<f", float("nan")) + d[o + 4:]; st_write(h, d)'
neg "missing tokenizer.json" "tokenizer" tiny-smollm2 'import os; os.remove("tokenizer.json")'
neg "tokenizer model not BPE" "BPE" tiny-smollm2 't = load("tokenizer.json"); t["model"]["type"] = "Unigram"; save("tokenizer.json", t)'
neg "GPT-2 ByteLevel pre_tokenizer" "pre_tokenizer" tiny-smollm2 't = load("tokenizer.json"); t["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}; save("tokenizer.json", t)'
neg "normalizer NFKC" "normalizer" tiny-qwen2 't = load("tokenizer.json"); t["normalizer"] = {"type": "NFKC"}; save("tokenizer.json", t)'
neg "byte_fallback" "byte_fallback" tiny-smollm2 't = load("tokenizer.json"); t["model"]["byte_fallback"] = True; save("tokenizer.json", t)'
neg "tokenizer id >= vocab_size" "vocab_size" tiny-smollm2 't = load("tokenizer.json"); t["added_tokens"].append(dict(t["added_tokens"][0], id=5000, content="<x>")); save("tokenizer.json", t)'
neg "merge result not in vocab" "not in the vocab" tiny-smollm2 't = load("tokenizer.json"); t["model"]["merges"].append(["<|im_start|>", "<|im_end|>"]); save("tokenizer.json", t)'
neg "RobertaProcessing post_processor" "post_processor" tiny-smollm2 't = load("tokenizer.json"); t["post_processor"] = {"type": "RobertaProcessing"}; save("tokenizer.json", t)'
refuse "HF folder without tokenizer.json and without --tokenizer" "--tokenizer" "$TMP/out/x.bin" "$FIX/stories260K-hf"
refuse "no such source" "no such" "$TMP/out/x.bin" "$TMP/does-not-exist"

echo "== a file given in place of a checkpoint folder: what it is, what to pass"
refuse "model.safetensors instead of its folder" "pass the folder that holds it" "$TMP/out/x.bin" "$FIX/tiny-smollm2/model.safetensors"
refuse "config.json instead of its folder" "pass the checkpoint folder that holds config.json" "$TMP/out/x.bin" "$FIX/tiny-smollm2/config.json"
refuse "a model export already wrote" "already a run.c model" "$TMP/out/x.bin" "$TMP/tiny-smollm2.bin"

echo "== GGUF files that are damaged or not supported"
# gguf_neg NAME WORD FIXTURE PYTHON [export args]: PYTHON turns tests/fixtures/gguf/FIXTURE.gguf
# (g: read by tests/test_gguf.py's read_gguf; raw: its bytes) into neg.gguf (write(g) or
# write(raw)), which export must refuse saying WORD.
gguf_neg() {
    local name=$1 word=$2 fixture=$3 py=$4; shift 4
    rm -f "$TMP/neg.gguf"
    python3 - "$PWD/tests" "$GGUF/$fixture.gguf" "$TMP/neg.gguf" "$py" <<'EOF'
import struct, sys
sys.dont_write_bytecode = True          # no tests/__pycache__ left behind
sys.path.insert(0, sys.argv[1])
from test_gguf import read_gguf, gguf_bytes, Gguf, U32, I32, F32V, BOOL, STRING, ARRAY
g, raw, out = read_gguf(sys.argv[2]), open(sys.argv[2], "rb").read(), sys.argv[3]
def write(x):
    open(out, "wb").write(x if isinstance(x, (bytes, bytearray)) else gguf_bytes(x))
exec(sys.argv[4])
EOF
    refuse "$name" "$word" "$TMP/out/neg.bin" "$@" "$TMP/neg.gguf"
}
GGUF=$(dirname "$FIX")/gguf
Q8=tiny-smollm2-q8_0
gguf_neg "truncated GGUF (half its tensor data)" "truncated" $Q8 'write(raw[:len(raw) // 2])'
gguf_neg "truncated GGUF (inside the metadata)" "truncated" $Q8 'write(raw[:5000])'
gguf_neg "GGUF of 4 bytes" "truncated" $Q8 'write(raw[:4])'
gguf_neg "tensor count 2^40" "cannot fit" $Q8 'write(raw[:8] + struct.pack("<Q", 1 << 40) + raw[16:])'
gguf_neg "metadata count 2^40" "cannot fit" $Q8 'write(raw[:16] + struct.pack("<Q", 1 << 40) + raw[24:])'
gguf_neg "a key of 2^60 bytes" "truncated or corrupt" $Q8 'write(raw[:24] + struct.pack("<Q", 1 << 60) + raw[32:])'
gguf_neg "an array of 2^40 strings" "cannot fit" $Q8 'b = bytearray(raw); i = b.index(b"tokenizer.ggml.tokens") + 21 + 8; struct.pack_into("<Q", b, i, 1 << 40); write(b)'
gguf_neg "GGUF version 1" "version 1" $Q8 'write(raw[:4] + struct.pack("<I", 1) + raw[8:])'
gguf_neg "big-endian GGUF" "big-endian" $Q8 'write(raw[:4] + struct.pack(">I", 3) + raw[8:])'
gguf_neg "unknown metadata value type" "unknown value type" $Q8 'b = bytearray(raw); i = b.index(b"general.architecture") + 20; struct.pack_into("<I", b, i, 13); write(b)'
gguf_neg "a metadata key twice" "twice" $Q8 'g.kv.append(["general.architecture", STRING, "llama"]); write(g)'
gguf_neg "tensor data past the end of the file" "past the end" $Q8 'g.tensors[-1]["offset"] = 1 << 30; write(g)'
gguf_neg "misaligned tensor offset" "misaligned" $Q8 'g.tensors[-1]["offset"] = 3; write(g)'
gguf_neg "overlapping tensors" "overlap" $Q8 'g.tensors[2]["offset"] = 32; write(g)'
gguf_neg "rows that are not whole Q8_0 blocks" "blocks" $Q8 't = g.tensor("blk.0.attn_q.weight"); t["ne"] = [48, t["ne"][1] * 4 // 3]; write(g)'
gguf_neg "an unknown tensor type (ggml type 77)" "unknown type" $Q8 'g.tensor("blk.0.attn_q.weight")["type"] = 77; write(g)'
gguf_neg "tensor type IQ2_XS" "IQ2_XS" $Q8 'g.tensor("blk.0.attn_q.weight")["type"] = 17; write(g)'
gguf_neg "NaN in an F32 tensor" "NaN" $Q8 't = g.tensor("output_norm.weight"); t["data"] = struct.pack("<f", float("nan")) + t["data"][4:]; write(g)'
gguf_neg "an infinite Q8_0 scale" "NaN or Inf" $Q8 't = g.tensor("blk.1.ffn_up.weight"); t["data"] = b"\x00\x7c" + t["data"][2:]; write(g)'
gguf_neg "architecture gemma" "architecture 'gemma'" $Q8 'g.set("general.architecture", STRING, "gemma"); write(g)'
gguf_neg "no architecture" "general.architecture" $Q8 'g.kv = [e for e in g.kv if e[0] != "general.architecture"]; write(g)'
gguf_neg "mixture of experts" "mixture-of-experts" $Q8 'g.set("llama.expert_count", U32, 8); write(g)'
gguf_neg "rope scaling yarn" "yarn" $Q8 'g.set("llama.rope.scaling.type", STRING, "yarn"); write(g)'
gguf_neg "partial rotary (rope.dimension_count 8)" "dimension_count" $Q8 'g.set("llama.rope.dimension_count", U32, 8); write(g)'
gguf_neg "head_count_kv that does not divide head_count" "n_kv_heads" $Q8 'g.set("llama.attention.head_count_kv", U32, 3); write(g)'
gguf_neg "a tensor missing" "model.layers.1.mlp.up_proj.weight" $Q8 'g.tensors = [t for t in g.tensors if t["name"] != "blk.1.ffn_up.weight"]; write(g)'
gguf_neg "a tensor of another shape than the metadata's" "implies" $Q8 'g.set("llama.feed_forward_length", U32, 160); write(g)'
gguf_neg "an unexpected tensor" "blk.0.attn_q_norm.weight" $Q8 'g.tensors.append(dict(g.tensor("blk.0.attn_norm.weight"), name="blk.0.attn_q_norm.weight")); write(g)'
gguf_neg "vocab_size other than the embedding's rows" "vocab_size" $Q8 'g.set("llama.vocab_size", U32, 1000); write(g)'
gguf_neg "pre-tokenizer gpt-4o" "pre-tokenizer 'gpt-4o'" $Q8 'g.set("tokenizer.ggml.pre", STRING, "gpt-4o"); write(g)'
gguf_neg "no pre-tokenizer" "names no pre-tokenizer" $Q8 'g.kv = [e for e in g.kv if e[0] != "tokenizer.ggml.pre"]; write(g)'
gguf_neg "tokenizer model bert" "tokenizer model 'bert'" $Q8 'g.set("tokenizer.ggml.model", STRING, "bert"); write(g)'
gguf_neg "more tokens than embedding rows" "tokens" $Q8 't, tt = g.get("tokenizer.ggml.tokens"), g.get("tokenizer.ggml.token_type"); g.set("tokenizer.ggml.tokens", ARRAY, (STRING, t + ["x"])); g.set("tokenizer.ggml.token_type", ARRAY, (I32, tt + [1])); write(g)'
gguf_neg "a merge of tokens not in the vocab" "not in the vocab" $Q8 'm = g.get("tokenizer.ggml.merges"); g.set("tokenizer.ggml.merges", ARRAY, (STRING, m + ["<|im_start|> <|im_end|>"])); write(g)'
gguf_neg "add_eos_token" "add_eos_token" $Q8 'g.set("tokenizer.ggml.add_eos_token", BOOL, True); write(g)'
gguf_neg "rope_freqs that are not Llama 3's" "not Llama 3's RoPE scaling" $Q8 'g.tensors.append({"name": "rope_freqs.weight", "ne": [8], "type": "F32", "data": struct.pack("<8f", 1, 1, 5, 2, 8, 8, 8, 8)}); write(g)'
gguf_neg "--tokenizer with a GGUF file" "--tokenizer does not apply" $Q8 'write(raw)' --tokenizer "$FIX/../stories260K/tok512.bin"
gguf_neg "--group-size 64 with Q8_0 blocks of 32" "32 or less" tiny-mqa-f16-q8_0 'write(raw)' --dtype q8_0 --group-size 64
gguf_neg "--group-size with --dtype f32" "only applies" $Q8 'write(raw)' --dtype f32 --group-size 16

copy tiny-smollm2 tmpl
damage "$TMP/tmpl" 't = load("tokenizer_config.json"); t["chat_template"] = [{"name": "tool_use", "template": "x"}, {"name": "default", "template": t["chat_template"]}]; save("tokenizer_config.json", t)'
export_ok "export a list of named chat templates" "$TMP/tmpl.bin" "$TMP/tmpl"
if cmp -s "$TMP/tmpl.bin" "$TMP/tiny-smollm2.bin"; then pass "named 'default' template == plain template"
else fail "named 'default' template == plain template"; fi
fi

echo "== sampling defaults from generation_config.json"
copy tiny-qwen2 sampling
damage "$TMP/sampling" 'g = load("generation_config.json"); g.update(do_sample=True, temperature=0.7, top_p=0.8, top_k=20); save("generation_config.json", g)'
export_ok "export with do_sample, temperature, top_p, top_k" "$TMP/sampling.bin" "$TMP/sampling"
export_ok "export without do_sample" "$TMP/greedy.bin" "$FIX/tiny-qwen2"
if python3 - "$TMP/sampling.bin" "$TMP/greedy.bin" <<'EOF'
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, "tests")
import header
sampled, greedy = (header.read_file(p) for p in sys.argv[1:3])
t, p, k = (sampled[f"default_{x}"] for x in ("temperature", "top_p", "top_k"))
greedy = [greedy[f"default_{x}"] for x in ("temperature", "top_p", "top_k")]
sys.exit(0 if abs(t - 0.7) < 1e-6 and abs(p - 0.8) < 1e-6 and k == 20 and greedy == [0, 0, 0] else 1)
EOF
then pass "do_sample: temperature/top_p/top_k stored; no do_sample: greedy"
else fail "sampling defaults from generation_config.json"; fi

if [ ! -d "$TEMPLATES" ]; then
    fail "real chat templates" "$TEMPLATES is missing"
else
    echo "== real chat templates"
    copy tiny-qwen2 qwen25
    damage "$TMP/qwen25" "t = load('tokenizer_config.json'); t['chat_template'] = open('$TEMPLATES/Qwen-Qwen2.5-7B-Instruct.jinja').read(); save('tokenizer_config.json', t)"
    export_ok "export with the Qwen2.5 template" "$TMP/qwen25.bin" "$TMP/qwen25"
    verify "Qwen2.5 template: ChatML, its default system prompt" "$TMP/qwen25.bin" "$TMP/qwen25" chat_template=1 eot_id=2 \
        "system=You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    copy tiny-llama3 llama32
    damage "$TMP/llama32" "
t = load('tokenizer.json')
for k, name in enumerate(['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']):
    i = 1000 + k; old = [s for s, j in t['model']['vocab'].items() if j == i][0]
    del t['model']['vocab'][old]; t['model']['vocab'][name] = i
    t['added_tokens'].append({'id': i, 'content': name, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True})
v = t['model']['vocab']; t['model']['merges'] = [m for m in t['model']['merges'] if m[0] in v and m[1] in v and m[0] + m[1] in v]
save('tokenizer.json', t)
c = load('tokenizer_config.json'); c['chat_template'] = open('$TEMPLATES/meta-llama-Llama-3.2-3B-Instruct.jinja').read()
c['bos_token'] = '<|begin_of_text|>'; c['eos_token'] = '<|eot_id|>'; save('tokenizer_config.json', c)"
    export_ok "export with the Llama 3.2 template" "$TMP/llama32.bin" "$TMP/llama32"
    verify "Llama 3.2 template: chat_template 2, eot <|eot_id|>, no default system" "$TMP/llama32.bin" "$TMP/llama32" \
        chat_template=2 eot_id=1003 bos_id=1000 default_system_bytes=0 stop_ids=0,2,1003
fi

echo "== repetition_penalty from generation_config.json (transformers applies it in greedy decoding too)"
copy tiny-qwen2 rep
damage "$TMP/rep" 'g = load("generation_config.json"); g["repetition_penalty"] = 1.1; save("generation_config.json", g)'
export_ok "export with repetition_penalty 1.1" "$TMP/rep.bin" "$TMP/rep"
info=$(./run "$TMP/rep.bin" --info 2>&1)
if grep -q "repetition_penalty 1.1$" <<<"$info" && python3 - "$TMP/rep.bin" "$TMP/greedy.bin" <<'EOF'
import struct, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "tests")
import header
with_penalty, without = (header.read_file(p)["default_repetition_penalty"] for p in sys.argv[1:3])
sys.exit(0 if with_penalty == struct.unpack("<f", struct.pack("<f", 1.1))[0] and without == 0 else 1)
EOF
then pass "repetition_penalty 1.1: header field 1.1 (0 = not set without it), ./run --info shows it"
else fail "repetition_penalty 1.1 in the header and in ./run --info" "$(grep repetition <<<"$info")"; fi
neg "repetition_penalty 0" "repetition_penalty must be positive" tiny-qwen2 'g = load("generation_config.json"); g["repetition_penalty"] = 0; save("generation_config.json", g)'
neg "repetition_penalty a string" "repetition_penalty must be a number" tiny-qwen2 'g = load("generation_config.json"); g["repetition_penalty"] = "1.1"; save("generation_config.json", g)'

# The checks of the header's limits (config.json, a llama2.c header) come before anything
# is made per layer or per row: under a 1 GB address-space limit and a time limit, a
# config or header that claims a huge model is refused for what it claims.
echo "== bounded work before validation (1 GB of address space, 10 s)"
cat >"$TMP/bounded-export" <<EOF
#!/bin/sh
ulimit -v 1000000
exec timeout 10 "$PWD/export" "\$@"
EOF
chmod +x "$TMP/bounded-export"
bounded() { EXPORT="$TMP/bounded-export" "$@"; }
bounded neg "num_hidden_layers 10^9 in config.json" "num_hidden_layers = 1000000000 is out of range" tiny-smollm2 'c = load("config.json"); c["num_hidden_layers"] = 10 ** 9; save("config.json", c)'
bounded neg "vocab_size 2^22 and hidden_size 2^16 in config.json" "implies" tiny-smollm2 'c = load("config.json"); c.update(vocab_size=2 ** 22, hidden_size=2 ** 16); save("config.json", c)'
python3 - "$TMP" <<'EOF'
import struct, sys
tmp = sys.argv[1]
def write(name, header):
    open(f"{tmp}/{name}", "wb").write(header + bytes(256 - len(header)))
write("layers-v1.bin", struct.pack("<Ii7iB", 0x616B3432, 1, 64, 128, 2 ** 24 - 1, 4, 4, 512, 256, 1))
write("layers-legacy.bin", struct.pack("<7i", 64, 128, 2 ** 24 - 1, 4, 4, 512, 256))
write("largest.bin", struct.pack("<7i", 2 ** 16, 2 ** 19, 1024, 64, 64, 2 ** 22, 2 ** 22))
EOF
bounded refuse "256-byte llama2.c header (version 1) claiming 2^24-1 layers" "n_layers = 16777215 is out of range" "$TMP/out/x.bin" --tokenizer "$S260/tok512.bin" "$TMP/layers-v1.bin"
bounded refuse "256-byte llama2.c header (legacy) claiming 2^24-1 layers" "n_layers = 16777215 is out of range" "$TMP/out/x.bin" --tokenizer "$S260/tok512.bin" "$TMP/layers-legacy.bin"
bounded refuse "256-byte llama2.c header claiming the largest model run accepts" "header implies" "$TMP/out/x.bin" --tokenizer "$S260/tok512.bin" "$TMP/largest.bin"

echo "== malformed input: one line naming the file and the problem"
neg "deeply nested JSON in config.json" "config.json: JSON nested too deeply" tiny-smollm2 'open("config.json", "w").write("[" * 100000 + "]" * 100000)'
neg "deeply nested JSON in the safetensors header" "model.safetensors: JSON header nested too deeply" tiny-smollm2 'h, d = st_read(); j = b"[" * 100000 + b"]" * 100000; open("model.safetensors", "wb").write(struct.pack("<Q", len(j)) + j + d)'
neg "a lone surrogate (\\ud800) in tokenizer.json" "tokenizer.json: the string" tiny-smollm2 's = open("tokenizer.json").read(); i = s.index("<|im_end|>"); open("tokenizer.json", "w").write(s[:i] + "\\ud800" + s[i:])'
neg "a bad escape (\\xZZ) in the chat template's system prompt" "tokenizer_config.json: the chat template's default system prompt has a bad escape" tiny-smollm2 't = load("tokenizer_config.json"); t["chat_template"] = t["chat_template"].replace("You are", "\\xZZYou are", 1); save("tokenizer_config.json", t)'
neg "an escaped lone surrogate in the chat template's system prompt" "bad escape (surrogates not allowed)" tiny-smollm2 't = load("tokenizer_config.json"); t["chat_template"] = t["chat_template"].replace("You are", "\\ud800You are", 1); save("tokenizer_config.json", t)'
neg "chat_template.jinja that is not UTF-8" "chat_template.jinja: not UTF-8" tiny-smollm2 't = load("tokenizer_config.json"); del t["chat_template"]; save("tokenizer_config.json", t); open("chat_template.jinja", "wb").write(b"\xff{{ x }}")'
neg "rope_scaling a list" "rope_scaling must be an object or null" tiny-llama3 'c = load("config.json"); c["rope_scaling"] = [1, 2]; save("config.json", c)'
neg "rope_scaling.factor a string" "rope_scaling.factor must be a number" tiny-llama3 'c = load("config.json"); c["rope_scaling"]["factor"] = "8"; save("config.json", c)'
neg "rope_scaling.original_max_position_embeddings 8192.5" "original_max_position_embeddings must be an integer" tiny-llama3 'c = load("config.json"); c["rope_scaling"]["original_max_position_embeddings"] = 8192.5; save("config.json", c)'
neg "rope_scaling.rope_type a list" "rope type" tiny-llama3 'c = load("config.json"); c["rope_scaling"]["rope_type"] = ["llama3"]; save("config.json", c)'
neg "post_processor a string" "tokenizer.json: post_processor \"x\" is not an object" tiny-smollm2 't = load("tokenizer.json"); t["post_processor"] = "x"; save("tokenizer.json", t)'
neg "post_processor Sequence whose processors is a number" "processors 5 is not a list" tiny-smollm2 't = load("tokenizer.json"); t["post_processor"] = {"type": "Sequence", "processors": 5}; save("tokenizer.json", t)'
neg "TemplateProcessing whose SpecialToken is a string" "TemplateProcessing post_processor other than" tiny-smollm2 't = load("tokenizer.json"); t["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": "x"}, {"Sequence": {"id": "A", "type_id": 0}}]}; save("tokenizer.json", t)'
neg "architectures holding a list" "config.json: architecture" tiny-smollm2 'c = load("config.json"); c["architectures"] = [["LlamaForCausalLM"]]; save("config.json", c)'
neg "merges an object" "model.merges" tiny-smollm2 't = load("tokenizer.json"); t["model"]["merges"] = {"a": 1}; save("tokenizer.json", t)'

echo "== inputs that are not regular files: refused, no hang"
bounded neg "a FIFO named model.safetensors" "model.safetensors: not a regular file" tiny-smollm2 'import os; os.remove("model.safetensors"); os.mkfifo("model.safetensors")'
bounded neg "a FIFO named config.json" "config.json: not a regular file" tiny-smollm2 'import os; os.remove("config.json"); os.mkfifo("config.json")'
bounded neg "tokenizer.json a link to a device (/dev/zero)" "tokenizer.json: not a regular file" tiny-smollm2 'import os; os.remove("tokenizer.json"); os.symlink("/dev/zero", "tokenizer.json")'
rm -f "$TMP/src.fifo"; mkfifo "$TMP/src.fifo"
bounded refuse "a FIFO as SRC" "src.fifo: not a regular file" "$TMP/out/x.bin" "$TMP/src.fifo"
bounded refuse "a device as --tokenizer" "/dev/zero: not a regular file" "$TMP/out/x.bin" --tokenizer /dev/zero "$S260/stories260K.bin"

echo "== OUT: a symbolic link is followed and kept; anything else not a regular file is refused"
mkdir -p "$TMP/links"
ln -sf target.bin "$TMP/links/link.bin"           # the file it points to does not exist yet
export_ok "export onto a symbolic link to a file not yet there" "$TMP/links/link.bin" "$FIX/tiny-smollm2"
export_ok "export onto the same link again (its file now there)" "$TMP/links/link.bin" "$FIX/tiny-smollm2"
if [ -L "$TMP/links/link.bin" ] && [ "$(readlink "$TMP/links/link.bin")" = target.bin ] &&
    cmp -s "$TMP/links/target.bin" "$TMP/tiny-smollm2.bin" && [ "$(ls "$TMP/links" | wc -l)" -eq 2 ]; then
    pass "the link stays a link to target.bin, which holds the model, and nothing else is left"
else fail "export onto a symbolic link" "$(ls -l "$TMP/links")"; fi
# refuse_out NAME WORD OUT: export onto OUT is refused (one line, exit 1), and OUT is
# left as it was, with no temporary file beside it
refuse_out() {
    local name=$1 word=$2 out=$3 before err rc
    before=$(stat -c %F "$out")
    err=$("$TMP/bounded-export" -q "$FIX/tiny-smollm2" "$out" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 1 ] || ! grep -qF -- "$word" <<<"$err" || [ "$(grep -c . <<<"$err")" -ne 1 ]; then
        fail "$name" "exit $rc, want 1 and one line saying '$word': $err"
    elif [ "$(stat -c %F "$out")" != "$before" ] || ls "$(dirname "$out")" | grep -qF "$(basename "$out").tmp-"; then
        fail "$name" "$out changed or a temporary file was left"
    else pass "$name (says '$word')"; fi
}
refuse_out "export onto /dev/null (a device)" "/dev/null: not a regular file" /dev/null
rm -f "$TMP/out.fifo"; mkfifo "$TMP/out.fifo"
refuse_out "export onto a FIFO" "out.fifo: not a regular file" "$TMP/out.fifo"
ln -sf /dev/null "$TMP/links/null.bin"
refuse_out "export onto a link to /dev/null" "null.bin: not a regular file" "$TMP/links/null.bin"
refuse_out "export onto a folder" "not a regular file" "$TMP/links"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
