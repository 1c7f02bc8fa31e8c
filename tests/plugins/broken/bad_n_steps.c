/* Broken fixture: n_steps leaves out the last block (`hdlm plugins check` must name it). */
#define BROKEN_N_STEPS
#include "mini_blocks.h"

MINI_BLOCKS_PLUGIN("broken_n_steps", "broken fixture: n_steps leaves out the last block")
