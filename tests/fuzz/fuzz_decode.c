// fuzz_decode.c: libFuzzer target: tokenizer_decode of arbitrary id sequences, streamed
// through run.c's Utf8Stream as generation streams them.
//
// Input: byte 0 picks the tokenizer (mod 4, as in fuzz_encode); then 3 bytes per token:
// a 16-bit id code and a chunking byte. Ids run well outside the vocab, both ways
// (tokenizer_decode must give "" for them). Every token's bytes go through utf8_write
// into a memory stream, and the stream's content must be valid UTF-8 after every
// flush (utf8_write flushes once per call). The same bytes are then written again in
// other chunks (cut where the chunking bytes say): the output must not depend on the
// chunking, and it must equal an independent decoder with U+FFFD for each maximal
// invalid subpart (Python's bytes.decode(errors="replace"), which Hugging Face uses).
// A decoded in-vocab token must be exactly its bytes from the model file.

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load_models();
    return 0;
}

typedef struct {
    char *buf;
    size_t size;
    FILE *f;
} MemOut;

static void memout_open(MemOut *m) {
    m->buf = NULL, m->size = 0;
    m->f = open_memstream(&m->buf, &m->size);
    CHECK(m->f, "open_memstream failed");
}

// After a flush, everything written so far must be valid UTF-8.
static void memout_check(MemOut *m, const char *when) {
    CHECK(ref_utf8_valid(m->buf, m->size), "stream output is not valid UTF-8 after %s", when);
}

static void memout_close(MemOut *m) {
    fclose(m->f);
    free(m->buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const Tokenizer *t = &models[data[0] % N_KINDS].tokenizer;
    int V = t->spec.vocab_size;
    size_t n_tokens = (size - 1) / 3;
    Text raw = {0};
    MemOut a;
    memout_open(&a);
    Utf8Stream u = {0};
    int prev = data[0] & 0x80 ? t->spec.bos_id : -1;   // after BOS, or at the start
    for (size_t i = 0; i < n_tokens; i++) {
        const uint8_t *r = data + 1 + 3 * i;
        unsigned code = r[0] | (unsigned)r[1] << 8;
        int id;
        if (code < 0xC000) id = (int)(code % (unsigned)V);              // in the vocab
        else if (code < 0xE000) id = V + (int)(code - 0xC000);           // just past it
        else if (code < 0xFFF0) id = -1 - (int)(code - 0xE000);          // negative
        else id = code & 1 ? INT32_MAX - (int)(code & 7) : INT32_MIN + (int)(code & 7);
        size_t len;
        const char *piece = tokenizer_decode(t, prev, id, &len);
        if (id < 0 || id >= V) {
            CHECK(len == 0, "id %d outside the vocab decodes to %zu bytes", id, len);
        } else {
            const TokenRecord *rec = &t->spec.tokens[id];
            const char *bytes = t->spec.strings + rec->offset;
            size_t skip = rec->bytes - len;   // SentencePiece after BOS may drop one space
            CHECK(len <= rec->bytes && skip <= 1 && memcmp(piece, bytes + skip, len) == 0,
                  "token %d decodes to other bytes than its own", id);
            CHECK(skip == 0 || (t->spec.type == TOKENIZER_SENTENCEPIECE && prev == t->spec.bos_id && bytes[0] == ' '),
                  "token %d lost a byte where it should not", id);
        }
        text_append(&raw, piece, len);
        utf8_write(&u, a.f, piece, len);
        memout_check(&a, "a token");
        prev = id;
    }
    utf8_finish(&u, a.f);
    memout_check(&a, "the end");

    // the same bytes in other chunks: cut after byte j where the chunking byte of token
    // (j mod n_tokens) is odd
    MemOut b;
    memout_open(&b);
    Utf8Stream u2 = {0};
    size_t start = 0;
    for (size_t j = 0; j < raw.len; j++) {
        if (j + 1 == raw.len || (data[1 + 3 * (j % n_tokens) + 2] >> (j % 8)) & 1) {
            utf8_write(&u2, b.f, raw.data + start, j + 1 - start);
            memout_check(&b, "a chunk");
            start = j + 1;
        }
    }
    utf8_finish(&u2, b.f);
    memout_check(&b, "the end of the chunks");
    CHECK(a.size == b.size && memcmp(a.buf, b.buf, a.size) == 0, "the output depends on the chunking");

    Text expect = {0};
    reference_replace((const unsigned char *)(raw.data ? raw.data : ""), raw.len, &expect);
    CHECK(a.size == expect.len && memcmp(a.buf, expect.data ? expect.data : "", a.size) == 0,
          "the stream differs from decode(errors=\"replace\") (%zu bytes, expected %zu)", a.size, expect.len);
    if (ref_utf8_valid(raw.data ? raw.data : "", raw.len))
        CHECK(a.size == raw.len && memcmp(a.buf, raw.data ? raw.data : "", raw.len) == 0, "valid UTF-8 was changed");

    text_free(&expect);
    text_free(&raw);
    memout_close(&a);
    memout_close(&b);
    return 0;
}
