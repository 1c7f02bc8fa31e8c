/* Tests for hub/import: a test-side exporter writes hdlm models (random weights) in the reference
 * implementation's published form (config.json with the Hydra tree, model.safetensors with the
 * DDiT's state-dict names, a prefix, the rotary buffer, F32 or BF16), hub_import turns them into
 * checkpoints and runs, and the logits of hdlm.model{checkpoint = ...} (through the Lua host, as a
 * user loads it) must equal the exported model's: exactly for F32, exactly against the
 * bf16-rounded weights and within bf16 rounding of the original ones for BF16. The stored run
 * must come back through hdlm_run.load with its noise and schedule and sample. Then the 768 x 12
 * shapes of both released configs: parameter counts (the reference's, vocab 50258) and one
 * forward on a few tokens after an import. */
#include "base/rng.h"
#include "check.h"
#include "hub/import.h"
#include "lua/lua_host.h"
#include "nn/mask.h"
#include "nn/safetensors.h"

#include <hdlm/plugin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

/* Random weights everywhere (the zero-initialised adaLN and head too): LayerNorm weights 1 ± 0.2,
 * matrices U(±1/sqrt(fan_in)), vectors U(±0.1), the embedding U(±1). */
static void fill_random(model *m, uint64_t seed) {
    rng base;
    rng_init(&base, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        rng r = rng_split(&base, (uint64_t)i + 1);
        float *w = m->params + t->offset;
        double scale = t->ndim == 2 ? 1.0 / sqrt((double)t->shape[1]) : 0.1;
        if (strstr(t->name, "embedding")) scale = 1.0;
        int norm = strstr(t->name, "norm") != NULL;
        for (size_t j = 0; j < t->size; j++) {
            double u = 2.0 * rng_uniform(&r) - 1.0;
            w[j] = (float)(norm ? 1.0 + 0.2 * u : scale * u);
        }
    }
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* The reference's form of m in dir: config.json (family 'e' or 'g', annealing width/tau) and
 * model.safetensors under prefix, as dtype (ST_F32 or ST_BF16), plus rotary_emb.inv_freq. */
static void export_reference(const char *dir, const model *m, char family, int dtype,
                             const char *prefix, int width, int tau) {
    mkdir(dir, 0777);
    char path[600], cfg[4096];
    const model_config *c = &m->cfg;
    int tokens = c->vocab - 1;
    if (family == 'e')
        snprintf(cfg, sizeof cfg,
                 "{\"ngpus\":2,\"type\":\"aligned\",\"model_type\":\"epsilon_hybrid\","
                 "\"tokenizer\":{\"tokens\":%d,\"model\":\"gpt2\"},"
                 "\"training\":{\"batch_size\":512,\"ema\":0.9999,\"loss_type\":\"hybrid\","
                 "\"epsilon\":0.01,\"lambda\":1.0},"
                 "\"annealing\":{\"type\":\"block\",\"efficient\":false,\"width\":%d,\"tau\":%d,"
                 "\"eval_tau\":%d,\"sampling_method\":\"SAR\",\"sampling_eps\":0.0001,"
                 "\"attention\":{\"context_type\":\"block_causal\",\"block_type\":\"full\"},"
                 "\"match_inference\":true},"
                 "\"model\":{\"name\":\"epsilon_hdlm\",\"type\":\"ddit\",\"hidden_size\":%d,"
                 "\"cond_dim\":128,\"length\":%d,\"n_blocks\":%d,\"n_heads\":%d,"
                 "\"scale_by_sigma\":false,\"dropout\":0.1,"
                 "\"transformer_sigma_conditioning\":false}}",
                 tokens, width, tau, tau, c->d_model, c->seq_len, c->n_layer, c->n_head);
    else
        snprintf(cfg, sizeof cfg,
                 "{\"ngpus\":4,\"model_type\":\"gamma_hybrid\","
                 "\"tokenizer\":{\"tokens\":%d,\"model\":\"gpt2\"},"
                 "\"training\":{\"batch_size\":256,\"weight\":\"standard\",\"ema\":0.9999},"
                 "\"graph\":{\"type\":\"QGamma\",\"gamma\":%.9g,\"report_all\":false,"
                 "\"expanded_sigma\":true},"
                 "\"noise\":{\"type\":\"loglinear\",\"sigma_min\":0.0001,\"sigma_max\":10.0,"
                 "\"ar_diffusion\":false,\"expanded_sigma\":true},"
                 "\"annealing\":{\"type\":\"block\",\"efficient\":false,\"width\":%d,\"tau\":%d,"
                 "\"eval_tau\":%d,\"steps_per_level\":1,\"sampling_method\":\"SAR\","
                 "\"attention\":{\"context_type\":\"block_causal\",\"block_type\":\"full\"}},"
                 "\"model\":{\"name\":\"gamma_hdlm\",\"type\":\"ddit\",\"hidden_size\":%d,"
                 "\"cond_dim\":128,\"length\":%d,\"n_blocks\":%d,\"n_heads\":%d,"
                 "\"scale_by_sigma\":true,\"dropout\":0.1,"
                 "\"transformer_sigma_conditioning\":true,\"hybrid_sigma_embedding\":true,"
                 "\"post_process_logits\":true,\"use_timestep_embedding\":true}}",
                 tokens, (double)c->mix_gamma, width, tau, tau, c->d_model, c->seq_len, c->n_layer,
                 c->n_head);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, cfg);
    int n = m->n_tensors;
    st_tensor *ts = calloc((size_t)n + 1, sizeof *ts);
    uint16_t *half = dtype == ST_BF16 ? malloc(m->n_params * sizeof *half) : NULL;
    if (half)
        for (size_t j = 0; j < m->n_params; j++)
            half[j] = st_f32_to_bf16(m->params[j]);
    for (int i = 0; i < n; i++) { /* reverse order: the file's order must not matter */
        const model_tensor *t = &m->tensors[n - 1 - i];
        snprintf(ts[i].name, sizeof ts[i].name, "%s%s", prefix, t->name);
        ts[i].dtype = dtype;
        ts[i].ndim = t->ndim;
        ts[i].shape[0] = t->shape[0];
        ts[i].shape[1] = t->shape[1];
        ts[i].data =
            half ? (const void *)(half + t->offset) : (const void *)(m->params + t->offset);
        ts[i].nbytes = (int64_t)t->size * st_dtype_size(dtype);
    }
    int hd = c->d_model / c->n_head;
    float *inv = malloc((size_t)hd / 2 * sizeof *inv);
    for (int k = 0; k < hd / 2; k++)
        inv[k] = (float)pow(10000.0, -2.0 * k / hd);
    snprintf(ts[n].name, sizeof ts[n].name, "%srotary_emb.inv_freq", prefix);
    ts[n].dtype = ST_F32, ts[n].ndim = 1, ts[n].shape[0] = hd / 2, ts[n].data = inv;
    ts[n].nbytes = (int64_t)hd / 2 * 4;
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    error e = {0};
    CHECK_EQ(st_write(path, ts, n + 1, mk, mv, 1, &e), 0);
    if (e.msg[0]) fprintf(stderr, "%s\n", e.msg);
    free(inv);
    free(half);
    free(ts);
}

/* Logits (T, V) of m on tokens with full attention, σ per position for a conditioned model. */
static float *forward(model *m, const int32_t *tok, const float *sigma, int T) {
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    uint8_t *state = malloc((size_t)T);
    attn_row *rows = malloc((size_t)T * sizeof *rows);
    for (int i = 0; i < T; i++)
        pos[i] = i, state[i] = HDLM_SETTLED;
    mask_rows_from_states(rows, state, T, MASK_CTX_FULL, 1, MASK_BLOCK_FULL);
    model_batch b = {1, T, tok, pos, m->cfg.cond ? sigma : NULL, rows, NULL, NULL, 0};
    float *lg = NULL, *out = NULL;
    error e = {0};
    if (model_forward(m, &b, &lg, &e) == HDLM_OK) {
        out = malloc((size_t)T * m->cfg.vocab * sizeof *out);
        memcpy(out, lg, (size_t)T * m->cfg.vocab * sizeof *out);
    } else {
        fprintf(stderr, "forward: %s\n", e.msg);
    }
    free(pos);
    free(state);
    free(rows);
    return out;
}

/* Loads ckpt with hdlm.model{checkpoint = ...} in the Lua host, writes model:forward's logits to
 * out_path (little-endian floats); with run_id > 0 also brings the run back with hdlm_run.load
 * and samples n tokens with sampler. Returns the host's status. */
static int lua_logits(const char *db, const char *ckpt, const int32_t *tok, const float *sigma,
                      int T, const char *out_path, long run_id, const char *sampler, int n) {
    char chunk[8192], list[1024] = "", sl[1024] = "";
    for (int i = 0; i < T; i++) {
        size_t k = strlen(list), j = strlen(sl);
        snprintf(list + k, sizeof list - k, "%s%d", i ? "," : "", tok[i]);
        snprintf(sl + j, sizeof sl - j, "%s%.9g", i ? "," : "", sigma ? (double)sigma[i] : 0.0);
    }
    snprintf(chunk, sizeof chunk,
             "local hdlm = require 'hdlm'\n"
             "local m = hdlm.model{ checkpoint = '%s' }\n"
             "local lg = m:forward({%s}, { sigma = {%s} })\n"
             "local f = assert(io.open('%s', 'wb'))\n"
             "for _, row in ipairs(lg) do\n"
             "  local parts = {}\n"
             "  for v = 1, #row do parts[v] = string.pack('<f', row[v]) end\n"
             "  f:write(table.concat(parts))\n"
             "end\n"
             "f:close()\n"
             "if %ld > 0 then\n"
             "  local db = hdlm.open()\n"
             "  local run, ck = require('hdlm_run').load(db, %ld)\n"
             "  assert(ck.step == 0)\n"
             "  local s = run:sample{ n = 1, length = %d, seed = 3, sampler = { '%s' } }\n"
             "  assert(#s == 1 and #s[1].tokens == %d, 'sample length')\n"
             "  for _, t in ipairs(s[1].tokens) do assert(t >= 0 and t < %d, 'token ' .. t) end\n"
             "end\n",
             ckpt, list, sl, out_path, run_id, run_id, n, sampler ? sampler : "ancestral", n,
             50257);
    lua_host_opts o = {.script = "=test_import", .db_path = db, .chunk = chunk};
    error e = {0};
    int rc = lua_host_run(&o, &e);
    if (rc != HDLM_OK) fprintf(stderr, "lua: %s\n", e.msg);
    return rc;
}

static float *read_floats(const char *path, size_t n) {
    float *x = calloc(n, sizeof *x);
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(x, sizeof *x, n, f) : 0;
    if (f) fclose(f);
    CHECK_EQ(got, n);
    return x;
}

/* max |a - b| and max |b| */
static double max_diff(const float *a, const float *b, size_t n, double *scale) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    if (scale) *scale = s;
    return d;
}

/* The same folder through scripts/torch_import_check.py (PyTorch's float32 against ours: a few
 * ulps of accumulated rounding); skipped when PyTorch is not installed. */
static void torch_check(const char *tag, const char *src, const int32_t *tok, const float *sigma,
                        int T, const float *got, size_t nv) {
    char cmd[4096], tl[512] = "", sl[512] = "", out[600];
    for (int i = 0; i < T; i++) {
        size_t k = strlen(tl), j = strlen(sl);
        snprintf(tl + k, sizeof tl - k, "%s%d", i ? "," : "", tok[i]);
        snprintf(sl + j, sizeof sl - j, "%s%.9g", i ? "," : "", (double)sigma[i]);
    }
    snprintf(out, sizeof out, "%s/%s.torch", tmpdir, tag);
    const char *srcdir = getenv("HDLM_SRC") ? getenv("HDLM_SRC") : HDLM_SOURCE_DIR;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/torch_import_check.py '%s' %s %s '%s'",
             srcdir, src, tl, sl, out);
    int st = system(cmd);
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        fprintf(stderr, "%s: PyTorch cross-check skipped (python3-torch not installed)\n", tag);
        return;
    }
    CHECK_EQ(st, 0);
    if (st) return;
    float *ref = read_floats(out, nv);
    double scale, d = max_diff(got, ref, nv, &scale);
    fprintf(stderr, "%s: PyTorch reference: max |logit difference| %.3g\n", tag, d);
    CHECK(d <= 1e-4 * scale + 1e-5);
    free(ref);
}

/* One family end to end at a given size; returns nothing, records checks. */
static void roundtrip(const char *tag, char family, model_config mc, int dtype, const char *prefix,
                      int width, int tau, int sample_n, const char *sampler, int64_t want_params) {
    char src[512], out[512], db[512], lp[512];
    snprintf(src, sizeof src, "%s/%s-src", tmpdir, tag);
    snprintf(out, sizeof out, "%s/%s-out", tmpdir, tag);
    snprintf(db, sizeof db, "%s/runs.db", tmpdir);
    snprintf(lp, sizeof lp, "%s/%s.logits", tmpdir, tag);
    model ref;
    error e = {0};
    CHECK_EQ(model_init(&ref, &mc, 0, &e), 0);
    if (want_params) CHECK_EQ((int64_t)ref.n_params, want_params);
    fill_random(&ref, 17);
    export_reference(src, &ref, family, dtype, prefix, width, tau);
    const int T = 6;
    int32_t tok[6] = {464, 3290, 50257, 11, 50257, 13};
    float sigma[6] = {0.3f, 0.3f, 2.5f, 0.0f, 7.0f, 1.0f};
    float *want = forward(&ref, tok, sigma, T);
    float *want_r = NULL; /* the bf16-rounded model's */
    if (dtype == ST_BF16) {
        for (size_t j = 0; j < ref.n_params; j++)
            ref.params[j] = st_bf16_to_f32(st_f32_to_bf16(ref.params[j]));
        want_r = forward(&ref, tok, sigma, T);
    }
    model_free(&ref);
    hub_import_opts o = {.src = src, .out_dir = out, .db_path = db, .name = tag};
    hub_import_result *r = calloc(1, sizeof *r);
    int rc = hub_import(&o, r, &e);
    CHECK_EQ(rc, 0);
    if (rc) fprintf(stderr, "%s: import: %s\n", tag, e.msg);
    fprintf(stderr, "%s:\n%s", tag, r->notes);
    CHECK_EQ(r->family, family);
    CHECK_EQ(r->cfg.cond, family == 'g');
    CHECK_EQ(r->cfg.mask_id, mc.vocab - 1);
    CHECK_EQ(r->source_dtype, dtype);
    CHECK_STR(r->prefix, prefix);
    if (want_params) CHECK_EQ(r->n_params, want_params);
    CHECK(r->run_id > 0);
    if (rc == 0 && want) {
        CHECK_EQ(lua_logits(db, r->ckpt_path, tok, sigma, T, lp, sample_n ? r->run_id : 0, sampler,
                            sample_n),
                 0);
        size_t nv = (size_t)T * mc.vocab;
        float *got = read_floats(lp, nv);
        double scale, d = max_diff(got, want, nv, &scale);
        if (dtype == ST_F32) {
            CHECK(d == 0.0);
        } else {
            CHECK(max_diff(got, want_r, nv, NULL) == 0.0);
            /* bf16 keeps 8 bits: relative weight error <= 2^-9, through the layers a few % */
            CHECK(d <= 0.05 * scale + 1e-3);
        }
        fprintf(stderr, "%s: max |logit difference| %.3g (logits up to %.3g)\n", tag, d, scale);
        torch_check(tag, src, tok, sigma, T, got, nv);
        free(got);
    }
    free(want);
    free(want_r);
    free(r);
}

/* Refusals: a config without the model section, a pickle only, an unknown tensor. */
static void test_refusals(void) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/bad", tmpdir);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{\"tokenizer\":{\"tokens\":50257}}");
    hub_import_opts o = {.src = dir, .out_dir = dir};
    hub_import_result *r = calloc(1, sizeof *r);
    error e = {0};
    CHECK(hub_import(&o, r, &e) != 0);
    CHECK(strstr(e.msg, "no 'model' section") != NULL);
    write_text(path, "{\"model\":{\"hidden_size\":32,\"n_heads\":2,\"n_blocks\":1,"
                     "\"length\":8},\"model_type\":\"epsilon_hybrid\"}");
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    write_text(path, "PK");
    CHECK(hub_import(&o, r, &e) != 0);
    CHECK(strstr(e.msg, "scripts/convert_pth.py") != NULL);
    free(r);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hdlm_test_import_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* tiny models over the GPT-2 vocabulary + mask: ε in F32 under "module.", γ in BF16 */
    model_config tiny = {
        .vocab = 50258, .d_model = 32, .n_layer = 2, .n_head = 2, .seq_len = 16, .mask_id = 50257};
    model_config te = tiny, tg = tiny;
    tg.cond = 1, tg.mix_gamma = 0.01f;
    roundtrip("tiny-eps", 'e', te, ST_F32, "module.", 4, 4, 8, "ancestral", 0);
    roundtrip("tiny-gamma", 'g', tg, ST_BF16, "", 16, 8, 8, "analytic", 0);
    roundtrip("tiny-gamma-f32", 'g', tg, ST_F32, "backbone.", 16, 8, 0, NULL, 0);
    test_refusals();
    /* the released shapes: 768 x 12, 12 heads, length 1024, vocab 50257 + mask. Parameter counts
     * of the reference's DDiT; hdlm's tensors are the same (no buffers are counted). */
    /* skipped under the sanitizers (HDLM_SANITIZED: ~10x slower, several GB of shadow memory);
     * the release build of the suite runs it */
    if (!getenv("HDLM_SKIP_LARGE") && !getenv("HDLM_SANITIZED")) {
        model_config big = {.vocab = 50258,
                            .d_model = 768,
                            .n_layer = 12,
                            .n_head = 12,
                            .seq_len = 1024,
                            .mask_id = 50257};
        model_config be = big, bg = big;
        bg.cond = 1, bg.mix_gamma = 0.01f;
        roundtrip("base-eps", 'e', be, ST_BF16, "", 1024, 1024, 0, NULL, 162246482);
        roundtrip("base-gamma", 'g', bg, ST_F32, "", 1024, 2048, 0, NULL, 169429074);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_import");
}
