/* See mem.h. */
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MEM_HUGE ((size_t)2 << 20)

void *mem_alloc_large(size_t n) {
    if (n < MEM_HUGE) return aligned_alloc(64, (n + 63) & ~(size_t)63);
    size_t rounded = (n + MEM_HUGE - 1) & ~(MEM_HUGE - 1); /* aligned_alloc: size a multiple */
    void *p = aligned_alloc(MEM_HUGE, rounded);
#ifdef MADV_HUGEPAGE
    /* a hint: where THP is off or unavailable the pages stay 4 KiB and nothing else changes */
    if (p) (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

void *mem_calloc_large(size_t n) {
    void *p = mem_alloc_large(n);
    if (p) memset(p, 0, n);
    return p;
}
