/* SIGINT/SIGTERM handling for a graceful stop (see interrupt.h). The handler only stores the
 * signal number in a sig_atomic_t: everything else (checkpoint, store rows) happens in the loop,
 * outside signal context. */
#include "interrupt.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t got_signal;
static struct sigaction saved_int, saved_term;
static int armed;

static void on_signal(int sig) {
    got_signal = sig;
}

void interrupt_arm(void) {
    if (armed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESETHAND: the second signal kills (default action); SA_RESTART: the step's syscalls
     * (file writes, SQLite's busy sleeps) are not cut short by the first one */
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    /* a signal ignored on entry (nohup, a shell's background job for SIGINT) stays ignored */
    sigaction(SIGINT, NULL, &saved_int);
    sigaction(SIGTERM, NULL, &saved_term);
    if (saved_int.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    if (saved_term.sa_handler != SIG_IGN) sigaction(SIGTERM, &sa, NULL);
    armed = 1;
}

void interrupt_disarm(void) {
    if (!armed) return;
    sigaction(SIGINT, &saved_int, NULL);
    sigaction(SIGTERM, &saved_term, NULL);
    armed = 0;
}

int interrupt_signal(void) {
    return (int)got_signal;
}

const char *interrupt_name(int sig) {
    static char buf[32];
    if (sig == SIGINT) return "SIGINT";
    if (sig == SIGTERM) return "SIGTERM";
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}
