/* One-line progress bar (steps, rate, ETA, last loss) on a terminal; periodic plain lines when the
 * output is not a terminal (log files, CI). Writes to stderr. */
#ifndef HDLM_PROGRESS_H
#define HDLM_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct progress {
    FILE *out;
    char label[64];
    int64_t total; /* steps to do */
    int64_t done;
    double t_start; /* seconds, monotonic */
    double t_last_draw;
    int tty;            /* 1 = redraw in place */
    double plain_every; /* seconds between plain lines when not a tty */
    int finished;
} progress;

double progress_now(void); /* monotonic seconds */
/* out NULL = stderr. tty detection uses isatty(); HDLM_PROGRESS=plain|tty|off overrides. */
void progress_init(progress *p, FILE *out, const char *label, int64_t total);
/* Report `done` steps; `unit_rate` is an extra rate to show (e.g. tokens/s, <0 = none); `loss`
 * shown when finite. Draws at most ~10 times a second on a tty. */
void progress_update(progress *p, int64_t done, double unit_rate, const char *unit, double loss);
void progress_finish(progress *p);
/* Formats the line that would be printed (for tests); returns the length. */
int progress_format(const progress *p, double now, double unit_rate, const char *unit, double loss,
                    char *buf, size_t cap);

#endif
