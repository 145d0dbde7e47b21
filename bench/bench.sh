#!/usr/bin/env bash
# make bench: speed of ./run on a SmolLM2-135M-shaped model with random weights.
#
#   1. bench/make_random_model.py writes the HF checkpoint bench/build/hf (once)
#   2. ./export makes bench/build/random-f32.bin and random-q8_0.bin (again only when
#      ./export or the checkpoint is newer); a failing q8_0 export is reported and skipped
#   3. builds run once per compiler of BENCH_COMPILERS (bench/build/run-gcc, run-clang:
#      the command `make run` uses, with CC set), installing clang (Debian package
#      clang, libomp-dev for its OpenMP) when it is missing; a compiler that cannot be
#      had is reported and left out
#   4. builds bench/bandwidth (memory read bandwidth, 1 and N threads) and bench/peak
#      (multiply-add peak, 1 and N threads) with each compiler, and runs bench/peak: with
#      run's flags, and with -mprefer-vector-width=512 added where the compiler takes it
#      (the machine's peak on AVX-512 CPUs, for which compilers otherwise pick 256 bits)
#   5. bench/bench.py times each run binary (OMP_NUM_THREADS = each of BENCH_THREADS),
#      running bench/bandwidth before, between and after the timings, and prints the
#      tables: prefill as a share of the peak, generation of the bandwidth ceiling
#
# A benchmark, not a test: it never fails because of a number, only when something is
# broken (a build, run or the f32 export fails). Environment: BENCH_THREADS (default
# "1 2"), BENCH_COMPILERS (default "gcc clang"), BENCH_RUNS (default 3), BENCH_CONTEXT
# (default 1024), BENCH_DEADLINE (seconds of timings after which each measurement is
# one run; default 150), BENCH_BASELINE (a commit to time beside this tree), CFLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."

B=bench/build
THREADS=${BENCH_THREADS:-1 2}
RUNS=${BENCH_RUNS:-3}
CONTEXT=${BENCH_CONTEXT:-1024}
COMPILERS=${BENCH_COMPILERS:-gcc clang}
DEADLINE=${BENCH_DEADLINE:-150}
start=$(date +%s)
mkdir -p "$B"
# Ctrl-C stops every step (a run, an export, a build): say so, rather than report the
# step that was stopped as broken.
trap 'echo; echo "make bench: interrupted (Ctrl-C); the numbers so far are above" >&2; exit 130' INT

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

# 3. run, once per compiler. A compiler builds it only if it also builds an OpenMP
# program (clang needs libomp-dev for that).
omp_ok() {
    printf '#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n' >"$B/omp-check.c"
    "$1" -fopenmp -o "$B/omp-check" "$B/omp-check.c" >/dev/null 2>&1
}
runs=()
for cc in $COMPILERS; do
    if ! omp_ok "$cc" && [ "$cc" = clang ]; then
        echo "clang: not found (or without OpenMP); installing the Debian packages clang and libomp-dev"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libomp-dev; } \
            >"$B/apt.log" 2>&1 || tail -n 3 "$B/apt.log"
    fi
    if ! omp_ok "$cc"; then
        echo "$cc: absent (or cannot build an OpenMP program): not benchmarked"
        continue
    fi
    # the command `make run` runs with CC=$cc (whatever the Makefile's flags are today),
    # writing bench/build/run-$cc instead of ./run
    cmd=$(make -s -n -B run CC="$cc" | grep -e ' -o run ' | tail -n 1)
    [ -n "$cmd" ] || { echo "bench: cannot find the compile command in make -n run" >&2; exit 1; }
    eval "${cmd/ -o run / -o $B/run-$cc }"
    echo "$cc: $B/run-$cc ($("$cc" --version | head -n 1))"
    runs+=("$cc=$B/run-$cc")
    # BENCH_BASELINE=REV: the same program at an earlier commit, built by that commit's
    # own Makefile, timed in the same sitting (rows "gcc@REV"), for before/after tables.
    if [ -n "${BENCH_BASELINE:-}" ]; then
        base="$B/baseline"
        [ -d "$base" ] || git worktree add -q --detach "$base" "$BENCH_BASELINE"
        git -C "$base" checkout -q --detach "$BENCH_BASELINE"
        rm -f "$base/run" && make -s -C "$base" run CC="$cc" >/dev/null
        cp "$base/run" "$B/run-$cc-base"
        runs+=("$cc@$BENCH_BASELINE=$B/run-$cc-base")
    fi
done
[ ${#runs[@]} -gt 0 ] || { echo "bench: no compiler builds run" >&2; exit 1; }

# 4. bandwidth and the multiply-add peak. The peak counts the best of every compiler
# and flag set: the machine's, not one compiler's.
first=${runs[0]%%=*}
flags=${CFLAGS:--O3 -march=native -ffp-contract=fast}   # the Makefile's CFLAGS
# shellcheck disable=SC2086
"$first" $flags -std=c11 -Wall -Wextra -fopenmp -o "$B/bandwidth" bench/bandwidth.c
echo "multiply-add peak (bench/peak: 16-lane multiply-add chains in registers, best of 5 passes):"
peaks=""
for r in "${runs[@]}"; do
    cc=${r%%=*}
    [[ $cc == *@* ]] && continue  # a BENCH_BASELINE build: the same compiler as its row
    # run's own flags (the Makefile's CFLAGS and the vector width it adds where taken),
    # then the widest vectors, unless run's flags ask for them already
    own=$(make -s -n -B run CC="$cc" | grep -o -e '-mprefer-vector-width=[0-9]*' | head -n 1 || true)
    variants=("$own")
    # shellcheck disable=SC2086
    if [ "$own" != -mprefer-vector-width=512 ] &&
        "$cc" $flags -mprefer-vector-width=512 -E -x c /dev/null >/dev/null 2>&1; then
        variants+=(-mprefer-vector-width=512)
    fi
    for i in "${!variants[@]}"; do
        wide=${variants[$i]}
        # shellcheck disable=SC2086
        "$cc" $flags $wide -std=c11 -Wall -Wextra -fopenmp -o "$B/peak-$cc" bench/peak.c
        out=$("$B/peak-$cc" 0.05 2>/dev/null)
        # tagged "gcc:1:63.2" for run's flags, "*:1:117.0" for the widest vectors
        if [ "$i" = 0 ]; then how="with run's flags${wide:+ ($wide)}" tag=$cc; else how=$wide tag='*'; fi
        echo "$out" | sed "s/^/  $cc $how: /"
        peaks+=$(echo "$out" | sed -n "s/^threads=\([0-9]*\) GMACs=\([0-9.]*\).*/$tag:\1:\2,/p" | tr -d '\n')
    done
done

# 5. bandwidth and run in turn, the tables.
python3 bench/bench.py --threads "$THREADS" --bandwidth-bin "$B/bandwidth" \
    --context "$CONTEXT" --runs "$RUNS" --deadline "$DEADLINE" --peak "$peaks" \
    "${runs[@]/#/--run=}" "${files[@]}"

echo
echo "load:    $(cut -d' ' -f1 /proc/loadavg) (1-minute load average after)"
echo "bench: done in $(( $(date +%s) - start )) s"
