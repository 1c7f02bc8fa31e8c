/* Broken fixture: a sampler that writes Vp, one past the last symbol (`hdlm plugins check` must
 * fail "valid tokens"). */
#define BROKEN_TOKEN
#include "mini_sampler.h"

MINI_SAMPLER_PLUGIN("broken_invalid_token", "broken fixture: writes a token outside 0..Vp-1")
