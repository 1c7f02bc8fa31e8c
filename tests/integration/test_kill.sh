#!/usr/bin/env bash
# Short version of scripts/kill_test.sh: 4 SIGKILLs at random points (a step, a checkpoint
# write, the store transaction after `latest` moved) of a 60-step run, each followed by a
# restart; the final checkpoint must be byte-identical to an uninterrupted run's, every restart
# must resume from `latest`, and the store must hold each step's loss exactly once along the
# chain. About 15 s with a release build; the long version (20 kills) is run by hand.
set -u
src=${HDLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
HDLM_BIN=${HDLM_BIN:-./hdlm} exec bash "$src/scripts/kill_test.sh" 4 60 7
