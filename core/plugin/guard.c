/* The crash guard's signal side. The handlers run with SA_NODEFER so that leaving them with
 * siglongjmp (without restoring a saved mask: sigsetjmp(.., 0) costs no system call) leaves the
 * signal unblocked. The innermost frame is thread-local, so an op running on a worker thread
 * returns to its own trampoline. A plugin that overflows its stack is not caught (no alternate
 * stack); it dies as before. */
#include "plugin/guard.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static const int guarded_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
enum { N_SIGNALS = sizeof guarded_signals / sizeof guarded_signals[0] };

static struct sigaction previous[N_SIGNALS];
static _Thread_local guard_frame *innermost;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void forward(int sig, siginfo_t *si, void *uc) {
    for (int i = 0; i < N_SIGNALS; i++) {
        if (guarded_signals[i] != sig) continue;
        const struct sigaction *p = &previous[i];
        if ((p->sa_flags & SA_SIGINFO) && p->sa_sigaction) {
            p->sa_sigaction(sig, si, uc);
            return;
        }
        if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
            p->sa_handler(sig);
            return;
        }
    }
    /* default action: restore it and let the fault happen again (or raise it for raise()) */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
    guard_frame *f = innermost;
    if (!f) {
        forward(sig, si, uc);
        return;
    }
    innermost = f->prev;
    f->sig = sig;
    siglongjmp(f->jb, 1);
}

static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_SIGNALS; i++)
        sigaction(guarded_signals[i], &sa, &previous[i]);
}

void guard_install(void) {
    pthread_once(&install_once, install);
}

void guard_push(guard_frame *f) {
    f->sig = 0;
    f->prev = innermost;
    innermost = f;
}

void guard_pop(guard_frame *f) {
    innermost = f->prev;
}

const char *guard_signal_name(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV, segmentation fault";
    case SIGBUS:
        return "SIGBUS, bus error";
    case SIGFPE:
        return "SIGFPE, arithmetic exception";
    case SIGILL:
        return "SIGILL, illegal instruction";
    default:
        return "signal";
    }
}
