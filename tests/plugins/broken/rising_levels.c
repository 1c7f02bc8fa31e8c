/* Broken fixture: a block's level rises at its third step (3, 2, 3, 0) (`hdlm plugins check` must
 * name it). */
#define BROKEN_RISE
#include "mini_blocks.h"

MINI_BLOCKS_PLUGIN("broken_rising_levels",
                   "broken fixture: a block's level rises at its third step (3, 2, 3, 0)")
