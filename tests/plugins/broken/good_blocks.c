/* Control fixture: the correct block schedule the broken ones are variants of (`hdlm plugins check`
 * must pass every check). */

#include "mini_blocks.h"

MINI_BLOCKS_PLUGIN("fixture_good_blocks",
                   "control fixture: the correct block schedule the broken ones are variants of")
