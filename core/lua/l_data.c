/* Lua bindings of the data module: hdlm.corpus{path=..., tokenizer=..., valid=..., docs=...}
 * prepares a token file next to a text file when needed (or loads a .tok directly) and returns a
 * Corpus with encode/decode/batch for inspection; hdlm.prepare(text, out, {...}) writes a token
 * file; hdlm.tokenizer(name) gives a Tokenizer (encode/decode any bytes); hdlm.train_tokenizer{...}
 * learns a BPE; hdlm.synth{...} writes a seeded Markov source with a known entropy rate. */
#include "base/rng.h"
#include "data/batch.h"
#include "data/bpe_train.h"
#include "data/synth.h"
#include "data/tokfile.h"
#include "l_internal.h"

#include <stdlib.h>
#include <string.h>

#define CORPUS_MT "hdlm.Corpus"

typedef struct l_corpus {
    corpus c;
    char path[1024]; /* the token file */
} l_corpus;

static l_corpus *check_corpus(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, CORPUS_MT);
}

const corpus *l_check_corpus(lua_State *L, int idx) {
    l_corpus *u = luaL_testudata(L, idx, CORPUS_MT);
    if (!u)
        luaL_error(L, "expected a corpus (from hdlm.corpus{...}), got %s", luaL_typename(L, idx));
    return &u->c;
}

const char *l_corpus_path(lua_State *L, int idx) {
    return check_corpus(L, idx)->path;
}

static const char *const corpus_keys[] = {"path", "tokenizer", "valid", "seed",
                                          "out",  "docs",      NULL};

/* docs = "blank" | "none" (default: blank lines for tokenizers with an end-of-text id) */
static int opt_docs(lua_State *L, int idx, const char *what) {
    const char *name = l_opt_string(L, idx, what, "docs", NULL);
    int docs;
    if (tokfile_docs_from_name(name, &docs) != HDLM_OK)
        luaL_error(L, "%s: key 'docs' must be 'blank' or 'none', got '%s'", what, name);
    return docs;
}

static int l_corpus_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    l_check_keys(L, 1, "hdlm.corpus", corpus_keys);
    const char *path = l_opt_string(L, 1, "hdlm.corpus", "path", NULL);
    if (!path) return luaL_error(L, "hdlm.corpus: key 'path' is required (a text or .tok file)");
    const char *tokname = l_opt_string(L, 1, "hdlm.corpus", "tokenizer", "bytes");
    double valid = l_opt_number(L, 1, "hdlm.corpus", "valid", 0.05);
    long long seed = l_opt_integer(L, 1, "hdlm.corpus", "seed", 0);
    const char *out = l_opt_string(L, 1, "hdlm.corpus", "out", NULL);
    int docs = opt_docs(L, 1, "hdlm.corpus");
    int given_tok = lua_getfield(L, 1, "tokenizer") != LUA_TNIL;
    lua_pop(L, 1);

    l_corpus *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, CORPUS_MT);
    error e = {0};
    tokfile_options o = {tokname, valid, (uint64_t)seed, docs};
    if (corpus_open(path, &o, given_tok, out, &u->c, u->path, sizeof u->path, &e) != HDLM_OK)
        return l_raise(L, &e);
    return 1;
}

static int corpus_gc(lua_State *L) {
    l_corpus *u = check_corpus(L, 1);
    corpus_free(&u->c);
    return 0;
}

static int corpus_encode(lua_State *L) {
    l_corpus *u = check_corpus(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int32_t *ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0);
    int64_t m = tokenizer_encode(&u->c.tok, s, n, ids);
    if (m < 0) return luaL_error(L, "corpus:encode: out of memory encoding %d bytes", (int)n);
    lua_createtable(L, (int)m, 0);
    for (int64_t i = 0; i < m; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int corpus_decode(lua_State *L) {
    l_corpus *u = check_corpus(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    int32_t *ids = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *ids, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok) return luaL_error(L, "corpus:decode: entry %d is not an integer", (int)i + 1);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    size_t cap = tokenizer_decode_cap(&u->c.tok, (size_t)n);
    char *buf = lua_newuserdatauv(L, cap, 0);
    size_t len = tokenizer_decode(&u->c.tok, ids, (size_t)n, buf, cap);
    lua_pushlstring(L, buf, len);
    return 1;
}

/* corpus:batch(B, L, seed [, "train"|"valid"]) -> array of B arrays of L token ids */
static int corpus_batch(lua_State *L) {
    l_corpus *u = check_corpus(L, 1);
    lua_Integer B = luaL_checkinteger(L, 2), T = luaL_checkinteger(L, 3);
    lua_Integer seed = luaL_checkinteger(L, 4);
    static const char *const splits[] = {"train", "valid", NULL};
    int split = luaL_checkoption(L, 5, "train", splits);
    luaL_argcheck(L, B > 0 && B <= 4096, 2, "batch size must be in 1..4096");
    luaL_argcheck(L, T > 0 && T <= 1 << 20, 3, "length must be in 1..1048576");
    int32_t *out = lua_newuserdatauv(L, (size_t)(B * T) * sizeof *out, 0);
    rng r;
    rng_init(&r, (uint64_t)seed);
    error e = {0};
    const int32_t *tok = split ? u->c.valid : u->c.train;
    int64_t n = split ? u->c.n_valid : u->c.n_train;
    if (batch_draw(tok, n, B, T, &r, out, &e) != HDLM_OK) return l_raise(L, &e);
    lua_createtable(L, (int)B, 0);
    for (lua_Integer b = 0; b < B; b++) {
        lua_createtable(L, (int)T, 0);
        for (lua_Integer t = 0; t < T; t++) {
            lua_pushinteger(L, out[b * T + t]);
            lua_rawseti(L, -2, t + 1);
        }
        lua_rawseti(L, -2, b + 1);
    }
    return 1;
}

static int corpus_index(lua_State *L) {
    l_corpus *u = check_corpus(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "vocab"))
        lua_pushinteger(L, u->c.tok.vocab);
    else if (!strcmp(k, "n_train"))
        lua_pushinteger(L, u->c.n_train);
    else if (!strcmp(k, "n_valid"))
        lua_pushinteger(L, u->c.n_valid);
    else if (!strcmp(k, "tokenizer"))
        lua_pushstring(L, tokenizer_label(&u->c.tok));
    else if (!strcmp(k, "tokenizer_sha256"))
        lua_pushstring(L, tokenizer_sha256(&u->c.tok));
    else if (!strcmp(k, "eot"))
        u->c.tok.eot >= 0 ? lua_pushinteger(L, u->c.tok.eot) : lua_pushnil(L);
    else if (!strcmp(k, "path"))
        lua_pushstring(L, u->path);
    else {
        lua_getmetatable(L, 1);
        lua_getfield(L, -1, "__methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int corpus_tostring(lua_State *L) {
    l_corpus *u = check_corpus(L, 1);
    lua_pushfstring(L, "hdlm.Corpus(%s, %s, %d train / %d valid tokens)", u->path,
                    tokenizer_label(&u->c.tok), (int)u->c.n_train, (int)u->c.n_valid);
    return 1;
}

static const char *const synth_keys[] = {"vocab", "n", "valid", "seed", NULL};

/* hdlm.random_corpus{vocab=, n=, valid=, seed=}: uniformly random tokens held in memory, for
 * benchmarks that need a vocabulary no tokenizer has (config c: 8192). Not for learning. */
static int l_random_corpus(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    l_check_keys(L, 1, "hdlm.random_corpus", synth_keys);
    long long vocab = l_opt_integer(L, 1, "hdlm.random_corpus", "vocab", 256);
    long long n = l_opt_integer(L, 1, "hdlm.random_corpus", "n", 1 << 20);
    long long nv = l_opt_integer(L, 1, "hdlm.random_corpus", "valid", 65536);
    long long seed = l_opt_integer(L, 1, "hdlm.random_corpus", "seed", 0);
    if (vocab < 2 || vocab > 65536 || n < 1 || n > (1LL << 31) || nv < 0 || nv > (1LL << 31))
        return luaL_error(L,
                          "hdlm.random_corpus: vocab must be in 2..65536 and n, valid in 1..2^31");
    l_corpus *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, CORPUS_MT);
    snprintf(u->path, sizeof u->path, "random:vocab=%lld,seed=%lld", vocab, seed);
    u->c.tok.kind = TOKENIZER_BYTES;
    u->c.tok.vocab = (int32_t)vocab;
    u->c.train = malloc((size_t)n * sizeof(int32_t));
    u->c.valid = malloc((size_t)(nv ? nv : 1) * sizeof(int32_t));
    if (!u->c.train || !u->c.valid) return luaL_error(L, "hdlm.random_corpus: out of memory");
    u->c.n_train = n;
    u->c.n_valid = nv;
    rng r;
    rng_init(&r, (uint64_t)seed);
    for (long long i = 0; i < n; i++)
        u->c.train[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
    for (long long i = 0; i < nv; i++)
        u->c.valid[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
    return 1;
}

static const char *const prepare_keys[] = {"tokenizer", "valid", "seed", "docs", NULL};

/* hdlm.prepare(text_path, out_path [, {tokenizer=, valid=, seed=}]) -> {bytes=, train=, valid=} */
static int l_prepare(lua_State *L) {
    const char *text = luaL_checkstring(L, 1);
    const char *out = luaL_checkstring(L, 2);
    const char *tokname = "bytes";
    double valid = 0.05;
    long long seed = 0;
    int docs = TOKFILE_DOCS_DEFAULT;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        l_check_keys(L, 3, "hdlm.prepare", prepare_keys);
        tokname = l_opt_string(L, 3, "hdlm.prepare", "tokenizer", "bytes");
        valid = l_opt_number(L, 3, "hdlm.prepare", "valid", 0.05);
        seed = l_opt_integer(L, 3, "hdlm.prepare", "seed", 0);
        docs = opt_docs(L, 3, "hdlm.prepare");
    }
    tokfile_stats st;
    error e = {0};
    tokfile_options o = {tokname, valid, (uint64_t)seed, docs};
    if (tokfile_prepare_opts(text, out, &o, &st, &e) != HDLM_OK) return l_raise(L, &e);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, st.n_docs);
    lua_setfield(L, -2, "docs");
    lua_pushinteger(L, st.n_bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, st.n_train);
    lua_setfield(L, -2, "train");
    lua_pushinteger(L, st.n_valid);
    lua_setfield(L, -2, "valid");
    return 1;
}

/* ---- hdlm.tokenizer(name): a Tokenizer with encode/decode of any bytes ---- */

#define TOKENIZER_MT "hdlm.Tokenizer"

static tokenizer *check_tok(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, TOKENIZER_MT);
}

static int l_tokenizer_new(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    tokenizer *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, TOKENIZER_MT);
    error e = {0};
    if (tokenizer_init(t, name, &e) != HDLM_OK) return l_raise(L, &e);
    return 1;
}

/* tok:encode(s [, "blank"]) -> ids; with "blank", blank lines become end-of-text ids */
static int tok_encode(lua_State *L) {
    tokenizer *t = check_tok(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    const char *dn = luaL_optstring(L, 3, "none");
    int docs;
    if (tokfile_docs_from_name(dn, &docs) != HDLM_OK || docs == TOKFILE_DOCS_DEFAULT)
        return luaL_error(L, "tokenizer:encode: documents must be 'blank' or 'none', got '%s'", dn);
    int32_t *ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0);
    error e = {0};
    int64_t m = tokenizer_encode_docs(t, s, n, docs, ids, NULL, &e);
    if (m < 0) return l_raise(L, &e);
    lua_createtable(L, (int)m, 0);
    for (int64_t i = 0; i < m; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int32_t *read_ids(lua_State *L, int idx, const char *what, size_t *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = lua_rawlen(L, idx);
    int32_t *ids = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *ids, 0);
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: entry %d is not an integer", what, (int)i + 1);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    return ids;
}

static int tok_decode(lua_State *L) {
    tokenizer *t = check_tok(L, 1);
    size_t n;
    int32_t *ids = read_ids(L, 2, "tokenizer:decode", &n);
    size_t cap = tokenizer_decode_cap(t, n);
    char *buf = lua_newuserdatauv(L, cap, 0);
    size_t len = tokenizer_decode(t, ids, n, buf, cap);
    lua_pushlstring(L, buf, len);
    return 1;
}

/* tok:bytes(ids) -> the number of text bytes the ids stand for (bits per byte) */
static int tok_bytes(lua_State *L) {
    tokenizer *t = check_tok(L, 1);
    size_t n;
    int32_t *ids = read_ids(L, 2, "tokenizer:bytes", &n);
    lua_Integer total = 0;
    for (size_t i = 0; i < n; i++)
        total += tokenizer_unit_bytes(t, ids[i]);
    lua_pushinteger(L, total);
    return 1;
}

static int tok_index(lua_State *L) {
    tokenizer *t = check_tok(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "vocab"))
        lua_pushinteger(L, t->vocab);
    else if (!strcmp(k, "eot"))
        t->eot >= 0 ? lua_pushinteger(L, t->eot) : lua_pushnil(L);
    else if (!strcmp(k, "name"))
        lua_pushstring(L, tokenizer_label(t));
    else if (!strcmp(k, "sha256"))
        lua_pushstring(L, tokenizer_sha256(t));
    else {
        lua_getmetatable(L, 1);
        lua_getfield(L, -1, "__methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int tok_tostring(lua_State *L) {
    tokenizer *t = check_tok(L, 1);
    lua_pushfstring(L, "hdlm.Tokenizer(%s, %d tokens)", tokenizer_label(t), (int)t->vocab);
    return 1;
}

static const char *const train_tok_keys[] = {"path", "vocab", "out", NULL};

/* hdlm.train_tokenizer{path=, vocab=, out=} -> {vocab=, merges=, words=, pieces=, seconds=} */
static int l_train_tokenizer(lua_State *L) {
    static const char *const W = "hdlm.train_tokenizer";
    luaL_checktype(L, 1, LUA_TTABLE);
    l_check_keys(L, 1, W, train_tok_keys);
    const char *path = l_opt_string(L, 1, W, "path", NULL);
    const char *out = l_opt_string(L, 1, W, "out", NULL);
    long long vocab = l_opt_integer(L, 1, W, "vocab", 0);
    if (!path || !out)
        return luaL_error(L, "%s: keys 'path' (a text file) and 'out' (a directory) are required",
                          W);
    error e = {0};
    unsigned char *text;
    size_t n;
    if (tokfile_read_all(path, &text, &n, &e) != HDLM_OK) return l_raise(L, &e);
    bpe_train_stats st;
    int rc = bpe_train((const char *)text, n, (int32_t)(vocab > 65536 || vocab < 0 ? 0 : vocab),
                       out, &st, &e);
    free(text);
    if (rc != HDLM_OK) return l_raise(L, &e);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, st.vocab);
    lua_setfield(L, -2, "vocab");
    lua_pushinteger(L, st.n_merges);
    lua_setfield(L, -2, "merges");
    lua_pushinteger(L, st.n_words);
    lua_setfield(L, -2, "words");
    lua_pushinteger(L, st.n_pieces);
    lua_setfield(L, -2, "pieces");
    lua_pushnumber(L, st.total_s);
    lua_setfield(L, -2, "seconds");
    lua_pushfstring(L, "bpe:%s", out);
    lua_setfield(L, -2, "tokenizer");
    return 1;
}

static const char *const markov_keys[] = {"out", "vocab", "order", "alpha", "n", "seed", NULL};

/* hdlm.synth{out=, vocab=8, order=2, alpha=0.5, n=2000000, seed=1}: writes a seeded Markov source
 * as letters (data/synth.h) -> {path=, n=, entropy_nats=, entropy_bits=, unigram_nats=,
 * empirical_nats=, context_nats=} */
static int l_synth(lua_State *L) {
    static const char *const what = "hdlm.synth";
    luaL_checktype(L, 1, LUA_TTABLE);
    l_check_keys(L, 1, what, markov_keys);
    const char *out = l_opt_string(L, 1, what, "out", NULL);
    if (!out) return luaL_error(L, "hdlm.synth: key 'out' is required (the text file to write)");
    long long vocab = l_opt_integer(L, 1, what, "vocab", 8);
    long long order = l_opt_integer(L, 1, what, "order", 2);
    double alpha = l_opt_number(L, 1, what, "alpha", 0.5);
    long long n = l_opt_integer(L, 1, what, "n", 2000000);
    long long seed = l_opt_integer(L, 1, what, "seed", 1);
    const char *key = NULL;
    error e = {0};
    if (synth_check_values(vocab, order, alpha, n, &key, &e) != HDLM_OK)
        return luaL_error(L, "hdlm.synth: key '%s' %s", key, e.msg);
    synth_config c = {
        .vocab = (int)vocab, .order = (int)order, .alpha = alpha, .seed = (uint64_t)seed};
    synth_stats st;
    if (synth_write(&c, n, out, &st, &e) != HDLM_OK) return l_raise(L, &e);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, out);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, st.n);
    lua_setfield(L, -2, "n");
    lua_pushnumber(L, st.entropy_nats);
    lua_setfield(L, -2, "entropy_nats");
    lua_pushnumber(L, st.entropy_bits);
    lua_setfield(L, -2, "entropy_bits");
    lua_pushnumber(L, st.unigram_nats);
    lua_setfield(L, -2, "unigram_nats");
    lua_pushnumber(L, st.empirical_nats);
    lua_setfield(L, -2, "empirical_nats");
    lua_pushnumber(L, st.context_nats);
    lua_setfield(L, -2, "context_nats");
    return 1;
}

void l_data_register(lua_State *L, int ctx_idx) {
    static const luaL_Reg methods[] = {{"encode", corpus_encode},
                                       {"decode", corpus_decode},
                                       {"batch", corpus_batch},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", corpus_gc},
                                    {"__index", corpus_index},
                                    {"__tostring", corpus_tostring},
                                    {NULL, NULL}};
    luaL_newmetatable(L, CORPUS_MT);
    lua_pushvalue(L, ctx_idx);
    luaL_setfuncs(L, meta, 1);
    lua_newtable(L);
    lua_pushvalue(L, ctx_idx);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_corpus_new, 1);
    lua_setfield(L, -2, "corpus");
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_prepare, 1);
    lua_setfield(L, -2, "prepare");
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_random_corpus, 1);
    lua_setfield(L, -2, "random_corpus");
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_synth, 1);
    lua_setfield(L, -2, "synth");

    static const luaL_Reg tmethods[] = {
        {"encode", tok_encode}, {"decode", tok_decode}, {"bytes", tok_bytes}, {NULL, NULL}};
    static const luaL_Reg tmeta[] = {
        {"__index", tok_index}, {"__tostring", tok_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, TOKENIZER_MT);
    luaL_setfuncs(L, tmeta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, tmethods, 0);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_tokenizer_new);
    lua_setfield(L, -2, "tokenizer");
    lua_pushcfunction(L, l_train_tokenizer);
    lua_setfield(L, -2, "train_tokenizer");
}
