#!/usr/bin/env bash
# Install Debian's PostgreSQL server package if its binaries are missing (tests/test_sweep_postgres.py starts
# a throwaway server on 127.0.0.1 from them). Idempotent: does nothing when initdb is already there.
# The package's own cluster is not used, and its service is not started.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends postgresql
