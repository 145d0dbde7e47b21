#!/usr/bin/env bash
# The golden tests on another CPU: cross-compile with Debian's cross gcc, run under
# qemu-user.
#
#   tests/ports/cross-test.sh ARCH      ARCH = aarch64 | armhf | i686 | riscv64 | s390x
#
# Builds tests/build/ports/ARCH/run and the test programs test_model, test_units and
# test_tokenizer for ARCH (OpenMP on, the Makefile's warning flags, any warning counts as
# a failure), exports the fixture models natively (the model file is the same on every
# platform), then runs under qemu-ARCH: test_model on every fixture model (f32 against
# the Hugging Face reference, q8_0 for prefill consistency), test_units, test_tokenizer
# on the fixture tokenizers, and the command-line golden tests (tests/cli_golden.py,
# through a wrapper that starts ./run under qemu). On 32-bit targets (armhf, i686) a
# model file of 4 GB or more must be refused with a clear message. s390x is big-endian:
# there run.c converts the little-endian file on load.
#
# The binaries are linked dynamically against the target's libc and libgomp
# (libc6-dev-*-cross, libgomp1-*-cross) and qemu finds them with -L /usr/TRIPLE; i686
# statically (see below: static glibc makes the linker warn that libgomp calls dlopen,
# a warning this script ignores). Installs what it needs with apt-get when missing.
# Prints ok/FAIL lines, the time of each step, and "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2

ARCH=${1:-}
case "$ARCH" in
aarch64) TRIPLE=aarch64-linux-gnu QEMU=qemu-aarch64 DEB=arm64 ;;
armhf) TRIPLE=arm-linux-gnueabihf QEMU=qemu-arm DEB=armhf ;;
# SSE2 arithmetic (every x86 CPU since the Pentium 4 has it) rather than the x87 FPU,
# whose 80-bit registers qemu emulates in software, too slowly for the tests. Linked
# statically: under qemu-i386 (7.2) a dynamically linked program with OpenMP threads
# hangs at random (a trivial `omp parallel for` does too); the static one does not.
i686) TRIPLE=i686-linux-gnu QEMU=qemu-i386 DEB=i386 ARCH_FLAGS="-msse2 -mfpmath=sse -static" ;;
riscv64) TRIPLE=riscv64-linux-gnu QEMU=qemu-riscv64 DEB=riscv64 ;;
s390x) TRIPLE=s390x-linux-gnu QEMU=qemu-s390x DEB=s390x ;;
*)
    echo "usage: $0 aarch64|armhf|i686|riscv64|s390x" >&2
    exit 2
    ;;
esac
BITS=64
case "$ARCH" in armhf | i686) BITS=32 ;; esac

BUILD=tests/build/ports/$ARCH
FIX=tests/fixtures
CC="$TRIPLE-gcc"
# The Makefile's warning flags (WARN, which includes -D_FILE_OFFSET_BITS=64: a 32-bit
# host's fstat sees files above 2 GB) and its CFLAGS without -march=native.
WARN=${WARN:-$(make -s --no-print-directory print-warn)}  # the Makefile's, when run without make
CFLAGS="-O2 -ffp-contract=fast ${ARCH_FLAGS:-} $WARN -fopenmp"
export OMP_NUM_THREADS=2
TAG="[$ARCH] "
source tests/lib.sh
source tests/ports/common.sh
echo "== [$ARCH] install the cross compiler and qemu (if missing)"
need=()
command -v "$CC" >/dev/null || need+=("gcc-$TRIPLE")
[ -f "/usr/$TRIPLE/lib/libc.so" ] || need+=("libc6-dev-$DEB-cross")
[ -f "/usr/$TRIPLE/lib/libgomp.so.1" ] || need+=("libgomp1-$DEB-cross")
command -v "$QEMU" >/dev/null || need+=(qemu-user)
command -v python3 >/dev/null || need+=(python3)
install_missing "${need[@]}"
RUNQ=("$QEMU" -L "/usr/$TRIPLE")

step "build for $TRIPLE ($($CC -dumpfullversion), $($QEMU --version | head -n 1))"
mkdir -p "$BUILD"
build run run.c
# The test programs include run.c and use only part of it.
for t in test_units test_model test_tokenizer; do build $t tests/$t.c -Wno-unused-function; done
command -v file >/dev/null && file -b "$BUILD/run" | cut -d, -f1-2

wrapper="$BUILD/run-qemu"
printf '#!/bin/sh\nexec %s -L /usr/%s "%s" "$@"\n' "$QEMU" "$TRIPLE" "$PWD/$BUILD/run" >"$wrapper"
chmod +x "$wrapper"
golden_tests "" "$QEMU" "$wrapper" "${RUNQ[@]}"

# refused SIZE PATTERN: run on a sparse (zero-filled) file of SIZE exits 1 with a
# message matching the extended regex PATTERN.
refused() {
    local big="$BUILD/big.bin" out status
    truncate -s "$1" "$big"  # sparse: takes no disk space
    out=$("$wrapper" "$big" -i hi 2>&1)
    status=$?
    rm -f "$big"
    if [ "$status" -eq 1 ] && grep -qE "$2" <<<"$out"; then
        ok "a $1 file is refused: $out"
    else
        fail "a $1 file (status $status): $out"
    fi
}

if [ "$BITS" = 32 ]; then
    step "32-bit host: model files of 4 GB or more"
    refused 5G "too large for a 32-bit host"
    # Below 4 GB the map may fail for want of address space (a 32-bit process has 3 to 4
    # GB): that must say so too. (Where it succeeds, this zero-filled file is no model.)
    refused 3G "too large for a 32-bit host|bad magic"
fi

echo "   ($((SECONDS - step_start)) s)"
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
