#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined).
#
#   tests/fuzz/run.sh [TARGET...]       (make fuzz FUZZ_SECONDS=N runs them all)
#
# FUZZ_SECONDS   seconds per target (default 60)
# FUZZ_BUILD     where binaries, models, corpora and findings go (default tests/build/fuzz)
#
# Installs clang and libFuzzer from Debian (clang, libclang-rt-dev) when `clang
# -fsanitize=fuzzer` does not link. Makes the model files with make_models.py, builds
# each target, and runs it from its seeds (tests/fuzz/corpus/TARGET, and the model
# files for fuzz_load) plus the corpus earlier runs grew (FUZZ_BUILD/corpus/TARGET).
# Prints one ok/FAIL line per target with its number of runs and seconds, then
# "N passed, N failed"; exits non-zero on a finding, which libFuzzer saves as
# FUZZ_BUILD/crash-*, leak-*, timeout-* or oom-*. Reproduce one with
#   FUZZ_MODELS=FUZZ_BUILD/models FUZZ_BUILD/TARGET FILE
set -u
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
B=${FUZZ_BUILD:-tests/build/fuzz}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_load fuzz_encode fuzz_decode fuzz_chat)
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

passed=0 failed=0
for t in "${TARGETS[@]}"; do
    if ! "$CLANG" $CFLAGS -o "$B/$t" "tests/fuzz/$t.c" -lm 2>"$B/$t.build.log"; then
        cat "$B/$t.build.log"
        echo "FAIL $t: does not build"
        failed=$((failed + 1))
        continue
    fi
    seeds=()
    for d in "tests/fuzz/corpus/$t" "$B/seeds/$t"; do [ -d "$d" ] && seeds+=("$d"); done
    case $t in
        fuzz_load) opts=(-max_len=262144 -timeout=60) ;;
        fuzz_encode | fuzz_chat) opts=(-max_len=4096 -timeout=30 -dict=tests/fuzz/text.dict) ;;
        *) opts=(-max_len=4096 -timeout=30) ;;
    esac
    mkdir -p "$B/corpus/$t"
    start=$SECONDS
    "$B/$t" "$B/corpus/$t" "${seeds[@]}" "${opts[@]}" -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$B/" >"$B/$t.log" 2>&1
    status=$?
    took=$((SECONDS - start))
    runs=$(grep -o 'number_of_executed_units: [0-9]*' "$B/$t.log" | grep -o '[0-9]*$' | tail -n 1)
    corpus=$(ls "$B/corpus/$t" | wc -l)
    if [ "$status" -eq 0 ]; then
        echo "ok $t: ${runs:-?} runs in ${took} s, no finding (corpus: $corpus inputs)"
        passed=$((passed + 1))
    else
        artifact=$(grep -o "Test unit written to .*" "$B/$t.log" | sed 's/Test unit written to //' | tail -n 1)
        grep -E 'fuzz check failed|ERROR: |runtime error|SUMMARY' "$B/$t.log" | head -n 5 | sed 's/^/    /'
        echo "FAIL $t (status $status) after ${runs:-?} runs in ${took} s: ${artifact:-no input saved; see $B/$t.log}" \
             "(reproduce: FUZZ_MODELS=$B/models $B/$t ${artifact:-FILE})"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
