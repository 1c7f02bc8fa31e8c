/* simple_annealing: the paper's diagonal hyperschedule (docs/method.md "simple_annealing",
 * make_simple_annealing(w, τ)). One main step S_0[j] = round(j·(τ−1)/(w−1)), j < w, with Python's
 * round-half-to-even; each step the window S_0 slides right by z = (leading zeros of S_0)
 * positions, so w positions are active at once and every one walks S_0 backwards from τ−1 to 0.
 * Start-up steps 1..w−1 show the last s entries of S_0 (the reference's bootstrap). n_steps is the
 * reference's brute-force "first all-zero step" (= w − 1 + ⌈L/z⌉ except for L < z). Width 1 is
 * refused (see create). */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define SA_MAX (1 << 20) /* bound on width and tau: j·(τ−1) stays exact in a double */

typedef struct simple_annealing {
    int64_t width; /* w: positions active at once */
    int32_t tau;   /* τ: the worthless level W */
    int64_t z;     /* leading zeros of S_0: how far the settled prefix advances per step */
    int32_t *s0;   /* (w) the main step S_0 */
} simple_annealing;

static const hdlm_option sa_options[] = {
    {"width", HDLM_OPT_INTEGER, "16", "window width w: positions being denoised at once (>= 2)",
     NULL},
    {"tau", HDLM_OPT_INTEGER, "0", "number of levels tau (the worthless level W); 0 = width", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static void sa_destroy(void *self) {
    simple_annealing *s = self;
    if (!s) return;
    free(s->s0);
    free(s);
}

static int sa_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double w = 0, tau = 0;
    host->opt_number(opts, "width", &w); /* declared with defaults: always present */
    host->opt_number(opts, "tau", &tau);
    if (w == 1) {
        snprintf(err, err_cap,
                 "option 'width' must be >= 2, got 1: the reference fails there (S_0 = (tau-1) "
                 "has no clean level; tau = 1 divides by zero); for one token at a time use the "
                 "'autoregressive' schedule");
        return HDLM_EINVAL;
    }
    if (w < 2 || w > SA_MAX) {
        snprintf(err, err_cap, "option 'width' must be in 2..%d, got %g", SA_MAX, w);
        return HDLM_EINVAL;
    }
    if (tau == 0) tau = w;
    if (tau < 2 || tau > SA_MAX) {
        /* τ = 1 makes S_0 all zeros: no noise at all, and a division by zero in Δ = (1−2a)/(τ−1) */
        snprintf(err, err_cap, "option 'tau' must be in 2..%d (or 0 for tau = width), got %g",
                 SA_MAX, tau);
        return HDLM_EINVAL;
    }
    simple_annealing *s = calloc(1, sizeof *s);
    if (!s) return HDLM_ENOMEM;
    s->width = (int64_t)w;
    s->tau = (int32_t)tau;
    s->s0 = malloc((size_t)s->width * sizeof *s->s0);
    if (!s->s0) {
        sa_destroy(s);
        return HDLM_ENOMEM;
    }
    /* Python: round((j*(tau-1)) / (width-1)); the quotient is the correctly rounded double of
     * the exact ratio in both languages, and nearbyint rounds ties to even like round() */
    for (int64_t j = 0; j < s->width; j++)
        s->s0[j] = (int32_t)nearbyint((double)(j * (s->tau - 1)) / (double)(s->width - 1));
    s->z = 0;
    while (s->z < s->width && s->s0[s->z] == 0)
        s->z++;
    *self = s;
    return HDLM_OK;
}

static int32_t sa_n_levels(void *self) {
    return ((const simple_annealing *)self)->tau;
}

/* The reference's MS(s) for s >= 1: settled prefix n_s and the window R = S_0[r0 .. w). */
static void sa_window(const simple_annealing *s, int64_t step, int64_t *n_s, int64_t *r0) {
    if (step < s->width) { /* bootstrap B_s: the last s entries of S_0, nothing settled */
        *n_s = 0;
        *r0 = s->width - step;
    } else {
        *n_s = s->z * (step - s->width);
        *r0 = 0;
    }
}

/* First step whose length-L level vector is all zeros, searched over 1 .. L + τ + w like the
 * reference (which returns that bound when nothing is found; never the case for τ >= 2). */
static int64_t sa_n_steps(void *self, int64_t L) {
    const simple_annealing *s = self;
    if (L <= 0) return 0;
    int64_t limit = L + s->tau + s->width;
    for (int64_t step = 1; step <= limit; step++) {
        int64_t n_s, r0;
        sa_window(s, step, &n_s, &r0);
        int64_t zeros = r0 < s->z ? s->z - r0 : 0; /* leading zeros of the window */
        if (n_s + zeros >= L) return step;
    }
    return limit - 1;
}

static int sa_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    const simple_annealing *s = self;
    int64_t n = sa_n_steps(self, L);
    if (L < 0 || step < 0 || step > n) {
        snprintf(err, err_cap, "step %lld is outside 0..%lld (n_steps for L = %lld)",
                 (long long)step, (long long)n, (long long)L);
        return HDLM_EINVAL;
    }
    if (step == 0) { /* the initial state: everything fully noised */
        for (int64_t i = 0; i < L; i++)
            level[i] = s->tau;
        *n_settled = 0;
        return HDLM_OK;
    }
    int64_t n_s, r0;
    sa_window(s, step, &n_s, &r0);
    int64_t r_end = n_s + (s->width - r0); /* the window covers [n_s, r_end) */
    for (int64_t i = 0; i < L; i++)
        level[i] = i < n_s ? 0 : i < r_end ? s->s0[r0 + (i - n_s)] : s->tau;
    *n_settled = n_s < L ? n_s : L;
    return HDLM_OK;
}

static uint32_t sa_growth(void *self, int64_t *block) {
    (void)self;
    *block = 1;
    return HDLM_GROW_TOKENS;
}

static void sa_info(void *self, hdlm_info *info) {
    (void)self;
    info->flags = 0;
}

static const hdlm_schedule_ops sa_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = sa_info},
    .n_levels = sa_n_levels,
    .n_steps = sa_n_steps,
    .levels = sa_levels,
    .growth = sa_growth,
};

static const hdlm_plugin sa_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "simple_annealing",
    .version = "1.0.0",
    .summary = "simple annealing hyperschedule: a noise diagonal of w positions slides left to "
               "right, each token walking tau-1..0",
    .options = sa_options,
    .create = sa_create,
    .destroy = sa_destroy,
    .ops = &sa_ops,
};

HDLM_PLUGIN_DEFINE(sa_desc)
