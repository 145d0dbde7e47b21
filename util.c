// util.c: what run.c needs that is not about the model: errors, growable text, UTF-8
// and JSON output, lines and files, bytes, and the few lines that differ between POSIX
// and Windows. run.c includes it after tokenizer.c, whose UTF-8 decoder it uses.

#include <ctype.h>
#include <fcntl.h>
#include <float.h>
#include <stdarg.h>
#include <sys/stat.h>
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <io.h>
#include <psapi.h>
#else
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#endif


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
        memset(t->data + t->len, 0, t->cap - t->len);  // no byte is ever read unset
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

// Python's str.strip() removes the characters of str.isspace(): Unicode White_Space
// (tokenizer.c's CHAR_SPACE, e.g. U+00A0, U+3000) and U+001C..U+001F.
static int is_python_space(const char *s, size_t n) {   // the character at s[0..n), n >= 1
    uint32_t cp;
    return utf8_decode_char(s, n, &cp) == (int)n && (char_class(cp) == CHAR_SPACE || (cp >= 0x1C && cp <= 0x1F));
}

// Appends s with the whitespace at both ends removed, as Python's s.strip() does.
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

// Writes out what is buffered for out. A reader that went away (`run ... | head -c 10`)
// ends the program quietly: SIGPIPE does it where signals exist, this where the write
// just fails with EPIPE. Any other failed write (a full disk) is an error.
static void flush_or_exit(FILE *out) {
    errno = 0;
    if (fflush(out) == 0 && !ferror(out)) return;
    if (errno == EPIPE) _Exit(0);
    fatal("cannot write %s: %s", out == stdout ? "to standard output" : "the output",
          errno ? strerror(errno) : "write error");
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

// Appends s to t as a JSON string; bytes that are not valid UTF-8 become U+FFFD.
static void text_append_json(Text *t, const char *s, size_t n) {
    text_puts(t, "\"");
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        int len = utf8_decode_char(s + i, n - i, &cp);
        char esc[8];
        if (len == 0) {
            text_puts(t, REPLACEMENT);
            i += utf8_subpart(s + i, n - i);
            continue;
        }
        if (c == '"' || c == '\\') snprintf(esc, sizeof(esc), "\\%c", c);
        else if (c == '\n') snprintf(esc, sizeof(esc), "\\n");
        else if (c == '\t') snprintf(esc, sizeof(esc), "\\t");
        else if (c == '\r') snprintf(esc, sizeof(esc), "\\r");
        else if (c < 0x20) snprintf(esc, sizeof(esc), "\\u%04x", c);
        else esc[0] = '\0';
        if (esc[0]) text_puts(t, esc);
        else text_append(t, s + i, (size_t)len);
        i += (size_t)len;
    }
    text_puts(t, "\"");
}

// Writes s to f as a JSON string (token pieces, answers: spaces and newlines visible).
static void write_json_string(FILE *f, const char *s, size_t n) {
    Text t = {0};
    text_append_json(&t, s, n);
    fwrite(t.data, 1, t.len, f);
    text_free(&t);
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

// The whole of a file (malloc'ed, NUL-terminated) and its size in *size: a NUL byte
// inside it makes strlen smaller.
static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    Text t = {0};
    char buf[65536];
    size_t got;
    text_append(&t, "", 0);
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) text_append(&t, buf, got);
    if (ferror(f)) fatal("cannot read %s", path);
    fclose(f);
    *size = t.len;
    return t.data;
}

static uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), so export can use zlib.crc32.
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static int big_endian_host(void) {
    const uint32_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 0;
}

// Writes n floats little-endian, like every file of this program (--dump-logits): as
// they are on a little-endian host, byte by byte on a big-endian one.
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

// ----------------------------------------------------------------------------
// Command-line values: a number in range, or one clear line and exit 1

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

// ----------------------------------------------------------------------------
// The operating system: POSIX (Linux, macOS, the BSDs) or Windows (mingw-w64).
// Everything else is standard C11; these few functions are all that differ.

#ifdef _WIN32

// The whole file open as fd, mapped read-only; NULL if that fails.
static void *map_file(int fd, size_t size) {
    HANDLE mapping = CreateFileMappingA((HANDLE)_get_osfhandle(fd), NULL, PAGE_READONLY, 0, 0, NULL);
    void *p = mapping ? MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, size) : NULL;
    if (mapping) CloseHandle(mapping);  // the view keeps the mapping alive
    if (!p) errno = ENOMEM;
    return p;
}

static void map_populate(void *p, size_t size) {
    (void)p;
    (void)size;
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
    return p;
}

// Reads and maps every page now, once the file has been checked, rather than take a
// page fault at the first touch of each page during the first token.
static void map_populate(void *p, size_t size) {
#ifdef MADV_POPULATE_READ
    madvise(p, size, MADV_POPULATE_READ);
#else
    (void)p;
    (void)size;
#endif
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
