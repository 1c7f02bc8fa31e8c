/* Large buffers (model weights, gradients, optimizer state, activations, KV cache) on transparent
 * huge pages where the kernel offers them on request (THP "madvise" mode, Debian's default).
 * Decoding streams every weight once per token and training sweeps the activation slabs: with 4 KiB
 * pages that is one TLB entry per 64 cache lines. Measured here (128 MB of weights streamed by a
 * 2-thread GEMV): 32 GB/s on 4 KiB pages, 38 GB/s on 2 MiB pages. Memory from these functions is
 * released with free(). */
#ifndef HDLM_MEM_H
#define HDLM_MEM_H

#include <stddef.h>

/* n bytes, 64-byte aligned (2 MiB aligned and advised for huge pages from 2 MiB up); NULL when out
 * of memory. Contents undefined. */
void *mem_alloc_large(size_t n);
/* The same, zero-filled. */
void *mem_calloc_large(size_t n);

#endif
