// Small helpers shared by the C tests.
#ifndef TEST_UTIL_H
#define TEST_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *v;
    int n, cap;
} IntList;

static void intlist_push(IntList *l, int x) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, (size_t)l->cap * sizeof(int));
        if (!l->v) { fprintf(stderr, "out of memory\n"); exit(2); }
    }
    l->v[l->n++] = x;
}

// Appends the whitespace-separated integers of s.
static void intlist_parse(IntList *l, const char *s) {
    char *end;
    for (;;) {
        long x = strtol(s, &end, 10);
        if (end == s) break;
        intlist_push(l, (int)x);
        s = end;
    }
}

static void intlist_free(IntList *l) {
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

// Reads exactly n little-endian float32 values, on a host of either byte order.
static float *read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *x = malloc(n * sizeof(float) + 1);
    size_t got = x ? fread(x, sizeof(float), n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) { free(x); return NULL; }
    for (size_t i = 0; i < n; i++) {   // little-endian bytes -> host float
        const unsigned char *b = (const unsigned char *)&x[i];
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&x[i], &u, sizeof(u));
    }
    return x;
}
#endif
