#!/usr/bin/env bash
# make bench: speed of ./run on a SmolLM2-135M-shaped model with random weights.
#
#   1. bench/make_random_model.py writes the HF checkpoint bench/build/hf (once)
#   2. ./export makes bench/build/random-f32.bin and random-q8_0.bin (again only when
#      ./export or the checkpoint is newer); a failing q8_0 export is reported and skipped
#   3. builds bench/bandwidth (memory read bandwidth, 1 and N threads)
#   4. bench/bench.py times ./run (OMP_NUM_THREADS = each of BENCH_THREADS), running
#      bench/bandwidth before, between and after the timings, and prints the table
#
# A benchmark, not a test: it never fails because of a number, only when something is
# broken (./run or the f32 export fails). Environment: BENCH_THREADS (default "1 2"),
# BENCH_RUNS (default 3), BENCH_CONTEXT (default 1024), CC, CFLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."

B=bench/build
THREADS=${BENCH_THREADS:-1 2}
RUNS=${BENCH_RUNS:-3}
CONTEXT=${BENCH_CONTEXT:-1024}
CC=${CC:-cc}
CFLAGS=${CFLAGS:--O3 -march=native}
start=$(date +%s)
mkdir -p "$B"

[ -x ./run ] || { echo "bench: ./run is missing (make run)" >&2; exit 1; }

echo "== run.c benchmark =="
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
cores=$(lscpu 2>/dev/null | awk -F: '/^Core\(s\) per socket/ {c=$2} /^Socket\(s\)/ {s=$2} END {print c*s}')
l3=$(lscpu 2>/dev/null | sed -n 's/^L3 cache: *//p' | head -1)
echo "machine: ${model:-unknown CPU}, ${cores:-?} cores, $(nproc) CPUs online, L3 ${l3:-?}," \
     "$(awk '/MemTotal/ {printf "%.1f GB RAM", $2/1e6}' /proc/meminfo)"
echo "tree:    $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u '+%Y-%m-%d %H:%M UTC')"
load=$(cut -d' ' -f1 /proc/loadavg)
echo "load:    $load (1-minute load average before the benchmark)"
if awk -v l="$load" 'BEGIN {exit !(l > 0.5)}'; then
    echo "warning: the machine is not idle; other processes skew these numbers"
fi

# 1. The random checkpoint.
if [ ! -f "$B/hf/model.safetensors" ] || [ bench/make_random_model.py -nt "$B/hf/model.safetensors" ]; then
    python3 bench/make_random_model.py "$B/hf"
else
    echo "checkpoint: $B/hf (reused)"
fi

# 2. The model files.
files=()
for dtype in f32 q8_0; do
    out="$B/random-$dtype.bin"
    if [ -f "$out" ] && [ "$out" -nt ./export ] && [ "$out" -nt "$B/hf/model.safetensors" ]; then
        echo "export $dtype: $out (reused)"
    else
        t0=$(date +%s)
        if ./export -q --dtype "$dtype" "$B/hf" "$out" 2>"$B/export-$dtype.log"; then
            echo "export $dtype: $out ($(( $(date +%s) - t0 )) s)"
        else
            rm -f "$out"
            msg=$(tail -n 1 "$B/export-$dtype.log")
            if [ "$dtype" = f32 ]; then
                echo "bench: ./export --dtype f32 failed: $msg" >&2
                exit 1
            fi
            echo "export $dtype: FAILED ($msg); $dtype is not benchmarked"
            continue
        fi
    fi
    files+=("$dtype=$out")
done

# 3. The bandwidth program.
if [ ! -x "$B/bandwidth" ] || [ bench/bandwidth.c -nt "$B/bandwidth" ]; then
    # shellcheck disable=SC2086
    $CC $CFLAGS -std=c11 -Wall -Wextra -fopenmp -o "$B/bandwidth" bench/bandwidth.c
fi

# 4. bandwidth and ./run in turn, the table.
python3 bench/bench.py --run ./run --threads "$THREADS" --bandwidth-bin "$B/bandwidth" \
    --context "$CONTEXT" --runs "$RUNS" "${files[@]}"

echo
echo "load:    $(cut -d' ' -f1 /proc/loadavg) (1-minute load average after)"
echo "bench: done in $(( $(date +%s) - start )) s"
