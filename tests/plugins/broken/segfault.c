/* Broken fixture: levels segfaults at step 2 (`hdlm plugins check` must name it). */
#define BROKEN_SEGFAULT
#include "mini_blocks.h"

MINI_BLOCKS_PLUGIN("broken_segfault", "broken fixture: levels segfaults at step 2")
