/* Progress bar: redraws one line with \r on a terminal; prints a plain line every few seconds
 * otherwise, so logs stay readable. */
#include "progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(progress *p, FILE *out, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t_start = progress_now();
    p->t_last_draw = -1e9;
    p->tty = isatty(fileno(p->out));
    p->plain_every = 5.0;
    const char *mode = getenv("HDLM_PROGRESS");
    if (mode && !strcmp(mode, "plain")) p->tty = 0;
    if (mode && !strcmp(mode, "tty")) p->tty = 1;
    if (mode && !strcmp(mode, "off")) p->out = NULL;
}

static void fmt_duration(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

int progress_format(const progress *p, double now, double unit_rate, const char *unit, double loss,
                    char *buf, size_t cap) {
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : NAN;
    char eta_s[32], el_s[32];
    fmt_duration(eta, eta_s, sizeof eta_s);
    fmt_duration(el, el_s, sizeof el_s);
    int width = 24, filled = p->total > 0 ? (int)(width * p->done / p->total) : 0;
    if (filled > width) filled = width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    int n = snprintf(buf, cap, "%s [%s] %lld/%lld %.2f it/s", p->label, bar, (long long)p->done,
                     (long long)p->total, rate);
    if (unit_rate >= 0 && unit && n < (int)cap)
        n += snprintf(buf + n, cap - n, " %.0f %s", unit_rate, unit);
    if (isfinite(loss) && n < (int)cap) n += snprintf(buf + n, cap - n, " loss %.4f", loss);
    if (n < (int)cap) n += snprintf(buf + n, cap - n, " elapsed %s eta %s", el_s, eta_s);
    return n;
}

void progress_update(progress *p, int64_t done, double unit_rate, const char *unit, double loss) {
    p->done = done;
    if (!p->out) return;
    double now = progress_now();
    int last = done >= p->total;
    if (p->tty) {
        if (!last && now - p->t_last_draw < 0.1) return;
    } else {
        if (!last && now - p->t_last_draw < p->plain_every) return;
    }
    p->t_last_draw = now;
    char line[256];
    progress_format(p, now, unit_rate, unit, loss, line, sizeof line);
    if (p->tty)
        fprintf(p->out, "\r%s\033[K", line);
    else
        fprintf(p->out, "%s\n", line);
    fflush(p->out);
}

void progress_finish(progress *p) {
    if (p->finished) return;
    p->finished = 1;
    if (p->out && p->tty) {
        fputc('\n', p->out);
        fflush(p->out);
    }
}
