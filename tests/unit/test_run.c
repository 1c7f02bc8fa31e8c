/* core/run: the result record (its Lua and stored renderings must agree with what the bindings
 * always stored: sorted keys, integers kept, nested objects sorted), the option-key check, and
 * run_load's refusals of runs that cannot be brought back, each naming the run. */
#include "check.h"
#include "run/record.h"
#include "run/run.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_json(const record *r, const char *want) {
    json_buf b = {0};
    CHECK_EQ(record_write_json(r, &b), HDLM_OK);
    CHECK_STR(b.data, want);
    json_buf_free(&b);
}

static void test_record(void) {
    record r = {0};
    record_num(&r, "nats", 1.25);
    record_int(&r, "sequences", 64);
    record_str(&r, "estimator", "consistent");
    record_bool(&r, "exact", 0);
    record_num(&r, "se", NAN);   /* NaN: null, as Lua's NaN encodes */
    record_num(&r, "bits", 3.0); /* an integral double: shortest form */
    record_json(&r, "schedule",
                "{\"version\":\"1\",\"options\":{\"width\":4,\"a\":0.5},"
                "\"name\":\"block_annealing\",\"empty\":[]}");
    check_json(&r, "{\"bits\":3,\"estimator\":\"consistent\",\"exact\":false,\"nats\":1.25,"
                   "\"schedule\":{\"empty\":{},\"name\":\"block_annealing\",\"options\":{\"a\":"
                   "0.5,\"width\":4},\"version\":\"1\"},\"se\":null,\"sequences\":64}");
    /* setting again replaces (the value and its kind) */
    record_str(&r, "nats", "x");
    CHECK_EQ(record_get(&r, "nats")->kind, RECORD_STR);
    CHECK_STR(record_get(&r, "nats")->s, "x");
    CHECK(record_get(&r, "missing") == NULL);
    CHECK_EQ(r.n, 7);
    record_free(&r);
    CHECK_EQ(r.n, 0);

    /* a sample's settings merged in: integers stay integers, later keys win */
    record_int(&r, "length", 1);
    record_merge_object(&r, "{\"length\":32,\"top_p\":0.9,\"cache\":true,\"tokenizer\":\"bytes\","
                            "\"nested\":{\"z\":1,\"y\":[1,2]}}");
    CHECK_EQ(record_get(&r, "length")->kind, RECORD_INT);
    CHECK_EQ(record_get(&r, "length")->i, 32);
    CHECK_EQ(record_get(&r, "top_p")->kind, RECORD_NUM);
    CHECK_EQ(record_get(&r, "cache")->kind, RECORD_BOOL);
    check_json(&r, "{\"cache\":true,\"length\":32,\"nested\":{\"y\":[1,2],\"z\":1},"
                   "\"tokenizer\":\"bytes\",\"top_p\":0.9}");
    record_merge_object(&r, "not json"); /* ignored */
    record_merge_object(&r, "[1]");      /* not an object: ignored */
    CHECK_EQ(r.n, 5);
    record_free(&r);
}

static void test_check_key(void) {
    static const char *const keys[] = {"mc", "seed", "sequences", NULL};
    error e = {0};
    CHECK_EQ(run_check_key("seed", keys, "run:eval", &e), HDLM_OK);
    CHECK_EQ(run_check_key("mcc", keys, "run:eval", &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "run:eval: unknown key 'mcc' (did you mean 'mc'?); allowed: mc, seed, "
                     "sequences");
    CHECK_EQ(run_check_key("zzzzzzzz", keys, "run:eval", &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "run:eval: unknown key 'zzzzzzzz'; allowed: mc, seed, sequences");
}

static int64_t new_run(store *st, const char *config) {
    store_run_info info = {.name = "r", .kind = "train", .config_json = config};
    int64_t id = 0;
    error e = {0};
    CHECK_EQ(store_run_begin(st, &info, &id, &e), HDLM_OK);
    return id;
}

static void expect_refusal(store *st, int64_t id, plugin_registry *reg, const char *want) {
    run r;
    error e = {0};
    CHECK(run_load(st, id, reg, &r, &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, want);
    CHECK(r.m == NULL && r.noise == NULL); /* nothing left to free */
}

static void test_load_refusals(const char *dir) {
    char path[256], msg[512];
    snprintf(path, sizeof path, "%s/runs.db", dir);
    store *st = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &st, &e), HDLM_OK);
    if (!st) return;
    plugin_registry *reg = NULL;
    CHECK_EQ(plugin_registry_open(&reg, &e), HDLM_OK);
    snprintf(msg, sizeof msg, "no run 99 in %s", path);
    expect_refusal(st, 99, reg, msg);
    int64_t id = new_run(st, "{\"context\":\"causal\"}");
    expect_refusal(st, id, reg, "has no checkpoint; train with checkpoint_dir");
    int64_t ck = 0;
    char ckpt[300];
    snprintf(ckpt, sizeof ckpt, "%s/gone/step_00000010.safetensors", dir);
    CHECK_EQ(store_checkpoint(st, id, 10, ckpt, "00", 1, &ck, &e), HDLM_OK);
    expect_refusal(st, id, reg, "was not trained with a noise process and a schedule");
    CHECK_EQ(store_run_plugin(st, id, "noise", "epsilon_hybrid", "1", 1, NULL, NULL, "{}", &e),
             HDLM_OK);
    CHECK_EQ(store_run_plugin(st, id, "schedule", "mine", "lua", 0, NULL, NULL, NULL, &e), HDLM_OK);
    snprintf(msg, sizeof msg, "run %lld used a schedule written in Lua ('mine')", (long long)id);
    expect_refusal(st, id, reg, msg);
    /* a plugin schedule, but the weights file is gone: the message names it */
    int64_t id2 = new_run(st, NULL);
    CHECK_EQ(store_checkpoint(st, id2, 10, ckpt, "00", 1, &ck, &e), HDLM_OK);
    CHECK_EQ(store_run_plugin(st, id2, "noise", "epsilon_hybrid", "1", 1, NULL, NULL, "{}", &e),
             HDLM_OK);
    CHECK_EQ(store_run_plugin(st, id2, "schedule", "block_annealing", "1", 1, NULL, NULL,
                              "{\"width\":4}", &e),
             HDLM_OK);
    expect_refusal(st, id2, reg, ckpt);
    plugin_registry_close(reg);
    store_close(st);
}

static void test_opts_from_json(void) {
    plugin_opts *o = NULL;
    error e = {0};
    CHECK_EQ(run_opts_from_json("{\"width\":4,\"rule\":\"cap\",\"continuous\":true}", &o, &e),
             HDLM_OK);
    CHECK_EQ(plugin_opts_count(o), 3);
    double v = 0;
    const char *s = NULL;
    CHECK_EQ(plugin_opts_number(o, "width", &v), HDLM_OK);
    CHECK_EQ(v, 4);
    CHECK_EQ(plugin_opts_number(o, "continuous", &v), HDLM_OK);
    CHECK_EQ(v, 1);
    CHECK_EQ(plugin_opts_string(o, "rule", &s), HDLM_OK);
    CHECK_STR(s, "cap");
    plugin_opts_free(o);
    CHECK(run_opts_from_json("{\"width\":", &o, &e) != HDLM_OK);
    CHECK(o == NULL);
    CHECK_CONTAINS(e.msg, "JSON");
}

int main(void) {
    char dir[] = "/tmp/hdlm_test_run_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_record();
    test_check_key();
    test_opts_from_json();
    test_load_refusals(dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_report("test_run");
}
