#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined).
#
#   tests/fuzz/run.sh [TARGET...]           (make fuzz FUZZ_SECONDS=N runs them all)
#   tests/fuzz/run.sh --merge [TARGET...]   minimise the corpus into tests/fuzz/corpus/
#
# FUZZ_SECONDS   seconds per target (default 60)
# FUZZ_BUILD     where binaries, models, corpora and findings go (default tests/build/fuzz)
#
# Installs clang and libFuzzer from Debian (clang, libclang-rt-dev) when `clang
# -fsanitize=fuzzer` does not link. Makes the model files with make_models.py, builds
# each target, and runs it from the committed corpus (tests/fuzz/corpus/TARGET: seeds,
# regressions, and what earlier runs found, minimised), the model files for fuzz_load,
# and what the runs in FUZZ_BUILD found since (FUZZ_BUILD/corpus/TARGET, where new
# inputs go). Prints one ok/FAIL line per target with its number of runs, seconds and
# coverage (libFuzzer's cov: edges, ft: features) at the start and the end, then
# "N passed, N failed"; exits non-zero on a finding, which libFuzzer saves as
# FUZZ_BUILD/crash-*, leak-*, timeout-* or oom-*. Reproduce one with
#   FUZZ_MODELS=FUZZ_BUILD/models FUZZ_BUILD/TARGET FILE
#
# So that coverage accumulates from run to run, a maintainer keeps what a long run
# found (docs/robustness.md):
#   make fuzz FUZZ_SECONDS=600 && bash tests/fuzz/run.sh --merge
#   git add tests/fuzz/corpus && git commit
# --merge runs libFuzzer's -merge=1 over the committed corpus and FUZZ_BUILD/corpus:
# the smallest set of inputs with the same coverage replaces the SHA-1-named files of
# tests/fuzz/corpus/TARGET (regression-* files always stay), and FUZZ_BUILD/corpus is
# emptied (its inputs are now in the committed corpus; fuzz_load's large ones stay, see
# committed_max).
set -u
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
B=${FUZZ_BUILD:-tests/build/fuzz}
MERGE=0
if [ "${1:-}" = --merge ]; then
    MERGE=1
    shift
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_load fuzz_encode fuzz_decode fuzz_chat fuzz_batch fuzz_classify)
CLANG=${CLANG:-clang}
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
        -std=c11 -Wall -Wextra -Wno-unused-function -D_GNU_SOURCE"
mkdir -p "$B"

links() {
    printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
        >"$B/probe.c"
    "$CLANG" -fsanitize=fuzzer,address,undefined "$B/probe.c" -o "$B/probe" 2>/dev/null
}
if ! links; then
    echo "== installing clang and libFuzzer (Debian packages clang, libclang-rt-dev)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-dev; } >"$B/apt.log" 2>&1
    if ! links; then
        tail -n 5 "$B/apt.log"
        echo "FAIL fuzz: $CLANG -fsanitize=fuzzer does not link, and installing clang did not help"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

echo "== models for the fuzz targets (make_models.py)"
if ! python3 tests/fuzz/make_models.py "$B/models" >"$B/models.log" 2>&1; then
    cat "$B/models.log"
    echo "FAIL fuzz: cannot make the model files"
    echo "0 passed, 1 failed"
    exit 1
fi
mkdir -p "$B/seeds/fuzz_load"
cp "$B"/models/*.bin "$B/seeds/fuzz_load/"
export FUZZ_MODELS="$B/models"

# libFuzzer's options for target $1: the longest input (long enough for several long
# chat messages or batch lines), a dictionary, the time one input may take.
options() {
    case $1 in
        fuzz_load) echo -max_len=262144 -timeout=60 ;;
        fuzz_encode) echo -max_len=8192 -timeout=30 -dict=tests/fuzz/text.dict ;;
        fuzz_decode) echo -max_len=8192 -timeout=30 ;;
        fuzz_chat) echo -max_len=16384 -timeout=30 -dict=tests/fuzz/text.dict ;;
        fuzz_batch) echo -max_len=16384 -timeout=30 -dict=tests/fuzz/json.dict ;;
        fuzz_classify) echo -max_len=16384 -timeout=30 -dict=tests/fuzz/tsv.dict ;;
    esac
}

count() { find "$1" -maxdepth 1 -type f | wc -l; }

# cov: and ft: of the last libFuzzer status line with the given tag (INITED, DONE)
coverage() {
    grep -E "#[0-9]+[[:space:]]+$2 " "$1" | tail -n 1 | grep -oE '(cov|ft): [0-9]+' | tr '\n' ' ' | sed 's/ $//'
}

# One target's run: ok with its numbers, or FAIL with what libFuzzer found.
fuzz_one() {
    local t=$1 log=$B/$1.log
    mkdir -p "$B/corpus/$t"
    local seeds=("tests/fuzz/corpus/$t")
    [ -d "$B/seeds/$t" ] && seeds+=("$B/seeds/$t")
    local start=$SECONDS
    # shellcheck disable=SC2046
    "$B/$t" "$B/corpus/$t" "${seeds[@]}" $(options "$t") -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$B/" >"$log" 2>&1
    local status=$? took=$((SECONDS - start))
    local runs
    runs=$(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    if [ "$status" -eq 0 ]; then
        echo "ok $t: ${runs:-?} runs in ${took} s, no finding; $(coverage "$log" INITED) at the start," \
             "$(coverage "$log" DONE) at the end (new inputs: $(count "$B/corpus/$t"))"
        return 0
    fi
    local artifact
    artifact=$(grep -o "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -n 1)
    grep -E 'fuzz check failed|ERROR: |runtime error|SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
    echo "FAIL $t (status $status) after ${runs:-?} runs in ${took} s: ${artifact:-no input saved; see $log}" \
         "(reproduce: FUZZ_MODELS=$B/models $B/$t ${artifact:-FILE})"
    return 1
}

# The largest input --merge commits. fuzz_load's inputs are model files, up to 115 KB of
# random weights that do not compress: the 200 or so a long run keeps would be 5 MB, so
# only those up to 16 KB (mutated headers and tokenizer tables of the smallest models)
# are committed, and the larger ones stay in FUZZ_BUILD/corpus.
committed_max() {
    if [ "$1" = fuzz_load ]; then echo 16384; else echo 1000000; fi
}

# --merge for one target: the committed corpus and FUZZ_BUILD/corpus, minimised into
# tests/fuzz/corpus (fuzz_load's model files count for coverage but are not kept).
merge_one() {
    local t=$1 into=$B/merged/$1 log=$B/$1.merge.log
    rm -rf "$into"
    mkdir -p "$into" "$B/corpus/$t"
    [ -d "$B/seeds/$t" ] && cp "$B/seeds/$t"/* "$into/"
    # shellcheck disable=SC2046
    if ! "$B/$t" -merge=1 "$into" "tests/fuzz/corpus/$t" "$B/corpus/$t" $(options "$t") \
        -rss_limit_mb=2048 -artifact_prefix="$B/" >"$log" 2>&1; then
        tail -n 5 "$log"
        echo "FAIL $t: the merge failed (see $log)"
        return 1
    fi
    local f before after kept
    for f in "$B/seeds/$t"/*; do rm -f "$into/$(basename "$f")"; done
    before=$(count "tests/fuzz/corpus/$t")
    find "tests/fuzz/corpus/$t" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
    kept=$(sha1sum "tests/fuzz/corpus/$t"/regression-* 2>/dev/null)
    rm -rf "$B/corpus/$t"
    mkdir -p "$B/corpus/$t"
    for f in "$into"/*; do   # (named by the SHA-1 of their content; a regression-* file stays as it is)
        [ -e "$f" ] || continue
        grep -q "^$(basename "$f") " <<<"$kept" && continue
        if [ "$(stat -c %s "$f")" -le "$(committed_max "$t")" ]; then
            cp "$f" "tests/fuzz/corpus/$t/"
        else
            cp "$f" "$B/corpus/$t/"
        fi
    done
    after=$(count "tests/fuzz/corpus/$t")
    echo "ok $t: merged, tests/fuzz/corpus/$t has $after inputs (had $before)," \
         "$(du -sk "tests/fuzz/corpus/$t" | cut -f1) KB; $(grep -oE 'MERGE-OUTER: [0-9]+ new files.*' "$log" | tail -n 1)"
}

passed=0 failed=0
for t in "${TARGETS[@]}"; do
    if ! "$CLANG" $CFLAGS -o "$B/$t" "tests/fuzz/$t.c" -lm 2>"$B/$t.build.log"; then
        cat "$B/$t.build.log"
        echo "FAIL $t: does not build"
        failed=$((failed + 1))
        continue
    fi
    action=fuzz_one
    [ "$MERGE" -eq 1 ] && action=merge_one
    if "$action" "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
