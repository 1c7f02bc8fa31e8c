/* hdlm plugin ABI: the only header a plugin includes.
 *
 * A plugin is a shared object exporting one symbol, hdlm_plugin_entry(), that returns descriptors
 * (index 0, 1, ... until NULL). The host checks abi_version, struct_size, kind and name uniqueness
 * before it uses anything else in a descriptor. Three kinds exist: noise processes, hyperschedules
 * and samplers; each has an ops table whose first field is its own struct_size.
 *
 * Rules (MUST / MUST NOT):
 * - A plugin MUST keep all mutable state in its own `self` (made by create, released by destroy);
 *   no mutable globals.
 * - A plugin MUST NOT exit, abort or print on bad input: it returns a negative status and writes a
 *   message (one line, naming the option or value and what was expected) into the host's buffer.
 * - Buffers passed to a plugin are lent for the duration of one call only.
 * - Random numbers come from the host (host->uniform/host->random_u64 on the rng handle passed in);
 *   a plugin that draws from anything else breaks the run's determinism.
 * - Fields are only ever appended to the structs below; an incompatible change bumps
 *   HDLM_ABI_VERSION.
 */
#ifndef HDLM_PLUGIN_H
#define HDLM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define HDLM_ABI_VERSION 1u /* bump on any incompatible change; never reuse a value */

#if defined(__GNUC__)
#define HDLM_EXPORT __attribute__((visibility("default")))
#else
#define HDLM_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes shared by host and plugins ---- */
enum {
    HDLM_OK = 0,
    HDLM_ENOMEM = -1,
    HDLM_EINVAL = -2, /* bad option / argument value */
    HDLM_EIO = -3,
    HDLM_EPLUGIN = -4, /* plugin refused or failed */
    HDLM_EDB = -5,
    HDLM_ELUA = -6,
    HDLM_ESTATE = -7, /* operation not valid in the current state */
};

/* ---- kinds ---- */
enum { HDLM_KIND_NOISE = 1, HDLM_KIND_SCHEDULE = 2, HDLM_KIND_SAMPLER = 3 };

/* ---- documented options ---- */
enum {
    HDLM_OPT_NUMBER = 1,  /* double */
    HDLM_OPT_INTEGER = 2, /* double holding an integer value; the host checks integrality */
    HDLM_OPT_STRING = 3,
    HDLM_OPT_BOOL = 4, /* read with opt_number: 0 or 1 */
};

/* hdlm_option has no size field: adding a field to it changes the array stride and needs an ABI
 * version bump. */
typedef struct hdlm_option {
    const char *name;  /* NULL terminates the array */
    uint32_t type;     /* HDLM_OPT_* */
    const char *def;   /* default as text ("0.01", "loglinear", "true"); NULL = required */
    const char *help;  /* one line shown by `hdlm plugins` */
    const char *allow; /* for strings: "|"-separated allowed values, or NULL for any */
} hdlm_option;

/* ---- services lent by the host ---- */
enum { HDLM_LOG_DEBUG = 0, HDLM_LOG_INFO = 1, HDLM_LOG_WARN = 2, HDLM_LOG_ERROR = 3 };

typedef struct hdlm_host {
    uint32_t struct_size; /* a plugin MUST NOT use fields past this size */
    uint32_t abi_version;
    double (*uniform)(void *rng);      /* U[0,1) with 53 random bits, from the run's seed */
    uint64_t (*random_u64)(void *rng); /* 64 random bits */
    /* Options were validated against the plugin's hdlm_option table and defaults filled in, so a
     * declared key is always found. Both return 0 when found, HDLM_EINVAL otherwise. */
    int (*opt_number)(const void *opts, const char *key, double *out);
    int (*opt_string)(const void *opts, const char *key, const char **out);
    void (*log)(void *log_ctx, int level, const char *msg);
    void *log_ctx;
} hdlm_host;

/* ---- position states (hyperschedule, docs/method.md "Levels, steps and states") ---- */
enum { HDLM_SETTLED = 0, HDLM_ACTIVE = 1, HDLM_WORTHLESS = 2 };

/* ---- schedule kind ---- */
/* How the settled prefix grows; tells the core which KV cache and vectorised layout are exact. */
enum {
    HDLM_GROW_BLOCKS = 1, /* settles whole blocks of `block` positions at once */
    HDLM_GROW_TOKENS = 2, /* settles token by token */
};
enum {
    /* Continuous time (MDLM-style training): instead of drawing a step, the core draws one
     * t ~ U[eps, 1) per sequence for every position, all active. Generation still uses levels. */
    HDLM_SCHEDULE_CONTINUOUS = 1u << 0,
};

typedef struct hdlm_schedule_ops {
    uint32_t struct_size;
    uint32_t flags; /* HDLM_SCHEDULE_* */
    /* W: the worthless level (tau). Levels are integers 0 (clean) .. W (fully noised). */
    int32_t (*n_levels)(void *self);
    /* Number of generation steps run for length L (steps are numbered 1 .. n_steps). */
    int64_t (*n_steps)(void *self, int64_t L);
    /* Level of every position at `step` (0 <= step <= n_steps) and the settled prefix length
     * (docs/method.md "Levels, steps and states": positions [0, n_settled) are settled; level W is
     * worthless; the rest active). */
    int (*levels)(void *self, int64_t step, int64_t L, int32_t *level /* (L) */, int64_t *n_settled,
                  char *err, size_t err_cap);
    /* HDLM_GROW_*; *block receives the block size for HDLM_GROW_BLOCKS (else 1). */
    uint32_t (*growth)(void *self, int64_t *block);
} hdlm_schedule_ops;

/* ---- noise kind ---- */
enum {
    HDLM_NOISE_SCORE = 1u << 0,       /* model outputs are log concrete scores (γ family) */
    HDLM_NOISE_CONDITIONED = 1u << 1, /* the model takes per-token σ conditioning */
};

/* One micro-batch of B sequences of L positions, V real tokens, Vp = V + n_extra model outputs
 * (the extra symbols — the mask — have ids V, V+1, ...). Every op reads the fields it documents
 * and writes only its outputs; all arrays are lent for the call. */
typedef struct hdlm_noise_batch {
    uint32_t struct_size;
    int64_t B, L;
    int32_t V, Vp;
    int64_t block;    /* block width w of the hyperschedule (L for one block) */
    int32_t annealed; /* 1: per-position times from a hyperschedule (docs/method.md "epsilon_hybrid"
                         annealed losses); 0: continuous time, one t per sequence */
    const int32_t *x0;    /* (B, L) clean tokens (NULL for reverse/limit) */
    int32_t *xt;          /* (B, L) noised tokens: written by corrupt and limit, read otherwise */
    const float *t;       /* (B, L) time of each position, in (0, 1) */
    const float *s;       /* (B, L) next, less noisy time (reverse, bound); NULL otherwise */
    const uint8_t *state; /* (B, L) HDLM_SETTLED / ACTIVE / WORTHLESS */
    const float *logits;  /* (B, L, Vp) raw model output */
    float *loss;          /* (B, L) loss: per-token contribution to `total` */
    float *dlogits;       /* (B, L, Vp) loss: d(total)/d(logits), overwritten; NULL = none */
    double total;         /* loss: the batch loss (already normalised by the plugin) */
    double *probs;        /* (B, L, Vp) reverse: p(x_s = y | x_t) for ACTIVE positions, float64 */
    double *bound;        /* (B, L) bound: per-position term of the NLL upper bound (nats) */
    void *rng;            /* corrupt, limit: draw only through host->uniform(rng) */
} hdlm_noise_batch;

/* Noise plugins receive one option they do not declare: "vocab" (integer >= 2), the number V of
 * real tokens, set by the host from the corpus (or by the user when inspecting from Lua). */
typedef struct hdlm_noise_ops {
    uint32_t struct_size;
    uint32_t flags;                 /* HDLM_NOISE_* */
    int32_t (*n_extra)(void *self); /* extra symbols after the V real ones (mask: 1) */
    /* Forward corruption: b->xt from b->x0, b->t, b->state (docs/method.md "Noise processes"). */
    int (*corrupt)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Conditioning signal per position (σ of docs/method.md "gamma_hybrid"); NULL when the process
     * has none. */
    int (*conditioning)(void *self, size_t n, const float *t, float *sigma, char *err,
                        size_t err_cap);
    /* Training loss and its gradient with respect to the logits (docs/method.md "Noise processes").
     */
    int (*loss)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Reverse-step probabilities from time t to s for ACTIVE positions (docs/method.md "Sampling"),
     * float64. */
    int (*reverse)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Initial (limit) state: fills b->xt with draws from the fully-noised distribution. */
    int (*limit)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Per-position terms of a valid NLL upper bound for the transition t -> s of every ACTIVE
     * position given the clean tokens (x0) and the noised input the model saw (xt). */
    int (*bound)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Exact forward marginal q(x_t = y | x_0) over the Vp symbols, float64 (docs/method.md "Noise
     * processes"). */
    int (*marginal)(void *self, int32_t x0, double t, double *probs, char *err, size_t err_cap);
    /* ---- appended after ABI 1.0; read only when struct_size covers the field ---- */
    /* Optional (NULL: corrupt is used). x_t ~ q(x_t | x0) of the chain that `reverse` runs
     * backwards, for the bound — when training noises more than generation undoes (ε-hybrid:
     * corrupt also swaps visible tokens, its reverse chain only unmasks). */
    int (*bound_corrupt)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Optional (NULL: 0). The prior term of the bound: KL( q(x_1 | x0) || start ) in nats for one
     * position with clean token x0, where q(x_1 | x0) is the forward marginal at t = 1 and `start`
     * the distribution `limit` draws from. The bound adds it once per position. Zero when limit
     * draws exactly from the t = 1 marginal (absorbing: all masks). May return an error (with a
     * message) when the KL is infinite. */
    int (*prior)(void *self, int32_t x0, double *kl, char *err, size_t err_cap);
} hdlm_noise_ops;

/* The size of hdlm_noise_ops before bound_corrupt was appended: what the host requires. */
#define HDLM_NOISE_OPS_MIN_SIZE offsetof(hdlm_noise_ops, bound_corrupt)

/* ---- sampler kind ---- */
enum { HDLM_EVENT_UNMASK = 1, HDLM_EVENT_CORRECT = 2, HDLM_EVENT_REMASK = 3 };

typedef struct hdlm_sampler_ctx {
    uint32_t struct_size;
    int64_t B, L;
    int32_t V, Vp;
    int32_t mask_id; /* -1 when the process has no mask symbol */
    int64_t step, n_steps;
    int32_t *x;           /* (B, L) current tokens; the sampler updates non-fixed ones */
    const uint8_t *state; /* (B, L) */
    const uint8_t *fixed; /* (B, L) 1 = prompt/infill position: MUST NOT change */
    const float *t_now;   /* (B, L) */
    const float *t_next;  /* (B, L) */
    const float *logits;  /* (B, L, Vp) model output at this step */
    const double *probs;  /* (B, L, Vp) the noise process's reverse probabilities (ACTIVE) */
    void *rng;
    void *core; /* opaque; pass back to the callbacks below */
    /* Draw from probs[n] (unnormalised, >= 0) with the run's temperature/top-k/top-p, float64. */
    int32_t (*draw)(void *core, const double *probs, int32_t n);
    /* Report a change (kind HDLM_EVENT_*). */
    void (*event)(void *core, int64_t b, int64_t i, int32_t old_tok, int32_t new_tok, double p,
                  int kind);
    /* ---- appended after ABI 1.0; present when struct_size covers the field ---- */
    /* α(t): the probability that a real token is still itself or another real token (not masked)
     * at time t under the noise process's forward marginal; 1 for processes without a mask. */
    double (*alpha)(void *core, double t);
} hdlm_sampler_ctx;

typedef struct hdlm_sampler_ops {
    uint32_t struct_size;
    uint32_t needs; /* HDLM_NOISE_* flags the noise process must have (e.g. SCORE) */
    int (*step)(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap);
} hdlm_sampler_ops;

/* ---- the descriptor ---- */
typedef struct hdlm_plugin {
    uint32_t abi_version;       /* MUST be HDLM_ABI_VERSION */
    uint32_t struct_size;       /* MUST be sizeof(hdlm_plugin) as built */
    uint32_t kind;              /* HDLM_KIND_* */
    const char *name;           /* unique across all loaded plugins: "block_annealing" */
    const char *version;        /* the plugin's own version, recorded with every run that uses it */
    const char *summary;        /* one line */
    const hdlm_option *options; /* array terminated by {NULL}; may be NULL for none */
    /* Make an instance. Returns HDLM_OK or a negative status with a message in err. */
    int (*create)(const hdlm_host *host, const void *opts, void **self, char *err, size_t err_cap);
    void (*destroy)(void *self); /* MUST accept NULL */
    const void *ops;             /* hdlm_noise_ops / hdlm_schedule_ops / hdlm_sampler_ops */
} hdlm_plugin;

typedef const hdlm_plugin *(*hdlm_plugin_entry_fn)(uint32_t index);

/* The one exported symbol: descriptors 0..n-1, then NULL. */
#define HDLM_PLUGIN_ENTRY_SYMBOL "hdlm_plugin_entry"

/* Convenience for the one-descriptor case. */
#define HDLM_PLUGIN_DEFINE(desc)                                                                   \
    HDLM_EXPORT const hdlm_plugin *hdlm_plugin_entry(uint32_t index);                              \
    HDLM_EXPORT const hdlm_plugin *hdlm_plugin_entry(uint32_t index) {                             \
        return index == 0 ? &(desc) : NULL;                                                        \
    }

#ifdef __cplusplus
}
#endif
#endif /* HDLM_PLUGIN_H */
