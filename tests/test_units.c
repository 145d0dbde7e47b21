// Unit tests of the pieces of run.c that need no model: the sampler, the UTF-8
// streamer and the chat templates.
//
//   test_units RENDERINGS.tsv
//
// RENDERINGS.tsv is made by tests/chat_renderings.py from what transformers'
// apply_chat_template rendered with the official Llama 3.2, Qwen2.5 and SmolLM2 templates.
#define TESTING
#include "../run.c"

static int failures = 0, passes = 0;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (ok) passes++;
    else failures++;
}

// ---------------------------------------------------------------------------- sampler

static const float LOGITS[8] = {2.0f, 1.5f, 1.0f, 0.2f, -0.5f, 3.0f, 0.0f, -1.0f};

static int sample_once(SamplerConfig cfg) {
    Sampler sm;
    float logits[8];
    memcpy(logits, LOGITS, sizeof(logits));
    sampler_build(&sm, cfg, 8);
    int id = sample(&sm, logits);
    sampler_free(&sm);
    return id;
}

// Pearson's chi-square of `draws` samples against the softmax of LOGITS / temperature
// restricted to the allowed tokens (renormalised). The seed is fixed, so the statistic
// is a fixed number; the bound is the 0.001 critical value for the degrees of freedom.
static void chi_square(SamplerConfig cfg, const int *allowed, int n_allowed, double critical, const char *what) {
    enum { DRAWS = 40000 };
    Sampler sm;
    sampler_build(&sm, cfg, 8);
    int counts[8] = {0};
    for (int i = 0; i < DRAWS; i++) {
        float logits[8];
        memcpy(logits, LOGITS, sizeof(logits));
        counts[sample(&sm, logits)]++;
    }
    sampler_free(&sm);
    double p[8], total = 0, chi2 = 0;
    for (int i = 0; i < 8; i++) p[i] = 0;
    for (int a = 0; a < n_allowed; a++) total += p[allowed[a]] = exp(LOGITS[allowed[a]] / cfg.temperature);
    int outside = 0;
    for (int i = 0; i < 8; i++) {
        if (p[i] == 0) { outside += counts[i]; continue; }
        double expect = DRAWS * p[i] / total;
        chi2 += (counts[i] - expect) * (counts[i] - expect) / expect;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: chi-square %.2f < %.2f, %d draws outside the allowed set", what, chi2, critical, outside);
    check(chi2 < critical && outside == 0, msg);
}

static void test_sampler(void) {
    int greedy = argmax(LOGITS, 8);
    check(greedy == 5, "argmax picks the largest logit");
    int all_greedy = 1;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        all_greedy &= sample_once((SamplerConfig){.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .rng = seed}) == greedy;
        all_greedy &= sample_once((SamplerConfig){.temperature = 1.0f, .top_k = 0, .top_p = 1e-6f, .rng = seed}) == greedy;
        all_greedy &= sample_once((SamplerConfig){.temperature = 0.0f, .rng = seed}) == greedy;
    }
    check(all_greedy, "top-k 1, top-p -> 0 and temperature 0 all equal greedy (50 seeds)");

    SamplerConfig cfg = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f, .rng = 1234};
    Sampler a, b;
    sampler_build(&a, cfg, 8);
    sampler_build(&b, cfg, 8);
    int same = 1, distinct = 0, seen[8] = {0};
    for (int i = 0; i < 1000; i++) {
        float la[8], lb[8];
        memcpy(la, LOGITS, sizeof(la));
        memcpy(lb, LOGITS, sizeof(lb));
        int x = sample(&a, la), y = sample(&b, lb);
        same &= x == y;
        if (!seen[x]++) distinct++;
    }
    sampler_free(&a);
    sampler_free(&b);
    check(same && distinct > 4, "the same seed gives the same samples (and they vary)");

    int all[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    chi_square((SamplerConfig){.temperature = 1.0f, .top_p = 1.0f, .rng = 42}, all, 8, 24.32, "temperature 1 matches softmax");
    chi_square((SamplerConfig){.temperature = 0.5f, .top_p = 1.0f, .rng = 7}, all, 8, 24.32, "temperature 0.5 matches softmax(logits/0.5)");
    int top3[3] = {5, 0, 1};
    chi_square((SamplerConfig){.temperature = 1.0f, .top_k = 3, .top_p = 1.0f, .rng = 9}, top3, 3, 13.82, "top-k 3 matches the renormalised top 3");
    // probabilities at T=1: 0.530 (id 5), 0.195 (id 0), 0.118, ...: top-p 0.6 keeps {5, 0}
    int nucleus[2] = {5, 0};
    chi_square((SamplerConfig){.temperature = 1.0f, .top_p = 0.6f, .rng = 11}, nucleus, 2, 10.83, "top-p 0.6 keeps the smallest set reaching 0.6");
}

// ---------------------------------------------------------------------------- UTF-8 streaming

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int len = utf8_lead_length((unsigned char)s[i]);
        if (len == 0 || i + (size_t)len > n || !utf8_continuation_ok((const unsigned char *)s + i, len)) return 0;
        i += (size_t)len;
    }
    return 1;
}

#ifdef _WIN32  // the test captures the stream with open_memstream (POSIX), which Windows lacks
static void test_utf8_stream(void) { puts("SKIP UTF-8 stream: no open_memstream on Windows"); }
#else
static void test_utf8_stream(void) {
    // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80, cut into pieces as byte-level BPE may.
    const char *pieces[] = {"a\xC3", "\xA9 \xE2", "\x82", "\xAC\xF0\x9F", "\x98", "\x80!"};
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    Utf8Stream u = {0};
    int valid_at_every_flush = 1;
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        utf8_write(&u, out, pieces[i], strlen(pieces[i]));
        valid_at_every_flush &= valid_utf8(buf, size);
    }
    utf8_finish(&u, out);
    fclose(out);
    check(valid_at_every_flush && !strcmp(buf, "a\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80!"),
          "UTF-8 stream holds split characters back and is valid at every flush");
    free(buf);

    out = open_memstream(&buf, &size);
    u = (Utf8Stream){0};
    const char bad[] = "x\xC3(\xFFy\xE2\x82";  // cut-short sequence, invalid byte, truncated end
    utf8_write(&u, out, bad, strlen(bad));
    utf8_finish(&u, out);
    fclose(out);
    check(!strcmp(buf, "x\xEF\xBF\xBD(\xEF\xBF\xBDy\xEF\xBF\xBD"), "invalid bytes become U+FFFD");
    free(buf);
}
#endif

// ---------------------------------------------------------------------------- chat templates

static char *unhex(const char *h) {
    if (!strcmp(h, "-")) return NULL;
    size_t n = strlen(h) / 2;
    char *s = xcalloc(n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        sscanf(h + 2 * i, "%2x", &x);
        s[i] = (char)x;
    }
    return s;
}

// Renders a conversation turn by turn as chat() does, the assistant's answers (which the
// model would generate) appended in between, and compares with transformers' rendering.
static void test_chat_templates(const char *tsv_path) {
    FILE *f = fopen(tsv_path, "r");
    if (!f) { check(0, "cannot open the chat template renderings"); return; }
    static char line[1 << 16];
    int n_renderings = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        char *name = strtok(line, "\t"), *kind = strtok(NULL, "\t"), *dflt = strtok(NULL, "\t");
        char *sys = strtok(NULL, "\t");
        char *users = strtok(NULL, "\t"), *answers = strtok(NULL, "\t"), *expect_hex = strtok(NULL, "\t");
        if (!expect_hex) continue;
        n_renderings++;
        GenConfig g = {0};
        g.chat_template = !strcmp(kind, "llama3") ? CHAT_LLAMA3 : CHAT_CHATML;
        char *default_system = unhex(dflt), *system = unhex(sys), *expect = unhex(expect_hex);
        g.default_system = default_system ? default_system : "";
        g.default_system_len = (int)strlen(g.default_system);
        Text out = {0};
        char *user_save, *answer_save;
        char *u = strtok_r(users, ",", &user_save), *a = strtok_r(answers, ",", &answer_save);
        for (int turn = 0; u; turn++) {
            char *user = unhex(u);
            render_turn(&out, &g, system, user, turn == 0, "26 Nov 2026");
            free(user);
            u = strtok_r(NULL, ",", &user_save);
            if (u && a) {  // the model's answer to this turn, before the next turn
                char *answer = unhex(a);
                text_puts(&out, answer);
                free(answer);
                a = strtok_r(NULL, ",", &answer_save);
            }
        }
        char msg[256];
        snprintf(msg, sizeof(msg), "chat template %s/%s renders exactly as transformers", kind, name);
        check(out.data && !strcmp(out.data, expect), msg);
        if (!(out.data && !strcmp(out.data, expect))) printf("    got:      %s\n    expected: %s\n", out.data, expect);
        text_free(&out);
        free(default_system);
        free(system);
        free(expect);
    }
    fclose(f);
    char msg[96];
    snprintf(msg, sizeof(msg), "chat templates: %d renderings read (none would test nothing)", n_renderings);
    check(n_renderings > 0, msg);
}

// The repetition penalty by hand, with transformers' rule: logits [2, -1, 0.5, 3],
// ids so far [0, 1, 0] (token 0 twice), penalty 2: token 0 (positive) 2 / 2 = 1,
// token 1 (negative) -1 * 2 = -2, tokens 2 and 3 (not in the text) unchanged; each
// id once, however often it occurs.
static void test_repetition_penalty(void) {
    Sampler sm;
    sampler_build(&sm, (SamplerConfig){.temperature = 0.0f, .top_p = 1.0f, .repetition_penalty = 2.0f}, 4);
    float logits[4] = {2.0f, -1.0f, 0.5f, 3.0f};
    const int ids[3] = {0, 1, 0};
    penalize_repeats(&sm, logits, ids, 3);
    check(logits[0] == 1.0f && logits[1] == -2.0f && logits[2] == 0.5f && logits[3] == 3.0f,
          "repetition penalty 2 on [2, -1, 0.5, 3] after ids [0, 1, 0] gives [1, -2, 0.5, 3]");
    penalize_repeats(&sm, logits, ids, 3);  // the scratch marks were cleared: it applies again
    check(logits[0] == 0.5f && logits[1] == -4.0f, "... and a second step penalises again: [0.5, -4, ...]");
    sampler_free(&sm);
}

int main(int argc, char **argv) {
    test_sampler();
    test_repetition_penalty();
    test_utf8_stream();
    if (argc > 1) test_chat_templates(argv[1]);
    else check(0, "no chat template renderings file given (test_units RENDERINGS.tsv)");
    return failures ? 1 : 0;
}
