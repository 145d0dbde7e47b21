#!/usr/bin/env bash
# ./run end to end under valgrind memcheck: `make check-valgrind`.
#
# Builds tests/build/run-valgrind (-O1 -g, no -march=native: valgrind does not decode
# AVX-512; no OpenMP: libgomp's thread pool would only add noise), exports tiny
# fixtures, and runs generate, a two-turn chat, tokenize, perplexity and --verify under
#   valgrind --error-exitcode=99 --leak-check=full
# (definite and possible leaks count as errors; memory still reachable at exit does
# not). Prints one ok/FAIL line per case, then "N passed, N failed".
set -u
cd "$(dirname "$0")/.."

B=tests/build/valgrind
FIX=tests/fixtures/hf
CC=${CC:-cc}
mkdir -p "$B"
passed=0 failed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

if ! command -v valgrind >/dev/null; then
    echo "== installing valgrind"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >"$B/apt.log" 2>&1 ||
        { fail "valgrind is not installed and cannot be installed"; finish; }
fi

echo "== build and export"
RUN=tests/build/run-valgrind
if $CC -O1 -g -std=c11 -Wall -Wextra -Wshadow -D_POSIX_C_SOURCE=200809L -o "$RUN" run.c -lm 2>"$B/build.log"; then
    ok "build $RUN"
else
    cat "$B/build.log"
    fail "build $RUN"
    finish
fi
for spec in "tiny-smollm2 f32" "tiny-qwen2 q8_0" "tiny-llama3 q8_0"; do
    set -- $spec
    if ./export -q --dtype "$2" "$FIX/$1" "$B/$1-$2.bin" 2>"$B/export.log"; then
        ok "export $1 ($2)"
    else
        fail "export $1 ($2): $(cat "$B/export.log")"
    fi
done

# vg NAME STDIN ARGS...: runs $RUN ARGS under valgrind with STDIN as its input
vg() {
    local name=$1 input=$2
    shift 2
    local log="$B/${name// /_}.log"
    printf '%s' "$input" | valgrind --error-exitcode=99 --leak-check=full --track-origins=yes \
        --log-file="$log.vg" "$RUN" "$@" >"$log" 2>&1
    local status=$?
    local summary
    summary=$(grep -E 'ERROR SUMMARY' "$log.vg" | sed 's/^==[0-9]*== //')
    if [ "$status" -eq 0 ]; then
        ok "valgrind: $name ($summary)"
    else
        grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|[0-9,]+ bytes in|   at|   by)' "$log.vg" | head -n 12
        tail -n 3 "$log"
        fail "valgrind: $name (status $status; $summary; see $log.vg)"
    fi
}

echo "== valgrind memcheck"
S=$B/tiny-smollm2-f32.bin Q=$B/tiny-qwen2-q8_0.bin L=$B/tiny-llama3-q8_0.bin
long="Once upon a time, in a small village near Groningen, there lived a cat who liked to count \
the boats on the canal: one, two, three, four. Every evening she sat on the bridge and watched."
vg "generate f32, sampling, prompt in two prefill blocks" "" "$S" -m generate -i "$long" -n 12 -t 0.8 -k 40 -p 0.9 -s 7
vg "generate q8_0 greedy (Qwen2: NFC, biases)" "" "$Q" -m generate -i "Caf$(printf 'e\xcc\x81') au lait $long" -n 12 -t 0
vg "generate q8_0 (Llama 3 RoPE) to the end of a small context" "" "$L" -m generate -i "Hello" -n -1 -c 24 --ignore-eos -t 0
vg "chat, two turns (ChatML, KV cache kept)" $'And the second turn?\n' "$S" -m chat -i "Where is Groningen located?" -n 10 -t 0
vg "chat with a system prompt, two turns, json stats" $'more\n' "$Q" -m chat -y "Be brief." -i "Hi" -n 6 -t 0.5 -s 3 --stats json
vg "tokenize" "" "$S" -m tokenize -i "Where is Groningen located? 123 caf$(printf '\xc3\xa9')"
printf '%s\n' "$long" >"$B/text.txt"
vg "perplexity" "" "$S" -m perplexity -i "$B/text.txt"
vg "verify" "" "$Q" --verify

# the error paths end the program early: still no invalid access (status 1, not 99)
head -c 3000 "$S" >"$B/truncated.bin"
printf '' | valgrind --error-exitcode=99 --leak-check=full --log-file="$B/truncated.log.vg" \
    "$RUN" "$B/truncated.bin" -i hi >/dev/null 2>&1
status=$?
if [ "$status" -eq 1 ]; then ok "valgrind: truncated model file gives a clean error"; else fail "valgrind: truncated file (status $status; see $B/truncated.log.vg)"; fi
printf '' | valgrind --error-exitcode=99 --log-file="$B/utf8.log.vg" "$RUN" "$S" -m generate -i $'abc\xff' >/dev/null 2>&1
status=$?
if [ "$status" -eq 1 ]; then ok "valgrind: invalid UTF-8 prompt gives a clean error"; else fail "valgrind: invalid UTF-8 (status $status; see $B/utf8.log.vg)"; fi

finish
