#!/usr/bin/env bash
# Formats every tracked C file with the committed .clang-format; `--check` only reports.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "format: clang-format is missing (apt-get install clang-format)" >&2
  exit 1
fi
if [ "${1:-}" = "--check" ]; then
  git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
  echo "format: all C files follow .clang-format"
else
  git ls-files '*.c' '*.h' | xargs clang-format -i
fi
