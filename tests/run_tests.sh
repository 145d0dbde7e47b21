#!/usr/bin/env bash
# The test suite: `make test` runs it (and `make check-asan`, with SANITIZE set).
#
# Every check prints one line, "ok ...", "FAIL ..." or "SKIP ...", and the suite ends
# with "N passed, N failed, N skipped". Everything it reads is in the repository
# (tests/fixtures/); a missing file is a FAIL. The only skips name an optional tool that
# is absent (scikit-learn for the report comparison, curl for models/fetch). Nothing is
# installed.
#
# It builds into tests/build/suite/, emptied at the start of every run so that nothing
# left by an earlier run is tested (the other scripts keep their own folders under
# tests/build/: fuzz corpora, ports, valgrind).
set -u
cd "$(dirname "$0")/.."

BUILD=tests/build/suite
FIX=tests/fixtures
CC=${CC:-cc}
TEST_CFLAGS="-O2 -g -std=c11 -Wall -Wextra -Wno-unused-function -D_POSIX_C_SOURCE=200809L -fopenmp ${SANITIZE:-}"
rm -rf "$BUILD"
mkdir -p "$BUILD" || { echo "FAIL cannot create $BUILD"; exit 1; }
source tests/lib.sh

# Runs ./run expecting failure: a non-zero exit, no crash (status >= 128 = a signal,
# sanitizers exit with their own code and a report), and a message containing $1.
expect_error() {
    local what=$1 pattern=$2
    shift 2
    local out status
    out=$("$@" 2>&1 </dev/null)
    status=$?
    if [ "$status" -ne 0 ] && [ "$status" -lt 128 ] && ! grep -q 'Sanitizer' <<<"$out" &&
        grep -qi -- "$pattern" <<<"$out"; then
        ok "$what: $(head -n 1 <<<"$out")"
    else
        fail "$what (status $status): $out"
    fi
}

build_test() {
    $CC $TEST_CFLAGS -o "$BUILD/$1" "tests/$1.c" -lm || { fail "cannot build tests/$1.c"; return 1; }
}

# ---------------------------------------------------------------------------- build

echo "== building"
[ -x ./run ] || { echo "FAIL ./run is not built (make run)"; exit 1; }
for t in test_units test_model test_tokenizer test_report test_unicode header_fields; do build_test $t; done
# `make reference`'s program: only the plain loops of run.c (no section 7, no OpenMP),
# built with ./run's flags (the Makefile's, or check-asan's) so that only the loops differ.
REF_CFLAGS="-O3 -march=native -ffp-contract=fast"
[ -n "${SANITIZE:-}" ] && REF_CFLAGS="-O1 -g $SANITIZE"
$CC $REF_CFLAGS -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DREFERENCE -Wno-unknown-pragmas \
    -o "$BUILD/run-reference" run.c -lm || fail "cannot build the reference program (run.c -DREFERENCE)"

# Every export is a check of its own: a failing export is a FAIL here, not a missing
# file that the checks after it would report less clearly.
echo "== export the fixtures"
export_model() {  # name source [export options...]: writes $BUILD/name.bin
    local name=$1 src=$2
    shift 2
    if ./export -q "$@" "$src" "$BUILD/$name.bin" 2>"$BUILD/$name.export.log"; then
        ok "export $name"
    else
        fail "export $name: $(cat "$BUILD/$name.export.log")"
    fi
}
HF_MODELS="tiny-smollm2 tiny-untied-mha-f32 tiny-mqa-f16 tiny-llama3 tiny-qwen2"
for m in $HF_MODELS smollm2-vocab-tiny; do export_model $m "$FIX/hf/$m"; done
for m in $HF_MODELS; do export_model $m-q8_0 "$FIX/hf/$m" --dtype q8_0; done
# llama2.c's stories260K: the real trained model, once in llama2.c's own format and once
# converted to Hugging Face layout; both read llama2.c's tok512.bin tokenizer.
S260=$FIX/stories260K
export_model stories260K "$S260/stories260K.bin" --tokenizer "$S260/tok512.bin"
export_model stories260K-hf "$FIX/hf/stories260K-hf" --tokenizer "$S260/tok512.bin"
export_model stories260K-q8_0 "$S260/stories260K.bin" --tokenizer "$S260/tok512.bin" --dtype q8_0

# ---------------------------------------------------------------------------- units

echo "== units: sampler, UTF-8 streaming, chat templates"
if python3 tests/chat_renderings.py "$FIX/chat_templates/renderings.json" "$FIX/tokenizers/real-smollm2/cases.json" \
    >"$BUILD/renderings.tsv" 2>"$BUILD/renderings.log"; then
    ok "chat template renderings read ($(wc -l <"$BUILD/renderings.tsv") conversations)"
else
    fail "chat template renderings: $(cat "$BUILD/renderings.log")"
fi
python3 tests/utf8_replace.py >"$BUILD/utf8.tsv"  # Python's decode(errors="replace") of ill-formed UTF-8
count "$BUILD/test_units" "$BUILD/renderings.tsv" "$BUILD/utf8.tsv"

# ---------------------------------------------------------------------------- golden models

echo "== golden: logits and greedy ids against Hugging Face transformers"
for m in $HF_MODELS smollm2-vocab-tiny; do
    count "$BUILD/test_model" "$BUILD/$m.bin" "$FIX/hf/$m"
done
# smollm2-vocab-tiny is what puts the real SmolLM2 vocabulary under test.
if cmp -s "$FIX/hf/smollm2-vocab-tiny/tokenizer.json" "$FIX/tokenizers/real-smollm2/tokenizer.json" &&
    cmp -s "$FIX/hf/smollm2-vocab-tiny/tokenizer_config.json" "$FIX/tokenizers/real-smollm2/tokenizer_config.json"; then
    ok "smollm2-vocab-tiny has SmolLM2-135M-Instruct's own tokenizer.json and tokenizer_config.json"
else
    fail "smollm2-vocab-tiny's tokenizer files differ from SmolLM2-135M-Instruct's (tests/fixtures/tokenizers/real-smollm2)"
fi

echo "== golden: stories260K (llama2.c)"
count "$BUILD/test_model" "$BUILD/stories260K-hf.bin" "$FIX/hf/stories260K-hf"
count "$BUILD/test_model" "$BUILD/stories260K.bin" "$FIX/hf/stories260K-hf"
# llama2.c's own acceptance test: `run stories260K.bin -z tok512.bin -t 0.0 -n 200`
# ($(...) drops the final newline of both)
out=$(./run "$BUILD/stories260K.bin" -t 0 -n 200 --stats off 2>"$BUILD/stories260K.err")
status=$?
if [ "$status" -eq 0 ] && expected=$(cat "$S260/expected_greedy_200.txt") && [ -n "$out" ] && [ "$out" == "$expected" ]; then
    ok "stories260K -t 0 prints exactly llama2.c's expected_greedy_200.txt"
else
    fail "stories260K greedy output differs from llama2.c's: $out $(cat "$BUILD/stories260K.err")"
fi

# The same through the command line: ./run tokenizes the prompt text, generates
# greedily and dumps the logits of every position, which must match the reference.
echo "== golden through the CLI (tokenize, generate, --dump-logits)"
cli_golden() {  # model.bin fixture_dir
    python3 tests/cli_golden.py ./run "$1" "$2" "$BUILD"
}
for m in $HF_MODELS smollm2-vocab-tiny; do count cli_golden "$BUILD/$m.bin" "$FIX/hf/$m"; done
count python3 tests/test_generation.py ./run ./export "$FIX/hf" "$BUILD"  # low temperature, seeds, stop ids, chat's KV cache

# ---------------------------------------------------------------------------- q8_0

echo "== the plain reference loops against the fast kernels"
for m in $HF_MODELS; do
    count python3 tests/test_reference.py ./run "$BUILD/run-reference" "$BUILD/$m.bin" "$FIX/hf/$m" "$BUILD"
    count python3 tests/test_reference.py ./run "$BUILD/run-reference" "$BUILD/$m-q8_0.bin" "$FIX/hf/$m" "$BUILD" q8_0
done

echo "== q8_0 against f32 (teacher-forced on the reference texts)"
for m in $HF_MODELS; do
    count python3 tests/quant_accuracy.py ./run "$BUILD/$m.bin" "$BUILD/$m-q8_0.bin" "$FIX/hf/$m" "$BUILD" --measured
    count "$BUILD/test_model" "$BUILD/$m-q8_0.bin" "$FIX/hf/$m" consistency
done
f32=$(./run "$BUILD/stories260K.bin" -m perplexity -i "$S260/expected_greedy_200.txt" 2>&1 | tail -n 1)
q8=$(./run "$BUILD/stories260K-q8_0.bin" -m perplexity -i "$S260/expected_greedy_200.txt" 2>&1 | tail -n 1)
if python3 -c "import sys; a, b = (float(x.split()[-1]) for x in sys.argv[1:]); sys.exit(abs(b - a) > 0.02 * a)" \
    "$f32" "$q8" 2>/dev/null; then
    ok "stories260K q8_0 perplexity within 2% of f32 on llama2.c's text (f32: ${f32##* }, q8_0: ${q8##* })"
else
    fail "stories260K q8_0 perplexity not within 2% of f32 (f32: $f32; q8_0: $q8)"
fi

# ---------------------------------------------------------------------------- tokenizer

echo "== tokenizer: encode/decode against Hugging Face tokenizers"
count "$BUILD/test_unicode"
count "$BUILD/test_tokenizer" "$BUILD/tiny-smollm2.bin" "$FIX/tokenizers/tiny-gpt2"
count "$BUILD/test_tokenizer" "$BUILD/tiny-llama3.bin" "$FIX/tokenizers/tiny-llama3"
count "$BUILD/test_tokenizer" "$BUILD/tiny-qwen2.bin" "$FIX/tokenizers/tiny-qwen2"
count "$BUILD/test_tokenizer" "$BUILD/smollm2-vocab-tiny.bin" "$FIX/tokenizers/real-smollm2"
count "$BUILD/test_tokenizer" "$FIX/tokenizers/real-llama2/tokenizer.bin" "$FIX/tokenizers/real-llama2" --no-chat
count python3 tests/test_tokenizer_unicode.py ./run "$BUILD" "$FIX/hf"  # \p{N} beyond ASCII, NFC's blocking

# ---------------------------------------------------------------------------- evaluation

# classify, --batch and perplexity on the tiny SmolLM2 model; the report against
# scikit-learn's classification_report, character for character.
echo "== evaluation: classification report vs scikit-learn, classify, batch, perplexity"
count bash tests/report_sklearn.sh "$BUILD"
count python3 tests/test_eval.py ./run "$BUILD/tiny-smollm2.bin"

echo "== the command line: errors, exit codes, chat commands, settings, --info, --pieces"
count python3 tests/test_cli.py ./run "$BUILD/tiny-smollm2.bin" "$FIX/hf/tiny-smollm2" "$BUILD"

# ---------------------------------------------------------------------------- bad input

echo "== bad input: clear errors, non-zero exit, no crash"
bad="$BUILD/bad"
mkdir -p "$bad"
good="$BUILD/tiny-smollm2.bin"
expect_error "missing file" "cannot open" ./run "$bad/does-not-exist.bin" -i hi
head -c 1000 "$good" >"$bad/truncated.bin"
expect_error "truncated file" "truncated" ./run "$bad/truncated.bin" -i hi
head -c 100 "$good" >"$bad/tiny.bin"
expect_error "file shorter than a header" "too small" ./run "$bad/tiny.bin" -i hi
patch_file() {  # out field value: $good with one header field changed, its checksum kept valid
    python3 tests/header.py "$good" "$@" || fail "cannot patch header field $2 into $1"
}
patch_file "$bad/magic.bin" magic 0x46554747
expect_error "wrong magic" "magic" ./run "$bad/magic.bin" -i hi
patch_file "$bad/version.bin" version 99
expect_error "wrong version" "version" ./run "$bad/version.bin" -i hi
patch_file "$bad/vocab.bin" vocab_size 2147483648
expect_error "vocab size 2^31" "vocab_size" ./run "$bad/vocab.bin" -i hi
patch_file "$bad/heads.bin" n_kv_heads 3
expect_error "kv heads that do not divide heads" "n_kv_heads" ./run "$bad/heads.bin" -i hi
count python3 tests/test_header_ranges.py ./run "$good" "$BUILD"  # every range FORMAT.md states; --verify
patch_file "$bad/merges.bin" n_merges 4000000  # n_merges: a merge table far past the end of the file
expect_error "a table that runs past the end of the file" "outside the file" ./run "$bad/merges.bin" -i hi
patch_file "$bad/crc.bin" meta_crc32 12345
expect_error "corrupt header checksum" "checksum" ./run "$bad/crc.bin" -i hi
cp "$good" "$bad/weights.bin"
printf '\x7f' | dd of="$bad/weights.bin" bs=1 seek=$(($(stat -c %s "$good") - 3)) conv=notrunc status=none
expect_error "corrupt weights found by --verify" "checksum" ./run "$bad/weights.bin" --verify
expect_error "prompt longer than the context" "longer than the context" ./run "$good" -m generate -c 8 \
    -i "Once upon a time, in a small village near Groningen, there lived a cat."
expect_error "invalid UTF-8 prompt" "UTF-8" ./run "$good" -m generate -i $'abc\xff'
expect_error "unknown option" "unknown option" ./run "$good" --frobnicate 1
expect_error "bad number" "expects" ./run "$good" -t hot
expect_error "context above the model's maximum" "exceeds" ./run "$good" -c 100000 -i hi

echo "== Ctrl-C, closed stdout, context limits"
mkdir -p "$BUILD/longctx"
cp "$FIX"/hf/tiny-smollm2/* "$BUILD/longctx/"
python3 -c "import json, sys; c = json.load(open(sys.argv[1])); c['max_position_embeddings'] = 16384
json.dump(c, open(sys.argv[1], 'w'))" "$BUILD/longctx/config.json"
export_model longctx "$BUILD/longctx"
count python3 tests/interrupt.py ./run "$BUILD/longctx.bin" "$BUILD/tiny-smollm2.bin"
count python3 tests/eval_interrupt.py ./run "$BUILD/longctx.bin"

echo "== export: refuses what it does not support"
count bash tests/test_export.sh
count python3 tests/test_format.py ./run "$BUILD/header_fields" "$BUILD"  # FORMAT.md, export, run.c: one set of limits

echo "== the Makefile: rebuilds when the compiler changes, builds without OpenMP, cleans"
count bash tests/test_make.sh

echo "== GGUF import (export MODEL.gguf) and models/fetch ollama:NAME"
count python3 tests/test_gguf.py "$BUILD"
count python3 tests/test_export_defaults.py ./export "$BUILD/test_model" "$FIX/hf" "$BUILD"  # keys left out of config.json

# models/fetch against a fake hub: file:// URLs and an HTTP server on 127.0.0.1.
echo "== models/fetch (offline, local hub)"
count bash tests/test_models_fetch.sh

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
