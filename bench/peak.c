// bench/peak.c: the machine's multiply-add peak, in G multiply-adds per second.
//
//   bench/peak [seconds]      (default 0.1 s per timed pass)
//
// Runs independent chains of 16-lane float multiply-adds, acc = acc * m + a, that live
// in vector registers and touch no memory, on 1 thread and on omp_get_max_threads()
// threads (OMP_NUM_THREADS), and prints the best of 5 passes:
//
//   threads=1 GMACs=116.3 chains6=88.8 chains8=115.4 chains12=116.3
//   threads=2 GMACs=231.9 chains6=176.0 chains8=230.5 chains12=231.9
//
// GMACs is the best of the three chain counts. A multiply-add unit takes a few cycles
// per operation but starts a new one every cycle, so it needs (latency x units)
// independent chains to be kept busy: 8 on a core with two units of latency 4. More
// chains than vector registers spill to memory, which is why several counts are tried
// (12 chains of 16 lanes take 12 AVX-512 registers, or 24 of AVX2's 16).
//
// Each thread times itself in CPU time (CLOCK_THREAD_CPUTIME_ID), and the threads'
// rates are added: the peak of the cores, even while other processes share them (wall
// time would then count their turns too). Like bench/bandwidth.c for memory, it is
// plain C11 + OpenMP: the compiler vectorises the lane loop, so the peak is what a
// compiler and its flags reach, not a number from a data sheet. (GCC and clang use
// 256-bit vectors on many AVX-512 CPUs unless told -mprefer-vector-width=512: half the
// peak. bench/bench.sh measures both where the compiler takes that flag.)

#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LANES 16
#define MAX_CHAINS 12

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// `rounds` rounds of n_chains x LANES multiply-adds; returns the sum of the
// accumulators so that the work cannot be optimised away. m < 1 and a > 0 keep them
// finite and far from subnormal numbers (each tends to a / (1 - m)). One flat array
// with one loop over it: the compiler vectorises that loop along the array. (With
// acc[chain][lane] and two loops, clang 14 vectorised across the chains with gathers
// and scatters, 30x slower.) Always inlined into the functions below, where n_chains
// is a constant and the loop is unrolled into registers.
__attribute__((always_inline)) static inline float chains(int n_chains, long rounds, float m, float a) {
    float acc[MAX_CHAINS * LANES];
    int n = n_chains * LANES;
    for (int j = 0; j < n; j++) acc[j] = (float)j;
    for (long i = 0; i < rounds; i++)
        for (int j = 0; j < n; j++) acc[j] = acc[j] * m + a;
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += acc[j];
    return s;
}

// Not inlined into the parallel region: there GCC was seen to keep the accumulators
// in memory.
__attribute__((noinline)) static float chains6(long rounds, float m, float a) { return chains(6, rounds, m, a); }
__attribute__((noinline)) static float chains8(long rounds, float m, float a) { return chains(8, rounds, m, a); }
__attribute__((noinline)) static float chains12(long rounds, float m, float a) { return chains(12, rounds, m, a); }

typedef float (*Kernel)(long, float, float);

// G multiply-adds per second of k on t threads, each doing `rounds` rounds of
// n_chains x LANES: per thread the best of 5 passes (after a warm-up), added up.
static double best_gmacs(Kernel k, int n_chains, long rounds, int t, float m, float a, float *check) {
    double total = 0.0;
    float s = 0.0f;
#pragma omp parallel num_threads(t) reduction(+ : total, s)
    {
        double best = 1e30;
        for (int r = 0; r < 6; r++) {
            double t0 = cpu_seconds();
            s += k(rounds, m, a);
            double dt = cpu_seconds() - t0;
            if (r > 0 && dt < best) best = dt;
        }
        total += (double)rounds * n_chains * LANES / best / 1e9;
    }
    *check += s;
    return total;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.1;
    if (!(seconds > 0 && seconds < 100)) {
        fprintf(stderr, "usage: peak [seconds per pass]\n");
        return 2;
    }
    // m and a read through volatile: constants would let the compiler fold the chains
    volatile float mv = 0.999999f, av = 1e-6f;
    float m = mv, a = av, check = 0.0f;
    // rounds per pass: about `seconds` at the speed of a first short measurement
    double g0 = best_gmacs(chains8, 8, 1 << 14, 1, m, a, &check);
    long rounds = (long)(seconds * g0 * 1e9 / (8 * LANES)) + 1;
    int maxt = omp_get_max_threads();
    int counts[2] = {1, maxt};
    Kernel kernels[3] = {chains6, chains8, chains12};
    int n_chains[3] = {6, 8, 12};
    for (int c = 0; c < (maxt > 1 ? 2 : 1); c++) {
        double g[3], best = 0.0;
        for (int i = 0; i < 3; i++) {
            // the same time per pass for each count: fewer rounds of more chains
            g[i] = best_gmacs(kernels[i], n_chains[i], rounds * 8 / n_chains[i], counts[c], m, a, &check);
            if (g[i] > best) best = g[i];
        }
        printf("threads=%d GMACs=%.1f chains6=%.1f chains8=%.1f chains12=%.1f\n", counts[c], best, g[0], g[1], g[2]);
        fflush(stdout);
    }
    fprintf(stderr, "peak: %.2f s per pass, best of 5, checksum %g\n", seconds, (double)check);
    return 0;
}
