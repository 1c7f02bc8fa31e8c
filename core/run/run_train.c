/* Training into a run's row (run_train.h). */
#include "run/run_train.h"

#include "base/interrupt.h"
#include "base/progress.h"
#include "base/provenance.h"
#include "base/sha256.h"
#include "dist/dist.h"
#include "tensor/blas.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the row ------------------------------------------------------------------------------- */

int run_begin(store *st, const run_script *scr, const char *name, const char *kind, int64_t seed,
              const char *config, int64_t resumed_from, int64_t *id, error *e) {
    provenance p;
    provenance_collect(&p);
    store_run_info info = {
        .name = name,
        .kind = kind,
        .config_json = config,
        .seed = seed,
        .git_rev = p.git_rev,
        .git_dirty = p.git_dirty,
        .host = p.host,
        .cpu = p.cpu,
        .blas = blas_info(),
        .threads = blas_get_threads(),
        .world_size = dist_size(),
        .script = scr->path,
        .hdlm_version = HDLM_VERSION,
        .script_sha256 = scr->sha256,
        .script_text = scr->text,
        .script_bytes = (int64_t)scr->bytes,
        .resumed_from = resumed_from,
    };
    /* rank 0 inserts the row; everyone gets its id (or its failure) */
    struct {
        int rc;
        int64_t id;
        error e;
    } got = {HDLM_OK, 0, {0}};
    got.rc = store_run_begin(st, &info, &got.id, &got.e);
    if (dist_broadcast(&got, sizeof got, 0, e) != HDLM_OK) return e->code;
    if (got.rc != HDLM_OK) {
        *e = got.e;
        return got.rc;
    }
    *id = got.id;
    return HDLM_OK;
}

typedef struct run_match {
    char status[16], kind[16];
    int same_name, same_config, same_code;
} run_match;

static int first_id(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol >= 1 && vals[0].type == STORE_INT) *(int64_t *)ud = vals[0].i;
    return 1;
}

static int read_match(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    run_match *m = ud;
    if (ncol < 5) return 1;
    snprintf(m->status, sizeof m->status, "%s", vals[0].s ? vals[0].s : "");
    m->same_name = (int)vals[1].i;
    m->same_config = (int)vals[2].i;
    m->same_code = (int)vals[3].i;
    snprintf(m->kind, sizeof m->kind, "%s", vals[4].s ? vals[4].s : "");
    return 1;
}

static store_value text_value(const char *s) {
    store_value v = {.type = s ? STORE_TEXT : STORE_NULL, .s = s};
    return v;
}

/* R of run_train.h: the run whose checkpoints this training resumed from (0 = none). */
static int resumed_run(store *st, const run_train_info *ti, int64_t *r, error *e) {
    char dir_slash[1100];
    snprintf(dir_slash, sizeof dir_slash, "%s/", ti->ckpt_dir);
    store_value pv[2] = {text_value(ti->ckpt_path), text_value(ti->given_path)};
    int rc = store_query_params(st,
                                "SELECT run_id FROM checkpoints WHERE path IN (?1, ?2) ORDER BY "
                                "id DESC LIMIT 1",
                                2, pv, first_id, r, e);
    if (rc == HDLM_OK && !*r) {
        pv[0] = text_value(dir_slash);
        rc = store_query_params(st,
                                "SELECT run_id FROM checkpoints WHERE substr(path, 1, "
                                "length(?1)) = ?1 ORDER BY id DESC LIMIT 1",
                                1, pv, first_id, r, e);
    }
    if (rc == HDLM_OK && !*r) {
        pv[0] = text_value(ti->ckpt_dir);
        rc = store_query_params(st,
                                "SELECT id FROM runs WHERE kind = 'train' AND "
                                "json_extract(config, '$.checkpoint_dir') = ?1 ORDER BY id "
                                "DESC LIMIT 1",
                                1, pv, first_id, r, e);
    }
    return rc;
}

static int plan_target(store *st, const run_train_info *ti, const char *name, run_train_target *out,
                       error *e) {
    out->mode = RUN_TRAIN_NEW;
    if (!ti->resumed) return HDLM_OK;
    int64_t r = 0;
    int rc = resumed_run(st, ti, &r, e);
    if (rc != HDLM_OK || !r) return rc;
    provenance p;
    provenance_collect(&p);
    run_match m = {0};
    store_value q[5] = {{.type = STORE_INT, .i = r},
                        text_value(name),
                        text_value(ti->config_json),
                        text_value(p.git_rev),
                        text_value(HDLM_VERSION)};
    rc = store_query_params(st,
                            "SELECT status, name IS ?2, json_remove(config, '$.stop_after', "
                            "'$.resume', '$.threads') IS json_remove(?3, '$.stop_after', "
                            "'$.resume', '$.threads'), git_rev IS ?4 AND hdlm_version IS ?5, "
                            "kind FROM runs WHERE id = ?1",
                            5, q, read_match, &m, e);
    if (rc != HDLM_OK) return rc;
    int train = !strcmp(m.kind, "train") && m.same_name;
    int ended = !strcmp(m.status, "interrupted") || !strcmp(m.status, "failed") ||
                !strcmp(m.status, "done");
    if (train && !strcmp(m.status, "done") && ti->step >= ti->steps) {
        out->mode = RUN_TRAIN_EXISTING;
        out->id = r;
    } else if (train && ended && m.same_config && m.same_code) {
        out->mode = RUN_TRAIN_CONTINUE;
        out->id = r;
    } else {
        out->from = r;
    }
    return HDLM_OK;
}

int run_train_choose(store *st, const run_train_info *ti, const char *name, run_train_target *out,
                     error *e) {
    struct {
        int rc;
        run_train_target t;
        error e;
    } chosen = {HDLM_OK, {RUN_TRAIN_NEW, 0, 0}, {0}};
    if (dist_rank() == 0) {
        chosen.rc = plan_target(st, ti, name, &chosen.t, &chosen.e);
        if (chosen.rc == HDLM_OK && chosen.t.mode == RUN_TRAIN_CONTINUE)
            chosen.rc = store_run_continue(st, chosen.t.id, ti->step, &chosen.e);
    }
    if (dist_broadcast(&chosen, sizeof chosen, 0, e) != HDLM_OK) return e->code;
    if (chosen.rc != HDLM_OK) {
        *e = chosen.e;
        return chosen.rc;
    }
    *out = chosen.t;
    return HDLM_OK;
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* Rank 0's outcome of work only it does (checkpoint files, their rows): every rank leaves the
 * training loop together, with the same status and message. Returns the shared status. */
static int share_status(int rc, error *e) {
    if (dist_size() < 2) return rc;
    struct {
        int rc;
        error e;
    } out = {rc, *e};
    error be = {0};
    if (dist_broadcast(&out, sizeof out, 0, &be) != HDLM_OK) {
        *e = be;
        return be.code;
    }
    if (out.rc != HDLM_OK) *e = out.e;
    return out.rc;
}

/* Writes a checkpoint of the current step and its row, with the SHA-256 and size of the weights
 * file so that what a later `hdlm sample` loads can be checked against it (rank 0; a collective
 * call). */
static int save_checkpoint(trainer *t, store *st, int64_t run_id, int lead, error *e) {
    int rc = trainer_sync(t, e);
    if (rc != HDLM_OK) return rc;
    if (lead) {
        char path[1200], hash[65] = "";
        int64_t cid;
        struct stat sb;
        /* metrics up to this step are durable before `latest` names it: a run killed
         * in between and resumed from here then logs every step once */
        rc = store_flush(st, e);
        /* a failed save (disk full, unwritable directory) leaves `latest` on the previous
         * complete set; the run fails rather than train on without a way back */
        if (rc == HDLM_OK && (rc = trainer_save(t, path, sizeof path, e)) != HDLM_OK)
            error_wrap(e, "checkpoint of step %lld failed (`latest` still names the previous one)",
                       (long long)t->step);
        if (rc == HDLM_OK) rc = sha256_hex_file(path, hash, e);
        if (rc == HDLM_OK && stat(path, &sb) != 0)
            rc = error_set(e, HDLM_EIO, "%s: cannot read its size: %s", path, strerror(errno));
        if (rc == HDLM_OK)
            rc = store_checkpoint(st, run_id, t->step, path, hash, (int64_t)sb.st_size, &cid, e);
        if (rc == HDLM_OK) rc = store_flush(st, e);
    }
    return share_status(rc, e);
}

static int record_plugin(store *st, int64_t run_id, const char *kind, const plugin_instance *pi,
                         error *e) {
    const hdlm_plugin *d = pi->entry->desc;
    char *opts = plugin_opts_json(pi->opts);
    int rc = store_run_plugin(st, run_id, kind, d->name, d->version, (int)d->abi_version,
                              pi->entry->file, pi->entry->hash, opts, e);
    free(opts);
    return rc;
}

static int record_plugins(const run_train_method *pm, store *st, int64_t run_id, error *e) {
    if (!pm->noise) return HDLM_OK;
    int rc = record_plugin(st, run_id, "noise", pm->noise, e);
    if (rc == HDLM_OK && pm->sched) return record_plugin(st, run_id, "schedule", pm->sched, e);
    /* a schedule written in Lua */
    const char *nm = pm->h && pm->h->name ? pm->h->name : "lua";
    if (rc == HDLM_OK)
        rc = store_run_plugin(st, run_id, "schedule", nm, "lua", 0, NULL, NULL, NULL, e);
    return rc;
}

static int log_step(trainer *t, const train_stats *s, store *st, int64_t run_id, error *e) {
    store_metric(st, run_id, t->step, "loss", s->loss, e);
    store_metric(st, run_id, t->step, "lr", s->lr, e);
    store_metric(st, run_id, t->step, "grad_norm", s->grad_norm, e);
    store_metric(st, run_id, t->step, "tokens_per_s", s->tokens_per_s, e);
    if (t->world > 1) store_metric(st, run_id, t->step, "allreduce_time", s->comm_time, e);
    return store_metric(st, run_id, t->step, "step_time", s->step_time, e);
}

typedef struct loop_state {
    train_stats s;
    double tok_s_sum, comm_sum;
    int tok_s_n;
    int64_t start, saved_at;
} loop_state;

/* One optimizer step with its logging, evaluation and checkpoint; HDLM_OK to go on, 1 to stop
 * (stop_after reached), an error otherwise (a signal is one: the run ends interrupted). */
static int loop_step(trainer *t, int64_t stop_after, store *st, int64_t run_id, int lead,
                     loop_state *ls, progress *pg, error *e) {
    const train_config *cfg = &t->cfg;
    int rc = trainer_step(t, &ls->s, e);
    if (rc != HDLM_OK) return rc;
    if (t->step > ls->start + 1) { /* the first step includes allocation */
        ls->tok_s_sum += ls->s.tokens_per_s;
        ls->comm_sum += ls->s.comm_time;
        ls->tok_s_n++;
    }
    if ((t->step % cfg->log_every == 0 || t->step == cfg->steps) &&
        (rc = log_step(t, &ls->s, st, run_id, e)) != HDLM_OK)
        return rc;
    if (cfg->eval_every > 0 && (t->step % cfg->eval_every == 0 || t->step == cfg->steps)) {
        double vl;
        if ((rc = trainer_eval(t, t->opt.ema != NULL, &vl, e)) != HDLM_OK) return rc;
        store_metric(st, run_id, t->step, "valid_loss", vl, e);
    }
    if (cfg->ckpt_every > 0 && cfg->ckpt_dir[0] && t->step % cfg->ckpt_every == 0) {
        if ((rc = save_checkpoint(t, st, run_id, lead, e)) != HDLM_OK) return rc;
        ls->saved_at = t->step;
    }
    progress_update(pg, t->step, ls->s.tokens_per_s, "tok/s", ls->s.loss);
    int sig = interrupt_signal();
    if (sig) { /* graceful stop: the step is done; keep it, then leave as 'interrupted' */
        if (cfg->ckpt_dir[0] && ls->saved_at != t->step &&
            (rc = save_checkpoint(t, st, run_id, lead, e)) != HDLM_OK)
            return rc;
        return error_set(e, HDLM_ESTATE, "interrupted by %s at step %lld (%s)", interrupt_name(sig),
                         (long long)t->step,
                         cfg->ckpt_dir[0] ? "checkpoint written; run again to resume"
                                          : "no checkpoint_dir: progress not saved");
    }
    return stop_after > 0 && t->step >= stop_after ? 1 : HDLM_OK;
}

static int train_loop(trainer *t, const run_train_method *pm, int64_t stop_after, store *st,
                      int64_t run_id, loop_state *ls, error *e) {
    const train_config *cfg = &t->cfg;
    /* data parallel (dist.h): every rank trains its share of each batch; rank 0 alone writes
     * checkpoints, reports progress, and its store takes the rows (the others' drops them) */
    int lead = dist_rank() == 0;
    int rc = record_plugins(pm, st, run_id, e);
    if (rc != HDLM_OK) return rc;
    store_metric(st, run_id, 0, "params", (double)t->m.n_params, e);
    progress pg;
    progress_init(&pg, NULL, "train", cfg->steps);
    if (!lead) pg.out = NULL;
    ls->saved_at = -1;
    /* SIGINT/SIGTERM stop at the next step boundary (interrupt.h). Single process only: with
     * several ranks they would have to agree on the step to stop at, so a signal keeps its
     * default action there (the run is reaped as interrupted and resumes from `latest`). */
    int armed = dist_size() < 2;
    if (armed) interrupt_arm();
    while (rc == HDLM_OK && t->step < cfg->steps)
        rc = loop_step(t, stop_after, st, run_id, lead, ls, &pg, e);
    if (rc == 1) rc = HDLM_OK;
    /* a run with a checkpoint_dir ends with a checkpoint of the step it reached, whatever
     * ckpt_every is (the last step, or stop_after's), so that it can be sampled and resumed */
    if (rc == HDLM_OK && cfg->ckpt_dir[0] && t->step > ls->start && ls->saved_at != t->step)
        rc = save_checkpoint(t, st, run_id, lead, e);
    if (armed) interrupt_disarm();
    progress_finish(&pg);
    return rc;
}

/* The last logged training loss of a run (NaN when none): the summary of a call that trained no
 * step (its run finished earlier), instead of the 0 of a step never taken. */
static int last_loss_row(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol >= 1 && (vals[0].type == STORE_REAL || vals[0].type == STORE_INT))
        *(double *)ud = vals[0].d;
    return 1;
}

static double last_loss(store *st, int64_t run_id) {
    double v = NAN;
    store_value p = {.type = STORE_INT, .i = run_id};
    if (run_id > 0)
        store_query_params(st,
                           "SELECT value FROM metrics WHERE run_id = ? AND name = 'loss' ORDER BY "
                           "step DESC LIMIT 1",
                           1, &p, last_loss_row, &v, NULL);
    return v;
}

int run_train(trainer *t, const run_train_method *pm, int64_t stop_after, store *st, int64_t run_id,
              int train, int64_t history_run, run_train_summary *out, error *e) {
    loop_state ls = {.start = t->step};
    if (train) {
        int rc = train_loop(t, pm, stop_after, st, run_id, &ls, e);
        if (rc != HDLM_OK) return rc;
    }
    /* hand the model over (EMA weights in front: evaluation and sampling use them) */
    int rc = trainer_swap_ema(t, e);
    if (rc != HDLM_OK) return rc;
    int64_t steps_done = t->step; /* also right when a resumed run had nothing left to do */
    int trained = steps_done > ls.start;
    out->loss = trained ? ls.s.loss : last_loss(st, history_run > 0 ? history_run : run_id);
    out->tokens_per_s = ls.tok_s_n ? ls.tok_s_sum / ls.tok_s_n : trained ? ls.s.tokens_per_s : NAN;
    out->allreduce_time = ls.tok_s_n ? ls.comm_sum / ls.tok_s_n : ls.s.comm_time;
    out->world = t->world;
    out->steps = steps_done;
    out->steps_trained = steps_done - ls.start;
    return HDLM_OK;
}
