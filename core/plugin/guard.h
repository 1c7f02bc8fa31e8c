/* Crash guard for plugin ops: a segfault, bus error, floating-point exception or illegal
 * instruction raised while a plugin op runs on this thread jumps back to the op's caller (the
 * host's trampoline), which reports "plugin X crashed in op Y" instead of the process dying with
 * nothing printed. A fault outside any guarded op goes to the handler that was installed before
 * (sanitizers, or the default action). */
#ifndef HDLM_PLUGIN_GUARD_H
#define HDLM_PLUGIN_GUARD_H

#include <setjmp.h>

typedef struct guard_frame {
    sigjmp_buf jb;
    struct guard_frame *prev;
    volatile int sig; /* the signal that ended the op, 0 while it runs */
} guard_frame;

/* Installs the signal handlers once (idempotent, thread-safe). */
void guard_install(void);
/* Makes f the innermost guard of this thread. */
void guard_push(guard_frame *f);
/* Removes f (the innermost) after the op returned normally. */
void guard_pop(guard_frame *f);
/* "SIGSEGV" etc. */
const char *guard_signal_name(int sig);

/* Runs the guarded section: GUARD_ENTER(f) is 0 on entry and non-zero after a crash (f.sig then
 * names the signal and f is already popped). sigsetjmp must run in the frame that stays alive. */
#define GUARD_ENTER(f) (guard_push(&(f)), sigsetjmp((f).jb, 0))

#endif
