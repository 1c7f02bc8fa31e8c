/* `hdlm sample --run ID` and `hdlm eval --run ID`: a stored run brought back (run/run.h) and
 * sampled or bounded with key=value options, typed as `hdlm run` types script arguments (numbers,
 * true/false, text). */
#ifndef HDLM_RUN_CMDS_H
#define HDLM_RUN_CMDS_H

#include "base/error.h"

/* args: argc key=value strings (already checked to contain '='). Messages for e start with the
 * key or object at fault; the caller prefixes the command. */
int run_cmd_sample(const char *db, const char *run_id, int argc, char **args, error *e);
int run_cmd_eval(const char *db, const char *run_id, int argc, char **args, error *e);

#endif
