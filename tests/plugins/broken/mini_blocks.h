/* A small block-annealing schedule (blocks of W_BLOCK = 4 positions denoised one after the other,
 * levels TAU - 1 .. 0, one per step; docs/method.md "block_annealing") shared by the broken
 * schedule fixtures of this folder. Each fixture defines one BROKEN_* macro before including it
 * to break exactly one promise of hdlm/plugin.h, which `hdlm plugins check` must name:
 *   BROKEN_RISE       the current block's level goes back up at its third step
 *   BROKEN_NEVER_ZERO each block takes TAU - 1 steps and stops at level 1
 *   BROKEN_N_STEPS    n_steps leaves out the last block (its positions stay worthless)
 *   BROKEN_SEGFAULT   levels writes through NULL at step 2
 *   BROKEN_CRASH_N_STEPS  n_steps writes through NULL at its crash_at-th call (an option): a crash
 *                     in an op without a status, which ends the process */
#ifndef MINI_BLOCKS_H
#define MINI_BLOCKS_H

#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

enum { W_BLOCK = 4, TAU = 4 };

#ifdef BROKEN_NEVER_ZERO
enum { PER_BLOCK = TAU - 1 };
#else
enum { PER_BLOCK = TAU };
#endif

/* Only BROKEN_CRASH_N_STEPS keeps state: its call count and crash_at. */
typedef struct mb_calls {
    long calls, crash_at;
} mb_calls;

static int mb_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    (void)args, (void)err, (void)err_cap;
    mb_calls *c = calloc(1, sizeof *c);
    if (!c) return HDLM_ENOMEM;
#ifdef BROKEN_CRASH_N_STEPS
    double at = 0;
    args->host->opt_number(args->opts, "crash_at", &at);
    c->crash_at = (long)at;
#endif
    *self = c;
    return HDLM_OK;
}

static void mb_destroy(void *self) {
    free(self);
}

static void mb_info(void *self, hdlm_info *info) {
    (void)self, (void)info;
}

static int32_t mb_n_levels(void *self) {
    (void)self;
    return TAU;
}

static int64_t mb_n_steps(void *self, int64_t L) {
    mb_calls *c = self;
    if (++c->calls == c->crash_at) {
        volatile int32_t *nowhere = NULL;
        *nowhere = 1; /* the bug this fixture stands for */
    }
    int64_t blocks = (L + W_BLOCK - 1) / W_BLOCK;
#ifdef BROKEN_N_STEPS
    blocks -= 1;
#endif
    return blocks * PER_BLOCK;
}

static int mb_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    (void)self, (void)err, (void)err_cap;
#ifdef BROKEN_SEGFAULT
    if (step == 2) {
        volatile int32_t *nowhere = NULL;
        *nowhere = 1; /* the bug this fixture stands for */
    }
#endif
    int64_t cur = step > 0 ? (step - 1) / PER_BLOCK : 0; /* the block being denoised */
    int64_t k = step > 0 ? (step - 1) % PER_BLOCK : -1;  /* its step inside the block */
    int32_t lv = step > 0 ? (int32_t)(TAU - 1 - k) : TAU;
#ifdef BROKEN_RISE
    if (k == 2) lv = TAU - 1; /* back up: 3, 2, 3, 0 */
#endif
    for (int64_t i = 0; i < L; i++) {
        int64_t b = i / W_BLOCK;
        level[i] = step == 0 ? TAU : b < cur ? 0 : b == cur ? lv : TAU;
    }
    int64_t ns = cur * W_BLOCK;
    *n_settled = step == 0 ? 0 : ns < L ? ns : L;
    return HDLM_OK;
}

static uint32_t mb_growth(void *self, int64_t *block) {
    (void)self;
    *block = W_BLOCK;
    return HDLM_GROW_BLOCKS;
}

static const hdlm_schedule_ops mb_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = mb_info},
    .n_levels = mb_n_levels,
    .n_steps = mb_n_steps,
    .levels = mb_levels,
    .growth = mb_growth,
};

#define MINI_BLOCKS_PLUGIN(id, text)                                                               \
    static const hdlm_plugin desc = {                                                              \
        .abi_version = HDLM_ABI_VERSION,                                                           \
        .struct_size = sizeof(hdlm_plugin),                                                        \
        .kind = HDLM_KIND_SCHEDULE,                                                                \
        .name = id,                                                                                \
        .version = "0.1.0",                                                                        \
        .summary = text,                                                                           \
        .create = mb_create,                                                                       \
        .destroy = mb_destroy,                                                                     \
        .ops = &mb_ops,                                                                            \
    };                                                                                             \
    HDLM_PLUGIN_DEFINE(desc)

#endif
