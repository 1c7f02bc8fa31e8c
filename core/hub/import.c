/* hdlm import: the reference's published model folders -> an hdlm checkpoint and a stored run
 * (import.h). The DDiT's state-dict names are hdlm's tensor names, so the weights need no
 * renaming: only a prefix is stripped, buffers (rotary inv_freq) skipped and dtypes widened. */
#include "hub/import.h"

#include "base/json.h"
#include "base/provenance.h"
#include "base/sha256.h"
#include "data/tokenizer.h"
#include "nn/safetensors.h"
#include "plugin/host.h"
#include "store/store.h"
#include "tensor/blas.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *read_text(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    *n = len;
    return buf;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int mkdir_p(const char *dir, error *e) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return error_set(e, HDLM_EIO, "import: cannot create %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return error_set(e, HDLM_EIO, "import: cannot create %s: %s", tmp, strerror(errno));
    return HDLM_OK;
}

/* "a.b.c" lookup through nested objects. */
static const json_value *cfg_at(const json_value *root, const char *dotted) {
    char key[128];
    const json_value *v = root;
    const char *p = dotted;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        v = json_type(v) == JSON_OBJECT ? json_get(v, key) : NULL;
        p = dot ? dot + 1 : p + n;
    }
    return v;
}

/* A number at dotted, or def when absent, null or an unresolved "${...}" interpolation; a numeric
 * string ("1e-4", as YAML leaves some floats) is read too. *found tells which. */
static double cfg_num(const json_value *root, const char *dotted, double def, int *found) {
    const json_value *v = cfg_at(root, dotted);
    if (found) *found = 0;
    if (json_type(v) == JSON_NUMBER) {
        if (found) *found = 1;
        return json_number(v);
    }
    if (json_type(v) == JSON_STRING) {
        char *end;
        double x = strtod(json_string(v), &end);
        if (end != json_string(v) && !*end) {
            if (found) *found = 1;
            return x;
        }
    }
    return def;
}

static const char *cfg_str(const json_value *root, const char *dotted) {
    const json_value *v = cfg_at(root, dotted);
    return json_type(v) == JSON_STRING ? json_string(v) : NULL;
}

static void note(hub_import_result *r, const char *fmt, ...) {
    size_t k = strlen(r->notes);
    if (k + 2 >= sizeof r->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes + k, sizeof r->notes - k - 1, fmt, ap);
    va_end(ap);
    k = strlen(r->notes);
    r->notes[k] = '\n';
    r->notes[k + 1] = '\0';
}

/* {"name":..,"version":..,"options":{..}} of an instance into out. */
static void identity(const plugin_instance *pi, char *out, size_t cap, int with_version) {
    char *opts = plugin_opts_json(pi->opts);
    if (with_version)
        snprintf(out, cap, "{\"name\":\"%s\",\"version\":\"%s\",\"options\":%s}",
                 pi->entry->desc->name, pi->entry->desc->version, opts ? opts : "{}");
    else
        snprintf(out, cap, "{\"name\":\"%s\",\"options\":%s}", pi->entry->desc->name,
                 opts ? opts : "{}");
    free(opts);
}

static const char *const prefixes[] = {"",       "module.", "backbone.", "module.backbone.",
                                       "model.", NULL};

typedef struct import_state {
    json_value *cfg_root;
    char *cfg_text;
    st_file *st;
    model m;
    plugin_registry *reg;
    plugin_instance *noise, *sched;
    store *db;
    tokenizer tok;
} import_state;

static void state_free(import_state *s) {
    json_free(s->cfg_root);
    free(s->cfg_text);
    st_close(s->st);
    model_free(&s->m);
    plugin_instance_destroy(s->noise);
    plugin_instance_destroy(s->sched);
    plugin_registry_close(s->reg);
    store_close(s->db);
}

/* The noise and schedule instances from the config (validated by their plugins). */
static int make_plugins(import_state *s, const json_value *c, int tokens, int seq_len,
                        hub_import_result *r, error *e) {
    int rc = plugin_registry_open(&s->reg, e);
    if (rc != HDLM_OK) return rc;
    if (plugin_registry_load_default(s->reg, NULL, 0, e) < 0) return e->code;
    plugin_opts *no = plugin_opts_new(), *so = plugin_opts_new();
    if (!no || !so) {
        plugin_opts_free(no);
        plugin_opts_free(so);
        return error_set(e, HDLM_ENOMEM, "import: out of memory");
    }
    plugin_create_args nargs = {.vocab = (int32_t)tokens, .n_extra = -1, .mask_id = -1};
    const char *nname;
    if (r->family == 'e') {
        nname = "epsilon_hybrid";
        int f1, f2;
        double eps = cfg_num(c, "training.epsilon", 0.01, &f1);
        double lam = cfg_num(c, "training.lambda", 1.0, &f2);
        plugin_opts_set_number(no, "epsilon", eps);
        plugin_opts_set_number(no, "lambda", lam);
        note(r, "noise: epsilon_hybrid{epsilon = %g%s, lambda = %g%s}", eps,
             f1 ? " (training.epsilon)" : " (default: training.epsilon absent)", lam,
             f2 ? " (training.lambda)" : " (default)");
    } else {
        nname = "gamma_hybrid";
        double g = cfg_num(c, "graph.gamma", 0.01, NULL);
        plugin_opts_set_number(no, "gamma", g);
        const char *nt = cfg_str(c, "noise.type");
        if (nt && !strcmp(nt, "geometric")) {
            double lo = cfg_num(c, "noise.sigma_min", 1e-4, NULL);
            double hi = cfg_num(c, "noise.sigma_max", 20, NULL);
            plugin_opts_set_string(no, "noise", "geometric");
            plugin_opts_set_number(no, "sigma_min", lo);
            plugin_opts_set_number(no, "sigma_max", hi);
            note(r,
                 "noise: gamma_hybrid{gamma = %g (graph.gamma), noise = geometric, sigma %g..%g}",
                 g, lo, hi);
        } else if (!nt || !strcmp(nt, "loglinear")) {
            plugin_opts_set_string(no, "noise", "loglinear");
            note(r,
                 "noise: gamma_hybrid{gamma = %g (graph.gamma), noise = loglinear "
                 "(sigma = -log(1 - 0.995 t); noise.sigma_min/max are unused by it)}",
                 g);
        } else {
            plugin_opts_free(no);
            plugin_opts_free(so);
            return error_set(e, HDLM_EINVAL,
                             "import: noise.type '%s' is not supported (loglinear, geometric)", nt);
        }
    }
    if ((rc = plugin_instance_create(s->reg, HDLM_KIND_NOISE, nname, no, &nargs, &s->noise, e)) !=
        HDLM_OK) {
        plugin_opts_free(so);
        return rc;
    }
    /* annealing: block{width, tau, eval_tau} / none */
    const char *at = cfg_str(c, "annealing.type");
    int has_tau, has_etau, has_w;
    double tau = cfg_num(c, "annealing.tau", 0, &has_tau);
    double etau = cfg_num(c, "annealing.eval_tau", 0, &has_etau);
    double w = cfg_num(c, "annealing.width", 0, &has_w);
    double steps = has_etau ? etau : has_tau ? tau : 1024;
    const char *sname;
    if (!at || !strcmp(at, "none") || !strcmp(at, "None") || !strcmp(at, "null")) {
        sname = "diffusion";
        plugin_opts_set_number(so, "tau", steps);
        plugin_opts_set_bool(so, "continuous", 1);
        note(r,
             "schedule: annealing.type %s -> diffusion{tau = %g%s, continuous = true} "
             "(full-sequence diffusion trained in continuous time)",
             at ? at : "absent", steps,
             has_etau  ? " (annealing.eval_tau)"
             : has_tau ? " (annealing.tau)"
                       : " (default)");
    } else if (!strcmp(at, "block")) {
        if (!has_w) w = seq_len;
        if (w >= seq_len) {
            sname = "diffusion";
            plugin_opts_set_number(so, "tau", steps);
            note(r,
                 "schedule: annealing block{width %g >= length %d, eval_tau %g} -> diffusion{tau "
                 "= %g} (one block covering the window is diffusion)",
                 w, seq_len, steps, steps);
        } else {
            sname = "block_annealing";
            plugin_opts_set_number(so, "width", w);
            plugin_opts_set_number(so, "tau", steps);
            note(r,
                 "schedule: annealing block{width %g, eval_tau %g} -> block_annealing{width = %g, "
                 "tau = %g}",
                 w, steps, w, steps);
        }
    } else if (!strcmp(at, "simple") || !strcmp(at, "hybrid")) {
        sname = at[0] == 's' ? "simple_annealing" : "hybrid_annealing";
        if (!has_w) w = 16;
        plugin_opts_set_number(so, "width", w);
        plugin_opts_set_number(so, "tau", steps);
        note(r, "schedule: annealing %s{width %g, eval_tau %g} -> %s{width = %g, tau = %g}", at, w,
             steps, sname, w, steps);
    } else {
        plugin_opts_free(so);
        return error_set(
            e, HDLM_EINVAL,
            "import: annealing.type '%s' is not mapped (block, simple, hybrid and none "
            "are); attach "
            "a schedule yourself with hdlm.model{checkpoint = ...} and db:attach",
            at);
    }
    if ((rc = plugin_instance_create(s->reg, HDLM_KIND_SCHEDULE, sname, so, NULL, &s->sched, e)) !=
        HDLM_OK)
        return rc;
    identity(s->noise, r->noise, sizeof r->noise, 0);
    identity(s->sched, r->schedule, sizeof r->schedule, 0);
    return HDLM_OK;
}

static int import_weights(import_state *s, const char *wpath, int tokens, hub_import_result *r,
                          error *e) {
    int rc = st_open(wpath, &s->st, e);
    if (rc != HDLM_OK) return rc;
    const char *pre = NULL;
    char nm[ST_MAX_NAME + 32];
    for (int i = 0; prefixes[i] && !pre; i++) {
        snprintf(nm, sizeof nm, "%svocab_embed.embedding", prefixes[i]);
        if (st_find(s->st, nm)) pre = prefixes[i];
    }
    if (!pre)
        return error_set(e, HDLM_EINVAL,
                         "%s: no 'vocab_embed.embedding' (nor under module./backbone.): not the "
                         "reference's DDiT state dict",
                         wpath);
    snprintf(r->prefix, sizeof r->prefix, "%s", pre);
    snprintf(nm, sizeof nm, "%svocab_embed.embedding", pre);
    const st_tensor *emb = st_find(s->st, nm);
    r->source_dtype = emb->dtype;
    if (emb->ndim != 2) return error_set(e, HDLM_EINVAL, "%s: '%s' is not a matrix", wpath, nm);
    int V = (int)emb->shape[0];
    if (V != tokens + 1)
        return error_set(e, HDLM_EINVAL,
                         "%s: the embedding has %d rows, expected tokenizer.tokens + 1 = %d (the "
                         "mask is the last symbol)",
                         wpath, V, tokens + 1);
    snprintf(nm, sizeof nm, "%ssigma_map.mlp.0.weight", pre);
    int has_cond = st_find(s->st, nm) != NULL;
    if (r->family == 'g' && !has_cond)
        return error_set(e, HDLM_EINVAL,
                         "%s: a γ-hybrid config but no sigma_map weights (no σ conditioning)",
                         wpath);
    int skip_sigma_map = 0;
    if (r->family == 'e' && has_cond) {
        snprintf(nm, sizeof nm, "%sblocks.0.adaLN_modulation.weight", pre);
        if (st_find(s->st, nm))
            return error_set(
                e, HDLM_EINVAL,
                "%s: an epsilon-hybrid model with sigma conditioning (adaLN) is not "
                "supported: hdlm's epsilon model is unconditioned, as the released one",
                wpath);
        /* use_timestep_embedding without transformer_sigma_conditioning: the reference's ε
         * forward never calls sigma_map */
        skip_sigma_map = 1, has_cond = 0;
        note(r, "weights: sigma_map.* skipped (the epsilon forward does not use it)");
    }
    r->cfg.vocab = V;
    r->cfg.cond = has_cond;
    if ((rc = model_init(&s->m, &r->cfg, 0, e)) != HDLM_OK) return rc;
    /* every tensor of the file must be one of the model's (or a known buffer) */
    for (int i = 0; i < st_count(s->st); i++) {
        const char *full = st_at(s->st, i)->name;
        size_t pl = strlen(pre);
        const char *name = strncmp(full, pre, pl) ? NULL : full + pl;
        size_t nl = name ? strlen(name) : 0;
        if (name && model_find_tensor(&s->m, name)) continue;
        if (nl >= 8 && !strcmp(name + nl - 8, "inv_freq")) continue; /* rotary buffer */
        if (skip_sigma_map && name && !strncmp(name, "sigma_map.", 10)) continue;
        return error_set(e, HDLM_EINVAL,
                         "%s: tensor '%s' is not part of a %s DDiT with these shapes (hdlm would "
                         "ignore it)",
                         wpath, full, has_cond ? "conditioned" : "unconditioned");
    }
    for (int i = 0; i < s->m.n_tensors; i++) {
        const model_tensor *mt = &s->m.tensors[i];
        snprintf(nm, sizeof nm, "%s%s", pre, mt->name);
        if ((rc = st_read_f32(s->st, nm, s->m.params + mt->offset, mt->ndim, mt->shape, e)) !=
            HDLM_OK)
            return rc;
    }
    r->n_params = (int64_t)s->m.n_params;
    st_close(s->st);
    s->st = NULL;
    return HDLM_OK;
}

int hub_import(const hub_import_opts *o, hub_import_result *r, error *e) {
    memset(r, 0, sizeof *r);
    import_state s = {0};
    char path[4200];
    size_t n = 0;
    int rc = HDLM_OK;
    snprintf(path, sizeof path, "%s/config.json", o->src);
    if (!(s.cfg_text = read_text(path, &n))) {
        char yaml[4200];
        snprintf(yaml, sizeof yaml, "%s/config.yaml", o->src);
        return error_set(e, HDLM_EIO, "import: cannot read %s: %s%s", path, strerror(errno),
                         file_exists(yaml) ? " (config.yaml alone is not read: the release "
                                             "carries both)"
                                           : "");
    }
    if ((rc = json_parse(s.cfg_text, n, &s.cfg_root, e)) != HDLM_OK) {
        error_wrap(e, "%s", path);
        goto out;
    }
    const json_value *c = s.cfg_root;
    /* ModelHubMixin may nest the init argument: {"config": {...}} */
    if (!cfg_at(c, "model") && json_type(cfg_at(c, "config.model")) == JSON_OBJECT)
        c = cfg_at(c, "config");
    if (json_type(cfg_at(c, "model")) != JSON_OBJECT) {
        rc = error_set(e, HDLM_EINVAL, "%s: no 'model' section (not the reference's config)", path);
        goto out;
    }
    /* architecture */
    int fh, fn, fb, fc, fl;
    double hid = cfg_num(c, "model.hidden_size", 0, &fh), nh = cfg_num(c, "model.n_heads", 0, &fn);
    double nb = cfg_num(c, "model.n_blocks", 0, &fb);
    double cd = cfg_num(c, "model.cond_dim", MODEL_COND_DIM, &fc);
    double len = cfg_num(c, "model.length", 1024, &fl);
    if (!fh || !fn || !fb) {
        rc = error_set(e, HDLM_EINVAL,
                       "%s: model.hidden_size, model.n_heads and model.n_blocks are "
                       "required",
                       path);
        goto out;
    }
    if ((int)cd != MODEL_COND_DIM) {
        rc = error_set(e, HDLM_EINVAL, "%s: model.cond_dim %g: hdlm's conditioning width is %d",
                       path, cd, MODEL_COND_DIM);
        goto out;
    }
    const char *tokname = cfg_str(c, "tokenizer.model");
    int tokens = (int)cfg_num(c, "tokenizer.tokens", 50257, NULL);
    /* family */
    const char *mt = cfg_str(c, "model_type");
    const char *gt = cfg_str(c, "graph.type");
    if (mt && !strcmp(mt, "epsilon_hybrid"))
        r->family = 'e';
    else if (mt && !strcmp(mt, "gamma_hybrid"))
        r->family = 'g';
    else if (mt) {
        rc = error_set(e, HDLM_EINVAL, "%s: model_type '%s' (epsilon_hybrid or gamma_hybrid)", path,
                       mt);
        goto out;
    } else
        r->family = gt && (!strcmp(gt, "QGamma") || !strcmp(gt, "gamma")) ? 'g' : 'e';
    note(r, "family: %s (%s)", r->family == 'e' ? "epsilon-hybrid" : "gamma-hybrid",
         mt   ? "model_type"
         : gt ? "graph.type"
              : "no graph section");
    if (r->family == 'g' && json_type(cfg_at(c, "model.scale_by_sigma")) == JSON_BOOL &&
        !json_bool(cfg_at(c, "model.scale_by_sigma"))) {
        rc = error_set(e, HDLM_EINVAL,
                       "%s: a gamma-hybrid model without model.scale_by_sigma: hdlm's "
                       "gamma_hybrid noise always applies it",
                       path);
        goto out;
    }
    /* the RADD input mix: the reference enables it with model.hybrid_sigma_embedding */
    int radd =
        r->family == 'g' && !(json_type(cfg_at(c, "model.hybrid_sigma_embedding")) == JSON_BOOL &&
                              !json_bool(cfg_at(c, "model.hybrid_sigma_embedding")));
    r->cfg.d_model = (int)hid;
    r->cfg.n_head = (int)nh;
    r->cfg.n_layer = (int)nb;
    r->cfg.seq_len = (int)len;
    r->cfg.mask_id = r->family == 'g' && !radd ? -1 : tokens;
    r->cfg.mix_gamma = radd ? (float)cfg_num(c, "graph.gamma", 0.01, NULL) : 0.0f;
    r->cfg.dropout = 0;
    note(r,
         "model: d_model %d, %d heads, %d blocks, cond_dim %d, length %d%s; vocabulary %d + "
         "mask (id %d)",
         r->cfg.d_model, r->cfg.n_head, r->cfg.n_layer, (int)cd, r->cfg.seq_len,
         fl ? "" : " (default)", tokens, tokens);
    if (r->family == 'g' && !radd)
        note(r, "input: no RADD mix (model.hybrid_sigma_embedding false)");
    if (radd)
        note(r,
             "input: RADD mix exp(-%g sigma) E[x] + (1 - exp(-%g sigma)) E[mask] (graph.gamma); "
             "scale_by_sigma and the mask-channel suppression are the noise plugin's",
             (double)r->cfg.mix_gamma, (double)r->cfg.mix_gamma);
    /* the tokenizer */
    if (tokname && !strcmp(tokname, "gpt2") && tokens == 50257) {
        snprintf(r->tokenizer, sizeof r->tokenizer, "gpt2");
        note(r, "tokenizer: gpt2 (hdlm's; files via scripts/get-data.sh gpt2)");
    } else {
        note(r, "tokenizer: '%s' with %d tokens is not one of hdlm's: the model works on ids only",
             tokname ? tokname : "(none)", tokens);
    }
    /* weights */
    char wpath[4200];
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", o->src);
    if (!file_exists(wpath)) {
        char bin[4200];
        snprintf(bin, sizeof bin, "%s/pytorch_model.bin", o->src);
        if (file_exists(bin))
            rc = error_set(e, HDLM_EINVAL,
                           "import: %s is a pickle, which hdlm does not read; convert it first: "
                           "/usr/bin/python3 scripts/convert_pth.py %s %s",
                           bin, bin, wpath);
        else
            rc = error_set(e, HDLM_EIO, "import: no model.safetensors in %s", o->src);
        goto out;
    }
    if ((rc = import_weights(&s, wpath, tokens, r, e)) != HDLM_OK) goto out;
    note(r, "weights: %lld parameters from %s%s%s%s", (long long)r->n_params,
         st_dtype_name(r->source_dtype),
         r->source_dtype == ST_F32 ? "" : " (widened to F32 exactly)",
         r->prefix[0] ? ", prefix " : "", r->prefix);
    if ((rc = make_plugins(&s, c, tokens, r->cfg.seq_len, r, e)) != HDLM_OK) goto out;
    const char *ctx = cfg_str(c, "annealing.attention.context_type");
    const char *bt = cfg_str(c, "annealing.attention.block_type");
    snprintf(r->context, sizeof r->context, "%s", ctx ? ctx : "block_causal");
    snprintf(r->block_type, sizeof r->block_type, "%s", bt ? bt : "full");
    if (strcmp(r->context, "block_causal") && strcmp(r->context, "causal") &&
        strcmp(r->context, "full")) {
        rc = error_set(e, HDLM_EINVAL, "%s: annealing.attention.context_type '%s' is unknown", path,
                       r->context);
        goto out;
    }
    if (strcmp(r->block_type, "full") && strcmp(r->block_type, "causal")) {
        rc = error_set(e, HDLM_EINVAL, "%s: annealing.attention.block_type '%s' is unknown", path,
                       r->block_type);
        goto out;
    }
    note(r, "attention: context %s, block_type %s (annealing.attention)", r->context,
         r->block_type);

    /* the checkpoint */
    if ((rc = mkdir_p(o->out_dir, e)) != HDLM_OK) goto out;
    char noise_v[512], sched_v[512];
    identity(s.noise, noise_v, sizeof noise_v, 1);
    identity(s.sched, sched_v, sizeof sched_v, 1);
    const char *tsha = NULL;
    if (r->tokenizer[0] && tokenizer_init(&s.tok, "gpt2", NULL) == HDLM_OK)
        tsha = tokenizer_sha256(&s.tok);
    json_buf cj = {0};
    char head[1024];
    snprintf(head, sizeof head,
             "{\"objective\":\"method\",\"vocab\":%d,\"d_model\":%d,\"n_layer\":%d,\"n_head\":%d,"
             "\"seq_len\":%d,\"cond\":%d,\"gamma\":%.9g,\"dropout\":0,\"imported\":true",
             r->cfg.vocab, r->cfg.d_model, r->cfg.n_layer, r->cfg.n_head, r->cfg.seq_len,
             r->cfg.cond, (double)r->cfg.mix_gamma);
    json_buf_raw(&cj, head);
    if (r->tokenizer[0]) {
        json_buf_raw(&cj, ",\"tokenizer\":");
        json_buf_str(&cj, r->tokenizer);
        if (tsha) {
            json_buf_raw(&cj, ",\"tokenizer_sha256\":");
            json_buf_str(&cj, tsha);
        }
    }
    json_buf_raw(&cj, ",\"method\":{\"noise\":");
    json_buf_raw(&cj, noise_v);
    json_buf_raw(&cj, ",\"schedule\":");
    json_buf_raw(&cj, sched_v);
    json_buf_raw(&cj, ",\"context\":");
    json_buf_str(&cj, r->context);
    json_buf_raw(&cj, ",\"block_type\":");
    json_buf_str(&cj, r->block_type);
    json_buf_raw(&cj, "}}");
    char fwd[256];
    snprintf(fwd, sizeof fwd,
             "{\"vocab\":%d,\"d_model\":%d,\"n_layer\":%d,\"n_head\":%d,\"seq_len\":%d,"
             "\"cond\":%d,\"mask_id\":%d,\"mix_gamma\":%.9g}",
             r->cfg.vocab, r->cfg.d_model, r->cfg.n_layer, r->cfg.n_head, r->cfg.seq_len,
             r->cfg.cond, r->cfg.mask_id, (double)r->cfg.mix_gamma);
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/model.safetensors", o->out_dir);
    {
        st_tensor *ts = calloc((size_t)s.m.n_tensors, sizeof *ts);
        if (!ts || cj.failed) {
            free(ts);
            json_buf_free(&cj);
            rc = error_set(e, HDLM_ENOMEM, "import: out of memory");
            goto out;
        }
        for (int i = 0; i < s.m.n_tensors; i++) {
            const model_tensor *t = &s.m.tensors[i];
            snprintf(ts[i].name, sizeof ts[i].name, "%s", t->name);
            ts[i].dtype = ST_F32;
            ts[i].ndim = t->ndim;
            ts[i].shape[0] = t->shape[0];
            ts[i].shape[1] = t->shape[1];
            ts[i].data = s.m.params + t->offset;
            ts[i].nbytes = (int64_t)t->size * 4;
        }
        const char *mk[] = {"format", "step", "config", "model"};
        const char *mv[] = {"hdlm-ddit-1", "0", cj.data, fwd};
        rc = st_write(r->ckpt_path, ts, s.m.n_tensors, mk, mv, 4, e);
        free(ts);
    }
    if (rc == HDLM_OK) { /* the release's config next to it, as it came */
        snprintf(path, sizeof path, "%s/reference_config.json", o->out_dir);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(s.cfg_text, 1, n, f) != n)
            rc = error_set(e, HDLM_EIO, "%s: %s", path, strerror(errno));
        if (f && fclose(f) && rc == HDLM_OK)
            rc = error_set(e, HDLM_EIO, "%s: %s", path, strerror(errno));
    }
    if (rc != HDLM_OK || !o->db_path) {
        json_buf_free(&cj);
        goto out;
    }

    /* the stored run: config as db:train resolves it (hdlm_run.load reads context/block_type) */
    char abs_ck[4200], abs_src[4200], abs_data[4200];
    if (!realpath(r->ckpt_path, abs_ck)) snprintf(abs_ck, sizeof abs_ck, "%s", r->ckpt_path);
    if (!realpath(o->src, abs_src)) snprintf(abs_src, sizeof abs_src, "%s", o->src);
    json_buf rj = {0};
    json_buf_raw(&rj, "{\"objective\":\"method\",\"imported_from\":");
    json_buf_str(&rj, abs_src);
    if (o->data) {
        if (!realpath(o->data, abs_data)) {
            json_buf_free(&cj);
            json_buf_free(&rj);
            rc = error_set(e, HDLM_EIO, "import: --data %s: %s", o->data, strerror(errno));
            goto out;
        }
        json_buf_raw(&rj, ",\"data\":");
        json_buf_str(&rj, abs_data);
    }
    snprintf(head, sizeof head,
             ",\"model\":{\"d_model\":%d,\"n_layer\":%d,\"n_head\":%d,\"seq_len\":%d,\"cond\":%s,"
             "\"gamma\":%.9g,\"dropout\":0,\"vocab\":%d,\"mask_id\":%d}",
             r->cfg.d_model, r->cfg.n_layer, r->cfg.n_head, r->cfg.seq_len,
             r->cfg.cond ? "true" : "false", (double)r->cfg.mix_gamma, r->cfg.vocab,
             r->cfg.mask_id);
    json_buf_raw(&rj, head);
    json_buf_raw(&rj, ",\"noise\":");
    json_buf_raw(&rj, noise_v);
    json_buf_raw(&rj, ",\"schedule\":");
    json_buf_raw(&rj, sched_v);
    json_buf_raw(&rj, ",\"context\":");
    json_buf_str(&rj, r->context);
    json_buf_raw(&rj, ",\"block_type\":");
    json_buf_str(&rj, r->block_type);
    if (r->tokenizer[0]) {
        json_buf_raw(&rj, ",\"tokenizer\":");
        json_buf_str(&rj, r->tokenizer);
    }
    json_buf_raw(&rj, ",\"reference_config\":");
    json_buf_value(&rj, c);
    json_buf_raw(&rj, "}");
    json_buf_free(&cj);
    if (rj.failed) {
        json_buf_free(&rj);
        rc = error_set(e, HDLM_ENOMEM, "import: out of memory");
        goto out;
    }
    char hash[65];
    struct stat sb;
    if ((rc = sha256_hex_file(abs_ck, hash, e)) != HDLM_OK) {
        json_buf_free(&rj);
        goto out;
    }
    stat(abs_ck, &sb);
    if ((rc = store_open(o->db_path, 0, &s.db, e)) != HDLM_OK) {
        json_buf_free(&rj);
        goto out;
    }
    provenance p;
    provenance_collect(&p);
    const char *base = strrchr(abs_src, '/');
    base = base && base[1] ? base + 1 : abs_src;
    store_run_info info = {
        .name = o->name ? o->name : base,
        .kind = "import",
        .config_json = rj.data,
        .seed = 0,
        .git_rev = p.git_rev,
        .git_dirty = p.git_dirty,
        .host = p.host,
        .cpu = p.cpu,
        .blas = blas_info(),
        .threads = 1,
        .world_size = 1,
        .script = o->command ? o->command : "hdlm import",
        .hdlm_version = HDLM_VERSION,
    };
    int64_t cid = 0;
    rc = store_run_begin(s.db, &info, &r->run_id, e);
    json_buf_free(&rj);
    const plugin_instance *pis[2] = {s.noise, s.sched};
    const char *kinds[2] = {"noise", "schedule"};
    for (int i = 0; i < 2 && rc == HDLM_OK; i++) {
        char *opts = plugin_opts_json(pis[i]->opts);
        rc = store_run_plugin(s.db, r->run_id, kinds[i], pis[i]->entry->desc->name,
                              pis[i]->entry->desc->version, (int)pis[i]->entry->desc->abi_version,
                              pis[i]->entry->file, pis[i]->entry->hash, opts, e);
        free(opts);
    }
    if (rc == HDLM_OK)
        rc = store_checkpoint(s.db, r->run_id, 0, abs_ck, hash, (int64_t)sb.st_size, &cid, e);
    if (r->run_id) {
        error e2 = {0};
        int rc2 = store_run_end(s.db, r->run_id, rc == HDLM_OK ? "done" : "failed",
                                rc == HDLM_OK ? NULL : e->msg, &e2);
        if (rc == HDLM_OK && rc2 != HDLM_OK) {
            *e = e2;
            rc = rc2;
        }
    }
out:
    state_free(&s);
    return rc;
}
