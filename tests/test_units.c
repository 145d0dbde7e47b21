// Unit tests of the pieces of run.c that need no model: exp_approx, the sampler, the
// UTF-8 streamer and the chat templates.
//
//   test_units RENDERINGS.tsv UTF8.tsv
//
// RENDERINGS.tsv is made by tests/chat_renderings.py from what transformers'
// apply_chat_template rendered with the official Llama 3.2, Qwen2.5 and SmolLM2 templates;
// UTF8.tsv by tests/utf8_replace.py, from what Python's decode(errors="replace") makes of
// ill-formed UTF-8.
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

// ---------------------------------------------------------------------------- exp, softmax, top-p, top-k

// exp_approx against exp in double at 2.3 million points spread over -87 .. 88 (where it
// computes e^x; out there 0 and inf), each within 1.2 ulp of e^x (0.92 measured with fused
// multiply-adds, 1.18 without), and at its edges.
static void test_exp_approx(void) {
    double worst = 0;
    float at = 0;
    long points = 0;
    for (float x = -87.0f; x < 88.0f; x = nextafterf(x, 89.0f) + (fabsf(x) > 1e-3f ? fabsf(x) * 1e-5f : 1e-7f)) {
        double exact = exp((double)x), ulp = ldexp(1.0, ilogb(exact) - 23), err = fabs(exp_approx(x) - exact) / ulp;
        if (err > worst) worst = err, at = x;
        points++;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "exp_approx within 1.2 ulp of e^x on -87 .. 88 (%ld points; worst %.2f ulp, at %g)", points,
             worst, at);
    check(points > 2000000 && worst < 1.2, msg);
    float l2 = logf(2.0f);
    check(exp_approx(0.0f) == 1.0f && exp_approx(-l2) == 0.5f && exp_approx(-2.0f * l2) == 0.25f &&
              exp_approx(l2) == 2.0f,
          "exp_approx(0) = 1, exp_approx(-ln2) = 1/2, exp_approx(-2 ln2) = 1/4, exp_approx(ln2) = 2 exactly");
    check(exp_approx(-88.0f) == 0.0f && exp_approx(-INFINITY) == 0.0f && exp_approx(89.0f) == INFINITY &&
              exp_approx(INFINITY) == INFINITY && isnan(exp_approx(NAN)),
          "exp_approx is 0 below -87 and at -inf, inf above 88 and at inf, NaN at NaN");
}

// softmax of logits around 1000 against the same computed in double, by the definition
// exp(x_i - max) / sum_j exp(x_j - max) (exp(1000) itself overflows a double as well as
// a float: the max must come out first). The largest logit is the last one.
static void test_softmax_large(void) {
    const float logits[5] = {1000.0f, 998.0f, 999.5f, 990.0f, 1001.0f};
    float x[5];
    memcpy(x, logits, sizeof(x));
    softmax(x, 5);
    double sum = 0, expect[5], worst = 0;
    for (int i = 0; i < 5; i++) sum += expect[i] = exp((double)logits[i] - 1001.0);
    for (int i = 0; i < 5; i++) {
        double err = isfinite(x[i]) ? fabs(x[i] - expect[i] / sum) : INFINITY;
        worst = err > worst ? err : worst;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "softmax of logits 990..1001 (largest last) matches exp(x - max) / sum in double (max |diff| %.1e)", worst);
    check(worst < 1e-6, msg);
    // 100 - 10 = 90 > 88.7, where expf overflows: only the true max avoids inf / inf.
    float y[4] = {-50.0f, 0.0f, 10.0f, 100.0f};
    softmax(y, 4);
    check(y[3] == 1.0f && y[2] >= 0.0f && y[2] < 1e-39f && y[0] >= 0.0f && y[1] >= 0.0f,
          "softmax(-50, 0, 10, 100) is (0, 0, 0, 1) to float precision: e^-90 and less beside 1");

    // The same logits through the sampler at temperature 0.01: logits / T up to 1e5. The
    // largest is 1 ahead of the next (0.632 vs 0.233 at T = 1): at T = 0.01 every other
    // token has probability below exp(-100), so every draw is the argmax (id 4).
    int all_greedy = 1;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        Sampler sm;
        sampler_build(&sm, (SamplerConfig){.temperature = 0.01f, .top_p = 1.0f, .rng = seed}, 5);
        float l[5];
        memcpy(l, logits, sizeof(l));
        all_greedy &= sample(&sm, l) == 4;
        memcpy(l, LOGITS, 5 * sizeof(float));
        all_greedy &= sample(&sm, l) == argmax(LOGITS, 5);
        sampler_free(&sm);
    }
    check(all_greedy, "temperature 0.01 samples the argmax (logits near 1000 and near 1; 20 seeds)");
}

// The token ids kept by sampler_distribution, as a bit set.
static unsigned kept_set(Sampler *sm, int keep) {
    unsigned set = 0;
    for (int i = 0; i < keep; i++) set |= 1u << sm->candidates[i].id;
    return set;
}

// Probabilities that are exact binary fractions, so that the cumulative sums hit top_p
// exactly: logits 0, -ln 2, -2 ln 2, -2 ln 2 give 1/2, 1/4, 1/8, 1/8 (every step is
// exact in float: expf(-ln2f) rounds to 0.5, and so on; checked first).
// transformers' TopPLogitsWarper sorts ascending, takes the cumulative sums of the
// probabilities and removes the tokens where cumsum <= 1 - top_p, keeping at least one:
//   ascending 1/8 (id 2), 1/8 (id 3), 1/4 (id 1), 1/2 (id 0); cumsum 1/8, 1/4, 1/2, 1
//   top_p 0.75: remove cumsum <= 0.25: ids 2, 3 -> keeps {0, 1} (exactly 0.75 of the mass)
//   top_p 0.5:  remove cumsum <= 0.5: ids 2, 3, 1 -> keeps {0}
// Its warpers run in the order temperature, top-k, top-p: top-k 2 keeps ids 0, 1, whose
// renormalised probabilities are 2/3 and 1/3; top-p 0.6 then removes cumsum <= 0.4, that
// is id 1 (1/3): keeps {0}. (Top-p first would keep {0, 1}: 1/2 alone is below 0.6.)
static void test_top_p_exact(void) {
    float l2 = logf(2.0f);
    const float logits[4] = {0.0f, -l2, -2.0f * l2, -2.0f * l2};
    Sampler sm;
    sampler_build(&sm, (SamplerConfig){.temperature = 1.0f, .top_p = 1.0f, .rng = 1}, 4);
    sampler_distribution(&sm, logits, 1.0f, 0, 1.0f);
    check(sm.probs[0] == 0.5f && sm.probs[1] == 0.25f && sm.probs[2] == 0.125f && sm.probs[3] == 0.125f,
          "softmax(0, -ln2, -2 ln2, -2 ln2) is exactly 1/2, 1/4, 1/8, 1/8 (the cases below rely on it)");
    int keep = sampler_distribution(&sm, logits, 1.0f, 0, 0.75f);
    check(keep == 2 && kept_set(&sm, keep) == 0x3,
          "top-p 0.75 on 1/2, 1/4, 1/8, 1/8 keeps {0, 1}, as transformers (removes cumsum <= 0.25)");
    keep = sampler_distribution(&sm, logits, 1.0f, 0, 0.5f);
    check(keep == 1 && kept_set(&sm, keep) == 0x1,
          "top-p 0.5 on 1/2, 1/4, 1/8, 1/8 keeps {0}, as transformers (removes cumsum <= 0.5)");
    // TopKLogitsWarper removes the scores below the k-th largest (scores < topk(...)[-1]):
    // top-k 3 keeps 1/2, 1/4 and both 1/8, which tie with the third.
    keep = sampler_distribution(&sm, logits, 1.0f, 3, 1.0f);
    check(keep == 4 && kept_set(&sm, keep) == 0xF,
          "top-k 3 on 1/2, 1/4, 1/8, 1/8 keeps all four, as transformers (the fourth ties with the third)");
    keep = sampler_distribution(&sm, logits, 1.0f, 2, 0.6f);
    check(keep == 1 && kept_set(&sm, keep) == 0x1,
          "top-k 2 then top-p 0.6 keeps {0}, as transformers chains them (top-p first would keep {0, 1})");
    int only_kept = 1;
    for (int i = 0; i < 200; i++) {
        float l[4];
        memcpy(l, logits, sizeof(l));
        sm.cfg.top_k = 2, sm.cfg.top_p = 0.6f;
        only_kept &= sample(&sm, l) == 0;
        sm.cfg.top_k = 0, sm.cfg.top_p = 0.75f;
        only_kept &= sample(&sm, l) <= 1;
    }
    check(only_kept, "sample() draws only the kept tokens (200 draws each of top-k 2 + top-p 0.6, top-p 0.75)");
    sampler_free(&sm);
}

// ---------------------------------------------------------------------------- UTF-8 against Python

#ifndef _WIN32
// The bytes s[0..n) streamed in pieces cut at the positions in cuts[0..n_cuts) (ascending).
static char *stream_pieces(const char *s, size_t n, const size_t *cuts, int n_cuts, size_t *out_len) {
    char *buf = NULL;
    FILE *out = open_memstream(&buf, out_len);
    Utf8Stream u = {0};
    size_t from = 0;
    for (int i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : n;
        utf8_write(&u, out, s + from, to - from);
        from = to;
    }
    utf8_finish(&u, out);
    fclose(out);
    return buf;
}

// Every case of UTF8.tsv (tests/utf8_replace.py: the bytes and what Python's
// decode(errors="replace") gives) streamed whole, one byte at a time and cut in two at
// every position, as tokens may cut it: each must print exactly Python's output.
static void test_utf8_python(const char *tsv_path) {
    FILE *f = fopen(tsv_path, "r");
    if (!f) { check(0, "cannot open the UTF-8 cases (tests/utf8_replace.py)"); return; }
    static char line[4096];
    int n_cases = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        char *in_hex = strtok(line, "\t"), *expect_hex = strtok(NULL, "\t");
        if (!in_hex || !expect_hex) continue;
        n_cases++;
        char *in = unhex(in_hex), *expect = unhex(expect_hex);
        size_t n = strlen(in_hex) / 2, len, cuts[64];
        int ok = 1;
        for (size_t i = 0; i < n && i < 64; i++) cuts[i] = i + 1;
        char *whole = stream_pieces(in, n, NULL, 0, &len);
        ok &= len == strlen(expect) && !memcmp(whole, expect, len);
        free(whole);
        char *bytes = stream_pieces(in, n, cuts, (int)n - 1, &len);
        ok &= len == strlen(expect) && !memcmp(bytes, expect, len);
        free(bytes);
        for (size_t c = 1; c < n; c++) {
            char *two = stream_pieces(in, n, &c, 1, &len);
            ok &= len == strlen(expect) && !memcmp(two, expect, len);
            free(two);
        }
        char msg[256];
        snprintf(msg, sizeof(msg), "UTF-8 stream of %s prints %s, as Python's decode(errors=\"replace\"), in any pieces",
                 in_hex, expect_hex);
        check(ok, msg);
        free(in);
        free(expect);
    }
    fclose(f);
    char msg[96];
    snprintf(msg, sizeof(msg), "UTF-8 cases: %d read (none would test nothing)", n_cases);
    check(n_cases > 0, msg);
}
#else
static void test_utf8_python(const char *tsv_path) { (void)tsv_path; puts("SKIP UTF-8 against Python: no open_memstream on Windows"); }
#endif

int main(int argc, char **argv) {
    test_sampler();
    test_exp_approx();
    test_softmax_large();
    test_top_p_exact();
    test_repetition_penalty();
    test_utf8_stream();
    if (argc > 1) test_chat_templates(argv[1]);
    else check(0, "no chat template renderings file given (test_units RENDERINGS.tsv UTF8.tsv)");
    if (argc > 2) test_utf8_python(argv[2]);
    else check(0, "no UTF-8 cases file given (test_units RENDERINGS.tsv UTF8.tsv)");
    return failures ? 1 : 0;
}
