/* hdlm plugin ABI 2: the only header a plugin includes. docs/writing-plugins.md is the guide.
 *
 * A plugin is a shared object exporting one symbol, hdlm_plugin_entry(), that returns descriptors
 * (index 0, 1, ... until NULL). Three kinds exist: noise processes, hyperschedules and samplers.
 * Each descriptor points to an ops table of its kind; every ops table starts with an
 * hdlm_ops_head (its own size, the per-instance `info` op and the `extension` hook).
 *
 * The contract. The host checks what it can when it loads a file and refuses the whole file on
 * the first violation, with one message naming the file:
 * - A descriptor MUST set abi_version = HDLM_ABI_VERSION and struct_size = sizeof(hdlm_plugin).
 *   The host reads only those two fields before checking them.
 * - Every ops table MUST set head.struct_size = sizeof(its ops struct) as built. The host refuses
 *   a table shorter than the kind's HDLM_*_OPS_MIN_SIZE and MUST NOT read past head.struct_size.
 * - Structs only ever grow at the end; a field is never removed, moved or retyped without a new
 *   HDLM_ABI_VERSION. A host reads an appended field only when the struct_size covers it.
 * - Required ops (those not marked optional) MUST be non-NULL; optional ops MAY be NULL.
 * - A plugin MUST keep all mutable state in its own `self` (made by create, released by destroy);
 *   it MUST NOT have mutable globals. Different instances MAY be used from different threads; one
 *   instance is used by one thread at a time, except for the ops a flag in `info` declares safe
 *   to call concurrently (HDLM_INFO_CONCURRENT).
 * - A plugin MUST NOT exit, abort, print, or raise signals on bad input: it returns a negative
 *   status and writes a one-line message (naming the option or value and what was expected) into
 *   the err buffer it is given. Logging goes through host->log only.
 * - Buffers passed to an op are lent for the duration of that call only; the plugin MUST NOT
 *   keep pointers to them. It MUST NOT write any array it is not told to write.
 * - Random numbers MUST come from the host (host->uniform / host->random_u64 on the rng handle of
 *   the call); anything else breaks the run's determinism.
 * - A crash (segfault, bus error, FPE, illegal instruction) inside an op is caught by the host,
 *   reported as "plugin X crashed in op Y" and fails the run; the instance is not used again.
 */
#ifndef HDLM_PLUGIN_H
#define HDLM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define HDLM_ABI_VERSION 2u /* bump on any incompatible change; never reuse a value */

#if defined(__GNUC__)
#define HDLM_EXPORT __attribute__((visibility("default")))
#else
#define HDLM_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes a plugin returns (the host has more of its own, never seen by plugins) ---- */
enum {
    HDLM_OK = 0,
    HDLM_ENOMEM = -1,
    HDLM_EINVAL = -2, /* bad option / argument value */
    HDLM_EIO = -3,
    HDLM_EPLUGIN = -4, /* plugin refused or failed */
    HDLM_ESTATE = -7,  /* operation not valid in the current state */
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
 * version bump. Names are 1-64 characters from a-z, 0-9 and _ and MUST be unique. */
typedef struct hdlm_option {
    const char *name;  /* NULL terminates the array */
    uint32_t type;     /* HDLM_OPT_* */
    const char *def;   /* default as text ("0.01", "loglinear", "true"); NULL = required */
    const char *help;  /* one line shown by `hdlm plugins` */
    const char *allow; /* for strings: "|"-separated allowed values, or NULL for any */
} hdlm_option;

/* ---- services lent by the host ---- */
enum { HDLM_LOG_DEBUG = 0, HDLM_LOG_INFO = 1, HDLM_LOG_WARN = 2, HDLM_LOG_ERROR = 3 };

/* One table per instance (log_ctx names the instance), valid from create until destroy. */
typedef struct hdlm_host {
    uint32_t struct_size; /* a plugin MUST NOT use fields past this size */
    uint32_t abi_version;
    double (*uniform)(void *rng);      /* U[0,1) with 53 random bits, from the run's seed */
    uint64_t (*random_u64)(void *rng); /* 64 random bits */
    /* Options were validated against the plugin's hdlm_option table and defaults filled in, so a
     * declared key is always found. Both return 0 when found, HDLM_EINVAL otherwise. */
    int (*opt_number)(const void *opts, const char *key, double *out);
    int (*opt_string)(const void *opts, const char *key, const char **out);
    /* One line, no newline; the host prefixes it with the instance's name. */
    void (*log)(void *log_ctx, int level, const char *msg);
    void *log_ctx;
    /* The cross-entropy of class y (0 <= y < n) under n logits, logsumexp(lg) - lg[y], in double
     * (the host's vectorised double exps, within a few ulp, summed in double). With dl,
     * it also writes dl[v] = g·(softmax(lg)[v] - [v = y]) for all n (one exp per logit). Safe to
     * call from any thread. Present when HDLM_HOST_HAS(host, softmax_ce). */
    double (*softmax_ce)(const float *lg, int32_t n, int32_t y, double g, float *dl);
} hdlm_host;

#define HDLM_HOST_HAS(host, field)                                                                 \
    ((host)->struct_size >= offsetof(hdlm_host, field) + sizeof((host)->field))

/* ---- creation ---- */
/* What create receives. Everything is lent until destroy (the plugin MAY keep the pointers). */
typedef struct hdlm_create_args {
    uint32_t struct_size; /* a plugin MUST NOT read fields past this size */
    const hdlm_host *host;
    const void *opts;     /* read with host->opt_number / host->opt_string */
    const char *instance; /* this instance's name in messages, e.g. "absorbing#1" */
    /* Noise: V, the number of real tokens (>= 2, checked by the host). Samplers: V of the noise
     * process they will run with, or 0 when not known yet. Schedules: 0. */
    int32_t vocab;
    /* Samplers: the extra symbols of the noise process (ids V .. V+n_extra-1) and its mask id (-1:
     * none), or n_extra = -1 when not known yet. The step's ctx repeats them. Others: -1, -1. */
    int32_t n_extra;
    int32_t mask_id;
} hdlm_create_args;

/* ---- per-instance facts ---- */
enum {
    /* schedule: continuous-time training (MDLM-style): instead of drawing a step, the core draws
     * one t ~ U[eps, 1) per sequence for every position, all active. Generation still uses
     * levels. */
    HDLM_INFO_CONTINUOUS = 1u << 0,
    /* noise: the model outputs log concrete scores (γ family) */
    HDLM_INFO_SCORE = 1u << 1,
    /* noise: the model takes per-token σ conditioning (the `conditioning` op MUST be non-NULL) */
    HDLM_INFO_CONDITIONED = 1u << 2,
    /* noise: input_mix below is set (the model mixes the mask embedding in with weight e^{-γσ}) */
    HDLM_INFO_INPUT_MIX = 1u << 3,
    /* noise: `loss` MAY be called on this instance from several threads at once, each call on its
     * own batch (the op reads self and writes only its batch's outputs). The core then spreads
     * a training batch's sequences over its threads; without the flag it calls them one by one. */
    HDLM_INFO_CONCURRENT = 1u << 4,
};

/* Filled by the `info` op. The host zero-fills it and sets struct_size to the size it knows; the
 * plugin MUST NOT write fields past info->struct_size (HDLM_INFO_HAS tells). The answer MUST NOT
 * change during the instance's life. */
typedef struct hdlm_info {
    uint32_t struct_size;
    uint32_t flags;   /* HDLM_INFO_* that hold for this instance */
    int32_t n_extra;  /* noise: extra symbols after the V real ones (ids V ..), 0..1024 */
    int32_t mask_id;  /* noise: the mask symbol's id (V .. V+n_extra-1), or -1 when none */
    uint32_t needs;   /* sampler: HDLM_INFO_SCORE / _CONDITIONED the noise process MUST have */
    double input_mix; /* noise with HDLM_INFO_INPUT_MIX: γ of the input mix weight e^{-γσ} */
} hdlm_info;

#define HDLM_INFO_HAS(info, field)                                                                 \
    ((info)->struct_size >= offsetof(hdlm_info, field) + sizeof((info)->field))

/* ---- the head of every ops table ---- */
typedef struct hdlm_ops_head {
    uint32_t struct_size; /* sizeof(the whole ops struct) as built */
    uint32_t reserved;    /* MUST be 0 */
    /* Required. The instance's facts (see hdlm_info); cheap, called often, MUST NOT fail. */
    void (*info)(void *self, hdlm_info *info);
    /* Optional (NULL: none). Optional interfaces added after ABI 2.0 are reached here: returns
     * the interface for `id` (a string such as "hdlm.noise.something/1", documented with the
     * interface) or NULL when the plugin does not implement it. MUST NOT fail otherwise. */
    const void *(*extension)(const char *id);
} hdlm_ops_head;

/* The minimum size of an ops struct: everything up to and including `last`. */
#define HDLM_OPS_SIZE_UPTO(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

/* ---- position states (hyperschedule, docs/method.md "Levels, steps and states") ---- */
enum { HDLM_SETTLED = 0, HDLM_ACTIVE = 1, HDLM_WORTHLESS = 2 };

/* ---- schedule kind ---- */
/* How the settled prefix grows; tells the core which KV cache and vectorised layout are exact. */
enum {
    HDLM_GROW_BLOCKS = 1, /* settles whole blocks of `block` positions at once */
    HDLM_GROW_TOKENS = 2, /* settles token by token */
};

typedef struct hdlm_schedule_ops {
    hdlm_ops_head head;
    /* W: the worthless level. Levels are integers 0 (clean) .. W (fully noised); W >= 1. */
    int32_t (*n_levels)(void *self);
    /* Number of generation steps run for length L (steps are numbered 1 .. n_steps); >= 1 for
     * L >= 1. */
    int64_t (*n_steps)(void *self, int64_t L);
    /* Level of every position at `step` (0 <= step <= n_steps) and the settled prefix length
     * (docs/method.md "Levels, steps and states": positions [0, n_settled) are settled and MUST
     * be at level 0; level W is worthless; the rest active). A position's level MUST NOT rise from
     * one step to the next; at step 0 every position MUST be at W; at step n_steps no position
     * may be at W; a position active at more than one step MUST be at 0 at its last active step
     * (one active for a single step may sit at any level below W, e.g. W - 1: that step denoises
     * it fully; docs/writing-plugins.md). */
    int (*levels)(void *self, int64_t step, int64_t L, int32_t *level /* (L) */, int64_t *n_settled,
                  char *err, size_t err_cap);
    /* HDLM_GROW_*; *block receives the block size for HDLM_GROW_BLOCKS (else 1). The settled
     * prefix MUST grow as declared: with blocks, n_settled is a multiple of block (or L). */
    uint32_t (*growth)(void *self, int64_t *block);
} hdlm_schedule_ops;

#define HDLM_SCHEDULE_OPS_MIN_SIZE HDLM_OPS_SIZE_UPTO(hdlm_schedule_ops, growth)

/* ---- noise kind ---- */

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

/* bound_corrupt and prior are optional ops of ABI 2.0 (NULL allowed) rather than extensions: the
 * evaluator asks for them on every call, and a NULL has a documented meaning. */
typedef struct hdlm_noise_ops {
    hdlm_ops_head head;
    /* Forward corruption: b->xt from b->x0, b->t, b->state (docs/method.md "Noise processes"). */
    int (*corrupt)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Optional; required when info reports HDLM_INFO_CONDITIONED. The conditioning signal per
     * position (σ of docs/method.md "gamma_hybrid"). */
    int (*conditioning)(void *self, size_t n, const float *t, float *sigma, char *err,
                        size_t err_cap);
    /* Training loss and its gradient with respect to the logits (docs/method.md "Noise
     * processes"): dlogits MUST be the gradient of `total`. */
    int (*loss)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Reverse-step probabilities from time t to s for ACTIVE positions (docs/method.md "Sampling"),
     * float64; every row MUST be a distribution over the Vp symbols. */
    int (*reverse)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Initial (limit) state: fills b->xt with draws from the fully-noised distribution. */
    int (*limit)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Optional. Per-position terms of a valid NLL upper bound for the transition t -> s of every
     * ACTIVE position given the clean tokens (x0) and the noised input the model saw (xt). */
    int (*bound)(void *self, hdlm_noise_batch *b, char *err, size_t err_cap);
    /* Exact forward marginal q(x_t = y | x_0) over the Vp symbols, float64 (docs/method.md "Noise
     * processes"); MUST sum to 1 and agree with corrupt. */
    int (*marginal)(void *self, int32_t x0, double t, double *probs, char *err, size_t err_cap);
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

#define HDLM_NOISE_OPS_MIN_SIZE HDLM_OPS_SIZE_UPTO(hdlm_noise_ops, prior)

/* ---- sampler kind ---- */
enum { HDLM_EVENT_UNMASK = 1, HDLM_EVENT_CORRECT = 2, HDLM_EVENT_REMASK = 3 };

typedef struct hdlm_sampler_ctx {
    uint32_t struct_size; /* a plugin MUST NOT read fields past this size */
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
    /* α(t): the probability that a real token is still itself or another real token (not masked)
     * at time t under the noise process's forward marginal; 1 for processes without a mask. */
    double (*alpha)(void *core, double t);
} hdlm_sampler_ctx;

typedef struct hdlm_sampler_ops {
    hdlm_ops_head head;
    /* One generation step: x[b, i] of non-fixed positions MAY change, to a value in 0..Vp-1
     * (a real token, or the mask when remasking); fixed positions MUST NOT change. */
    int (*step)(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap);
} hdlm_sampler_ops;

#define HDLM_SAMPLER_OPS_MIN_SIZE HDLM_OPS_SIZE_UPTO(hdlm_sampler_ops, step)

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
    int (*create)(const hdlm_create_args *args, void **self, char *err, size_t err_cap);
    void (*destroy)(void *self); /* MUST accept NULL */
    const void *ops;             /* hdlm_noise_ops / hdlm_schedule_ops / hdlm_sampler_ops */
} hdlm_plugin;

#define HDLM_PLUGIN_MIN_SIZE HDLM_OPS_SIZE_UPTO(hdlm_plugin, ops)

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
