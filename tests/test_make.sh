#!/usr/bin/env bash
# The Makefile as a user meets it, on a copy of the tracked files in a temporary folder:
#   - a second `make` builds nothing; `make CC=clang` after `make` builds again (the
#     compiler and flags are part of what ./run depends on);
#   - a compiler without OpenMP: `make` says so and builds a one-thread ./run;
#   - `make clean` removes bench/build (the benchmark's models) and the build record.
# One ok/FAIL/SKIP line per check (tests/lib.sh).
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
# `make test CC=clang` passes CC down to every make below: start as a user's shell does.
unset MAKEFLAGS MFLAGS MAKELEVEL CC CFLAGS

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z | tar cf - --null -T - | tar xf - -C "$tmp"
else  # a copy without git, such as tests/mutate.py's: all but the build outputs
    tar cf - --exclude=./run --exclude=./tests/build --exclude=./bench/build . | tar xf - -C "$tmp"
fi || { fail "cannot copy the tracked files"; echo "$passed passed, $failed failed, $skipped skipped"; exit 1; }
cd "$tmp"
built() { grep -q -- '-o run run.c' <<<"$1"; }  # did this make output compile ./run?

out=$(make 2>&1) && built "$out" && [ -x run ] && ok "make builds ./run" || fail "make: $out"
out=$(make 2>&1)
if built "$out" || [ ! -x run ]; then fail "a second make builds ./run again: $out"; else ok "a second make builds nothing"; fi
if command -v clang >/dev/null; then
    out=$(make CC=clang 2>&1)
    if built "$out" && ./run --version | grep -q '^compiler: clang'; then
        ok "make CC=clang after make builds ./run again, with clang"
    else
        fail "make CC=clang after make: $out"
    fi
else
    skip "make CC=clang: clang is not installed (Debian: clang)"
fi

# A compiler that refuses -fopenmp, as one without OpenMP support does.
cat >"$tmp/cc-no-omp" <<'EOF'
#!/bin/sh
for a in "$@"; do [ "$a" = -fopenmp ] && { echo "cc-no-omp: no OpenMP" >&2; exit 1; }; done
exec cc "$@"
EOF
chmod +x "$tmp/cc-no-omp"
out=$(make CC="$tmp/cc-no-omp" 2>&1)
if built "$out" && grep -q "has no OpenMP" <<<"$out" && ./run --version | grep -q '^OpenMP: off'; then
    ok "a compiler without OpenMP: make says so and builds ./run without it"
else
    fail "a compiler without OpenMP: $out"
fi

mkdir -p bench/build && touch bench/build/random-f32.bin
make clean >/dev/null 2>&1
if [ ! -e bench/build ] && [ ! -e .build-flags ] && [ ! -e run ]; then
    ok "make clean removes ./run, the build record and bench/build"
else
    fail "make clean left: $(ls -d bench/build .build-flags run 2>/dev/null)"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
