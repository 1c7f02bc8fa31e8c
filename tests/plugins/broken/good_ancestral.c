/* Control fixture: the correct sampler the broken sampler fixtures are variants of
 * (`hdlm plugins check` must pass every check). */
#include "mini_sampler.h"

MINI_SAMPLER_PLUGIN("fixture_good_ancestral", "control fixture: a correct ancestral sampler")
