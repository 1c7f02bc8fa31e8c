/* The `hdlm` command line: run Lua experiments, inspect plugins, prepare data, query the store.
 * Each subcommand parses its own flags; errors print one line and exit non-zero. The only place
 * that calls exit(). */
#include "app/query_print.h"
#include "app/run_cmds.h"
#include "app/store_cmds.h"
#include "app/sweep.h"
#include "base/cpu.h"
#include "base/error.h"
#include "base/interrupt.h"
#include "base/json.h"
#include "base/log.h"
#include "base/text.h"
#include "base/threads.h"
#include "data/bpe_train.h"
#include "data/synth.h"
#include "data/tokenizer.h"
#include "data/tokfile.h"
#include "dist/dist.h"
#include "hub/import.h"
#include "lua/lua_host.h"
#include "plugin/check.h"
#include "plugin/host.h"
#include "store/store.h"
#include "tensor/blas.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One row per usage line of `hdlm --help`; a command with several forms (data prepare / data
 * synth) has one row per form, all with the same fn. `hdlm help NAME` and `hdlm NAME --help`
 * print the rows of NAME with their options and example. */
typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
    const char *help;
    const char *options; /* "  --flag X   what it does\n" lines, or NULL */
    const char *example; /* one or more command lines, "\n"-separated */
} command;

static int unknown_flag(const char *cmd, const char *arg);

/* "-x" / "--xyz" (no spaces: an SQL comment or a negative number in text is not a flag) */
static int looks_like_flag(const char *a) {
    return a[0] == '-' && a[1] && a[1] != ' ' && !strchr(a, ' ') && !(a[1] >= '0' && a[1] <= '9');
}

static int die(const error *e) {
    fprintf(stderr, "hdlm: %s\n", e->msg);
    return e->code == HDLM_OK ? 1 : (e->code < 0 ? -e->code : e->code);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "hdlm: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

/* Takes "--db FILE" / "--db=FILE" out of argv (in place); returns the new argc. */
static int take_flag_value(int argc, char **argv, const char *flag, const char **out) {
    size_t fl = strlen(flag);
    int w = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], flag) && i + 1 < argc) {
            *out = argv[++i];
            continue;
        }
        if (!strncmp(argv[i], flag, fl) && argv[i][fl] == '=') {
            *out = argv[i] + fl + 1;
            continue;
        }
        argv[w++] = argv[i];
    }
    return w;
}

static int take_flag(int argc, char **argv, const char *flag, int *out) {
    int w = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], flag)) {
            *out = 1;
            continue;
        }
        argv[w++] = argv[i];
    }
    return w;
}

/* All of stdin in a malloc'd string, a first line starting with '#' (a shebang) blanked as
 * luaL_loadfile does; NULL when it cannot be read. */
static char *read_stdin(void) {
    size_t n = 0, cap = 1 << 14;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, stdin);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    if (!buf || ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (buf[0] == '#')
        for (char *p = buf; *p && *p != '\n'; p++)
            *p = ' ';
    return buf;
}

/* ---- hdlm run ---- */
static int cmd_run(int argc, char **argv) {
    const char *db = "runs.db";
    argc = take_flag_value(argc, argv, "--db", &db);
    if (argc < 1)
        return usage_error("run: missing script (hdlm run experiments/x.lua [key=value ...]; "
                           "'-' reads it from stdin)%s",
                           "");
    for (int i = 0; i < argc; i++)
        if (looks_like_flag(argv[i])) return unknown_flag("run", argv[i]);
    lua_host_opts o = {
        .script = argv[0], .n_args = argc - 1, .args = argv + 1, .db_path = db, .warn_unread = 1};
    char *text = NULL;
    if (!strcmp(argv[0], "-")) { /* the script from stdin; messages call it "stdin" */
        if (dist_size() > 1)
            return usage_error("run: '-' (stdin) does not work under mpirun, where only rank 0 "
                               "reads stdin; give the script as a file%s",
                               "");
        if (!(text = read_stdin())) {
            fprintf(stderr, "hdlm: run: cannot read the script from stdin: %s\n", strerror(errno));
            return 1;
        }
        o.script = "=stdin", o.chunk = text;
    }
    error e = {0};
    int rc = lua_host_run(&o, &e);
    free(text);
    if (rc != HDLM_OK) {
        fprintf(stderr, "hdlm: %s\n", e.msg);
        /* stopped by a signal during training: the shell's 128 + signal convention */
        return interrupt_signal() ? 128 + interrupt_signal() : 1;
    }
    return 0;
}

/* ---- hdlm plugins ---- */

/* hdlm plugins check FILE.so|NAME: a path (it has a '/' or ends in .so) is loaded alone, so the
 * file is checked without the installed plugins; a name is looked up among them (every kind). */
static int cmd_plugins_check(const char *what) {
    error e = {0};
    plugin_registry *r = NULL;
    if (plugin_registry_open(&r, &e) != HDLM_OK) return die(&e);
    size_t len = strlen(what);
    int is_file = strchr(what, '/') || (len > 3 && !strcmp(what + len - 3, ".so"));
    const plugin_entry *found[64];
    size_t n = 0;
    if (is_file) {
        if (plugin_registry_load_file(r, what, &e) != HDLM_OK) {
            printf("FAIL load %s: %s\n", what, e.msg);
            plugin_registry_close(r);
            return 1;
        }
        for (size_t i = 0; i < plugin_registry_count(r) && n < 64; i++)
            found[n++] = plugin_registry_at(r, i);
    } else {
        char refusals[8192] = "";
        if (plugin_registry_load_default(r, refusals, sizeof refusals, &e) < 0) {
            plugin_registry_close(r);
            return die(&e);
        }
        for (uint32_t k = HDLM_KIND_NOISE; k <= HDLM_KIND_SAMPLER; k++) {
            const plugin_entry *en = plugin_registry_find(r, k, what);
            if (en) found[n++] = en;
        }
        if (n == 0) {
            char known[2048] = "", part[700];
            for (uint32_t k = HDLM_KIND_NOISE; k <= HDLM_KIND_SAMPLER; k++) {
                plugin_registry_names(r, k, part, sizeof part);
                size_t kl = strlen(known);
                snprintf(known + kl, sizeof known - kl, "%s%s: %s", k > 1 ? "; " : "",
                         plugin_kind_name(k), part);
            }
            fprintf(stderr, "hdlm: plugins check: no plugin named '%s' (%s)\n", what, known);
            plugin_registry_close(r);
            return 1;
        }
    }
    int fails = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = plugin_check(r, found[i], stdout, &e);
        if (rc < 0) {
            plugin_registry_close(r);
            return die(&e);
        }
        fails += rc;
    }
    if (fails)
        printf("%d check%s failed\n", fails, fails == 1 ? "" : "s");
    else
        printf("all checks passed (%zu plugin%s)\n", n, n == 1 ? "" : "s");
    plugin_registry_close(r);
    return fails ? 1 : 0;
}

static int cmd_plugins(int argc, char **argv) {
    if (argc > 0 && !strcmp(argv[0], "check")) {
        if (argc != 2)
            return usage_error("plugins check: expected one FILE.so or plugin NAME%s",
                               argc < 2 ? "" : ", got more");
        return cmd_plugins_check(argv[1]);
    }
    if (argc > 0) return usage_error("plugins: unexpected argument '%s'", argv[0]);
    error e = {0};
    plugin_registry *r = NULL;
    if (plugin_registry_open(&r, &e) != HDLM_OK) return die(&e);
    char refusals[8192] = "";
    if (plugin_registry_load_default(r, refusals, sizeof refusals, &e) < 0) {
        plugin_registry_close(r);
        return die(&e);
    }
    plugin_registry_print(r, stdout);
    if (refusals[0]) fprintf(stderr, "hdlm: refused plugins:\n%s", refusals);
    plugin_registry_close(r);
    return 0;
}

/* ---- hdlm query ---- */
static int cmd_query(int argc, char **argv) {
    const char *db = "runs.db";
    int csv = 0, json = 0, write = 0;
    argc = take_flag_value(argc, argv, "--db", &db);
    argc = take_flag(argc, argv, "--csv", &csv);
    argc = take_flag(argc, argv, "--json", &json);
    argc = take_flag(argc, argv, "--write", &write);
    for (int i = 0; i < argc; i++)
        if (looks_like_flag(argv[i])) return unknown_flag("query", argv[i]);
    if (argc != 1)
        return usage_error(
            "query: expected one SQL argument (hdlm query [--db FILE] [--csv|--json] "
            "[--write] \"SQL\")%s",
            "");
    if (!store_cmd_require_db(db, "query")) return 1;
    error e = {0};
    store *s = NULL;
    /* read-only unless --write: a query cannot change the store by accident */
    if (store_open(db, write ? 0 : STORE_READONLY, &s, &e) != HDLM_OK) return die(&e);
    int fmt = csv ? QUERY_FMT_CSV : json ? QUERY_FMT_JSON : QUERY_FMT_TABLE;
    int64_t before = store_changes(s);
    int rc = query_print(s, argv[0], fmt, stdout, &e);
    int64_t changed = store_changes(s) - before;
    store_close(s);
    if (rc == HDLM_ESTATE && !write) {
        fprintf(stderr, "hdlm: %s; use --write\n", e.msg);
        return 1;
    }
    if (rc == HDLM_OK && write)
        fprintf(stderr, "hdlm: %lld row%s changed (with foreign-key cascades)\n",
                (long long)changed, changed == 1 ? "" : "s");
    return rc == HDLM_OK ? 0 : die(&e);
}

/* ---- hdlm runs ---- */
static int cmd_runs(int argc, char **argv) {
    const char *db = "runs.db";
    argc = take_flag_value(argc, argv, "--db", &db);
    if (argc > 0 && !strcmp(argv[0], "rm")) return store_cmd_runs_rm(argc - 1, argv + 1, db);
    if (argc > 0 && !strcmp(argv[0], "gc")) return store_cmd_runs_gc(argc - 1, argv + 1, db);
    if (argc > 0) return usage_error("runs: unexpected argument '%s' (rm, gc or none)", argv[0]);
    if (!store_cmd_require_db(db, "runs")) return 1;
    error e = {0};
    store *s = NULL;
    if (store_open(db, 0, &s, &e) != HDLM_OK) return die(&e);
    int rc = store_reap_runs(s, &e);
    if (rc == HDLM_OK)
        rc = query_print(s,
                         "SELECT id, name, kind, status, seed, started_at, ended_at, "
                         "CASE WHEN resumes > 0 THEN 'continued ' || resumes || 'x' "
                         "WHEN resumed_from IS NOT NULL THEN 'from run ' || resumed_from "
                         "ELSE '' END AS resumed, "
                         "substr(coalesce(error,''),1,60) AS error FROM runs ORDER BY id",
                         QUERY_FMT_TABLE, stdout, &e);
    store_close(s);
    return rc == HDLM_OK ? 0 : die(&e);
}

/* ---- hdlm data ---- */
/* hdlm data synth: a seeded Markov source with a known entropy rate (data/synth.h). */
static int cmd_data_synth(int argc, char **argv) {
    const char *out = NULL, *vocab_s = "8", *order_s = "2", *alpha_s = "0.5", *n_s = "2000000",
               *seed_s = "1";
    argc = take_flag_value(argc, argv, "-o", &out);
    argc = take_flag_value(argc, argv, "--vocab", &vocab_s);
    argc = take_flag_value(argc, argv, "--order", &order_s);
    argc = take_flag_value(argc, argv, "--alpha", &alpha_s);
    argc = take_flag_value(argc, argv, "--n", &n_s);
    argc = take_flag_value(argc, argv, "--seed", &seed_s);
    for (int i = 0; i < argc; i++)
        if (looks_like_flag(argv[i])) return unknown_flag("data synth", argv[i]);
    if (argc > 0) return usage_error("data synth: unexpected argument '%s'", argv[0]);
    if (!out) return usage_error("data synth: -o FILE is required (the text to write)%s", "");
    const char *flags[] = {"--vocab", "--order", "--n"};
    const char *vals[] = {vocab_s, order_s, n_s};
    long long iv[3];
    char msg[1200], *end;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        iv[i] = strtoll(vals[i], &end, 10);
        if (*end || end == vals[i] || errno) {
            snprintf(msg, sizeof msg, "data synth: %s expects an integer, got '%s'", flags[i],
                     vals[i]);
            return usage_error("%s", msg);
        }
    }
    errno = 0;
    unsigned long long seed = strtoull(seed_s, &end, 10);
    if (*end || end == seed_s || errno || strchr(seed_s, '-'))
        return usage_error("data synth: --seed expects an integer in 0..2^64-1, got '%s'", seed_s);
    double alpha = strtod(alpha_s, &end);
    if (*end || end == alpha_s)
        return usage_error("data synth: --alpha expects a number, got '%s'", alpha_s);
    const char *key = NULL;
    error e = {0};
    if (synth_check_values(iv[0], iv[1], alpha, iv[2], &key, &e) != HDLM_OK) {
        snprintf(msg, sizeof msg, "data synth: --%s %s", key, e.msg);
        return usage_error("%s", msg);
    }
    synth_config c = {.vocab = (int)iv[0], .order = (int)iv[1], .alpha = alpha, .seed = seed};
    synth_stats st;
    if (synth_write(&c, iv[2], out, &st, &e) != HDLM_OK) return die(&e);
    printf("synth: %lld symbols, vocab %d, order %d, alpha %g, seed %llu -> %s; entropy rate %.6f "
           "nats/symbol (%.6f bits), unigram %.6f nats, empirical %.6f nats\n",
           (long long)st.n, c.vocab, c.order, c.alpha, (unsigned long long)c.seed, out,
           st.entropy_nats, st.entropy_bits, st.unigram_nats, st.empirical_nats);
    return 0;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* hdlm data tokenizer train CORPUS --vocab N -o DIR */
static int cmd_tokenizer_train(int argc, char **argv) {
    const char *out = NULL, *vocab_s = NULL;
    argc = take_flag_value(argc, argv, "-o", &out);
    argc = take_flag_value(argc, argv, "--vocab", &vocab_s);
    if (argc != 1 || !out || !vocab_s)
        return usage_error("data tokenizer train: usage: hdlm data tokenizer train CORPUS --vocab "
                           "N -o DIR%s",
                           "");
    char *end;
    errno = 0;
    long vocab = strtol(vocab_s, &end, 10);
    if (*end || end == vocab_s || errno)
        return usage_error("data tokenizer train: --vocab expects an integer, got '%s'", vocab_s);
    error e = {0};
    unsigned char *text;
    size_t n;
    if (tokfile_read_all(argv[0], &text, &n, &e) != HDLM_OK) return die(&e);
    bpe_train_stats st;
    int rc =
        bpe_train((const char *)text, n, (int32_t)(vocab > INT32_MAX ? 0 : vocab), out, &st, &e);
    free(text);
    if (rc != HDLM_OK) return die(&e);
    printf("%s: %lld bytes, %lld pieces (%lld distinct) -> %d merges, vocabulary %d -> %s "
           "(encoder.json + vocab.bpe)\n",
           argv[0], (long long)st.n_bytes, (long long)st.n_pieces, (long long)st.n_words,
           (int)st.n_merges, (int)st.vocab, out);
    printf("time: %.2f s counting pieces, %.2f s merging, %.2f s in all\n", st.count_s, st.merge_s,
           st.total_s);
    if (st.vocab < vocab)
        printf("note: only %d merges were possible (no adjacent pair left), vocabulary %d, not "
               "%ld\n",
               (int)st.n_merges, (int)st.vocab, vocab);
    return 0;
}

/* hdlm data tokenizer encode FILE [--tokenizer T] [-o OUT] [--bench ROUNDS]: the whole file as
 * one text (no document breaks), ids one per line; --bench times encoding in this process. */
static int cmd_tokenizer_encode(int argc, char **argv) {
    const char *out = NULL, *tokname = "gpt2", *bench_s = NULL;
    argc = take_flag_value(argc, argv, "-o", &out);
    argc = take_flag_value(argc, argv, "--tokenizer", &tokname);
    argc = take_flag_value(argc, argv, "--bench", &bench_s);
    if (argc != 1)
        return usage_error("data tokenizer encode: usage: hdlm data tokenizer encode FILE "
                           "[--tokenizer gpt2|bpe:DIR|bytes|text8] [-o OUT] [--bench ROUNDS]%s",
                           "");
    int rounds = 0;
    if (bench_s) {
        char *end;
        rounds = (int)strtol(bench_s, &end, 10);
        if (*end || rounds < 1 || rounds > 1000)
            return usage_error("data tokenizer encode: --bench expects 1..1000 rounds, got '%s'",
                               bench_s);
    }
    error e = {0};
    tokenizer tok;
    if (tokenizer_init(&tok, tokname, &e) != HDLM_OK) return die(&e);
    unsigned char *text;
    size_t n;
    if (tokfile_read_all(argv[0], &text, &n, &e) != HDLM_OK) return die(&e);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        free(text);
        error_set(&e, HDLM_ENOMEM, "%s: out of memory for %zu tokens", argv[0], n);
        return die(&e);
    }
    int64_t k = 0;
    double best = 0;
    for (int r = 0; r < (rounds ? rounds : 1); r++) {
        double t0 = wall_s();
        k = tokenizer_encode_docs(&tok, (const char *)text, n, TOKENIZER_DOCS_NONE, ids, NULL, &e);
        double dt = wall_s() - t0;
        if (k < 0) break;
        if (r == 0 || dt < best) best = dt;
    }
    free(text);
    if (k < 0) {
        free(ids);
        return die(&e);
    }
    if (rounds)
        printf("hdlm %s: %zu bytes -> %lld tokens; best of %d rounds %.3f s = %.2f MB/s\n",
               tokenizer_label(&tok), n, (long long)k, rounds, best, (double)n / best / 1e6);
    if (out || !rounds) {
        FILE *f = out ? fopen(out, "w") : stdout;
        if (!f) {
            free(ids);
            error_set(&e, HDLM_EIO, "%s: cannot create: %s", out, strerror(errno));
            return die(&e);
        }
        for (int64_t i = 0; i < k; i++)
            fprintf(f, "%d\n", (int)ids[i]);
        int bad = ferror(f);
        if (out && fclose(f) != 0) bad = 1;
        if (bad) {
            free(ids);
            error_set(&e, HDLM_EIO, "%s: write failed", out ? out : "stdout");
            return die(&e);
        }
    }
    free(ids);
    return 0;
}

static int cmd_tokenizer(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "train")) return cmd_tokenizer_train(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "encode")) return cmd_tokenizer_encode(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "info")) {
        const char *tokname = "gpt2";
        argc = take_flag_value(argc - 1, argv + 1, "--tokenizer", &tokname);
        if (argc != 0) return usage_error("data tokenizer info: unexpected argument '%s'", argv[1]);
        error e = {0};
        tokenizer tok;
        if (tokenizer_init(&tok, tokname, &e) != HDLM_OK) return die(&e);
        printf("tokenizer %s: vocabulary %d, end-of-text id %d, vocabulary SHA-256 %s\n",
               tokenizer_label(&tok), (int)tok.vocab, (int)tok.eot, tokenizer_sha256(&tok));
        return 0;
    }
    return usage_error("data tokenizer: expected 'train', 'encode' or 'info' (hdlm data tokenizer "
                       "train CORPUS --vocab N -o DIR; hdlm data tokenizer encode FILE "
                       "--tokenizer T [-o OUT] [--bench N]; hdlm data tokenizer info --tokenizer "
                       "T)%s",
                       "");
}

static int cmd_data(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "synth")) return cmd_data_synth(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "tokenizer")) return cmd_tokenizer(argc - 1, argv + 1);
    if (argc < 1 || strcmp(argv[0], "prepare"))
        return usage_error("data: expected 'prepare', 'tokenizer' or 'synth' (hdlm data prepare "
                           "corpus.txt -o corpus.tok [--tokenizer bytes|text8|gpt2|bpe:DIR] "
                           "[--docs blank|none] [--valid 0.05] [--seed N]; hdlm data tokenizer "
                           "train|encode|info ...; hdlm data synth -o FILE [--vocab 8] [--order 2] "
                           "[--alpha 0.5] [--n N] [--seed N])%s",
                           "");
    const char *out = NULL, *tok = "bytes", *valid_s = "0.05", *seed_s = "0", *docs_s = NULL;
    argc = take_flag_value(argc - 1, argv + 1, "-o", &out);
    argc = take_flag_value(argc, argv + 1, "--tokenizer", &tok);
    argc = take_flag_value(argc, argv + 1, "--valid", &valid_s);
    argc = take_flag_value(argc, argv + 1, "--seed", &seed_s);
    argc = take_flag_value(argc, argv + 1, "--docs", &docs_s);
    for (int i = 1; i <= argc; i++)
        if (looks_like_flag(argv[i])) return unknown_flag("data prepare", argv[i]);
    if (argc != 1) return usage_error("data prepare: expected one input text file%s", "");
    int docs;
    if (tokfile_docs_from_name(docs_s, &docs) != HDLM_OK)
        return usage_error("data prepare: --docs expects blank or none, got '%s'", docs_s);
    const char *in = argv[1];
    char defout[1024];
    if (!out) {
        snprintf(defout, sizeof defout, "%s.tok", in);
        out = defout;
    }
    char *end;
    double valid = strtod(valid_s, &end);
    if (*end || end == valid_s)
        return usage_error("data prepare: --valid expects a number, got '%s'", valid_s);
    unsigned long long seed = strtoull(seed_s, &end, 10);
    if (*end || end == seed_s)
        return usage_error("data prepare: --seed expects an integer, got '%s'", seed_s);
    tokfile_stats st;
    error e = {0};
    tokfile_options o = {tok, valid, seed, docs};
    if (tokfile_prepare_opts(in, out, &o, &st, &e) != HDLM_OK) return die(&e);
    printf("%s: %lld bytes -> %lld train + %lld valid tokens (%s", in, (long long)st.n_bytes,
           (long long)st.n_train, (long long)st.n_valid, tok);
    if (st.docs == TOKENIZER_DOCS_BLANK)
        printf(", %lld documents separated by <|endoftext|>", (long long)st.n_docs);
    printf(") -> %s\n", out);
    return 0;
}

/* ---- hdlm import ---- */
static int cmd_import(int argc, char **argv) {
    const char *db = "runs.db", *out = NULL, *name = NULL, *data = NULL;
    int no_db = 0;
    /* the command line as typed, recorded with the run */
    char cmdline[2048] = "hdlm import";
    for (int i = 0; i < argc; i++) {
        size_t k = strlen(cmdline);
        snprintf(cmdline + k, sizeof cmdline - k, " %s", argv[i]);
    }
    argc = take_flag_value(argc, argv, "--db", &db);
    argc = take_flag_value(argc, argv, "-o", &out);
    argc = take_flag_value(argc, argv, "--name", &name);
    argc = take_flag_value(argc, argv, "--data", &data);
    argc = take_flag(argc, argv, "--no-db", &no_db);
    for (int i = 0; i < argc; i++)
        if (looks_like_flag(argv[i])) return unknown_flag("import", argv[i]);
    if (argc != 1 || !out)
        return usage_error("import: expected a model folder and -o DIR (hdlm import "
                           "hdlm-base-epsilon-0.01 -o models/epsilon [--db FILE])%s",
                           "");
    hub_import_opts o = {.src = argv[0],
                         .out_dir = out,
                         .db_path = no_db ? NULL : db,
                         .name = name,
                         .data = data,
                         .command = cmdline};
    hub_import_result *r = calloc(1, sizeof *r);
    if (!r) return 1;
    error e = {0};
    if (hub_import(&o, r, &e) != HDLM_OK) {
        free(r);
        return die(&e);
    }
    printf("%s: %s-hybrid DDiT, %lld parameters -> %s\n", argv[0],
           r->family == 'e' ? "epsilon" : "gamma", (long long)r->n_params, r->ckpt_path);
    fputs(r->notes, stdout);
    if (r->run_id)
        printf("stored as run %lld in %s: hdlm sample --run %lld --db %s%s\n", (long long)r->run_id,
               db, (long long)r->run_id, db, r->family == 'g' ? " sampler=analytic" : "");
    free(r);
    return 0;
}

/* ---- hdlm sample / hdlm eval ---- */

/* "--run ID [--db FILE] key=value ...": the stored run, then run_cmds.c does the work. Errors are
 * one line naming the command. */
static int cmd_on_run(int argc, char **argv, const char *what,
                      int (*fn)(const char *, const char *, int, char **, error *)) {
    const char *db = "runs.db", *run = NULL;
    argc = take_flag_value(argc, argv, "--db", &db);
    argc = take_flag_value(argc, argv, "--run", &run);
    if (!run) return usage_error("%s: --run ID is required", what);
    if (!store_cmd_require_db(db, what)) return 1;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '=') {
            fprintf(stderr, "hdlm: %s: script argument '%s' must look like key=value\n", what,
                    argv[i]);
            return 1;
        }
        if (strchr(argv[i], '=')) continue;
        if (!strncmp(argv[i], "--", 2) && argv[i][2] && i + 1 < argc)
            fprintf(stderr, "hdlm: %s: options are key=value, got '%s' (did you mean %s=%s?)\n",
                    what, argv[i], argv[i] + 2, argv[i + 1]);
        else
            fprintf(stderr, "hdlm: %s: options are key=value, got '%s'\n", what, argv[i]);
        return 2;
    }
    /* under mpirun one process does the work (as run:sample / run:eval on rank 0 always did) */
    if (dist_rank() > 0) return 0;
    error e = {0};
    if (fn(db, run, argc, argv, &e) != HDLM_OK) {
        size_t wl = strlen(what);
        if (!strncmp(e.msg, what, wl) && e.msg[wl] == ':')
            fprintf(stderr, "hdlm: %s\n", e.msg);
        else
            fprintf(stderr, "hdlm: %s: %s\n", what, e.msg);
        return 1;
    }
    return 0;
}

static int cmd_sample(int argc, char **argv) {
    return cmd_on_run(argc, argv, "sample", run_cmd_sample);
}

static int cmd_eval(int argc, char **argv) {
    return cmd_on_run(argc, argv, "eval", run_cmd_eval);
}

/* ---- hdlm samples ---- */
typedef struct samples_ud {
    store *st;
    FILE *out;
    int n;
    error *e;
    int rc;
} samples_ud;

typedef struct pos_set {
    int64_t *pos;
    int n, cap;
} pos_set;

static int collect_pos(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    pos_set *ps = ud;
    if (ps->n == ps->cap) {
        int nc = ps->cap ? 2 * ps->cap : 64;
        int64_t *p = realloc(ps->pos, (size_t)nc * sizeof *p);
        if (!p) return 1;
        ps->pos = p, ps->cap = nc;
    }
    ps->pos[ps->n++] = vals[0].i;
    return 0;
}

/* Prints one sample: header, then its text with the tokens the sampler corrected in {braces}. */
static int print_sample(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    samples_ud *u = ud;
    int64_t id = vals[0].i;
    pos_set corr = {0};
    store_value p = {.type = STORE_INT, .i = id};
    u->rc = store_query_params(u->st,
                               "SELECT DISTINCT position FROM sample_events WHERE sample_id = ? "
                               "AND kind = 'correct' ORDER BY position",
                               1, &p, collect_pos, &corr, u->e);
    if (u->rc != HDLM_OK) {
        free(corr.pos);
        return 1;
    }
    fprintf(u->out,
            "-- sample %lld  %s  steps %lld  nfe %lld  %.2f s  corrections at %d position(s)\n",
            (long long)id, vals[2].s ? vals[2].s : "", (long long)vals[3].i, (long long)vals[4].i,
            vals[5].d, corr.n);
    /* decode token by token so corrected positions can be marked */
    tokenizer tok;
    const char *settings = vals[6].s ? vals[6].s : "";
    json_value *sv = NULL;
    const char *tname = "bytes";
    if (json_parse(settings, strlen(settings), &sv, NULL) == HDLM_OK &&
        json_type(json_get(sv, "tokenizer")) == JSON_STRING &&
        strcmp(json_string(json_get(sv, "tokenizer")), "none"))
        tname = json_string(json_get(sv, "tokenizer"));
    error te = {0};
    int have_tok = tokenizer_init(&tok, tname, &te) == HDLM_OK;
    if (!have_tok) fprintf(u->out, "(cannot decode: %s; token ids follow)\n", te.msg);
    json_free(sv);
    char *buf = malloc(have_tok ? tokenizer_decode_cap(&tok, 1) : 1);
    if (!buf) have_tok = 0;
    const char *t = vals[1].s ? vals[1].s : "[]";
    int k = 0;
    for (const char *c = t; *c && have_tok;) {
        if (*c < '0' || *c > '9') {
            c++;
            continue;
        }
        int32_t id32 = (int32_t)strtol(c, (char **)&c, 10);
        size_t len = tokenizer_decode(&tok, &id32, 1, buf, tokenizer_decode_cap(&tok, 1));
        int marked = 0;
        for (int j = 0; j < corr.n; j++)
            marked |= corr.pos[j] == k;
        if (marked) fputc('{', u->out);
        fwrite(buf, 1, len, u->out);
        if (marked) fputc('}', u->out);
        k++;
    }
    if (!have_tok) fputs(t, u->out);
    fputc('\n', u->out);
    free(buf);
    free(corr.pos);
    u->n++;
    return 0;
}

static int cmd_samples(int argc, char **argv) {
    const char *db = "runs.db", *run = NULL, *limit = "20";
    argc = take_flag_value(argc, argv, "--db", &db);
    argc = take_flag_value(argc, argv, "--run", &run);
    argc = take_flag_value(argc, argv, "--limit", &limit);
    for (int i = 0; i < argc; i++)
        if (looks_like_flag(argv[i])) return unknown_flag("samples", argv[i]);
    if (!run || argc > 0)
        return usage_error("samples: usage: hdlm samples --run ID [--limit N] [--db FILE]%s", "");
    char *end;
    long long rid = strtoll(run, &end, 10);
    if (*end) return usage_error("samples: --run expects a run id, got '%s'", run);
    long long lim = strtoll(limit, &end, 10);
    if (*end || lim < 1)
        return usage_error("samples: --limit expects a positive integer, got '%s'", limit);
    if (!store_cmd_require_db(db, "samples")) return 1;
    error e = {0};
    store *s = NULL;
    if (store_open(db, STORE_READONLY, &s, &e) != HDLM_OK) return die(&e);
    samples_ud u = {s, stdout, 0, &e, HDLM_OK};
    store_value p[2] = {{.type = STORE_INT, .i = rid}, {.type = STORE_INT, .i = lim}};
    int rc = store_query_params(s,
                                "SELECT id, tokens, json_extract(sampler, '$.name'), steps, nfe, "
                                "wall_time, settings FROM samples WHERE run_id = ? ORDER BY id "
                                "LIMIT ?",
                                2, p, print_sample, &u, &e);
    if (rc == HDLM_OK) rc = u.rc;
    store_close(s);
    if (rc != HDLM_OK) return die(&e);
    if (u.n == 0)
        printf("(run %lld has no samples in %s)\n", rid, db);
    else
        printf("{...} = a token the sampler corrected (trajectory events of kind 'correct')\n");
    return 0;
}

/* ---- hdlm report ---- */
extern const char hdlm_report_lua[]; /* core/app/report.lua, embedded at build time */

static int cmd_report(int argc, char **argv) {
    const char *db = NULL, *out = "report.html";
    argc = take_flag_value(argc, argv, "--db", &db);
    argc = take_flag_value(argc, argv, "-o", &out);
    for (int i = 0; i < argc; i++) {
        if (looks_like_flag(argv[i])) return unknown_flag("report", argv[i]);
        if (argv[i][0] == '-' || db) /* a flag, or a second database */
            return usage_error("report: unexpected argument '%s' (hdlm report [--db] runs.db "
                               "[-o report.html])",
                               argv[i]);
        db = argv[i];
    }
    if (!db) db = "runs.db";
    /* a read-only open first: a missing file or one hdlm did not make is one clear message, and
     * no empty database is created in its place */
    error e = {0};
    store *s = NULL;
    if (store_open(db, STORE_READONLY, &s, &e) != HDLM_OK) return die(&e);
    store_close(s);
    char outarg[4200];
    snprintf(outarg, sizeof outarg, "out=%s", out);
    char *args[] = {outarg};
    lua_host_opts o = {.script = "=hdlm report",
                       .n_args = 1,
                       .args = args,
                       .db_path = db,
                       .chunk = hdlm_report_lua,
                       .plain_errors = 1};
    if (lua_host_run(&o, &e) != HDLM_OK) {
        /* one line (HDLM_LOG=debug keeps the traceback) */
        fprintf(stderr, "hdlm: %s%s\n", strncmp(e.msg, "report: ", 8) ? "report: " : "", e.msg);
        return 1;
    }
    return 0;
}

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"run", cmd_run, "run SCRIPT.lua [key=value ...] [--db FILE]",
     "run a Lua experiment (require \"hdlm\"); key=value pairs become hdlm.args",
     "  SCRIPT.lua   the experiment; '-' reads it from stdin\n"
     "  key=value    script arguments: hdlm.args.key (numbers and true/false are converted); an\n"
     "               argument the script never reads is reported at the end\n"
     "  --db FILE    the store hdlm.open() uses without a path (default runs.db)\n",
     "hdlm run experiments/quickstart.lua steps=200 --db my.db\n"
     "echo 'print(require(\"hdlm\").version)' | hdlm run -"},
    {"plugins", cmd_plugins, "plugins",
     "list every plugin found: kind, name, version, file, options",
     "  (none)       the shipped plugins (PREFIX/lib/hdlm/plugins next to an installed hdlm, "
     "plugins/ of\n               the build tree) and HDLM_PLUGIN_PATH (colon-separated) are "
     "searched\n",
     "HDLM_PLUGIN_PATH=$HOME/my-plugins hdlm plugins"},
    {"plugins", cmd_plugins, "plugins check FILE.so|NAME",
     "check that a plugin keeps the ABI's promises (levels, marginals, gradients, samplers)",
     "  FILE.so      a plugin file, loaded on its own (a path: has a '/' or ends in .so)\n"
     "  NAME         an installed plugin of any kind (the build's folder, HDLM_PLUGIN_PATH)\n"
     "               one line per check (ok or FAIL with the reason and numbers); exit status 1\n"
     "               when any check fails, also when an op crashes (named in the line)\n",
     "hdlm plugins check block_annealing\n"
     "hdlm plugins check ./build/my_schedule.so"},
    {"query", cmd_query, "query [--db FILE] [--csv|--json] [--write] \"SQL\"",
     "run SQL on the store (read-only unless --write) and print a table, CSV or JSON",
     "  --db FILE    the store (default runs.db); it must exist\n"
     "  --csv        comma-separated values with a header row\n"
     "  --json       a JSON array of objects\n"
     "  --write      allow statements that change the database (foreign keys on: deletes\n"
     "               cascade to dependent rows)\n",
     "hdlm query --db runs.db \"SELECT id, name, status FROM runs\"\n"
     "hdlm query --csv \"SELECT step, value FROM v_loss_curve WHERE run_id = 1\""},
    {"runs", cmd_runs, "runs [--db FILE]", "list the runs in the store",
     "  --db FILE    the store (default runs.db); runs whose process is gone are marked first\n",
     "hdlm runs --db runs.db"},
    {"runs", cmd_runs, "runs rm ID... [--db FILE] [--dry-run] [--keep-files]",
     "delete runs with their metrics, checkpoints (rows and files), evaluations and samples",
     "  ID...         run ids; all must exist and none may be running (else nothing is deleted)\n"
     "  --dry-run     print what would be deleted and change nothing\n"
     "  --keep-files  delete the rows but leave checkpoint files on disk\n",
     "hdlm runs rm 3 4 --dry-run"},
    {"runs", cmd_runs, "runs gc [--db FILE] [--dry-run]",
     "delete failed and empty runs and checkpoint files no run refers to",
     "  --dry-run     print what would be deleted and change nothing\n", "hdlm runs gc --dry-run"},
    {"import", cmd_import, "import FOLDER -o DIR [--db FILE] [--no-db] [--name N] [--data F.tok]",
     "import a released reference model (config.json + model.safetensors) as a checkpoint and run",
     "  FOLDER       a Hugging Face download of hdlm-group/hdlm-base-{epsilon,gamma}-0.01 (or any\n"
     "               model in that form; pytorch_model.bin: scripts/convert_pth.py first)\n"
     "  -o DIR       where the hdlm checkpoint (DIR/model.safetensors) is written\n"
     "  --db FILE    the store that receives the run (default runs.db); --no-db: none\n"
     "  --name N     the run's name (default: the folder's name)\n"
     "  --data F.tok a corpus recorded as the run's data (what hdlm eval --run uses)\n",
     "hdlm import hdlm-base-epsilon-0.01 -o models/eps --data data/wikitext103.tok\n"
     "hdlm sample --run 1 n=1 length=256"},
    {"compare", store_cmd_compare, "compare RUN_A RUN_B [--db FILE]",
     "paired bound difference ± SE on the same sequences, and the gen-NLL difference",
     "  RUN_A RUN_B  run ids; their latest evaluations on the same sequences are paired\n"
     "  --db FILE    the store (default runs.db)\n",
     "hdlm compare 3 5 --db runs.db"},
    {"data", cmd_data,
     "data prepare TEXT -o OUT.tok [--tokenizer bytes|text8|gpt2|bpe:DIR] [--docs blank|none] "
     "[--valid F] [--seed N]",
     "encode a UTF-8 text file into a token file with a deterministic train/valid split",
     "  -o OUT.tok         the token file to write (default TEXT.tok)\n"
     "  --tokenizer NAME   bytes (256 symbols, default), text8 (a-z and space), gpt2 (GPT-2's "
     "BPE,\n"
     "                     files from scripts/get-data.sh gpt2) or bpe:DIR (a trained BPE)\n"
     "  --docs MODE        blank: a blank line ends a document (<|endoftext|> between documents;\n"
     "                     default for gpt2/bpe), none: no document breaks\n"
     "  --valid F          fraction of 4096-token chunks sent to validation (default 0.05)\n"
     "  --seed N           seed of the split (default 0)\n",
     "hdlm data prepare data/brown.txt -o data/brown.tok --tokenizer gpt2 --valid 0.05"},
    {"data", cmd_data, "data tokenizer train CORPUS --vocab N -o DIR",
     "learn a GPT-2-style byte-level BPE (encoder.json + vocab.bpe; use it as bpe:DIR)",
     "  CORPUS     a UTF-8 text file\n"
     "  --vocab N  the vocabulary size (256 bytes + merges + <|endoftext|>)\n"
     "  -o DIR     the folder for encoder.json and vocab.bpe\n",
     "hdlm data tokenizer train data/brown.txt --vocab 4096 -o data/bpe4096"},
    {"data", cmd_data, "data tokenizer encode FILE [--tokenizer T] [-o OUT] [--bench ROUNDS]",
     "encode a file (any bytes) into ids, one a line; --bench prints the encoding speed",
     "  --tokenizer T   gpt2 (default), bpe:DIR, bytes or text8\n"
     "  -o OUT          write the ids there (default: standard output)\n"
     "  --bench ROUNDS  time ROUNDS encodings of the file in memory and print MB/s\n",
     "hdlm data tokenizer encode data/brown.txt --tokenizer gpt2 --bench 3"},
    {"data", cmd_data, "data tokenizer info [--tokenizer T]",
     "print a tokenizer's vocabulary size, end-of-text id and vocabulary SHA-256",
     "  --tokenizer T   gpt2 (default), bpe:DIR, bytes or text8\n",
     "hdlm data tokenizer info --tokenizer bpe:data/bpe4096"},
    {"data", cmd_data,
     "data synth -o OUT.txt [--vocab 8] [--order 2] [--alpha 0.5] [--n 2000000] [--seed 1]",
     "write a seeded random Markov source (letters a..) and print its exact entropy rate",
     "  -o OUT.txt     the text to write (required)\n"
     "  --vocab V      symbols, the letters a.. (default 8)\n"
     "  --order K      Markov order (default 2)\n"
     "  --alpha A      Dirichlet concentration of the transition rows (default 0.5)\n"
     "  --n N          symbols to write (default 2000000)\n"
     "  --seed S       seed (default 1)\n",
     "hdlm data synth -o data/synth.txt --vocab 8 --order 2 --n 500000"},
    {"sample", cmd_sample, "sample --run ID [--db FILE] [sampler=acs eta=0.01 n=4 ...]",
     "generate from a stored run (its newest checkpoint, EMA weights) and store the samples",
     "  --run ID       a run trained with a noise process, a schedule and checkpoint_dir\n"
     "  --db FILE      the store (default runs.db)\n"
     "  sampler=NAME   ancestral (default), acs, analytic, confidence, remask (hdlm plugins);\n"
     "                 other key=value pairs not listed here are the sampler's options\n"
     "  n=N length=L temperature=T top_k=K top_p=P prompt=TEXT seed=S cache=true|false\n"
     "  events=true|false   how many, how long, and how to sample\n",
     "hdlm sample --run 3 sampler=acs eta=0.01 n=4 prompt='The '"},
    {"eval", cmd_eval,
     "eval --run ID [--db FILE] [estimator=consistent|reference mc=16 sequences=64 ...]",
     "bound the NLL of held-out data consistently with the run's schedule; stored in the run",
     "  --run ID                 a run trained with a noise process, a schedule and\n"
     "                           checkpoint_dir\n"
     "  --db FILE                the store (default runs.db)\n"
     "  estimator=NAME           consistent (default) or reference (the reference's estimator)\n"
     "  sequences=N length=L     held-out windows and their length (default 64, seq_len)\n"
     "  mc=N                     draws per sequence (0 = every step: exact)\n"
     "  data=FILE.tok            a token file instead of the corpus the run records (an\n"
     "                           imported run records none unless imported with --data)\n"
     "  split=valid|train batch=N seed=S label=TEXT store=true|false\n",
     "hdlm eval --run 3 mc=0 sequences=32"},
    {"samples", cmd_samples, "samples --run ID [--limit N] [--db FILE]",
     "print a run's samples with the tokens the sampler corrected marked",
     "  --run ID     the run\n"
     "  --limit N    at most N samples, oldest first (default 20)\n"
     "  --db FILE    the store (default runs.db); opened read-only\n",
     "hdlm samples --run 3 --limit 5"},
    {"report", cmd_report, "report [--db] runs.db [-o report.html]",
     "write one self-contained HTML page: runs, loss curves, bounds, generation quality, samples",
     "  [--db] FILE  the store (default runs.db)\n"
     "  -o FILE      the page to write (default report.html)\n",
     "hdlm report runs.db -o report.html"},
    {"sweep", sweep_main, "sweep FILE.lua [--db FILE] [--workers N] [--retry-failed]",
     "train every point of a sweep file with N worker processes; run again to resume",
     "  FILE.lua         returns {name =, base = {...}, grid = {...} | points = {...}}\n"
     "  --db FILE        the store (default runs.db)\n"
     "  --workers N      worker processes (default 1)\n"
     "  --retry-failed   train the points that failed last time again\n",
     "hdlm sweep experiments/sweep_example.lua --workers 2"},
    {"sweep", sweep_main, "sweep --status NAME_OR_ID [--db FILE]",
     "a sweep's progress: points done / running / pending / failed, runs, losses, results",
     "  --status S   the sweep's name or id\n"
     "  --db FILE    the store (default runs.db)\n",
     "hdlm sweep --status lr-width"},
    {"help", cmd_help, "help [COMMAND]",
     "this text, or one command's usage, options and an example (also: hdlm COMMAND --help)", NULL,
     "hdlm help sample"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Whether usage ("data synth -o ...") names sub-command word as its second word. */
static int usage_has_sub(const char *usage, const char *name, const char *word) {
    size_t nl = strlen(name), wl = strlen(word);
    return !strncmp(usage, name, nl) && usage[nl] == ' ' && !strncmp(usage + nl + 1, word, wl) &&
           (usage[nl + 1 + wl] == ' ' || usage[nl + 1 + wl] == '\0');
}

/* Usage, description, options and example of every row of command `name` (only the rows of
 * sub-command `word` when word names one). Returns the number of rows printed. */
static int print_command_help(const char *name, const char *word) {
    int only_sub = 0, n = 0;
    for (size_t i = 0; i < N_COMMANDS && word; i++)
        only_sub |= !strcmp(commands[i].name, name) && usage_has_sub(commands[i].usage, name, word);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command *c = &commands[i];
        if (strcmp(c->name, name) || (only_sub && !usage_has_sub(c->usage, name, word))) continue;
        printf("%susage: hdlm %s\n  %s\n", n ? "\n" : "", c->usage, c->help);
        if (c->options) printf("\noptions:\n%s", c->options);
        if (c->example) {
            printf("\nexample:\n  ");
            for (const char *p = c->example; *p; p++) {
                putchar(*p);
                if (*p == '\n') fputs("  ", stdout);
            }
            putchar('\n');
        }
        n++;
    }
    return n;
}

static int unknown_command(const char *name) {
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++)
        names[i] = commands[i].name;
    const char *near = text_closest(name, names, N_COMMANDS);
    if (near)
        fprintf(stderr, "hdlm: unknown command '%s' (did you mean '%s'?); see hdlm --help\n", name,
                near);
    else
        fprintf(stderr, "hdlm: unknown command '%s'; see hdlm --help\n", name);
    return 2;
}

/* "what: unknown flag '--csvv' (did you mean '--csv'?)": the candidates are the flags in the
 * usage lines that start with `what` (a command, or a command and its sub-command word). */
static int unknown_flag(const char *what, const char *arg) {
    char flags[32][32];
    const char *cands[32];
    size_t n = 0, wl = strlen(what), nl = strcspn(what, " ");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *u = commands[i].usage;
        if (strlen(commands[i].name) != nl || strncmp(commands[i].name, what, nl) ||
            strncmp(u, what, wl) || (u[wl] != ' ' && u[wl] != '\0'))
            continue;
        for (const char *p = u; *p && n < 32; p++) {
            if (*p != '-' || (p > u && strchr(" [|", p[-1]) == NULL)) continue;
            size_t len = strspn(p, "-abcdefghijklmnopqrstuvwxyz");
            if (len < 2 || len >= sizeof flags[0]) continue;
            memcpy(flags[n], p, len);
            flags[n][len] = '\0';
            cands[n] = flags[n];
            n++;
            p += len - 1;
        }
    }
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(arg, "="), arg);
    const char *near = n ? text_closest(key, cands, n) : NULL;
    if (near && !strcmp(near, arg)) /* a known flag left over: its value is missing */
        fprintf(stderr, "hdlm: %s: flag '%s' needs a value; see hdlm %s --help\n", what, arg, what);
    else if (near)
        fprintf(stderr, "hdlm: %s: unknown flag '%s' (did you mean '%s'?); see hdlm %s --help\n",
                what, arg, near, what);
    else
        fprintf(stderr, "hdlm: %s: unknown flag '%s'; see hdlm %s --help\n", what, arg, what);
    return 2;
}

static int cmd_help(int argc, char **argv) {
    if (argc > 0) { /* hdlm help COMMAND [SUBCOMMAND] */
        if (print_command_help(argv[0], argc > 1 ? argv[1] : NULL)) return 0;
        return unknown_command(argv[0]);
    }
    printf("hdlm %s — hybrid autoregressive/diffusion language models on the CPU\n\n",
           HDLM_VERSION);
    printf("usage: hdlm COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  hdlm %s\n      %s\n", commands[i].usage, commands[i].help);
    printf(
        "\nhdlm help COMMAND or hdlm COMMAND --help: its options and an example.\n"
        "\nenvironment:\n"
        "  HDLM_PLUGIN_PATH  extra plugin folders (colon-separated), after the shipped ones\n"
        "  HDLM_GPT2_DIR     folder with GPT-2's encoder.json + vocab.bpe (default: ./data/gpt2,\n"
        "                    then gpt2/ in the data folder, e.g. PREFIX/share/hdlm/gpt2)\n"
        "  HDLM_KERNELS      generic | avx2 | avx512: force a kernel variant (default: the best\n"
        "                    this CPU runs; hdlm --version shows the one in use)\n"
        "  HDLM_PROGRESS     tty | plain | off (progress output)\n"
        "  HDLM_LOG          debug | info | warn | error (debug: tracebacks of command errors)\n"
        "  OMP_NUM_THREADS   threads for training and sampling (default: all cores)\n");
    return 0;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return cmd_help(0, NULL);
    if (!strcmp(argv[1], "--version")) {
        printf("hdlm %s (plugin ABI %u, %s, %s, kernels %s)\n", HDLM_VERSION, HDLM_ABI_VERSION,
               blas_info(), dist_info(), cpu_variant_name(cpu_variant_active()));
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        /* COMMAND ... --help / -h: that command's help, whatever else is on the line */
        for (int j = 2; j < argc; j++)
            if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h"))
                return print_command_help(argv[1], argc > 2 && argv[2][0] != '-' ? argv[2] : NULL)
                           ? 0
                           : 2;
        return commands[i].fn(argc - 2, argv + 2);
    }
    return unknown_command(argv[1]);
}

int main(int argc, char **argv) {
    /* idle OpenMP threads must not spin away a shared machine's cores (base/threads.h) */
    threads_set_wait_policy(argv);
    /* Training allocates and frees the same large scratch buffers every step (per-thread attention
     * scratch, BLAS packing): keep them in the heap instead of mmap/munmap round trips, whose page
     * faults and page clearing cost ~10% of a step. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    /* under mpirun every rank runs this same command; rank 0 speaks for the job on stdout (set
     * HDLM_ALL_RANKS=1 to see every rank's); errors stay on every rank's stderr */
    error e = {0};
    if (cpu_variant_from_env(&e) != HDLM_OK) return die(&e); /* HDLM_KERNELS, base/cpu.h */
    if (dist_init(&argc, &argv, &e) != HDLM_OK) return die(&e);
    if (dist_size() > 1 && (argc < 2 || strcmp(argv[1], "run"))) { /* the others write alone */
        error_set(&e, HDLM_EINVAL,
                  "only 'hdlm run' works across %d MPI processes; run '%s' without mpirun",
                  dist_size(), argc < 2 ? "hdlm" : argv[1]);
        return dist_finalize(die(&e));
    }
    if (dist_rank() > 0 && !getenv("HDLM_ALL_RANKS") && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "hdlm: rank %d: cannot silence stdout\n", dist_rank());
    return dist_finalize(dispatch(argc, argv));
}
