/* Broken fixture: a sampler whose correction step changes fixed (prompt) positions (`hdlm plugins
 * check` must fail "fixed positions untouched"). */
#define BROKEN_FIXED
#include "mini_sampler.h"

MINI_SAMPLER_PLUGIN("broken_touches_fixed", "broken fixture: changes fixed positions")
