// tokenizer.c: text <-> token ids for run.c.
//
// INTERFACE (run.c includes this file; the tables come straight from the model file,
// see FORMAT.md "Tokenizer"):
//
//   typedef struct { uint32_t offset, bytes; float score; uint32_t flags; } TokenRecord;
//   enum { TOKEN_ADDED = 1, TOKEN_SPECIAL = 2, TOKEN_BYTE = 4 };
//   enum { TOKENIZER_BYTE_BPE = 1, TOKENIZER_SENTENCEPIECE = 2 };
//   enum { PRETOK_NONE = 0, PRETOK_SMOLLM2 = 1, PRETOK_LLAMA3 = 2, PRETOK_QWEN2 = 3 };
//   enum { NORM_NONE = 0, NORM_NFC = 1 };
//
//   typedef struct {                 // what the model file says (pointers into the mmap)
//       int type, pretokenizer, normalizer, ignore_merges;
//       int bos_id;                                   // -1 = none (SentencePiece decode)
//       int vocab_size;  const TokenRecord *tokens;   // [vocab_size]
//       int n_merges;    const uint32_t *merges;      // [n_merges][3] left, right, result
//       const char *strings; uint64_t strings_bytes;
//   } TokenizerSpec;
//
//   typedef struct Tokenizer Tokenizer;   // the spec plus lookup tables built at load
//
//   // Validates the spec (string ranges, merge ids < vocab, ...) and builds the lookup
//   // tables. Returns NULL on success, else a static message naming the problem.
//   const char *tokenizer_build(Tokenizer *t, const TokenizerSpec *spec);
//   void tokenizer_free(Tokenizer *t);
//
//   // Encodes len bytes of UTF-8 text, exactly like Hugging Face
//   // `tokenizer.encode(text, add_special_tokens=False)` (no BOS). Added tokens in the
//   // text are matched atomically. ids must have room for tokenizer_max_ids(t, len).
//   // Returns the number of ids, or -1 if the text is not valid UTF-8 (also, in cases
//   // ordinary text never meets: the text is over 256 MiB, or memory runs out).
//   int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int *ids);
//
//   // The most ids len bytes of text can become: one per byte, two more for the
//   // SentencePiece dummy prefix, and NFC can make text up to 3 times longer.
//   size_t tokenizer_max_ids(const Tokenizer *t, size_t len);
//
//   // The bytes to print for token `id` following token `prev` (-1 at the start):
//   // SentencePiece drops the leading space of the first piece after BOS.
//   const char *tokenizer_decode(const Tokenizer *t, int prev, int id, size_t *len);
//
// HOW TEXT BECOMES IDS
//
// Byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen2), as Hugging Face `tokenizers` does it:
//
//   text -> added tokens -> normalizer -> pre-tokenizer -> BPE on each pre-token -> ids
//
//   1. Added tokens (`<|im_start|>`, ...) are found in the raw text first and become
//      their own ids; only the text between them goes through steps 2 to 4.
//   2. The normalizer rewrites the text: NFC (Qwen2) composes "e" + U+0301 into "é".
//   3. The pre-tokenizer cuts the text into pre-tokens (roughly: words, numbers, runs of
//      punctuation or space) with a regex. BPE never merges across two pre-tokens.
//   4. BPE starts from one token per byte and applies the merge rules, lowest rank first.
//
// SentencePiece BPE (Llama 2, llama2.c's tokenizer.bin): a space is put in front of the
// text, every character starts as its piece (or as its bytes when it is no piece), and
// adjacent pieces are merged while their concatenation is a piece, highest score first.
//
// The file reads top to bottom: UTF-8, Unicode classes, NFC, pre-tokenizers, lookup
// tables, tokenizer_build, the merge loop, encode, decode.

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scripts/tokenizer_tables.h"

typedef struct { uint32_t offset, bytes; float score; uint32_t flags; } TokenRecord;
enum { TOKEN_ADDED = 1, TOKEN_SPECIAL = 2, TOKEN_BYTE = 4 };
enum { TOKENIZER_BYTE_BPE = 1, TOKENIZER_SENTENCEPIECE = 2 };
enum { PRETOK_NONE = 0, PRETOK_SMOLLM2 = 1, PRETOK_LLAMA3 = 2, PRETOK_QWEN2 = 3 };
enum { NORM_NONE = 0, NORM_NFC = 1 };

typedef struct {
    int type, pretokenizer, normalizer, ignore_merges;
    int bos_id;
    int vocab_size;
    const TokenRecord *tokens;
    int n_merges;
    const uint32_t *merges;
    const char *strings;
    uint64_t strings_bytes;
} TokenizerSpec;

// A hash table from a key to an index (a token id or a merge rank). The keys are not
// stored: a slot holds the index, and the key is read back from the token or merge
// table to compare. Open addressing with linear probing; -1 marks an empty slot. The
// capacity is a power of two at least twice the number of entries, so there is always
// an empty slot to end a probe.
typedef struct {
    int32_t *slots;
    uint32_t mask;   // capacity - 1
} IndexTable;

// An added token, for matching in the raw text.
typedef struct {
    int id;
    uint32_t len;
    unsigned char first;   // its first byte
} AddedToken;

typedef struct Tokenizer {
    TokenizerSpec spec;
    IndexTable pieces;      // token bytes -> id, for the tokens the model itself produces
    IndexTable merge_map;   // (left id, right id) -> merge rank (byte-level BPE)
    int byte_token[256];    // byte-level BPE: the token of each single byte (-1: none);
                            // SentencePiece: the byte-fallback token <0xXX> of each byte
    AddedToken *added;      // sorted by first byte, then longest first
    int n_added;
    int added_start[257];   // added[added_start[b] .. added_start[b+1]) begin with byte b
} Tokenizer;

// Upper limits that keep every count in an int and every allocation size in range.
#define TOKENIZER_MAX_VOCAB (1 << 24)
#define TOKENIZER_MAX_MERGES (1 << 24)
#define TOKENIZER_MAX_TEXT ((size_t)1 << 28)

// ----------------------------------------------------------------------------
// UTF-8

// Length of the UTF-8 sequence that starts with byte b, or 0 if b cannot start one: a
// continuation byte, C0 or C1 (always overlong), F5..FF (beyond U+10FFFF).
static int utf8_lead_length(unsigned char b) {
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

// Are s[1..have) valid continuation bytes for the lead byte s[0]? Besides the 10xxxxxx
// form, the second byte's range rules out overlong forms (after E0 and F0), UTF-16
// surrogates (after ED) and code points beyond U+10FFFF (after F4).
static int utf8_continuation_ok(const unsigned char *s, int have) {
    for (int i = 1; i < have; i++) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xBF;
        if (i == 1 && s[0] == 0xE0) lo = 0xA0;
        if (i == 1 && s[0] == 0xED) hi = 0x9F;
        if (i == 1 && s[0] == 0xF0) lo = 0x90;
        if (i == 1 && s[0] == 0xF4) hi = 0x8F;
        if (c < lo || c > hi) return 0;
    }
    return 1;
}

// Decodes the character at s[0..n) (n >= 1) into *cp and returns its length in bytes,
// or 0 if the bytes there are not a valid UTF-8 character. Rejected, as a Python str
// (what Hugging Face takes) cannot hold them: a stray continuation byte, a truncated
// sequence, an overlong form (C0 80 for U+0000), a UTF-16 surrogate (U+D800..U+DFFF),
// and anything above U+10FFFF.
static int utf8_decode_char(const char *text, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)text;
    int len = utf8_lead_length(s[0]);
    if (len == 0 || (size_t)len > n || !utf8_continuation_ok(s, len)) return 0;
    uint32_t c = len == 1 ? s[0] : s[0] & (0x7Fu >> len);  // the lead byte's payload bits
    for (int i = 1; i < len; i++) c = c << 6 | (s[i] & 0x3Fu);
    *cp = c;
    return len;
}

static int utf8_is_valid(const char *s, size_t n) {
    uint32_t cp;
    for (size_t p = 0; p < n;) {
        int len = utf8_decode_char(s + p, n - p, &cp);
        if (len == 0) return 0;
        p += (size_t)len;
    }
    return 1;
}

// Writes cp (a valid code point) as UTF-8 to out; returns the number of bytes.
static int utf8_encode_char(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

// ----------------------------------------------------------------------------
// Unicode character classes: \p{L}, \p{N} and \s of the pre-tokenizer regexes
//
// The tables (scripts/tokenizer_tables.h, made by scripts/gen_unicode.py) hold sorted
// ranges, of Unicode 16.0 as in Hugging Face's regex engine. Every character is in
// exactly one of four classes, since letters, numbers and white space do not overlap;
// "other" is [^\s\p{L}\p{N}] (punctuation, symbols, emoji, combining marks, controls
// that are not white space, ...).

enum { CHAR_LETTER, CHAR_NUMBER, CHAR_SPACE, CHAR_OTHER };

static int in_ranges(const UnicodeRange *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;   // binary search for the range that could hold cp
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].first) hi = mid;
        else if (cp > r[mid].last) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static int char_class(uint32_t cp) {
    if (cp < 0x80) {   // ASCII, the common case, without the tables
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CHAR_LETTER;
        if (cp >= '0' && cp <= '9') return CHAR_NUMBER;
        if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return CHAR_SPACE;
        return CHAR_OTHER;
    }
    if (in_ranges(unicode_letter, COUNT_OF(unicode_letter), cp)) return CHAR_LETTER;
    if (in_ranges(unicode_number, COUNT_OF(unicode_number), cp)) return CHAR_NUMBER;
    if (in_ranges(unicode_white_space, COUNT_OF(unicode_white_space), cp)) return CHAR_SPACE;
    return CHAR_OTHER;
}

// ----------------------------------------------------------------------------
// NFC normalization (Unicode Standard Annex #15)
//
// NFC = canonical decomposition, then canonical ordering, then canonical composition:
//   1. Decompose every character fully: "é" (U+00E9) -> "e" U+0301.
//   2. Sort each run of combining marks (characters whose combining class is not 0)
//      by combining class, keeping the order of equal classes (a stable sort).
//   3. From left to right, combine each mark with the last starter (class 0) before it
//      when the pair has a primary composite and no character in between blocks it (a
//      blocker is a character with class 0 or with a class >= the mark's class).
// Hangul syllables decompose and compose by arithmetic instead of tables. The tables
// hold only the characters of Unicode 9.0, as Hugging Face's NFC does: a character
// assigned later has no decomposition and combining class 0 (see scripts/gen_unicode.py).

enum {
    HANGUL_S_BASE = 0xAC00, HANGUL_L_BASE = 0x1100, HANGUL_V_BASE = 0x1161, HANGUL_T_BASE = 0x11A7,
    HANGUL_L_COUNT = 19, HANGUL_V_COUNT = 21, HANGUL_T_COUNT = 28,
    HANGUL_N_COUNT = HANGUL_V_COUNT * HANGUL_T_COUNT,   // 588
    HANGUL_S_COUNT = HANGUL_L_COUNT * HANGUL_N_COUNT,   // 11172
};

static uint32_t combining_class_of(uint32_t cp) {
    size_t lo = 0, hi = COUNT_OF(combining_class);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < combining_class[mid].first) hi = mid;
        else if (cp > combining_class[mid].last) lo = mid + 1;
        else return combining_class[mid].ccc;
    }
    return 0;
}

// Writes the full canonical decomposition of cp to out (at most
// UNICODE_MAX_DECOMPOSITION characters) and returns its length.
static int decompose_char(uint32_t cp, uint32_t *out) {
    if (cp >= HANGUL_S_BASE && cp < HANGUL_S_BASE + HANGUL_S_COUNT) {
        uint32_t s = cp - HANGUL_S_BASE;
        out[0] = HANGUL_L_BASE + s / HANGUL_N_COUNT;
        out[1] = HANGUL_V_BASE + (s % HANGUL_N_COUNT) / HANGUL_T_COUNT;
        if (s % HANGUL_T_COUNT == 0) return 2;
        out[2] = HANGUL_T_BASE + s % HANGUL_T_COUNT;
        return 3;
    }
    size_t lo = 0, hi = COUNT_OF(canonical_decomposition);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const Decomposition *d = &canonical_decomposition[mid];
        if (cp < d->cp) hi = mid;
        else if (cp > d->cp) lo = mid + 1;
        else {   // the table holds one level: decompose its parts again
            int n = decompose_char(d->first, out);
            if (d->second) n += decompose_char(d->second, out + n);
            return n;
        }
    }
    out[0] = cp;
    return 1;
}

// The primary composite of the pair (a, b), or 0 if there is none.
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L_BASE && a < HANGUL_L_BASE + HANGUL_L_COUNT &&   // L + V -> LV
        b >= HANGUL_V_BASE && b < HANGUL_V_BASE + HANGUL_V_COUNT)
        return HANGUL_S_BASE + ((a - HANGUL_L_BASE) * HANGUL_V_COUNT + (b - HANGUL_V_BASE)) * HANGUL_T_COUNT;
    if (a >= HANGUL_S_BASE && a < HANGUL_S_BASE + HANGUL_S_COUNT &&   // LV + T -> LVT
        (a - HANGUL_S_BASE) % HANGUL_T_COUNT == 0 &&
        b > HANGUL_T_BASE && b < HANGUL_T_BASE + HANGUL_T_COUNT)
        return a + (b - HANGUL_T_BASE);
    size_t lo = 0, hi = COUNT_OF(canonical_composition);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const Composition *c = &canonical_composition[mid];
        if (a < c->first || (a == c->first && b < c->second)) hi = mid;
        else if (a > c->first || b > c->second) lo = mid + 1;
        else return c->composite;
    }
    return 0;
}

// Canonical ordering of one run of combining marks c[0..n): a stable sort by combining
// class. A counting sort (into tmp) keeps it linear even for a hostile run of
// thousands of marks; in real text the runs are one or two marks long.
static void sort_marks(uint32_t *c, size_t n, uint32_t *tmp) {
    size_t start[257] = {0};   // start[k + 1] counts class k, then becomes where k begins
    for (size_t i = 0; i < n; i++) start[combining_class_of(c[i]) + 1]++;
    for (int k = 1; k <= 256; k++) start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++) tmp[start[combining_class_of(c[i])]++] = c[i];
    memcpy(c, tmp, n * sizeof(uint32_t));
}

// Returns the NFC form of s[0..n) (valid UTF-8) in a malloc'd buffer, its length in
// *out_len; NULL if memory runs out.
static char *nfc_normalize(const char *s, size_t n, size_t *out_len) {
    // n bytes hold at most n characters, each decomposing into at most
    // UNICODE_MAX_DECOMPOSITION characters.
    size_t room = n * UNICODE_MAX_DECOMPOSITION + 1;
    uint32_t *c = malloc(room * sizeof(uint32_t)), *tmp = malloc(room * sizeof(uint32_t));
    char *out = malloc(room * 4);
    if (!c || !tmp || !out) {
        free(c);
        free(tmp);
        free(out);
        return NULL;
    }
    size_t count = 0;
    for (size_t p = 0; p < n;) {   // 1. decompose
        uint32_t cp;
        p += (size_t)utf8_decode_char(s + p, n - p, &cp);
        count += (size_t)decompose_char(cp, c + count);
    }
    for (size_t i = 0; i < count;) {   // 2. canonical ordering, run by run
        size_t end = i;
        while (end < count && combining_class_of(c[end]) != 0) end++;
        if (end - i > 1) sort_marks(c + i, end - i, tmp);
        i = end > i ? end : i + 1;
    }
    // 3. Compose, in place: `kept` characters stay; `starter` is the last starter kept.
    // last_cc is the class of the last character kept after the starter (0 when it is
    // the starter itself): a mark is blocked from the starter when last_cc is not below
    // its class. The text may begin with marks: they have no starter (256 blocks all).
    size_t kept = count ? 1 : 0, starter = 0;
    uint32_t last_cc = count && combining_class_of(c[0]) != 0 ? 256 : 0;
    for (size_t i = 1; i < count; i++) {
        uint32_t cc = combining_class_of(c[i]);
        uint32_t composite = compose_pair(c[starter], c[i]);
        if (composite && (last_cc < cc || last_cc == 0)) {
            c[starter] = composite;
            continue;
        }
        if (cc == 0) starter = kept;
        last_cc = cc;
        c[kept++] = c[i];
    }
    size_t len = 0;
    for (size_t i = 0; i < kept; i++) len += (size_t)utf8_encode_char(c[i], out + len);
    free(c);
    free(tmp);
    *out_len = len;
    return out;
}

// ----------------------------------------------------------------------------
// Pre-tokenizers: the regexes, as hand-written matchers
//
// SmolLM2 (Hugging Face Digits(individual_digits=True), then ByteLevel(use_regex=True)):
//   every \p{N} character becomes a piece of its own (Rust's char::is_numeric, which is
//   general category N, the same as \p{N}: so '²' and '٣' too), then each run of text
//   between them is split by the GPT-2 regex
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Llama 3 (Split, behavior Isolated):
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//     | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Qwen2: the same with \p{N} in place of \p{N}{1,3}.
//
// How the regex engine (Oniguruma) splits: it looks for the next match from where the
// last one ended, and at a position it tries the alternatives in order and takes the
// first that matches (not the longest). Every character is matched by some
// alternative, so the matches tile the text and no alternative matches the empty
// string. Each matcher below is one alternative: it gets the text s, the position p and
// the end of the text being split, and returns the length it matches at p (0: no match).

// The class of the character at p (< end) and, in *len, its length in bytes.
static int class_at(const char *s, size_t p, size_t end, size_t *len) {
    uint32_t cp = 0;  // (always set: the text was validated as UTF-8 before splitting)
    *len = (size_t)utf8_decode_char(s + p, end - p, &cp);
    return char_class(cp);
}

// The length of the run of characters of class cls that starts at p.
static size_t run_length(const char *s, size_t p, size_t end, int cls) {
    size_t q = p, len;
    while (q < end && class_at(s, q, end, &len) == cls) q += len;
    return q - p;
}

// 's|'t|'re|'ve|'m|'ll|'d, and with ignore_case (?i:...) as in Llama 3. Case folding
// also matches U+017F LATIN SMALL LETTER LONG S against 's' (Unicode CaseFolding.txt);
// no other character folds to one of these letters.
static size_t match_contraction(const char *s, size_t p, size_t end, int ignore_case) {
    static const char *const suffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    if (s[p] != '\'') return 0;
    for (size_t i = 0; i < COUNT_OF(suffixes); i++) {
        size_t q = p + 1;
        const char *x = suffixes[i];
        for (; *x; x++) {
            if (q < end && (s[q] == *x || (ignore_case && s[q] == *x - 'a' + 'A'))) q += 1;
            else if (ignore_case && *x == 's' && q + 1 < end && s[q] == '\xC5' && s[q + 1] == '\xBF') q += 2;
            else break;
        }
        if (*x == '\0') return q - p;
    }
    return 0;
}

// " ?X+" for a class X (not white space): an optional space, then a run of X. If the
// space is not followed by X, the engine backtracks and tries X+ at the space itself,
// which fails, as a space is not X.
static size_t match_space_then_run(const char *s, size_t p, size_t end, int cls) {
    if (s[p] == ' ') {
        size_t n = run_length(s, p + 1, end, cls);
        if (n > 0) return 1 + n;
    }
    return run_length(s, p, end, cls);
}

// \s+(?!\S): white space not followed by a non-space. \s+ first takes the whole run;
// if a non-space follows it, the engine backtracks one character, and then the next
// character (the run's last) is white space, so the lookahead holds. The run's last
// character is thereby left for the next match (" world" in GPT-2's "a  world").
static size_t match_space_not_before_nonspace(const char *s, size_t p, size_t end) {
    size_t n = run_length(s, p, end, CHAR_SPACE);
    if (n == 0 || p + n == end) return n;
    size_t last = p + n - 1;   // back to the first byte of the run's last character
    while ((s[last] & 0xC0) == 0x80) last--;
    return last - p;   // 0 if the run was one character: no match
}

// [^\r\n\p{L}\p{N}]?\p{L}+ (Llama 3): letters, optionally after one character that is
// not a letter, number, CR or LF (" Hello", "(hello", "\thello").
static size_t match_letters_with_prefix(const char *s, size_t p, size_t end) {
    size_t len;
    int cls = class_at(s, p, end, &len);
    if ((cls == CHAR_OTHER || cls == CHAR_SPACE) && s[p] != '\r' && s[p] != '\n') {
        size_t n = run_length(s, p + len, end, CHAR_LETTER);
        if (n > 0) return len + n;
    }
    return run_length(s, p, end, CHAR_LETTER);
}

// \p{N}{1,max}: Llama 3 groups up to three digits, Qwen2 takes them one by one.
static size_t match_numbers(const char *s, size_t p, size_t end, int max) {
    size_t q = p, len;
    for (int i = 0; i < max && q < end && class_at(s, q, end, &len) == CHAR_NUMBER; i++) q += len;
    return q - p;
}

//  ?[^\s\p{L}\p{N}]+[\r\n]* (Llama 3): punctuation, with the line breaks right after it.
static size_t match_other_then_newlines(const char *s, size_t p, size_t end) {
    size_t n = match_space_then_run(s, p, end, CHAR_OTHER);
    if (n == 0) return 0;
    while (p + n < end && (s[p + n] == '\r' || s[p + n] == '\n')) n++;
    return n;
}

// \s*[\r\n]+ (Llama 3): \s* takes the whole white-space run, then backtracks until
// [\r\n]+ can match, that is to the run's last CR or LF: the match is the run up to and
// including its last line break (0 if the run has none).
static size_t match_space_through_newline(const char *s, size_t p, size_t end) {
    size_t n = run_length(s, p, end, CHAR_SPACE), through = 0;
    for (size_t i = 0; i < n; i++)
        if (s[p + i] == '\r' || s[p + i] == '\n') through = i + 1;
    return through;
}

static size_t match_gpt2(const char *s, size_t p, size_t end) {
    size_t n;
    if ((n = match_contraction(s, p, end, 0))) return n;                  // 's|'t|...
    if ((n = match_space_then_run(s, p, end, CHAR_LETTER))) return n;     //  ?\p{L}+
    if ((n = match_space_then_run(s, p, end, CHAR_NUMBER))) return n;     //  ?\p{N}+
    if ((n = match_space_then_run(s, p, end, CHAR_OTHER))) return n;      //  ?[^\s\p{L}\p{N}]+
    if ((n = match_space_not_before_nonspace(s, p, end))) return n;       // \s+(?!\S)
    return run_length(s, p, end, CHAR_SPACE);                             // \s+
}

static size_t match_llama3(const char *s, size_t p, size_t end, int max_numbers) {
    size_t n;
    if ((n = match_contraction(s, p, end, 1))) return n;                  // (?i:'s|'t|...)
    if ((n = match_letters_with_prefix(s, p, end))) return n;             // [^\r\n\p{L}\p{N}]?\p{L}+
    if ((n = match_numbers(s, p, end, max_numbers))) return n;            // \p{N}{1,3}
    if ((n = match_other_then_newlines(s, p, end))) return n;             //  ?[^\s\p{L}\p{N}]+[\r\n]*
    if ((n = match_space_through_newline(s, p, end))) return n;           // \s*[\r\n]+
    if ((n = match_space_not_before_nonspace(s, p, end))) return n;       // \s+(?!\S)
    return run_length(s, p, end, CHAR_SPACE);                             // \s+
}

typedef struct {
    size_t start, len;
} Span;

// Splits s[0..n) into pre-tokens, written to out (room for n spans: every pre-token
// holds at least one byte). Returns their number.
static size_t pretokenize(int kind, const char *s, size_t n, Span *out) {
    size_t count = 0;
    if (kind == PRETOK_NONE) {
        if (n > 0) out[count++] = (Span){0, n};
        return count;
    }
    for (size_t p = 0; p < n;) {
        size_t len, end = n;
        if (kind == PRETOK_SMOLLM2) {
            // Digits first: a number character is a pre-token of its own, and the GPT-2
            // regex only sees the text up to the next one (so there "end" is that
            // character: "a 1" splits as "a", " ", "1", not "a", " 1").
            if (class_at(s, p, n, &len) == CHAR_NUMBER) {
                out[count++] = (Span){p, len};
                p += len;
                continue;
            }
            end = p;
            while (end < n && class_at(s, end, n, &len) != CHAR_NUMBER) end += len;
            for (; p < end; p += len) {
                len = match_gpt2(s, p, end);
                out[count++] = (Span){p, len};
            }
            continue;
        }
        len = match_llama3(s, p, end, kind == PRETOK_QWEN2 ? 1 : 3);
        out[count++] = (Span){p, len};
        p += len;
    }
    return count;
}

// ----------------------------------------------------------------------------
// Lookup tables: bytes -> token id, and (left id, right id) -> merge rank

static const char *table_alloc(IndexTable *h, uint32_t entries) {
    uint32_t capacity = 16;
    while (capacity < 2 * (uint64_t)entries) capacity *= 2;
    h->slots = malloc(capacity * sizeof(int32_t));
    if (!h->slots) return "out of memory";
    memset(h->slots, 0xFF, capacity * sizeof(int32_t));   // all -1: empty
    h->mask = capacity - 1;
    return NULL;
}

static void table_free(IndexTable *h) {
    free(h->slots);
    h->slots = NULL;
}

static uint32_t hash_bytes(const char *s, size_t n) {   // FNV-1a
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_pair(uint32_t a, uint32_t b) {
    uint64_t x = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;   // Fibonacci hashing
    return (uint32_t)(x >> 32);
}

static const char *token_bytes(const TokenizerSpec *spec, int id, size_t *len) {
    *len = spec->tokens[id].bytes;
    return spec->strings + spec->tokens[id].offset;
}

// The id of the piece whose bytes are s[0..n), or -1.
static int piece_lookup(const Tokenizer *t, const char *s, size_t n) {
    for (uint32_t i = hash_bytes(s, n) & t->pieces.mask;; i = (i + 1) & t->pieces.mask) {
        int id = t->pieces.slots[i];
        if (id < 0) return -1;
        size_t len;
        const char *b = token_bytes(&t->spec, id, &len);
        if (len == n && memcmp(b, s, n) == 0) return id;
    }
}

// The rank of the merge rule (left, right), or -1.
static int merge_lookup(const Tokenizer *t, int left, int right) {
    const IndexTable *h = &t->merge_map;
    for (uint32_t i = hash_pair((uint32_t)left, (uint32_t)right) & h->mask;; i = (i + 1) & h->mask) {
        int rank = h->slots[i];
        if (rank < 0) return -1;
        const uint32_t *m = t->spec.merges + 3 * (size_t)rank;
        if (m[0] == (uint32_t)left && m[1] == (uint32_t)right) return rank;
    }
}

// ----------------------------------------------------------------------------
// tokenizer_build: validate the model file's tables, then index them

// The byte a SentencePiece byte token stands for: the model file stores the byte
// itself (export turns tokenizer.bin's "<0x0A>" into the one byte 0x0A).
static int byte_token_value(const TokenizerSpec *spec, int id) {
    size_t len;
    const char *b = token_bytes(spec, id, &len);
    return len == 1 ? (unsigned char)b[0] : -1;
}

// Whether BPE itself can produce this token: not added, special or a byte token.
static int is_model_piece(const TokenRecord *r) {
    return r->bytes > 0 && (r->flags & (TOKEN_ADDED | TOKEN_SPECIAL | TOKEN_BYTE)) == 0;
}

static int compare_added(const void *pa, const void *pb) {
    const AddedToken *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;   // longest first
    return a->id < b->id ? -1 : a->id > b->id;
}

void tokenizer_free(Tokenizer *t) {
    table_free(&t->pieces);
    table_free(&t->merge_map);
    free(t->added);
    memset(t, 0, sizeof(*t));
}

static const char *check_spec(const TokenizerSpec *s) {
    if (s->type != TOKENIZER_BYTE_BPE && s->type != TOKENIZER_SENTENCEPIECE) return "unknown tokenizer type";
    if (s->type == TOKENIZER_BYTE_BPE && (s->pretokenizer < PRETOK_NONE || s->pretokenizer > PRETOK_QWEN2))
        return "unknown pre-tokenizer";
    if (s->type == TOKENIZER_SENTENCEPIECE && s->pretokenizer != PRETOK_NONE)
        return "a SentencePiece tokenizer has no pre-tokenizer";
    if (s->normalizer != NORM_NONE && s->normalizer != NORM_NFC) return "unknown normalizer";
    if (s->ignore_merges != 0 && s->ignore_merges != 1) return "ignore_merges is not 0 or 1";
    if (s->vocab_size <= 0 || s->vocab_size > TOKENIZER_MAX_VOCAB || !s->tokens) return "bad vocab size";
    if (s->n_merges < 0 || s->n_merges > TOKENIZER_MAX_MERGES || (s->n_merges > 0 && !s->merges))
        return "bad number of merges";
    if (!s->strings) return "no strings blob";
    if (s->bos_id < -1 || s->bos_id >= s->vocab_size) return "bos_id out of range";
    for (int i = 0; i < s->vocab_size; i++) {
        const TokenRecord *r = &s->tokens[i];
        if (r->flags & ~(uint32_t)(TOKEN_ADDED | TOKEN_SPECIAL | TOKEN_BYTE)) return "a token has unknown flags";
        if ((uint64_t)r->offset + r->bytes > s->strings_bytes) return "a token's bytes lie outside the strings blob";
        if (!isfinite(r->score)) return "a token's score is not a finite number";
        if (r->flags & TOKEN_ADDED) {
            if (r->bytes == 0) return "an added token is empty";
            if (!utf8_is_valid(s->strings + r->offset, r->bytes)) return "an added token is not valid UTF-8";
        }
        if (r->flags & TOKEN_BYTE) {
            if (s->type != TOKENIZER_SENTENCEPIECE) return "a byte token in a byte-level BPE vocab";
            if (byte_token_value(s, i) < 0) return "a byte token is not exactly one byte";
        }
    }
    for (int i = 0; i < s->n_merges; i++) {
        const uint32_t *m = s->merges + 3 * (size_t)i;
        if (m[0] >= (uint32_t)s->vocab_size || m[1] >= (uint32_t)s->vocab_size || m[2] >= (uint32_t)s->vocab_size)
            return "a merge refers to a token id outside the vocab";
        const TokenRecord *l = &s->tokens[m[0]], *r = &s->tokens[m[1]], *res = &s->tokens[m[2]];
        if (l->bytes == 0 || r->bytes == 0 || (uint64_t)l->bytes + r->bytes != res->bytes ||
            memcmp(s->strings + res->offset, s->strings + l->offset, l->bytes) != 0 ||
            memcmp(s->strings + res->offset + l->bytes, s->strings + r->offset, r->bytes) != 0)
            return "a merge's result is not its left token followed by its right token";
    }
    return NULL;
}

// bytes -> id of the tokens BPE produces. Should two tokens have the same bytes
// (Hugging Face vocabs cannot), the lower id is found.
static const char *build_pieces(Tokenizer *t, const TokenizerSpec *spec) {
    int n_pieces = 0;
    for (int i = 0; i < spec->vocab_size; i++) n_pieces += is_model_piece(&spec->tokens[i]);
    const char *err = table_alloc(&t->pieces, (uint32_t)n_pieces);
    if (err) return err;
    for (int i = 0; i < spec->vocab_size; i++) {
        if (!is_model_piece(&spec->tokens[i])) continue;
        size_t len;
        const char *b = token_bytes(spec, i, &len);
        if (piece_lookup(t, b, len) >= 0) continue;
        uint32_t h = hash_bytes(b, len) & t->pieces.mask;
        while (t->pieces.slots[h] >= 0) h = (h + 1) & t->pieces.mask;
        t->pieces.slots[h] = i;
    }
    return NULL;
}

// (left, right) -> rank. A pair listed twice keeps its later rank, as in Hugging Face
// (its merge map is built by inserting the merges in order).
static const char *build_merges(Tokenizer *t, const TokenizerSpec *spec) {
    const char *err = table_alloc(&t->merge_map, (uint32_t)spec->n_merges);
    if (err) return err;
    for (int r = 0; r < spec->n_merges; r++) {
        const uint32_t *m = spec->merges + 3 * (size_t)r;
        IndexTable *h = &t->merge_map;
        uint32_t i = hash_pair(m[0], m[1]) & h->mask;
        while (h->slots[i] >= 0 && !(spec->merges[3 * (size_t)h->slots[i]] == m[0] &&
                                     spec->merges[3 * (size_t)h->slots[i] + 1] == m[1]))
            i = (i + 1) & h->mask;
        h->slots[i] = r;
    }
    return NULL;
}

// The tokens BPE starts from, one per byte value.
static const char *build_byte_tokens(Tokenizer *t, const TokenizerSpec *spec) {
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    if (spec->type == TOKENIZER_BYTE_BPE) {
        // A byte-level vocab may lack a few (SmolLM2's has no token for 6 control
        // characters, nor for C0, C1, F5..FF, which UTF-8 never uses): BPE drops such a
        // byte, as Hugging Face drops a character that is not in the vocab when the
        // model has no unk_token.
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_token[b] = piece_lookup(t, &c, 1);
        }
        return NULL;
    }
    // SentencePiece's byte fallback needs a byte token for each of the 256 values.
    for (int i = 0; i < spec->vocab_size; i++) {
        if (!(spec->tokens[i].flags & TOKEN_BYTE)) continue;
        int b = byte_token_value(spec, i);
        if (t->byte_token[b] < 0) t->byte_token[b] = i;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_token[b] < 0) return "a SentencePiece vocab lacks a byte token <0xXX>";
    return NULL;
}

// Added tokens, sorted for matching: by first byte, longest first.
static const char *build_added(Tokenizer *t, const TokenizerSpec *spec) {
    int n_added = 0;
    for (int i = 0; i < spec->vocab_size; i++) n_added += (spec->tokens[i].flags & TOKEN_ADDED) != 0;
    if (n_added > 0) {
        t->added = malloc((size_t)n_added * sizeof(AddedToken));
        if (!t->added) return "out of memory";
        for (int i = 0; i < spec->vocab_size; i++) {
            const TokenRecord *r = &spec->tokens[i];
            if (r->flags & TOKEN_ADDED)
                t->added[t->n_added++] = (AddedToken){i, r->bytes, (unsigned char)spec->strings[r->offset]};
        }
        qsort(t->added, (size_t)t->n_added, sizeof(AddedToken), compare_added);
    }
    for (int b = 0, i = 0; b <= 256; b++) {
        while (i < t->n_added && t->added[i].first < b) i++;
        t->added_start[b] = i;
    }
    return NULL;
}

const char *tokenizer_build(Tokenizer *t, const TokenizerSpec *spec) {
    memset(t, 0, sizeof(*t));
    const char *err = check_spec(spec);
    if (err) return err;
    t->spec = *spec;
    err = build_pieces(t, spec);
    if (!err) err = build_merges(t, spec);
    if (!err) err = build_byte_tokens(t, spec);
    if (!err) err = build_added(t, spec);
    if (err) tokenizer_free(t);
    return err;
}

// ----------------------------------------------------------------------------
// The merge loop, shared by byte-level BPE and SentencePiece
//
// A pre-token starts as a row of symbols (one per byte, or one per character for
// SentencePiece), kept as a doubly linked list. Every adjacent pair that can merge is a
// candidate in a priority queue (a binary heap): byte-level BPE takes the merge rule
// with the lowest rank, SentencePiece the pair whose concatenation has the highest
// score; ties go to the leftmost pair. Both libraries do exactly this. After a merge,
// the new symbol forms new candidates with its neighbours; candidates whose symbols
// have changed since they were queued are skipped when they come up. Each merge costs
// O(log n), so even a word of 100,000 bytes is quick.

typedef struct {
    int id;          // token id; -1: a character that is no piece (SentencePiece)
    size_t start;    // the bytes it covers in the pre-token
    size_t len;      // 0 once merged into its left neighbour
    int prev, next;  // neighbours in the list, -1 at the ends
} Symbol;

typedef struct {
    double priority;         // lower comes first: merge rank, or minus the score
    int left, right;         // the symbols; left also breaks ties (leftmost first)
    int left_id, right_id;   // their ids when queued, to recognize stale candidates
    int result;              // the id of the merged token
} MergeCandidate;

typedef struct {
    Symbol *symbols;        // room for as many symbols as the segment has bytes
    MergeCandidate *heap;   // room for 3x that: n - 1 at the start, 2 per merge
    int n_heap;
} MergeWork;

static int candidate_before(const MergeCandidate *a, const MergeCandidate *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

static void heap_push(MergeWork *w, MergeCandidate c) {
    int i = w->n_heap++;
    while (i > 0 && candidate_before(&c, &w->heap[(i - 1) / 2])) {   // sift up
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
}

static MergeCandidate heap_pop(MergeWork *w) {
    MergeCandidate top = w->heap[0], last = w->heap[--w->n_heap];
    int i = 0;
    for (;;) {   // sift the last element down from the root
        int child = 2 * i + 1;
        if (child >= w->n_heap) break;
        if (child + 1 < w->n_heap && candidate_before(&w->heap[child + 1], &w->heap[child])) child++;
        if (!candidate_before(&w->heap[child], &last)) break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (w->n_heap > 0) w->heap[i] = last;
    return top;
}

// Queues symbols a and b (adjacent, a first) if they can merge.
static void queue_pair(const Tokenizer *t, const char *s, MergeWork *w, int a, int b) {
    if (a < 0 || b < 0) return;
    const Symbol *x = &w->symbols[a], *y = &w->symbols[b];
    MergeCandidate c = {0, a, b, x->id, y->id, -1};
    if (t->spec.type == TOKENIZER_BYTE_BPE) {   // a merge rule for the two tokens
        int rank = merge_lookup(t, x->id, y->id);
        if (rank < 0) return;
        c.priority = rank;
        c.result = (int)t->spec.merges[3 * (size_t)rank + 2];
    } else {   // SentencePiece: the two texts together form a piece
        c.result = piece_lookup(t, s + x->start, x->len + y->len);
        if (c.result < 0) return;
        c.priority = -(double)t->spec.tokens[c.result].score;
    }
    heap_push(w, c);
}

// Merges the n symbols in w (linked 0 -> n-1) as far as the rules allow.
static void merge_symbols(const Tokenizer *t, const char *s, MergeWork *w, int n) {
    w->n_heap = 0;
    for (int i = 0; i + 1 < n; i++) queue_pair(t, s, w, i, i + 1);
    while (w->n_heap > 0) {
        MergeCandidate c = heap_pop(w);
        Symbol *a = &w->symbols[c.left], *b = &w->symbols[c.right];
        if (a->len == 0 || a->next != c.right || a->id != c.left_id || b->id != c.right_id)
            continue;   // stale: one of the two has merged with something else since
        a->id = c.result;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) w->symbols[b->next].prev = c.left;
        b->len = 0;
        queue_pair(t, s, w, a->prev, c.left);
        queue_pair(t, s, w, c.left, a->next);
    }
}

// ----------------------------------------------------------------------------
// Encoding

typedef struct {
    int *ids;
    int n;     // ids produced so far (counted on past cap, so overflow shows)
    int cap;   // room in ids
} IdList;

static void push_id(IdList *out, int id) {
    if (out->n < out->cap) out->ids[out->n] = id;
    out->n++;
}

// Byte-level BPE on one pre-token.
static void bpe_encode_word(const Tokenizer *t, const char *s, size_t n, MergeWork *w, IdList *out) {
    if (t->spec.ignore_merges) {   // Llama 3: a pre-token that is a token stays whole
        int id = piece_lookup(t, s, n);
        if (id >= 0) {
            push_id(out, id);
            return;
        }
    }
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        int id = t->byte_token[(unsigned char)s[i]];
        if (id < 0) continue;   // a byte without a token is dropped (see tokenizer_build)
        w->symbols[count] = (Symbol){id, i, 1, count - 1, count + 1};
        count++;
    }
    if (count == 0) return;
    w->symbols[count - 1].next = -1;
    merge_symbols(t, s, w, count);
    for (int i = 0; i >= 0; i = w->symbols[i].next) push_id(out, w->symbols[i].id);
}

// SentencePiece BPE on a whole segment: one symbol per character, merged by score; a
// character that ends up as no piece is written as its bytes (byte fallback).
static void sentencepiece_encode(const Tokenizer *t, const char *s, size_t n, MergeWork *w, IdList *out) {
    int count = 0;
    for (size_t p = 0; p < n; count++) {
        uint32_t cp;
        size_t len = (size_t)utf8_decode_char(s + p, n - p, &cp);
        w->symbols[count] = (Symbol){piece_lookup(t, s + p, len), p, len, count - 1, count + 1};
        p += len;
    }
    w->symbols[count - 1].next = -1;
    merge_symbols(t, s, w, count);
    for (int i = 0; i >= 0; i = w->symbols[i].next) {
        const Symbol *x = &w->symbols[i];
        if (x->id >= 0) push_id(out, x->id);
        else
            for (size_t k = 0; k < x->len; k++) push_id(out, t->byte_token[(unsigned char)s[x->start + k]]);
    }
}

// Encodes text that holds no added token: normalize, pre-tokenize, BPE.
// Returns 0, or -1 if memory runs out.
static int encode_segment(const Tokenizer *t, const char *s, size_t n, IdList *out) {
    if (n == 0) return 0;
    char *normalized = NULL;
    if (t->spec.normalizer == NORM_NFC) {
        size_t ascii = 0;   // ASCII text is already NFC
        while (ascii < n && (unsigned char)s[ascii] < 0x80) ascii++;
        if (ascii < n) {
            normalized = nfc_normalize(s, n, &n);
            if (!normalized) return -1;
            s = normalized;
        }
    }
    MergeWork w = {malloc(n * sizeof(Symbol)), malloc(3 * n * sizeof(MergeCandidate)), 0};
    Span *spans = malloc(n * sizeof(Span));
    int ok = w.symbols && w.heap && spans;
    if (ok && t->spec.type == TOKENIZER_SENTENCEPIECE) {
        sentencepiece_encode(t, s, n, &w, out);
    } else if (ok) {
        size_t count = pretokenize(t->spec.pretokenizer, s, n, spans);
        for (size_t i = 0; i < count; i++) bpe_encode_word(t, s + spans[i].start, spans[i].len, &w, out);
    }
    free(spans);
    free(w.heap);
    free(w.symbols);
    free(normalized);
    return ok ? 0 : -1;
}

// The added token that begins at s[p] (the longest, if several do), or -1; its length
// in *len. This gives the leftmost-longest matches of Hugging Face's added vocabulary.
static int added_token_at(const Tokenizer *t, const char *s, size_t p, size_t n, size_t *len) {
    unsigned char b = (unsigned char)s[p];
    for (int i = t->added_start[b]; i < t->added_start[b + 1]; i++) {
        const AddedToken *a = &t->added[i];
        if (a->len <= n - p && memcmp(s + p, t->spec.strings + t->spec.tokens[a->id].offset, a->len) == 0) {
            *len = a->len;
            return a->id;
        }
    }
    return -1;
}

// SentencePiece writes a space as U+2581 "▁" in its pieces; llama2.c's tokenizer.bin
// (and so the model file) has them back as ' '. The text gets the dummy prefix: a space
// in front, if it is not empty (add_dummy_prefix). A '▁' typed in the text is the same
// as a space to SentencePiece, so it becomes one here. Returns a malloc'd copy.
static char *sentencepiece_escape(const char *s, size_t n, size_t *out_len) {
    char *out = malloc(n + 2);
    if (!out) return NULL;
    size_t len = 0;
    if (n > 0) out[len++] = ' ';
    for (size_t p = 0; p < n; p++) {
        if (p + 2 < n && memcmp(s + p, "\xE2\x96\x81", 3) == 0) {
            out[len++] = ' ';
            p += 2;
        } else {
            out[len++] = s[p];
        }
    }
    *out_len = len;
    return out;
}

size_t tokenizer_max_ids(const Tokenizer *t, size_t len) {
    return (t->spec.normalizer == NORM_NFC ? 3 * len : len) + 2;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int *ids) {
    if (len > TOKENIZER_MAX_TEXT || !utf8_is_valid(text, len)) return -1;
    IdList out = {ids, 0, (int)tokenizer_max_ids(t, len)};
    char *escaped = NULL;
    if (t->spec.type == TOKENIZER_SENTENCEPIECE) {
        escaped = sentencepiece_escape(text, len, &len);
        if (!escaped) return -1;
        text = escaped;
    }
    // Cut the text at the added tokens; the pieces between go through encode_segment.
    size_t segment = 0, p = 0;
    int status = 0;
    while (p < len && status == 0) {
        size_t match_len = 0;
        int id = t->n_added > 0 ? added_token_at(t, text, p, len, &match_len) : -1;
        if (id < 0) {
            p++;
            continue;
        }
        status = encode_segment(t, text + segment, p - segment, &out);
        push_id(&out, id);
        p += match_len;
        segment = p;
    }
    if (status == 0) status = encode_segment(t, text + segment, len - segment, &out);
    free(escaped);
    if (status != 0 || out.n > out.cap) return -1;
    return out.n;
}

// ----------------------------------------------------------------------------
// Decoding

const char *tokenizer_decode(const Tokenizer *t, int prev, int id, size_t *len) {
    *len = 0;
    if (id < 0 || id >= t->spec.vocab_size) return "";
    // A token's bytes, as they are; a SentencePiece byte token's one byte is its value.
    const char *s = token_bytes(&t->spec, id, len);
    // SentencePiece: the first piece after BOS carries the dummy-prefix space. (A byte
    // token is raw bytes, not a piece: llama2.c leaves it alone.)
    int piece = !(t->spec.tokens[id].flags & TOKEN_BYTE);
    if (t->spec.type == TOKENIZER_SENTENCEPIECE && piece && prev >= 0 && prev == t->spec.bos_id && *len > 0 &&
        s[0] == ' ') {
        s++;
        (*len)--;
    }
    return s;
}
