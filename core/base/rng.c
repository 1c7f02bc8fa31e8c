/* xoshiro256** (Blackman & Vigna) with splitmix64 seeding; written from the published algorithm. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void rng_init(rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

rng rng_split(const rng *r, uint64_t stream) {
    uint64_t x = r->s[0] ^ rotl(r->s[1], 17) ^ rotl(r->s[2], 31) ^ rotl(r->s[3], 47);
    x ^= stream * 0xd1342543de82ef95ull + 0x632be59bd9b4e019ull;
    rng out;
    for (int i = 0; i < 4; i++)
        out.s[i] = splitmix64(&x);
    return out;
}

uint64_t rng_u64(rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng *r) {
    return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

float rng_uniform_f32(rng *r) {
    return (float)(rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint64_t rng_below(rng *r, uint64_t n) {
    /* rejection on the top range keeps it unbiased */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

double rng_normal(rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double rng_uniform_cb(void *r) {
    return rng_uniform((rng *)r);
}

uint64_t rng_u64_cb(void *r) {
    return rng_u64((rng *)r);
}
