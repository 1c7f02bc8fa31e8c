#!/usr/bin/env bash
# scripts/setup.sh for everyone, checked with `setup.sh --check` (what is missing, what it would
# do; installs and builds nothing) on a PATH of links to this machine's tools minus the hidden
# ones: without dpkg-query, as a non-root user (nobody, when the test runs as root), without the
# optional MPI packages, sqlite3 and git it would still build; a missing essential package (cmake)
# stops it with the apt-get line to run; a password-less sudo is used to install. And the MPI
# test skips (exit 77, ctest's SKIP_RETURN_CODE) rather than fails without MPI, but fails when
# the MPI development files are installed and the build missed them.
set -u
SRC=${HDLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }

# shim DIR NAME...: DIR holds links to every tool on PATH except NAME... (the directories are
# linked in reverse PATH order, so that the first one on PATH wins as it does for a lookup)
shim() {
  local d=$1; shift
  mkdir -p "$d"
  local dirs=() p
  IFS=: read -r -a dirs <<<"$PATH:/usr/sbin:/sbin"
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    p=${dirs[i]}
    [ -d "$p" ] && ln -sf -t "$d" "$p"/* 2>/dev/null
  done
  for p in "$@"; do rm -f "$d/$p"; done
}
# as_user CMD...: runs CMD as a non-root user (nobody when we are root)
as_user() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
  else
    "$@"
  fi
}
hidden=(dpkg-query dpkg apt-get sudo mpicc mpicc.openmpi mpirun mpiexec orterun sqlite3 git)

# 1. non-root, no dpkg-query, no sudo, no MPI/sqlite3/git: it would build
shim "$dir/bin1" "${hidden[@]}"
out=$(as_user env PATH="$dir/bin1" bash "$SRC/scripts/setup.sh" --check 2>&1); rc=$?
[ $rc -eq 0 ] && ok || bad "non-root without optional packages: rc=$rc: $out"
grep -q "essential packages missing: none" <<<"$out" && ok || bad "essential packages not found by their probes: $out"
grep -q "optional packages missing: libopenmpi-dev openmpi-bin sqlite3 git" <<<"$out" && ok || bad "optional packages: $out"
grep -q "cannot install packages here" <<<"$out" && grep -q "would build in build" <<<"$out" && ok || bad "plan: $out"

# 2. an essential package missing: it stops, naming it and the command
shim "$dir/bin2" "${hidden[@]}" cmake
out=$(as_user env PATH="$dir/bin2" bash "$SRC/scripts/setup.sh" --check 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "essential packages missing: cmake" <<<"$out" \
  && grep -q "install first: sudo apt-get install cmake" <<<"$out" && ok || bad "missing cmake: rc=$rc: $out"

# 3. a password-less sudo (a stand-in that says yes) and apt-get: it would install through sudo
shim "$dir/bin3" "${hidden[@]}"
printf '#!/bin/sh\nexit 0\n' > "$dir/bin3/sudo"
printf '#!/bin/sh\nexit 0\n' > "$dir/bin3/apt-get"
chmod +x "$dir/bin3/sudo" "$dir/bin3/apt-get"
out=$(as_user env PATH="$dir/bin3" bash "$SRC/scripts/setup.sh" --check 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "would run: sudo -n apt-get install  *libopenmpi-dev openmpi-bin sqlite3 git" <<<"$out" \
  && ok || bad "password-less sudo: rc=$rc: $out"
# ... and a sudo that wants a password is not used
printf '#!/bin/sh\n[ "$1" = -n ] && exit 1\nexit 0\n' > "$dir/bin3/sudo"
out=$(as_user env PATH="$dir/bin3" bash "$SRC/scripts/setup.sh" --check 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "cannot install packages here" <<<"$out" && ok || bad "sudo with a password: rc=$rc: $out"

# 4. root without apt-get (another distribution): lists, does not try
if [ "$(id -u)" -eq 0 ]; then
  out=$(env PATH="$dir/bin1" bash "$SRC/scripts/setup.sh" --check 2>&1); rc=$?
  [ $rc -eq 0 ] && grep -q "cannot install packages here" <<<"$out" && ok || bad "root without apt-get: rc=$rc: $out"
fi

# 5. the MPI test: skipped without MPI, a failure when mpicc is there and the build missed it
printf '#!/bin/sh\necho "hdlm 0.1.0 (plugin ABI 1, OpenBLAS, no MPI)"\n' > "$dir/fake-hdlm"
chmod +x "$dir/fake-hdlm"
mkdir -p "$dir/build"
echo "HDLM_MPI:BOOL=ON" > "$dir/build/CMakeCache.txt"
out=$(env PATH="$dir/bin1" HDLM_BIN="$dir/fake-hdlm" HDLM_BUILD="$dir/build" bash "$SRC/tests/integration/test_mpi.sh" 2>&1); rc=$?
[ $rc -eq 77 ] && grep -q "skipped: no MPI" <<<"$out" && ok || bad "test_mpi without MPI: rc=$rc: $out"
printf '#!/bin/sh\nexit 0\n' > "$dir/bin1/mpicc"
chmod +x "$dir/bin1/mpicc"
out=$(env PATH="$dir/bin1" HDLM_BIN="$dir/fake-hdlm" HDLM_BUILD="$dir/build" bash "$SRC/tests/integration/test_mpi.sh" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "FindMPI missed it" <<<"$out" && ok || bad "test_mpi with mpicc but no MPI build: rc=$rc: $out"

echo "test_setup: $passed passed, $failed failed"
[ $failed -eq 0 ]
