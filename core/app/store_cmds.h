/* Commands that look after the store: `hdlm runs rm`, `hdlm runs gc`, `hdlm compare`, and the
 * check that a read command's --db names an existing file (so that a typo does not create an
 * empty database). */
#ifndef HDLM_STORE_CMDS_H
#define HDLM_STORE_CMDS_H

/* 1 when db exists (or is ":memory:"); otherwise prints "hdlm: <db>: no such database file ..."
 * naming the command and returns 0. */
int store_cmd_require_db(const char *db, const char *command);
/* hdlm runs rm ID... [--db FILE] [--dry-run] [--keep-files]; db: the --db given before 'rm' */
int store_cmd_runs_rm(int argc, char **argv, const char *db);
/* hdlm runs gc [--db FILE] [--dry-run] */
int store_cmd_runs_gc(int argc, char **argv, const char *db);
/* hdlm compare RUN_A RUN_B [--db FILE] */
int store_cmd_compare(int argc, char **argv);

#endif
