/* SHA-256 (FIPS 180-4) for content hashes: plugin files, checkpoints, data files recorded with a
 * run. Streaming (init/update/final) plus one-shot helpers that give lowercase hex. Not meant for
 * anything security-sensitive (no constant-time guarantees, no HMAC). */
#ifndef HDLM_SHA256_H
#define HDLM_SHA256_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];     /* chaining state */
    uint64_t n_bytes;  /* message length so far */
    uint8_t block[64]; /* pending partial block */
    size_t n_block;    /* bytes used in `block` */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t digest[32]); /* c must be re-initialised before reuse */

/* One-shot digest of a buffer as 64 lowercase hex digits + NUL. */
void sha256_hex(const void *data, size_t n, char out[65]);
/* Digest of a file's contents; HDLM_EIO with "<path>: ..." when it cannot be read. */
int sha256_hex_file(const char *path, char out[65], error *e);

#endif
