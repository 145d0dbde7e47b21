// fuzz_common.h: what the libFuzzer targets in tests/fuzz/ share.
//
// Each target is one translation unit that includes run.c (and so tokenizer.c) with
// TESTING (no main) and FUZZING (fatal() can longjmp back instead of exiting; see the
// top of run.c and fuzz_load.c). This header adds:
//   - the four tokenizers the text targets fuzz, loaded from the model files that
//     tests/fuzz/make_models.py exports (directory $FUZZ_MODELS, default
//     tests/build/fuzz/models), one per tokenizer kind;
//   - an independent UTF-8 validator (written differently from tokenizer.c's), and
//     Python's bytes.decode(errors="replace") built on it;
//   - check_encode(): encodes a text and checks it against a naive reimplementation of
//     the whole encoder (added-token split, dummy prefix, BPE merge loop), then decodes
//     the ids and checks that the text comes back.
// A failed check prints what failed and aborts: libFuzzer saves the input as a crash.

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#define TESTING
#define FUZZING
#include "../../run.c"
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "\nfuzz check failed (%s:%d): ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

// ----------------------------------------------------------------------------
// The tokenizers

enum { KIND_SMOLLM2, KIND_LLAMA3, KIND_QWEN2, KIND_SENTENCEPIECE, N_KINDS };
static const char *const kind_file[N_KINDS] = {"smollm2.bin", "llama3.bin", "qwen2.bin", "sp.bin"};
static Model models[N_KINDS];

static void load_models(void) {
    const char *dir = getenv("FUZZ_MODELS");
    if (!dir) dir = "tests/build/fuzz/models";
    for (int k = 0; k < N_KINDS; k++) {
        static char paths[N_KINDS][4096];
        snprintf(paths[k], sizeof(paths[k]), "%s/%s", dir, kind_file[k]);
        FILE *f = fopen(paths[k], "rb");
        if (!f) {
            fprintf(stderr, "fuzz: cannot open %s: make it with tests/fuzz/make_models.py "
                            "(tests/fuzz/run.sh does) or set FUZZ_MODELS\n", paths[k]);
            exit(2);
        }
        fclose(f);
        model_open(&models[k], paths[k]);   // fatal_jump is NULL here: a bad file exits
    }
}

// ----------------------------------------------------------------------------
// Growable buffers: IntList (int ids) from tests/test_util.h

// ----------------------------------------------------------------------------
// UTF-8, independently of tokenizer.c: Unicode Table 3-7, "well-formed UTF-8 byte
// sequences", row by row.

static const struct { unsigned char lo0, hi0, lo1, hi1; int len; } utf8_rows[] = {
    {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3},
    {0xE1, 0xEC, 0x80, 0xBF, 3}, {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
    {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4},
};

// How many of the bytes s[0..n) (n >= 1) begin a well-formed sequence (0 if s[0] begins
// none); *full is that sequence's length.
static size_t ref_utf8_prefix(const unsigned char *s, size_t n, size_t *full) {
    *full = 1;
    for (size_t r = 0; r < sizeof(utf8_rows) / sizeof(utf8_rows[0]); r++) {
        if (s[0] < utf8_rows[r].lo0 || s[0] > utf8_rows[r].hi0) continue;
        *full = (size_t)utf8_rows[r].len;
        size_t k = 1;
        if (k < *full && k < n && s[1] >= utf8_rows[r].lo1 && s[1] <= utf8_rows[r].hi1) k++;
        else return k;
        while (k < *full && k < n && s[k] >= 0x80 && s[k] <= 0xBF) k++;
        return k;
    }
    return 0;
}

// The length of the well-formed character at s[0..n) (n >= 1), 0 if there is none.
static size_t ref_utf8_char(const unsigned char *s, size_t n) {
    size_t full, k = ref_utf8_prefix(s, n, &full);
    return k == full ? full : 0;
}

static int ref_utf8_valid(const char *s, size_t n) {
    for (size_t p = 0; p < n;) {
        size_t len = ref_utf8_char((const unsigned char *)s + p, n - p);
        if (!len) return 0;
        p += len;
    }
    return 1;
}

// The "replace" decoding of s[0..n): each maximal subpart of an ill-formed sequence
// (the longest prefix of a well-formed sequence, or else one byte) becomes U+FFFD.
static void reference_replace(const unsigned char *s, size_t n, Text *out) {
    for (size_t p = 0; p < n;) {
        size_t len = ref_utf8_char(s + p, n - p);
        if (len) {
            text_append(out, (const char *)s + p, len);
            p += len;
            continue;
        }
        size_t full, sub = ref_utf8_prefix(s + p, n - p, &full);
        if (sub == 0) sub = 1;   // not a lead byte: it alone is replaced
        text_append(out, "\xEF\xBF\xBD", 3);
        p += sub;
    }
}

// ----------------------------------------------------------------------------
// A naive encoder: the same rules as tokenizer.c, written the slow obvious way (every
// merge step scans all pairs), so that the heap-based merge loop, the added-token
// matching and the dummy prefix are checked against it. It uses tokenizer.c's own
// pre-tokenizer, NFC and hash lookups (the golden tests check those against Hugging
// Face), and checks the pre-tokenizer's spans tile the text.

typedef struct {
    int id;
    size_t start, len;
} NaiveSymbol;

static void naive_bpe_word(const Tokenizer *t, const char *s, size_t n, IntList *out) {
    if (t->spec.ignore_merges) {
        int id = piece_lookup(t, s, n);
        if (id >= 0) {
            intlist_push(out, id);
            return;
        }
    }
    NaiveSymbol *sym = malloc((n + 1) * sizeof(NaiveSymbol));
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (t->byte_token[(unsigned char)s[i]] >= 0) sym[count++] = (NaiveSymbol){t->byte_token[(unsigned char)s[i]], i, 1};
    for (;;) {
        long best = -1, best_rank = 0;
        for (size_t i = 0; i + 1 < count; i++) {
            int r = merge_lookup(t, sym[i].id, sym[i + 1].id);
            if (r >= 0 && (best < 0 || r < best_rank)) best = (long)i, best_rank = r;
        }
        if (best < 0) break;
        sym[best].id = (int)t->spec.merges[3 * (size_t)best_rank + 2];
        memmove(sym + best + 1, sym + best + 2, (count - (size_t)best - 2) * sizeof(NaiveSymbol));
        count--;
    }
    for (size_t i = 0; i < count; i++) intlist_push(out, sym[i].id);
    free(sym);
}

static void naive_sentencepiece(const Tokenizer *t, const char *s, size_t n, IntList *out) {
    NaiveSymbol *sym = malloc((n + 1) * sizeof(NaiveSymbol));
    size_t count = 0;
    for (size_t p = 0; p < n;) {
        size_t len = ref_utf8_char((const unsigned char *)s + p, n - p);
        CHECK(len > 0, "naive_sentencepiece: invalid UTF-8 after normalization");
        sym[count++] = (NaiveSymbol){piece_lookup(t, s + p, len), p, len};
        p += len;
    }
    for (;;) {
        long best = -1;
        int best_id = -1;
        for (size_t i = 0; i + 1 < count; i++) {
            int id = piece_lookup(t, s + sym[i].start, sym[i].len + sym[i + 1].len);
            if (id >= 0 && (best < 0 || t->spec.tokens[id].score > t->spec.tokens[best_id].score))
                best = (long)i, best_id = id;
        }
        if (best < 0) break;
        sym[best].id = best_id;
        sym[best].len += sym[best + 1].len;
        memmove(sym + best + 1, sym + best + 2, (count - (size_t)best - 2) * sizeof(NaiveSymbol));
        count--;
    }
    for (size_t i = 0; i < count; i++) {
        if (sym[i].id >= 0) intlist_push(out, sym[i].id);
        else
            for (size_t k = 0; k < sym[i].len; k++) intlist_push(out, t->byte_token[(unsigned char)s[sym[i].start + k]]);
    }
    free(sym);
}

// One stretch of text between added tokens: normalize, pre-tokenize, merge. Appends
// the ids to out (if not NULL: the merging is skipped then) and the text that decoding
// them must give to expect.
static void naive_segment(const Tokenizer *t, const char *s, size_t n, IntList *out, Text *expect) {
    if (n == 0) return;
    char *normalized = NULL;
    if (t->spec.normalizer == NORM_NFC) {
        size_t m;
        normalized = nfc_normalize(s, n, &m);
        CHECK(normalized, "nfc_normalize: out of memory");
        CHECK(ref_utf8_valid(normalized, m), "NFC output is not valid UTF-8");
        size_t m2;
        char *again = nfc_normalize(normalized, m, &m2);
        CHECK(again && m2 == m && memcmp(again, normalized, m) == 0, "NFC is not idempotent");
        free(again);
        s = normalized, n = m;
    }
    if (t->spec.type == TOKENIZER_SENTENCEPIECE) {
        if (out) naive_sentencepiece(t, s, n, out);
        text_append(expect, s, n);
    } else {
        Span *spans = malloc(n * sizeof(Span));
        size_t count = pretokenize(t->spec.pretokenizer, s, n, spans), end = 0;
        for (size_t i = 0; i < count; i++) {
            CHECK(spans[i].start == end && spans[i].len > 0, "pre-tokens do not tile the text");
            CHECK(ref_utf8_valid(s + spans[i].start, spans[i].len), "a pre-token splits a character");
            end += spans[i].len;
            if (out) naive_bpe_word(t, s + spans[i].start, spans[i].len, out);
        }
        CHECK(end == n, "pre-tokens do not cover the text");
        free(spans);
        for (size_t i = 0; i < n; i++)   // bytes without a token are dropped
            if (t->byte_token[(unsigned char)s[i]] >= 0) text_append(expect, s + i, 1);
    }
    free(normalized);
}

static void naive_encode(const Tokenizer *t, const char *text, size_t n, IntList *out, Text *expect) {
    Text escaped = {0};
    if (t->spec.type == TOKENIZER_SENTENCEPIECE && n > 0) {   // the dummy prefix; '▁' is a space
        text_puts(&escaped, " ");
        for (size_t p = 0; p < n; p++) {
            if (n - p >= 3 && memcmp(text + p, "\xE2\x96\x81", 3) == 0) {
                text_puts(&escaped, " ");
                p += 2;
            } else {
                text_append(&escaped, text + p, 1);
            }
        }
        text = escaped.data, n = escaped.len;
    }
    IntList added = {0};   // the added tokens, in id order
    for (int id = 0; id < t->spec.vocab_size; id++)
        if (t->spec.tokens[id].flags & TOKEN_ADDED) intlist_push(&added, id);
    size_t segment = 0;
    for (size_t p = 0; p < n;) {   // leftmost-longest added token, lowest id on a tie
        int best = -1;
        size_t best_len = 0;
        for (int a = 0; a < added.n; a++) {
            int id = added.v[a];
            const TokenRecord *r = &t->spec.tokens[id];
            if (r->bytes <= best_len || r->bytes > n - p) continue;
            if (memcmp(text + p, t->spec.strings + r->offset, r->bytes) == 0) best = id, best_len = r->bytes;
        }
        if (best < 0) {
            p++;
            continue;
        }
        naive_segment(t, text + segment, p - segment, out, expect);
        if (out) intlist_push(out, best);
        text_append(expect, text + p, best_len);
        p += best_len;
        segment = p;
    }
    naive_segment(t, text + segment, n - segment, out, expect);
    intlist_free(&added);
    text_free(&escaped);
}

// ----------------------------------------------------------------------------
// check_encode: encode text[0..n) and check every invariant. Returns the number of ids
// (-1 for invalid UTF-8); the ids are left in *ids (malloc'd) if ids is not NULL.
// The naive encoder is quadratic: it runs on texts up to naive_limit bytes.

static int check_encode(const Tokenizer *t, const char *text, size_t n, size_t naive_limit, int **ids_out) {
    size_t room = tokenizer_max_ids(t, n);
    int *ids = malloc((room ? room : 1) * sizeof(int));   // exactly the promised room: ASan sees overruns
    CHECK(ids, "out of memory");
    int k = tokenizer_encode(t, text, n, ids);
    int valid = ref_utf8_valid(text, n);
    CHECK((k < 0) == !valid, "tokenizer_encode returned %d for %s UTF-8 (%zu bytes)", k,
          valid ? "valid" : "invalid", n);
    if (k >= 0) {
        CHECK((size_t)k <= room, "%d ids, more than tokenizer_max_ids %zu", k, room);
        for (int i = 0; i < k; i++)
            CHECK(ids[i] >= 0 && ids[i] < t->spec.vocab_size, "id %d out of range", ids[i]);

        // decode: the ids give back the text (as normalized, without the bytes the
        // vocab has no token for, with SentencePiece's dummy prefix)
        IntList expect_ids = {0};
        Text expect = {0}, got = {0};
        naive_encode(t, text, n, n <= naive_limit ? &expect_ids : NULL, &expect);
        for (int i = 0; i < k; i++) {
            size_t len;
            const char *piece = tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], &len);
            text_append(&got, piece, len);
        }
        CHECK(got.len == expect.len && memcmp(got.data ? got.data : "", expect.data ? expect.data : "", got.len) == 0,
              "decode(encode(text)) is not the text (%zu bytes, expected %zu)", got.len, expect.len);
        if (n <= naive_limit) {
            CHECK(expect_ids.n == k, "%d ids, the naive encoder gives %d", k, expect_ids.n);
            for (int i = 0; i < k; i++)
                CHECK(ids[i] == expect_ids.v[i], "id %d is %d, the naive encoder gives %d", i, ids[i], expect_ids.v[i]);
        }
        // SentencePiece after BOS: the first piece loses the dummy-prefix space.
        if (t->spec.type == TOKENIZER_SENTENCEPIECE && k > 0 && t->spec.bos_id >= 0) {
            size_t len, len0;
            tokenizer_decode(t, t->spec.bos_id, ids[0], &len);
            const char *first = tokenizer_decode(t, -1, ids[0], &len0);
            int strips = !(t->spec.tokens[ids[0]].flags & TOKEN_BYTE) && len0 > 0 && first[0] == ' ';
            CHECK(len == len0 - (size_t)strips, "decode after BOS: %zu bytes, expected %zu", len, len0 - (size_t)strips);
        }
        intlist_free(&expect_ids);
        text_free(&expect);
        text_free(&got);
    }
    if (ids_out && k >= 0) *ids_out = ids;
    else free(ids);
    return k;
}

#endif
