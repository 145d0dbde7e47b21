// Golden test of the forward pass against Hugging Face transformers.
//
//   test_model MODEL.bin FIXTURE_DIR [TOLERANCE | consistency]
//
// FIXTURE_DIR holds reference.txt and caseN.logits.f32 from shared/fixtures (made by
// transformers in float64 without a KV cache). For every case the prompt and then the
// reference's greedy tokens are fed one at a time through our KV-cached forward pass;
// at every step our argmax must equal the reference's greedy id, and at every listed
// position our logits must be within TOLERANCE (default 1e-4) of the reference's.
// Either way the prompt must give the same logits in prefill blocks as token by token,
// up to float rounding, and the same greedy ids. The fast kernels add a prefill block's
// dot products in one running sum, as the plain loops do, and a single token's in 16
// lanes: f32 logits agree within BATCH_BOUND of the row's largest |logit|. q8_0 rounds
// its activations to int8 after those f32 steps, and a value within rounding of a .5
// boundary can go either way: within Q8_BATCH_BOUND (measured: at most 1.3e-2).
// `consistency` checks only that (for q8_0 files, which are not meant to match exactly).
#define TESTING
#include "../run.c"

#include "test_util.h"

#define BATCH_BOUND 1e-5f     // as test_reference.py's BOUND for the fast against the plain loops
#define Q8_BATCH_BOUND 5e-2f  // as its Q8_BOUND

typedef struct {
    char name[64];
    IntList prompt, greedy, positions;
    char logits_file[256];
    int rows, cols;
} Case;

// Parses the next case of reference.txt; returns 0 at the end of the file.
static int read_case(FILE *f, Case *c) {
    char line[65536];
    memset(c, 0, sizeof(*c));
    int have = 0;
    long mark = ftell(f);
    while (fgets(line, sizeof(line), f)) {
        char key[64];
        int used = 0;
        if (line[0] == '#' || sscanf(line, "%63s%n", key, &used) != 1) { mark = ftell(f); continue; }
        if (!strcmp(key, "case")) {
            if (have) { fseek(f, mark, SEEK_SET); return 1; }
            sscanf(line + used, "%63s", c->name);
            have = 1;
        } else if (!strcmp(key, "prompt_ids")) intlist_parse(&c->prompt, line + used);
        else if (!strcmp(key, "greedy_ids")) intlist_parse(&c->greedy, line + used);
        else if (!strcmp(key, "logits_positions")) intlist_parse(&c->positions, line + used);
        else if (!strcmp(key, "logits")) sscanf(line + used, "%255s %d %d", c->logits_file, &c->rows, &c->cols);
        mark = ftell(f);
    }
    return have;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: test_model MODEL.bin FIXTURE_DIR [TOLERANCE]\n"); return 2; }
    int consistency_only = argc > 3 && !strcmp(argv[3], "consistency");
    float tol = argc > 3 && !consistency_only ? (float)atof(argv[3]) : 1e-4f;
    char path[1024];
    snprintf(path, sizeof(path), "%s/reference.txt", argv[2]);
    FILE *ref = fopen(path, "r");
    if (!ref) { printf("FAIL cannot open %s\n", path); return 1; }
    Model m;
    model_open(&m, argv[1]);
    int V = m.config.vocab_size, failed = 0, n_cases = 0;
    Case c;
    while (read_case(ref, &c)) {
        int n_prompt = c.prompt.n, n_total = c.prompt.n + c.greedy.n;
        n_cases++;
        snprintf(path, sizeof(path), "%s/%s", argv[2], c.logits_file);
        float *expected = read_floats(path, (size_t)c.rows * (size_t)c.cols);
        int beyond = 0;   // a reference row the run never reaches would go unchecked
        for (int r = 0; r < c.positions.n; r++) beyond += c.positions.v[r] >= n_total;
        if (!expected || c.cols != V || c.rows != c.positions.n || beyond) {
            printf("FAIL %s/%s: bad reference logits %s (%d rows beyond the %d positions)\n", argv[2], c.name,
                   path, beyond, n_total);
            failed++;
            free(expected);
            continue;
        }
        // token by token (as in generation), then in blocks as in prefill: 17 tokens, then
        // up to BATCH, so that a block of 16 or more (the packed kernels) starts past 0
        float *ours[2];
        int first_bad_step = -1;
        for (int batched = 0; batched < 2; batched++) {
            RunState s;
            runstate_build(&s, &m.config, n_total);
            ours[batched] = xcalloc((size_t)n_total * (size_t)V, sizeof(float));
            for (int pos = 0; pos < n_total;) {
                int block = pos == 0 ? 17 : BATCH, n = batched ? (n_total - pos < block ? n_total - pos : block) : 1;
                int tokens[BATCH];
                for (int t = 0; t < n; t++)
                    tokens[t] = pos + t < n_prompt ? c.prompt.v[pos + t] : c.greedy.v[pos + t - n_prompt];
                float *logits = forward(&m, &s, tokens, n, pos, 1);
                memcpy(ours[batched] + (size_t)pos * V, logits, (size_t)n * V * sizeof(float));
                pos += n;
            }
            runstate_free(&s);
        }
        for (int pos = n_prompt - 1; pos < n_total - 1 && first_bad_step < 0; pos++)
            if (argmax(ours[0] + (size_t)pos * V, V) != c.greedy.v[pos - n_prompt + 1]) first_bad_step = pos - n_prompt + 1;
        float max_diff[2] = {0, 0}, batch_diff = 0.0f;
        for (int b = 0; b < 2; b++)
            for (int r = 0; r < c.rows; r++) {
                int pos = c.positions.v[r];
                for (int j = 0; j < V; j++) {
                    float d = fabsf(ours[b][(size_t)pos * V + j] - expected[(size_t)r * V + j]);
                    if (!(d <= max_diff[b])) max_diff[b] = d;  // NaN counts as a failure
                }
            }
        for (int pos = 0; pos < n_total; pos++) {  // relative to the row's largest |logit|
            const float *a = ours[0] + (size_t)pos * V, *b = ours[1] + (size_t)pos * V;
            float largest = 0.0f, d = 0.0f;
            for (int j = 0; j < V; j++) largest = fabsf(a[j]) > largest ? fabsf(a[j]) : largest;
            for (int j = 0; j < V; j++)
                if (!(fabsf(a[j] - b[j]) <= d)) d = fabsf(a[j] - b[j]);
            float rel = d / (largest > 0.0f ? largest : 1.0f);
            if (!(rel <= batch_diff)) batch_diff = rel;  // NaN counts as a failure
        }
        int ok = first_bad_step < 0 && max_diff[0] <= tol;
        if (!consistency_only) printf("%s %s/%s: %d prompt + %d greedy ids%s, %dx%d logits max |diff| %.2e (tolerance %.0e)\n",
               ok ? "ok" : "FAIL", argv[2], c.name, n_prompt, c.greedy.n,
               first_bad_step < 0 ? " identical" : " DIFFER", c.rows, V, max_diff[0], tol);
        if (first_bad_step >= 0 && !consistency_only) printf("    first greedy mismatch at step %d\n", first_bad_step);
        failed += !ok && !consistency_only;
        float bound = m.config.weight_type == WEIGHT_Q8_0 ? Q8_BATCH_BOUND : BATCH_BOUND;
        int other_ids = 0;  // greedy ids of the blocks that differ from token by token's
        for (int pos = n_prompt - 1; pos < n_total; pos++)
            other_ids += argmax(ours[1] + (size_t)pos * V, V) != argmax(ours[0] + (size_t)pos * V, V);
        ok = (max_diff[1] <= tol || consistency_only) && batch_diff <= bound && other_ids == 0;
        printf("%s %s/%s: batched prefill (blocks of 17, then %d) max |diff| %.2e to the reference, %.2e of the largest "
               "|logit| to token by token (bound %.0e), %d greedy ids differ\n",
               ok ? "ok" : "FAIL", argv[2], c.name, BATCH, max_diff[1], batch_diff, (double)bound, other_ids);
        failed += !ok;
        free(ours[0]);
        free(ours[1]);
        free(expected);
        intlist_free(&c.prompt); intlist_free(&c.greedy); intlist_free(&c.positions);
    }
    fclose(ref);
    model_close(&m);
    if (n_cases == 0) printf("FAIL %s: no case in reference.txt\n", argv[2]);
    return failed || n_cases == 0 ? 1 : 0;
}
