#!/usr/bin/env bash
# Compilers, standards and static analysis (`make lint`):
#
#   1. run.c and the test programs (tests/test_*.c) build with gcc and clang, with and
#      without OpenMP, at the Makefile's warning flags (WARN; see the Makefile for the
#      set and why), with zero warnings;
#   2. cppcheck finds nothing (warning, style, portability, performance) in the POSIX
#      and the Windows configuration, on 64-bit and 32-bit platforms; suppressions with
#      their reasons: tests/ports/cppcheck-suppressions.txt;
#   3. clang-tidy finds nothing with the checks of tests/ports/clang-tidy.yaml
#      (bugprone, the clang static analyzer, CERT, portability; exclusions justified there).
#
# Installs gcc, clang, libomp-dev (clang's OpenMP), cppcheck and clang-tidy with apt-get
# when they are missing. Prints ok/FAIL lines and "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2

WARN=${WARN:-$(make -s --no-print-directory print-warn)}  # the Makefile's, when run without make
passed=0 failed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

need=()
command -v gcc >/dev/null || need+=(gcc)
command -v clang >/dev/null || need+=(clang)
command -v cppcheck >/dev/null || need+=(cppcheck)
command -v clang-tidy >/dev/null || need+=(clang-tidy)
dpkg -s libomp-dev >/dev/null 2>&1 || need+=(libomp-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "apt-get install ${need[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null ||
        { echo "FAIL cannot install ${need[*]}"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== compilers: zero warnings at $WARN"
for cc in gcc clang; do
    for omp in -fopenmp ""; do
        # Without OpenMP its pragmas are meant to be ignored: gcc would warn about each.
        flags="-O2 $WARN ${omp:--Wno-unknown-pragmas}"
        # The test programs include run.c and use only part of it (clang also names the
        # SIGINT handler, which only main installs).
        test_flags="-Wno-unused-function"
        [ "$cc" = clang ] && test_flags+=" -Wno-unneeded-internal-declaration"
        for src in run.c tests/test_*.c tests/header_fields.c; do
            extra=""
            [ "$src" != run.c ] && extra=$test_flags
            # shellcheck disable=SC2086
            log=$($cc $flags $extra -o "$tmp/a.out" "$src" -lm 2>&1)
            status=$?
            what="$cc ${omp:-(no OpenMP)} $src"
            if [ $status -ne 0 ] || [ -n "$log" ]; then
                fail "$what: $(printf '%s\n' "$log" | grep -cE 'warning|error') warnings/errors"
                printf '%s\n' "$log" | head -n 20 | sed 's/^/    /'
            else
                ok "$what: no warnings ($($cc -dumpversion))"
            fi
        done
    done
done

echo "== cppcheck $(cppcheck --version | cut -d' ' -f2)"
cppcheck_run() {  # what, options...
    local what=$1 log
    shift
    if log=$(cppcheck -q --std=c11 --enable=warning,style,portability,performance --inline-suppr \
        --suppressions-list=tests/ports/cppcheck-suppressions.txt --error-exitcode=1 "$@" 2>&1) &&
        [ -z "$log" ]; then
        ok "cppcheck $what: clean"
    else
        fail "cppcheck $what"
        printf '%s\n' "$log" | head -n 30 | sed 's/^/    /'
    fi
}
cppcheck_run "run.c (POSIX, 64-bit)" --platform=unix64 -D_POSIX_C_SOURCE=200809L run.c
cppcheck_run "run.c (POSIX, 32-bit)" --platform=unix32 -D_POSIX_C_SOURCE=200809L run.c
cppcheck_run "run.c (Windows, 64-bit)" --platform=win64 -D_WIN32 run.c
cppcheck_run "tokenizer.c" tokenizer.c
cppcheck_run "test programs" -D_POSIX_C_SOURCE=200809L tests/test_*.c

echo "== clang-tidy $(clang-tidy --version | grep -oE 'version [0-9.]+' | cut -d' ' -f2)"
for src in run.c tokenizer.c; do
    # shellcheck disable=SC2086
    log=$(clang-tidy --quiet --config-file=tests/ports/clang-tidy.yaml "$src" -- $WARN -fopenmp 2>&1)
    status=$?
    if [ "$status" -eq 0 ] && ! grep -qE 'warning:|error:' <<<"$log"; then
        ok "clang-tidy $src: clean"
    else
        fail "clang-tidy $src"
        printf '%s\n' "$log" | grep -E 'warning:|error:' | head -n 20 | sed 's/^/    /'
    fi
done

echo
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
