/* Seeded, splittable random numbers (xoshiro256** seeded through splitmix64).
 * Every random draw of a run comes from an rng derived from the run's seed, so a run is
 * reproducible for a given seed and thread count. The state is 4 words and can be saved in a
 * checkpoint and restored bit for bit. */
#ifndef HDLM_RNG_H
#define HDLM_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

void rng_init(rng *r, uint64_t seed);
/* An independent stream derived from (r's current state, stream id); r is not advanced. */
rng rng_split(const rng *r, uint64_t stream);
uint64_t rng_u64(rng *r);
double rng_uniform(rng *r);             /* [0, 1), 53 bits */
float rng_uniform_f32(rng *r);          /* [0, 1), 24 bits */
uint64_t rng_below(rng *r, uint64_t n); /* uniform in [0, n), unbiased; n > 0 */
double rng_normal(rng *r);              /* standard normal (Box-Muller, float64) */

/* Host-table adapters (void * = rng *). */
double rng_uniform_cb(void *r);
uint64_t rng_u64_cb(void *r);

#endif
