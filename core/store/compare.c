/* Paired comparison of two runs' likelihood bounds over the same sequences (evaluation_items),
 * and the unpaired difference of their generation NLLs. Reads the store through its query
 * interface only. Pairing matters: two models scored on the same sequences share the sequences'
 * difficulty, so the standard error of the per-sequence differences is usually far smaller than
 * the two standard errors combined. */
#include "store/compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct name_row {
    int64_t a, b;
    compare_result *out;
    int found_a, found_b;
} name_row;

static int read_names(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    name_row *n = ud;
    compare_side *side = vals[0].i == n->a ? &n->out->a : &n->out->b;
    if (vals[0].i == n->a) n->found_a = 1;
    if (vals[0].i == n->b) n->found_b = 1;
    snprintf(side->run_name, sizeof side->run_name, "%s", vals[1].s ? vals[1].s : "");
    return 0;
}

static void copy_text(char *dst, size_t cap, const store_value *v) {
    snprintf(dst, cap, "%s", v->type == STORE_TEXT && v->s ? v->s : "");
}

static double real_or_nan(const store_value *v) {
    return v->type == STORE_REAL || v->type == STORE_INT ? v->d : NAN;
}

static int read_pair(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    compare_result *r = ud;
    r->has_bound = 1;
    r->a.evaluation_id = vals[0].i;
    r->b.evaluation_id = vals[1].i;
    r->a.value = real_or_nan(&vals[2]);
    r->a.se = real_or_nan(&vals[3]);
    r->b.value = real_or_nan(&vals[4]);
    r->b.se = real_or_nan(&vals[5]);
    copy_text(r->estimator, sizeof r->estimator, &vals[6]);
    copy_text(r->split, sizeof r->split, &vals[7]);
    copy_text(r->sequences_sha256, sizeof r->sequences_sha256, &vals[8]);
    copy_text(r->data, sizeof r->data, &vals[9]);
    r->length = vals[10].type == STORE_INT ? vals[10].i : 0;
    return 1;
}

/* Running sums of the paired differences (Welford, so that many items stay accurate). */
typedef struct diff_acc {
    int64_t n, a_lower, a_items, b_items;
    double mean, m2;
} diff_acc;

static int add_diff(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    diff_acc *d = ud;
    double x = vals[1].d - vals[2].d;
    d->n++;
    double delta = x - d->mean;
    d->mean += delta / (double)d->n;
    d->m2 += delta * (x - d->mean);
    d->a_lower += vals[1].d < vals[2].d;
    return 0;
}

static int read_int(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    *(int64_t *)ud = vals[0].type == STORE_INT ? vals[0].i : 0;
    return 1;
}

/* One line describing a run's latest bound, for the refusal: what it was computed on. */
typedef struct latest_bound {
    int found;
    int64_t id, items, sequences, length;
    char split[16], estimator[32], sha[65];
} latest_bound;

static int read_latest(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    latest_bound *l = ud;
    l->found = 1;
    l->id = vals[0].i;
    l->items = vals[1].i;
    l->sequences = vals[2].type == STORE_INT ? vals[2].i : 0;
    l->length = vals[3].type == STORE_INT ? vals[3].i : 0;
    copy_text(l->split, sizeof l->split, &vals[4]);
    copy_text(l->estimator, sizeof l->estimator, &vals[5]);
    copy_text(l->sha, sizeof l->sha, &vals[6]);
    return 1;
}

static int latest_bound_of(store *s, int64_t run, latest_bound *l, error *e) {
    memset(l, 0, sizeof *l);
    store_value p = {.type = STORE_INT, .i = run};
    return store_query_params(
        s,
        "SELECT id, (SELECT count(*) FROM evaluation_items WHERE evaluation_id = e.id), "
        "json_extract(settings, '$.sequences'), json_extract(settings, '$.length'), "
        "json_extract(settings, '$.split'), json_extract(settings, '$.estimator'), "
        "json_extract(settings, '$.sequences_sha256') FROM evaluations e WHERE run_id = ? AND "
        "metric = 'nll_bound' ORDER BY (SELECT count(*) FROM evaluation_items WHERE "
        "evaluation_id = e.id) > 0 DESC, id DESC LIMIT 1",
        1, &p, read_latest, l, e);
}

static void describe(const latest_bound *l, int64_t run, char *out, size_t cap) {
    if (!l->found)
        snprintf(out, cap, "run %lld has no nll_bound evaluation (hdlm eval --run %lld)",
                 (long long)run, (long long)run);
    else if (!l->items)
        snprintf(out, cap,
                 "run %lld's bounds have no per-sequence values (stored before hdlm kept them; "
                 "evaluate it again: hdlm eval --run %lld)",
                 (long long)run, (long long)run);
    else
        snprintf(out, cap,
                 "run %lld's latest bound (evaluation %lld): %lld %s sequences of %lld "
                 "tokens, %s estimator, sequences sha256 %.12s",
                 (long long)run, (long long)l->id, (long long)l->sequences, l->split,
                 (long long)l->length, l->estimator, l->sha);
}

static int read_gen(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    compare_result *r = ud;
    r->has_gen = 1;
    r->gen_a.evaluation_id = vals[0].i;
    r->gen_b.evaluation_id = vals[1].i;
    r->gen_a.value = real_or_nan(&vals[2]);
    r->gen_a.se = real_or_nan(&vals[3]);
    r->gen_b.value = real_or_nan(&vals[4]);
    r->gen_b.se = real_or_nan(&vals[5]);
    r->judge_run = vals[6].type == STORE_INT ? vals[6].i : 0;
    r->gen_a.n = vals[7].type == STORE_INT ? vals[7].i : 0;
    r->gen_b.n = vals[8].type == STORE_INT ? vals[8].i : 0;
    return 1;
}

int store_compare(store *s, int64_t a, int64_t b, compare_result *out, error *e) {
    memset(out, 0, sizeof *out);
    const char *path = store_path(s);
    if (a == b)
        return error_set(e, HDLM_EINVAL, "compare: run %lld with itself; give two different runs",
                         (long long)a);
    name_row nr = {a, b, out, 0, 0};
    store_value ab[2] = {{.type = STORE_INT, .i = a}, {.type = STORE_INT, .i = b}};
    int rc = store_query_params(s, "SELECT id, name FROM runs WHERE id IN (?1, ?2)", 2, ab,
                                read_names, &nr, e);
    if (rc != HDLM_OK) return rc;
    if (!nr.found_a || !nr.found_b)
        return error_set(e, HDLM_EINVAL, "compare: no run %lld in %s",
                         (long long)(nr.found_a ? b : a), path);
    out->a.run_id = out->gen_a.run_id = a;
    out->b.run_id = out->gen_b.run_id = b;
    memcpy(out->gen_a.run_name, out->a.run_name, sizeof out->a.run_name);
    memcpy(out->gen_b.run_name, out->b.run_name, sizeof out->b.run_name);

    /* the bound: the latest evaluation of a that has a partner in b on the same sequences with
     * the same estimator, and b's latest such partner */
    rc = store_query_params(
        s,
        "SELECT ea.id, eb.id, ea.value, ea.std_error, eb.value, eb.std_error, "
        "json_extract(ea.settings, '$.estimator'), json_extract(ea.settings, '$.split'), "
        "json_extract(ea.settings, '$.sequences_sha256'), json_extract(ea.settings, '$.data'), "
        "json_extract(ea.settings, '$.length') "
        "FROM evaluations ea JOIN evaluations eb "
        "ON json_extract(ea.settings, '$.sequences_sha256') = "
        "json_extract(eb.settings, '$.sequences_sha256') "
        "AND json_extract(ea.settings, '$.estimator') IS json_extract(eb.settings, '$.estimator') "
        "WHERE ea.run_id = ?1 AND eb.run_id = ?2 AND ea.metric = 'nll_bound' "
        "AND eb.metric = 'nll_bound' "
        "AND EXISTS (SELECT 1 FROM evaluation_items WHERE evaluation_id = ea.id) "
        "AND EXISTS (SELECT 1 FROM evaluation_items WHERE evaluation_id = eb.id) "
        "ORDER BY ea.id DESC, eb.id DESC LIMIT 1",
        2, ab, read_pair, out, e);
    if (rc != HDLM_OK) return rc;
    int bound_refused = 0;
    if (out->has_bound) {
        diff_acc d = {0};
        store_value ids[2] = {{.type = STORE_INT, .i = out->a.evaluation_id},
                              {.type = STORE_INT, .i = out->b.evaluation_id}};
        rc = store_query_params(s,
                                "SELECT x.item, x.value, y.value FROM evaluation_items x JOIN "
                                "evaluation_items y ON y.evaluation_id = ?2 AND y.item = x.item "
                                "WHERE x.evaluation_id = ?1 ORDER BY x.item",
                                2, ids, add_diff, &d, e);
        if (rc == HDLM_OK)
            rc = store_query_params(s,
                                    "SELECT count(*) FROM evaluation_items WHERE evaluation_id = ?",
                                    1, &ids[0], read_int, &d.a_items, e);
        if (rc == HDLM_OK)
            rc = store_query_params(s,
                                    "SELECT count(*) FROM evaluation_items WHERE evaluation_id = ?",
                                    1, &ids[1], read_int, &d.b_items, e);
        if (rc != HDLM_OK) return rc;
        /* the same hash with other item counts would mean a damaged row: say so, do not pair */
        if (d.n != d.a_items || d.n != d.b_items)
            return error_set(e, HDLM_EINVAL,
                             "compare: evaluations %lld (run %lld) and %lld (run %lld) name the "
                             "same sequences but hold %lld and %lld per-sequence values",
                             (long long)out->a.evaluation_id, (long long)a,
                             (long long)out->b.evaluation_id, (long long)b, (long long)d.a_items,
                             (long long)d.b_items);
        out->a.n = out->b.n = d.n;
        out->diff = d.mean;
        out->diff_se = d.n > 1 ? sqrt(d.m2 / (double)(d.n - 1) / (double)d.n) : NAN;
        out->unpaired_se = sqrt(out->a.se * out->a.se + out->b.se * out->b.se);
        out->a_lower = d.a_lower;
    } else {
        latest_bound la, lb;
        if ((rc = latest_bound_of(s, a, &la, e)) != HDLM_OK) return rc;
        if ((rc = latest_bound_of(s, b, &lb, e)) != HDLM_OK) return rc;
        char da[400], db[400];
        describe(&la, a, da, sizeof da);
        describe(&lb, b, db, sizeof db);
        /* both sides evaluated, on different sequences: comparing them would mislead */
        bound_refused = la.items && lb.items;
        if (bound_refused)
            snprintf(out->note, sizeof out->note,
                     "compare: runs %lld and %lld have no bounds on the same sequences: %s; %s. "
                     "Evaluate both on one set (the same corpus, split, length and sequences, "
                     "e.g. hdlm eval --run %lld length=%lld sequences=%lld split=%s)",
                     (long long)a, (long long)b, da, db, (long long)b, (long long)la.length,
                     (long long)la.sequences, la.split);
        else
            snprintf(out->note, sizeof out->note, "no paired bound: %s%s%s", la.items ? "" : da,
                     !la.items && !lb.items ? "; " : "", lb.items ? "" : db);
    }
    if (bound_refused) return error_set(e, HDLM_EINVAL, "%s", out->note);

    /* generation NLL: the latest pair judged by the same run */
    rc = store_query_params(
        s,
        "SELECT ea.id, eb.id, ea.value, ea.std_error, eb.value, eb.std_error, "
        "json_extract(ea.settings, '$.judge_run'), json_extract(ea.settings, '$.n_samples'), "
        "json_extract(eb.settings, '$.n_samples') "
        "FROM evaluations ea JOIN evaluations eb "
        "ON json_extract(ea.settings, '$.judge_run') IS json_extract(eb.settings, '$.judge_run') "
        "WHERE ea.run_id = ?1 AND eb.run_id = ?2 AND ea.metric = 'gen_nll' "
        "AND eb.metric = 'gen_nll' ORDER BY ea.id DESC, eb.id DESC LIMIT 1",
        2, ab, read_gen, out, e);
    if (rc != HDLM_OK) return rc;
    if (out->has_gen) {
        out->gen_diff = out->gen_a.value - out->gen_b.value;
        out->gen_diff_se = sqrt(out->gen_a.se * out->gen_a.se + out->gen_b.se * out->gen_b.se);
    }
    if (!out->has_bound && !out->has_gen)
        return error_set(e, HDLM_EINVAL,
                         "compare: nothing to compare between runs %lld and %lld: %s; and no "
                         "gen_nll evaluations of both under one judge",
                         (long long)a, (long long)b, out->note + strlen("no paired bound: "));
    return HDLM_OK;
}
