# Debian packages: is one present, and how to install the missing ones. Sourced by setup.sh and
# test.sh. With dpkg-query a package counts as present when dpkg says so or when what it provides
# is found (a cmake or clang installed by other means); without dpkg-query (another distribution,
# a minimal container) only the second test is made.

# pkg_provides PKG: whether what PKG provides is on this machine
pkg_provides() {
  local d
  case $1 in
    build-essential) command -v cc >/dev/null && command -v make >/dev/null ;;
    cmake | git | sqlite3 | clang | clang-format) command -v "$1" >/dev/null ;;
    pkg-config) command -v pkg-config >/dev/null || command -v pkgconf >/dev/null ;;
    liblua5.4-dev) pkg-config --exists lua5.4 2>/dev/null ;;
    libpcre2-dev) pkg-config --exists libpcre2-8 2>/dev/null || [ -e /usr/include/pcre2.h ] ;;
    libsqlite3-dev) pkg-config --exists sqlite3 2>/dev/null || [ -e /usr/include/sqlite3.h ] ;;
    libopenblas-openmp-dev | libopenblas-dev)
      for d in /usr/include/*/openblas-openmp /usr/include/openblas-openmp /usr/include/*/openblas* \
               /usr/include/openblas /usr/local/include /usr/include; do
        [ -e "$d/cblas.h" ] && return 0
      done
      return 1 ;;
    libdnnl-dev) [ -e /usr/include/oneapi/dnnl/dnnl.h ] || [ -e /usr/include/dnnl.h ] ;;
    libopenmpi-dev) command -v mpicc >/dev/null ;;
    openmpi-bin) command -v mpirun >/dev/null ;;
    chromium) command -v chromium >/dev/null || command -v chromium-browser >/dev/null ;;
    libomp-dev)
      for d in /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib /usr/local/lib; do
        [ -e "$d/libomp.so" ] && return 0
      done
      return 1 ;;
    *) return 1 ;;
  esac
}

# pkg_missing PKG...: prints the missing ones, space-separated
pkg_missing() {
  local p out=()
  for p in "$@"; do
    if command -v dpkg-query >/dev/null 2>&1 &&
       dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      continue
    fi
    pkg_provides "$p" || out+=("$p")
  done
  echo "${out[@]+"${out[@]}"}"
}

# pkg_installer: prints how packages can be installed here ("apt-get" as root, "sudo -n apt-get"
# with a password-less sudo), or nothing when they cannot
pkg_installer() {
  command -v apt-get >/dev/null 2>&1 || return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "apt-get"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "sudo -n apt-get"
  fi
}

# apt-get ARGS... as root, or through a password-less sudo
_pkg_apt() {
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get "$@"
  else
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get "$@"
  fi
}

_pkg_updated=0
# pkg_install LABEL PKG...: installs them (apt-get update first, once); non-zero when it cannot
pkg_install() {
  local label=$1; shift
  [ $# -gt 0 ] || return 0
  local how; how=$(pkg_installer)
  [ -n "$how" ] || return 1
  echo "$label: installing $* ($how install)"
  if [ $_pkg_updated -eq 0 ]; then
    _pkg_apt update -qq || return 1
    _pkg_updated=1
  fi
  _pkg_apt install -y -qq "$@" >/dev/null
}
