/* Training a GPT-2-style byte-level BPE on a corpus: GPT-2's pre-tokenisation (data/pretok.h),
 * then merges learned greedily over the distinct pieces weighted by their counts. Each step merges
 * the adjacent pair with the highest count; ties go to the lexicographically smallest pair
 * (compare the left tokens' bytes, then the right tokens' bytes; a prefix sorts first), so the
 * result is a function of the text alone. A merge rewrites every occurrence in a piece left to
 * right without overlap — the same rule the encoder applies, so encoding a training piece gives
 * the segmentation training reached. Pair counts are updated incrementally (only the pieces that
 * hold the merged pair are visited, through a pair -> pieces index) and the best pair comes from
 * a lazy max-heap: pairs other than the new token's only ever lose count, so a stale heap entry
 * is re-pushed with its current count when it surfaces.
 * The vocabulary: ids 0..255 the bytes in GPT-2's order (bpe_byte_at), then one id per merge in
 * the order learned, then <|endoftext|> as the last id; written as DIR/encoder.json +
 * DIR/vocab.bpe (data/bpe.h), loadable as tokenizer "bpe:DIR". */
#ifndef HDLM_BPE_TRAIN_H
#define HDLM_BPE_TRAIN_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bpe_train_stats {
    int64_t n_bytes;                  /* text bytes */
    int64_t n_pieces;                 /* pre-tokenised pieces */
    int64_t n_words;                  /* distinct pieces */
    int32_t n_merges;                 /* merges learned (fewer than asked when no pair is left) */
    int32_t vocab;                    /* 256 + n_merges + 1 */
    double count_s, merge_s, total_s; /* wall time: counting pieces, merging, everything */
} bpe_train_stats;

/* Learns vocab - 257 merges (vocab in 257..65536) from n bytes of text and writes them to out_dir
 * (created if missing). */
int bpe_train(const char *text, size_t n, int32_t vocab, const char *out_dir,
              bpe_train_stats *stats, error *e);

#endif
