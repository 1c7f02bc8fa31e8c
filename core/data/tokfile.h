/* Token files: a corpus encoded once, with a fixed 64-byte little-endian header
 *   magic "HDLMTOK1" | u32 format version | u32 tokenizer kind | u32 vocab | u32 bytes per token
 *   | u64 n_train | u64 n_valid | u64 fnv1a-64 of the payload | u64 split seed
 * followed by n_train then n_valid tokens (uint8 or uint16 little-endian).
 * (bytes per token is 1 when vocab <= 256, else 2; bytes 56..63 are zero; the checksum covers the
 * token bytes exactly as stored).
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

#define TOKFILE_VERSION 1
#define TOKFILE_CHUNK   4096

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
} tokfile_stats;

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
/* Loads and verifies (magic, version, tokenizer, sizes against the file length, checksum, every
 * token < vocab). Errors name the file and what was expected vs found. */
int corpus_load(const char *path, corpus *c, error *e);
void corpus_free(corpus *c); /* accepts a zeroed corpus */

#endif
