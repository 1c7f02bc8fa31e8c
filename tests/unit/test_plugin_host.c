/* Plugin host: loading the fixture plugins (good and deliberately broken ones from
 * build/tests/plugins, or $HDLM_FIXTURE_DIR), the refusal messages, lookup, option validation and
 * JSON, instance creation through the ABI (real block annealing levels from fixture_schedule),
 * create failures, the default search path and the listing. */
#include "base/log.h"
#include "base/rng.h"
#include "base/sha256.h"
#include "check.h"
#include "plugin/host.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fixture_dir(void) {
    const char *d = getenv("HDLM_FIXTURE_DIR");
    return d && *d ? d : "tests/plugins";
}

static void fixture_path(const char *file, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", fixture_dir(), file);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Registry with good_schedule.so loaded first, then the whole folder: the name clash is then
 * always blamed on duplicate_name.so, whatever the folder order. */
static plugin_registry *open_fixtures(char *refusals, size_t cap, int *n_dir) {
    plugin_registry *r = NULL;
    error e = {0};
    char path[1024];
    CHECK_EQ(plugin_registry_open(&r, &e), HDLM_OK);
    fixture_path("good_schedule.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_OK);
    refusals[0] = '\0';
    *n_dir = plugin_registry_load_dir(r, fixture_dir(), refusals, cap, &e);
    return r;
}

static void test_load_and_refusals(void) {
    char refusals[8192], expect[1024], path[1024];
    int n_dir = -1;
    plugin_registry *r = open_fixtures(refusals, sizeof refusals, &n_dir);

    /* the folder adds good_noise, good_sampler, create_fails; good_schedule was already there */
    CHECK_EQ(n_dir, 3);
    CHECK_EQ(plugin_registry_count(r), 4);
    CHECK_EQ(count_lines(refusals), 4);

    snprintf(expect, sizeof expect, "bad_abi.so: plugin ABI version %u, this hdlm expects %u",
             HDLM_ABI_VERSION + 1, HDLM_ABI_VERSION);
    CHECK_CONTAINS(refusals, expect);
    CHECK_CONTAINS(refusals, "no_entry.so: no symbol hdlm_plugin_entry (not an hdlm plugin?)");
    snprintf(expect, sizeof expect,
             "short_struct.so: descriptor 'fixture_short' is %zu bytes, this hdlm needs at least "
             "%zu (built against an older plugin.h?)",
             offsetof(hdlm_plugin, options), sizeof(hdlm_plugin));
    CHECK_CONTAINS(refusals, expect);
    CHECK_CONTAINS(refusals,
                   "duplicate_name.so: plugin name 'fixture_schedule' (schedule) is already "
                   "provided by /");
    CHECK_CONTAINS(refusals, "/good_schedule.so\n");
    CHECK(strstr(refusals, "good_noise") == NULL);
    CHECK(strstr(refusals, "create_fails") == NULL);

    /* lookup by kind and name */
    const plugin_entry *s = plugin_registry_find(r, HDLM_KIND_SCHEDULE, "fixture_schedule");
    CHECK(s != NULL);
    CHECK(plugin_registry_find(r, HDLM_KIND_NOISE, "fixture_schedule") == NULL);
    CHECK(plugin_registry_find(r, HDLM_KIND_SCHEDULE, "fixture_short") == NULL);
    CHECK(plugin_registry_find(r, HDLM_KIND_NOISE, "fixture_noise") != NULL);
    CHECK(plugin_registry_find(r, HDLM_KIND_SAMPLER, "fixture_sampler") != NULL);
    CHECK(plugin_registry_find(r, HDLM_KIND_SCHEDULE, "fixture_create_fails") != NULL);
    if (s) {
        CHECK_STR(s->desc->version, "0.1.0"); /* not duplicate_name's 9.9.9 */
        CHECK(s->file[0] == '/');
        size_t len = strlen(s->file);
        CHECK(len > 17 && !strcmp(s->file + len - 17, "/good_schedule.so"));
        char hex[65];
        error e = {0};
        CHECK_EQ(sha256_hex_file(s->file, hex, &e), HDLM_OK);
        CHECK_STR(s->hash, hex);
        CHECK_EQ(strlen(s->hash), 64);
    }
    size_t i_last = plugin_registry_count(r) - 1;
    CHECK(plugin_registry_at(r, i_last) != NULL);
    CHECK(plugin_registry_at(r, i_last + 1) == NULL);

    char names[256];
    plugin_registry_names(r, HDLM_KIND_SCHEDULE, names, sizeof names);
    CHECK_STR(names, "fixture_create_fails, fixture_schedule");
    plugin_registry_names(r, 99, names, sizeof names);
    CHECK_STR(names, "(none)");

    /* loading the same file again is a no-op, not a clash with itself */
    error e = {0};
    fixture_path("good_noise.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_OK);
    CHECK_EQ(plugin_registry_count(r), 4);

    /* a refusal leaves the registry unchanged */
    fixture_path("bad_abi.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_EPLUGIN);
    CHECK_CONTAINS(e.msg, path);
    CHECK_EQ(plugin_registry_count(r), 4);
    fixture_path("missing.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_EPLUGIN);
    CHECK_CONTAINS(e.msg, "missing.so: No such file or directory");
    CHECK(plugin_registry_load_dir(r, "/nonexistent/hdlm/plugins", NULL, 0, &e) < 0);
    CHECK_CONTAINS(e.msg, "/nonexistent/hdlm/plugins: cannot read plugin folder");
    CHECK_EQ(plugin_registry_count(r), 4);

    plugin_registry_close(r);

    /* folder order alone: duplicate_name.so sorts before good_schedule.so and wins */
    CHECK_EQ(plugin_registry_open(&r, &e), HDLM_OK);
    refusals[0] = '\0';
    CHECK_EQ(plugin_registry_load_dir(r, fixture_dir(), refusals, sizeof refusals, &e), 4);
    CHECK_CONTAINS(refusals, "good_schedule.so: plugin name 'fixture_schedule' (schedule) is "
                             "already provided by /");
    CHECK_CONTAINS(refusals, "/duplicate_name.so\n");
    s = plugin_registry_find(r, HDLM_KIND_SCHEDULE, "fixture_schedule");
    CHECK(s && !strcmp(s->desc->version, "9.9.9"));
    plugin_registry_close(r);
    plugin_registry_close(NULL);
}

/* A folder with a file that is not a shared object, a non-.so file and a directory named x.so. */
static void test_not_a_library(void) {
    char dir[] = "/tmp/hdlm_test_plugins_XXXXXX", path[1024], refusals[2048] = "";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/fake.so", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("not an ELF file\n", f);
        fclose(f);
    }
    char txt[1024], sub[1024];
    snprintf(txt, sizeof txt, "%s/readme.txt", dir);
    f = fopen(txt, "w");
    if (f) fclose(f);
    snprintf(sub, sizeof sub, "%s/sub.so", dir);
    CHECK_EQ(mkdir(sub, 0700), 0);

    plugin_registry *r = NULL;
    error e = {0};
    CHECK_EQ(plugin_registry_open(&r, &e), HDLM_OK);
    CHECK_EQ(plugin_registry_load_dir(r, dir, refusals, sizeof refusals, &e), 0);
    CHECK_EQ(count_lines(refusals), 1); /* only fake.so was tried */
    CHECK_CONTAINS(refusals, "fake.so");
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_EPLUGIN);
    CHECK_CONTAINS(e.msg, "fake.so");
    CHECK_EQ(plugin_registry_count(r), 0);
    plugin_registry_close(r);
    unlink(path);
    unlink(txt);
    rmdir(sub);
    rmdir(dir);
}

static void test_load_default(void) {
    plugin_registry *r = NULL;
    error e = {0};
    char refusals[8192] = "", path[4096];

    /* a missing default folder is not an error: zero plugins, and the listing says where */
    setenv("HDLM_PLUGIN_DIR", "/nonexistent/hdlm_default", 1);
    unsetenv("HDLM_PLUGIN_PATH");
    CHECK_EQ(plugin_registry_open(&r, &e), HDLM_OK);
    CHECK_EQ(plugin_registry_load_default(r, refusals, sizeof refusals, &e), 0);
    CHECK_STR(refusals, "");
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    plugin_registry_print(r, mem);
    fclose(mem);
    CHECK_STR(text, "(no plugins found; searched: /nonexistent/hdlm_default)\n");
    free(text);
    plugin_instance *inst = NULL;
    CHECK_EQ(
        plugin_instance_create(r, HDLM_KIND_SCHEDULE, "block_annealing", NULL, NULL, &inst, &e),
        HDLM_EINVAL);
    CHECK_STR(e.msg, "unknown schedule plugin 'block_annealing'; no schedule plugins are loaded "
                     "(searched: /nonexistent/hdlm_default)");
    CHECK(inst == NULL);
    plugin_registry_close(r);

    /* HDLM_PLUGIN_PATH: empty entries skipped, a folder listed twice is harmless, a missing
     * folder the user named is reported */
    snprintf(path, sizeof path, "::%s:%s::/nonexistent/hdlm_extra", fixture_dir(), fixture_dir());
    setenv("HDLM_PLUGIN_PATH", path, 1);
    CHECK_EQ(plugin_registry_open(&r, &e), HDLM_OK);
    CHECK_EQ(plugin_registry_load_default(r, refusals, sizeof refusals, &e), 4);
    CHECK_EQ(plugin_registry_count(r), 4);
    CHECK_CONTAINS(refusals, "/nonexistent/hdlm_extra: cannot read plugin folder");
    CHECK_EQ(count_lines(refusals), 1 + 2 * 4); /* 4 refusals per scan, scanned twice */
    plugin_registry_close(r);
    unsetenv("HDLM_PLUGIN_PATH");
    unsetenv("HDLM_PLUGIN_DIR");
}

static void test_schedule_levels(plugin_registry *r) {
    error e = {0};
    plugin_opts *o = plugin_opts_new();
    CHECK_EQ(plugin_opts_set_text(o, "width", "3"), HDLM_OK);
    CHECK_EQ(plugin_opts_set_text(o, "width", "2"), HDLM_OK); /* replaces */
    CHECK_EQ(plugin_opts_count(o), 1);
    plugin_instance *p = NULL;
    CHECK_EQ(plugin_instance_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, NULL, &p, &e),
             HDLM_OK);
    if (!p) return;
    CHECK_STR(p->entry->desc->name, "fixture_schedule");
    CHECK_EQ(plugin_opts_count(p->opts), 2); /* tau filled from its default */
    CHECK_STR(plugin_opts_key(p->opts, 0), "width");
    CHECK_STR(plugin_opts_key(p->opts, 1), "tau");
    CHECK(plugin_opts_key(p->opts, 2) == NULL);
    char *json = plugin_opts_json(p->opts);
    CHECK_STR(json, "{\"width\": 2, \"tau\": 4}");
    free(json);

    const hdlm_schedule_ops *ops = p->ops;
    CHECK_EQ(ops->head.struct_size, sizeof(hdlm_schedule_ops));
    CHECK_EQ(ops->n_levels(p->self), 4);
    CHECK_EQ(ops->n_steps(p->self, 6), 12); /* 3 blocks x tau */
    CHECK_EQ(ops->n_steps(p->self, 5), 12); /* partial last block still takes tau steps */
    int64_t block = 0;
    CHECK_EQ(ops->growth(p->self, &block), HDLM_GROW_BLOCKS);
    CHECK_EQ(block, 2);

    /* w = 2, tau = 4, L = 6: step b*tau + 1 + k puts block b at level tau-1-k */
    static const struct {
        int64_t step;
        int32_t level[6];
        int64_t n_settled;
    } want[] = {
        {0, {4, 4, 4, 4, 4, 4}, 0},  {1, {3, 3, 4, 4, 4, 4}, 0}, {4, {0, 0, 4, 4, 4, 4}, 0},
        {5, {0, 0, 3, 3, 4, 4}, 2},  {7, {0, 0, 1, 1, 4, 4}, 2}, {9, {0, 0, 0, 0, 3, 3}, 4},
        {12, {0, 0, 0, 0, 0, 0}, 4},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        int32_t level[6] = {-1, -1, -1, -1, -1, -1};
        int64_t ns = -1;
        char err[256] = "";
        CHECK_EQ(ops->levels(p->self, want[k].step, 6, level, &ns, err, sizeof err), HDLM_OK);
        CHECK_EQ(ns, want[k].n_settled);
        for (int i = 0; i < 6; i++)
            CHECK_EQ(level[i], want[k].level[i]);
    }
    char err[256] = "";
    int32_t level[6];
    int64_t ns;
    CHECK_EQ(ops->levels(p->self, 13, 6, level, &ns, err, sizeof err), HDLM_EINVAL);
    CHECK_STR(err, "step must be in 0..12 for L = 6, got 13");
    plugin_instance_destroy(p);
    plugin_instance_destroy(NULL);
}

/* Creates `name` with opts and returns the status; the message goes to e. */
static int try_create(plugin_registry *r, uint32_t kind, const char *name, plugin_opts *o,
                      error *e) {
    plugin_instance *p = NULL;
    int rc = plugin_instance_create(r, kind, name, o, NULL, &p, e);
    CHECK(rc == HDLM_OK ? p != NULL : p == NULL);
    plugin_instance_destroy(p);
    return rc;
}

static void test_option_errors(plugin_registry *r) {
    error e = {0};
    plugin_opts *o;

    o = plugin_opts_new();
    plugin_opts_set_number(o, "widht", 3);
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_schedule: unknown option 'widht'; did you mean 'width'? (allowed: "
                     "width, tau)");

    o = plugin_opts_new();
    plugin_opts_set_number(o, "zzzzzzzz", 3);
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_schedule: unknown option 'zzzzzzzz' (allowed: width, tau)");

    o = plugin_opts_new();
    plugin_opts_set_number(o, "eta", 0.5);
    CHECK_EQ(try_create(r, HDLM_KIND_SAMPLER, "fixture_sampler", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_sampler: unknown option 'eta' (this plugin takes no options)");

    o = plugin_opts_new();
    plugin_opts_set_text(o, "width", "2.5");
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_schedule: option 'width' must be an integer, got 2.5");

    o = plugin_opts_new();
    plugin_opts_set_number(o, "width", 1e19); /* integral but outside int64 */
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg,
              "fixture_schedule: option 'width' must be an integer, got 10000000000000000000");

    o = plugin_opts_new();
    plugin_opts_set_text(o, "tau", "many");
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_schedule: option 'tau' must be an integer, got string 'many'");

    o = plugin_opts_new();
    plugin_opts_set_string(o, "process", "cosine");
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg,
              "fixture_noise: option 'process' must be one of loglinear|geometric, got 'cosine'");

    o = plugin_opts_new();
    plugin_opts_set_number(o, "process", 3);
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_noise: option 'process' must be a string, got number 3");

    o = plugin_opts_new();
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_noise: option 'vocab' (number of real tokens) must be an integer in "
                     "2..16777216, got none");
    o = plugin_opts_new();
    plugin_opts_set_number(o, "vocab", 1.5);
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);

    o = plugin_opts_new();
    plugin_opts_set_string(o, "eps", "small");
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_noise: option 'eps' must be a number, got string 'small'");

    o = plugin_opts_new();
    plugin_opts_set_bool(o, "eps", 1);
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_noise: option 'eps' must be a number, got bool true");

    o = plugin_opts_new();
    plugin_opts_set_number(o, "eps", NAN);
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_noise: option 'eps' must be a finite number, got number nan");

    o = plugin_opts_new();
    plugin_opts_set_number(o, "conditioned", 2);
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(try_create(r, HDLM_KIND_NOISE, "fixture_noise", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_noise: option 'conditioned' must be a bool (true/false or 0/1), got "
                     "number 2");

    /* the plugin's own range check, reported through the host */
    o = plugin_opts_new();
    plugin_opts_set_number(o, "width", 0);
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedule", o, &e), HDLM_EPLUGIN);
    CHECK_STR(e.msg, "fixture_schedule: width must be >= 1, got 0");
}

static void test_defaults_and_json(plugin_registry *r) {
    error e = {0};
    const plugin_entry *noise = plugin_registry_find(r, HDLM_KIND_NOISE, "fixture_noise");
    CHECK(noise != NULL);
    if (!noise) return;

    /* every default filled, declaration order */
    plugin_opts *o = plugin_opts_new();
    CHECK_EQ(plugin_opts_validate(o, noise->desc->options, "fixture_noise", &e), HDLM_OK);
    char *json = plugin_opts_json(o);
    CHECK_STR(json, "{\"eps\": 0.01, \"process\": \"loglinear\", \"extra\": 1, "
                    "\"conditioned\": false}");
    free(json);
    /* validating a validated set changes nothing */
    CHECK_EQ(plugin_opts_validate(o, noise->desc->options, "fixture_noise", &e), HDLM_OK);
    CHECK_EQ(plugin_opts_count(o), 4);
    plugin_opts_free(o);

    /* given out of order, a number standing for a bool, text parsing */
    o = plugin_opts_new();
    plugin_opts_set_number(o, "conditioned", 1);
    plugin_opts_set_text(o, "process", "geometric");
    plugin_opts_set_text(o, "eps", "5e-1");
    plugin_opts_set_text(o, "extra", "3");
    CHECK_EQ(plugin_opts_validate(o, noise->desc->options, "fixture_noise", &e), HDLM_OK);
    json = plugin_opts_json(o);
    CHECK_STR(json, "{\"eps\": 0.5, \"process\": \"geometric\", \"extra\": 3, "
                    "\"conditioned\": true}");
    free(json);
    double v = -1;
    const char *s = NULL;
    CHECK_EQ(plugin_opts_number(o, "conditioned", &v), HDLM_OK);
    CHECK_EQ(v, 1);
    CHECK_EQ(plugin_opts_number(o, "extra", &v), HDLM_OK);
    CHECK_EQ(v, 3);
    CHECK_EQ(plugin_opts_number(o, "process", &v), HDLM_EINVAL);
    CHECK_EQ(plugin_opts_number(o, "nope", &v), HDLM_EINVAL);
    CHECK_EQ(plugin_opts_string(o, "process", &s), HDLM_OK);
    CHECK_STR(s, "geometric");
    CHECK_EQ(plugin_opts_string(o, "eps", &s), HDLM_EINVAL);

    /* the validated values reach the plugin through the host table; its log lines carry its
     * name (stderr is captured to check) */
    plugin_instance *p = NULL;
    char logpath[] = "/tmp/hdlm_test_plugin_log_XXXXXX";
    int logfd = mkstemp(logpath), saved = dup(2);
    fflush(stderr);
    dup2(logfd, 2);
    plugin_opts_set_number(o, "vocab", 10); /* set by the host for noise */
    CHECK_EQ(plugin_instance_create(r, HDLM_KIND_NOISE, "fixture_noise", o, NULL, &p, &e), HDLM_OK);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char logtext[512] = "";
    ssize_t nlog = pread(logfd, logtext, sizeof logtext - 1, 0);
    logtext[nlog > 0 ? nlog : 0] = '\0';
    close(logfd);
    unlink(logpath);
    /* the line names the instance (plugin name # instances made by this registry so far) */
    CHECK_STR(logtext, "hdlm: warning: fixture_noise#3: conditioned = true is ignored by this "
                       "fixture\n");
    if (p) {
        const hdlm_noise_ops *ops = p->ops;
        CHECK_EQ(p->info.n_extra, 3);
        CHECK_EQ(p->info.mask_id, 10);
        CHECK_EQ(p->info.flags, HDLM_INFO_CONDITIONED);
        float t[2] = {0.5f, 1.0f}, sigma[2] = {0, 0};
        CHECK_EQ(ops->conditioning(p->self, 2, t, sigma, NULL, 0), HDLM_OK);
        CHECK_NEAR(sigma[0], 0.25, 1e-7); /* geometric: eps * t */
        CHECK_NEAR(sigma[1], 0.5, 1e-7);
        plugin_instance_destroy(p);
    }

    /* required options, text parsing, number formats and escaping, with a local declaration */
    static const hdlm_option decl[] = {
        {"rate", HDLM_OPT_NUMBER, NULL, "required", NULL},
        {"label", HDLM_OPT_STRING, "x", "any text", NULL},
        {"big", HDLM_OPT_NUMBER, "1e20", "large", NULL},
        {"flag", HDLM_OPT_BOOL, "true", "a flag", NULL},
        {NULL, 0, NULL, NULL, NULL},
    };
    o = plugin_opts_new();
    CHECK_EQ(plugin_opts_validate(o, decl, "local", &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "local: missing required option 'rate' (number)");
    plugin_opts_set_text(o, "rate", "1e-3");
    plugin_opts_set_text(o, "label", "say \"hi\"\\\n\x01");
    plugin_opts_set_text(o, "flag", "false");
    CHECK_EQ(plugin_opts_validate(o, decl, "local", &e), HDLM_OK);
    json = plugin_opts_json(o);
    CHECK_STR(json, "{\"rate\": 0.001, \"label\": \"say \\\"hi\\\"\\\\\\n\\u0001\", "
                    "\"big\": 100000000000000000000, \"flag\": false}");
    free(json);
    plugin_opts_set_number(o, "rate", 0.1);
    json = plugin_opts_json(o);
    CHECK_CONTAINS(json, "\"rate\": 0.1,");
    free(json);
    plugin_opts_set_number(o, "rate", 1.0 / 3.0);
    json = plugin_opts_json(o);
    CHECK_CONTAINS(json,
                   "\"rate\": 0.3333333333333333,"); /* shortest text that reads back exactly */
    free(json);
    plugin_opts_set_number(o, "rate", 1e300);
    json = plugin_opts_json(o);
    CHECK_CONTAINS(json, "\"rate\": 1e+300,");
    free(json);
    plugin_opts_free(o);
    plugin_opts_free(NULL);

    /* every finite number reads back bit for bit */
    const double vals[] = {0.1,    2.0 / 3.0,      3.141592653589793,  1e-300,
                           5e-324, -123456.789e10, 9007199254740993.0, 1.7976931348623157e308};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        o = plugin_opts_new();
        plugin_opts_set_number(o, "v", vals[i]);
        json = plugin_opts_json(o);
        CHECK(json && strtod(json + strlen("{\"v\": "), NULL) == vals[i]);
        free(json);
        plugin_opts_free(o);
    }

    /* set_text: numbers, bools, everything else a string */
    o = plugin_opts_new();
    plugin_opts_set_text(o, "a", "2");
    plugin_opts_set_text(o, "b", "-2.5");
    plugin_opts_set_text(o, "c", "true");
    plugin_opts_set_text(o, "d", "2x");
    plugin_opts_set_text(o, "e", "");
    json = plugin_opts_json(o);
    CHECK_STR(json, "{\"a\": 2, \"b\": -2.5, \"c\": true, \"d\": \"2x\", \"e\": \"\"}");
    free(json);
    plugin_opts_free(o);
}

static void test_create_fails_and_unknown(plugin_registry *r) {
    error e = {0};
    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_create_fails", NULL, &e), HDLM_EPLUGIN);
    CHECK_STR(e.msg, "fixture_create_fails: cannot create: tau must be > 0, got 0");

    CHECK_EQ(try_create(r, HDLM_KIND_SCHEDULE, "fixture_schedul", NULL, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "unknown schedule plugin 'fixture_schedul'; known: fixture_create_fails, "
                     "fixture_schedule (did you mean 'fixture_schedule'?)");
    plugin_opts *o = plugin_opts_new();
    plugin_opts_set_number(o, "width", 2); /* owned by create even when the name is unknown */
    CHECK_EQ(try_create(r, HDLM_KIND_SAMPLER, "acs", o, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "unknown sampler plugin 'acs'; known: fixture_sampler");
    CHECK_EQ(try_create(r, HDLM_KIND_SAMPLER, "fixture_sampler", NULL, &e), HDLM_OK);
}

static void test_print(plugin_registry *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    plugin_registry_print(r, mem);
    fclose(mem);
    CHECK_CONTAINS(text, "4 plugins (plugin ABI 2)\n");
    CHECK_CONTAINS(text, "kind      name ");
    CHECK_CONTAINS(text, "schedule  fixture_schedule      0.1.0    /");
    CHECK_CONTAINS(text, "    test fixture: block annealing levels\n");
    CHECK_CONTAINS(text, "    width  integer  default 4  — block width w (positions per block)\n");
    CHECK_CONTAINS(text, "    process      string   default loglinear  — shape of σ(t) (one of "
                         "loglinear|geometric)\n");
    CHECK_CONTAINS(text, "    (no options)\n");
    /* sorted by kind (noise, schedule, sampler), then name */
    const char *a = strstr(text, "fixture_noise"), *b = strstr(text, "fixture_create_fails"),
               *c = strstr(text, "fixture_schedule "), *d = strstr(text, "fixture_sampler");
    CHECK(a && b && c && d && a < b && b < c && c < d);
    if (getenv("HDLM_TEST_VERBOSE")) fputs(text, stdout);
    free(text);
}

static void test_host_table(void) {
    const hdlm_host *h = plugin_host_table();
    CHECK_EQ(h->struct_size, sizeof(hdlm_host));
    CHECK_EQ(h->abi_version, HDLM_ABI_VERSION);
    rng a, b;
    rng_init(&a, 42);
    rng_init(&b, 42);
    CHECK(h->uniform(&a) == rng_uniform(&b));
    CHECK(h->random_u64(&a) == rng_u64(&b));
    CHECK(h->opt_number == plugin_opts_number && h->opt_string == plugin_opts_string);
    CHECK(h->log != NULL);

    CHECK_STR(plugin_kind_name(HDLM_KIND_NOISE), "noise");
    CHECK_STR(plugin_kind_name(HDLM_KIND_SCHEDULE), "schedule");
    CHECK_STR(plugin_kind_name(HDLM_KIND_SAMPLER), "sampler");
    CHECK_EQ(plugin_kind_from_name("schedule"), HDLM_KIND_SCHEDULE);
    CHECK_EQ(plugin_kind_from_name("sampler"), HDLM_KIND_SAMPLER);
    CHECK_EQ(plugin_kind_from_name("noise"), HDLM_KIND_NOISE);
    CHECK_EQ(plugin_kind_from_name("schedules"), 0);
}

/* ABI 2: the ABI 1 refusal, instance labels and facts, the guarded ops, the extension hook and
 * the crash guard, with the fixtures of tests/plugins/broken. */
static void test_abi2(void) {
    char path[1024], expect[1200];
    error e = {0};
    plugin_registry *r = NULL;
    CHECK_EQ(plugin_registry_open(&r, &e), HDLM_OK);
    fixture_path("broken/abi1.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_EPLUGIN);
    snprintf(expect, sizeof expect,
             "%s: plugin ABI version 1, this hdlm expects 2; rebuild the plugin against this "
             "hdlm's hdlm/plugin.h",
             path);
    CHECK_CONTAINS(e.msg, expect);
    CHECK_EQ(plugin_registry_count(r), 0);

    fixture_path("broken/good_mask.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_OK);
    fixture_path("broken/segfault.so", path, sizeof path);
    CHECK_EQ(plugin_registry_load_file(r, path, &e), HDLM_OK);

    /* a noise needs V: from the creation args, or the option "vocab" */
    plugin_instance *p = NULL;
    CHECK_EQ(plugin_instance_create(r, HDLM_KIND_NOISE, "fixture_good_mask", NULL, NULL, &p, &e),
             HDLM_EINVAL);
    CHECK_STR(e.msg, "fixture_good_mask: option 'vocab' (number of real tokens) must be an "
                     "integer in 2..16777216, got none");
    plugin_create_args a = {.vocab = 9, .n_extra = -1, .mask_id = -1};
    CHECK_EQ(plugin_instance_create(r, HDLM_KIND_NOISE, "fixture_good_mask", NULL, &a, &p, &e),
             HDLM_OK);
    if (p) {
        CHECK_STR(p->label, "fixture_good_mask#1"); /* the refused attempt made no instance */
        CHECK_EQ(p->info.n_extra, 1);
        CHECK_EQ(p->info.mask_id, 9);
        CHECK_EQ(p->info.flags, 0);
        CHECK(p->self != p->plugin_self);     /* the core gets the guarded handle */
        CHECK(p->ops != p->entry->desc->ops); /* and the guarded table */
        const hdlm_noise_ops *ops = p->ops;
        CHECK(ops->conditioning == NULL && ops->bound == NULL && ops->prior == NULL);
        hdlm_info in = {.struct_size = sizeof in, .mask_id = -1};
        ops->head.info(p->self, &in);
        CHECK_EQ(in.mask_id, 9);
        CHECK(plugin_instance_extension(p, "hdlm.test/1") == NULL); /* no extension hook */
        double probs[10];
        char err[256] = "";
        CHECK_EQ(ops->marginal(p->self, 2, 0.25, probs, err, sizeof err), HDLM_OK);
        CHECK(probs[9] == 0.25 && probs[2] == 0.75);
        char *json = plugin_opts_json(p->opts);
        CHECK_STR(json, "{\"vocab\": 9}"); /* kept with the options for provenance */
        free(json);
        plugin_instance_destroy(p);
    }

    /* the crash guard: levels segfaults at step 2 */
    p = NULL;
    CHECK_EQ(plugin_instance_create(r, HDLM_KIND_SCHEDULE, "broken_segfault", NULL, NULL, &p, &e),
             HDLM_OK);
    if (p) {
        const hdlm_schedule_ops *ops = p->ops;
        int32_t level[8];
        int64_t ns = -1;
        char err[512] = "";
        CHECK_EQ(ops->levels(p->self, 1, 8, level, &ns, err, sizeof err), HDLM_OK);
        CHECK_EQ(level[0], 3);
        CHECK(plugin_instance_crashed(p) == NULL);
        CHECK_EQ(ops->levels(p->self, 2, 8, level, &ns, err, sizeof err), HDLM_ECRASH);
        snprintf(expect, sizeof expect,
                 "plugin broken_segfault#2 (%s) crashed in op levels (SIGSEGV, segmentation "
                 "fault)",
                 p->entry->file);
        CHECK_STR(err, expect);
        CHECK_STR(plugin_instance_crashed(p), "levels");
        /* not called again, even for a step that worked */
        CHECK_EQ(ops->levels(p->self, 1, 8, level, &ns, err, sizeof err), HDLM_ECRASH);
        CHECK_CONTAINS(err, "; the instance is not used again");
        plugin_instance_destroy(p); /* skips the plugin's destroy */
    }
    plugin_registry_close(r);
}

int main(void) {
    log_set_level(HDLM_LOG_INFO); /* the log-capture check must not depend on $HDLM_LOG */
    test_load_and_refusals();
    test_not_a_library();
    test_load_default();
    test_host_table();
    test_abi2();

    char refusals[8192];
    int n_dir;
    plugin_registry *r = open_fixtures(refusals, sizeof refusals, &n_dir);
    test_schedule_levels(r);
    test_option_errors(r);
    test_defaults_and_json(r);
    test_create_fails_and_unknown(r);
    test_print(r);
    plugin_registry_close(r);
    return check_report("test_plugin_host");
}
