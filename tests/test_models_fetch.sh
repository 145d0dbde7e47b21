#!/usr/bin/env bash
# Offline test of models/fetch. A fake Hugging Face hub is built in a temp folder (the tiny
# SmolLM2 fixture under the name HuggingFaceTB/SmolLM2-135M-Instruct, plus the hub API's file
# list with sizes and checksums) and served through file:// URLs and a local HTTP server
# (on 127.0.0.1, a free port; it exits with this script, or after 5 minutes whatever
# happens). Nothing is written into the repository: MODELS_DIR points into the temp folder.
# Part of `make test`. Prints one line per check (ok / FAIL) and ends with "N passed,
# N failed"; without curl (which models/fetch needs) it prints one SKIP line naming it.

# Conditions are single-quoted on purpose: check() evaluates them after each fetch ran.
# shellcheck disable=SC2016,SC2034
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
FETCH=$ROOT/models/fetch
REPO=HuggingFaceTB/SmolLM2-135M-Instruct
NAME=SmolLM2-135M-Instruct
FILES="config.json generation_config.json tokenizer.json tokenizer_config.json model.safetensors"

pass=0 fail=0
ok() { echo "ok $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
check() { # check "what" 'condition': ok when the shell condition holds
    if eval "$2"; then ok "$1"; else bad "$1"; fi
}
has() { # the output of the last fetch contains every one of the strings
    local s
    for s; do grep -qF -- "$s" "$T/out" || return 1; done
}

FIXTURE=$ROOT/tests/fixtures/hf/tiny-smollm2
L2C=$ROOT/tests/fixtures/stories260K
for f in "$FIXTURE/model.safetensors" "$L2C/stories260K.bin" "$L2C/tok512.bin" "$ROOT/export"; do
    [ -f "$f" ] || { echo "FAIL models/fetch tests: $f is missing"; echo "0 passed, 1 failed"; exit 1; }
done
command -v python3 >/dev/null || { echo "FAIL python3 is needed to build the fake hub"; echo "0 passed, 1 failed"; exit 1; }
if ! command -v curl >/dev/null; then
    echo "SKIP models/fetch: curl is not installed (the Debian package curl)"
    echo "0 passed, 0 failed"
    exit 0
fi

T=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

# The hub API's answer for a folder of files: size and git blob id for every file, plus
# lfs.oid = sha256 for the large ones, as GET /api/models/REPO/tree/REV returns them.
tree_json() {
    python3 - "$1" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
out = []
for f in sorted(os.listdir(d)):
    b = open(os.path.join(d, f), "rb").read()
    e = {"type": "file", "path": f, "size": len(b),
         "oid": hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()}
    if f.endswith((".safetensors", ".bin")):
        e["lfs"] = {"oid": hashlib.sha256(b).hexdigest(), "size": len(b), "pointerSize": 134}
    out.append(e)
print(json.dumps(out, indent=1))
EOF
}

# make_hub DIR REPO: the fixture as REPO on a hub rooted at DIR.
make_hub() {
    local files=$1/$2/resolve/main f
    mkdir -p "$files" "$1/api/models/$2/tree"
    for f in $FILES; do cp "$FIXTURE/$f" "$files/"; done
    tree_json "$files" >"$1/api/models/$2/tree/main"
}
HUB=$T/hub
make_hub "$HUB" "$REPO"

# A stand-in for ./export: logs its working folder and arguments, writes its output file.
cat >"$T/stub-export" <<'EOF'
#!/bin/sh
echo "$(pwd) | $*" >>"$STUB_LOG"
for out; do :; done
if [ -n "${STUB_FAIL:-}" ]; then echo partial >"$out"; exit 1; fi
printf 'RUNC' >"$out"
EOF
chmod +x "$T/stub-export"

unset HF_TOKEN MODELS_CATALOGUE STUB_FAIL
export HF_ENDPOINT=file://$HUB MODELS_DIR=$T/models EXPORT=$T/stub-export STUB_LOG=$T/stub.log
: >"$STUB_LOG"
M=$T/models
D=$M/$NAME

fetch() { # runs models/fetch ARGS; output in $T/out, exit code in $rc
    rc=0
    (cd "$T" && "$FETCH" "$@") >"$T/out" 2>&1 || rc=$?
}
same_files() { # every file of the entry arrived intact
    local f
    for f in $FILES; do cmp -s "$FIXTURE/$f" "$D/$f" || return 1; done
}
stub_calls() { wc -l <"$STUB_LOG" | tr -d ' '; }

# ---- catalogue ----
fetch --list
n=0
for e in SmolLM2-135M-Instruct SmolLM2-135M SmolLM2-360M-Instruct SmolLM2-360M \
    SmolLM2-1.7B-Instruct SmolLM2-1.7B Llama-3.2-1B-Instruct Qwen2.5-0.5B-Instruct \
    stories15M stories42M stories110M; do
    grep -q "^$e " "$T/out" && n=$((n + 1))
done
check "--list shows the 11 catalogue entries" '[ $rc = 0 ] && [ $n = 11 ]'

fetch NoSuchModel
check "an unknown NAME fails with a message" '[ $rc != 0 ] && has "not in the catalogue"'

# ---- first download from a file:// hub ----
fetch "$NAME"
check "fetch $NAME from a file:// hub succeeds" '[ $rc = 0 ]'
check "all 5 files arrive intact in MODELS_DIR/$NAME" 'same_files'
check "no .part file is left" '! ls "$D" | grep -q "\.part$"'
check "sha256 of model.safetensors verified against the hub list" 'has "model.safetensors: sha256 ok"'
check "small files verified against the hub's git blob ids" 'has "tokenizer.json: gitsha1 ok"'
check "export runs from the repo root on the folder, writing $NAME.bin" \
    'grep -qxF "$ROOT | --dtype f32 $D $M/$NAME.bin.part" "$STUB_LOG"'
check "the export output is renamed to $NAME.bin" '[ -f "$M/$NAME.bin" ] && [ ! -e "$M/$NAME.bin.part" ]'

# ---- rerun: nothing to do ----
calls=$(stub_calls)
fetch "$NAME"
check "rerun succeeds" '[ $rc = 0 ]'
check "rerun downloads nothing (5 files already there)" \
    '[ "$(grep -c "already downloaded" "$T/out")" = 5 ] && ! has downloading'
check "rerun still verifies the files" 'has "model.safetensors: sha256 ok"'
check "rerun does not export again ($NAME.bin is newer than the download)" '[ "$(stub_calls)" = "$calls" ]'

fetch "$NAME" --dtype q8_0
check "--dtype q8_0 exports $NAME-q8_0.bin" \
    '[ $rc = 0 ] && [ -f "$M/$NAME-q8_0.bin" ] && grep -qF -- "--dtype q8_0 $D $M/$NAME-q8_0.bin.part" "$STUB_LOG"'

# ---- corruption ----
cp "$D/model.safetensors" "$T/good.safetensors"
printf 'X' | dd of="$D/model.safetensors" bs=1 seek=5000 conv=notrunc 2>/dev/null
fetch "$NAME"
check "a corrupted file (same size, wrong sha256) is an error" '[ $rc != 0 ]'
check "... naming the sha256 mismatch and the fix" 'has "sha256 mismatch" "delete it and rerun"'
cp "$T/good.safetensors" "$D/model.safetensors"

# The hub serves a tokenizer.json that differs from its own file list: a bad download.
rm "$D/tokenizer.json"
cp "$HUB/$REPO/resolve/main/tokenizer.json" "$T/tokenizer.json.good"
printf ' ' >>"$HUB/$REPO/resolve/main/tokenizer.json"
fetch "$NAME"
check "a download that does not match the hub list is an error" '[ $rc != 0 ] && has corrupt'
check "... and is not kept (no tokenizer.json, no .part)" \
    '[ ! -e "$D/tokenizer.json" ] && [ ! -e "$D/tokenizer.json.part" ]'
cp "$T/tokenizer.json.good" "$HUB/$REPO/resolve/main/tokenizer.json"

# ---- resume an interrupted download ----
rm "$D/model.safetensors"
head -c 100000 "$T/good.safetensors" >"$D/model.safetensors.part"
touch -d '-1 hour' "$M/$NAME.bin" # the old export predates the new download
calls=$(stub_calls)
fetch "$NAME"
check "an interrupted download (.part) is resumed and completed" '[ $rc = 0 ] && ! ls "$D" | grep -q part'
check "... and the files are intact" 'same_files'
check "a new download makes fetch export again" '[ "$(stub_calls)" = $((calls + 1)) ]'

# ---- a failing export leaves no NAME.bin behind ----
rm -f "$M/$NAME.bin"
STUB_FAIL=1 fetch "$NAME"
check "a failing export is an error and leaves no $NAME.bin" \
    '[ $rc != 0 ] && [ ! -e "$M/$NAME.bin" ] && [ ! -e "$M/$NAME.bin.part" ]'

# ---- no hub API, no network ----
mv "$HUB/api" "$T/api.away"
rm "$D/config.json"
fetch "$NAME" --no-export
check "without the hub API: still downloads, says the files are not verified" \
    '[ $rc = 0 ] && [ -f "$D/config.json" ] && has "not verified"'
mv "$T/api.away" "$HUB/api"

MODELS_DIR=$T/empty HF_ENDPOINT=http://127.0.0.1:1 fetch "$NAME"
check "an unreachable endpoint fails" '[ $rc != 0 ]'
check "... naming the URL it could not reach" 'has "could not reach http://127.0.0.1:1/$REPO/resolve/main/"'
check "... and saying to copy the files into models/NAME by hand" 'has "copy them" "$T/empty/$NAME/"'

HF_ENDPOINT=http://127.0.0.1:1 fetch "$NAME"
check "offline with the files already copied in: succeeds (unverified) and exports" \
    '[ $rc = 0 ] && has "not verified" "wrote $M/$NAME.bin"'

# ---- a llama2.c entry: tokenizer from its own URL, checksums pinned in the catalogue ----
mkdir -p "$T/l2c" "$HUB/test/l2c/resolve/main"
head -c 3000 "$FIXTURE/model.safetensors" >"$HUB/test/l2c/resolve/main/tiny.bin"
head -c 2000 "$FIXTURE/tokenizer.json" >"$T/l2c/tokenizer.bin"
s1=$(sha256sum "$HUB/test/l2c/resolve/main/tiny.bin" | cut -d' ' -f1)
s2=$(sha256sum "$T/l2c/tokenizer.bin" | cut -d' ' -f1)
printf 'tiny-l2c\ttest/l2c\tmain\ttiny.bin,tokenizer.bin=file://%s\t5000\tno\tllama2c\ttiny.bin=%s,tokenizer.bin=%s\ttest\n' \
    "$T/l2c/tokenizer.bin" "$s1" "$s2" >"$T/catalogue.tsv"
MODELS_CATALOGUE=$T/catalogue.tsv fetch tiny-l2c
check "a llama2c entry: checkpoint from the hub, tokenizer.bin from its URL, pinned sha256s checked" \
    '[ $rc = 0 ] && has "tiny.bin: sha256 ok" "tokenizer.bin: sha256 ok"'
check "... exported with --tokenizer" \
    'grep -qF -- "--tokenizer $M/tiny-l2c/tokenizer.bin $M/tiny-l2c/tiny.bin $M/tiny-l2c.bin.part" "$STUB_LOG"'
sed -i "s/tokenizer.bin=$s2/tokenizer.bin=$s1/" "$T/catalogue.tsv"
rm "$M/tiny-l2c/tokenizer.bin"
MODELS_CATALOGUE=$T/catalogue.tsv fetch tiny-l2c
check "... a file that does not match its pinned sha256 is an error" '[ $rc != 0 ] && has "sha256 mismatch"'

# ---- a sharded checkpoint: the index first, then every shard it names ----
S=$HUB/test/sharded/resolve/main
mkdir -p "$S" "$HUB/api/models/test/sharded/tree"
cp "$FIXTURE/config.json" "$S/"
head -c 5000 "$FIXTURE/model.safetensors" >"$S/model-00001-of-00002.safetensors"
tail -c 5000 "$FIXTURE/model.safetensors" >"$S/model-00002-of-00002.safetensors"
cat >"$S/model.safetensors.index.json" <<'EOF'
{"metadata": {"total_size": 10000},
 "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                "model.norm.weight": "model-00002-of-00002.safetensors",
                "model.layers.0.mlp.up_proj.weight": "model-00001-of-00002.safetensors"}}
EOF
tree_json "$S" >"$HUB/api/models/test/sharded/tree/main"
printf 'sharded\ttest/sharded\tmain\tconfig.json,model.safetensors.index.json\t~10kB\tno\thf\t-\ttest\n' >"$T/catalogue.tsv"
MODELS_CATALOGUE=$T/catalogue.tsv fetch sharded --no-export
check "a sharded checkpoint: both shards named by the index arrive, verified" \
    '[ $rc = 0 ] && has "model-00001-of-00002.safetensors: sha256 ok" "model-00002-of-00002.safetensors: sha256 ok" &&
     cmp -s "$S/model-00002-of-00002.safetensors" "$M/sharded/model-00002-of-00002.safetensors"'

# ---- over HTTP: redirects, resume, gated repositories and HF_TOKEN ----
# A small hub: LFS files redirect to another host name (like the hub's CDN), ranges are
# served, and repositories under meta-llama/ need "Authorization: Bearer hf_test_token".
make_hub "$HUB" meta-llama/Llama-3.2-1B-Instruct
cat >"$T/server.py" <<'EOF'
import http.server, os, re, sys, threading
root, portfile, log = sys.argv[1:4]
threading.Timer(300, os._exit, (0,)).start()  # never outlive the test for long

class Hub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, headers=(), body=b""):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0].lstrip("/")
        auth = self.headers.get("Authorization", "")
        with open(log, "a") as f:
            f.write("%s %s %s\n" % (path, "auth" if auth else "noauth", self.headers.get("Range", "-")))
        if path.startswith("cdn/"):
            path = path[4:]
        else:
            if path.startswith(("meta-llama/", "api/models/meta-llama/")):
                if not auth:
                    return self.reply(401)
                if auth != "Bearer hf_test_token":
                    return self.reply(403)
            if "/resolve/" in path and path.endswith(".safetensors"):
                port = self.server.server_address[1]
                return self.reply(302, [("Location", "http://localhost:%d/cdn/%s" % (port, path))])
        full = os.path.join(root, path)
        if not os.path.isfile(full):
            return self.reply(404)
        data = open(full, "rb").read()
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if not m:
            return self.reply(200, body=data)
        start = int(m.group(1))
        if start >= len(data):
            return self.reply(416, [("Content-Range", "bytes */%d" % len(data))])
        self.reply(206, [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))], data[start:])

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
EOF
python3 "$T/server.py" "$HUB" "$T/port" "$T/http.log" 2>"$T/server.err" &
server_pid=$!
for _ in $(seq 50); do [ -f "$T/port" ] && break; sleep 0.1; done
if [ ! -f "$T/port" ]; then
    bad "HTTP checks: the local test server did not start ($(cat "$T/server.err"))"
else
    H=http://127.0.0.1:$(cat "$T/port")
    MODELS_DIR=$T/http HF_ENDPOINT=$H fetch "$NAME" --no-export
    check "over HTTP (with a CDN redirect): files arrive and are verified" \
        '[ $rc = 0 ] && has "model.safetensors: sha256 ok"'
    check "... intact" 'cmp -s "$FIXTURE/model.safetensors" "$T/http/$NAME/model.safetensors"'

    mv "$T/http/$NAME/model.safetensors" "$T/http/$NAME/model.safetensors.part"
    MODELS_DIR=$T/http HF_ENDPOINT=$H fetch "$NAME" --no-export
    check "over HTTP: a complete .part left behind (HTTP 416 on resume) is accepted" \
        '[ $rc = 0 ] && [ -f "$T/http/$NAME/model.safetensors" ]'
    rm "$T/http/$NAME/model.safetensors"
    head -c 123456 "$FIXTURE/model.safetensors" >"$T/http/$NAME/model.safetensors.part"
    MODELS_DIR=$T/http HF_ENDPOINT=$H fetch "$NAME" --no-export
    check "over HTTP: a partial .part is resumed with a range request" \
        '[ $rc = 0 ] && grep -q "model.safetensors noauth bytes=123456-$" "$T/http.log"'
    check "... and the resumed file is intact" 'cmp -s "$FIXTURE/model.safetensors" "$T/http/$NAME/model.safetensors"'

    MODELS_DIR=$T/http HF_ENDPOINT=$H fetch Llama-3.2-1B-Instruct --no-export
    check "gated repo without HF_TOKEN: fails, saying how to get access" \
        '[ $rc != 0 ] && has "gated" "export HF_TOKEN=" "settings/tokens"'
    HF_TOKEN=hf_wrong MODELS_DIR=$T/http HF_ENDPOINT=$H fetch Llama-3.2-1B-Instruct --no-export
    check "gated repo with a refused HF_TOKEN: says the token was refused" \
        '[ $rc != 0 ] && has "with your HF_TOKEN"'

    # A curl on PATH that logs its arguments, to see that the token is not among them.
    mkdir -p "$T/bin"
    printf '#!/bin/sh\necho "$*" >>"%s"\nexec "%s" "$@"\n' "$T/curl-args.log" "$(command -v curl)" >"$T/bin/curl"
    chmod +x "$T/bin/curl"
    : >"$T/http.log"
    PATH=$T/bin:$PATH HF_TOKEN=hf_test_token MODELS_DIR=$T/http HF_ENDPOINT=$H fetch Llama-3.2-1B-Instruct --no-export
    check "gated repo with HF_TOKEN: downloads and verifies" \
        '[ $rc = 0 ] && has "model.safetensors: sha256 ok"'
    check "... the token is sent to the hub" \
        'grep -q "^meta-llama/Llama-3.2-1B-Instruct/resolve/main/config.json auth " "$T/http.log"'
    check "... but not to the CDN host the hub redirects to" \
        'grep -q "^cdn/meta-llama/Llama-3.2-1B-Instruct/resolve/main/model.safetensors noauth " "$T/http.log"'
    check "... and is not on curl's command line (visible in ps)" \
        '[ -s "$T/curl-args.log" ] && ! grep -q hf_test_token "$T/curl-args.log"'
fi

# ---- the real export ----
MODELS_DIR=$T/real EXPORT=$ROOT/export fetch "$NAME"
if [ "$rc" = 0 ] && [ "$(head -c 4 "$T/real/$NAME.bin" 2>/dev/null)" = RUNC ]; then
    ok "real ./export turns the fetched checkpoint into $NAME.bin (magic RUNC)"
else
    bad "real ./export on the fetched checkpoint (exit $rc): $(tail -3 "$T/out" | tr '\n' ' ')"
fi

mkdir -p "$HUB/test/s260k/resolve/main" && cp "$L2C/stories260K.bin" "$HUB/test/s260k/resolve/main/"
printf 's260k\ttest/s260k\tmain\tstories260K.bin,tokenizer.bin=file://%s\t1MB\tno\tllama2c\t-\ttest\n' \
    "$L2C/tok512.bin" >"$T/catalogue.tsv"
MODELS_CATALOGUE=$T/catalogue.tsv MODELS_DIR=$T/real EXPORT=$ROOT/export fetch s260k
if [ "$rc" = 0 ] && [ "$(head -c 4 "$T/real/s260k.bin" 2>/dev/null)" = RUNC ]; then
    ok "real ./export turns a fetched llama2.c checkpoint + tokenizer.bin into s260k.bin"
else
    bad "real ./export on a fetched llama2.c checkpoint (exit $rc): $(tail -3 "$T/out" | tr '\n' ' ')"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
