// format.c: the run.c model file (FORMAT.md) in code: the header's fields with the
// values run.c accepts, and the checks that a file is what the spec says: the kind of
// file, its size, the checksum, the ranges, the byte order. run.c includes it in its
// section 1, after the Model struct; run.c's model_open reads the file through it.

// The header, field by field, as FORMAT.md specifies it: where each field is, its type
// and the values this program accepts. Everything that reads the header (this file,
// the tests, the fuzzers) goes through this table; `export` checks the same limits
// before it writes a file, and a test holds the table, export and FORMAT.md together.
// Some limits depend on other fields (n_kv_heads divides n_heads, token ids lie below
// vocab_size): those are checked where the fields are read.
typedef enum { U32, I32, F32, U64 } FieldType;
typedef struct {
    const char *name;
    int offset;
    FieldType type;
    double lo, hi;  // the accepted range
} HeaderField;

#define HEADER_BYTES 256
#define TENSOR_ALIGN 64       // every tensor starts at a multiple of this offset
#define MAX_DIM (1 << 16)     // far above any model this program targets, far below
#define MAX_LAYERS 1024       // anything that could overflow size arithmetic in size_t
#define MAX_VOCAB (1 << 22)
#define MAX_SEQ (1 << 22)

enum {
    H_MAGIC, H_VERSION, H_HEADER_BYTES, H_DIM, H_HIDDEN_DIM, H_N_LAYERS, H_N_HEADS, H_N_KV_HEADS,
    H_HEAD_DIM, H_VOCAB_SIZE, H_MAX_SEQ_LEN, H_ROPE_THETA, H_NORM_EPS, H_ROPE_TYPE, H_ROPE_FACTOR,
    H_ROPE_LOW_FREQ_FACTOR, H_ROPE_HIGH_FREQ_FACTOR, H_ROPE_ORIGINAL_MAX_POS, H_QKV_BIAS,
    H_TIED_EMBEDDINGS, H_WEIGHT_TYPE, H_GROUP_SIZE, H_TOKENIZER_TYPE, H_PRETOKENIZER, H_NORMALIZER,
    H_IGNORE_MERGES, H_BOS_ID, H_ADD_BOS, H_N_MERGES, H_N_STOP, H_STOP_IDS, H_EOT_ID,
    H_CHAT_TEMPLATE, H_DEFAULT_SYSTEM_OFFSET, H_DEFAULT_SYSTEM_BYTES, H_TOKENS_OFFSET,
    H_MERGES_OFFSET, H_STRINGS_OFFSET, H_STRINGS_BYTES, H_WEIGHTS_OFFSET, H_FILE_BYTES,
    H_META_CRC32, H_WEIGHTS_CRC32, H_DEFAULT_TEMPERATURE, H_DEFAULT_TOP_P, H_DEFAULT_TOP_K,
    H_DEFAULT_REPETITION_PENALTY, N_HEADER_FIELDS
};

static const HeaderField HEADER[N_HEADER_FIELDS] = {
    [H_MAGIC] = {"magic", 0, U32, 0x434E5552, 0x434E5552},  // "RUNC"
    [H_VERSION] = {"version", 4, U32, 1, 1},
    [H_HEADER_BYTES] = {"header_bytes", 8, U32, HEADER_BYTES, HEADER_BYTES},
    [H_DIM] = {"dim", 16, U32, 1, MAX_DIM},
    [H_HIDDEN_DIM] = {"hidden_dim", 20, U32, 1, 8 * MAX_DIM},
    [H_N_LAYERS] = {"n_layers", 24, U32, 1, MAX_LAYERS},
    [H_N_HEADS] = {"n_heads", 28, U32, 1, MAX_DIM},
    [H_N_KV_HEADS] = {"n_kv_heads", 32, U32, 1, MAX_DIM},
    [H_HEAD_DIM] = {"head_dim", 36, U32, 2, MAX_DIM},
    [H_VOCAB_SIZE] = {"vocab_size", 40, U32, 1, MAX_VOCAB},
    [H_MAX_SEQ_LEN] = {"max_seq_len", 44, U32, 1, MAX_SEQ},
    [H_ROPE_THETA] = {"rope_theta", 48, F32, 1.0, 1e12},
    [H_NORM_EPS] = {"norm_eps", 52, F32, 0.0, 1.0},
    [H_ROPE_TYPE] = {"rope_type", 56, U32, ROPE_DEFAULT, ROPE_LLAMA3},
    [H_ROPE_FACTOR] = {"rope_factor", 60, F32, 1.0, 1e6},
    [H_ROPE_LOW_FREQ_FACTOR] = {"rope_low_freq_factor", 64, F32, 1e-6, 1e6},
    [H_ROPE_HIGH_FREQ_FACTOR] = {"rope_high_freq_factor", 68, F32, 1e-6, 1e6},
    [H_ROPE_ORIGINAL_MAX_POS] = {"rope_original_max_pos", 72, U32, 1, MAX_SEQ},
    [H_QKV_BIAS] = {"qkv_bias", 76, U32, 0, 1},
    [H_TIED_EMBEDDINGS] = {"tied_embeddings", 80, U32, 0, 1},
    [H_WEIGHT_TYPE] = {"weight_type", 84, U32, WEIGHT_F32, WEIGHT_Q8_0},
    [H_GROUP_SIZE] = {"group_size", 88, U32, 4, 64},
    [H_TOKENIZER_TYPE] = {"tokenizer_type", 92, U32, TOKENIZER_BYTE_BPE, TOKENIZER_SENTENCEPIECE},
    [H_PRETOKENIZER] = {"pretokenizer", 96, U32, PRETOK_NONE, PRETOK_QWEN2},
    [H_NORMALIZER] = {"normalizer", 100, U32, NORM_NONE, NORM_NFC},
    [H_IGNORE_MERGES] = {"ignore_merges", 104, U32, 0, 1},
    [H_BOS_ID] = {"bos_id", 108, I32, -1, MAX_VOCAB - 1},
    [H_ADD_BOS] = {"add_bos", 112, U32, 0, 1},
    [H_N_MERGES] = {"n_merges", 116, U32, 0, MAX_VOCAB},
    [H_N_STOP] = {"n_stop", 120, U32, 1, MAX_STOP},
    [H_STOP_IDS] = {"stop_ids", 124, I32, 0, MAX_VOCAB - 1},  // n_stop of them, i32[8]
    [H_EOT_ID] = {"eot_id", 156, I32, -1, MAX_VOCAB - 1},
    [H_CHAT_TEMPLATE] = {"chat_template", 160, U32, CHAT_NONE, CHAT_LLAMA3},
    [H_DEFAULT_SYSTEM_OFFSET] = {"default_system_offset", 164, U32, 0, 4294967295.0},
    [H_DEFAULT_SYSTEM_BYTES] = {"default_system_bytes", 168, U32, 0, 1 << 20},
    [H_TOKENS_OFFSET] = {"tokens_offset", 176, U64, HEADER_BYTES, 9007199254740992.0},
    [H_MERGES_OFFSET] = {"merges_offset", 184, U64, HEADER_BYTES, 9007199254740992.0},
    [H_STRINGS_OFFSET] = {"strings_offset", 192, U64, HEADER_BYTES, 9007199254740992.0},
    [H_STRINGS_BYTES] = {"strings_bytes", 200, U64, 0, 9007199254740992.0},
    [H_WEIGHTS_OFFSET] = {"weights_offset", 208, U64, HEADER_BYTES, 9007199254740992.0},
    [H_FILE_BYTES] = {"file_bytes", 216, U64, HEADER_BYTES, 9007199254740992.0},
    [H_META_CRC32] = {"meta_crc32", 224, U32, 0, 4294967295.0},
    [H_WEIGHTS_CRC32] = {"weights_crc32", 228, U32, 0, 4294967295.0},
    [H_DEFAULT_TEMPERATURE] = {"default_temperature", 232, F32, 0.0, 100.0},
    [H_DEFAULT_TOP_P] = {"default_top_p", 236, F32, 0.0, 1.0},
    [H_DEFAULT_TOP_K] = {"default_top_k", 240, U32, 0, MAX_VOCAB},
    [H_DEFAULT_REPETITION_PENALTY] = {"default_repetition_penalty", 244, F32, 0.0, 100.0},
};

// Reads field f (element i of an array field) and checks it against its range; a bad
// file ends the program naming the field.
static double header_get(const Model *m, int f, int i) {
    const HeaderField *h = &HEADER[f];
    const uint8_t *p = m->data + h->offset + 4 * i;
    double v;
    if (h->type == U32) v = read_u32(p);
    else if (h->type == I32) v = (int32_t)read_u32(p);
    else if (h->type == U64) v = (double)(read_u32(p) | (uint64_t)read_u32(p + 4) << 32);
    else {
        uint32_t u = read_u32(p);
        float x;
        memcpy(&x, &u, 4);
        v = x;
    }
    if (!(v >= h->lo && v <= h->hi))  // NaN fails too
        fatal("%s: header field %s = %.9g is out of range [%.9g, %.9g]", m->path, h->name, v, h->lo, h->hi);
    return v;
}

static int header_int(const Model *m, int f) { return (int)header_get(m, f, 0); }
static float header_float(const Model *m, int f) { return (float)header_get(m, f, 0); }
static uint64_t header_u64(const Model *m, int f) { return (uint64_t)header_get(m, f, 0); }

// Checks that [offset, offset + bytes) lies inside the file without overflowing.
static void check_range(const Model *m, uint64_t offset, uint64_t bytes, const char *what) {
    if (offset > m->size || bytes > m->size - offset)
        fatal("%s: %s (offset %llu, %llu bytes) lies outside the file (%zu bytes): truncated or corrupt",
              m->path, what, (unsigned long long)offset, (unsigned long long)bytes, m->size);
}

static int model_verify_weights(const Model *m) {
    uint64_t off = header_u64(m, H_WEIGHTS_OFFSET);
    return crc32_update(0, m->map + off, m->size - (size_t)off) == read_u32(m->map + HEADER[H_WEIGHTS_CRC32].offset);
}

// Opens path and maps it, refusing anything that is not a regular file of at least a
// header (a folder, a FIFO, a device) and a file too large for a 32-bit host.
static void map_model(Model *m) {
    const char *path = m->path;
    struct stat st;
    if (stat(path, &st) != 0) fatal("cannot open model file %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        fatal("%s is a folder, not a model file: pass the .bin file (e.g. %s.bin, as models/fetch writes it)",
              path, path);
    if (!S_ISREG(st.st_mode)) fatal("%s is not a regular file: pass a model file made by ./export", path);
    if (st.st_size < HEADER_BYTES) fatal("%s: too small to be a model file (%lld bytes)", path, (long long)st.st_size);
    if ((uint64_t)st.st_size > SIZE_MAX)
        fatal("%s: the file is too large for a 32-bit host (%lld bytes)", path, (long long)st.st_size);
    int fd = open(path, O_RDONLY);
    if (fd < 0) fatal("cannot open model file %s: %s", path, strerror(errno));
    m->size = (size_t)st.st_size;
    void *map = map_file(fd, m->size);
    int map_error = errno;
    close(fd);
    if (!map)
        fatal("cannot map %s (%zu bytes): %s%s", path, m->size, strerror(map_error),
              sizeof(size_t) < 8 && m->size > (size_t)1 << 31 ? ": the file is too large for a 32-bit host" : "");
    m->data = m->map = map;
}

// The file is little-endian, and a little-endian host uses the tokenizer tables and the
// weights in place, in the memory map. A big-endian host (s390x, PowerPC) works on a
// copy of the file instead, in which host_order() reverses the bytes of every 4-byte
// number of the token table, the merge table and the f32 tensors (weights, norms,
// biases, q8_0 scales); strings and int8 values are bytes and stay as they are. The
// header is read byte by byte (read_u32), which works on any host.
static void host_order(const Model *m, uint64_t offset, uint64_t words) {
    if (m->data == m->map) return;  // a little-endian host
    for (uint8_t *p = m->data + offset, *end = p + 4 * words; p < end; p += 4) {
        uint8_t b0 = p[0], b1 = p[1];
        p[0] = p[3], p[1] = p[2], p[2] = b1, p[3] = b0;
    }
}

// The tables and weights are used in place: floats must be IEEE-754 binary32, as in the file.
_Static_assert(sizeof(float) == 4 && FLT_RADIX == 2 && FLT_MANT_DIG == 24 && FLT_MAX_EXP == 128 &&
                   sizeof(TokenRecord) == 16,
               "run.c needs IEEE-754 binary32 floats and a 16-byte TokenRecord");

// Maps the file and checks what the header says of the file as a whole: the magic,
// the version, the size, where the parts lie, and the checksum of the header and the
// tokenizer (the weights have their own, checked by --verify: that reads every byte).
static void check_file(Model *m) {
    map_model(m);
    const char *path = m->path;
    if (memcmp(m->data, "RUNC", 4) != 0) fatal("%s: not a run.c model file (bad magic); convert it with ./export", path);
    uint32_t version = read_u32(m->data + HEADER[H_VERSION].offset);
    if (version != 1) fatal("%s: file format version %u, this program reads version 1", path, version);
    header_get(m, H_HEADER_BYTES, 0);
    uint64_t file_bytes = header_u64(m, H_FILE_BYTES), weights = header_u64(m, H_WEIGHTS_OFFSET);
    if (file_bytes != m->size)
        fatal("%s: the header says %llu bytes but the file has %zu: truncated or corrupt", path,
              (unsigned long long)file_bytes, m->size);
    check_range(m, weights, 0, "weights");
    if (weights % TENSOR_ALIGN) fatal("%s: bad weights_offset", path);
    check_range(m, header_u64(m, H_STRINGS_OFFSET), header_u64(m, H_STRINGS_BYTES), "strings");
    uint8_t head[HEADER_BYTES];
    memcpy(head, m->data, HEADER_BYTES);
    memset(head + HEADER[H_META_CRC32].offset, 0, 8);
    uint32_t crc = crc32_update(0, head, HEADER_BYTES);
    crc = crc32_update(crc, m->data + HEADER_BYTES, (size_t)weights - HEADER_BYTES);
    if (crc != read_u32(m->data + HEADER[H_META_CRC32].offset))
        fatal("%s: header/tokenizer checksum mismatch: the file is corrupt", path);
    if (big_endian_host()) {  // see host_order
        m->data = malloc(m->size);
        if (!m->data) fatal("out of memory (%zu bytes for %s in host byte order)", m->size, path);
        memcpy(m->data, m->map, m->size);
    }
}

// A token id field: -1 (none) where allowed, else an id of the vocabulary.
static int header_token(const Model *m, int f, int i) {
    int id = (int)header_get(m, f, i);
    if (id >= m->config.vocab_size)
        fatal("%s: header field %s = %d is not below vocab_size (%d)", m->path, HEADER[f].name, id,
              m->config.vocab_size);
    return id;
}
