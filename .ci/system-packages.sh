#!/usr/bin/env bash
# Install the Debian packages the tests use if they are missing (idempotent: nothing when they are there):
# - postgresql: tests/test_sweep_postgres.py and tests/test_grid_postgres.py start a throwaway server on
#   127.0.0.1 from its binaries (the package's own cluster is not used, and its service is not started);
# - chromium: tests/test_browser.py opens reports headlessly.
set -euo pipefail

missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
