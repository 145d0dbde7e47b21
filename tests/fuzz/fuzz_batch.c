// fuzz_batch.c: libFuzzer target: the line parser of --batch (parse_batch_line, eval.c).
//
// Input: a whole batch file. It is cut into lines as batch() cuts it (read_line from a
// stream; a byte-order mark skipped at the start of the file only; empty lines
// skipped), and every line goes through parse_batch_line, each in a buffer of exactly
// its size (so that AddressSanitizer sees a read past its end). Checked:
//   - the line is accepted exactly when an independent strict reader accepts it: RFC
//     8259 for the object (whitespace, strings and their escapes, surrogate pairs,
//     numbers), the keys of --batch each at most once with "prompt" among them, each
//     value of its type and range (an integer: no fractional part), no \u0000; or,
//     when the line does not begin with '{', any UTF-8 text without a NUL byte;
//   - an accepted line gives exactly the reference's prompt, system prompt and sampler
//     settings, and leaves the settings it does not name at their defaults;
//   - a refused line has a message: non-empty, NUL-terminated in its buffer, UTF-8;
//   - the prompt and system prompt of an accepted line come back unchanged through
//     run.c's JSON string writer (text_append_json, which --batch's output uses) and
//     the parser again; and any line, written by that writer as a prompt and parsed,
//     gives Python's bytes.decode(errors="replace") of the line.

#include "fuzz_common.h"

#include <math.h>

// ----------------------------------------------------------------------------
// The reference reader: a cursor over the line, one byte at a time, -1 at its end.

typedef struct {
    const unsigned char *s;
    size_t n, i;
} Cursor;

static int peek(const Cursor *c) { return c->i < c->n ? c->s[c->i] : -1; }

static void skip_space(Cursor *c) {
    while (peek(c) == ' ' || peek(c) == '\t' || peek(c) == '\n' || peek(c) == '\r') c->i++;
}

static int hex_value(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// "\uXXXX" at the cursor (at the backslash): the code unit, or -1.
static long code_unit(Cursor *c) {
    if (peek(c) != '\\') return -1;
    c->i++;
    if (peek(c) != 'u') return -1;
    c->i++;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(peek(c));
        if (h < 0) return -1;
        v = v * 16 + h;
        c->i++;
    }
    return v;
}

// UTF-8 by its table: a lead byte with the length's marker, then 6 bits per byte.
static void put_utf8(Text *out, unsigned long cp) {
    static const unsigned long limit[4] = {0x80, 0x800, 0x10000, 0x110000};
    static const unsigned char marker[4] = {0x00, 0xC0, 0xE0, 0xF0};
    size_t n = 1;
    while (cp >= limit[n - 1]) n++;
    unsigned char b[4];
    b[0] = (unsigned char)(marker[n - 1] | cp >> (6 * (n - 1)));
    for (size_t k = 1; k < n; k++) b[k] = (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3F));
    text_append(out, (const char *)b, n);
}

// The JSON string at the cursor (at its quote), decoded into out. Returns 0 if it is
// malformed or holds \u0000.
static int ref_string(Cursor *c, Text *out) {
    static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";   // pairs: escape, byte
    out->len = 0;
    text_append(out, "", 0);
    c->i++;
    for (;;) {
        int ch = peek(c);
        if (ch < 0x20) return 0;   // the end of the line, or a control character
        if (ch == '"') {
            c->i++;
            return 1;
        }
        if (ch != '\\') {
            text_append(out, (const char *)c->s + c->i++, 1);
            continue;
        }
        int e = c->i + 1 < c->n ? c->s[c->i + 1] : -1;
        const char *pair = NULL;
        for (size_t k = 0; k + 1 < sizeof(escapes) && !pair; k += 2)
            if (escapes[k] == e) pair = escapes + k;
        if (pair) {
            text_append(out, pair + 1, 1);
            c->i += 2;
            continue;
        }
        long hi = code_unit(c);
        unsigned long cp = (unsigned long)hi;
        if (hi < 0 || hi == 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) return 0;
        if (hi >= 0xD800 && hi <= 0xDBFF) {
            long lo = code_unit(c);
            if (lo < 0xDC00 || lo > 0xDFFF) return 0;
            cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
        }
        put_utf8(out, cp);
    }
}

// The JSON number at the cursor, by RFC 8259's grammar, as a state machine. Returns
// its length (0 if there is none); the cursor is left after it.
static size_t ref_number(Cursor *c) {
    enum { START, SIGN, ZERO, INT, DOT, FRAC, EXP, EXP_SIGN, EXP_DIGITS } state = START;
    size_t start = c->i;
    for (;; c->i++) {
        int ch = peek(c), digit = ch >= '0' && ch <= '9';
        if (state == START && ch == '-') state = SIGN;
        else if ((state == START || state == SIGN) && ch == '0') state = ZERO;
        else if ((state == START || state == SIGN) && digit) state = INT;
        else if (state == INT && digit) state = INT;
        else if ((state == ZERO || state == INT) && ch == '.') state = DOT;
        else if ((state == DOT || state == FRAC) && digit) state = FRAC;
        else if ((state == ZERO || state == INT || state == FRAC) && (ch == 'e' || ch == 'E')) state = EXP;
        else if (state == EXP && (ch == '+' || ch == '-')) state = EXP_SIGN;
        else if ((state == EXP || state == EXP_SIGN || state == EXP_DIGITS) && digit) state = EXP_DIGITS;
        else break;
    }
    int complete = state == ZERO || state == INT || state == FRAC || state == EXP_DIGITS;
    return complete ? c->i - start : 0;
}

// What a line must give: the keys it names, their values. The ranges are those the
// README documents (top_k and max_new_tokens up to FORMAT.md's vocabulary and context
// limits; repetition_penalty as --repeat-penalty takes it; a seed below 2^53).
enum { R_PROMPT, R_SYSTEM, R_TEMPERATURE, R_TOP_K, R_TOP_P, R_REPETITION_PENALTY, R_SEED, R_MAX_NEW_TOKENS, R_KEYS };
static const struct {
    const char *name;
    int is_string, is_integer;
    double lo, hi;
} ref_keys[R_KEYS] = {
    {"prompt", 1, 0, 0, 0},      {"system", 1, 0, 0, 0},          {"temperature", 0, 0, 0, 100},
    {"top_k", 0, 1, 0, MAX_VOCAB}, {"top_p", 0, 0, 0, 1},         {"repetition_penalty", 0, 0, 0.01, 100},
    {"seed", 0, 1, 0, 9007199254740991.0},                        {"max_new_tokens", 0, 1, -1, MAX_SEQ},
};

typedef struct {
    int named[R_KEYS];
    double value[R_KEYS];
    Text prompt, system, key;
} Expected;

// One "key": value member at the cursor into e. Returns 0 if the line must be refused.
static int ref_member(Cursor *c, Expected *e) {
    if (peek(c) != '"' || !ref_string(c, &e->key)) return 0;
    skip_space(c);
    if (peek(c) != ':') return 0;
    c->i++;
    skip_space(c);
    int k = 0;
    while (k < R_KEYS && (e->key.len != strlen(ref_keys[k].name) || strcmp(e->key.data, ref_keys[k].name))) k++;
    if (k == R_KEYS || e->named[k]) return 0;   // unknown, or named twice
    e->named[k] = 1;
    if (ref_keys[k].is_string) return peek(c) == '"' && ref_string(c, k == R_PROMPT ? &e->prompt : &e->system);
    size_t start = c->i, len = ref_number(c);
    if (!len) return 0;
    char *copy = malloc(len + 1);
    memcpy(copy, c->s + start, len);
    copy[len] = '\0';
    double v = strtod(copy, NULL);
    free(copy);
    e->value[k] = v;
    if (ref_keys[k].is_integer && v != trunc(v)) return 0;
    return v >= ref_keys[k].lo && v <= ref_keys[k].hi;
}

// Whether the line (UTF-8, no NUL) must be accepted, and what it gives in e.
static int ref_accepts(const char *line, size_t len, Expected *e) {
    memset(e->named, 0, sizeof(e->named));
    Cursor c = {(const unsigned char *)line, len, 0};
    skip_space(&c);
    if (peek(&c) != '{') {
        e->prompt.len = 0;
        text_append(&e->prompt, line, len);
        e->named[R_PROMPT] = 1;
        return 1;
    }
    c.i++;
    skip_space(&c);
    if (peek(&c) == '}') {
        c.i++;
    } else {
        for (;;) {
            if (!ref_member(&c, e)) return 0;
            skip_space(&c);
            int ch = peek(&c);
            c.i++;
            if (ch == '}') break;
            if (ch != ',') return 0;
            skip_space(&c);
        }
    }
    skip_space(&c);
    return c.i == c.n && e->named[R_PROMPT];
}

// ----------------------------------------------------------------------------
// The checks

static const SamplerConfig defaults = {0.75f, 7, 0.5f, 1.25f, 12345};
enum { DEFAULT_MAX_NEW_TOKENS = 77 };

static const char *parse(const char *line, size_t len, BatchItem *item, char *err) {
    char *exact = malloc(len + 1);
    memcpy(exact, line, len);
    exact[len] = '\0';
    item->has_system = 0;   // as batch() prepares each line
    item->sampler = defaults;
    item->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
    memset(err, 0x7F, BATCH_ERROR_SIZE);
    const char *why = parse_batch_line(exact, len, item, err);
    free(exact);
    return why;
}

static int same_text(const Text *a, const Text *b) {
    return a->len == b->len && memcmp(a->data ? a->data : "", b->data ? b->data : "", a->len) == 0;
}

static void check_item(const BatchItem *item, const Expected *e) {
    CHECK(same_text(&item->prompt, &e->prompt), "the prompt differs from the reference's");
    CHECK(item->prompt.len == strlen(item->prompt.data), "the prompt holds a NUL byte");
    CHECK(item->has_system == e->named[R_SYSTEM], "has_system is %d", item->has_system);
    CHECK(!e->named[R_SYSTEM] || same_text(&item->system, &e->system), "the system prompt differs");
    const SamplerConfig *s = &item->sampler;
    const double *v = e->value;
    CHECK(s->temperature == (e->named[R_TEMPERATURE] ? (float)v[R_TEMPERATURE] : defaults.temperature),
          "temperature %g", s->temperature);
    CHECK(s->top_k == (e->named[R_TOP_K] ? (int)v[R_TOP_K] : defaults.top_k), "top_k %d", s->top_k);
    CHECK(s->top_p == (e->named[R_TOP_P] ? (float)v[R_TOP_P] : defaults.top_p), "top_p %g", s->top_p);
    CHECK(s->rng == (e->named[R_SEED] ? (uint64_t)v[R_SEED] : defaults.rng), "seed %llu", (unsigned long long)s->rng);
    CHECK(s->repetition_penalty == (e->named[R_REPETITION_PENALTY] ? (float)v[R_REPETITION_PENALTY]
                                                                    : defaults.repetition_penalty),
          "repetition_penalty %g", s->repetition_penalty);
    CHECK(item->max_new_tokens == (e->named[R_MAX_NEW_TOKENS] ? (int)v[R_MAX_NEW_TOKENS] : DEFAULT_MAX_NEW_TOKENS),
          "max_new_tokens %d", item->max_new_tokens);
}

// {"system": <system>, "prompt": <prompt>} written by text_append_json, parsed again.
static void check_round_trip(const BatchItem *item, Expected *e) {
    Text line = {0};
    text_puts(&line, "{");
    if (item->has_system) {
        text_puts(&line, "\"system\": ");
        text_append_json(&line, item->system.data, item->system.len);
        text_puts(&line, ", ");
    }
    text_puts(&line, "\"prompt\": ");
    text_append_json(&line, item->prompt.data, item->prompt.len);
    text_puts(&line, "}");
    BatchItem again = {0};
    char err[BATCH_ERROR_SIZE];
    const char *why = parse(line.data, line.len, &again, err);
    CHECK(!why, "the written prompt is refused: %s", why);
    CHECK(same_text(&again.prompt, &item->prompt), "the prompt changed through the JSON writer and back");
    CHECK(again.has_system == item->has_system && (!item->has_system || same_text(&again.system, &item->system)),
          "the system prompt changed through the JSON writer and back");
    CHECK(ref_accepts(line.data, line.len, e), "the reference refuses the written line");
    text_free(&line);
    text_free(&again.prompt);
    text_free(&again.system);
}

// Any bytes without NUL, written as a prompt and parsed: their "replace" decoding.
static void check_writer(const char *raw, size_t len) {
    if (memchr(raw, '\0', len)) return;   // the writer gives \u0000, which a prompt cannot hold
    Text line = {0}, expect = {0};
    text_puts(&line, "{\"prompt\":");
    text_append_json(&line, raw, len);
    text_puts(&line, "}");
    reference_replace((const unsigned char *)raw, len, &expect);
    text_append(&expect, "", 0);
    BatchItem item = {0};
    char err[BATCH_ERROR_SIZE];
    const char *why = parse(line.data, line.len, &item, err);
    CHECK(!why, "a prompt written by text_append_json is refused: %s", why);
    CHECK(same_text(&item.prompt, &expect), "text_append_json then the parser is not decode(errors=\"replace\")");
    text_free(&line);
    text_free(&expect);
    text_free(&item.prompt);
    text_free(&item.system);
}

static void check_line(const char *line, size_t len, BatchItem *item, Expected *e) {
    char err[BATCH_ERROR_SIZE];
    const char *why = parse(line, len, item, err);
    int accept = !memchr(line, '\0', len) && ref_utf8_valid(line, len) && ref_accepts(line, len, e);
    CHECK((why == NULL) == accept, "the parser %s the line, the reference %s it (%s)", why ? "refuses" : "accepts",
          accept ? "accepts" : "refuses", why ? why : "");
    if (why) {
        size_t n = strnlen(err, BATCH_ERROR_SIZE);
        CHECK(why == err && n > 0 && n < BATCH_ERROR_SIZE, "the message is empty or not terminated");
        CHECK(ref_utf8_valid(err, n), "the message is not valid UTF-8: %s", err);
    } else {
        check_item(item, e);
        check_round_trip(item, e);
    }
    check_writer(line, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    FILE *f = fmemopen((void *)data, size, "rb");
    CHECK(f, "fmemopen failed");
    Text line = {0};
    BatchItem item = {0};
    Expected e = {0};
    for (int line_no = 1; read_line(&line, f); line_no++) {   // as batch() reads its file
        size_t skip = line_no == 1 && !strncmp(line.data, "\xEF\xBB\xBF", 3) ? 3 : 0;
        if (line.len == skip) continue;
        check_line(line.data + skip, line.len - skip, &item, &e);
    }
    fclose(f);
    text_free(&line);
    text_free(&item.prompt);
    text_free(&item.system);
    text_free(&e.prompt);
    text_free(&e.system);
    text_free(&e.key);
    return 0;
}
