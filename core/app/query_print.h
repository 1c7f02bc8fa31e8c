/* `hdlm query` output: the rows of a query as a table, CSV or JSON (query_print.c). */
#ifndef HDLM_QUERY_PRINT_H
#define HDLM_QUERY_PRINT_H

#include "store/store.h"

#include <stdio.h>

enum { QUERY_FMT_TABLE = 0, QUERY_FMT_CSV = 1, QUERY_FMT_JSON = 2 };
/* Prints the rows of sql (every result set) as an aligned table, CSV or a JSON array of
 * objects. */
int query_print(store *s, const char *sql, int format, FILE *out, error *e);

#endif
