# run.c: build, test, benchmark. `make help` lists the targets.

CC ?= cc
# -ffp-contract=fast lets a * b + c become one fused multiply-add (strict C11 forbids it)
CFLAGS ?= -O3 -march=native -ffp-contract=fast
WARN = -std=c11 -Wall -Wextra -Wshadow -D_POSIX_C_SOURCE=200809L
LDLIBS = -lm
OMP = -fopenmp
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all noomp test check-asan demo bench clean help

all: run

run: run.c tokenizer.c tokenizer_tables.h
	$(CC) $(CFLAGS) $(WARN) $(OMP) -o $@ run.c $(LDLIBS)

# The same program without OpenMP: one thread, identical results.
noomp: run.c tokenizer.c tokenizer_tables.h
	$(CC) $(CFLAGS) $(WARN) -o run run.c $(LDLIBS)

# The whole test suite (golden tests against Hugging Face, tokenizer, sampler, CLI).
test: run
	bash tests/run_tests.sh

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

clean:
	rm -rf run tests/build

help:
	@echo "make            build ./run (OpenMP)"
	@echo "make noomp      build ./run without OpenMP"
	@echo "make demo       download and export SmolLM2-135M-Instruct, then ask it a question"
	@echo "make test       run the test suite"
	@echo "make check-asan run the test suite under ASan + UBSan"

# The main job on a fresh machine: build, download and export SmolLM2-135M-Instruct
# into models/ (once), then ask it the teaching material's first question.
DEMO_MODEL = SmolLM2-135M-Instruct
demo: run
	models/fetch $(DEMO_MODEL)
	./run models/$(DEMO_MODEL).bin -y "You are a helpful assistant. Give short straight answers" \
		-i "Where is Groningen located?" </dev/null
