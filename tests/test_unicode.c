// test_unicode.c: tokenizer.c's Unicode data against Unicode's own data and Hugging Face
// tokenizers' rules.
//
//   ./test_unicode
//
// Hugging Face tokenizers knows two Unicode versions (scripts/gen_unicode.py says why):
// its pre-tokenizer regexes classify characters by Unicode 16.0, while its NFC
// normalizer has Unicode 9.0's tables. Every expected value here comes from the Unicode
// Character Database (the name and general category or combining class of each
// character are quoted beside it) or from applying the pre-tokenizer regexes by hand,
// never from this program's output. Most cases involve a character assigned after
// Unicode 14.0 or a composition or combining class added after 9.0, where the answer
// depends on having the right version.
//
// Prints one "ok ..." or "FAIL ..." line per check, then "N passed, N failed"; exit
// status 1 if any failed.

#include <stdio.h>

#include "../tokenizer.c"

static int n_passed, n_failed;

static void report(int ok, const char *what) {
    printf("%s unicode: %s\n", ok ? "ok" : "FAIL", what);
    if (ok) n_passed++;
    else n_failed++;
}

// ----------------------------------------------------------------------------
// Character classes: Unicode 16.0's general categories (DerivedGeneralCategory.txt)

typedef struct {
    uint32_t cp;
    int cls;
    const char *what;
} ClassCase;

static const ClassCase class_cases[] = {
    {0x10D40, CHAR_NUMBER, "U+10D40 GARAY DIGIT ZERO (Nd, 16.0) is \\p{N}"},
    {0x11BF0, CHAR_NUMBER, "U+11BF0 SUNUWAR DIGIT ZERO (Nd, 16.0) is \\p{N}"},
    {0x1E4F9, CHAR_NUMBER, "U+1E4F9 NAG MUNDARI DIGIT NINE (Nd, 15.0) is \\p{N}"},
    {0x105C0, CHAR_LETTER, "U+105C0 TODHRI LETTER A (Lo, 16.0) is \\p{L}"},
    {0x11380, CHAR_LETTER, "U+11380 TULU-TIGALARI LETTER A (Lo, 16.0) is \\p{L}"},
    {0x16D40, CHAR_LETTER, "U+16D40 KIRAT RAI SIGN ANUSVARA (Lm, 16.0) is \\p{L}"},
    {0x11F04, CHAR_LETTER, "U+11F04 KAWI LETTER A (Lo, 15.0) is \\p{L}"},
    {0x2EBF0, CHAR_LETTER, "U+2EBF0 CJK UNIFIED IDEOGRAPH-2EBF0 (Lo, 15.1) is \\p{L}"},
    {0x1E290, CHAR_LETTER, "U+1E290 TOTO LETTER PA (Lo, 14.0) is \\p{L}"},
    {0x10D8F, CHAR_OTHER, "U+10D8F GARAY MINUS SIGN (Sm, 16.0) is other"},
    {0x0897, CHAR_OTHER, "U+0897 ARABIC PEPET (Mn, 16.0) is other"},
    {0x1FAE9, CHAR_OTHER, "U+1FAE9 FACE WITH BAGS UNDER EYES (So, 16.0) is other"},
    {0x1E4FA, CHAR_OTHER, "U+1E4FA (unassigned in 16.0) is other"},
    {0x3000, CHAR_SPACE, "U+3000 IDEOGRAPHIC SPACE (White_Space) is \\s"},
};

static void test_classes(void) {
    for (size_t i = 0; i < COUNT_OF(class_cases); i++)
        report(char_class(class_cases[i].cp) == class_cases[i].cls, class_cases[i].what);
}

// ----------------------------------------------------------------------------
// Pre-tokenization: the regexes of tokenizer.c's "Pre-tokenizers" section, applied by
// hand. With Unicode 14.0's classes, each of these texts splits differently (given
// after "not"), which is what Hugging Face's tokenizers does not do.

typedef struct {
    int kind;
    const char *text;
    const char *pieces[4];   // the expected pre-tokens, NULL-terminated
    const char *what;
} SplitCase;

static const SplitCase split_cases[] = {
    {PRETOK_LLAMA3, u8"\U00011380's", {u8"\U00011380", "'s"},
     "Llama 3: TULU-TIGALARI LETTER A then 's: \\p{L}+, then the contraction (not U+11380 ', s)"},
    {PRETOK_LLAMA3, u8"\U00011380'S", {u8"\U00011380", "'S"},
     "Llama 3: the same with 'S, as the contractions ignore case"},
    {PRETOK_LLAMA3, u8"x\U00011BF0're", {"x", u8"\U00011BF0", "'re"},
     "Llama 3: SUNUWAR DIGIT ZERO between x and 're is \\p{N} (not x, U+11BF0 ', re)"},
    {PRETOK_LLAMA3, u8"a\U000105C0", {u8"a\U000105C0"},
     "Llama 3: a TODHRI LETTER A is one letter run (not a, U+105C0)"},
    {PRETOK_LLAMA3, u8"\U00010D40\U00010D41\U00010D42\U00010D43",
     {u8"\U00010D40\U00010D41\U00010D42", u8"\U00010D43"},
     "Llama 3: four GARAY DIGITs are \\p{N}{1,3} twice (not one piece)"},
    {PRETOK_QWEN2, u8"\U00010D40\U00010D41", {u8"\U00010D40", u8"\U00010D41"},
     "Qwen2: GARAY DIGITs ZERO, ONE are \\p{N} one by one (not one piece)"},
    {PRETOK_QWEN2, u8"\U0001E4F9'll", {u8"\U0001E4F9", "'ll"},
     "Qwen2: NAG MUNDARI DIGIT NINE then 'll (not U+1E4F9 ', ll)"},
    {PRETOK_SMOLLM2, u8"x\U0001E4F9's", {"x", u8"\U0001E4F9", "'s"},
     "SmolLM2: Digits isolates NAG MUNDARI DIGIT NINE, then 's (not x, U+1E4F9 ', s)"},
    {PRETOK_SMOLLM2, u8"\U00011BF0\U00011BF1", {u8"\U00011BF0", u8"\U00011BF1"},
     "SmolLM2: Digits isolates SUNUWAR DIGITs ZERO, ONE (not one piece)"},
    {PRETOK_SMOLLM2, u8"a \U00010D40", {"a", " ", u8"\U00010D40"},
     "SmolLM2: a GARAY DIGIT after a space is cut off by Digits (not a, space U+10D40)"},
    {PRETOK_SMOLLM2, u8" \U000105C0\U000105C1's", {u8" \U000105C0\U000105C1", "'s"},
     "SmolLM2: TODHRI LETTERs A, AS are ` ?\\p{L}+`, then 's (not space U+105C0 U+105C1 ', s)"},
};

static void test_split(const SplitCase *c) {
    size_t n = strlen(c->text), count;
    Span spans[32];
    count = pretokenize(c->kind, c->text, n, spans);
    int ok = 1;
    size_t i = 0;
    for (; c->pieces[i]; i++) {
        size_t len = strlen(c->pieces[i]);
        ok = ok && i < count && spans[i].len == len && memcmp(c->text + spans[i].start, c->pieces[i], len) == 0;
    }
    report(ok && count == i, c->what);
}

// ----------------------------------------------------------------------------
// NFC with Unicode 9.0's data (UnicodeData.txt, CompositionExclusions.txt)

typedef struct {
    const char *text, *nfc, *what;
} NfcCase;

static const NfcCase nfc_cases[] = {
    // Unicode 9.0 did not have these compositions and combining classes: Hugging Face
    // leaves the text as it is, where current Unicode would change it.
    {u8"\U00011935\U00011930", u8"\U00011935\U00011930",
     "DIVES AKURU VOWEL SIGNs E, AA stay two (U+11938 O = E + AA is 13.0)"},
    {u8"\U000105D2\u0307", u8"\U000105D2\u0307",
     "TODHRI LETTER I + U+0307 stays two (U+105C9 EI is 16.0)"},
    {u8"\U00016D67\U00016D67", u8"\U00016D67\U00016D67",
     "KIRAT RAI VOWEL SIGN E twice stays two (U+16D68 AI is 16.0)"},
    {u8"a\u1DFA\u0301", u8"a\u1DFA\u0301",
     "a + U+1DFA + U+0301 stays: DOT BELOW LEFT (class 218 since 14.0) is a starter"
     " that blocks a + ACUTE"},
    {u8"a\u0315\u1DFA", u8"a\u0315\u1DFA",
     "a + U+0315 (class 232) + U+1DFA is not reordered: U+1DFA has class 0 in 9.0"},
    // What every version agrees on: reordering, composition, singletons, exclusions,
    // Hangul (the first is Unicode Standard Annex #15's example).
    {u8"D\u0307\u0323", u8"\u1E0C\u0307",
     "D + DOT ABOVE (230) + DOT BELOW (220) -> U+1E0C D WITH DOT BELOW + DOT ABOVE"},
    {u8"e\u0301", u8"\u00E9", "e + ACUTE -> U+00E9"},
    {u8"\u2126", u8"\u03A9", "U+2126 OHM SIGN -> U+03A9 (a singleton)"},
    {u8"\u0958", u8"\u0915\u093C", "U+0958 DEVANAGARI QA -> KA + NUKTA (an exclusion)"},
    {u8"\u1100\u1161\u11A8", u8"\uAC01", "Hangul L + V + T -> U+AC01"},
};

static void test_nfc(const NfcCase *c) {
    size_t len;
    char *out = nfc_normalize(c->text, strlen(c->text), &len);
    report(out && len == strlen(c->nfc) && memcmp(out, c->nfc, len) == 0, c->what);
    free(out);
}

int main(void) {
    test_classes();
    for (size_t i = 0; i < COUNT_OF(split_cases); i++) test_split(&split_cases[i]);
    for (size_t i = 0; i < COUNT_OF(nfc_cases); i++) test_nfc(&nfc_cases[i]);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed > 0;
}
