/* `hdlm sweep`: runs the training configurations of a sweep file with local worker processes that
 * share one database, resumes an interrupted sweep, and prints a sweep's progress.
 *   hdlm sweep FILE.lua [--db runs.db] [--workers N] [--retry-failed]   coordinator
 *   hdlm sweep FILE.lua --worker ID [--db runs.db]                      one worker, in-process
 *   hdlm sweep --status NAME_OR_ID [--db runs.db]                       progress
 * The sweep file format, the store rows and the training live in core/app/sweep.lua (embedded);
 * this module parses the command line, starts and waits for the workers and decides whether a
 * claimed point's worker is still alive. */
#ifndef HDLM_APP_SWEEP_H
#define HDLM_APP_SWEEP_H

/* The `hdlm sweep` command (argv without "hdlm sweep"); returns the exit status. */
int sweep_main(int argc, char **argv);

#endif
