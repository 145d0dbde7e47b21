// fuzz_chat.c: libFuzzer target: chat rendering (render_turn) of arbitrary messages,
// then encoding of the rendering.
//
// Input: byte 0 holds flags: bit 0 the template (ChatML or Llama 3), bit 1 the ChatML
// tokenizer (SmolLM2's or Qwen2's vocab, with the model's default system prompt),
// bit 2 whether a system prompt is given (else NULL: the default one, if any), bit 3
// whether the model has no default system prompt. The rest, split at NUL bytes, is the
// system prompt (if given) and then up to 8 user turns. Every turn is rendered as
// chat() renders it, compared with an independent rendering of the Hugging Face
// templates (ChatML as is; Llama 3 with Jinja's `trim`, which is Python's str.strip()),
// and encoded with check_encode (fuzz_common.h); so is the whole conversation.

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load_models();
    return 0;
}

// Python's str.isspace() for one code point: what str.strip() removes.
static int python_isspace(uint32_t c) {
    static const uint32_t spaces[] = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
                                      0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
                                      0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++)
        if (spaces[i] == c) return 1;
    return 0;
}

// str.strip() of s, appended to out. Only used for valid UTF-8 (invalid text cannot
// be a Python str, and run.c refuses it when it encodes the turn).
static void python_strip(Text *out, const char *s) {
    size_t n = strlen(s);
    uint32_t *cps = malloc((n + 1) * sizeof(uint32_t));
    size_t *offs = malloc((n + 1) * sizeof(size_t)), count = 0;
    for (size_t p = 0; p < n;) {
        uint32_t cp;
        int len = utf8_decode_char(s + p, n - p, &cp);
        CHECK(len > 0, "python_strip: invalid UTF-8");
        offs[count] = p, cps[count++] = cp;
        p += (size_t)len;
    }
    offs[count] = n;
    size_t a = 0, b = count;
    while (a < b && python_isspace(cps[a])) a++;
    while (b > a && python_isspace(cps[b - 1])) b--;
    text_append(out, s + offs[a], offs[b] - offs[a]);
    free(cps);
    free(offs);
}

static void expected_turn(Text *out, int chatml, const GenConfig *f, const char *system, const char *user,
                          int first, const char *date) {
    if (chatml) {
        if (!first) text_puts(out, "<|im_end|>\n");
        const char *sys = system;
        Text def = {0};
        if (!sys && f->default_system_len > 0) {
            text_append(&def, f->default_system, (size_t)f->default_system_len);
            sys = def.data;
        }
        if (first && sys) {
            text_puts(out, "<|im_start|>system\n");
            text_puts(out, sys);
            text_puts(out, "<|im_end|>\n");
        }
        text_free(&def);
        text_puts(out, "<|im_start|>user\n");
        text_puts(out, user);
        text_puts(out, "<|im_end|>\n<|im_start|>assistant\n");
    } else {
        if (!first) text_puts(out, "<|eot_id|>");
        if (first) {
            text_puts(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                           "Cutting Knowledge Date: December 2023\nToday Date: ");
            text_puts(out, date);
            text_puts(out, "\n\n");
            if (system) python_strip(out, system);
            text_puts(out, "<|eot_id|>");
        }
        text_puts(out, "<|start_header_id|>user<|end_header_id|>\n\n");
        python_strip(out, user);
        text_puts(out, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 16385) return 0;
    int flags = data[0];
    int chatml = !(flags & 1);
    const Model *m = &models[chatml ? (flags & 2 ? KIND_QWEN2 : KIND_SMOLLM2) : KIND_LLAMA3];
    GenConfig f = m->gen;
    f.chat_template = chatml ? CHAT_CHATML : CHAT_LLAMA3;   // tiny-llama3 has no chat template
    if (flags & 8) f.default_system_len = 0;

    // the NUL-separated strings
    char *text = malloc(size + 1);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *parts[10];
    int n_parts = 0;
    for (char *p = text; n_parts < 10; p += strlen(p) + 1) {
        parts[n_parts++] = p;
        if (p + strlen(p) >= text + size - 1) break;
    }
    const char *system = NULL;
    int next = 0;
    if (flags & 4) system = parts[next++];
    if (next >= n_parts) {
        free(text);
        return 0;
    }
    const char *date = "26 Jul 2024";

    Text turn = {0}, all = {0}, expect = {0};
    for (int first = 1; next < n_parts && next < 9; next++, first = 0) {
        const char *user = parts[next];
        turn.len = 0;
        render_turn(&turn, &f, system, user, first, date);
        int valid = ref_utf8_valid(user, strlen(user)) && (!first || !system || ref_utf8_valid(system, strlen(system)));
        if (valid) {
            expect.len = 0;
            expected_turn(&expect, chatml, &f, system, user, first, date);
            CHECK(turn.len == expect.len && memcmp(turn.data, expect.data, turn.len) == 0,
                  "render_turn differs from the template (%zu bytes, expected %zu):\n%s\n----\n%s", turn.len,
                  expect.len, turn.data, expect.data);
        }
        int k = check_encode(&m->tokenizer, turn.data, turn.len, 1024, NULL);
        CHECK((k >= 0) == valid, "encode of a rendered turn: %d for %s input", k, valid ? "valid" : "invalid");
        text_append(&all, turn.data, turn.len);
    }
    check_encode(&m->tokenizer, all.data, all.len, 1024, NULL);
    text_free(&turn);
    text_free(&all);
    text_free(&expect);
    free(text);
    return 0;
}
