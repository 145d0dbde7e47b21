#!/usr/bin/env bash
# Windows: cross-compile with mingw-w64 and run the golden tests under wine.
#
#   tests/ports/windows-test.sh [--build-only]
#
# Builds tests/build/ports/windows/run.exe (OpenMP, linked statically so that it needs
# no DLL beside it) and the test programs for x86_64 Windows, with the Makefile's
# warning flags (any warning counts as a failure). Unless --build-only, runs under wine:
# test_units, test_model on every fixture model (f32 against the Hugging Face reference,
# q8_0 for prefill consistency), test_tokenizer on the fixture tokenizers, and the
# command-line golden tests (tests/cli_golden.py through a wrapper that starts run.exe
# under wine). The fixtures are exported natively (the file is the same everywhere).
#
# Installs gcc-mingw-w64-x86-64 (and wine64 unless --build-only) with apt-get when
# missing. The wine prefix (about 700 MB, made on first use in ~10 s) lives outside the
# repository: $WINEPREFIX, default ${TMPDIR:-/tmp}/run.c-wine.
# Prints ok/FAIL/SKIP lines, the time of each step, and "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2

BUILD_ONLY=0
[ "${1:-}" = --build-only ] && BUILD_ONLY=1
BUILD=tests/build/ports/windows
FIX=tests/fixtures
CC=x86_64-w64-mingw32-gcc
WARN=${WARN:-$(make -s --no-print-directory print-warn)}  # the Makefile's, when run without make
CFLAGS="-O2 -ffp-contract=fast $WARN -fopenmp -static"
export OMP_NUM_THREADS=2 WINEDEBUG=-all WINEPREFIX=${WINEPREFIX:-${TMPDIR:-/tmp}/run.c-wine}
TAG="[windows] "
source tests/lib.sh
source tests/ports/common.sh
echo "== [windows] install mingw-w64 and wine (if missing)"
WINE=$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)
WINESERVER=$(command -v wineserver || echo /usr/lib/wine/wineserver64)
need=()
command -v "$CC" >/dev/null || need+=(gcc-mingw-w64-x86-64)
[ $BUILD_ONLY = 1 ] || [ -x "$WINE" ] || need+=(wine64)
command -v python3 >/dev/null || need+=(python3)
install_missing "${need[@]}"

step "build for x86_64 Windows ($CC $($CC -dumpfullversion))"
mkdir -p "$BUILD"
build run.exe run.c
for t in test_units test_model test_tokenizer; do build $t.exe tests/$t.c -Wno-unused-function; done
command -v file >/dev/null && file -b "$BUILD/run.exe" | cut -d, -f1-2

if [ $BUILD_ONLY = 1 ]; then
    echo "   ($((SECONDS - step_start)) s)"
    echo
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
fi

step "start wine ($($WINE --version 2>/dev/null), prefix $WINEPREFIX)"
"$WINE" cmd /c exit >/dev/null 2>&1 || true   # makes the prefix the first time
"$WINESERVER" -w 2>/dev/null                  # (and waits until that is done)
# One wineserver for all the runs (each would start its own: seconds instead of 0.1 s),
# and wine's background services started now, with no pipe of this script to hold open.
"$WINESERVER" -p 2>/dev/null
trap '"$WINESERVER" -k 2>/dev/null' EXIT
"$WINE" cmd /c exit >/dev/null 2>&1 || true

wrapper="$BUILD/run-wine"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$WINE" "$PWD/$BUILD/run.exe" >"$wrapper"
chmod +x "$wrapper"
golden_tests .exe wine "$wrapper" "$WINE"
out=$("$wrapper" "$BUILD/tiny-smollm2.bin" -m generate -i "Once upon" -n 4 -t 0 --stats json 2>&1 >/dev/null)
if grep -qE '"peak_rss_mb": [1-9]' <<<"$out"; then ok "--stats json reports the peak memory: $out"; else fail "--stats json: $out"; fi

echo "   ($((SECONDS - step_start)) s)"
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
