/* Token files: a corpus encoded once, with a fixed 64-byte little-endian header
 *   magic "HDLMTOK1" | u32 format version | u32 tokenizer kind | u32 vocab | u32 bytes per token
 *   | u64 n_train | u64 n_valid | u64 fnv1a-64 of the payload | u64 split seed
 *   | u32 tokenizer name length L (version 2; 0 in version 1) | u32 zero
 * then, in version 2 only, the tokenizer record: the 32-byte SHA-256 of the vocabulary
 * (tokenizer_sha256) and the L bytes of its name (tokenizer_label: "gpt2", "bpe:/abs/dir"),
 * followed by n_train then n_valid tokens (uint8 or uint16 little-endian).
 * Version 1 is written for bytes and text8, whose kind is their whole identity; version 2 for the
 * BPE tokenizers. (Bytes per token is 1 when vocab <= 256, else 2; the checksum covers the token
 * bytes exactly as stored.)
 * The train/valid split is deterministic: the token stream is cut into chunks of
 * TOKFILE_CHUNK tokens (the last one may be shorter) and chunk k is validation when
 * tokfile_chunk_hash(k, split seed) / 2^64 < the requested fraction. Two guarantees so that both
 * splits exist whatever the luck of the hash, for a fraction f > 0:
 *   - with >= 2 chunks: if no chunk was picked, the chunk with the smallest hash is validation;
 *     if every chunk was picked, the chunk with the largest hash stays in train;
 *   - with 1 chunk (a corpus of at most TOKFILE_CHUNK tokens): the last ceil(f * n) tokens are
 *     validation, the rest train.
 * Every file prepared from the same text and settings is byte-identical. */
#ifndef HDLM_TOKFILE_H
#define HDLM_TOKFILE_H

#include "base/error.h"
#include "data/tokenizer.h"

#include <stdint.h>

#define TOKFILE_VERSION      2 /* the newest version written; 1 and 2 are read */
#define TOKFILE_CHUNK        4096
#define TOKFILE_DOCS_DEFAULT (-1) /* document breaks when the tokenizer has an end-of-text id */

typedef struct corpus {
    tokenizer tok;
    int32_t *train; /* (n_train) */
    int64_t n_train;
    int32_t *valid; /* (n_valid) */
    int64_t n_valid;
    uint64_t checksum;
} corpus;

typedef struct tokfile_stats {
    int64_t n_bytes, n_train, n_valid;
    int64_t n_docs; /* documents found (1 without document breaks) */
    int docs;       /* the document rule used: TOKENIZER_DOCS_* */
} tokfile_stats;

typedef struct tokfile_options {
    const char *tokenizer; /* "bytes" (NULL), "text8", "gpt2", "bpe:DIR" */
    double valid;          /* fraction of chunks held out, in [0, 0.5] */
    uint64_t seed;         /* split seed */
    int docs; /* TOKFILE_DOCS_DEFAULT, TOKENIZER_DOCS_NONE or _BLANK (tokenizer_encode_docs) */
} tokfile_options;

/* The split hash of chunk k (splitmix64-style mixing of the seed, then of k). */
uint64_t tokfile_chunk_hash(uint64_t chunk, uint64_t split_seed);
/* Chunk membership for a stream of n_tokens (is_valid: (ceil(n_tokens / TOKFILE_CHUNK)), 1 =
 * validation) by the hash rule above including the >= 2-chunk guarantees; a single chunk is all 0
 * here (its tail split is done by tokfile_prepare). Needs 0 <= valid_fraction <= 0.5. Returns the
 * number of chunks. */
int64_t tokfile_split_chunks(int64_t n_tokens, double valid_fraction, uint64_t split_seed,
                             unsigned char *is_valid);
/* Reads a UTF-8 text file (refusing an empty file, NUL bytes and invalid UTF-8 with the byte
 * offset; overlongs, surrogates and code points above U+10FFFF are invalid), encodes it, splits it
 * and writes out_path atomically ("<out>.tmp.<pid>", fsync, rename). valid_fraction must be in
 * [0, 0.5]; a text that encodes to no tokens is refused. stats (may be NULL) gets the counts. */
int tokfile_prepare(const char *text_path, const char *out_path, const char *tokenizer_name,
                    double valid_fraction, uint64_t split_seed, tokfile_stats *stats, error *e);
/* Same with every option; documents are separated by the end-of-text id as tokenizer_encode_docs
 * says (by default: blank lines, for gpt2 and bpe:DIR). */
int tokfile_prepare_opts(const char *text_path, const char *out_path, const tokfile_options *o,
                         tokfile_stats *stats, error *e);
/* "blank" | "none" | "default" (or NULL) -> *docs; HDLM_EINVAL for anything else. */
int tokfile_docs_from_name(const char *name, int *docs);
/* Loads and verifies (magic, version, tokenizer, sizes against the file length, checksum, every
 * token < vocab). Errors name the file and what was expected vs found. */
int corpus_load(const char *path, corpus *c, error *e);
/* Same, and the file's tokenizer must be `expect` (same vocabulary SHA-256): a mismatch is one
 * error naming both tokenizers. Without expect (corpus_load) the tokenizer named in the file is
 * loaded and its vocabulary must still have the recorded hash. */
int corpus_load_expect(const char *path, const tokenizer *expect, corpus *c, error *e);

/* A corpus as hdlm.corpus{path = ...} and `hdlm eval data=...` open it: a .tok file is loaded
 * (checked against o->tokenizer when check_tok); a text file is encoded once into a token file
 * named by its settings ("<path>.<tokenizer tag>[.docs|.nodocs].v<valid>.s<seed>.tok", or `out`)
 * and encoded again only when the text is newer. tok_path (cap bytes) receives the token file. */
int corpus_open(const char *path, const tokfile_options *o, int check_tok, const char *out,
                corpus *c, char *tok_path, size_t cap, error *e);

/* Whole regular file into *buf (malloc'd, caller frees) and its length. */
int tokfile_read_all(const char *path, unsigned char **buf, size_t *len, error *e);
/* Writes head then body to path atomically ("<path>.tmp.<pid>", fsync, rename). */
int tokfile_write_all(const char *path, const void *head, size_t n_head, const void *body,
                      size_t n_body, error *e);
void corpus_free(corpus *c); /* accepts a zeroed corpus */

#endif
