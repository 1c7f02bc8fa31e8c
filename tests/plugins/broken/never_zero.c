/* Broken fixture: each block stops at level 1 and never reaches level 0 (`hdlm plugins check` must
 * name it). */
#define BROKEN_NEVER_ZERO
#include "mini_blocks.h"

MINI_BLOCKS_PLUGIN("broken_never_zero",
                   "broken fixture: each block stops at level 1 and never reaches level 0")
