// fuzz_load.c: libFuzzer target: load a model file made of arbitrary bytes, and use it.
//
// The input is the model file. model_open() takes a path and mmaps it, so the bytes go
// into one memory file (memfd) made at start-up, opened by its /proc/self/fd path.
//
// Bad input makes model_open() call fatal(), which prints a line and exit(1)s: right
// for the program, fatal for a fuzzer. The choices were
//   - fork per input and let the child exit: simple, but a fork (with ASan's shadow
//     memory) costs more than loading a small model, so it would cut the rate by an
//     order of magnitude, and coverage feedback from the child is lost;
//   - return error codes through every loader function: a large change to run.c,
//     whose one-line fatal() calls are what make its checks readable;
//   - a hook: built with -DFUZZING, fatal() longjmps to *fatal_jump when a caller
//     has set it (a few marked lines at the top of run.c), and is unchanged otherwise.
// This target takes the hook. Nothing leaks on that path: model_open() records
// everything it allocates in the Model as it goes (the mapping, the tokenizer tables,
// the layer array; the file descriptor is closed before any fatal(), which this
// target checks after every input), so model_close() frees a half-loaded model as well
// as a loaded one, and LeakSanitizer stays on. The run state is static for the same reason (and because locals changed
// between setjmp and longjmp are indeterminate after it).
//
// Every CRC-32 would stop almost every mutation at the checksum check, so the target
// repairs the header before loading: it sets file_bytes to the input's size and
// recomputes meta_crc32, unless the reserved u32 at offset 12 is non-zero (then the
// bytes are loaded as they are, and the size and checksum checks get fuzzed too). The
// test suite checks that real corruption is caught by those checks.
//
// After a successful load: --verify's weights checksum, two forward passes on a small
// context (a block of up to 5 tokens at once, then one more token), and the tokenizer
// built from the file's own (fuzzed) tables: a fixed text and the default system
// prompt are encoded and checked as fuzz_encode checks (naive encoder, round trip),
// and a chat turn is rendered with the file's template and encoded.
//
// Seeds: the small model files tests/fuzz/make_models.py exports (tests/fuzz/run.sh).

#include "fuzz_common.h"

#include <sys/mman.h>

static int memfd = -1;
static char memfd_path[64];
static Model model;
static RunState state;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    memfd = memfd_create("fuzz_load", 0);
    if (memfd < 0) {
        perror("fuzz_load: memfd_create");
        exit(2);
    }
    snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
    return 0;
}

static void repair_header(uint8_t *b, size_t size) {
    const int file_bytes = HEADER[H_FILE_BYTES].offset, meta_crc = HEADER[H_META_CRC32].offset;
    const int weights_crc = HEADER[H_WEIGHTS_CRC32].offset;
    if (size < HEADER_BYTES || read_u32(b + 12) != 0) return;  // the reserved u32 after header_bytes
    for (int i = 0; i < 8; i++) b[file_bytes + i] = (uint8_t)((uint64_t)size >> (8 * i));
    const uint8_t *w = b + HEADER[H_WEIGHTS_OFFSET].offset;
    uint64_t weights = read_u32(w) | (uint64_t)read_u32(w + 4) << 32;
    if (weights < HEADER_BYTES || weights > size) return;
    memset(b + meta_crc, 0, 4);
    uint8_t w_crc[4];
    memcpy(w_crc, b + weights_crc, 4);   // weights_crc32 is taken as zero too
    memset(b + weights_crc, 0, 4);
    uint32_t crc = crc32_update(0, b, (size_t)weights);
    memcpy(b + weights_crc, w_crc, 4);
    for (int i = 0; i < 4; i++) b[meta_crc + i] = (uint8_t)(crc >> (8 * i));
}

static const char sample_text[] = "Once upon a time, <|im_start|>user\nWhere is Groningen? caf\xC3\xA9 e\xCC\x81 "
                                  "\xE6\x97\xA5\xE6\x9C\xAC 12345 it's  \t\n\xF0\x9F\x98\x80 \xE2\x96\x81x";

static void use_model(const Model *m, const uint8_t *data, size_t size) {
    model_verify_weights(m);

    const Config *c = &m->config;
    int seq = c->max_seq_len < 8 ? c->max_seq_len : 8;
    runstate_build(&state, c, seq);
    int tokens[8];
    for (int i = 0; i < 8; i++) tokens[i] = (int)(data[(HEADER_BYTES + (size_t)i * 977) % size] % (unsigned)c->vocab_size);
    int n = seq > 1 ? (seq - 1 < 5 ? seq - 1 : 5) : 1;
    float *logits = forward(m, &state, tokens, n, 0, 1);
    volatile float sink = logits[(size_t)n * (size_t)c->vocab_size - 1];   // the last one was written
    if (n < seq) {
        logits = forward(m, &state, tokens + n, 1, n, 0);
        sink = logits[c->vocab_size - 1];
    }
    (void)sink;
    runstate_free(&state);

    // the file's own tokenizer tables, passed by tokenizer_build's checks
    int *ids = NULL;
    int k = check_encode(&m->tokenizer, sample_text, sizeof(sample_text) - 1, 1024, &ids);
    CHECK(k >= 0, "the sample text is valid UTF-8 but encoding it failed");
    free(ids);
    check_encode(&m->tokenizer, m->gen.default_system, (size_t)m->gen.default_system_len, 1024, NULL);
    if (m->gen.chat_template != CHAT_NONE) {
        Text turn = {0};
        render_turn(&turn, &m->gen, NULL, "Hello?", 1, "26 Jul 2024");
        render_turn(&turn, &m->gen, NULL, " again ", 0, "26 Jul 2024");
        check_encode(&m->tokenizer, turn.data, turn.len, 1024, NULL);
        text_free(&turn);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    repair_header(copy, size);
    CHECK(ftruncate(memfd, 0) == 0, "ftruncate");
    CHECK(pwrite(memfd, copy, size, 0) == (ssize_t)size, "pwrite");
    free(copy);

    int free_fd = dup(0);   // the lowest unused file descriptor (LeakSanitizer does not see them)
    close(free_fd);
    jmp_buf on_fatal;
    fatal_message[0] = '\0';
    fatal_jump = &on_fatal;
    if (setjmp(on_fatal) == 0) {
        model_open(&model, memfd_path);
        use_model(&model, data, size);
    } else {
        CHECK(fatal_message[0] != '\0', "fatal() without a message");
    }
    fatal_jump = NULL;
    runstate_free(&state);
    model_close(&model);
    int fd = dup(0);   // is it still free?
    close(fd);
    CHECK(fd == free_fd, "model_open leaked a file descriptor (%s)", fatal_message);
    return 0;
}
