# run.c: build, test, benchmark. `make help` lists the targets.

CC ?= cc
# -ffp-contract=fast lets a * b + c become one fused multiply-add (strict C11 forbids it)
CFLAGS ?= -O3 -march=native -ffp-contract=fast
# Warnings: run.c and the test programs build without any, with gcc and clang, with and
# without OpenMP (`make lint` checks it). All of -Wconversion except -Wsign-conversion:
# sizes and indices are ints (checked at load, far below 2^31) that are widened to size_t
# where a product could overflow, as in `(size_t)i * cols`; -Wsign-conversion flags the
# int operand of each such product (some 50 in the kernels and the forward pass), and the
# casts that would silence it would bury the arithmetic. _FILE_OFFSET_BITS=64 lets a
# 32-bit host's fstat see files above 2 GB (and changes nothing on a 64-bit one).
# _DEFAULT_SOURCE adds madvise's MADV_HUGEPAGE and MADV_POPULATE_READ (run.c map_file).
WARN = -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion \
       -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64
LDLIBS = -lm
OMP = -fopenmp
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all noomp reference FORCE test mutate check-asan check-valgrind fuzz lint cross-test windows windows-test demo bench clean help print-warn

all: run

# run.c includes the other C files: one translation unit, one command.
SOURCES = run.c format.c util.c tokenizer.c eval.c scripts/tokenizer_tables.h

# OpenMP when the compiler has it (probed once per make); else a note and one thread.
HAVE_OMP := $(shell printf 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
ifneq ($(HAVE_OMP),yes)
OMP =
OMP_NOTE = @echo "make: $(CC) has no OpenMP: building ./run without it (one thread)"
endif

# 512-bit vectors where the compiler can use them (x86 with AVX-512): GCC and clang pick
# 256 bits for -march=native there, and run.c's prefill tiles are sized for 512 bits
# when __AVX512F__ is defined (twice the multiply-adds per instruction). Other compilers
# and targets do not take the option: it is then left out.
WIDE := $(shell $(CC) -mprefer-vector-width=512 -E -x c /dev/null >/dev/null 2>&1 && echo -mprefer-vector-width=512)

# ./run is rebuilt when the compiler or the flags change, not only the sources:
# .build-flags holds the command of the last build and changes only when it does.
BUILD = $(CC) $(CFLAGS) $(WIDE) $(WARN)
.build-flags: FORCE
	@echo '$(BUILD) $(OMP)' | cmp -s - $@ || echo '$(BUILD) $(OMP)' > $@

run: $(SOURCES) .build-flags
	$(OMP_NOTE)
	$(BUILD) $(OMP) -DBUILD_FLAGS='"$(CFLAGS) $(WIDE) $(OMP)"' -o $@ run.c $(LDLIBS)

# The same program without OpenMP: one thread, identical results. (Its pragmas are then
# meant to be ignored; -Wno-unknown-pragmas keeps gcc from saying so at each.)
noomp: $(SOURCES)
	$(BUILD) -Wno-unknown-pragmas -DBUILD_FLAGS='"$(CFLAGS) $(WIDE)"' -o run run.c $(LDLIBS)
	@echo noomp > .build-flags

# Only the plain loops of run.c (no section 7, no OpenMP): the simplest program to read
# and the first one to port. Same results as ./run but for the order of f32 additions.
reference: $(SOURCES)
	$(BUILD) -Wno-unknown-pragmas -DREFERENCE -DBUILD_FLAGS='"$(CFLAGS) $(WIDE) -DREFERENCE"' -o run run.c $(LDLIBS)
	@echo reference > .build-flags

FORCE:

# The whole test suite (golden tests against Hugging Face, tokenizer, sampler, CLI).
test: run
	bash tests/run_tests.sh

# Mutation testing (not part of CI; 25-60 minutes on 2 cores): the small bugs listed in
# tests/mutants.txt, put one at a time into a copy of the repository, with the suite run
# on each; prints the share of them that the suite catches and the ones it misses.
# ONLY=name,name runs just those mutants.
mutate:
	python3 tests/mutate.py $(if $(ONLY),--only $(ONLY))

# Speed of ./run on a SmolLM2-135M-shaped model with random weights (f32 and q8_0,
# 1 and 2 threads) against the memory bandwidth. A benchmark: it prints numbers.
bench: run
	bash bench/bench.sh

# The test suite again with AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan:
	$(MAKE) --no-print-directory clean
	$(MAKE) --no-print-directory run CFLAGS="-O1 -g $(SANITIZE)"
	SANITIZE="$(SANITIZE)" bash tests/run_tests.sh
	$(MAKE) --no-print-directory clean

# An end-to-end generate, a two-turn chat and more under valgrind memcheck (its own
# build, tests/build/run-valgrind: valgrind does not know AVX-512, so no -march=native).
check-valgrind:
	bash tests/valgrind.sh

# The libFuzzer targets of tests/fuzz/, FUZZ_SECONDS each (clang; installed if missing).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

# Zero warnings with gcc and clang (with and without OpenMP); cppcheck and clang-tidy
# clean (their settings and the reasons for each exclusion are in tests/ports/).
lint:
	WARN="$(WARN)" bash tests/ports/lint.sh

# The golden tests on another CPU, cross-compiled and run under qemu-user (the Debian
# cross compiler and qemu are installed when missing). ARCH = aarch64, armhf (32-bit),
# i686 (32-bit), riscv64 or s390x (big-endian).
ARCH ?= aarch64
cross-test:
	WARN="$(WARN)" bash tests/ports/cross-test.sh $(ARCH)

# Windows (x86_64, mingw-w64): run.exe, statically linked. windows-test runs the golden
# tests under wine as well.
windows:
	WARN="$(WARN)" bash tests/ports/windows-test.sh --build-only
	cp tests/build/ports/windows/run.exe run.exe

windows-test:
	WARN="$(WARN)" bash tests/ports/windows-test.sh

clean:
	rm -rf run run.exe .build-flags tests/build
	git worktree remove --force bench/build/baseline 2>/dev/null || true
	rm -rf bench/build

# WARN, for the scripts of tests/ports/ when they are run directly rather than by make.
print-warn:
	@echo '$(WARN)'

help:
	@echo "make            build ./run (OpenMP)"
	@echo "make noomp      build ./run without OpenMP"
	@echo "make reference  build ./run from the plain loops only (no fast kernels, no OpenMP)"
	@echo "make demo       download and export SmolLM2-135M-Instruct, then ask it a question"
	@echo "make bench      speed of f32 and q8_0 on SmolLM2-135M shapes against the memory bandwidth"
	@echo "make test       run the test suite"
	@echo "make mutate     how many of tests/mutants.txt's bugs the suite catches (~30 min; ONLY=a,b)"
	@echo "make check-asan run the test suite under ASan + UBSan"
	@echo "make check-valgrind  generate and chat under valgrind memcheck"
	@echo "make fuzz [FUZZ_SECONDS=N]  run the libFuzzer targets of tests/fuzz/, N seconds each"
	@echo "make lint       gcc and clang warnings, cppcheck, clang-tidy"
	@echo "make cross-test ARCH=aarch64|armhf|i686|riscv64|s390x  the golden tests under qemu-user"
	@echo "make windows    build run.exe for Windows (mingw-w64)"
	@echo "make windows-test  build for Windows and run the golden tests under wine"
	@echo "make CC=clang   build with clang (any target)"

# The main job on a fresh machine: build, download and export SmolLM2-135M-Instruct
# into models/ (once), then ask it a first question.
DEMO_MODEL = SmolLM2-135M-Instruct
demo: run
	models/fetch $(DEMO_MODEL)
	./run models/$(DEMO_MODEL).bin -y "You are a helpful assistant. Give short straight answers" \
		-i "Where is Groningen located?" </dev/null
