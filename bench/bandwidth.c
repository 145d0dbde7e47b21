// bandwidth: the machine's memory READ bandwidth in GB/s (10^9 bytes/s).
//
//   bench/bandwidth [MiB] [runs]      (default 1024 MiB, 5 runs)
//
// Reads a buffer of int64 much larger than the last-level cache, for 1 thread and for
// omp_get_max_threads() threads (OMP_NUM_THREADS), with two kernels as a cross-check:
//   sum   an OpenMP reduction(+) the compiler vectorizes (integer addition is associative)
//   xor8  8 independent xor accumulators per thread (unrolled by hand, also vectorized)
// and prints the best of `runs` passes, one line per thread count; read_GBps is the
// better of the two kernels:
//
//   threads=1 read_GBps=31.2 sum=31.2 xor8=30.9
//   threads=2 read_GBps=58.9 sum=58.9 xor8=58.1
//
// The buffer is first-touched by the same static schedule the reads use, and the sum is
// printed (to stderr) so that the reads cannot be optimized away. It is in 2 MB pages
// where the system gives them (Linux: MADV_HUGEPAGE), as ./run asks for its model file:
// with 4 KB pages the same reads can be much slower (TLB misses; the prefetcher stops at
// every page boundary), and the ceiling would then be too low.

#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <sys/mman.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t sum_all(const int64_t *restrict a, size_t n, int threads) {
    int64_t s = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i];
    return s;
}

static int64_t xor8_all(const int64_t *restrict a, size_t n, int threads) {
    int64_t x = 0;
    size_t blocks = n / 8;
#pragma omp parallel num_threads(threads) reduction(^ : x)
    {
        int64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0, x4 = 0, x5 = 0, x6 = 0, x7 = 0;
#pragma omp for schedule(static)
        for (size_t b = 0; b < blocks; b++) {
            const int64_t *p = a + 8 * b;
            x0 ^= p[0]; x1 ^= p[1]; x2 ^= p[2]; x3 ^= p[3];
            x4 ^= p[4]; x5 ^= p[5]; x6 ^= p[6]; x7 ^= p[7];
        }
        x ^= x0 ^ x1 ^ x2 ^ x3 ^ x4 ^ x5 ^ x6 ^ x7;
    }
    for (size_t i = blocks * 8; i < n; i++) x ^= a[i];
    return x;
}

typedef int64_t (*Kernel)(const int64_t *restrict, size_t, int);

// Best GB/s of `runs` timed passes of k with t threads (after one untimed warm-up).
static double best_gbps(Kernel k, const int64_t *a, size_t n, int t, int runs, int64_t *check) {
    *check += k(a, n, t);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        *check += k(a, n, t);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return (double)(n * sizeof(int64_t)) / best / 1e9;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (mib < 1 || runs < 1) {
        fprintf(stderr, "usage: bandwidth [MiB] [runs]\n");
        return 2;
    }
    size_t n = mib * 1024 * 1024 / sizeof(int64_t);
    size_t huge = 2 * 1024 * 1024;
    int64_t *a = aligned_alloc(huge, (n * sizeof(int64_t) + huge - 1) / huge * huge);
    if (!a) {
        fprintf(stderr, "bandwidth: cannot allocate %zu MiB\n", mib);
        return 1;
    }
#ifdef MADV_HUGEPAGE
    madvise(a, n * sizeof(int64_t), MADV_HUGEPAGE);
#endif
    int maxt = omp_get_max_threads();
#pragma omp parallel for num_threads(maxt) schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (int64_t)(i * 2654435761u);

    int counts[2] = {1, maxt};
    int64_t check = 0;
    for (int c = 0; c < (maxt > 1 ? 2 : 1); c++) {
        int t = counts[c];
        double gs = best_gbps(sum_all, a, n, t, runs, &check);
        double gx = best_gbps(xor8_all, a, n, t, runs, &check);
        printf("threads=%d read_GBps=%.1f sum=%.1f xor8=%.1f\n", t, gs > gx ? gs : gx, gs, gx);
        fflush(stdout);
    }
    fprintf(stderr, "bandwidth: %zu MiB, best of %d, checksum %lld\n", mib, runs,
            (long long)check);
    free(a);
    return 0;
}
