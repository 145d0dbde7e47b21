// test_tokenizer.c: checks tokenizer.c against Hugging Face / SentencePiece references.
//
//   ./test_tokenizer MODEL DIR [--no-chat]
//
// MODEL is a run.c model file (only its header and tokenizer tables are read), or a
// llama2.c tokenizer.bin (SentencePiece pieces with scores). DIR holds the references
// made with Hugging Face tokenizers 0.23.2 (sentencepiece for the Llama 2 vocabulary),
// see tests/fixtures/README.md:
//   encode.tsv  hex UTF-8 text <TAB> ids     (tokenizers' encode(text, add_special_tokens=False))
//   chat.tsv    name <TAB> hex rendered chat prompt <TAB> ids
// --no-chat says that the tokenizer has no chat template, so DIR has no chat.tsv (and
// one that appears is an error rather than a file nobody reads).
// Every line is checked: encode gives exactly the ids, and decoding the ids gives the
// text back (its NFC form for an NFC tokenizer). Then edge cases that the references
// do not cover are checked for properties only (round trip, -1 on invalid UTF-8,
// added tokens kept whole, NFC-equivalent texts encode alike, no crash), never for
// ids of our own making. Last comes a check that tokenizer_build rejects broken tables.
//
// Prints a "FAIL ..." line per failure, an "ok ..." line per group of checks that all
// passed, then "N passed, N failed" (counting single checks). Exit status 1 if any
// failed.
// A MODEL or reference file that does not exist, or a reference file without a line,
// is a failure.

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "../tokenizer.c"

static int n_passed, n_failed;

static void check(int ok, const char *fmt, ...) {
    if (ok) {
        n_passed++;
        return;
    }
    n_failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void die(const char *fmt, const char *arg) {
    printf("FAIL ");
    printf(fmt, arg);
    printf("\n");
    exit(2);
}

// ----------------------------------------------------------------------------
// Loading the tokenizer tables

typedef struct {
    unsigned char *file;   // the whole file
    TokenRecord *records;  // llama2.c format only: records and strings made here
    char *strings;
    TokenizerSpec spec;
} Loaded;

static uint32_t u32_at(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64_at(const unsigned char *p) { return u32_at(p) | (uint64_t)u32_at(p + 4) << 32; }

// Puts n little-endian 4-byte numbers at p in host byte order (nothing changes on a
// little-endian host), so that the tables can be used in place as run.c uses them.
static void host_order(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++, p += 4) {
        uint32_t u = u32_at(p);
        memcpy(p, &u, 4);
    }
}

// The header fields of FORMAT.md that the tokenizer needs.
static void load_run_file(Loaded *l, size_t size) {
    const unsigned char *h = l->file;
    if (size < 256) die("%s", "model file shorter than its header");
    TokenizerSpec *s = &l->spec;
    s->vocab_size = (int)u32_at(h + 40);
    s->type = (int)u32_at(h + 92);
    s->pretokenizer = (int)u32_at(h + 96);
    s->normalizer = (int)u32_at(h + 100);
    s->ignore_merges = (int)u32_at(h + 104);
    s->bos_id = (int)u32_at(h + 108);
    s->n_merges = (int)u32_at(h + 116);
    uint64_t tokens = u64_at(h + 176), merges = u64_at(h + 184);
    uint64_t strings = u64_at(h + 192), strings_bytes = u64_at(h + 200);
    if (s->vocab_size <= 0 || s->n_merges < 0 || tokens % 4 || merges % 4 ||
        tokens + (uint64_t)s->vocab_size * sizeof(TokenRecord) > size ||
        merges + (uint64_t)s->n_merges * 12 > size || strings + strings_bytes > size)
        die("%s", "tokenizer tables outside the model file");
    host_order(l->file + tokens, (size_t)s->vocab_size * sizeof(TokenRecord) / 4);
    host_order(l->file + merges, (size_t)s->n_merges * 3);
    s->tokens = (const TokenRecord *)(l->file + tokens);
    s->merges = (const uint32_t *)(l->file + merges);
    s->strings = (const char *)l->file + strings;
    s->strings_bytes = strings_bytes;
}

// llama2.c's tokenizer.bin: i32 max_token_length, then per token f32 score, i32 length,
// bytes. Ids 0, 1, 2 are <unk>, <s> (BOS), </s>; the byte-fallback tokens are spelled
// <0xXX> and are stored here as their one byte, as in the model file.
static void load_llama2c_file(Loaded *l, size_t size) {
    size_t n = 0, p = 4, strings_bytes = 0;
    while (p + 8 <= size) {   // count the tokens
        int32_t len = (int32_t)u32_at(l->file + p + 4);
        if (len < 0 || (size_t)len > size - p - 8) die("%s", "truncated tokenizer.bin");
        p += 8 + (size_t)len, strings_bytes += (size_t)len, n++;
    }
    if (n == 0 || p != size) die("%s", "not a tokenizer.bin");
    l->records = calloc(n, sizeof(TokenRecord));
    l->strings = malloc(strings_bytes + 1);
    size_t off = 0;
    p = 4;
    for (size_t i = 0; i < n; i++) {
        float score;
        uint32_t score_bits = u32_at(l->file + p);   // little-endian f32
        memcpy(&score, &score_bits, 4);
        uint32_t len = u32_at(l->file + p + 4);
        const char *b = (const char *)l->file + p + 8;
        TokenRecord *r = &l->records[i];
        r->offset = (uint32_t)off, r->score = score, r->bytes = len;
        memcpy(l->strings + off, b, len);
        if (len == 6 && memcmp(b, "<0x", 3) == 0 && b[5] == '>') {
            r->flags = TOKEN_BYTE;
            r->bytes = 1;
            l->strings[off] = (char)strtol(b + 3, NULL, 16);
        } else if (i < 3) {
            r->flags = TOKEN_SPECIAL;
        }
        off += r->bytes;
        p += 8 + len;
    }
    TokenizerSpec *s = &l->spec;
    s->type = TOKENIZER_SENTENCEPIECE;
    s->pretokenizer = PRETOK_NONE;
    s->normalizer = NORM_NONE;
    s->bos_id = 1;
    s->vocab_size = (int)n;
    s->tokens = l->records;
    s->strings = l->strings;
    s->strings_bytes = off;
}

static void load(Loaded *l, const char *path) {
    memset(l, 0, sizeof(*l));
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 8) die("%s is too small", path);
    l->file = malloc((size_t)size);
    if (fread(l->file, 1, (size_t)size, f) != (size_t)size) die("cannot read %s", path);
    fclose(f);
    if (memcmp(l->file, "RUNC", 4) == 0) load_run_file(l, (size_t)size);
    else load_llama2c_file(l, (size_t)size);
}

static void unload(Loaded *l) {
    free(l->file);
    free(l->records);
    free(l->strings);
}

// ----------------------------------------------------------------------------
// Helpers

typedef struct {
    char *data;
    size_t len;
} Bytes;

// The text that decoding ids gives back: the NFC form for an NFC tokenizer, less the
// bytes that a byte-level vocab has no token for (Hugging Face drops them: SmolLM2 has
// none for 6 control characters); for SentencePiece the text itself, as decoding after
// BOS drops the dummy-prefix space.
static Bytes expected_round_trip(const Tokenizer *t, const char *text, size_t len) {
    Bytes b;
    if (t->spec.normalizer == NORM_NFC && len > 0) {
        b.data = nfc_normalize(text, len, &b.len);
    } else {
        b.data = malloc(len + 1);
        memcpy(b.data, text, len);
        b.len = len;
    }
    if (t->spec.type == TOKENIZER_BYTE_BPE) {
        size_t kept = 0;
        for (size_t i = 0; i < b.len; i++)
            if (t->byte_token[(unsigned char)b.data[i]] >= 0) b.data[kept++] = b.data[i];
        b.len = kept;
    }
    return b;
}

static Bytes decode_all(const Tokenizer *t, const int *ids, int n) {
    Bytes b = {NULL, 0};
    size_t cap = 16;
    b.data = malloc(cap);
    int prev = t->spec.type == TOKENIZER_SENTENCEPIECE ? t->spec.bos_id : -1;   // as after BOS
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *piece = tokenizer_decode(t, prev, ids[i], &len);
        while (b.len + len > cap) b.data = realloc(b.data, cap *= 2);
        memcpy(b.data + b.len, piece, len);
        b.len += len;
        prev = ids[i];
    }
    return b;
}

// Encodes text; *n gets the count (or -1). The caller frees the ids.
static int *encode(const Tokenizer *t, const char *text, size_t len, int *n) {
    int *ids = malloc(tokenizer_max_ids(t, len) * sizeof(int));
    *n = tokenizer_encode(t, text, len, ids);
    return ids;
}

// A short printable form of text for failure lines (one at a time: a static buffer).
static const char *show(const char *text, size_t len) {
    static char buf[128];
    size_t o = 0, i = 0;
    for (; i < len && o < 100; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, 8, "\\x%02X", c);
    }
    snprintf(buf + o, 8, "%s", i < len ? "..." : "");
    return buf;
}

static void check_round_trip(const Tokenizer *t, const char *text, size_t len, const char *what) {
    int n;
    int *ids = encode(t, text, len, &n);
    if (n < 0) {
        check(0, "%s \"%s\": encode returned %d", what, show(text, len), n);
        free(ids);
        return;
    }
    Bytes want = expected_round_trip(t, text, len), got = decode_all(t, ids, n);
    check(got.len == want.len && memcmp(got.data, want.data, got.len) == 0,
          "%s \"%s\": decode(encode(text)) gives \"%s\"", what, show(text, len), show(got.data, got.len));
    free(want.data);
    free(got.data);
    free(ids);
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static Bytes from_hex(const char *h, size_t n) {
    Bytes b = {malloc(n / 2 + 1), n / 2};
    for (size_t i = 0; i < b.len; i++) {
        int hi = hex_value(h[2 * i]), lo = hex_value(h[2 * i + 1]);
        if (n % 2 || hi < 0 || lo < 0) die("%s", "bad hex in a .tsv file");
        b.data[i] = (char)(hi * 16 + lo);
    }
    return b;
}

// ----------------------------------------------------------------------------
// The reference files

// Checks one reference: encode(text) == the ids listed in want (space separated).
static void check_reference(const Tokenizer *t, const char *name, const Bytes *text, const char *want) {
    int n, n_want = 0;
    int *ids = encode(t, text->data, text->len, &n);
    int *expect = malloc((strlen(want) / 2 + 2) * sizeof(int));
    for (const char *p = want; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        expect[n_want++] = (int)v;
        p = end;
    }
    int same = n == n_want;
    for (int i = 0; same && i < n; i++) same = ids[i] == expect[i];
    if (!same) {
        printf("FAIL %s \"%s\"\n    want", name, show(text->data, text->len));
        for (int i = 0; i < n_want; i++) printf(" %d", expect[i]);
        printf("\n    got ");
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf(n < 0 ? " (%d)\n" : "\n", n);
    }
    check(same, "%s: encode", name);
    free(ids);
    free(expect);
}

static void run_tsv(const Tokenizer *t, const char *dir, const char *file, int chat) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    static char line[1 << 20];
    int lineno = 0, n_references = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0 || line[0] == '#') continue;
        char *hex = line, *ids, *name = NULL;
        if (chat) {
            name = line;
            hex = strchr(line, '\t');
            if (!hex) die("bad line in %s", path);
            *hex++ = '\0';
        }
        ids = strchr(hex, '\t');
        if (!ids) die("bad line in %s", path);
        *ids++ = '\0';
        Bytes text = from_hex(hex, strlen(hex));
        char label[64];
        if (chat) snprintf(label, sizeof(label), "%s %.40s", file, name);
        else snprintf(label, sizeof(label), "%s:%d", file, lineno);
        check_reference(t, label, &text, ids);
        if (!chat) check_round_trip(t, text.data, text.len, label);
        free(text.data);
        n_references++;
    }
    fclose(f);
    check(n_references > 0, "%s holds no reference", path);
}

// --no-chat: the tokenizer has no chat template, and DIR has no chat.tsv to ignore.
static void check_no_chat_tsv(const char *dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/chat.tsv", dir);
    FILE *f = fopen(path, "r");
    check(f == NULL, "%s exists but --no-chat says there are no chat references", path);
    if (f) fclose(f);
}

// ----------------------------------------------------------------------------
// Edge cases: properties only

static void check_invalid_utf8(const Tokenizer *t) {
    static const struct { const char *s; size_t len; } bad[] = {
        {"\x80", 1},                  // stray continuation byte
        {"abc\xC3", 4},               // truncated 2-byte sequence
        {"\xE2\x82", 2},              // truncated 3-byte sequence
        {"\xC0\x80", 2},              // overlong U+0000
        {"\xC1\xBF", 2},              // overlong U+007F
        {"\xE0\x80\xAF", 3},          // overlong '/'
        {"\xF0\x82\x82\xAC", 4},      // overlong U+20AC
        {"\xED\xA0\x80", 3},          // surrogate U+D800
        {"x\xED\xBF\xBFy", 5},        // surrogate U+DFFF
        {"\xF4\x90\x80\x80", 4},      // U+110000
        {"\xF8\x88\x80\x80\x80", 5},  // 5-byte form
        {"\xFF", 1},
        {"ok<|im_end|>\xFE", 13},
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        int n;
        int *ids = encode(t, bad[i].s, bad[i].len, &n);
        check(n == -1, "invalid UTF-8 \"%s\": encode returned %d, not -1", show(bad[i].s, bad[i].len), n);
        free(ids);
    }
    // The largest valid characters of each length are accepted.
    const char *good = "\x7F\xDF\xBF\xEF\xBF\xBF\xF4\x8F\xBF\xBF";
    check_round_trip(t, good, strlen(good), "longest code points");
}

static void check_texts(const Tokenizer *t) {
    static const char *const texts[] = {
        "a", " ", "  ", "\n", "\r\n", "\t \t",
        "Hello, world! It's 3:45pm.",
        "THEY'LL SAY WE'D DONE IT 'S 'T 'RE 'VE 'M 'LL 'D x'ſ 'ſ",   // U+017F folds to s
        "日本語の文章。中文，标点！",                 // CJK and CJK punctuation
        "한국어 텍스트 \xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB",  // Hangul, and jamo
        "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇳🇱 ❤️",
        "digits ٠١٢٣ ۴۵۶ ०१२ ๑๒๓ ²³ ½ Ⅻ 𝟙𝟚 ①",   // numbers of other scripts
        "e\xCC\x81 a\xCC\x8A\xCC\x81 \xE2\x84\xAB \xE1\xBE\x82 \xEF\xAC\xAC",   // NFC-sensitive
        "\xCC\x81\xCC\x81 starts with marks",
        "spaces\xC2\xA0nbsp\xE2\x80\x83\x65m\xE3\x80\x80ideographic\xE2\x80\xA8ls\xE2\x80\xA9ps\xC2\x85nel",
        "zero\xE2\x80\x8Bwidth\xEF\xBB\xBF bom",
        "tabs\t\tand\r\r\n\n\nlines   \n  ",
        "trailing spaces   ",
        "   ",
        "'", "''", "'s", " 's", "\n's",
        "<|im_start|>", "<|im_start|><|im_end|>", "<|im_start|x", "<|endoftext|><|endoftext|>",
        "x<|im_start|>user\n 1 2  3<|im_end|>\n",
    };
    for (size_t i = 0; i < COUNT_OF(texts); i++) check_round_trip(t, texts[i], strlen(texts[i]), "edge");
    int n;
    int *ids = encode(t, "", 0, &n);
    check(n == 0, "empty text: encode returned %d ids", n);
    free(ids);
    size_t len;
    check(tokenizer_decode(t, -1, -1, &len) != NULL && len == 0, "decode of id -1");
    check(tokenizer_decode(t, -1, t->spec.vocab_size, &len) != NULL && len == 0, "decode of id vocab_size");
}

// Long inputs must stay fast: one 100,000-byte word would take minutes if merging were
// quadratic.
static void check_long(const Tokenizer *t) {
    const char *units[] = {"a", "ab", "é", "日", " ", "\n", "1", "😀", "ab ", " \n", "\xCC\x81\xCC\x96"};
    for (size_t u = 0; u < COUNT_OF(units); u++) {
        size_t ul = strlen(units[u]), len = 0;
        char *text = malloc(100000 + 8);
        while (len + ul <= 100000) memcpy(text + len, units[u], ul), len += ul;
        clock_t t0 = clock();
        char what[64];
        snprintf(what, sizeof(what), "long run of \"%s\"", show(units[u], ul));
        check_round_trip(t, text, len, what);
        double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
        check(s < 20, "%s took %.1f s", what, s);
        free(text);
    }
}

static int count_id(const int *ids, int n, int id) {
    int k = 0;
    for (int i = 0; i < n; i++) k += ids[i] == id;
    return k;
}

// Added tokens come out whole, wherever they stand, and only their exact text matches.
static void check_added(const Tokenizer *t) {
    for (int a = 0; a < t->n_added && a < 16; a++) {
        int id = t->added[a].id;
        size_t alen;
        const char *content = token_bytes(&t->spec, id, &alen);
        const char *around[][2] = {{"", ""}, {"x", "y"}, {" ", " "}, {"1", "2"}, {"\n", "\n"}};
        for (size_t k = 0; k < COUNT_OF(around); k++) {
            char text[512];
            size_t l0 = strlen(around[k][0]), l1 = strlen(around[k][1]);
            if (alen * 2 + l0 + l1 > sizeof(text)) continue;
            memcpy(text, around[k][0], l0);
            memcpy(text + l0, content, alen);
            memcpy(text + l0 + alen, content, alen);   // twice, back to back
            memcpy(text + l0 + 2 * alen, around[k][1], l1);
            size_t len = l0 + 2 * alen + l1;
            int n;
            int *ids = encode(t, text, len, &n);
            check(n > 0 && count_id(ids, n, id) == 2, "added token \"%s\" is not kept whole in \"%s\"",
                  show(content, alen), show(text, len));
            free(ids);
            check_round_trip(t, text, len, "added tokens");
            if (alen > 1) {   // a prefix alone is no match
                int *ids2 = encode(t, text, alen - 1, &n);
                check(n >= 0 && count_id(ids2, n, id) == 0, "a prefix of added token \"%s\" matched",
                      show(content, alen));
                free(ids2);
            }
        }
    }
}

static int same_encoding(const Tokenizer *t, const char *a, const char *b) {
    int na, nb;
    int *x = encode(t, a, strlen(a), &na), *y = encode(t, b, strlen(b), &nb);
    int same = na == nb && na >= 0 && memcmp(x, y, (size_t)na * sizeof(int)) == 0;
    free(x);
    free(y);
    return same;
}

// Canonically equivalent texts encode alike under NFC.
static void check_nfc(const Tokenizer *t) {
    if (t->spec.normalizer != NORM_NFC) return;
    static const char *const pairs[][2] = {
        {"e\xCC\x81", "\xC3\xA9"},                                    // e + acute = é
        {"cafe\xCC\x81 ok", "caf\xC3\xA9 ok"},
        {"\xE2\x84\xAB", "\xC3\x85"},                                 // Angstrom sign = Å
        {"a\xCC\x8A\xCC\x81", "\xC7\xBB"},                            // a + ring + acute = ǻ
        {"\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", "\xED\x95\x9C"},     // jamo = 한
        {"q\xCC\xA3\xCC\x87", "q\xCC\x87\xCC\xA3"},                   // marks reordered by class
        // These two lengthen under NFC (tokenizer_max_ids allows for it)
        {"\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC"},                  // excluded from composition
        {"\xCD\x84", "\xCC\x88\xCC\x81"},                                 // non-starter decomposition
    };
    for (size_t i = 0; i < COUNT_OF(pairs); i++)
        check(same_encoding(t, pairs[i][0], pairs[i][1]), "NFC: \"%s\" and its NFC-equivalent (pair %zu) encode differently",
              show(pairs[i][0], strlen(pairs[i][0])), i);
}

// SentencePiece: a '▁' (U+2581) typed in the text is a space to SentencePiece.
static void check_sentencepiece(const Tokenizer *t) {
    if (t->spec.type != TOKENIZER_SENTENCEPIECE) return;
    check(same_encoding(t, "a\xE2\x96\x81\x62 \xE2\x96\x81", "a b  "), "SentencePiece: U+2581 is not a space");
    check(same_encoding(t, "\xE2\x96\x81", " "), "SentencePiece: U+2581 alone is not a space");
}

// Random texts from a pool of awkward pieces, and random bytes: no crash, and a round
// trip whenever the text is valid UTF-8.
static void check_random(const Tokenizer *t) {
    static const char *const pool[] = {
        "a", "Z", "é", "e\xCC\x81", "\xCC\x81", "ß", "ſ", "日", "한", "\xE1\x84\x92", "\xE1\x85\xA1",
        "0", "7", "٣", "²", " ", "  ", "\t", "\n", "\r", "\r\n", "\xC2\xA0", "\xE3\x80\x80",
        "'", "'s", "'LL", ".", ",", "!?", "(", "$", "😀", "\xE2\x80\x8D", "<|im_end|>", "<|", "x",
    };
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    char text[400];
    for (int round = 0; round < 400; round++) {
        size_t len = 0;
        int pieces = (int)(seed >> 59);
        for (int k = 0; k < pieces; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const char *p = pool[(seed >> 33) % COUNT_OF(pool)];
            size_t pl = strlen(p);
            if (len + pl < sizeof(text)) memcpy(text + len, p, pl), len += pl;
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        check_round_trip(t, text, len, "random");
    }
    int valid_ok = 1;
    for (int round = 0; round < 400; round++) {
        size_t len = round % 24;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            text[i] = (char)(seed >> 56);
        }
        int n;
        int *ids = encode(t, text, len, &n);
        if (utf8_is_valid(text, len)) check_round_trip(t, text, len, "random bytes");
        else valid_ok &= n == -1;
        free(ids);
    }
    check(valid_ok, "random invalid bytes were not rejected");
}

// tokenizer_build refuses broken tables with a message, and does not crash.
static void check_build_rejects(const TokenizerSpec *good) {
    size_t vbytes = (size_t)good->vocab_size * sizeof(TokenRecord);
    TokenRecord *tok = malloc(vbytes);
    uint32_t *merges = malloc((size_t)good->n_merges * 12 + 12);
    Tokenizer t;
    for (int c = 0; c < 12; c++) {
        memcpy(tok, good->tokens, vbytes);
        if (good->n_merges) memcpy(merges, good->merges, (size_t)good->n_merges * 12);
        TokenizerSpec s = *good;
        s.tokens = tok;
        s.merges = merges;
        const char *what = "";
        int id = good->vocab_size - 1;
        switch (c) {
        case 0: what = "vocab_size 0"; s.vocab_size = 0; break;
        case 1: what = "unknown type"; s.type = 7; break;
        case 2: what = "token outside the blob"; tok[id].offset = (uint32_t)s.strings_bytes; tok[id].bytes = 1; break;
        case 3: what = "huge token offset"; tok[id].offset = 0xFFFFFFFFu; tok[id].bytes = 0xFFFFFFFFu; break;
        case 4: what = "unknown flags"; tok[id].flags |= 64; break;
        case 5: what = "bos_id out of range"; s.bos_id = s.vocab_size; break;
        case 6: what = "NaN score"; tok[id].score = NAN; break;
        case 7:   // (a byte-level vocab may lack bytes, SentencePiece needs them all)
            what = "a missing byte token";
            if (s.type != TOKENIZER_SENTENCEPIECE) s.vocab_size = -5;
            for (int i = 0; i < s.vocab_size; i++)
                if ((tok[i].flags & TOKEN_BYTE) && byte_token_value(&s, i) == 'A') tok[i].flags = 0;
            break;
        case 8: what = "merge id out of range"; s.n_merges = 1; merges[0] = merges[1] = merges[2] = (uint32_t)s.vocab_size; break;
        case 9: what = "merge result mismatch"; s.n_merges = 1; merges[0] = merges[1] = merges[2] = 0; break;
        case 10: what = "negative merge count"; s.n_merges = -1; break;
        case 11: what = "empty added token"; tok[id].flags = TOKEN_ADDED; tok[id].bytes = 0; break;
        }
        const char *err = tokenizer_build(&t, &s);
        check(err != NULL, "tokenizer_build accepted a spec with %s", what);
        if (!err) tokenizer_free(&t);
    }
    free(tok);
    free(merges);
}

int main(int argc, char **argv) {
    int no_chat = argc == 4 && !strcmp(argv[3], "--no-chat");
    if (argc != 3 && !no_chat) {
        fprintf(stderr, "usage: %s MODEL DIR [--no-chat]\n", argv[0]);
        return 2;
    }
    Loaded l;
    load(&l, argv[1]);
    Tokenizer t;
    const char *err = tokenizer_build(&t, &l.spec);
    if (err) die("tokenizer_build: %s", err);

    // One "ok" line per group of checks without a failure (for tests/run_tests.sh).
    const char *name = strrchr(argv[2], '/') ? strrchr(argv[2], '/') + 1 : argv[2];
    int passed = n_passed, failed = n_failed;
    for (int group = 0; group < 9; group++) {
        const char *what = "";
        switch (group) {
        case 0: what = "encode.tsv reference ids and round trip"; run_tsv(&t, argv[2], "encode.tsv", 0); break;
        case 1:
            if (no_chat) {
                what = "no chat template, no chat.tsv";
                check_no_chat_tsv(argv[2]);
            } else {
                what = "chat.tsv reference ids";
                run_tsv(&t, argv[2], "chat.tsv", 1);
            }
            break;
        case 2: what = "invalid UTF-8 is refused"; check_invalid_utf8(&t); break;
        case 3: what = "edge cases round-trip"; check_texts(&t); break;
        case 4: what = "long inputs"; check_long(&t); break;
        case 5: what = "added tokens kept whole"; check_added(&t); break;
        case 6: what = "normalization (NFC, SentencePiece spaces)"; check_nfc(&t); check_sentencepiece(&t); break;
        case 7: what = "random texts round-trip"; check_random(&t); break;
        case 8: what = "tokenizer_build refuses broken tables"; check_build_rejects(&l.spec); break;
        }
        if (n_failed == failed && n_passed > passed) printf("ok tokenizer %s: %s (%d checks)\n", name, what, n_passed - passed);
        passed = n_passed, failed = n_failed;
    }

    tokenizer_free(&t);
    unload(&l);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed > 0;
}
