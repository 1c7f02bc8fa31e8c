#!/usr/bin/env bash
# Short version of scripts/load_test.sh: 8 `hdlm run` processes write runs, metrics and samples
# to one database for 10 s; every reported row must be in the database exactly once, no process
# may fail or report a locked database, and the database must pass its integrity checks.
set -u
src=${HDLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
HDLM_BIN=${HDLM_BIN:-./hdlm} exec bash "$src/scripts/load_test.sh" 10 8
