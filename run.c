// run.c: inference for Llama-architecture language models in one file of plain C.
//
// SmolLM2, Llama 3.2, Qwen2.5 and llama2.c's TinyStories models, exported by `export`
// into one little-endian file (FORMAT.md) that this program memory-maps. The file reads
// top to bottom in the order the data flows:
//
//   1. the model file: header, weights, tokenizer tables
//   2. the neural-net blocks: rmsnorm, matmul, rope, softmax, swiglu
//   3. the forward pass with its KV cache
//   4. the sampler: greedy, temperature, top-k, top-p
//   5. generation and chat: prompts, chat templates, streaming UTF-8, statistics; then
//      evaluation: perplexity, classification with a report, batches of prompts
//   6. the command line
//
// (Before them: errors, and the few lines that differ between POSIX and Windows.)
//
// Build: `make` (OpenMP) or `make noomp`; results are identical either way.

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tokenizer.c"

// ----------------------------------------------------------------------------
// errors

#ifdef FUZZING
// The fuzz targets (tests/fuzz/) must survive bad input: when one sets fatal_jump,
// fatal() keeps the message in fatal_message and longjmps there instead of exiting.
#include <setjmp.h>
static jmp_buf *fatal_jump;
static char fatal_message[512];
#endif

// Bad input ends the program with one clear line and exit code 1, never a crash.
static _Noreturn void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
#ifdef FUZZING
    if (fatal_jump) {
        vsnprintf(fatal_message, sizeof(fatal_message), fmt, ap);
        va_end(ap);
        longjmp(*fatal_jump, 1);
    }
#endif
    fputs("run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

// ----------------------------------------------------------------------------
// The operating system: POSIX (Linux, macOS, the BSDs) or Windows (mingw-w64).
// Everything else is standard C11; these few functions are all that differ.

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <io.h>
#include <psapi.h>

// The whole file open as fd, mapped read-only; NULL if that fails.
static void *map_file(int fd, size_t size) {
    HANDLE mapping = CreateFileMappingA((HANDLE)_get_osfhandle(fd), NULL, PAGE_READONLY, 0, 0, NULL);
    void *p = mapping ? MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, size) : NULL;
    if (mapping) CloseHandle(mapping);  // the view keeps the mapping alive
    if (!p) errno = ENOMEM;
    return p;
}

static void unmap_file(void *p, size_t size) {
    (void)size;
    UnmapViewOfFile(p);
}

// Seconds since some fixed moment (for timing).
static double now_seconds(void) {
    LARGE_INTEGER count, frequency;
    QueryPerformanceCounter(&count);
    QueryPerformanceFrequency(&frequency);
    return (double)count.QuadPart / (double)frequency.QuadPart;
}

static double peak_rss_mb(void) {
    PROCESS_MEMORY_COUNTERS pmc = {0};
    GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof(pmc));
    return (double)pmc.PeakWorkingSetSize / (1024.0 * 1024.0);
}

// stdout carries the model's bytes as they are: no "\n" -> "\r\n" translation.
static void binary_stdout(void) { _setmode(_fileno(stdout), _O_BINARY); }
#else
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static void *map_file(int fd, size_t size) {
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    // Generating reads all the weights for every token. In 2 MB pages (which Linux 6
    // gives a file on ext4 or xfs when asked before the file is first read; `export`
    // leaves the file out of the page cache for this) the CPU takes 512 times fewer TLB
    // misses and its prefetcher, which stops at every page boundary, streams further:
    // 10-40% more tokens/s here. Where it cannot, nothing changes.
    madvise(p, size, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_READ
    // Read and map every page now, while loading, rather than take a page fault at the
    // first touch of each page during the first token.
    madvise(p, size, MADV_POPULATE_READ);
#endif
    return p;
}

static void unmap_file(void *p, size_t size) { munmap(p, size); }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;  // Linux reports kilobytes
}

static void binary_stdout(void) {}
#endif

// ----------------------------------------------------------------------------
// 1. The model file (FORMAT.md): a 256-byte header, the tokenizer tables, the weights

#define FILE_MAGIC "RUNC"
#define FILE_VERSION 1
#define HEADER_BYTES 256
#define TENSOR_ALIGN 64

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

static uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static int32_t read_i32(const uint8_t *p) { return (int32_t)read_u32(p); }
static uint64_t read_u64(const uint8_t *p) { return read_u32(p) | (uint64_t)read_u32(p + 4) << 32; }
static float read_f32(const uint8_t *p) {
    uint32_t u = read_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---- big-endian hosts ----
// The file is little-endian, and a little-endian host uses the tokenizer tables and the
// weights in place, in the memory map. A big-endian host (s390x, PowerPC) works on a
// copy of the file instead (model_open), in which host_order() reverses the bytes of
// every 4-byte number of the token table, the merge table and the f32 tensors (weights,
// norms, biases, q8_0 scales); strings and int8 values are bytes and stay as they are.
// The header is read with read_u32 and friends, which work on any host.
static int big_endian_host(void) {
    const uint32_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 0;
}

static void host_order(const Model *m, uint64_t offset, uint64_t words) {
    if (m->data == m->map) return;  // a little-endian host
    for (uint8_t *p = m->data + offset, *end = p + 4 * words; p < end; p += 4) {
        uint8_t b0 = p[0], b1 = p[1];
        p[0] = p[3], p[1] = p[2], p[2] = b1, p[3] = b0;
    }
}

// Writes n floats little-endian, like every file of this program (--dump-logits).
static void write_f32_le(const float *x, size_t n, FILE *f) {
    if (!big_endian_host()) {
        fwrite(x, sizeof(float), n, f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        const uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        fwrite(b, 1, 4, f);
    }
}
// ---- (end of big-endian hosts) ----

// The tables and weights are used in place: floats must be IEEE-754 binary32, as in the file.
_Static_assert(sizeof(float) == 4 && FLT_RADIX == 2 && FLT_MANT_DIG == 24 && FLT_MAX_EXP == 128 &&
                   sizeof(TokenRecord) == 16,
               "run.c needs IEEE-754 binary32 floats and a 16-byte TokenRecord");

// CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), so export can use zlib.crc32.
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

// Reads one header field and checks its range; a bad file names the field and the file.
// The fields are u32 except the token ids, which are i32 (-1 = none).
static int header_field(const Model *m, size_t offset, int is_signed, const char *name, int64_t lo, int64_t hi) {
    int64_t v = is_signed ? (int64_t)read_i32(m->data + offset) : (int64_t)read_u32(m->data + offset);
    if (v < lo || v > hi)
        fatal("%s: header field %s = %lld is out of range [%lld, %lld]", m->path, name,
              (long long)v, (long long)lo, (long long)hi);
    return (int)v;
}

static int header_int(const Model *m, size_t offset, const char *name, int64_t lo, int64_t hi) {
    return header_field(m, offset, 0, name, lo, hi);
}

static int header_token(const Model *m, size_t offset, const char *name, int64_t lo, int64_t hi) {
    return header_field(m, offset, 1, name, lo, hi);
}

static float header_float(const Model *m, size_t offset, const char *name, double lo, double hi) {
    float v = read_f32(m->data + offset);
    if (!(v >= lo && v <= hi)) fatal("%s: header field %s = %g is out of range", m->path, name, v);
    return v;
}

// The limits are far above any model this program targets and far below anything that
// could overflow the size arithmetic in size_t on a 64-bit host.
#define MAX_DIM (1 << 16)
#define MAX_LAYERS 1024
#define MAX_VOCAB (1 << 22)
#define MAX_SEQ (1 << 22)

static void read_config(Model *m) {
    Config *c = &m->config;
    c->dim = header_int(m, 16, "dim", 1, MAX_DIM);
    c->hidden_dim = header_int(m, 20, "hidden_dim", 1, 8 * MAX_DIM);
    c->n_layers = header_int(m, 24, "n_layers", 1, MAX_LAYERS);
    c->n_heads = header_int(m, 28, "n_heads", 1, MAX_DIM);
    c->n_kv_heads = header_int(m, 32, "n_kv_heads", 1, c->n_heads);
    c->head_dim = header_int(m, 36, "head_dim", 2, MAX_DIM);
    c->vocab_size = header_int(m, 40, "vocab_size", 1, MAX_VOCAB);
    c->max_seq_len = header_int(m, 44, "max_seq_len", 1, MAX_SEQ);
    c->rope_theta = header_float(m, 48, "rope_theta", 1.0, 1e12);
    c->norm_eps = header_float(m, 52, "norm_eps", 0.0, 1.0);
    c->rope_type = header_int(m, 56, "rope_type", ROPE_DEFAULT, ROPE_LLAMA3);
    c->qkv_bias = header_int(m, 76, "qkv_bias", 0, 1);
    c->tied_embeddings = header_int(m, 80, "tied_embeddings", 0, 1);
    c->weight_type = header_int(m, 84, "weight_type", WEIGHT_F32, WEIGHT_Q8_0);
    if (c->n_heads % c->n_kv_heads != 0)
        fatal("%s: n_heads (%d) is not a multiple of n_kv_heads (%d)", m->path, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0) fatal("%s: head_dim (%d) must be even for RoPE", m->path, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > MAX_DIM)
        fatal("%s: n_heads * head_dim is out of range", m->path);
    if (c->rope_type == ROPE_LLAMA3) {
        c->rope_factor = header_float(m, 60, "rope_factor", 1.0, 1e6);
        c->rope_low_freq_factor = header_float(m, 64, "rope_low_freq_factor", 1e-6, 1e6);
        c->rope_high_freq_factor = header_float(m, 68, "rope_high_freq_factor", 1e-6, 1e6);
        c->rope_original_max_pos = header_int(m, 72, "rope_original_max_pos", 1, MAX_SEQ);
        if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
            fatal("%s: rope_high_freq_factor must exceed rope_low_freq_factor", m->path);
    }
    if (c->weight_type == WEIGHT_Q8_0) {
        c->group_size = header_int(m, 88, "group_size", 1, 1024);
        int g = c->group_size;
        if (c->dim % g || c->hidden_dim % g || (c->n_heads * c->head_dim) % g)
            fatal("%s: group_size %d does not divide every row length", m->path, g);
    }
}

static void read_gen_config(Model *m, const char *strings, uint64_t strings_bytes) {
    GenConfig *f = &m->gen;
    int V = m->config.vocab_size;
    f->bos_id = header_token(m, 108, "bos_id", -1, V - 1);
    f->add_bos = header_int(m, 112, "add_bos", 0, 1);
    if (f->add_bos && f->bos_id < 0) fatal("%s: add_bos is set but there is no bos_id", m->path);
    f->n_stop = header_int(m, 120, "n_stop", 0, MAX_STOP);
    for (int i = 0; i < f->n_stop; i++) f->stop_ids[i] = header_token(m, 124 + 4 * (size_t)i, "stop_ids", 0, V - 1);
    f->eot_id = header_token(m, 156, "eot_id", -1, V - 1);
    f->chat_template = header_int(m, 160, "chat_template", CHAT_NONE, CHAT_LLAMA3);
    uint32_t off = read_u32(m->data + 164), len = read_u32(m->data + 168);
    if ((uint64_t)off + len > strings_bytes) fatal("%s: default system prompt lies outside the strings", m->path);
    if (len > (1u << 20)) fatal("%s: default system prompt is too long", m->path);
    f->default_system = strings + off;
    f->default_system_len = (int)len;
    if (f->chat_template != CHAT_NONE && f->eot_id < 0) fatal("%s: a chat template needs an eot_id", m->path);
    f->default_temperature = header_float(m, 232, "default_temperature", 0.0, 100.0);
    f->default_top_p = header_float(m, 236, "default_top_p", 0.0, 1.0);
    f->default_top_k = header_int(m, 240, "default_top_k", 0, MAX_VOCAB);
    if (f->default_top_p == 0.0f) f->default_top_p = 1.0f;  // 0 = not set
}

// Checks that [offset, offset + bytes) lies inside the file without overflowing.
static void check_range(const Model *m, uint64_t offset, uint64_t bytes, const char *what) {
    if (offset > m->size || bytes > m->size - offset)
        fatal("%s: %s (offset %llu, %llu bytes) lies outside the file (%zu bytes): truncated or corrupt",
              m->path, what, (unsigned long long)offset, (unsigned long long)bytes, m->size);
}

// Walks the weights in file order, handing out aligned pointers into the mapping.
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

// n f32 values, in host byte order (see "big-endian hosts").
static const float *next_floats(TensorReader *r, uint64_t n, const char *name) {
    const float *p = next_tensor(r, n * sizeof(float), name);
    host_order(r->m, r->offset - n * sizeof(float), n);
    return p;
}

static const float *next_vector(TensorReader *r, int n, const char *name) {
    return next_floats(r, (uint64_t)n, name);
}

static Matrix next_matrix(TensorReader *r, int rows, int cols, const char *name) {
    const Config *c = &r->m->config;
    Matrix mat = {.rows = rows, .cols = cols, .group_size = c->group_size};
    uint64_t n = (uint64_t)rows * (uint64_t)cols;
    if (c->weight_type == WEIGHT_F32) {
        mat.w = next_floats(r, n, name);
    } else {
        mat.q = next_tensor(r, n, name);
        mat.s = next_floats(r, n / (uint64_t)c->group_size, name);
    }
    return mat;
}

static void read_weights(Model *m, uint64_t weights_offset) {
    const Config *c = &m->config;
    Weights *w = &m->weights;
    int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    TensorReader r = {m, weights_offset};
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
}

static void read_tokenizer(Model *m, uint64_t tokens_off, uint64_t merges_off,
                           const char *strings, uint64_t strings_bytes) {
    TokenizerSpec spec = {0};
    spec.vocab_size = m->config.vocab_size;
    spec.type = header_int(m, 92, "tokenizer_type", TOKENIZER_BYTE_BPE, TOKENIZER_SENTENCEPIECE);
    spec.pretokenizer = header_int(m, 96, "pretokenizer", PRETOK_NONE, PRETOK_QWEN2);
    spec.normalizer = header_int(m, 100, "normalizer", NORM_NONE, NORM_NFC);
    spec.ignore_merges = header_int(m, 104, "ignore_merges", 0, 1);
    spec.n_merges = header_int(m, 116, "n_merges", 0, MAX_VOCAB);
    spec.bos_id = m->gen.bos_id;
    check_range(m, tokens_off, (uint64_t)spec.vocab_size * sizeof(TokenRecord), "token table");
    check_range(m, merges_off, (uint64_t)spec.n_merges * 12, "merge table");
    if (tokens_off % 4 || merges_off % 4) fatal("%s: tokenizer tables are not 4-byte aligned", m->path);
    host_order(m, tokens_off, (uint64_t)spec.vocab_size * sizeof(TokenRecord) / 4);  // 4-byte fields
    host_order(m, merges_off, (uint64_t)spec.n_merges * 3);
    spec.tokens = (const TokenRecord *)(m->data + tokens_off);
    spec.merges = (const uint32_t *)(m->data + merges_off);
    spec.strings = strings;
    spec.strings_bytes = strings_bytes;
    const char *err = tokenizer_build(&m->tokenizer, &spec);
    if (err) fatal("%s: bad tokenizer: %s", m->path, err);
}

static void model_open(Model *m, const char *path) {
    memset(m, 0, sizeof(*m));
    m->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) fatal("cannot open model file %s: %s", path, strerror(errno));
    struct stat st;
    int stat_error = fstat(fd, &st) != 0 ? errno : 0;
    int too_large = !stat_error && (uint64_t)st.st_size > SIZE_MAX;  // 4 GB or more on a 32-bit host
    if (stat_error || st.st_size < HEADER_BYTES || too_large) close(fd);  // (fatal may return to a caller: tests/fuzz)
    if (stat_error) fatal("cannot stat %s: %s", path, strerror(stat_error));
    if (st.st_size < HEADER_BYTES) fatal("%s: too small to be a model file (%lld bytes)", path, (long long)st.st_size);
    if (too_large) fatal("%s: the file is too large for a 32-bit host (%lld bytes)", path, (long long)st.st_size);
    m->size = (size_t)st.st_size;
    void *map = map_file(fd, m->size);
    int map_error = errno;
    close(fd);
    if (!map)
        fatal("cannot map %s (%zu bytes): %s%s", path, m->size, strerror(map_error),
              sizeof(size_t) < 8 && m->size > (size_t)1 << 31 ? ": the file is too large for a 32-bit host" : "");
    m->data = m->map = map;
    if (big_endian_host()) {  // see "big-endian hosts"
        m->data = malloc(m->size);
        if (!m->data) fatal("out of memory (%zu bytes for %s in host byte order)", m->size, path);
        memcpy(m->data, m->map, m->size);
    }

    if (memcmp(m->data, FILE_MAGIC, 4) != 0) fatal("%s: not a run.c model file (bad magic); convert it with ./export", path);
    uint32_t version = read_u32(m->data + 4);
    if (version != FILE_VERSION) fatal("%s: file format version %u, this program reads version %d", path, version, FILE_VERSION);
    if (read_u32(m->data + 8) != HEADER_BYTES) fatal("%s: header_bytes is not %d", path, HEADER_BYTES);
    uint64_t tokens_off = read_u64(m->data + 176), merges_off = read_u64(m->data + 184);
    uint64_t strings_off = read_u64(m->data + 192), strings_bytes = read_u64(m->data + 200);
    uint64_t weights_off = read_u64(m->data + 208), file_bytes = read_u64(m->data + 216);
    if (file_bytes != m->size)
        fatal("%s: the header says %llu bytes but the file has %zu: truncated or corrupt", path,
              (unsigned long long)file_bytes, m->size);
    check_range(m, weights_off, 0, "weights");
    if (weights_off < HEADER_BYTES || weights_off % TENSOR_ALIGN) fatal("%s: bad weights_offset", path);

    // The header and tokenizer are small: check their CRC on every load (the weights
    // have their own CRC, checked by --verify since it means reading the whole file).
    uint8_t head[HEADER_BYTES];
    memcpy(head, m->data, HEADER_BYTES);
    memset(head + 224, 0, 8);
    uint32_t crc = crc32_update(0, head, HEADER_BYTES);
    crc = crc32_update(crc, m->data + HEADER_BYTES, (size_t)weights_off - HEADER_BYTES);
    if (crc != read_u32(m->data + 224)) fatal("%s: header/tokenizer checksum mismatch: the file is corrupt", path);

    read_config(m);
    check_range(m, strings_off, strings_bytes, "strings");
    const char *strings = (const char *)m->data + strings_off;
    read_gen_config(m, strings, strings_bytes);
    read_tokenizer(m, tokens_off, merges_off, strings, strings_bytes);
    read_weights(m, weights_off);
}

static int model_verify_weights(const Model *m) {
    uint64_t off = read_u64(m->map + 208);
    return crc32_update(0, m->map + off, m->size - (size_t)off) == read_u32(m->map + 228);
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

// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight
static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

// Quantizes x (n values) in groups of g for the q8_0 matmul: per group,
// scale = max|x| / 127 and q = round(x / scale), so x ~= q * scale. The q are int8
// values kept in int16: an int8 weight times an int16 activation summed into int32 is
// the pattern compilers turn into 16-bit multiply-add instructions (x86 vpmaddwd or
// vpdpwssd, Arm smlal), twice as fast as widening two int8 operands every time.
static void quantize_q8(int16_t *q, float *s, const float *x, int n, int g) {
    for (int b = 0; b < n / g; b++) {
        const float *xb = x + (size_t)b * g;
        float amax = 0.0f;
        for (int i = 0; i < g; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        float scale = amax / 127.0f, inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        s[b] = scale;
        for (int i = 0; i < g; i++) {
            float v = xb[i] * inv;  // in [-127, 127]; rounded half away from zero
            // Clamped (NaN -> 0): NaN or inf activations (a corrupt file's weights) or a
            // scale that underflows would make the float -> int conversion undefined
            // behaviour. Found by tests/fuzz/fuzz_load.c.
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v == v ? v : 0.0f;
            q[(size_t)b * g + i] = (int16_t)(v >= 0.0f ? (int)(v + 0.5f) : (int)(v - 0.5f));
        }
    }
}

// Loops with less work than this many multiply-adds run on one thread: starting a
// parallel loop costs about a microsecond, the time of some 10^4 multiply-adds. Above
// it, even small loops (attention over a short context) are worth sharing: whatever
// one thread does alone, the others wait for.
#define PARALLEL_WORK (1 << 14)

// Weight rows per tile in matmul (see there).
#define ROW_TILE 16

// The dot product of two float vectors, summed in 16 independent lanes that are then
// added up pairwise. The lanes let the compiler keep the sums in vector registers
// without reordering any addition (which it may not do with floats), so the result is
// the same with or without SIMD and OpenMP; a single running sum would serialise every
// add behind the previous one.
#define LANES 16

// The 16 lanes added pairwise, one level at a time: written out this way (rather than as
// a loop over the levels) each level is a single vector add, in registers.
static float sum_lanes(const float lane[LANES]) {
    float s8[8], s4[4];
    for (int k = 0; k < 8; k++) s8[k] = lane[k] + lane[k + 8];
    for (int k = 0; k < 4; k++) s4[k] = s8[k] + s8[k + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static float dot(const float *a, const float *b, int n) {
    float lane[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) lane[k] += a[j + k] * b[j + k];
    float sum = sum_lanes(lane);
    for (; j < n; j++) sum += a[j] * b[j];
    return sum;
}

// The dot products of one row w with four rows x, x + stride, x + 2 stride, x + 3 stride
// (n values each) at once, so that w is loaded once for four: four tokens' activations
// in prefill, which is limited by arithmetic, not memory, and four keys in attention.
// Each result is computed exactly as dot() computes it, so a prompt gives the same
// logits in blocks or token by token.
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
    out[0] = sum_lanes(l0);
    out[1] = sum_lanes(l1);
    out[2] = sum_lanes(l2);
    out[3] = sum_lanes(l3);
    for (; j < n; j++) {
        out[0] += w[j] * x0[j];
        out[1] += w[j] * x1[j];
        out[2] += w[j] * x2[j];
        out[3] += w[j] * x3[j];
    }
}

// The same for an int8 row w and quantized activations x (int8 values, kept in int16:
// see quantize_q8), both in groups of g values with one scale each:
//   w . x = sum over groups of (integer dot product of the group) * w_scale * x_scale
// Integer sums are exact, so the compiler may vectorise them in any order.
static inline float dot_q8(const int8_t *w, const float *w_scale, const int16_t *x, const float *x_scale, int n, int g) {
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

// dot_q8 of one row with four token rows at once (see dot4), with identical results.
static void dot4_q8(float out[4], const int8_t *w, const float *w_scale, const int16_t *x, const float *x_scale,
                    int n, int g) {
    int groups = n / g;
    const int16_t *x0 = x, *x1 = x + n, *x2 = x + 2 * (size_t)n, *x3 = x + 3 * (size_t)n;
    const float *s0 = x_scale, *s1 = s0 + groups, *s2 = s1 + groups, *s3 = s2 + groups;
    out[0] = out[1] = out[2] = out[3] = 0.0f;
    for (int b = 0; b < groups; b++) {
        size_t o = (size_t)b * g;
        int32_t i0 = 0, i1 = 0, i2 = 0, i3 = 0;
        for (int j = 0; j < g; j++) {
            int32_t wj = w[o + j];
            i0 += wj * x0[o + j];
            i1 += wj * x1[o + j];
            i2 += wj * x2[o + j];
            i3 += wj * x3[o + j];
        }
        float ws = w_scale[b];
        out[0] += (float)i0 * ws * s0[b];
        out[1] += (float)i1 * ws * s1[b];
        out[2] += (float)i2 * ws * s2[b];
        out[3] += (float)i3 * ws * s3[b];
    }
}

// One matrix product of a layer: out = x W^T + bias, x (n, cols), W (rows, cols),
// bias (rows) or NULL, out (n, rows).
typedef struct {
    const Matrix *W;
    const float *bias;
    float *out;
} Projection;

static int row_tiles(const Matrix *W) { return (W->rows + ROW_TILE - 1) / ROW_TILE; }

// The projections p[0..count) of the same block of n tokens x: this is where almost all
// the time goes. Generating (n = 1) reads every weight once per token, so its speed is
// the memory bandwidth; the prompt goes through in blocks of tokens, and each weight
// row, read from memory once, serves all n tokens from the cache. For q8_0, x has been
// quantized into xq/xs (see quantize_q8).
//
// Projections of the same input (q, k and v; gate and up) share one parallel loop, so
// no thread waits for the others between them. The loop runs over tiles of ROW_TILE
// rows, and for each group of four tokens the tile's rows are run against them: the
// tile stays in the L2 cache while the four token rows stay in L1 (with one token, this
// is the plain row-by-row loop). Each thread gets one contiguous run of tiles, which
// the hardware prefetcher streams from memory best.
static void matmul(const Projection *p, int count, const float *x, const int16_t *xq, const float *xs, int n) {
    int tiles = 0;
    for (int k = 0; k < count; k++) tiles += row_tiles(p[k].W);
    #pragma omp parallel for schedule(static) if ((int64_t)tiles * ROW_TILE * p[0].W->cols * n >= PARALLEL_WORK)
    for (int tile = 0; tile < tiles; tile++) {
        int k = 0, first = tile;  // this tile is tile `first` of projection k
        while (first >= row_tiles(p[k].W)) first -= row_tiles(p[k].W), k++;
        const Matrix *W = p[k].W;
        int rows = W->rows, cols = W->cols, g = W->group_size;
        int start = first * ROW_TILE, end = start + ROW_TILE < rows ? start + ROW_TILE : rows;
        float o[4];
        for (int t = 0; t < n; t += 4) {
            int four = n - t >= 4;
            for (int i = start; i < end; i++) {
                if (W->w) {
                    const float *row = W->w + (size_t)i * cols;
                    if (four) dot4(o, row, x + (size_t)t * cols, (size_t)cols, cols);
                    else
                        for (int u = 0; u < n - t; u++) o[u] = dot(row, x + (size_t)(t + u) * cols, cols);
                } else {
                    const int8_t *row = W->q + (size_t)i * cols;
                    const float *scale = W->s + (size_t)i * (cols / g);
                    if (four) dot4_q8(o, row, scale, xq + (size_t)t * cols, xs + (size_t)t * (cols / g), cols, g);
                    else
                        for (int u = 0; u < n - t; u++) {
                            const int16_t *xu = xq + (size_t)(t + u) * cols;
                            const float *su = xs + (size_t)(t + u) * (cols / g);
                            // g as the constant 64 (the usual group size) lets the compiler
                            // unroll the group loop of the inlined dot_q8: 12% faster
                            o[u] = g == 64 ? dot_q8(row, scale, xu, su, cols, 64) : dot_q8(row, scale, xu, su, cols, g);
                        }
                }
                float b = p[k].bias ? p[k].bias[i] : 0.0f;
                for (int u = 0; u < 4 && t + u < n; u++) p[k].out[(size_t)(t + u) * rows + i] = o[u] + b;
            }
        }
    }
}

// One row of a matrix as floats (the embedding lookup).
static void matrix_row(float *out, const Matrix *W, int row) {
    if (W->w) {
        memcpy(out, W->w + (size_t)row * W->cols, (size_t)W->cols * sizeof(float));
    } else {
        const int8_t *q = W->q + (size_t)row * W->cols;
        const float *s = W->s + (size_t)row * (W->cols / W->group_size);
        for (int j = 0; j < W->cols; j++) out[j] = (float)q[j] * s[j / W->group_size];
    }
}

// RoPE rotates each pair of a head (i, i + head_dim/2) by the angle pos * inv_freq[i]
// (Hugging Face's rotate_half layout):
//   x'[i]        = x[i] cos - x[i + h/2] sin
//   x'[i + h/2]  = x[i + h/2] cos + x[i] sin
static void rope(float *x, int n_heads, int head_dim, const float *cos_pos, const float *sin_pos) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * cos_pos[i] - b * sin_pos[i];
            v[i + half] = b * cos_pos[i] + a * sin_pos[i];
        }
    }
}

// The inverse frequencies theta^(-2i/head_dim), computed in float32 as transformers does.
// Llama 3 rescales them: long wavelengths (beyond original_max_pos / low_freq_factor) are
// divided by factor, short ones (below original_max_pos / high_freq_factor) are kept, and
// the band between is interpolated smoothly between the two.
static void rope_inv_freq(float *inv_freq, const Config *c) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float f = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_type == ROPE_LLAMA3) {
            float old_ctx = (float)c->rope_original_max_pos;
            float low_wavelen = old_ctx / c->rope_low_freq_factor;
            float high_wavelen = old_ctx / c->rope_high_freq_factor;
            float wavelen = 2.0f * 3.14159265358979f / f;
            if (wavelen > low_wavelen) {
                f = f / c->rope_factor;
            } else if (wavelen >= high_wavelen) {
                float smooth = (old_ctx / wavelen - c->rope_low_freq_factor) /
                               (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0f - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

static void softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;  // fmaxf is a library call
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

// SwiGLU: h = silu(gate) * up, silu(x) = x * sigmoid(x)
static void swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// ----------------------------------------------------------------------------
// 3. The forward pass

// The prompt goes through the network this many tokens at a time (one token at a time
// while generating). Larger blocks reuse each weight more often but need more memory.
#define BATCH 32

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
    float *logits;      // (BATCH, vocab_size)
    float *key_cache;   // (n_layers, n_kv_heads, seq_len, head_dim): each head's keys
    float *value_cache; // (n_layers, n_kv_heads, seq_len, head_dim)   one after another
    int16_t *xq;        // (BATCH, max(dim, q_dim, hidden_dim)) q8_0 activations
    float *xs;          // (BATCH, max(dim, q_dim, hidden_dim)) their scales
    float *inv_freq;    // (head_dim / 2) RoPE frequencies
    float *rope_cos;    // (BATCH, head_dim / 2) cos(pos * inv_freq) of each token
    float *rope_sin;    // (BATCH, head_dim / 2)
} RunState;

static void runstate_build(RunState *s, const Config *c, int seq_len) {
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, half = (size_t)c->head_dim / 2;
    size_t wide = dim > q_dim ? dim : q_dim;
    size_t widest = wide > hidden ? wide : hidden;
    size_t cache = (size_t)c->n_layers * (size_t)seq_len * kv_dim;
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
    s->xs = xcalloc(BATCH * widest, sizeof(float));
    s->inv_freq = xcalloc(half, sizeof(float));
    s->rope_cos = xcalloc(BATCH * half, sizeof(float));
    s->rope_sin = xcalloc(BATCH * half, sizeof(float));
    rope_inv_freq(s->inv_freq, c);
}

static void runstate_free(RunState *s) {
    free(s->x); free(s->xb); free(s->xb2); free(s->hb); free(s->hb2); free(s->q); free(s->k); free(s->v);
    free(s->att); free(s->logits); free(s->key_cache); free(s->value_cache);
    free(s->xq); free(s->xs); free(s->inv_freq); free(s->rope_cos); free(s->rope_sin);
    memset(s, 0, sizeof(*s));
}

// The projections p[0..count) of the same n tokens x (n, cols), quantizing x first when
// the weights are stored as q8_0 (all matrices of a file have the same storage type).
static void linear(const Projection *p, int count, const float *x, int n, RunState *s) {
    const Matrix *W = p[0].W;
    if (W->q)
        for (int t = 0; t < n; t++)
            quantize_q8(s->xq + (size_t)t * W->cols, s->xs + (size_t)t * (W->cols / W->group_size),
                        x + (size_t)t * W->cols, W->cols, W->group_size);
    matmul(p, count, x, s->xq, s->xs, n);
}

// out = sum_j w_j v_j for the n vectors v_j = v + j * stride, d values each. Four at a
// time: out[i] + w_j v_j[i] + ... is the same sequence of additions as four separate
// passes, but out[i] is loaded and stored once, not four times (each pass would wait for
// the previous one's store).
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

// Where key/value head h of layer l keeps position pos in the cache. Each head's keys
// (and values) lie one after another, so attention reads them as one stream.
static size_t cache_index(const RunState *s, const Config *c, int l, int h, int pos) {
    return (((size_t)l * (size_t)c->n_kv_heads + (size_t)h) * (size_t)s->seq_len + (size_t)pos) * (size_t)c->head_dim;
}

// Causal self-attention of the n tokens at positions pos..pos+n-1, whose keys and
// values are already in the cache. Token t sees positions 0..pos+t; for each head:
//   att = softmax(q . k_j / sqrt(head_dim)),  out = sum_j att_j v_j
// Query head h reads key/value head h / (n_heads / n_kv_heads) (grouped-query attention).
static void attention(RunState *s, const Config *c, int layer, int n, int pos) {
    int hd = c->head_dim, q_dim = c->n_heads * hd;
    int group = c->n_heads / c->n_kv_heads;
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

// Runs n tokens (1 <= n <= BATCH) at positions pos..pos+n-1 through the network and
// appends their keys and values to the cache. Returns the logits of the next token:
// (vocab_size) after the last token, or (n, vocab_size) after each token if all_logits.
static float *forward(const Model *m, RunState *s, const int *tokens, int n, int pos, int all_logits) {
    const Config *c = &m->config;
    const Weights *w = &m->weights;
    int dim = c->dim, half = c->head_dim / 2;
    int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    for (int t = 0; t < n; t++) {
        matrix_row(s->x + (size_t)t * dim, &w->token_embedding, tokens[t]);
        for (int i = 0; i < half; i++) {
            float angle = (float)(pos + t) * s->inv_freq[i];
            s->rope_cos[t * half + i] = cosf(angle);
            s->rope_sin[t * half + i] = sinf(angle);
        }
    }
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];

        // attention block: x += Wo attention(rope(Wq xn), rope(Wk xn), Wv xn)
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * dim, s->x + (size_t)t * dim, lw->attn_norm, dim, c->norm_eps);
        Projection qkv[3] = {{&lw->wq, lw->bq, s->q}, {&lw->wk, lw->bk, s->k}, {&lw->wv, lw->bv, s->v}};
        linear(qkv, 3, s->xb, n, s);
        for (int t = 0; t < n; t++) {
            rope(s->q + (size_t)t * q_dim, c->n_heads, c->head_dim, s->rope_cos + t * half, s->rope_sin + t * half);
            rope(s->k + (size_t)t * kv_dim, c->n_kv_heads, c->head_dim, s->rope_cos + t * half, s->rope_sin + t * half);
            for (int h = 0; h < c->n_kv_heads; h++) {
                size_t at = cache_index(s, c, l, h, pos + t), from = (size_t)t * kv_dim + (size_t)h * c->head_dim;
                memcpy(s->key_cache + at, s->k + from, (size_t)c->head_dim * sizeof(float));
                memcpy(s->value_cache + at, s->v + from, (size_t)c->head_dim * sizeof(float));
            }
        }
        attention(s, c, l, n, pos);
        Projection wo = {&lw->wo, NULL, s->xb2};
        linear(&wo, 1, s->xb, n, s);
        for (size_t i = 0; i < (size_t)n * dim; i++) s->x[i] += s->xb2[i];

        // MLP block: x += W_down (silu(W_gate xn) * W_up xn)
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * dim, s->x + (size_t)t * dim, lw->ffn_norm, dim, c->norm_eps);
        Projection gate_up[2] = {{&lw->w_gate, NULL, s->hb}, {&lw->w_up, NULL, s->hb2}};
        linear(gate_up, 2, s->xb, n, s);
        swiglu(s->hb, s->hb2, n * c->hidden_dim);
        Projection down = {&lw->w_down, NULL, s->xb2};
        linear(&down, 1, s->hb, n, s);
        for (size_t i = 0; i < (size_t)n * dim; i++) s->x[i] += s->xb2[i];
    }
    // the classifier: only the last token's logits are needed to go on
    int first = all_logits ? 0 : n - 1;
    for (int t = first; t < n; t++)
        rmsnorm(s->x + (size_t)t * dim, s->x + (size_t)t * dim, w->final_norm, dim, c->norm_eps);
    Projection classifier = {&w->classifier, NULL, s->logits};
    linear(&classifier, 1, s->x + (size_t)first * dim, n - first, s);
    return s->logits;
}

// ----------------------------------------------------------------------------
// 4. The sampler: picks the next token from the logits

typedef struct {
    float temperature;  // 0 = greedy (argmax)
    int top_k;          // keep the k most likely tokens; 0 = all
    float top_p;        // keep the smallest set whose probability reaches top_p; 1 = all
    uint64_t rng;       // xorshift64* state; the same seed gives the same text
} SamplerConfig;

typedef struct {
    float prob;
    int id;
} ProbIndex;

typedef struct {
    SamplerConfig cfg;
    int vocab_size;
    ProbIndex *candidates;  // (vocab_size) scratch for top-k / top-p
} Sampler;

static void sampler_build(Sampler *sm, SamplerConfig cfg, int vocab_size) {
    sm->cfg = cfg;
    if (sm->cfg.rng == 0) sm->cfg.rng = 0x9E3779B97F4A7C15ull;  // xorshift must not start at 0
    sm->vocab_size = vocab_size;
    sm->candidates = xcalloc((size_t)vocab_size, sizeof(ProbIndex));
}

static void sampler_free(Sampler *sm) {
    free(sm->candidates);
    sm->candidates = NULL;
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

// Samples from the logits as Hugging Face's generate does with do_sample=True:
// divide by the temperature, keep the top_k, keep the top_p nucleus, renormalise, draw.
static int sample(Sampler *sm, float *logits) {
    const SamplerConfig *cfg = &sm->cfg;
    int n = sm->vocab_size;
    if (cfg->temperature <= 0.0f) return argmax(logits, n);
    for (int i = 0; i < n; i++) logits[i] /= cfg->temperature;
    softmax(logits, n);
    ProbIndex *cand = sm->candidates;
    for (int i = 0; i < n; i++) cand[i] = (ProbIndex){logits[i], i};
    int keep = n;
    if ((cfg->top_k > 0 && cfg->top_k < n) || cfg->top_p < 1.0f) {
        qsort(cand, (size_t)n, sizeof(ProbIndex), compare_prob_desc);
        if (cfg->top_k > 0 && cfg->top_k < n) keep = cfg->top_k;
        if (cfg->top_p < 1.0f) {
            // Keep tokens until the ones kept so far hold at least top_p of the
            // probability mass (renormalised over the top-k survivors), at least one.
            float total = 0.0f, cum = 0.0f;
            for (int i = 0; i < keep; i++) total += cand[i].prob;
            int i = 0;
            while (i < keep && (i == 0 || cum < cfg->top_p * total)) cum += cand[i++].prob;
            keep = i;
        }
    }
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

// A growable byte string (prompts, rendered chats, input lines).
typedef struct {
    char *data;
    size_t len, cap;
} Text;

static void text_append(Text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        if (!t->data) fatal("out of memory");
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_puts(Text *t, const char *s) { text_append(t, s, strlen(s)); }

static void text_free(Text *t) {
    free(t->data);
    memset(t, 0, sizeof(*t));
}

// Renders what the chat template adds for one user turn, exactly as Hugging Face's
// apply_chat_template(..., add_generation_prompt=True) renders it. The first turn opens
// the conversation (BOS, system prompt); later turns first close the assistant's
// previous answer with the end-of-turn marker, as the template renders the history.
//   ChatML (SmolLM2, Qwen2.5): <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
//   Llama 3: <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
//            ... <|start_header_id|>assistant<|end_header_id|>\n\n
// Jinja's `trim`: the Llama 3 template strips the whitespace around every message.
// Jinja's trim is Python's str.strip(), which removes the characters of str.isspace():
// Unicode White_Space (tokenizer.c's CHAR_SPACE, e.g. U+00A0, U+3000) and U+001C..U+001F.
static int is_python_space(const char *s, size_t n) {   // the character at s[0..n), n >= 1
    uint32_t cp;
    return utf8_decode_char(s, n, &cp) == (int)n && (char_class(cp) == CHAR_SPACE || (cp >= 0x1C && cp <= 0x1F));
}

static void text_append_trimmed(Text *t, const char *s) {
    size_t n = strlen(s), len;
    uint32_t cp;
    while (n > 0 && (len = (size_t)utf8_decode_char(s, n, &cp)) > 0 && is_python_space(s, len)) s += len, n -= len;
    for (;;) {   // from the end: back up to the start of the last character
        size_t start = n;
        while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xC0) == 0x80) start--;
        if (start == 0 || !is_python_space(s + start - 1, n - start + 1)) break;
        n = start - 1;
    }
    text_append(t, s, n);
}

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

// Streams token bytes to a file as valid UTF-8: a token may end in the middle of a
// multi-byte character (byte-level BPE splits them), so the incomplete tail is held
// back until the next token completes it. Bytes that can never form a character are
// written as U+FFFD, as Hugging Face's decode(errors="replace") does.
typedef struct {
    unsigned char pending[4];
    int n;
} Utf8Stream;

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

// The bytes at s[0..n) that one U+FFFD replaces when they do not start a valid
// character: the lead byte and the continuation bytes that fit it, as far as they go
// (the "maximal subpart", which Python's errors="replace" and utf8_write replace).
static size_t utf8_subpart(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    int len = utf8_lead_length(u[0]);
    size_t have = 1;
    while ((int)have < len && have < n && utf8_continuation_ok(u, (int)have + 1)) have++;
    return have;
}

// A reader that went away (`run ... | head -c 10`) ends the program quietly: SIGPIPE
// does it where signals exist, this where the write just fails.
static void flush_or_exit(FILE *out) {
    if (fflush(out) != 0 || ferror(out)) _Exit(0);
}

static void utf8_write(Utf8Stream *u, FILE *out, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)bytes[i];
        if (u->n > 0) {  // try to extend the held sequence
            u->pending[u->n] = b;
            if (utf8_continuation_ok(u->pending, u->n + 1)) {
                if (++u->n == utf8_lead_length(u->pending[0])) {
                    fwrite(u->pending, 1, (size_t)u->n, out);
                    u->n = 0;
                }
                continue;
            }
            fputs(REPLACEMENT, out);  // cut short: b starts afresh
            u->n = 0;
        }
        int len = utf8_lead_length(b);
        if (len == 1) fputc(b, out);
        else if (len == 0) fputs(REPLACEMENT, out);
        else u->pending[u->n++] = b;
    }
    flush_or_exit(out);
}

// At the end of an answer an incomplete character can no longer complete.
static void utf8_finish(Utf8Stream *u, FILE *out) {
    if (u->n > 0) fputs(REPLACEMENT, out);
    u->n = 0;
    flush_or_exit(out);
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

static void print_stats(const Stats *st, int mode) {
    if (mode == STATS_OFF) return;
    double prefill = rate(st->prompt_tokens, st->prefill_s), gen = rate(st->new_tokens, st->gen_s);
    if (mode == STATS_JSON)
        fprintf(stderr, "{\"prompt_tokens\": %d, \"prefill_tok_s\": %.2f, \"new_tokens\": %d, "
                "\"gen_tok_s\": %.2f, \"ttft_ms\": %.2f, \"peak_rss_mb\": %.1f}\n",
                st->prompt_tokens, prefill, st->new_tokens, gen, st->ttft_s * 1e3, peak_rss_mb());
    else
        fprintf(stderr, "[prompt: %d tokens, %.1f tok/s | answer: %d tokens, %.1f tok/s | "
                "first token after %.0f ms]\n",
                st->prompt_tokens, prefill, st->new_tokens, gen, st->ttft_s * 1e3);
}

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
    Stats stats;            // of the last answer
} Session;

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
        int next = sample(&ss->sampler, logits);
        if (n == 0) st->ttft_s = now_seconds() - t0;
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

// Reads one line from f (without its newline) into t. Returns 0 at end of input.
static int read_line(Text *t, FILE *f) {
    t->len = 0;
    text_append(t, "", 0);
    int c, any = 0;
    while ((c = fgetc(f)) != EOF) {
        any = 1;
        if (c == '\n') break;
        char ch = (char)c;
        text_append(t, &ch, 1);
    }
    if (t->len > 0 && t->data[t->len - 1] == '\r') t->data[--t->len] = '\0';
    return any;
}

// Today's date as the Llama 3.2 template writes it (strftime "%d %b %Y").
static void today(char *buf, size_t n) {
    time_t now = time(NULL);
    strftime(buf, n, "%d %b %Y", localtime(&now));
}

// Chat: -i is the first user turn, then one turn per line of stdin until EOF. The KV
// cache is kept across turns, so each turn only processes its own new tokens.
static void chat(Session *ss, const char *system, const char *first_prompt, int stats_mode) {
    const Model *m = ss->model;
    char date[32];
    today(date, sizeof(date));
    int interactive = isatty(fileno(stdin));
    int first = 1;
    const char *pending = first_prompt;
    Text line = {0}, turn = {0};
    for (;;) {
        const char *user = pending;
        pending = NULL;
        if (!user) {
            if (interactive) fputs("> ", stderr);
            if (!read_line(&line, stdin)) break;
            user = line.data;
        }
        turn.len = 0;
        render_turn(&turn, &m->gen, system, user, first, date);
        int n;
        int *ids = encode(m, turn.data, 0, &n);
        if (!ids) {
            fprintf(stderr, "run: the input is not valid UTF-8; turn ignored\n");
            continue;
        }
        if (session_generate(ss, ids, n, stdout, NULL) != 0) {
            fprintf(stderr, "run: this turn needs %d tokens but only %d of the %d-token context are "
                    "left; turn ignored. Start a new conversation, or run with a larger -c "
                    "(the model allows %d).\n", n, ss->state.seq_len - ss->pos, ss->state.seq_len,
                    m->config.max_seq_len);
        } else {
            fputc('\n', stdout);
            fflush(stdout);
            print_stats(&ss->stats, stats_mode);
            first = 0;
        }
        free(ids);
    }
    text_free(&line);
    text_free(&turn);
}

// log p(id) under the softmax of the logits, computed in double: log_softmax(x)_id =
// x_id - max - log(sum_j exp(x_j - max)).
static double log_prob(const float *logits, int n, int id) {
    float max = logits[argmax(logits, n)];
    double sum = 0.0;
    for (int j = 0; j < n; j++) sum += exp((double)logits[j] - max);
    return (double)logits[id] - max - log(sum);
}

// Writes s to f with tabs, newlines and backslashes escaped, so one token is one field.
static void write_escaped(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\t') fputs("\\t", f);
        else if (s[i] == '\n') fputs("\\n", f);
        else if (s[i] == '\r') fputs("\\r", f);
        else if (s[i] == '\\') fputs("\\\\", f);
        else fputc(s[i], f);
    }
}

// Teacher-forced scoring of a text: every token's log-probability given the tokens
// before it, one line each (id, log p, the token's text), then the mean negative
// log-likelihood and the perplexity exp(mean NLL) over the n - 1 predicted tokens.
static void perplexity(Session *ss, const int *ids, int n, FILE *out) {
    int vocab = ss->model->config.vocab_size;
    double nll = 0.0;
    for (int i = 0; i < n; i += BATCH) {
        int block = n - i < BATCH ? n - i : BATCH;
        float *logits = session_forward(ss, ids + i, block, 1);
        for (int t = 0; t < block && i + t + 1 < n; t++) {
            int next = ids[i + t + 1];
            double lp = log_prob(logits + (size_t)t * vocab, vocab, next);
            nll -= lp;
            size_t len;
            const char *piece = tokenizer_decode(&ss->model->tokenizer, ids[i + t], next, &len);
            fprintf(out, "%d\t%.6f\t", next, lp);
            write_escaped(out, piece, len);
            fputc('\n', out);
        }
    }
    int predicted = n - 1;
    fprintf(out, "tokens %d, predicted %d, mean NLL %.6f, perplexity %.6f\n", n, predicted,
            predicted > 0 ? nll / predicted : 0.0, predicted > 0 ? exp(nll / predicted) : 1.0);
}

// The whole of a file (malloc'ed, NUL-terminated).
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    Text t = {0};
    char buf[65536];
    size_t got;
    text_append(&t, "", 0);
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) text_append(&t, buf, got);
    if (ferror(f)) fatal("cannot read %s", path);
    fclose(f);
    return t.data;
}

// ----------------------------------------------------------------------------
// Evaluation: a chat model as a classifier, and batches of prompts

// The prompt of a one-turn conversation: the chat template's rendering of the system
// prompt and one user message, or, for a model without a chat template, the user text.
static int *encode_single_turn(const Model *m, const char *system, const char *user, const char *date, int *n) {
    Text t = {0};
    int bos = m->gen.chat_template == CHAT_NONE && m->gen.add_bos;
    if (m->gen.chat_template == CHAT_NONE) text_puts(&t, user);
    else render_turn(&t, &m->gen, system, user, 1, date);
    int *ids = encode(m, t.data, bos, n);
    text_free(&t);
    return ids;
}

// log P(cont | prompt) = sum_i log p(cont_i | prompt, cont_<i), with prompt in the
// cache: rewinds to before the prompt's last token and runs it with cont[0..n-2].
static double score_continuation(Session *ss, const int *prompt, int n_prompt, const int *cont, int n_cont) {
    int vocab = ss->model->config.vocab_size;
    int seq[BATCH];
    double lp = 0.0;
    ss->pos = n_prompt - 1;
    for (int i = 0; i < n_cont; i += BATCH) {
        int block = n_cont - i < BATCH ? n_cont - i : BATCH;
        for (int t = 0; t < block; t++) seq[t] = i + t == 0 ? prompt[n_prompt - 1] : cont[i + t - 1];
        float *logits = session_forward(ss, seq, block, 1);
        for (int t = 0; t < block; t++) lp += log_prob(logits + (size_t)t * vocab, vocab, cont[i + t]);
    }
    return lp;
}

// An answer compared the way a notebook's `answer.strip().upper() == label` would,
// a little more forgiving: whitespace and punctuation around it do not count, and case
// does not matter (ASCII).
static void normalise_label(Text *out, const char *s, size_t n) {
    while (n > 0 && (isspace((unsigned char)s[0]) || ispunct((unsigned char)s[0]))) s++, n--;
    while (n > 0 && (isspace((unsigned char)s[n - 1]) || ispunct((unsigned char)s[n - 1]))) n--;
    out->len = 0;
    text_append(out, s, n);
    for (size_t i = 0; i < out->len; i++) out->data[i] = (char)toupper((unsigned char)out->data[i]);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// The sorted distinct strings of a and b (n each), as scikit-learn's unique_labels.
static char **distinct_labels(char **a, char **b, int n, int *n_out) {
    char **all = xcalloc(2 * (size_t)n, sizeof(char *));
    memcpy(all, a, (size_t)n * sizeof(char *));
    memcpy(all + n, b, (size_t)n * sizeof(char *));
    qsort(all, 2 * (size_t)n, sizeof(char *), compare_strings);
    int k = 0;
    for (int i = 0; i < 2 * n; i++)
        if (k == 0 || strcmp(all[k - 1], all[i])) all[k++] = all[i];
    *n_out = k;
    return all;
}

// scikit-learn's classification_report(gold, pred, zero_division=0), to the character:
// per class precision = tp / predicted, recall = tp / support, f1 = 2pr / (p + r)
// (0 where a denominator is 0); accuracy; the unweighted mean over classes (macro
// avg) and the mean weighted by support (weighted avg). Then the confusion matrix
// (rows: gold, columns: predicted).
// The sum of a[0..n) in the order numpy's add.reduce adds a contiguous float64 array
// (pairwise, 8 accumulators), so that averages round exactly as sklearn's np.average.
static double numpy_sum(const double *a, int n) {
    if (n < 8) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        int i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += a[i];
        return s;
    }
    int half = n / 2;
    half -= half % 8;
    return numpy_sum(a, half) + numpy_sum(a + half, n - half);
}

// The number of characters of a UTF-8 string (Python's len(), which sklearn pads by).
static int utf8_chars(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

// s right-aligned in a field of width characters.
static void put_right(FILE *f, const char *s, int width) {
    for (int i = utf8_chars(s); i < width; i++) fputc(' ', f);
    fputs(s, f);
}

static void classification_report(FILE *f, char **gold, char **pred, int n) {
    int k;
    char **classes = distinct_labels(gold, pred, n, &k);
    int *confusion = xcalloc((size_t)k * (size_t)k, sizeof(int));
    for (int i = 0; i < n; i++) {
        int g = 0, p = 0;
        while (strcmp(classes[g], gold[i])) g++;
        while (strcmp(classes[p], pred[i])) p++;
        confusion[g * k + p]++;
    }
    int correct = 0;
    for (int c = 0; c < k; c++) correct += confusion[c * k + c];
    // sklearn's quirk: with no correct prediction at all its supports are floats ("16.0")
    const char *support_fmt = correct ? " %9.0f\n" : " %9.1f\n";
    int width = 12;  // strlen("weighted avg")
    for (int c = 0; c < k; c++)
        if (utf8_chars(classes[c]) > width) width = utf8_chars(classes[c]);
    fprintf(f, "%*s  %9s %9s %9s %9s\n\n", width, "", "precision", "recall", "f1-score", "support");
    double *v = xcalloc(6 * (size_t)k, sizeof(double));  // precision, recall, f1; then * support
    for (int c = 0; c < k; c++) {
        int tp = confusion[c * k + c], support = 0, predicted = 0;
        for (int j = 0; j < k; j++) support += confusion[c * k + j], predicted += confusion[j * k + c];
        double precision = predicted ? (double)tp / predicted : 0.0;
        double recall = support ? (double)tp / support : 0.0;
        double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
        v[c] = precision, v[k + c] = recall, v[2 * k + c] = f1;
        for (int j = 0; j < 3; j++) v[(3 + j) * k + c] = v[j * k + c] * support;
        put_right(f, classes[c], width);
        fprintf(f, "  %9.2f %9.2f %9.2f", precision, recall, f1);
        fprintf(f, support_fmt, (double)support);
    }
    double a = (double)correct / n;  // sklearn 1.2 computes it as the f1 of the micro average
    fprintf(f, "\n%*s  %9s %9s %9.2f", width, "accuracy", "", "", a > 0 ? 2 * a * a / (a + a) : 0.0);
    fprintf(f, support_fmt, (double)n);
    fprintf(f, "%*s ", width, "macro avg");
    for (int j = 0; j < 3; j++) fprintf(f, " %9.2f", numpy_sum(v + j * k, k) / k);
    fprintf(f, support_fmt, (double)n);
    fprintf(f, "%*s ", width, "weighted avg");
    for (int j = 0; j < 3; j++) fprintf(f, " %9.2f", numpy_sum(v + (3 + j) * k, k) / n);
    fprintf(f, support_fmt, (double)n);
    free(v);

    fprintf(f, "\nconfusion matrix (rows: gold, columns: predicted)\n%*s", width, "");
    for (int c = 0; c < k; c++) fputc(' ', f), put_right(f, classes[c], utf8_chars(classes[c]) > 6 ? utf8_chars(classes[c]) : 6);
    fputc('\n', f);
    for (int g = 0; g < k; g++) {
        put_right(f, classes[g], width);
        for (int c = 0; c < k; c++)
            fprintf(f, " %*d", utf8_chars(classes[c]) > 6 ? utf8_chars(classes[c]) : 6, confusion[g * k + c]);
        fputc('\n', f);
    }
    free(confusion);
    free(classes);
}

typedef struct {
    const char *system;     // the system prompt (NULL: the model's default)
    const char *template_;  // the user message; {text} is replaced by the row's text
    const char *labels;     // comma-separated classes, or NULL: those of the file
    int free_answer;        // generate an answer and match it instead of scoring
    int max_new_tokens;     // for free answers
} ClassifyOptions;

// The user message for one row: the template with every {text} replaced.
static void fill_template(Text *out, const char *template_, const char *text) {
    out->len = 0;
    text_append(out, "", 0);
    for (const char *p = template_; *p;) {
        if (!strncmp(p, "{text}", 6)) text_puts(out, text), p += 6;
        else text_append(out, p++, 1);
    }
}

// -m classify -i FILE.tsv: classifies every row of a TSV file (a header line, then
// text<TAB>label) with the prompt, prints one line per row (predicted label, gold label,
// then the probabilities of the labels, or the raw answer with --free) and a report.
// Constrained (the default): every label is scored by the log-probability of its tokens
// (and the end-of-turn token) as the assistant's answer; the best one wins and the
// probabilities are the softmax of those scores over the labels. The KV cache of the
// prompt's shared head (system prompt, template) is reused from row to row.
static void classify(Session *ss, const char *path, const ClassifyOptions *co, FILE *rows_out) {
    const Model *m = ss->model;
    char *data = read_file(path);
    int n = 0, cap = 0, line_no = 0;
    char **texts = NULL, **gold = NULL;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line[strcspn(line, "\r")] = '\0';
        if (line_no++ == 0 || !*line) continue;  // the header, blank lines
        char *tab = strrchr(line, '\t');
        if (!tab) fatal("%s:%d: expected text<TAB>label", path, line_no);
        *tab = '\0';
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            texts = realloc(texts, (size_t)cap * sizeof(char *));
            gold = realloc(gold, (size_t)cap * sizeof(char *));
            if (!texts || !gold) fatal("out of memory");
        }
        texts[n] = line;
        gold[n++] = tab + 1;
    }
    if (n == 0) fatal("%s has no rows (a header line, then text<TAB>label lines)", path);

    // The classes: --labels, else the distinct gold labels in the order they appear.
    char *label_buf = strdup(co->labels ? co->labels : "");
    int n_labels = 0;
    char **labels = xcalloc((size_t)n + strlen(label_buf) + 1, sizeof(char *));
    if (co->labels) {
        for (char *l = strtok(label_buf, ","); l; l = strtok(NULL, ",")) labels[n_labels++] = l;
    } else {
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int j = 0; j < n_labels && !seen; j++) seen = !strcmp(labels[j], gold[i]);
            if (!seen) labels[n_labels++] = gold[i];
        }
    }
    if (n_labels < 2) fatal("classification needs at least two labels (--labels a,b,c)");
    int **label_ids = xcalloc((size_t)n_labels, sizeof(int *)), *label_len = xcalloc((size_t)n_labels, sizeof(int));
    for (int l = 0; l < n_labels; l++) {
        label_ids[l] = encode(m, labels[l], 0, &label_len[l]);
        if (!label_ids[l] || label_len[l] == 0) fatal("label '%s' is empty or not valid UTF-8", labels[l]);
        if (m->gen.eot_id >= 0) label_ids[l][label_len[l]++] = m->gen.eot_id;  // encode left room
    }

    int longest = 0;  // the longest label (with its end-of-turn token), for the context check
    for (int l = 0; l < n_labels; l++) longest = label_len[l] > longest ? label_len[l] : longest;

    char date[32];
    today(date, sizeof(date));
    char **pred = xcalloc((size_t)n, sizeof(char *));
    double *score = xcalloc((size_t)n_labels, sizeof(double));
    Text user = {0}, answer = {0}, norm = {0}, norm_label = {0};
    double t0 = now_seconds();
    int reused = 0, processed = 0;
    for (int i = 0; i < n; i++) {
        fill_template(&user, co->template_, texts[i]);
        int n_prompt;
        int *ids = encode_single_turn(m, co->system, user.data, date, &n_prompt);
        if (!ids) fatal("%s: row %d is not valid UTF-8", path, i + 1);
        int need = n_prompt + (co->free_answer ? (co->max_new_tokens > 0 ? co->max_new_tokens : 1) : longest);
        if (need > ss->state.seq_len)
            fatal("%s: row %d needs %d tokens, more than the context (%d; see -c)", path, i + 1, need, ss->state.seq_len);
        reused += session_reuse_prefix(ss, ids, n_prompt);
        processed += n_prompt;
        pred[i] = "invalid";
        if (co->free_answer) {
            answer.len = 0;
            text_append(&answer, "", 0);
            session_generate(ss, ids + ss->pos, n_prompt - ss->pos, NULL, &answer);
            normalise_label(&norm, answer.data, answer.len);
            for (int l = 0; l < n_labels; l++) {
                normalise_label(&norm_label, labels[l], strlen(labels[l]));
                if (!strcmp(norm.data, norm_label.data)) pred[i] = labels[l];
            }
            fprintf(rows_out, "%s\t%s\t", pred[i], gold[i]);
            write_escaped(rows_out, answer.data, answer.len);
        } else {
            for (int k = ss->pos; k < n_prompt; k += BATCH)
                session_forward(ss, ids + k, n_prompt - k < BATCH ? n_prompt - k : BATCH, 0);
            int best = 0;
            for (int l = 0; l < n_labels; l++) {
                score[l] = score_continuation(ss, ids, n_prompt, label_ids[l], label_len[l]);
                if (score[l] > score[best]) best = l;
            }
            pred[i] = labels[best];
            double total = 0.0;
            for (int l = 0; l < n_labels; l++) total += exp(score[l] - score[best]);
            fprintf(rows_out, "%s\t%s", pred[i], gold[i]);
            for (int l = 0; l < n_labels; l++)
                fprintf(rows_out, "\t%s=%.4f", labels[l], exp(score[l] - score[best]) / total);
            ss->pos = n_prompt;  // the cache now ends with the last label: keep the prompt
        }
        fputc('\n', rows_out);
        fflush(rows_out);
        free(ids);
    }
    fprintf(stderr, "[%d rows in %.1f s; %d of %d prompt tokens reused from the cache]\n", n,
            now_seconds() - t0, reused, processed);
    printf("\n");
    classification_report(stdout, gold, pred, n);
    text_free(&user); text_free(&answer); text_free(&norm); text_free(&norm_label);
    for (int l = 0; l < n_labels; l++) free(label_ids[l]);
    free(label_ids); free(label_len); free(labels); free(label_buf); free(score);
    free(pred); free(texts); free(gold); free(data);
}

// Writes s as a JSON string; bytes that are not valid UTF-8 become U+FFFD.
static void write_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        int len = utf8_decode_char(s + i, n - i, &cp);
        if (len == 0) {
            fputs(REPLACEMENT, f);
            i += utf8_subpart(s + i, n - i);
            continue;
        }
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fwrite(s + i, 1, (size_t)len, f);
        i += (size_t)len;
    }
    fputc('"', f);
}

// One line of a batch file: a plain prompt, or a flat JSON object.
typedef struct {
    Text prompt, system;
    int has_system;
    SamplerConfig sampler;
    int max_new_tokens;
} BatchItem;

// Exactly four hex digits at p, as JSON's \\uXXXX has them (no sign, spaces or 0x);
// stops at the end of the string.
static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!isxdigit(c)) return 0;
        *v = *v * 16 + (unsigned)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
    }
    return 1;
}

// Reads a JSON string at p (at its opening quote) into out; returns the position after
// it, or NULL if it is malformed. \uXXXX escapes (and surrogate pairs) become UTF-8.
static const char *json_string(const char *p, Text *out) {
    out->len = 0;
    text_append(out, "", 0);
    if (*p++ != '"') return NULL;
    while (*p && *p != '"') {
        if (*p != '\\') { text_append(out, p++, 1); continue; }
        p++;
        const char *simple = strchr("\"\\/bfnrt", *p);
        if (*p && simple) {
            text_append(out, &"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"], 1);
            p++;
            continue;
        }
        if (*p != 'u') return NULL;
        unsigned cp, lo;
        if (!hex4(p + 1, &cp)) return NULL;
        p += 5;
        if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) &&
            lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        if (cp >= 0xD800 && cp < 0xE000) return NULL;  // a lone surrogate
        char u[4];
        int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n == 1) u[0] = (char)cp;
        else {
            for (int i = n - 1; i > 0; i--, cp >>= 6) u[i] = (char)(0x80 | (cp & 0x3F));
            u[0] = (char)((0xF00 >> n) | cp);
        }
        text_append(out, u, (size_t)n);
    }
    return *p == '"' ? p + 1 : NULL;
}

// Parses a batch line into item (whose sampler and limits hold the defaults).
// Returns NULL, or a message saying what is wrong.
static const char *parse_batch_line(const char *line, BatchItem *item) {
    if (line[0] != '{') {
        item->prompt.len = 0;
        text_puts(&item->prompt, line);
        return NULL;
    }
    const char *p = line + 1;
    Text key = {0};
    const char *err = NULL;
    int has_prompt = 0;
    while (!err) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == '}') break;
        if (!(p = json_string(p, &key))) { err = "malformed JSON key"; break; }
        while (isspace((unsigned char)*p)) p++;
        if (*p++ != ':') { err = "expected ':' in JSON"; break; }
        while (isspace((unsigned char)*p)) p++;
        if (!strcmp(key.data, "prompt") || !strcmp(key.data, "system")) {
            int is_prompt = !strcmp(key.data, "prompt");
            if (!(p = json_string(p, is_prompt ? &item->prompt : &item->system))) { err = "malformed JSON string"; break; }
            has_prompt |= is_prompt;
            item->has_system |= !is_prompt;
        } else {
            char *end;
            double v = strtod(p, &end);
            if (end == p) { err = "expected a number"; break; }
            p = end;
            if (!strcmp(key.data, "temperature") && v >= 0 && v <= 100) item->sampler.temperature = (float)v;
            else if (!strcmp(key.data, "top_p") && v >= 0 && v <= 1) item->sampler.top_p = (float)v;
            else if (!strcmp(key.data, "top_k") && v >= 0 && v <= MAX_VOCAB) item->sampler.top_k = (int)v;
            else if (!strcmp(key.data, "seed") && v >= 0 && v <= 9007199254740992.0) item->sampler.rng = (uint64_t)v;
            else if (!strcmp(key.data, "max_new_tokens") && v >= -1 && v <= MAX_SEQ) item->max_new_tokens = (int)v;
            else { err = "unknown key or value out of range (prompt, system, temperature, top_k, top_p, seed, max_new_tokens)"; break; }
        }
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') p++;
        else if (*p != '}') err = "expected ',' or '}' in JSON";
    }
    text_free(&key);
    if (!err && *p == '}') {
        for (p++; isspace((unsigned char)*p); p++) {}
        if (*p) err = "text after the JSON object";
    }
    if (!err && !has_prompt) err = "no \"prompt\"";
    return err;
}

// --batch FILE: every line is a fresh one-turn conversation (chat mode) or a prompt to
// continue (generate mode); one JSON object per line on stdout with the answer and its
// statistics. A system prompt shared by the lines is computed once (the cache is reused).
static void batch(Session *ss, const char *path, int chat_mode, const char *system, SamplerConfig defaults) {
    const Model *m = ss->model;
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    char date[32];
    today(date, sizeof(date));
    int default_max = ss->max_new_tokens;
    Text line = {0}, answer = {0};
    BatchItem item = {0};
    for (int line_no = 1; read_line(&line, f); line_no++) {
        if (line.len == 0) continue;
        item.has_system = 0;
        item.sampler = defaults;
        item.max_new_tokens = default_max;
        const char *err = parse_batch_line(line.data, &item);
        int n = 0, *ids = NULL;
        if (!err) {
            const char *sys = item.has_system ? item.system.data : system;
            ids = chat_mode ? encode_single_turn(m, sys, item.prompt.data, date, &n)
                            : encode(m, item.prompt.data, m->gen.add_bos, &n);
            if (!ids) err = "not valid UTF-8";
            else if (n == 0) err = "empty prompt";
            else if (n > ss->state.seq_len) err = "the prompt is longer than the context (see -c)";
        }
        printf("{\"line\": %d, ", line_no);
        if (err) {
            fputs("\"error\": ", stdout);
            write_json_string(stdout, err, strlen(err));
            puts("}");
            free(ids);
            continue;
        }
        ss->sampler.cfg = item.sampler;
        if (ss->sampler.cfg.rng == 0) ss->sampler.cfg.rng = 0x9E3779B97F4A7C15ull;
        ss->max_new_tokens = item.max_new_tokens;
        int reused = session_reuse_prefix(ss, ids, n);
        answer.len = 0;
        text_append(&answer, "", 0);
        session_generate(ss, ids + reused, n - reused, NULL, &answer);
        const Stats *st = &ss->stats;
        fputs("\"prompt\": ", stdout);
        write_json_string(stdout, item.prompt.data, item.prompt.len);
        fputs(", \"answer\": ", stdout);
        write_json_string(stdout, answer.data, answer.len);
        printf(", \"prompt_tokens\": %d, \"reused_tokens\": %d, \"new_tokens\": %d, \"prefill_tok_s\": %.2f, "
               "\"gen_tok_s\": %.2f, \"ttft_ms\": %.2f}\n", n, reused, st->new_tokens,
               rate(st->prompt_tokens, st->prefill_s), rate(st->new_tokens, st->gen_s), st->ttft_s * 1e3);
        flush_or_exit(stdout);
        free(ids);
    }
    if (f != stdin) fclose(f);
    text_free(&line); text_free(&answer);
    text_free(&item.prompt); text_free(&item.system);
}

// ----------------------------------------------------------------------------
// 6. The command line

static void usage(FILE *f) {
    fputs("Usage: run MODEL.bin [options]\n"
          "  -m, --mode MODE           generate | chat | tokenize | perplexity (default: chat\n"
          "                            for models with a chat template, else generate)\n"
          "  -i, --prompt TEXT         the prompt (chat: the first user turn; further turns\n"
          "                            are read from stdin, one per line; perplexity: a file)\n"
          "  -y, --system TEXT         chat: the system prompt (default: the model's own)\n"
          "  -t, --temperature T       0 = greedy (default: the model's generation_config)\n"
          "  -p, --top-p P             nucleus sampling: keep the most likely tokens up to\n"
          "                            probability P (1 = off)\n"
          "  -k, --top-k K             keep the K most likely tokens (0 = off)\n"
          "  -s, --seed N              random seed (default: the time)\n"
          "  -n, --max-new-tokens N    new tokens per answer (default 256; -1 = no limit)\n"
          "  -c, --context N           KV cache length (default: min(model max, 2048))\n"
          "      --ignore-eos          do not stop at end-of-sequence/end-of-turn tokens\n"
          "      --dump-logits FILE    write the float32 logits of every processed position\n"
          "      --stats text|json|off statistics after each answer on stderr (default text)\n"
          "      --verify              check the weights' checksum, then exit\n"
          "  Evaluation:\n"
          "  -m classify -i FILE.tsv   classify each row (header, then text<TAB>label) and\n"
          "                            print a classification report\n"
          "      --labels A,B,C        the classes (default: the labels in the file)\n"
          "      --template TEXT       the user message; {text} is the row's text (default {text})\n"
          "      --free                generate the answer (greedy, -n tokens) and match it to a\n"
          "                            label, instead of scoring the labels\n"
          "      --output FILE         the per-row lines go to FILE instead of stdout\n"
          "  -m perplexity -i FILE     score a text: per-token log-probabilities, mean NLL,\n"
          "                            perplexity\n"
          "      --batch FILE          one prompt per line (or JSON: prompt, system, temperature,\n"
          "                            top_k, top_p, seed, max_new_tokens); JSON Lines out\n"
          "  -h, --help                this help\n", f);
}

typedef struct {
    const char *model_path, *mode, *prompt, *system, *dump_logits;
    const char *labels, *template_, *output, *batch;
    int free_answer;
    float temperature, top_p;
    int top_k, max_new_tokens, context, ignore_eos, verify;
    int has_temperature, has_top_p, has_top_k;
    const char *stats;
    long long seed;
} Options;

static long long parse_int(const char *s, const char *name, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        fatal("%s expects a whole number in [%lld, %lld], got '%s'", name, lo, hi, s);
    return v;
}

static float parse_float(const char *s, const char *name, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        fatal("%s expects a number in [%g, %g], got '%s'", name, lo, hi, s);
    return (float)v;
}

static int is_option(const char *arg, const char *short_name, const char *long_name) {
    return !strcmp(arg, short_name) || !strcmp(arg, long_name);
}

static Options parse_args(int argc, char **argv) {
    Options o = {0};
    o.max_new_tokens = 256;
    o.seed = -1;
    o.stats = "text";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--ignore-eos")) { o.ignore_eos = 1; continue; }
        if (!strcmp(a, "--verify")) { o.verify = 1; continue; }
        if (!strcmp(a, "--free")) { o.free_answer = 1; continue; }
        if (a[0] != '-') {
            if (o.model_path) fatal("unexpected argument '%s' (see --help)", a);
            o.model_path = a;
            continue;
        }
        if (i + 1 >= argc) fatal("option %s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (is_option(a, "-m", "--mode")) o.mode = v;
        else if (is_option(a, "-i", "--prompt")) o.prompt = v;
        else if (is_option(a, "-y", "--system")) o.system = v;
        else if (is_option(a, "-t", "--temperature")) { o.temperature = parse_float(v, a, 0, 100); o.has_temperature = 1; }
        else if (is_option(a, "-p", "--top-p")) { o.top_p = parse_float(v, a, 0, 1); o.has_top_p = 1; }
        else if (is_option(a, "-k", "--top-k")) { o.top_k = (int)parse_int(v, a, 0, MAX_VOCAB); o.has_top_k = 1; }
        else if (is_option(a, "-s", "--seed")) o.seed = parse_int(v, a, 0, INT64_MAX);
        else if (is_option(a, "-n", "--max-new-tokens")) o.max_new_tokens = (int)parse_int(v, a, -1, MAX_SEQ);
        else if (is_option(a, "-c", "--context")) o.context = (int)parse_int(v, a, 1, MAX_SEQ);
        else if (is_option(a, "", "--dump-logits")) o.dump_logits = v;
        else if (is_option(a, "", "--stats")) o.stats = v;
        else if (is_option(a, "", "--labels")) o.labels = v;
        else if (is_option(a, "", "--template")) o.template_ = v;
        else if (is_option(a, "", "--output")) o.output = v;
        else if (is_option(a, "", "--batch")) o.batch = v;
        else fatal("unknown option %s (see --help)", a);
    }
    if (!o.model_path) { usage(stderr); exit(1); }
    if (strcmp(o.stats, "text") && strcmp(o.stats, "json") && strcmp(o.stats, "off"))
        fatal("--stats expects text, json or off");
    return o;
}

#ifndef TESTING
int main(int argc, char **argv) {
    Options o = parse_args(argc, argv);
    signal(SIGINT, on_interrupt);
    binary_stdout();
#ifdef SIGPIPE
    signal(SIGPIPE, SIG_DFL);  // a closed stdout ends the program without error messages
#endif
    Model model;
    model_open(&model, o.model_path);
    const Config *c = &model.config;
    if (o.verify) {
        if (!model_verify_weights(&model)) fatal("%s: weights checksum mismatch: the file is corrupt", o.model_path);
        fprintf(stderr, "%s: checksums OK\n", o.model_path);
        model_close(&model);
        return 0;
    }
    const char *mode = o.mode ? o.mode : model.gen.chat_template != CHAT_NONE ? "chat" : "generate";

    if (!strcmp(mode, "tokenize")) {
        int n;
        int *ids = encode(&model, o.prompt ? o.prompt : "", 0, &n);
        if (!ids) fatal("the prompt is not valid UTF-8");
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        free(ids);
        model_close(&model);
        return 0;
    }
    if (strcmp(mode, "generate") && strcmp(mode, "chat") && strcmp(mode, "perplexity") && strcmp(mode, "classify"))
        fatal("unknown mode '%s' (see --help)", mode);
    if (!strcmp(mode, "chat") && model.gen.chat_template == CHAT_NONE)
        fatal("%s has no chat template: use -m generate", o.model_path);

    int seq_len = o.context ? o.context : c->max_seq_len < 2048 ? c->max_seq_len : 2048;
    if (seq_len > c->max_seq_len) fatal("-c %d exceeds the model's maximum context (%d)", seq_len, c->max_seq_len);
    SamplerConfig sc = {
        .temperature = o.has_temperature ? o.temperature : model.gen.default_temperature,
        .top_k = o.has_top_k ? o.top_k : model.gen.default_top_k,
        .top_p = o.has_top_p ? o.top_p : model.gen.default_top_p,
        .rng = o.seed >= 0 ? (uint64_t)o.seed : (uint64_t)time(NULL),
    };
    Session ss;
    session_build(&ss, &model, seq_len, sc);
    ss.max_new_tokens = o.max_new_tokens;
    ss.ignore_eos = o.ignore_eos;
    if (o.dump_logits && !(ss.dump_logits = fopen(o.dump_logits, "wb")))
        fatal("cannot write %s: %s", o.dump_logits, strerror(errno));
    int stats = !strcmp(o.stats, "json") ? STATS_JSON : !strcmp(o.stats, "off") ? STATS_OFF : STATS_TEXT;

    if (o.batch) {
        if (strcmp(mode, "chat") && strcmp(mode, "generate")) fatal("--batch works with -m chat or -m generate");
        batch(&ss, o.batch, !strcmp(mode, "chat"), o.system, sc);
    } else if (!strcmp(mode, "classify")) {
        if (!o.prompt) fatal("-m classify needs -i FILE.tsv (a header line, then text<TAB>label lines)");
        ClassifyOptions co = {o.system, o.template_ ? o.template_ : "{text}", o.labels, o.free_answer,
                              o.max_new_tokens};
        ss.sampler.cfg.temperature = 0.0f;  // free answers are greedy, as the notebook's
        FILE *rows = o.output ? fopen(o.output, "w") : stdout;
        if (!rows) fatal("cannot write %s: %s", o.output, strerror(errno));
        classify(&ss, o.prompt, &co, rows);
        if (rows != stdout && fclose(rows) != 0) fatal("cannot write %s", o.output);
    } else if (!strcmp(mode, "chat")) {
        chat(&ss, o.system, o.prompt, stats);
    } else if (!strcmp(mode, "perplexity")) {
        if (!o.prompt) fatal("-m perplexity needs -i FILE, the text to score");
        char *text = read_file(o.prompt);
        int n;
        int *ids = encode(&model, text, model.gen.add_bos, &n);
        if (!ids) fatal("%s is not valid UTF-8", o.prompt);
        if (n < 2) fatal("%s has fewer than 2 tokens: nothing to score", o.prompt);
        if (n > seq_len) fatal("%s is %d tokens, longer than the context (%d; see -c)", o.prompt, n, seq_len);
        perplexity(&ss, ids, n, stdout);
        free(ids);
        free(text);
    } else {
        int n;
        int *ids = encode(&model, o.prompt ? o.prompt : "", model.gen.add_bos, &n);
        if (!ids) fatal("the prompt is not valid UTF-8");
        if (n == 0) fatal("the prompt is empty and the model has no BOS token to start from");
        if (n > seq_len) fatal("the prompt is %d tokens, longer than the context (%d; see -c)", n, seq_len);
        session_generate(&ss, ids, n, stdout, NULL);
        fputc('\n', stdout);
        print_stats(&ss.stats, stats);
        free(ids);
    }
    if (ss.dump_logits && fclose(ss.dump_logits) != 0) fatal("cannot write %s", o.dump_logits);
    session_free(&ss);
    model_close(&model);
    return 0;
}
#endif
