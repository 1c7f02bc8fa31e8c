/* Fewer threads on a crowded machine (base/threads.h): the halving/probing decision, the
 * OMP_DYNAMIC=false opt-out, that our threads' run-queue wait really grows when another process
 * takes our core, and the premise of adapting at all: the few-row products the sampling loop
 * caps (linear_set_gemv_threads) give bitwise the same logits, and so the same tokens, on 1 and on
 * 2 threads. */
#define _GNU_SOURCE
#include "base/rng.h"
#include "base/threads.h"
#include "check.h"
#include "nn/layers.h"
#include "nn/mask.h"
#include "nn/model.h"
#include "tensor/blas.h"

#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_decide(void) {
    /* loaded: halve, never below 1 */
    CHECK_EQ(threads_adapt_decide(2, 2, 0.5, 0), 1);
    CHECK_EQ(threads_adapt_decide(16, 16, 0.3, 0), 8);
    CHECK_EQ(threads_adapt_decide(2, 1, 0.9, 1), 1);
    /* quiet: keep, and at probe time double up to max */
    CHECK_EQ(threads_adapt_decide(2, 2, 0.05, 1), 2);
    CHECK_EQ(threads_adapt_decide(2, 1, 0.0, 0), 1);
    CHECK_EQ(threads_adapt_decide(2, 1, 0.0, 1), 2);
    CHECK_EQ(threads_adapt_decide(16, 4, 0.0, 1), 8);
    CHECK_EQ(threads_adapt_decide(16, 12, 0.0, 1), 16);
    /* the threshold itself is quiet */
    CHECK_EQ(threads_adapt_decide(4, 4, THREADS_ADAPT_WAIT, 0), 4);
}

static void test_switches(void) {
    threads_adapt a;
    setenv("OMP_DYNAMIC", "false", 1);
    threads_adapt_init(&a, 2);
    CHECK_EQ(a.enabled, 0);
    CHECK_EQ(threads_adapt_next(&a), 2);
    unsetenv("OMP_DYNAMIC");
    threads_adapt_init(&a, 1); /* nothing to adapt with one thread */
    CHECK_EQ(a.enabled, 0);
    threads_adapt_init(&a, 2);
    CHECK_EQ(a.enabled, threads_wait_seconds() >= 0);
    CHECK_EQ(a.max, 2);
    CHECK_EQ(a.cur, 2);
}

/* Pins this process and a busy child to one CPU for 0.4 s: half of that, our thread waits. */
static void test_wait_grows(void) {
    if (threads_wait_seconds() < 0) {
        printf("no /proc/self/task/*/schedstat here: run-queue wait not checked\n");
        return;
    }
    cpu_set_t one, old;
    CHECK_EQ(sched_getaffinity(0, sizeof old, &old), 0);
    int cpu = sched_getcpu();
    CPU_ZERO(&one);
    CPU_SET(cpu < 0 ? 0 : cpu, &one);
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    pid_t child = fork();
    if (child == 0) {
        for (;;) { /* busy until killed; inherits the one-CPU affinity */
        }
    }
    CHECK(child > 0);
    double w0 = threads_wait_seconds(), t0 = wall();
    volatile unsigned long spin = 0;
    while (wall() - t0 < 0.4)
        spin++;
    double waited = threads_wait_seconds() - w0, elapsed = wall() - t0;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK_EQ(sched_setaffinity(0, sizeof old, &old), 0);
    printf("sharing one CPU with a busy process: waited %.3f s of %.3f s\n", waited, elapsed);
    CHECK(waited > THREADS_ADAPT_WAIT * elapsed);
}

static void random_fill(model *m, rng *r) {
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = 0.08f * (2.0f * rng_uniform_f32(r) - 1.0f);
}

/* Logits of a KV-cached prefill and of one-token decoding steps (the few-row products) with the
 * few-row products on at most cap threads (0 = all). */
static void decode(model *m, int cap, float *step) {
    enum { B = 2, L = 48, P = 40 };
    error e = {0};
    linear_set_gemv_threads(cap);
    int32_t tok[B * L];
    attn_row rows[B * P];
    for (int i = 0; i < B * L; i++)
        tok[i] = (int32_t)((i * 37 + 11) % m->cfg.vocab);
    kv_cache kc;
    CHECK_EQ(kv_cache_init(&kc, m, B, L, &e), HDLM_OK);
    int32_t ctok[B * P], cpos[B * P];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < P; i++) {
            ctok[b * P + i] = tok[b * L + i];
            cpos[b * P + i] = i;
            rows[b * P + i] = (attn_row){0, i + 1, 0, 0};
        }
    model_batch pb = {B, P, ctok, cpos, NULL, rows, NULL, NULL, 0};
    float *lg;
    CHECK_EQ(model_forward_cached(m, &kc, &pb, 1, &lg, &e), HDLM_OK);
    for (int i = P; i < L; i++) {
        int32_t otok[B] = {tok[i], tok[L + i]}, opos[B] = {i, i};
        attn_row orow[B] = {{0, i + 1, 0, 0}, {0, i + 1, 0, 0}};
        model_batch ob = {B, 1, otok, opos, NULL, orow, NULL, NULL, 0};
        CHECK_EQ(model_forward_cached(m, &kc, &ob, 1, &lg, &e), HDLM_OK);
        memcpy(step + (size_t)(i - P) * B * m->cfg.vocab, lg,
               (size_t)B * m->cfg.vocab * sizeof *step);
    }
    kv_cache_free(&kc);
    linear_set_gemv_threads(0);
}

static void test_thread_invariance(void) {
    model_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 600; /* OC * C >= 65536: every linear layer of a step runs in parallel */
    c.d_model = 256;
    c.n_layer = 2;
    c.n_head = 4;
    c.seq_len = 48;
    c.mask_id = -1;
    model m;
    error e = {0};
    CHECK_EQ(model_init(&m, &c, 3, &e), HDLM_OK);
    rng r;
    rng_init(&r, 9);
    random_fill(&m, &r);
    size_t ns = (size_t)8 * 2 * c.vocab;
    float *s1 = malloc(ns * sizeof *s1), *s2 = malloc(ns * sizeof *s2);
    int keep = blas_get_threads();
    blas_set_threads(2);
    decode(&m, 1, s1);
    decode(&m, 0, s2);
    blas_set_threads(keep);
    CHECK(memcmp(s1, s2, ns * sizeof *s1) == 0);
    double d = 0;
    for (size_t i = 0; i < ns; i++)
        d += fabs((double)s1[i]);
    CHECK(d > 0); /* the logits are not all zero */
    free(s1), free(s2);
    model_free(&m);
}

int main(void) {
    test_decide();
    test_switches();
    test_wait_grows();
    test_thread_invariance();
    return check_report("test_threads");
}
