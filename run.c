// run.c: inference for Llama-architecture language models in one file of plain C.
//
// SmolLM2, Llama 3.2, Qwen2.5 and llama2.c's TinyStories models, converted by `export`
// into one little-endian file (FORMAT.md) that this program memory-maps. Read it top to
// bottom; it follows the data:
//
//   1. the model file: what the header holds, where the weights are
//   2. the neural-net blocks: rmsnorm, matmul, rope, attention, softmax, swiglu
//   3. the forward pass: one block of tokens through every layer, with the KV cache
//   4. the sampler: greedy, temperature, top-k, top-p
//   5. generation and chat: prompts, chat templates, streaming UTF-8, statistics
//   6. the command line
//   7. the same results, faster: the kernels that the build uses instead of the plain
//      matmul and attention of sections 2 and 3
//
// Beside it: tokenizer.c (text <-> ids), format.c (the header table, the file checks),
// util.c (errors, text, files, the operating system) and eval.c (perplexity, classify,
// batches, --info, --help). Build: `make` (OpenMP), `make noomp` or `make reference`.

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#else  // one thread
static int omp_get_max_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
#endif
#include "tokenizer.c"

// fatal() (one clear line, exit 1), xcalloc(), a growable Text, UTF-8 and JSON output,
// files and lines, and the few lines that differ between POSIX and Windows.
#include "util.c"

// ----------------------------------------------------------------------------
// 1. The model file (FORMAT.md): a 256-byte header, the tokenizer tables, the weights

enum { WEIGHT_F32 = 0, WEIGHT_Q8_0 = 1 };
enum { ROPE_DEFAULT = 0, ROPE_LLAMA3 = 1 };
enum { CHAT_NONE = 0, CHAT_CHATML = 1, CHAT_LLAMA3 = 2 };
#define MAX_STOP 8

// The hyperparameters of the network: everything the forward pass needs.
typedef struct {
    int dim;            // residual stream width (hidden_size)
    int hidden_dim;     // MLP width (intermediate_size)
    int n_layers;
    int n_heads;        // query heads
    int n_kv_heads;     // key/value heads; n_heads / n_kv_heads queries share one (GQA)
    int head_dim;
    int vocab_size;
    int max_seq_len;    // max_position_embeddings
    float rope_theta;
    float norm_eps;
    int rope_type;      // ROPE_DEFAULT or ROPE_LLAMA3
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int qkv_bias;       // Qwen2: q, k, v projections carry biases
    int tied_embeddings;
    int weight_type;    // WEIGHT_F32 or WEIGHT_Q8_0
    int group_size;     // q8_0: values per scale
} Config;

// What generation needs to know beyond the network: special tokens, the chat format,
// and the sampling defaults of the checkpoint's generation_config.json.
typedef struct {
    int bos_id;                 // -1 = none
    int add_bos;                // the tokenizer's post-processor prepends BOS
    int stop_ids[MAX_STOP];     // generation ends at any of these
    int n_stop;
    int eot_id;                 // the token that closes a chat turn, -1 = none
    int chat_template;          // CHAT_NONE, CHAT_CHATML or CHAT_LLAMA3
    const char *default_system; // inserted when no system prompt is given (may be "")
    int default_system_len;
    float default_temperature;  // 0 = greedy (do_sample false)
    int default_top_k;          // 0 = off
    float default_top_p;        // 1 = off
    float default_repetition_penalty;  // 1 = off
} GenConfig;

// A weight matrix [rows, cols] in the file's storage type. f32: w. q8_0: q and one
// scale per group of group_size values along a row (value = q * scale).
typedef struct {
    const float *w;     // (rows, cols) or NULL
    const int8_t *q;    // (rows, cols) or NULL
    const float *s;     // (rows, cols / group_size) or NULL
    int rows, cols, group_size;
} Matrix;

typedef struct {
    const float *attn_norm;     // (dim)
    Matrix wq;                  // (n_heads * head_dim, dim)
    Matrix wk, wv;              // (n_kv_heads * head_dim, dim)
    const float *bq;            // (n_heads * head_dim) or NULL
    const float *bk, *bv;       // (n_kv_heads * head_dim) or NULL
    Matrix wo;                  // (dim, n_heads * head_dim)
    const float *ffn_norm;      // (dim)
    Matrix w_gate, w_up;        // (hidden_dim, dim)
    Matrix w_down;              // (dim, hidden_dim)
} LayerWeights;

typedef struct {
    Matrix token_embedding;     // (vocab_size, dim)
    LayerWeights *layers;       // (n_layers)
    const float *final_norm;    // (dim)
    Matrix classifier;          // (vocab_size, dim); the embedding when tied
} Weights;

typedef struct {
    const char *path;
    uint8_t *data;      // the whole file: the map, or a big-endian host's copy of it
    uint8_t *map;       // the whole file, memory-mapped read-only
    size_t size;
    Config config;
    GenConfig gen;
    Tokenizer tokenizer;
    Weights weights;
} Model;

// The header's fields (HEADER[H_DIM] and so on, with the values this program accepts),
// header_int(m, H_DIM) and friends that read them, and the checks that a file is what
// FORMAT.md says it is: format.c, beside this file.
#include "format.c"

static void read_config(Model *m) {
    Config *c = &m->config;
    c->dim = header_int(m, H_DIM);
    c->hidden_dim = header_int(m, H_HIDDEN_DIM);
    c->n_layers = header_int(m, H_N_LAYERS);
    c->n_heads = header_int(m, H_N_HEADS);
    c->n_kv_heads = header_int(m, H_N_KV_HEADS);
    c->head_dim = header_int(m, H_HEAD_DIM);
    c->vocab_size = header_int(m, H_VOCAB_SIZE);
    c->max_seq_len = header_int(m, H_MAX_SEQ_LEN);
    c->rope_theta = header_float(m, H_ROPE_THETA);
    c->norm_eps = header_float(m, H_NORM_EPS);
    c->rope_type = header_int(m, H_ROPE_TYPE);
    c->qkv_bias = header_int(m, H_QKV_BIAS);
    c->tied_embeddings = header_int(m, H_TIED_EMBEDDINGS);
    c->weight_type = header_int(m, H_WEIGHT_TYPE);
    if (c->n_heads % c->n_kv_heads != 0)
        fatal("%s: n_heads (%d) is not a multiple of n_kv_heads (%d)", m->path, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0) fatal("%s: head_dim (%d) must be even for RoPE", m->path, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > MAX_DIM) fatal("%s: n_heads * head_dim is out of range", m->path);
    if (c->rope_type == ROPE_LLAMA3) {
        c->rope_factor = header_float(m, H_ROPE_FACTOR);
        c->rope_low_freq_factor = header_float(m, H_ROPE_LOW_FREQ_FACTOR);
        c->rope_high_freq_factor = header_float(m, H_ROPE_HIGH_FREQ_FACTOR);
        c->rope_original_max_pos = header_int(m, H_ROPE_ORIGINAL_MAX_POS);
        if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
            fatal("%s: rope_high_freq_factor must exceed rope_low_freq_factor", m->path);
    }
    if (c->weight_type == WEIGHT_Q8_0) {
        int g = c->group_size = header_int(m, H_GROUP_SIZE);
        if (c->dim % g || c->hidden_dim % g || (c->n_heads * c->head_dim) % g)
            fatal("%s: group_size %d does not divide every row length", m->path, g);
    }
}

static void read_gen_config(Model *m) {
    GenConfig *f = &m->gen;
    f->bos_id = header_token(m, H_BOS_ID, 0);
    f->add_bos = header_int(m, H_ADD_BOS);
    if (f->add_bos && f->bos_id < 0) fatal("%s: add_bos is set but there is no bos_id", m->path);
    f->n_stop = header_int(m, H_N_STOP);
    for (int i = 0; i < f->n_stop; i++) f->stop_ids[i] = header_token(m, H_STOP_IDS, i);
    f->eot_id = header_token(m, H_EOT_ID, 0);
    f->chat_template = header_int(m, H_CHAT_TEMPLATE);
    if (f->chat_template != CHAT_NONE && f->eot_id < 0) fatal("%s: a chat template needs an eot_id", m->path);
    uint64_t off = header_u64(m, H_DEFAULT_SYSTEM_OFFSET), len = header_u64(m, H_DEFAULT_SYSTEM_BYTES);
    if (off + len > header_u64(m, H_STRINGS_BYTES)) fatal("%s: default system prompt lies outside the strings", m->path);
    f->default_system = (const char *)m->data + header_u64(m, H_STRINGS_OFFSET) + off;
    f->default_system_len = (int)len;
    f->default_temperature = header_float(m, H_DEFAULT_TEMPERATURE);
    f->default_top_p = header_float(m, H_DEFAULT_TOP_P);
    f->default_top_k = header_int(m, H_DEFAULT_TOP_K);
    f->default_repetition_penalty = header_float(m, H_DEFAULT_REPETITION_PENALTY);
    if (f->default_top_p == 0.0f) f->default_top_p = 1.0f;  // 0 = not set
    if (f->default_repetition_penalty == 0.0f) f->default_repetition_penalty = 1.0f;
}

// The token table (vocab_size records of 16 bytes), the merge table (n_merges records of
// 12 bytes) and the strings they point into; tokenizer.c checks them and builds its
// lookup tables.
static void read_tokenizer(Model *m) {
    TokenizerSpec spec = {0};
    spec.vocab_size = m->config.vocab_size;
    spec.type = header_int(m, H_TOKENIZER_TYPE);
    spec.pretokenizer = header_int(m, H_PRETOKENIZER);
    spec.normalizer = header_int(m, H_NORMALIZER);
    spec.ignore_merges = header_int(m, H_IGNORE_MERGES);
    spec.n_merges = header_int(m, H_N_MERGES);
    spec.bos_id = m->gen.bos_id;
    uint64_t tokens = header_u64(m, H_TOKENS_OFFSET), merges = header_u64(m, H_MERGES_OFFSET);
    check_range(m, tokens, (uint64_t)spec.vocab_size * sizeof(TokenRecord), "token table");
    check_range(m, merges, (uint64_t)spec.n_merges * 12, "merge table");
    if (tokens % 4 || merges % 4) fatal("%s: tokenizer tables are not 4-byte aligned", m->path);
    host_order(m, tokens, (uint64_t)spec.vocab_size * sizeof(TokenRecord) / 4);  // 4-byte fields
    host_order(m, merges, (uint64_t)spec.n_merges * 3);
    spec.tokens = (const TokenRecord *)(m->data + tokens);
    spec.merges = (const uint32_t *)(m->data + merges);
    spec.strings = (const char *)m->data + header_u64(m, H_STRINGS_OFFSET);
    spec.strings_bytes = header_u64(m, H_STRINGS_BYTES);
    const char *err = tokenizer_build(&m->tokenizer, &spec);
    if (err) fatal("%s: bad tokenizer: %s", m->path, err);
}

// The weights follow one another in the order forward() uses them, each at a 64-byte
// aligned offset (TENSOR_ALIGN): TensorReader walks them, handing out pointers into the
// mapping.
typedef struct {
    const Model *m;
    uint64_t offset;
} TensorReader;

static const void *next_tensor(TensorReader *r, uint64_t bytes, const char *name) {
    r->offset = (r->offset + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    check_range(r->m, r->offset, bytes, name);
    const void *p = r->m->data + r->offset;
    r->offset += bytes;
    return p;
}

// n f32 values, in host byte order (see host_order).
static const float *next_vector(TensorReader *r, int n, const char *name) {
    const float *p = next_tensor(r, (uint64_t)n * sizeof(float), name);
    host_order(r->m, r->offset - (uint64_t)n * sizeof(float), (uint64_t)n);
    return p;
}

// f32: rows * cols floats. q8_0: rows * cols int8 values, then one f32 scale per group.
static Matrix next_matrix(TensorReader *r, int rows, int cols, const char *name) {
    const Config *c = &r->m->config;
    Matrix mat = {.rows = rows, .cols = cols, .group_size = c->group_size};
    uint64_t n = (uint64_t)rows * (uint64_t)cols;
    if (c->weight_type == WEIGHT_F32) {
        mat.w = next_vector(r, rows * cols, name);
    } else {
        mat.q = next_tensor(r, n, name);
        mat.s = next_vector(r, (int)(n / (uint64_t)c->group_size), name);
    }
    return mat;
}

static void read_weights(Model *m) {
    const Config *c = &m->config;
    Weights *w = &m->weights;
    int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    TensorReader r = {m, header_u64(m, H_WEIGHTS_OFFSET)};
    w->token_embedding = next_matrix(&r, c->vocab_size, c->dim, "token_embedding");
    w->layers = xcalloc((size_t)c->n_layers, sizeof(LayerWeights));
    for (int l = 0; l < c->n_layers; l++) {
        LayerWeights *lw = &w->layers[l];
        lw->attn_norm = next_vector(&r, c->dim, "attn_norm");
        lw->wq = next_matrix(&r, q_dim, c->dim, "wq");
        lw->wk = next_matrix(&r, kv_dim, c->dim, "wk");
        lw->wv = next_matrix(&r, kv_dim, c->dim, "wv");
        if (c->qkv_bias) {
            lw->bq = next_vector(&r, q_dim, "bq");
            lw->bk = next_vector(&r, kv_dim, "bk");
            lw->bv = next_vector(&r, kv_dim, "bv");
        }
        lw->wo = next_matrix(&r, c->dim, q_dim, "wo");
        lw->ffn_norm = next_vector(&r, c->dim, "ffn_norm");
        lw->w_gate = next_matrix(&r, c->hidden_dim, c->dim, "w_gate");
        lw->w_up = next_matrix(&r, c->hidden_dim, c->dim, "w_up");
        lw->w_down = next_matrix(&r, c->dim, c->hidden_dim, "w_down");
    }
    w->final_norm = next_vector(&r, c->dim, "final_norm");
    w->classifier = c->tied_embeddings ? w->token_embedding
                                       : next_matrix(&r, c->vocab_size, c->dim, "classifier");
    if (r.offset != m->size)
        fatal("%s: the file is %zu bytes but its weights end at %llu", m->path, m->size,
              (unsigned long long)r.offset);
    map_populate(m->map, m->size);  // the file is sound: read it in now (section 8)
}

// Opens a model: maps the file, checks its header, then reads the hyperparameters,
// the generation settings, the tokenizer tables and the weights, all in place.
static void model_open(Model *m, const char *path) {
    memset(m, 0, sizeof(*m));
    m->path = path;
    check_file(m);  // maps it: a regular file, a whole header, the sizes and checksum right
    read_config(m);
    read_gen_config(m);
    read_tokenizer(m);
    read_weights(m);
}

static void model_close(Model *m) {
    tokenizer_free(&m->tokenizer);
    free(m->weights.layers);
    if (m->data != m->map) free(m->data);  // a big-endian host's copy
    if (m->map) unmap_file(m->map, m->size);
    memset(m, 0, sizeof(*m));
}

// ----------------------------------------------------------------------------
// 2. The neural-net blocks
//
// Each works on a block of n tokens at once (the prompt goes through in blocks; while
// generating, n = 1). Shapes: (n, dim) means n rows of dim floats, one row per token.
// A block of at least PARALLEL_TOKENS tokens is shared among the threads (OpenMP);
// for fewer, starting the threads would cost more than they save.
#define PARALLEL_TOKENS 16

// RMSNorm of each token: out = x / sqrt(mean(x^2) + eps) * weight. x, out (n, dim).
static void rmsnorm(float *out, const float *x, const float *weight, int n, int dim, float eps) {
    #pragma omp parallel for if (n >= PARALLEL_TOKENS)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        float ss = 0.0f;
        for (int i = 0; i < dim; i++) ss += xt[i] * xt[i];
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++) out[(size_t)t * dim + i] = weight[i] * (xt[i] * scale);
    }
}

// One row of a matrix as floats: the embedding of a token.
static void matrix_row(float *out, const Matrix *W, int row) {
    for (int j = 0; j < W->cols; j++) {
        size_t at = (size_t)row * W->cols + j;
        out[j] = W->w ? W->w[at] : (float)W->q[at] * W->s[at / W->group_size];
    }
}

// q8_0 multiplies int8 weights by int8 activations: x (n values) is quantized in groups
// of g, per group scale = max|x| / 127 and q = round(x / scale), so x ~= q * scale. The
// q are kept in int16 (see the faster q8_0 kernels in section 7).
static void quantize_q8(int16_t *q, float *s, const float *x, int n, int g) {
    for (int b = 0; b < n / g; b++) {
        const float *xb = x + (size_t)b * g;
        float lane[8] = {0}, amax = 0.0f;  // the largest |x|: in 8 lanes side by side, then the rest
        for (int i = 0; i + 8 <= g; i += 8)
            for (int k = 0; k < 8; k++) lane[k] = fabsf(xb[i + k]) > lane[k] ? fabsf(xb[i + k]) : lane[k];
        for (int i = g / 8 * 8; i < g; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        for (int k = 0; k < 8; k++) amax = lane[k] > amax ? lane[k] : amax;
        float scale = amax / 127.0f, inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        s[b] = scale;
        for (int i = 0; i < g; i++) {
            // Clamped, and NaN taken as 0: the float -> int conversion of NaN or of a
            // value out of range (a corrupt file's weights) is undefined behaviour.
            float v = xb[i] * inv;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v == v ? v : 0.0f;
            // Rounds half away from zero, except that v + 0.5f itself rounds: the float
            // just below 0.5 gives 1.
            q[(size_t)b * g + i] = (int16_t)(v >= 0.0f ? (int)(v + 0.5f) : (int)(v - 0.5f));
        }
    }
}

static float dot(const float *a, const float *b, int n) {
    float sum = 0.0f;
    for (int j = 0; j < n; j++) sum += a[j] * b[j];
    return sum;
}

// w . x for an int8 row w and quantized activations x, both in groups of g values
// with one scale each: the sum over groups of (integer dot product) * w_scale * x_scale.
static float dot_q8(const int8_t *w, const float *w_scale, const int16_t *x, const float *x_scale, int n, int g) {
    float sum = 0.0f;
    for (int b = 0; b < n / g; b++) {
        const int8_t *wb = w + (size_t)b * g;
        const int16_t *xb = x + (size_t)b * g;
        int32_t isum = 0;
        for (int j = 0; j < g; j++) isum += wb[j] * xb[j];
        sum += (float)isum * w_scale[b] * x_scale[b];
    }
    return sum;
}

// One matrix product of a layer: out = x W^T + bias, with x (n, cols), W (rows, cols),
// bias (rows) or NULL, out (n, rows).
typedef struct {
    const Matrix *W;
    const float *bias;
    float *out;
} Projection;

#ifndef REFERENCE  // section 7's matmul: the same results, faster (not in `make reference`)
static void matmul_fast(const Projection *p, int count, const float *x, int n, int16_t *xq, float *xs);
#endif

// The projections p[0..count) of the same n tokens x (n, cols): q, k and v of one input,
// or gate and up. Almost all of the time goes here: every weight is used once per token.
// This is the plain loop, one weight row times one token; section 7 computes the same
// faster. xq (n, cols) and xs (n, cols / group_size): room for quantized activations.
static void matmul(const Projection *p, int count, const float *x, int n, int16_t *xq, float *xs) {
#ifndef REFERENCE
    matmul_fast(p, count, x, n, xq, xs);
    return;
#endif
    for (int k = 0; k < count; k++) {
        const Matrix *W = p[k].W;
        int rows = W->rows, cols = W->cols, g = W->group_size;
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * cols;
            if (W->q) quantize_q8(xq, xs, xt, cols, g);
            for (int i = 0; i < rows; i++) {
                float v = W->q ? dot_q8(W->q + (size_t)i * cols, W->s + (size_t)i * (cols / g), xq, xs, cols, g)
                               : dot(W->w + (size_t)i * cols, xt, cols);
                p[k].out[(size_t)t * rows + i] = v + (p[k].bias ? p[k].bias[i] : 0.0f);
            }
        }
    }
}

// RoPE encodes a token's position by rotating each pair (i, i + head_dim/2) of every
// head (Hugging Face's rotate_half layout) by the angle pos * inv_freq[i]:
//   x'[i]        = x[i] cos - x[i + h/2] sin
//   x'[i + h/2]  = x[i + h/2] cos + x[i] sin
// rope_angles gives cos and sin for the positions pos..pos+n-1, (n, head_dim / 2) each.
// inv_freq[i] = theta^(-2i/head_dim), in float32 as transformers computes it. Llama 3
// rescales it: long wavelengths (beyond original_max_pos / low_freq_factor) are divided
// by factor, short ones (below original_max_pos / high_freq_factor) are kept, and the
// band between is interpolated smoothly between the two.
static void rope_angles(float *cos_out, float *sin_out, const Config *c, int pos, int n) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float f = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_type == ROPE_LLAMA3) {
            float old_ctx = (float)c->rope_original_max_pos;
            float wavelen = 2.0f * 3.14159265358979f / f;
            if (wavelen > old_ctx / c->rope_low_freq_factor) {
                f = f / c->rope_factor;
            } else if (wavelen >= old_ctx / c->rope_high_freq_factor) {
                float smooth = (old_ctx / wavelen - c->rope_low_freq_factor) /
                               (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0f - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        for (int t = 0; t < n; t++) {
            float angle = (float)(pos + t) * f;
            cos_out[(size_t)t * half + i] = cosf(angle);
            sin_out[(size_t)t * half + i] = sinf(angle);
        }
    }
}

// x (n, n_heads * head_dim): every head of every token rotated by its angles.
static void rope(float *x, int n, int n_heads, int head_dim, const float *cos_tab, const float *sin_tab) {
    int half = head_dim / 2;
    #pragma omp parallel for if (n >= PARALLEL_TOKENS)
    for (int t = 0; t < n; t++) {
        const float *cs = cos_tab + (size_t)t * half, *sn = sin_tab + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}

// e^x to 1.2 ulp in plain arithmetic, which the compiler vectorises (libm's expf is a call
// per value: 5x slower in swiglu and attention's softmax). e^x = 2^n e^r, n = round(x / ln2)
// (adding 1.5 * 2^23 leaves no bits for a fraction; the cast rounds where floats are
// computed in double, as by s390x's gcc 12), |r| <= ln2 / 2, e^r by its Taylor series to
// r^7 / 7! (the rest is below 1e-8 of it), 2^n made in the exponent bits. ln2 comes in
// two parts, the first short enough that n times it is exact. Past float range: 0, inf.
static float exp_approx(float x) {
    float c = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;  // NaN too: n must be an int
    float n = (float)(c * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (c - n * 0.693145752f) - n * 1.42860677e-6f;
    float e_r = 1 + r * (1 + r * (1 / 2.0f + r * (1 / 6.0f + r * (1 / 24.0f + r * (1 / 120.0f + r * (1 / 720.0f + r / 5040.0f))))));
    union { int32_t bits; float f; } two_n;
    two_n.bits = ((int32_t)n + 127) << 23;  // 2^n: exponent n + 127, mantissa 0
    return x < -87.0f ? 0.0f : x > 88.0f ? INFINITY : x == x ? e_r * two_n.f : x;
}

// softmax(x)_i = exp(x_i - max) / sum_j exp(x_j - max); the max keeps exp from overflowing.
static void softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;  // fmaxf is a library call
    for (int i = 0; i < n; i++) x[i] = exp_approx(x[i] - max);  // a loop of its own: vectorised
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i];
    for (int i = 0; i < n; i++) x[i] /= sum;
}

// SwiGLU: h = silu(gate) * up, silu(x) = x * sigmoid(x). gate, up (n, hidden).
static void swiglu(float *gate, const float *up, int n, int hidden) {
    #pragma omp parallel for if (n >= PARALLEL_TOKENS)
    for (int t = 0; t < n; t++) {
        float *g = gate + (size_t)t * hidden;
        const float *u = up + (size_t)t * hidden;
        for (int i = 0; i < hidden; i++) g[i] = g[i] / (1.0f + exp_approx(-g[i])) * u[i];
    }
}

// x += delta (n values): the residual connection.
static void residual(float *x, const float *delta, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += delta[i];
}

// ----------------------------------------------------------------------------
// 3. The forward pass

// The prompt goes through the network this many tokens at a time (one token at a time
// while generating). Larger blocks reuse each weight more often but need more memory.
#define BATCH 192

// The activations of a block of tokens and the KV cache of all tokens so far.
typedef struct {
    int seq_len;        // KV cache length (the context)
    float *x;           // (BATCH, dim) the residual stream
    float *xb;          // (BATCH, max(dim, q_dim)) normalised input / attention output
    float *xb2;         // (BATCH, dim) a block's output before the residual add
    float *hb, *hb2;    // (BATCH, hidden_dim) MLP gate and up
    float *q;           // (BATCH, q_dim) queries of all heads
    float *k, *v;       // (BATCH, kv_dim) keys and values of the block, for the cache
    float *att;         // (n_heads, seq_len) attention scores
    float *scratch;     // section 7: per-thread buffers of attention_block, or NULL
    float *logits;      // (BATCH, vocab_size)
    float *key_cache;   // (n_layers, n_kv_heads, seq_len, head_dim): each head's keys
    float *value_cache; // (n_layers, n_kv_heads, seq_len, head_dim)   one after another
    int16_t *xq;        // (BATCH, max(dim, q_dim, hidden_dim)) q8_0 activations
    float *xs;          // (2 * BATCH, max(dim, q_dim, hidden_dim)) + 16: their scales, then section 7's packed block
    float *rope_cos;    // (BATCH, head_dim / 2) cos(pos * inv_freq) of each token
    float *rope_sin;    // (BATCH, head_dim / 2)
} RunState;

// Where key/value head h of layer l keeps position pos in the cache. Each head's keys
// (and values) lie one after another, so attention reads them as one stream.
static size_t cache_index(const RunState *s, const Config *c, int l, int h, int pos) {
    return (((size_t)l * (size_t)c->n_kv_heads + (size_t)h) * (size_t)s->seq_len + (size_t)pos) * (size_t)c->head_dim;
}

// The block's keys and values s->k, s->v (n, kv_dim) go into layer l's cache at pos..pos+n-1.
static void cache_store(RunState *s, const Config *c, int l, int n, int pos) {
    int kv_dim = c->n_kv_heads * c->head_dim;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < c->n_kv_heads; h++) {
            size_t at = cache_index(s, c, l, h, pos + t), from = (size_t)t * kv_dim + (size_t)h * c->head_dim;
            memcpy(s->key_cache + at, s->k + from, (size_t)c->head_dim * sizeof(float));
            memcpy(s->value_cache + at, s->v + from, (size_t)c->head_dim * sizeof(float));
        }
}

#ifndef REFERENCE  // section 7's attention: the same results, faster
static void attention_fast(RunState *s, const Config *c, int layer, int n, int pos);
#endif

// Causal self-attention of the n tokens at positions pos..pos+n-1, whose keys and
// values are already in the cache. Token t sees positions 0..pos+t; for each head:
//   att = softmax(q . k_j / sqrt(head_dim)),  out = sum_j att_j v_j
// Query head h reads key/value head h / (n_heads / n_kv_heads) (grouped-query attention).
// q (n, q_dim) -> xb (n, q_dim).
static void attention(RunState *s, const Config *c, int layer, int n, int pos) {
#ifndef REFERENCE
    attention_fast(s, c, layer, n, pos);
    return;
#endif
    int hd = c->head_dim, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    for (int h = 0; h < c->n_heads; h++) {
        float *att = s->att + (size_t)h * s->seq_len;
        const float *keys = s->key_cache + cache_index(s, c, layer, h / group, 0);      // (seq_len, hd)
        const float *values = s->value_cache + cache_index(s, c, layer, h / group, 0);  // (seq_len, hd)
        for (int t = 0; t < n; t++) {
            const float *q = s->q + (size_t)t * q_dim + (size_t)h * hd;
            float *out = s->xb + (size_t)t * q_dim + (size_t)h * hd;
            int last = pos + t;
            for (int j = 0; j <= last; j++) att[j] = dot(q, keys + (size_t)j * hd, hd) * (1.0f / sqrtf((float)hd));
            softmax(att, last + 1);
            memset(out, 0, (size_t)hd * sizeof(float));
            for (int j = 0; j <= last; j++)
                for (int i = 0; i < hd; i++) out[i] += att[j] * values[(size_t)j * hd + i];
        }
    }
}

// Runs n tokens (1 <= n <= BATCH) at positions pos..pos+n-1 through the network and
// appends their keys and values to the cache. Returns the logits of the next token:
// (vocab_size) after the last token, or (n, vocab_size) after each token if all_logits.
static float *forward(const Model *m, RunState *s, const int *tokens, int n, int pos, int all_logits) {
    const Config *c = &m->config;
    const Weights *w = &m->weights;
    int dim = c->dim;
    if (n < 1 || n > BATCH || pos < 0 || pos + n > s->seq_len)
        fatal("forward: %d tokens at position %d do not fit a block of %d in a %d-token context", n, pos, BATCH, s->seq_len);
    for (int t = 0; t < n; t++) matrix_row(s->x + (size_t)t * dim, &w->token_embedding, tokens[t]);
    rope_angles(s->rope_cos, s->rope_sin, c, pos, n);
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];

        // attention block: x += Wo attention(rope(Wq xn), rope(Wk xn), Wv xn)
        rmsnorm(s->xb, s->x, lw->attn_norm, n, dim, c->norm_eps);
        Projection qkv[3] = {{&lw->wq, lw->bq, s->q}, {&lw->wk, lw->bk, s->k}, {&lw->wv, lw->bv, s->v}};
        matmul(qkv, 3, s->xb, n, s->xq, s->xs);
        rope(s->q, n, c->n_heads, c->head_dim, s->rope_cos, s->rope_sin);
        rope(s->k, n, c->n_kv_heads, c->head_dim, s->rope_cos, s->rope_sin);
        cache_store(s, c, l, n, pos);
        attention(s, c, l, n, pos);
        Projection wo = {&lw->wo, NULL, s->xb2};
        matmul(&wo, 1, s->xb, n, s->xq, s->xs);
        residual(s->x, s->xb2, (size_t)n * dim);

        // MLP block: x += W_down (silu(W_gate xn) * W_up xn)
        rmsnorm(s->xb, s->x, lw->ffn_norm, n, dim, c->norm_eps);
        Projection gate_up[2] = {{&lw->w_gate, NULL, s->hb}, {&lw->w_up, NULL, s->hb2}};
        matmul(gate_up, 2, s->xb, n, s->xq, s->xs);
        swiglu(s->hb, s->hb2, n, c->hidden_dim);
        Projection down = {&lw->w_down, NULL, s->xb2};
        matmul(&down, 1, s->hb, n, s->xq, s->xs);
        residual(s->x, s->xb2, (size_t)n * dim);
    }
    // final norm and the classifier: only the last token's logits are needed to go on
    int first = all_logits ? 0 : n - 1;
    float *x_first = s->x + (size_t)first * dim;
    rmsnorm(x_first, x_first, w->final_norm, n - first, dim, c->norm_eps);
    Projection classifier = {&w->classifier, NULL, s->logits};
    matmul(&classifier, 1, x_first, n - first, s->xq, s->xs);
    return s->logits;
}

// The activations and the cache, allocated once for a context of seq_len tokens.
static void runstate_build(RunState *s, const Config *c, int seq_len) {
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, half = (size_t)c->head_dim / 2;
    size_t wide = dim > q_dim ? dim : q_dim;
    size_t widest = wide > hidden ? wide : hidden;
    size_t cache = (size_t)c->n_layers * (size_t)seq_len * kv_dim;
    memset(s, 0, sizeof(*s));
    s->seq_len = seq_len;
    s->x = xcalloc(BATCH * dim, sizeof(float));
    s->xb = xcalloc(BATCH * wide, sizeof(float));
    s->xb2 = xcalloc(BATCH * dim, sizeof(float));
    s->hb = xcalloc(BATCH * hidden, sizeof(float));
    s->hb2 = xcalloc(BATCH * hidden, sizeof(float));
    s->q = xcalloc(BATCH * q_dim, sizeof(float));
    s->k = xcalloc(BATCH * kv_dim, sizeof(float));
    s->v = xcalloc(BATCH * kv_dim, sizeof(float));
    s->att = xcalloc((size_t)c->n_heads * (size_t)seq_len, sizeof(float));
    s->logits = xcalloc(BATCH * (size_t)c->vocab_size, sizeof(float));
    s->key_cache = xcalloc(cache, sizeof(float));
    s->value_cache = xcalloc(cache, sizeof(float));
    s->xq = xcalloc(BATCH * widest, sizeof(int16_t));
    s->xs = xcalloc(2 * BATCH * widest + 16, sizeof(float));
    s->rope_cos = xcalloc(BATCH * half, sizeof(float));
    s->rope_sin = xcalloc(BATCH * half, sizeof(float));
}

static void runstate_free(RunState *s) {
    free(s->x); free(s->xb); free(s->xb2); free(s->hb); free(s->hb2); free(s->q); free(s->k); free(s->v);
    free(s->att); free(s->logits); free(s->key_cache); free(s->value_cache);
    free(s->xq); free(s->xs); free(s->rope_cos); free(s->rope_sin); free(s->scratch);
    memset(s, 0, sizeof(*s));
}

// ----------------------------------------------------------------------------
// 4. The sampler: picks the next token from the logits

typedef struct {
    float temperature;  // 0 = greedy (argmax)
    int top_k;          // keep the k most likely tokens; 0 = all
    float top_p;        // keep the smallest set whose probability reaches top_p; 1 = all
    float repetition_penalty;  // for the tokens already in the text; 1 = off
    uint64_t rng;       // xorshift64* state; the same seed gives the same text
} SamplerConfig;

typedef struct {
    float prob;
    int id;
} ProbIndex;

typedef struct {
    SamplerConfig cfg;
    int vocab_size;
    float *probs;           // (vocab_size) softmax(logits / temperature)
    ProbIndex *candidates;  // (vocab_size) the tokens still in the running
    unsigned char *seen;    // (vocab_size) scratch for the repetition penalty
} Sampler;

static void sampler_build(Sampler *sm, SamplerConfig cfg, int vocab_size) {
    sm->cfg = cfg;
    if (sm->cfg.rng == 0) sm->cfg.rng = 0x9E3779B97F4A7C15ull;  // xorshift must not start at 0
    sm->vocab_size = vocab_size;
    sm->probs = xcalloc((size_t)vocab_size, sizeof(float));
    sm->candidates = xcalloc((size_t)vocab_size, sizeof(ProbIndex));
    sm->seen = xcalloc((size_t)vocab_size, 1);
}

static void sampler_free(Sampler *sm) {
    free(sm->probs);
    free(sm->candidates);
    free(sm->seen);
    memset(sm, 0, sizeof(*sm));
}

static uint32_t random_u32(uint64_t *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

// a uniform float in [0, 1)
static float random_f32(uint64_t *state) { return (float)(random_u32(state) >> 8) / 16777216.0f; }

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int compare_prob_desc(const void *a, const void *b) {
    const ProbIndex *x = a, *y = b;
    if (x->prob != y->prob) return x->prob > y->prob ? -1 : 1;
    return x->id - y->id;
}

// The repetition penalty, as transformers applies it before temperature, top-k and
// top-p (and in greedy decoding too): the logit of every token id already in the text
// (ids: the prompt and the answer so far) is divided by the penalty when positive and
// multiplied by it when negative, once per id however often it occurs.
static void penalize_repeats(Sampler *sm, float *logits, const int *ids, int n) {
    float penalty = sm->cfg.repetition_penalty;
    if (penalty == 1.0f || penalty <= 0.0f) return;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (sm->seen[id]) continue;
        sm->seen[id] = 1;
        logits[id] = logits[id] > 0.0f ? logits[id] / penalty : logits[id] * penalty;
    }
    for (int i = 0; i < n; i++) sm->seen[ids[i]] = 0;
}

// The distribution to draw from, as Hugging Face's generate builds it with
// do_sample=True: softmax(logits / temperature), then only the top_k most likely
// tokens, then only the top_p nucleus of those. Leaves the tokens kept in
// sm->candidates[0..keep) (most likely first when top-k or top-p cut) and returns keep.
static int sampler_distribution(Sampler *sm, const float *logits, float temperature, int top_k, float top_p) {
    int n = sm->vocab_size;
    for (int i = 0; i < n; i++) sm->probs[i] = logits[i] / temperature;
    softmax(sm->probs, n);
    ProbIndex *cand = sm->candidates;
    for (int i = 0; i < n; i++) cand[i] = (ProbIndex){sm->probs[i], i};
    int keep = n;
    if ((top_k > 0 && top_k < n) || top_p < 1.0f) {
        qsort(cand, (size_t)n, sizeof(ProbIndex), compare_prob_desc);
        if (top_k > 0 && top_k < n) {
            // transformers removes the scores below the k-th: the tokens tied with it stay
            float kth = logits[cand[top_k - 1].id] / temperature;
            keep = top_k;
            while (keep < n && logits[cand[keep].id] / temperature == kth) keep++;
        }
        if (top_p < 1.0f) {
            // Keep tokens until the ones kept so far hold at least top_p of the
            // probability mass (renormalised over the top-k survivors), at least one.
            float total = 0.0f, cum = 0.0f;
            for (int i = 0; i < keep; i++) total += cand[i].prob;
            int i = 0;
            while (i < keep && (i == 0 || cum < top_p * total)) cum += cand[i++].prob;
            keep = i;
        }
    }
    return keep;
}

// Temperatures below this are greedy, the limit T -> 0: logits / T would overflow a float
// to inf for T near 1e-38, and the softmax of inf - inf is NaN.
#define GREEDY_BELOW_TEMPERATURE 1e-6f

// The next token: the most likely one (temperature 0), else a draw from the
// distribution above, renormalised over the tokens kept.
static int sample(Sampler *sm, const float *logits) {
    const SamplerConfig *cfg = &sm->cfg;
    if (cfg->temperature < GREEDY_BELOW_TEMPERATURE) return argmax(logits, sm->vocab_size);
    int keep = sampler_distribution(sm, logits, cfg->temperature, cfg->top_k, cfg->top_p);
    const ProbIndex *cand = sm->candidates;
    float total = 0.0f;
    for (int i = 0; i < keep; i++) total += cand[i].prob;
    float r = random_f32(&sm->cfg.rng) * total, cum = 0.0f;
    for (int i = 0; i < keep; i++) {
        cum += cand[i].prob;
        if (r < cum) return cand[i].id;
    }
    return cand[keep - 1].id;  // rounding: r landed at the very end
}

// ----------------------------------------------------------------------------
// 5. Generation and chat

// Renders what the chat template adds for one user turn, exactly as Hugging Face's
// apply_chat_template(..., add_generation_prompt=True) renders it. The first turn opens
// the conversation (BOS, system prompt); later turns first close the assistant's
// previous answer with the end-of-turn marker, as the template renders the history.
//   ChatML (SmolLM2, Qwen2.5): <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
//   Llama 3: <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
//            ... <|start_header_id|>assistant<|end_header_id|>\n\n
// Jinja's `trim`: the Llama 3 template strips the whitespace around every message, as
// Python's str.strip() (util.c's text_append_trimmed).
static void render_turn(Text *out, const GenConfig *f, const char *system, const char *user,
                        int first, const char *date) {
    if (f->chat_template == CHAT_CHATML) {
        if (!first) text_puts(out, "<|im_end|>\n");  // closes the previous answer
        if (first && (system || f->default_system_len > 0)) {
            text_puts(out, "<|im_start|>system\n");
            if (system) text_puts(out, system);
            else text_append(out, f->default_system, (size_t)f->default_system_len);
            text_puts(out, "<|im_end|>\n");
        }
        text_puts(out, "<|im_start|>user\n");
        text_puts(out, user);
        text_puts(out, "<|im_end|>\n<|im_start|>assistant\n");
    } else {  // CHAT_LLAMA3 (callers never render CHAT_NONE)
        if (!first) text_puts(out, "<|eot_id|>");
        // The Llama 3.2 template always opens with a system turn that carries the
        // knowledge cutoff and today's date, then the system prompt, if any.
        if (first) {
            text_puts(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n");
            text_puts(out, "Cutting Knowledge Date: December 2023\nToday Date: ");
            text_puts(out, date);
            text_puts(out, "\n\n");
            if (system) text_append_trimmed(out, system);
            text_puts(out, "<|eot_id|>");
        }
        text_puts(out, "<|start_header_id|>user<|end_header_id|>\n\n");
        text_append_trimmed(out, user);
        text_puts(out, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    }
}

// Timing of one answer, printed on stderr.
typedef struct {
    int prompt_tokens;
    double prefill_s;   // time to run the prompt through the network
    int new_tokens;
    double gen_s;       // time to run the generated tokens through the network
    double ttft_s;      // from the start of the prompt to the first new token
} Stats;

enum { STATS_TEXT, STATS_JSON, STATS_OFF };

// tokens per second (0 when nothing was timed)
static double rate(int tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0.0; }

// A conversation with the model: the KV cache holds the tokens history[0..pos-1].
typedef struct {
    const Model *model;
    RunState state;
    Sampler sampler;
    int pos;
    int *history;           // (seq_len) the tokens in the KV cache
    int max_new_tokens;     // per answer; < 0 = until a stop token or the context end
    int ignore_eos;         // keep going past stop tokens
    FILE *dump_logits;      // float32 logits of every processed position, or NULL
    int top_logprobs;       // show the this many most likely candidates of each token
    Text *top_json;         // ... as JSON appended here (--batch), or NULL: on stderr
    Stats stats;            // of the last answer
    uint64_t seed;          // the sampler's seed, printed with the statistics
} Session;

// The statistics of the last answer on stderr: a line of text, or a JSON object.
static void print_stats(const Session *ss, int mode) {
    const Stats *st = &ss->stats;
    if (mode == STATS_OFF) return;
    double prefill = rate(st->prompt_tokens, st->prefill_s), gen = rate(st->new_tokens, st->gen_s);
    if (mode == STATS_JSON)
        fprintf(stderr, "{\"prompt_tokens\": %d, \"prefill_tok_s\": %.2f, \"new_tokens\": %d, "
                "\"gen_tok_s\": %.2f, \"ttft_ms\": %.2f, \"peak_rss_mb\": %.1f, \"seed\": %llu}\n",
                st->prompt_tokens, prefill, st->new_tokens, gen, st->ttft_s * 1e3, peak_rss_mb(),
                (unsigned long long)ss->seed);
    else
        fprintf(stderr, "[prompt: %d tokens, %.1f tok/s | answer: %d tokens, %.1f tok/s | "
                "first token after %.0f ms | seed %llu]\n",
                st->prompt_tokens, prefill, st->new_tokens, gen, st->ttft_s * 1e3, (unsigned long long)ss->seed);
}

// --top-logprobs (eval.c): the most likely candidates for the token after prev.
#define MAX_TOP_LOGPROBS 20
static void report_top(Session *ss, const float *logits, int prev);

static void session_build(Session *ss, const Model *m, int seq_len, SamplerConfig sc) {
    memset(ss, 0, sizeof(*ss));
    ss->model = m;
    runstate_build(&ss->state, &m->config, seq_len);
    sampler_build(&ss->sampler, sc, m->config.vocab_size);
    ss->history = xcalloc((size_t)seq_len, sizeof(int));
    ss->max_new_tokens = -1;
}

static void session_free(Session *ss) {
    runstate_free(&ss->state);
    sampler_free(&ss->sampler);
    free(ss->history);
}

static int is_stop(const Model *m, int token) {
    for (int i = 0; i < m->gen.n_stop; i++)
        if (m->gen.stop_ids[i] == token) return 1;
    return 0;
}

// Runs n tokens (at most BATCH) at the end of the conversation. Returns the logits
// after each of them (n, vocab_size) if all, else after the last one (vocab_size).
static float *session_forward(Session *ss, const int *tokens, int n, int all) {
    size_t vocab = (size_t)ss->model->config.vocab_size;
    int dump = ss->dump_logits != NULL;
    float *logits = forward(ss->model, &ss->state, tokens, n, ss->pos, all || dump);
    memcpy(ss->history + ss->pos, tokens, (size_t)n * sizeof(int));
    ss->pos += n;
    if (dump) write_f32_le(logits, (size_t)n * vocab, ss->dump_logits);
    return all || !dump ? logits : logits + (size_t)(n - 1) * vocab;
}

// Starts a new sequence of n tokens: keeps the part of the KV cache that holds the
// same tokens (a shared system prompt, a template's head) and returns how many of ids
// are already in place; the caller runs the rest. At least the last token is left to
// run, since its logits are needed.
static int session_reuse_prefix(Session *ss, const int *ids, int n) {
    int same = 0;
    while (same < ss->pos && same < n - 1 && ss->history[same] == ids[same]) same++;
    ss->pos = same;
    return same;
}

// Encodes text into ids (malloc'ed, *n of them), with BOS first when asked.
// Returns NULL if the text is not valid UTF-8.
static int *encode(const Model *m, const char *text, int bos, int *n) {
    size_t len = strlen(text);
    int *ids = xcalloc(tokenizer_max_ids(&m->tokenizer, len) + 1, sizeof(int));
    int start = bos && m->gen.bos_id >= 0;
    if (start) ids[0] = m->gen.bos_id;
    int k = tokenizer_encode(&m->tokenizer, text, len, ids + start);
    if (k < 0) {
        free(ids);
        return NULL;
    }
    *n = k + start;
    return ids;
}

// Ctrl-C stops the answer being generated (chat goes back to the prompt); a second
// Ctrl-C, or one while no answer is being generated, ends the program.
static volatile sig_atomic_t answering = 0, stop_answer = 0;

static void on_interrupt(int sig) {
    (void)sig;
    if (answering && !stop_answer) {
        stop_answer = 1;
        signal(SIGINT, on_interrupt);  // some systems reset the handler on delivery
        return;
    }
    _Exit(130);  // exit() is not safe in a signal handler; 130 = killed by SIGINT
}

// Runs the prompt through the network, then samples up to max_new_tokens new tokens,
// streaming their text to out (if not NULL) and appending it to answer (if not NULL),
// until a stop token or the end of the context. Every emitted token enters the KV
// cache, so a conversation can go on from here.
// Returns 0, or -1 (nothing done) if the prompt does not fit in the context left.
static int session_generate(Session *ss, const int *prompt, int n_prompt, FILE *out, Text *answer) {
    const Model *m = ss->model;
    Stats *st = &ss->stats;
    memset(st, 0, sizeof(*st));
    if (n_prompt < 1 || n_prompt > ss->state.seq_len - ss->pos) return -1;
    answering = 1;
    stop_answer = 0;
    double t0 = now_seconds();
    float *logits = NULL;
    for (int i = 0; i < n_prompt; i += BATCH)
        logits = session_forward(ss, prompt + i, n_prompt - i < BATCH ? n_prompt - i : BATCH, 0);
    double t1 = now_seconds();
    st->prompt_tokens = n_prompt;
    st->prefill_s = t1 - t0;

    Utf8Stream utf8 = {0};
    int prev = prompt[n_prompt - 1];
    for (int n = 0; ss->max_new_tokens < 0 || n < ss->max_new_tokens; n++) {
        if (stop_answer) {
            fputs("\n[interrupted]\n", stderr);
            break;
        }
        penalize_repeats(&ss->sampler, logits, ss->history, ss->pos);
        int next = sample(&ss->sampler, logits);
        if (n == 0) st->ttft_s = now_seconds() - t0;
        if (ss->top_logprobs > 0) report_top(ss, logits, prev);
        if (is_stop(m, next) && !ss->ignore_eos) break;
        size_t len;
        const char *piece = tokenizer_decode(&m->tokenizer, prev, next, &len);
        if (out) utf8_write(&utf8, out, piece, len);
        if (answer) text_append(answer, piece, len);
        st->new_tokens++;
        prev = next;
        if (ss->pos == ss->state.seq_len) {
            if (out) utf8_finish(&utf8, out);
            fprintf(stderr, "\n[context full: %d tokens; stopping]\n", ss->state.seq_len);
            break;
        }
        logits = session_forward(ss, &next, 1, 0);
    }
    if (out) utf8_finish(&utf8, out);
    st->gen_s = now_seconds() - t0 - st->ttft_s;
    answering = 0;
    return 0;
}

// A chat turn of n tokens that does not fit in what is left of the context.
static void chat_too_long(const Session *ss, int n) {
    int seq_len = ss->state.seq_len, max = ss->model->config.max_seq_len;
    fprintf(stderr, "run: this turn needs %d tokens but only %d of the %d-token context are left; turn "
            "ignored. Type /clear to start a new conversation", n, seq_len - ss->pos, seq_len);
    if (seq_len < max) fprintf(stderr, ", or run with a larger -c (the model allows %d)", max);
    fputs(".\n", stderr);
}

// Chat: -i is the first user turn, then one turn per line of stdin until /bye or the
// end of input; /clear starts a new conversation. The KV cache is kept across turns, so
// each turn only processes its own new tokens. Returns how many turns were refused (not
// valid UTF-8, or longer than the context left), so that the exit status can say so.
static int chat(Session *ss, const char *system, const char *first_prompt, int stats_mode) {
    char date[32];
    today(date, sizeof(date));
    int interactive = isatty(fileno(stdin)), first = 1, refused = 0;
    const char *user = first_prompt;
    Text line = {0}, turn = {0};
    for (;; user = NULL) {
        if (!user) {
            if (interactive) fputs("> ", stderr);
            if (!read_line(&line, stdin)) break;
            user = line.data;
        }
        if (!strcmp(user, "/bye")) break;
        if (!strcmp(user, "/clear")) {
            ss->pos = 0;
            first = 1;
            continue;
        }
        turn.len = 0;
        render_turn(&turn, &ss->model->gen, system, user, first, date);
        int n, ok = 0;
        int *ids = encode(ss->model, turn.data, 0, &n);
        if (!ids) fprintf(stderr, "run: the input is not valid UTF-8; turn ignored\n");
        else if (session_generate(ss, ids, n, stdout, NULL) != 0) chat_too_long(ss, n);
        else ok = 1;
        refused += !ok;
        if (ok) {
            fputc('\n', stdout);
            flush_or_exit(stdout);
            print_stats(ss, stats_mode);
            first = 0;
        }
        free(ids);
    }
    text_free(&line);
    text_free(&turn);
    return refused;
}

// The evaluation workflows: perplexity, classification with its report, batches.
#include "eval.c"

// ----------------------------------------------------------------------------
// 6. The command line

typedef struct {
    const char *model_path, *mode, *prompt, *system, *dump_logits;
    const char *labels, *template_, *output, *batch;
    int free_answer, info, pieces, top_logprobs, threads;
    float temperature, top_p, repeat_penalty;
    int top_k, max_new_tokens, context, ignore_eos, verify, has_temperature, has_top_p, has_top_k;
    const char *stats;
    long long seed;
} Options;

// The options without a value; returns 0 if a is none of them.
static int parse_flag(Options *o, const char *a) {
    if (is_option(a, "-h", "--help")) {
        usage(stdout);
        exit(0);
    }
    if (!strcmp(a, "--version")) {
        print_version();
        exit(0);
    }
    if (!strcmp(a, "--ignore-eos")) o->ignore_eos = 1;
    else if (!strcmp(a, "--verify")) o->verify = 1;
    else if (!strcmp(a, "--free")) o->free_answer = 1;
    else if (!strcmp(a, "--info")) o->info = 1;
    else if (!strcmp(a, "--pieces")) o->pieces = 1;
    else return 0;
    return 1;
}

// The options with a value v; returns 0 if a is none of them.
static int parse_value(Options *o, const char *a, const char *v) {
    if (is_option(a, "-m", "--mode")) o->mode = v;
    else if (is_option(a, "-i", "--prompt")) o->prompt = v;
    else if (is_option(a, "-y", "--system")) o->system = v;
    else if (is_option(a, "-t", "--temperature")) {
        o->temperature = parse_float(v, a, 0, 100);
        o->has_temperature = 1;
    } else if (is_option(a, "-p", "--top-p")) {
        o->top_p = parse_float(v, a, 0, 1);
        o->has_top_p = 1;
    } else if (is_option(a, "-k", "--top-k")) {
        o->top_k = (int)parse_int(v, a, 0, MAX_VOCAB);
        o->has_top_k = 1;
    } else if (is_option(a, "-s", "--seed")) o->seed = parse_int(v, a, 0, INT64_MAX);
    else if (is_option(a, "-n", "--max-new-tokens")) o->max_new_tokens = (int)parse_int(v, a, -1, MAX_SEQ);
    else if (is_option(a, "-c", "--context")) o->context = (int)parse_int(v, a, 1, MAX_SEQ);
    else if (!strcmp(a, "--repeat-penalty")) o->repeat_penalty = parse_float(v, a, 0.01, 100);
    else if (!strcmp(a, "--threads")) o->threads = (int)parse_int(v, a, 1, 1024);
    else if (!strcmp(a, "--top-logprobs")) o->top_logprobs = (int)parse_int(v, a, 1, MAX_TOP_LOGPROBS);
    else if (!strcmp(a, "--dump-logits")) o->dump_logits = v;
    else if (!strcmp(a, "--stats")) o->stats = v;
    else if (!strcmp(a, "--labels")) o->labels = v;
    else if (!strcmp(a, "--template")) o->template_ = v;
    else if (!strcmp(a, "--output")) o->output = v;
    else if (!strcmp(a, "--batch")) o->batch = v;
    else return 0;
    return 1;
}

static Options parse_args(int argc, char **argv) {
    Options o = {.max_new_tokens = 256, .seed = -1, .stats = "text"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (o.model_path) fatal("unexpected argument '%s' (see --help)", a);
            o.model_path = a;
        } else if (!parse_flag(&o, a)) {
            if (i + 1 < argc && parse_value(&o, a, argv[i + 1])) {
                i++;
                continue;
            }
            Options scratch = {0};  // "1" is a valid value of every option
            if (parse_value(&scratch, a, "1")) fatal("option %s needs a value (see --help)", a);
            fatal("unknown option %s (see --help)", a);
        }
    }
    if (!o.model_path) fatal("no model file given: run MODEL.bin [options] (see --help)");
    if (strcmp(o.stats, "text") && strcmp(o.stats, "json") && strcmp(o.stats, "off"))
        fatal("--stats expects text, json or off");
    return o;
}

// -m generate: continue the prompt.
static void run_generate(Session *ss, const char *prompt, int stats) {
    int n;
    int *ids = encode(ss->model, prompt ? prompt : "", ss->model->gen.add_bos, &n);
    if (!ids) fatal("the prompt is not valid UTF-8");
    if (n == 0) fatal("the prompt is empty and the model has no BOS token to start from");
    if (n > ss->state.seq_len) fatal("the prompt is %d tokens, longer than the context (%d; see -c)", n, ss->state.seq_len);
    session_generate(ss, ids, n, stdout, NULL);
    fputc('\n', stdout);
    print_stats(ss, stats);
    free(ids);
}

// Options that the chosen mode does not use are mistakes: say so rather than ignore them.
static void refuse_unused(int present, const char *option, const char *mode) {
    if (present) fatal("%s does not apply to -m %s (see --help)", option, mode);
}

static void check_mode_options(const Options *o, const char *mode, const Model *m) {
    int classify = !strcmp(mode, "classify"), tokenize = !strcmp(mode, "tokenize");
    int answers = !strcmp(mode, "chat") || !strcmp(mode, "generate");
    refuse_unused(o->labels && !classify, "--labels", mode);
    refuse_unused(o->template_ && !classify, "--template", mode);
    refuse_unused(o->free_answer && !classify, "--free", mode);
    refuse_unused(o->output && !classify, "--output", mode);
    refuse_unused(o->pieces && !tokenize, "--pieces", mode);
    refuse_unused(o->dump_logits && tokenize, "--dump-logits", mode);
    refuse_unused(o->top_logprobs && !answers, "--top-logprobs", mode);
    refuse_unused(o->batch && !answers, "--batch", mode);
    refuse_unused(o->system && m->gen.chat_template == CHAT_NONE, "-y (the model has no chat template)", mode);
}

// The mode: -m, else chat for a model with a chat template and generate for the others.
static const char *choose_mode(const Options *o, const Model *m) {
    const char *mode = m->gen.chat_template != CHAT_NONE ? "chat" : "generate";
    if (o->mode) mode = o->mode;
    const char *modes[] = {"generate", "chat", "tokenize", "perplexity", "classify"};
    int known = 0;
    for (int i = 0; i < 5; i++) known |= !strcmp(mode, modes[i]);
    if (!known) fatal("unknown mode '%s' (see --help)", mode);
    if (!strcmp(mode, "chat") && m->gen.chat_template == CHAT_NONE)
        fatal("%s has no chat template: use -m generate", o->model_path);
    check_mode_options(o, mode, m);
    return mode;
}

// The conversation state for the options: the context, the sampler, the outputs.
static void session_open(Session *ss, const Model *m, const Options *o) {
    const Config *c = &m->config;
    int seq_len = c->max_seq_len < 2048 ? c->max_seq_len : 2048;
    if (o->context) seq_len = o->context;
    if (seq_len > c->max_seq_len) fatal("-c %d exceeds the model's maximum context (%d)", seq_len, c->max_seq_len);
    SamplerConfig sc = {
        .temperature = o->has_temperature ? o->temperature : m->gen.default_temperature,
        .top_k = o->has_top_k ? o->top_k : m->gen.default_top_k,
        .top_p = o->has_top_p ? o->top_p : m->gen.default_top_p,
        .repetition_penalty = o->repeat_penalty > 0 ? o->repeat_penalty : m->gen.default_repetition_penalty,
        .rng = o->seed >= 0 ? (uint64_t)o->seed : (uint64_t)time(NULL),
    };
    session_build(ss, m, seq_len, sc);
    ss->seed = sc.rng;
    ss->max_new_tokens = o->max_new_tokens;
    ss->ignore_eos = o->ignore_eos;
    ss->top_logprobs = o->top_logprobs;
    if (o->dump_logits && !(ss->dump_logits = fopen(o->dump_logits, "wb")))
        fatal("cannot write %s: %s", o->dump_logits, strerror(errno));
}

#ifndef TESTING
int main(int argc, char **argv) {
    Options o = parse_args(argc, argv);
    signal(SIGINT, on_interrupt);
    binary_stdout();
#ifdef SIGPIPE
    signal(SIGPIPE, SIG_DFL);  // a closed stdout ends the program without error messages
#endif
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
#else
    if (o.threads > 1) fprintf(stderr, "run: built without OpenMP: --threads %d runs on one thread\n", o.threads);
#endif
    Model model;
    model_open(&model, o.model_path);
    if (o.verify || o.info) {
        if (o.verify && !model_verify_weights(&model)) fatal("%s: weights checksum mismatch: the file is corrupt", o.model_path);
        if (o.verify) fprintf(stderr, "%s: checksums OK\n", o.model_path);
        if (o.info) print_info(&model);
        model_close(&model);
        return 0;
    }
    const char *mode = choose_mode(&o, &model);
    if (!strcmp(mode, "tokenize")) {
        run_tokenize(&model, o.prompt, o.pieces);
        model_close(&model);
        return 0;
    }
    Session ss;
    session_open(&ss, &model, &o);
    int stats = !strcmp(o.stats, "json") ? STATS_JSON : !strcmp(o.stats, "off") ? STATS_OFF : STATS_TEXT, status = 0;
    if (o.batch) batch(&ss, o.batch, !strcmp(mode, "chat"), o.system, ss.sampler.cfg);
    else if (!strcmp(mode, "classify")) {
        ClassifyOptions co = {o.system, o.template_ ? o.template_ : "{text}", o.labels, o.free_answer,
                              o.max_new_tokens};
        run_classify(&ss, o.prompt, &co, o.output);
    } else if (!strcmp(mode, "chat")) {
        status = chat(&ss, o.system, o.prompt, stats) > 0;
    } else if (!strcmp(mode, "perplexity")) run_perplexity(&ss, o.prompt);
    else run_generate(&ss, o.prompt, stats);
    if (ss.dump_logits && fclose(ss.dump_logits) != 0) fatal("cannot write %s", o.dump_logits);
    if (stop_answer) status = 130;  // Ctrl-C stopped the answer: what was done is kept
    session_free(&ss);
    model_close(&model);
    return status;
}
#endif

// ----------------------------------------------------------------------------
// 7. The same results, faster
//
// matmul and attention of sections 2 and 3, organised for the hardware: what `make`
// builds (`make reference` leaves this section out). The results are the same with or
// without OpenMP, and differ from the plain loops only in the order of some additions: a
// generated token's dot products are added in 16 lanes here, in one running sum there (a
// prompt's in one here too). The tests hold the two apart by a stated bound at most.
#ifndef REFERENCE

// Loops of fewer multiply-adds run on one thread: starting a parallel loop costs about a
// microsecond, some 10^4 multiply-adds. Above that, sharing even a small loop pays.
#define PARALLEL_WORK (1 << 14)

// A dot product summed in 16 independent lanes, then added up pairwise: the compiler keeps
// the lanes in vector registers without reordering any addition (which it may not do with
// floats), so the result is the same with or without SIMD. One sum would wait on each add.
#define LANES 16

// The 16 lanes added pairwise, each level written out: one vector add, in registers.
static float sum_lanes(const float lane[LANES]) {
    float s8[8], s4[4];
    for (int k = 0; k < 8; k++) s8[k] = lane[k] + lane[k + 8];
    for (int k = 0; k < 4; k++) s4[k] = s8[k] + s8[k + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// The dot products of w with the four vectors x + u stride, u = 0..3 (n values each), w
// loaded once for four: four keys against a query (attention), four weight rows against
// a token (stripe_rows). Each in 16 lanes, added up by sum_lanes, then the last n % 16.
static void dot4(float out[4], const float *w, const float *x, size_t stride, int n) {
    float l0[LANES] = {0}, l1[LANES] = {0}, l2[LANES] = {0}, l3[LANES] = {0};
    const float *x0 = x, *x1 = x + stride, *x2 = x + 2 * stride, *x3 = x + 3 * stride;
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) {
            float wk = w[j + k];
            l0[k] += wk * x0[j + k];
            l1[k] += wk * x1[j + k];
            l2[k] += wk * x2[j + k];
            l3[k] += wk * x3[j + k];
        }
    const float *lanes[4] = {l0, l1, l2, l3};
    for (int u = 0; u < 4; u++) {
        out[u] = sum_lanes(lanes[u]);
        for (int i = j; i < n; i++) out[u] += w[i] * x[u * stride + i];
    }
}

// dot_q8 of the int8 rows w + u stride (scales w_scale + u stride / g), u = 0..3, with x, loaded
// once for four. int8 times int16 summed into int32 becomes x86 vpdpwssd or vpmaddwd, Arm smlal.
static void dot4_q8(float sum[4], const int8_t *w, const float *w_scale, size_t stride, const int16_t *x,
                    const float *x_scale, int n, int g) {
    for (int b = 0; b < n / g; b++)
        for (int u = 0; u < 4; u++) {
            int32_t isum = 0;
            for (int j = 0; j < g; j++) isum += w[u * stride + (size_t)b * g + j] * x[(size_t)b * g + j];
            sum[u] += (float)isum * w_scale[u * (stride / g) + b] * x_scale[b];
        }
}

// matmul_fast for blocks too short to pack (below), above all generating (n = 1). The
// prefetcher reads ahead in each stream of addresses, but not far: many far-apart streams
// hide more of memory's latency. So the matrix is cut into s parts of q = ceil(rows / s)
// rows; stripe i (rows i, i + q, .., i + (s - 1) q) runs four rows at a time. Against one
// stream, generation is about 1.9x faster with q8_0, 1.2x with f32; of s = 2 .. 32, 16 was
// the fastest for both.
static int stripes(const Matrix *W) { return (W->rows + 15) / 16; }
static void stripe_rows(const Projection *p, int stripe, const float *x, const int16_t *xq, const float *xs, int n) {
    const Matrix *W = p->W;
    int rows = W->rows, cols = W->cols, g = W->group_size, groups = W->q ? cols / g : 0, q = stripes(W);
    for (int t = 0; t < n; t++)
        for (int i = stripe; i < rows; i += 4 * q) {
            float o[4] = {0};  // rows i + u q, u = 0..3
            const int16_t *xu = xq + (size_t)t * cols;
            const float *su = xs + (size_t)t * groups, *xt = x + (size_t)t * cols;
            if (i + 3 * q >= rows)  // the last part is short: row by row
                for (int u = 0, r = i; u < 4 && r < rows; u++, r += q)
                    o[u] = W->q ? dot_q8(W->q + (size_t)r * cols, W->s + (size_t)r * groups, xu, su, cols, g)
                                : dot(W->w + (size_t)r * cols, xt, cols);
            else if (W->q && g == 64)  // the usual group size: as a constant, the group loop unrolls
                dot4_q8(o, W->q + (size_t)i * cols, W->s + (size_t)i * groups, (size_t)q * cols, xu, su, cols, 64);
            else if (W->q)
                dot4_q8(o, W->q + (size_t)i * cols, W->s + (size_t)i * groups, (size_t)q * cols, xu, su, cols, g);
            else
                dot4(o, xt, W->w + (size_t)i * cols, (size_t)q * cols, cols);
            for (int u = 0, r = i; u < 4 && r < rows; u++, r += q)
                p->out[(size_t)t * rows + r] = o[u] + (p->bias ? p->bias[r] : 0.0f);
        }
}

// Prefill. The block's activations are packed transposed, xt (cols, PACK): the PACK
// tokens' values of column j side by side. A tile of TILE_ROWS weight rows then runs
//   acc[r][t] += w[r][j] * xt[j][t]     for j = 0 .. cols - 1,
// each weight loaded once for PACK multiply-adds, into sums that stay in vector registers:
// with AVX-512 (the Makefile asks for 512-bit vectors) 6 rows of 4 vectors of 16 tokens, 24
// of its 32 registers; with AVX2 4 rows of 3 vectors of 8, 12 of 16 (Arm: 24 of 32). More
// would spill to memory, 3x slower. Of the shapes that fit, these measured fastest (6 x 64
// beat 8 x 48 by 1.1-1.3x: fewer loads per multiply-add, and 128 tokens fill two packs).
// Each sum goes over j in order, one multiply-add at a time: exactly dot() of section 2.
#if defined(__AVX512F__)
#define PACK 64
#define TILE_ROWS 6
#else
#define PACK 24
#define TILE_ROWS 4
#endif
#define PACK_MIN 16  // fewer tokens: stripe_rows, as padding them to PACK would waste more
_Static_assert(BATCH % PACK == 0, "RunState.xs has room for the packed tokens of whole blocks only");

// The first cache line (64 bytes) at or after p. Packed tokens start on one: a 64-byte load
// that straddles two lines costs two, and calloc's 16-byte alignment made prefill 1.2x slower.
static float *line_aligned(float *p) { return (float *)(((uintptr_t)p + 63) / 64 * 64); }

// xt (cols, PACK) <- the n rows x + t stride (or xq's unless NULL) of cols values; tokens n.. are 0.
static void pack_block(float *xt, const float *x, const int16_t *xq, int n, int cols, size_t stride) {
    for (int j = 0; j < cols; j++)
        for (int t = 0; t < PACK; t++) {
            size_t at = (size_t)t * stride + j;
            xt[(size_t)j * PACK + t] = t >= n ? 0.0f : xq ? (float)xq[at] : x[at];
        }
}

// acc[r][t] += w[r * w_stride + j] * xt[j][t] for j < len. (restrict, the promise that
// nothing overlaps: without it clang keeps the sums in memory.)
static void tile_madd(float acc[TILE_ROWS][PACK], const float *restrict w, size_t w_stride, const float *restrict xt,
                      int len) {
    for (int j = 0; j < len; j++) {
        const float *xj = xt + (size_t)j * PACK;
        for (int r = 0; r < TILE_ROWS; r++) {
            float wr = w[(size_t)r * w_stride + j];
            for (int t = 0; t < PACK; t++) acc[r][t] += wr * xj[t];
        }
    }
}

// out[t * out_stride + r] = w_r . x_t for the rows w_r = w + r cols, r < rows (of the
// TILE_ROWS read), and the first n tokens of xt.
static void tile_f32(float *restrict out, size_t out_stride, const float *restrict w, int cols, const float *restrict xt,
                     int n, int rows) {
    float acc[TILE_ROWS][PACK] = {{0}};
    tile_madd(acc, w, (size_t)cols, xt, cols);
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) out[(size_t)t * out_stride + r] = acc[r][t];
}

// q8_0 runs the same tile on the int8 values as floats, converted once for all n tokens
// (packs of PACK in xt, one after another) into wf, SPAN columns at a time: the next span
// before this one's products, so that the loads from memory, many at once, overlap them.
// A group's products (at most 128 * 127 each, at most 64 of them) add up to less than
// 2^24, where floats are exact integers: acc is dot_q8's integer group sum, and the group
// goes into the result as there, sum += acc * w_scale * x_scale, to the last bit.
// xs: the scales (n, cols / g).
#define SPAN 256  // 128: 5 % slower; 512, 1024: the same
static void tile_q8(float *restrict out, size_t out_stride, const int8_t *restrict w, const float *restrict w_scales,
                    int cols, int g, const float *restrict xt, const float *restrict xs, int n) {
    int groups = cols / g, packs = (n + PACK - 1) / PACK;
    float sum[BATCH / PACK][TILE_ROWS][PACK], x_scale[PACK], wf[2][TILE_ROWS * SPAN];
    memset(sum, 0, (size_t)packs * sizeof(sum[0]));  // the packs used
    for (int j0 = -SPAN; j0 < cols; j0 += SPAN) {  // j0 = -SPAN only converts the first span
        int next = j0 + SPAN, len = cols - next < SPAN ? cols - next : SPAN;
        for (int r = 0; r < TILE_ROWS; r++)
            for (int j = 0; j < len; j++) wf[next / SPAN % 2][r * SPAN + j] = (float)w[(size_t)r * cols + (size_t)next + j];
        for (int b = j0 / g; j0 >= 0 && b < groups && b * g < next; b++)  // the groups of this span
            for (int pack = 0; pack < packs; pack++) {
                float acc[TILE_ROWS][PACK] = {{0}};
                tile_madd(acc, wf[j0 / SPAN % 2] + (b * g - j0), SPAN, xt + ((size_t)pack * cols + (size_t)b * g) * PACK, g);
                for (int t = 0; t < PACK; t++)
                    x_scale[t] = pack * PACK + t < n ? xs[(size_t)(pack * PACK + t) * groups + b] : 0.0f;
                for (int r = 0; r < TILE_ROWS; r++) {
                    float w_scale = w_scales[(size_t)r * groups + b], *row = sum[pack][r];
                    for (int t = 0; t < PACK; t++) row[t] += acc[r][t] * w_scale * x_scale[t];
                }
            }
    }
    for (int t = 0; t < n; t++)
        for (int r = 0; r < TILE_ROWS; r++) out[(size_t)t * out_stride + r] = sum[t / PACK][r][t % PACK];
}

static int packed_tiles(const Matrix *W) { return (W->rows + TILE_ROWS - 1) / TILE_ROWS; }

// Rows r0 .. r0 + TILE_ROWS - 1 of p's matrix (fewer at its end) against the n tokens of
// x (n, cols), or for q8_0 xq and xs (see stripe_rows), which xt holds packed. The tile's
// rows stay in the L1 cache from one pack to the next.
static void packed_rows(const Projection *p, int r0, const float *x, const int16_t *xq, const float *xs,
                        const float *xt, int n) {
    const Matrix *W = p->W;
    int rows = W->rows, cols = W->cols, g = W->group_size, end = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;
    if (end - r0 == TILE_ROWS && W->q)
        tile_q8(p->out + r0, (size_t)rows, W->q + (size_t)r0 * cols, W->s + (size_t)r0 * (cols / g), cols, g, xt, xs, n);
    else if (end - r0 == TILE_ROWS)
        for (int t0 = 0; t0 < n; t0 += PACK)
            tile_f32(p->out + (size_t)t0 * rows + r0, (size_t)rows, W->w + (size_t)r0 * cols, cols,
                     xt + (size_t)t0 * cols, n - t0 < PACK ? n - t0 : PACK, TILE_ROWS);
    else  // the last rows of a matrix whose row count is not a multiple of TILE_ROWS
        for (int t = 0; t < n; t++)
            for (int i = r0; i < end; i++)
                p->out[(size_t)t * rows + i] = W->q ? dot_q8(W->q + (size_t)i * cols, W->s + (size_t)i * (cols / g),
                                                             xq + (size_t)t * cols, xs + (size_t)t * (cols / g), cols, g)
                                                    : dot(W->w + (size_t)i * cols, x + (size_t)t * cols, cols);
    for (int t = 0; t < n && p->bias; t++)
        for (int i = r0; i < end; i++) p->out[(size_t)t * rows + i] += p->bias[i];
}

// matmul_fast for n >= PACK_MIN tokens. xt: room for the packed blocks (ceil(n / PACK),
// cols, PACK). The threads pack the blocks, then share the tiles of all projections in
// runs that shrink towards the end (guided), so that neither waits long for the other;
// neighbouring tiles write the same cache lines of out, so they stay on one thread.
static void matmul_packed(const Projection *p, int count, const float *x, const int16_t *xq, const float *xs, int n,
                          float *xt) {
    int cols = p[0].W->cols, blocks = (n + PACK - 1) / PACK, tiles = 0;
    for (int k = 0; k < count; k++) tiles += packed_tiles(p[k].W);
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int b = 0; b < blocks; b++)
            pack_block(xt + (size_t)b * cols * PACK, x + (size_t)b * PACK * cols,
                       p[0].W->q ? xq + (size_t)b * PACK * cols : NULL, n - b * PACK < PACK ? n - b * PACK : PACK, cols,
                       (size_t)cols);
        #pragma omp for schedule(guided)
        for (int tile = 0; tile < tiles; tile++) {
            int k = 0, first = tile;  // this tile is tile `first` of projection k
            while (first >= packed_tiles(p[k].W)) first -= packed_tiles(p[k].W), k++;
            packed_rows(&p[k], first * TILE_ROWS, x, xq, xs, xt, n);
        }
    }
}

// Generating (n = 1) reads each weight once per token, at memory speed; a prompt goes in
// blocks, each weight row read once for all n tokens. Projections of one input (q, k, v;
// gate, up) share one parallel loop, each thread one run of stripes: no waits between.
static void matmul_fast(const Projection *p, int count, const float *x, int n, int16_t *xq, float *xs) {
    const Matrix *W0 = p[0].W;  // all matrices of a file have the same storage type
    if (W0->q)
        #pragma omp parallel for if (n >= PARALLEL_TOKENS)
        for (int t = 0; t < n; t++)
            quantize_q8(xq + (size_t)t * W0->cols, xs + (size_t)t * (W0->cols / W0->group_size),
                        x + (size_t)t * W0->cols, W0->cols, W0->group_size);
    if (n >= PACK_MIN) {  // xs has room for the packed blocks after the scales
        matmul_packed(p, count, x, xq, xs, n, line_aligned(xs + (size_t)n * W0->cols));
        return;
    }
    int all = 0, rows = 0;  // stripes and rows of all projections
    for (int k = 0; k < count; k++) all += stripes(p[k].W), rows += p[k].W->rows;
    #pragma omp parallel for schedule(static) if ((int64_t)rows * W0->cols * n >= PARALLEL_WORK)
    for (int stripe = 0; stripe < all; stripe++) {
        int k = 0, first = stripe;  // this is stripe `first` of projection k
        while (first >= stripes(p[k].W)) first -= stripes(p[k].W), k++;
        stripe_rows(&p[k], first, x, xq, xs, n);
    }
}

// out = sum_j w_j v_j for the n vectors v_j = v + j * stride, d values each, four j at a
// time: the additions of four passes, with out[i] loaded and stored once, not four times.
static void weighted_sum(float *out, const float *w, const float *v, int n, int stride, int d) {
    memset(out, 0, (size_t)d * sizeof(float));
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *v0 = v + (size_t)j * stride, *v1 = v0 + stride, *v2 = v1 + stride, *v3 = v2 + stride;
        for (int i = 0; i < d; i++) out[i] = out[i] + w[j] * v0[i] + w[j + 1] * v1[i] + w[j + 2] * v2[i] + w[j + 3] * v3[i];
    }
    for (; j < n; j++)
        for (int i = 0; i < d; i++) out[i] += w[j] * v[(size_t)j * stride + i];
}

// attention() of a block of tokens (prefill) as matrix products on the tiles above, for
// one head and the queries of one pack at a time:
//   S = Q K^T  (PACK, keys): the keys are the weight rows, the queries the packed tokens
//   P = softmax(S / sqrt(hd)), row t over the keys 0 .. pos + t only (causal)
//   O = P V    (PACK, hd): V^T is the weight rows, P transposed the packed tokens.
// Keys past a row's position get probability 0 and add nothing; every sum runs in the order
// of the plain attention(), to the last bit. Keys and V^T are copied zero-padded to whole tiles.
static void attention_block(RunState *s, const Config *c, int layer, int n, int pos) {
    int hd = c->head_dim, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads, packs = (n + PACK - 1) / PACK;
    int hd_padded = (hd + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS;
    size_t each = ((size_t)(2 * PACK + hd + hd_padded) * (size_t)(s->seq_len + TILE_ROWS) + (size_t)hd * PACK + 15) / 16 * 16;
    if (!s->scratch) s->scratch = xcalloc((size_t)omp_get_max_threads() * each + 16, sizeof(float));
    #pragma omp parallel for schedule(dynamic)
    for (int item = 0; item < c->n_heads * packs; item++) {
        int h = item / packs, t0 = item % packs * PACK, m = PACK;
        if (n - t0 < PACK) m = n - t0;  // the last pack's tokens
        int len = pos + t0 + m, padded = (len + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS;  // keys used
        const float *keys = s->key_cache + cache_index(s, c, layer, h / group, 0);      // (seq_len, hd)
        const float *values = s->value_cache + cache_index(s, c, layer, h / group, 0);  // (seq_len, hd)
        float *qt = line_aligned(s->scratch) + (size_t)omp_get_thread_num() * each;  // (hd, PACK) the queries
        float *pt = qt + (size_t)hd * PACK;                 // (padded, PACK) P^T (packed tokens: on lines)
        float *kt = pt + (size_t)padded * PACK;             // (padded, hd) the keys
        float *vt = kt + (size_t)padded * hd;               // (hd_padded, padded) V^T
        float *S = vt + (size_t)hd_padded * padded;         // (PACK, padded) S, then P
        pack_block(qt, s->q + (size_t)t0 * q_dim + (size_t)h * hd, NULL, m, hd, (size_t)q_dim);
        for (int j = 0; j < padded; j++)
            for (int i = 0; i < hd_padded; i++) {
                if (i < hd) kt[(size_t)j * hd + i] = j < len ? keys[(size_t)j * hd + i] : 0.0f;
                vt[(size_t)i * padded + j] = j < len && i < hd ? values[(size_t)j * hd + i] : 0.0f;
            }
        for (int j = 0; j < padded; j += TILE_ROWS)
            tile_f32(S + j, (size_t)padded, kt + (size_t)j * hd, hd, qt, m, TILE_ROWS);
        for (int t = 0; t < PACK; t++) {
            float *p = S + (size_t)t * padded;
            int last = t < m ? pos + t0 + t : -1;
            for (int j = 0; j <= last; j++) p[j] *= 1.0f / sqrtf((float)hd);
            if (last >= 0) softmax(p, last + 1);
            for (int j = 0; j < padded; j++) pt[(size_t)j * PACK + t] = j <= last ? p[j] : 0.0f;
        }
        for (int i = 0; i < hd; i += TILE_ROWS)  // the rows past hd are zeros, and not stored
            tile_f32(s->xb + (size_t)t0 * q_dim + (size_t)h * hd + i, (size_t)q_dim, vt + (size_t)i * padded, padded, pt, m,
                     hd - i < TILE_ROWS ? hd - i : TILE_ROWS);
    }
}

// attention() with the heads shared among the threads, the scores of four keys at a
// time (dot4) and the values summed four rows at a time; blocks of tokens as above.
static void attention_fast(RunState *s, const Config *c, int layer, int n, int pos) {
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads, q_dim = c->n_heads * hd;
    if (n >= PACK_MIN) {
        attention_block(s, c, layer, n, pos);
        return;
    }
    float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for schedule(static) if ((int64_t)c->n_heads * (pos + n) * n * hd >= PARALLEL_WORK)
    for (int h = 0; h < c->n_heads; h++) {
        float *att = s->att + (size_t)h * s->seq_len;
        const float *keys = s->key_cache + cache_index(s, c, layer, h / group, 0);      // (seq_len, hd)
        const float *values = s->value_cache + cache_index(s, c, layer, h / group, 0);  // (seq_len, hd)
        for (int t = 0; t < n; t++) {
            const float *q = s->q + (size_t)t * q_dim + (size_t)h * hd;
            int last = pos + t;
            int j = 0;
            for (; j + 4 <= last + 1; j += 4) dot4(att + j, q, keys + (size_t)j * hd, (size_t)hd, hd);
            for (; j <= last; j++) att[j] = dot(q, keys + (size_t)j * hd, hd);
            for (j = 0; j <= last; j++) att[j] *= scale;
            softmax(att, last + 1);
            weighted_sum(s->xb + (size_t)t * q_dim + (size_t)h * hd, att, values, last + 1, hd, hd);
        }
    }
}
#endif  // REFERENCE
