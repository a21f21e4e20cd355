#!/usr/bin/env bash
# Installs what SessionStore needs beyond the Swift toolchain (LMDB's headers and
# library, Debian package liblmdb-dev) when it is missing. Safe to run repeatedly.
set -euo pipefail

have_lmdb() {
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists lmdb; then return 0; fi
    [ -f /usr/include/lmdb.h ] && ls /usr/lib/*/liblmdb.so >/dev/null 2>&1
}

if have_lmdb && command -v pkg-config >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: liblmdb-dev and pkg-config are missing and apt-get is not available;" >&2
    echo "install LMDB's development package with your system's package manager." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing liblmdb-dev and pkg-config" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblmdb-dev pkg-config >/dev/null
