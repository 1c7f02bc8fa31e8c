/* Graceful stop on SIGINT/SIGTERM. While armed (a training loop), the first signal only records
 * itself: the loop checks interrupt_signal() at step boundaries, finishes the step, writes a
 * checkpoint and returns an error, and the run ends 'interrupted'. The handler is one-shot
 * (SA_RESETHAND): a second signal takes the default action and ends the process at once, for the
 * user who does not want to wait for the checkpoint. Disarmed, the previous handlers are back
 * (normally the default: the process dies, and the next store open reaps its run). */
#ifndef HDLM_INTERRUPT_H
#define HDLM_INTERRUPT_H

/* Installs the handlers, saving the previous ones; a signal already ignored (SIG_IGN) is left
 * ignored. Not nested: one training loop at a time. */
void interrupt_arm(void);
/* Restores the saved handlers. A signal received while armed stays recorded. */
void interrupt_disarm(void);
/* The signal received while armed (SIGINT, SIGTERM), 0 when none. */
int interrupt_signal(void);
/* "SIGINT", "SIGTERM" or "signal N" (static storage). */
const char *interrupt_name(int sig);

#endif
