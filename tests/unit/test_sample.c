/* The core's categorical draw (temperature, top-k, top-p, float64 inverse CDF). */
#include "base/rng.h"
#include "check.h"
#include "diffusion/sample.h"

#include <stdlib.h>

#define NMAX 16

static int32_t draw(const double *w, int n, double T, int k, double p, double u) {
    double scratch[3 * NMAX];
    return sample_draw(w, n, T, k, p, u, scratch);
}

int main(void) {
    const double w[5] = {0.1, 0.4, 0.2, 0.25, 0.05}; /* unnormalised is fine: sums to 1 here */
    /* inverse CDF at temperature 1: cumulative 0.1, 0.5, 0.7, 0.95, 1.0 */
    CHECK_EQ(draw(w, 5, 1, 0, 1, 0.0), 0);
    CHECK_EQ(draw(w, 5, 1, 0, 1, 0.09999), 0);
    CHECK_EQ(draw(w, 5, 1, 0, 1, 0.1001), 1);
    CHECK_EQ(draw(w, 5, 1, 0, 1, 0.69), 2);
    CHECK_EQ(draw(w, 5, 1, 0, 1, 0.9), 3);
    CHECK_EQ(draw(w, 5, 1, 0, 1, 0.99), 4);
    /* temperature 0 is greedy whatever u */
    for (double u = 0; u < 1; u += 0.1)
        CHECK_EQ(draw(w, 5, 0, 0, 1, u), 1);
    /* temperature -> 0 approaches greedy */
    int greedy = 1;
    for (double u = 0; u < 1; u += 0.01)
        greedy &= draw(w, 5, 1e-3, 0, 1, u) == 1;
    CHECK(greedy);
    /* top-k 2 keeps {1, 3}: masses 0.4, 0.25 of 0.65 */
    CHECK_EQ(draw(w, 5, 1, 2, 1, 0.0), 1);
    CHECK_EQ(draw(w, 5, 1, 2, 1, 0.6), 1);  /* 0.6·0.65 = 0.39 < 0.4 */
    CHECK_EQ(draw(w, 5, 1, 2, 1, 0.62), 3); /* 0.403 > 0.4 */
    CHECK_EQ(draw(w, 5, 1, 2, 1, 0.999), 3);
    /* top-p keeps the smallest set with mass >= p, most probable first: p = 0.6 -> {1 (0.4),
     * 3 (0.25)} = 0.65 >= 0.6; p = 0.4 -> {1}; p = 0.66 -> {1, 3, 2} */
    CHECK_EQ(draw(w, 5, 1, 0, 0.4, 0.99), 1);
    CHECK_EQ(draw(w, 5, 1, 0, 0.6, 0.99), 3);
    CHECK_EQ(draw(w, 5, 1, 0, 0.66, 0.999), 3); /* order in the index walk: 1, 2, 3 */
    {
        int seen[5] = {0};
        rng r;
        rng_init(&r, 1);
        for (int i = 0; i < 20000; i++)
            seen[draw(w, 5, 1, 0, 0.66, rng_uniform(&r))]++;
        CHECK(seen[0] == 0 && seen[4] == 0 && seen[1] > 0 && seen[2] > 0 && seen[3] > 0);
        /* within the kept set the draw is proportional: 0.4/0.85 for token 1 */
        CHECK_NEAR(seen[1] / 20000.0, 0.4 / 0.85, 0.015);
    }
    /* temperature 2 flattens: p ∝ w^(1/2) */
    {
        double z = 0;
        for (int i = 0; i < 5; i++)
            z += sqrt(w[i]);
        int cnt = 0;
        rng r;
        rng_init(&r, 2);
        for (int i = 0; i < 40000; i++)
            cnt += draw(w, 5, 2, 0, 1, rng_uniform(&r)) == 4;
        CHECK_NEAR(cnt / 40000.0, sqrt(0.05) / z, 0.01);
    }
    /* zero weights are never drawn; an all-zero row returns 0 */
    const double z0[4] = {0, 0.5, 0, 0.5};
    for (double u = 0; u < 1; u += 0.05) {
        int32_t t = draw(z0, 4, 1, 0, 1, u);
        CHECK(t == 1 || t == 3);
    }
    const double none[3] = {0, 0, 0};
    CHECK_EQ(draw(none, 3, 1, 0, 1, 0.5), 0);
    /* float64: a token of probability 1e-12 is reachable (a float32 draw would never see it) */
    const double tiny[2] = {1 - 1e-12, 1e-12};
    CHECK_EQ(draw(tiny, 2, 1, 0, 1, 1 - 5e-13), 1);
    return check_report("test_sample");
}
