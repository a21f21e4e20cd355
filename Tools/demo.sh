#!/usr/bin/env bash
# Runs the SessionStore demo, installing LMDB (liblmdb-dev) first when it is missing.
# Run it twice: the second run shows the values that survived the restart.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift run sessionstore-demo "$@"
