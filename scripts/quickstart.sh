#!/usr/bin/env bash
# Set-up + the main job: installs what is missing, builds (Release), fetches the default corpus
# (Brown) if absent, and runs experiments/quickstart.lua, which records its work in runs.db.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/get-data.sh brown
build/hdlm run experiments/quickstart.lua "$@"
